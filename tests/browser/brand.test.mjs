// A second program's brand on the customer pages, in a real browser: the owner creates a program
// in the console, gives it a colour and a logo in the designer and publishes; its registration
// form at /p/{slug} and the card page then show that name, logo and colour, with both wallet
// badges holding their words at 320, 390 and 1280 px. Run by scripts/test like admin.test.mjs
// (same variables); LOY_SCREENSHOT_DIR, when set, receives screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { base, inside, launch, logIn, logoPng, screenshot } from './support.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test("a program's published name, logo and colour are on its form and its card page", async () => {
  const slug = `bakery-${Math.floor(Math.random() * 1e6)}`;
  const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  const p = await ctx.newPage();
  const refused = [];
  p.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) refused.push(m.text()); });
  await logIn(p);

  // The program, made in the console.
  await p.goto(`${base}/admin/programs?lang=en`);
  await p.locator('#f-slug').fill(slug);
  await p.locator('#f-name').fill('Green Bakery');
  await p.locator('#f-currency').fill('RUB');
  await Promise.all([p.waitForURL((u) => u.pathname === `/admin/programs/${slug}` || u.pathname === '/admin/programs'), p.getByRole('button', { name: 'Create the program' }).click()]);

  // Its colour and logo, published from the designer.
  await p.goto(`${base}/admin/programs/${slug}/design?lang=en`);
  await p.locator('#file-logo').setInputFiles({ name: 'logo.png', mimeType: 'image/png', buffer: await logoPng(p, '#ffffff', '#1d6b3a') });
  await Promise.all([p.waitForURL(/done=uploaded/), p.locator('#upload-logo').click()]);
  await p.locator('#f-background_color').fill('#1d6b3a');
  p.once('dialog', (d) => d.accept());
  await Promise.all([p.waitForURL(/done=published/), p.locator('#do-publish').click()]);

  // The registration form carries the brand.
  await p.goto(`${base}/p/${slug}?lang=en`);
  assert.equal(await p.getByTestId('brand-name').textContent(), 'Green Bakery');
  const header = await p.locator('header.top').evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(header, 'rgb(29, 107, 58)', 'the header wears the program colour');
  const logo = p.getByTestId('brand-logo');
  assert.match(await logo.getAttribute('src'), /^\/media\/[0-9a-f]{64}\.png$/);
  assert.ok(await logo.evaluate((img) => img.complete && img.naturalWidth > 0), 'the logo loads');
  await screenshot(p, 'brand-form');

  // A customer registers there; the card page carries the brand and both badges fit.
  await p.locator('#first_name').fill('Anna');
  await p.locator('#phone').fill('+7 9' + String(Math.floor(Math.random() * 1e9)).padStart(9, '0'));
  await p.locator('input[name=consent]').check();
  await Promise.all([p.waitForURL(/\/c\/[a-z2-9]+/), p.locator('button[type=submit]').click()]);
  const card = p.url();
  for (const width of [320, 390, 1280]) {
    await p.setViewportSize({ width, height: 900 });
    await p.goto(card);
    assert.equal(await p.getByTestId('brand-name').textContent(), 'Green Bakery');
    assert.equal(await p.locator('.card').evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(29, 107, 58)');
    const badges = p.locator('.wallet-badge');
    assert.equal(await badges.count(), 2);
    for (let i = 0; i < 2; i += 1) {
      const box = await badges.nth(i).boundingBox();
      const text = await badges.nth(i).getByTestId('badge-text').boundingBox();
      assert.ok(inside(text, box), `${width}px: the words of badge ${i} stay inside it`);
      assert.ok(box.x >= 0 && box.x + box.width <= width, `${width}px: badge ${i} fits the screen`);
    }
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${width}px: the card page is ${overflow}px wider than the screen`);
  }
  await screenshot(p, 'brand-card');
  assert.deepEqual(refused, [], 'the pages need nothing the CSP refuses');
  await ctx.close();
});
