// The card designer in a real browser: the owner changes the background colour and the preview
// repaints by itself (htmx posts the form, the fragment brings its colour stylesheet), uploads a
// logo made in the page, publishes, and sees the fan-out's progress. Run by scripts/test like
// admin.test.mjs (same variables). LOY_SCREENSHOT_DIR, when set, receives screenshots at 320,
// 390 and 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { base, launch, logIn, logoPng, screenshot } from './support.mjs';

const designer = `${base}/admin/programs/default/design`;
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function noSidewaysScroll(p, what) {
  for (const width of [320, 390]) {
    await p.setViewportSize({ width, height: 844 });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${what} is ${overflow}px wider than a ${width}px screen`);
  }
  await p.setViewportSize({ width: 1280, height: 900 });
}

const background = (p) => p.locator('#pv-apple-front').evaluate((el) => getComputedStyle(el).backgroundColor);

async function waitForBackground(p, expected) {
  await p.waitForFunction(
    (rgb) => getComputedStyle(document.querySelector('#pv-apple-front')).backgroundColor === rgb,
    expected,
    { timeout: 10000 },
  );
}

test('an owner recolours the card, sees the preview follow, uploads a logo, publishes and sees the progress', async () => {
  const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  const p = await ctx.newPage();
  const refused = [];
  p.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) refused.push(m.text()); });
  await logIn(p);

  await p.goto(designer);
  await p.locator('#pv-apple-front').waitFor();
  const before = await background(p);
  assert.notEqual(before, 'rgba(0, 0, 0, 0)', 'the preview is painted from its colour stylesheet');
  await noSidewaysScroll(p, 'the designer');
  await screenshot(p, 'design');

  // Typing is enough: htmx posts the form and swaps the preview with its new stylesheet.
  await p.locator('#f-background_color').fill('#aa2200');
  await waitForBackground(p, 'rgb(170, 34, 0)');
  await p.locator('#f-how_to_earn_en').fill('One stamp for every coffee');
  await p.locator('#f-preview_lang').selectOption('en');
  await p.locator('#pv-back-how_to_earn').filter({ hasText: 'One stamp for every coffee' }).waitFor({ state: 'attached', timeout: 10000 });
  const saved = await p.evaluate(() => fetch(location.pathname).then((r) => r.text()));
  assert.ok(!saved.includes('value="#aa2200"'), 'typing saved nothing');

  // A logo made here, uploaded into the draft.
  await p.locator('#file-logo').setInputFiles({ name: 'logo.png', mimeType: 'image/png', buffer: await logoPng(p) });
  await Promise.all([p.waitForURL(/done=uploaded/), p.locator('#upload-logo').click()]);
  const logo = await p.locator('#slot-logo img').getAttribute('src');
  assert.match(logo, /^\/media\/[0-9a-f]{64}\.png$/);
  assert.equal(await p.locator('#pv-apple-front .pv-logo').getAttribute('src'), logo, 'the pass preview shows the upload');

  // Publish the new colour with the logo.
  await p.locator('#f-background_color').fill('#aa2200');
  await waitForBackground(p, 'rgb(170, 34, 0)');
  const revision = Number(await p.locator('#live-revision').textContent());
  p.once('dialog', (d) => d.accept());
  await Promise.all([p.waitForURL(/done=published/), p.locator('#do-publish').click()]);
  assert.equal(Number(await p.locator('#live-revision').textContent()), revision + 1);
  assert.equal(await background(p), 'rgb(170, 34, 0)', 'the published design is what the page shows');
  await p.locator('#design-progress').waitFor();
  for (const id of ['cards', 'queued', 'pushed', 'failed']) {
    assert.match(await p.locator(`#progress-${id}`).textContent(), /^\d+$/, `the progress shows ${id}`);
  }
  await p.locator(`#revision-${revision + 1}`).waitFor();
  await noSidewaysScroll(p, 'the designer after publishing');
  await screenshot(p, 'design-published');
  await p.goto(`${designer}?lang=ru&preview=ru`);
  await screenshot(p, 'design-ru');
  assert.deepEqual(refused, [], 'the page needs nothing the CSP refuses');
  await ctx.close();
});
