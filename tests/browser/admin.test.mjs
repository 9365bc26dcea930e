// The staff console's cashier and customers screens in a real browser: Debian's Chromium
// driven by playwright-core, its camera fed with a generated clip of a card's QR code.
// Run by scripts/test against a `loy serve` with an owner made by `loy staff add`;
// LOY_BASE_URL, LOY_OWNER_EMAIL and LOY_OWNER_PASSWORD say where and who.
// LOY_SCREENSHOT_DIR, when set, receives screenshots of the screens at 320, 390 and 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base, launch, ownerEmail, ownerPassword } from './support.mjs';
import { writeQrClip } from './qr-clip.mjs';

const shots = process.env.LOY_SCREENSHOT_DIR;
const clip = join(mkdtempSync(join(tmpdir(), 'loy-camera-')), 'card-qr.y4m');
let browser;

before(async () => {
  // Chromium opens the clip when a page starts the camera: the test writes it before that.
  writeQrClip(clip, 'not a card yet');
  browser = await launch({ camera: clip });
});

after(async () => {
  await browser?.close();
});

function phone() {
  return '+7 9' + String(Math.floor(Math.random() * 1e9)).padStart(9, '0');
}

async function context(options = {}) {
  return browser.newContext({ locale: 'en-US', permissions: ['camera'], ...options });
}

/** Registers a customer through the enrollment form; returns their phone and card page URL. */
async function enroll(name) {
  const ctx = await context();
  const p = await ctx.newPage();
  const number = phone();
  await p.goto(`${base}/?lang=en`);
  await p.getByLabel('First name').fill(name);
  await p.getByLabel('Phone').fill(number);
  await p.getByLabel(/I agree/).check();
  await Promise.all([p.waitForURL(/\/c\/[a-z2-9]+/), p.getByRole('button', { name: 'Get my card' }).click()]);
  const cardNumber = (await p.getByTestId('card-number').textContent()).trim();
  const url = p.url();
  await ctx.close();
  return { phone: number, url, cardNumber };
}

async function logIn(p) {
  await p.goto(`${base}/admin/login?lang=en`);
  await p.getByLabel('E-mail').fill(ownerEmail);
  await p.getByLabel('Password').fill(ownerPassword);
  await Promise.all([p.waitForURL((u) => !u.pathname.startsWith('/admin/login')), p.getByRole('button', { name: 'Log in' }).click()]);
}

async function screenshot(p, name) {
  if (!shots) return;
  for (const width of [320, 390, 1280]) {
    await p.setViewportSize({ width, height: width < 1000 ? 844 : 900 });
    await p.screenshot({ path: join(shots, `${name}-${width}.png`), fullPage: true });
  }
  await p.setViewportSize({ width: 390, height: 844 });
}

async function noSidewaysScroll(p, what) {
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${what} is ${overflow}px wider than the phone screen`);
}

test('a cashier scans a card with the phone camera and credits a purchase of 450,50', async () => {
  const card = await enroll('Anna');
  writeQrClip(clip, card.url);
  const ctx = await context({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await ctx.newPage();
  await logIn(p);
  await p.goto(`${base}/admin/cashier?lang=en`);
  await noSidewaysScroll(p, 'the cashier screen');
  await screenshot(p, 'cashier-empty');

  const scan = p.getByRole('button', { name: 'Scan' });
  await assert.doesNotReject(scan.waitFor({ state: 'visible' }), 'the Scan button shows with JavaScript');
  await Promise.all([p.waitForURL(/\/admin\/cashier\?card=/, { timeout: 20000 }), scan.click()]);

  assert.equal(await p.getByTestId('holder').textContent(), 'Anna');
  assert.equal(await p.getByTestId('card-number').textContent(), card.cardNumber);
  assert.equal(await p.getByTestId('balance').textContent(), '100');
  await screenshot(p, 'cashier-card');
  await p.getByLabel(/Purchase amount/).fill('450,50');
  await Promise.all([p.waitForLoadState('domcontentloaded'), p.getByRole('button', { name: 'Earn points' }).click()]);
  await p.getByTestId('result-points').waitFor();

  const credited = Number(await p.getByTestId('result-points').textContent());
  assert.ok(credited > 0, 'points were credited');
  assert.equal(Number(await p.getByTestId('result-balance').textContent()), 100 + credited);
  await noSidewaysScroll(p, 'the answer');
  await screenshot(p, 'cashier-result');

  // Reloading the answer re-sends the form: it is applied once.
  p.once('dialog', (d) => d.accept());
  await p.reload();
  await p.getByTestId('result-balance').waitFor();
  assert.equal(Number(await p.getByTestId('result-balance').textContent()), 100 + credited);
  await ctx.close();
});

test('a manager finds the customer by phone and adjusts the balance with a reason', async () => {
  const card = await enroll('Boris');
  const ctx = await context({ viewport: { width: 1280, height: 900 } });
  const p = await ctx.newPage();
  await logIn(p);
  await p.goto(`${base}/admin/customers?lang=en`);
  await screenshot(p, 'customers-list');

  await p.getByLabel('Phone, name, e-mail or card number').fill(card.phone.replace('+7 ', '8 '));
  await Promise.all([p.waitForURL(/q=/), p.getByRole('button', { name: 'Search' }).click()]);
  await Promise.all([p.waitForURL(/\/admin\/customers\/[a-z2-9]+$/), p.getByRole('link', { name: 'Boris' }).click()]);
  assert.equal(await p.getByTestId('balance').textContent(), '100');
  await screenshot(p, 'customer-detail');

  await p.getByLabel(/^Points/).fill('250');
  await p.getByLabel('Reason').fill('Lost receipt');
  await Promise.all([p.waitForURL(/adjust/), p.getByRole('button', { name: 'Preview' }).click()]);
  assert.equal(await p.getByTestId('preview').textContent(), 'The balance goes from 100 to 350.');
  await screenshot(p, 'customer-adjust');
  await Promise.all([p.waitForURL(/done=adjusted/), p.getByRole('button', { name: 'Confirm the adjustment' }).click()]);
  assert.equal(await p.getByTestId('balance').textContent(), '350');
  await ctx.close();
});

test('the cashier and customers screens work with JavaScript turned off', async () => {
  const card = await enroll('Vera');
  const ctx = await context({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  const p = await ctx.newPage();
  await logIn(p);
  await p.goto(`${base}/admin/cashier?lang=en`);
  assert.equal(await p.getByRole('button', { name: 'Scan' }).isVisible(), false, 'no Scan button without a script');
  await p.getByLabel(/Card number, phone or scanned code/).fill(card.cardNumber);
  await Promise.all([p.waitForURL(/card=/), p.getByRole('button', { name: 'Find' }).click()]);
  assert.equal(await p.getByTestId('holder').textContent(), 'Vera');
  await p.getByLabel(/Purchase amount/).fill('1 000.00');
  await Promise.all([p.waitForLoadState('domcontentloaded'), p.getByRole('button', { name: 'Earn points' }).click()]);
  const credited = Number(await p.getByTestId('result-points').textContent());
  assert.ok(credited > 0);

  await p.goto(`${base}/admin/customers?lang=en`);
  await p.getByLabel('Phone, name, e-mail or card number').fill(card.cardNumber);
  await Promise.all([p.waitForURL(/q=/), p.getByRole('button', { name: 'Search' }).click()]);
  await Promise.all([p.waitForURL(/\/admin\/customers\/[a-z2-9]+$/), p.getByRole('link', { name: 'Vera' }).click()]);
  assert.equal(Number(await p.getByTestId('balance').textContent()), 100 + credited);
  await ctx.close();
});

test('an owner creates a program and corrects its rules where the editor points', async () => {
  const slug = `bakery-${Math.floor(Math.random() * 1e6)}`;
  const ctx = await context({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await ctx.newPage();
  await logIn(p);
  await p.goto(`${base}/admin/programs?lang=en`);
  await p.getByLabel('Id').fill(slug);
  await p.getByLabel('Name').fill('Bakery on the corner');
  await p.getByLabel('Currency').fill('EUR');
  await Promise.all([p.waitForURL(new RegExp(`/admin/programs/${slug}$`)), p.getByRole('button', { name: 'Create the program' }).click()]);
  await noSidewaysScroll(p, 'a program');
  await screenshot(p, 'program-settings');
  await p.goto(`${base}/admin/programs?lang=en`);
  const row = p.locator(`#program-${slug}`);
  assert.match(await row.textContent(), /Bakery on the corner[\s\S]*EUR[\s\S]*active/);
  assert.equal(await row.getByRole('link', { name: /Registration form/ }).getAttribute('href'), `/p/${slug}`);
  await noSidewaysScroll(p, 'the programs list');
  await screenshot(p, 'programs-list');

  await row.getByRole('link', { name: 'Rules' }).click();
  await p.waitForURL(new RegExp(`/admin/programs/${slug}/rules$`));
  await Promise.all([p.waitForLoadState('domcontentloaded'), p.getByRole('button', { name: 'Add a tier' }).click()]);
  const fifth = p.locator('#tier-4');
  await fifth.getByLabel('Id').fill('diamond');
  await fifth.getByLabel('Name in Russian').fill('Бриллиант');
  await fifth.getByLabel('Name in English').fill('Diamond');
  await fifth.getByLabel('From points earned').fill('2000');
  await fifth.getByLabel('Cashback, %').fill('22.5');
  await Promise.all([p.waitForLoadState('domcontentloaded'), p.getByRole('button', { name: 'Save the rules' }).click()]);
  assert.equal(await p.locator('#e-tier_4_threshold').textContent(), "Make this threshold higher than the previous tier's.");
  assert.equal(await fifth.getByLabel('From points earned').getAttribute('aria-invalid'), 'true');
  await noSidewaysScroll(p, 'the rules editor');
  await screenshot(p, 'program-rules-errors');

  await fifth.getByLabel('From points earned').fill('5000');
  await Promise.all([p.waitForURL(/saved=1/), p.getByRole('button', { name: 'Save the rules' }).click()]);
  assert.match(await p.getByRole('status').textContent(), /rules are saved/);
  assert.equal(await p.locator('#tier-4').getByLabel('Cashback, %').inputValue(), '22.5');
  await screenshot(p, 'program-rules');
  await ctx.close();
});
