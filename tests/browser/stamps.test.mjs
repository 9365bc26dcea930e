// A coffee shop's stamp card in a real browser: the owner creates a 10-stamp program in the
// console and picks the stamp picture in the designer, a customer registers at /p/{slug}, and
// the cashier scans the card with the phone's camera, adds stamps until the tenth issues a
// reward, gives the reward, and refunds a purchase. Run by scripts/test like admin.test.mjs
// (same variables); LOY_SCREENSHOT_DIR, when set, receives screenshots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base, launch, logIn, screenshot } from './support.mjs';
import { writeQrClip } from './qr-clip.mjs';

const clip = join(mkdtempSync(join(tmpdir(), 'loy-camera-')), 'card-qr.y4m');
let browser;

before(async () => {
  // Chromium opens the clip when a page starts the camera: the test writes it before that.
  writeQrClip(clip, 'not a card yet');
  browser = await launch({ camera: clip });
});
after(async () => { await browser?.close(); });

async function noSidewaysScroll(p, what) {
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${what} is ${overflow}px wider than the screen`);
}

/** Submits the till's form with the button `name` and waits for the answer. */
async function till(p, name) {
  await Promise.all([p.waitForLoadState('domcontentloaded'), p.getByRole('button', { name }).click()]);
  await p.locator('#result').waitFor();
}

test('a coffee shop creates a 10-stamp card; the cashier stamps it, gives the reward and refunds', async () => {
  const slug = `coffee-${Math.floor(Math.random() * 1e6)}`;
  const ctx = await browser.newContext({ locale: 'en-US', permissions: ['camera'], viewport: { width: 1280, height: 900 } });
  const p = await ctx.newPage();
  // The console's confirmations (publish, give reward, refund; the reload re-sending a form).
  p.on('dialog', (d) => d.accept().catch(() => {}));
  await logIn(p);

  // The program, made in the console as a stamp card.
  await p.goto(`${base}/admin/programs?lang=en`);
  await p.locator('#f-slug').fill(slug);
  await p.locator('#f-name').fill('Corner Coffee');
  await p.locator('#f-currency').fill('RUB');
  await p.locator('#f-mechanic').selectOption('stamps');
  await p.locator('#f-stamps_per_reward').fill('10');
  await p.locator('#f-reward').fill('Free coffee');
  await Promise.all([p.waitForURL((u) => u.pathname === `/admin/programs/${slug}`), p.getByRole('button', { name: 'Create the program' }).click()]);
  await p.goto(`${base}/admin/programs/${slug}/rules?lang=en`);
  assert.equal(await p.locator('#f-stamps_per_reward').inputValue(), '10');
  assert.equal(await p.locator('#f-reward_en').inputValue(), 'Free coffee');
  await screenshot(p, 'stamps-rules');

  // The designer: the star as the stamp picture; the preview's strip is drawn with it.
  await p.goto(`${base}/admin/programs/${slug}/design?lang=en`);
  await p.locator('#f-stamp_icon').selectOption('star');
  const strip = p.locator('#preview .pv-strip img');
  await p.waitForFunction(() => {
    const img = document.querySelector('#preview .pv-strip img');
    return img && img.src.includes('icon=star') && img.complete && img.naturalWidth === 750;
  }, null, { timeout: 10000 });
  assert.match(await strip.getAttribute('src'), /\/design\/stamps\.png\?/);
  await Promise.all([p.waitForURL(/done=published/), p.locator('#do-publish').click()]);
  await screenshot(p, 'stamps-design');

  // A customer registers; the card page shows the empty round.
  const customer = await browser.newContext({ locale: 'en-US', viewport: { width: 390, height: 844 } });
  const c = await customer.newPage();
  await c.goto(`${base}/p/${slug}?lang=en`);
  await c.getByLabel('First name').fill('Mia');
  await c.getByLabel('Phone').fill('+7 9' + String(Math.floor(Math.random() * 1e9)).padStart(9, '0'));
  await c.getByLabel(/I agree/).check();
  await Promise.all([c.waitForURL(/\/c\/[a-z2-9]+/), c.getByRole('button', { name: 'Get my card' }).click()]);
  assert.equal(await c.getByTestId('balance').textContent(), '0');
  assert.match(await c.locator('.card-balance').textContent(), /\/ 10[\s\S]*10 stamps: Free coffee/);
  await screenshot(c, 'stamps-card-page', { width: 390, height: 844 });
  const cardUrl = c.url();

  // The cashier scans the card with the phone's camera, in the default program's till.
  writeQrClip(clip, cardUrl);
  await p.setViewportSize({ width: 390, height: 844 });
  await p.goto(`${base}/admin/cashier?lang=en`);
  const scan = p.getByRole('button', { name: 'Scan' });
  await scan.waitFor({ state: 'visible' });
  await Promise.all([p.waitForURL(/\/admin\/cashier\?card=.*program=/, { timeout: 20000 }), scan.click()]);
  assert.equal(await p.getByTestId('holder').textContent(), 'Mia');
  assert.equal(await p.getByTestId('stamps').textContent(), '0 of 10');
  assert.equal(await p.getByRole('button', { name: 'Give reward' }).isDisabled(), true, 'no reward to give yet');
  await noSidewaysScroll(p, 'the stamp till');
  await screenshot(p, 'stamps-till', { width: 390, height: 844 });

  for (let i = 1; i <= 9; i++) {
    await till(p, 'Add stamp');
    assert.equal(await p.getByTestId('stamps').textContent(), `${i} of 10`);
  }
  assert.equal(await p.locator('.stamp-slots li.filled').count(), 9);
  await till(p, 'Add stamp');
  assert.match(await p.getByTestId('reward-issued').textContent(), /Reward earned! Rewards waiting: 1/);
  assert.equal(await p.getByTestId('stamps').textContent(), '0 of 10');
  assert.equal(await p.getByTestId('rewards').textContent(), '1');
  await noSidewaysScroll(p, 'the reward');
  await screenshot(p, 'stamps-reward', { width: 390, height: 844 });

  // Reloading the answer re-sends the form: applied once.
  await p.reload();
  await p.locator('#result').waitFor();
  assert.equal(await p.getByTestId('stamps').textContent(), '0 of 10');
  assert.equal(await p.getByTestId('rewards').textContent(), '1');

  await till(p, 'Give reward');
  assert.match(await p.getByTestId('reward-given').textContent(), /Reward given. Rewards waiting: 0/);
  await till(p, 'Add stamp');
  assert.equal(await p.getByTestId('stamps').textContent(), '1 of 10');
  await till(p, 'Refund last purchase');
  assert.equal(await p.getByTestId('stamps').textContent(), '0 of 10', 'the refund took its stamp back');
  assert.equal(await p.getByTestId('rewards').textContent(), '0');

  // The customer's page follows.
  await c.reload();
  assert.equal(await c.getByTestId('balance').textContent(), '0');
  assert.equal(await c.getByTestId('rewards').textContent(), '0');
  await customer.close();
  await ctx.close();
});
