// Importing customers from the staff console in a real browser: the owner uploads a CSV file,
// the dry run's report appears by itself (htmx polls the progress), the import is started and
// its progress bar fills to 100 %. Run by scripts/test like admin.test.mjs (same variables).
// LOY_SCREENSHOT_DIR, when set, receives screenshots at 320, 390 and 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.LOY_BASE_URL ?? 'http://127.0.0.1:8080';
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ownerEmail = process.env.LOY_OWNER_EMAIL;
const ownerPassword = process.env.LOY_OWNER_PASSWORD;
const shots = process.env.LOY_SCREENSHOT_DIR;
let browser;

before(async () => {
  assert.ok(ownerEmail && ownerPassword, 'LOY_OWNER_EMAIL and LOY_OWNER_PASSWORD name the owner made by `loy staff add`');
  browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  if (shots) mkdirSync(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
});

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

/** A semicolon-separated file of `n` customers with phones no other test uses, and two bad lines. */
function customersCsv(n) {
  const prefix = String(100 + Math.floor(Math.random() * 899));
  const lines = ['Имя;Фамилия;Телефон;Почта;Баланс'];
  for (let i = 0; i < n; i++) {
    lines.push(`Анна;Браузерова${i};+7 9${prefix}${String(i).padStart(6, '0')};;${i * 10}`);
  }
  lines.push('Без;Телефона;;;10');
  lines.push(`Минус;Баланс;+7 9${prefix}999999;;-5`);
  return lines.join('\n') + '\n';
}

test('an owner uploads a CSV file, reads the dry run and imports it with a progress bar', async () => {
  const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await ctx.newPage();
  await p.goto(`${base}/admin/login?lang=en`);
  await p.getByLabel('E-mail').fill(ownerEmail);
  await p.getByLabel('Password').fill(ownerPassword);
  await Promise.all([p.waitForURL((u) => !u.pathname.startsWith('/admin/login')), p.getByRole('button', { name: 'Log in' }).click()]);
  await p.goto(`${base}/admin/data`);
  await noSidewaysScroll(p, 'the data page');
  await screenshot(p, 'data');

  await p.getByLabel('CSV file').setInputFiles({ name: 'customers.csv', mimeType: 'text/csv', buffer: Buffer.from(customersCsv(300)) });
  await Promise.all([p.waitForURL(/\/admin\/data\/imports\/imp_/), p.getByRole('button', { name: 'Upload and check' }).click()]);
  // The page reloads by itself once the dry run is done.
  await p.locator('#import-progress[data-state="checked"]').waitFor({ timeout: 30000 });
  assert.equal(await p.locator('#count-created').textContent(), '300');
  assert.equal(await p.locator('#count-bad').textContent(), '2');
  await noSidewaysScroll(p, 'the report');
  await screenshot(p, 'import-checked');

  p.once('dialog', (d) => d.accept());
  await p.getByRole('button', { name: 'Start the import' }).click();
  await p.locator('#import-progress[data-state="done"]').waitFor({ timeout: 60000 });
  assert.equal(await p.locator('#import-percent').textContent(), '100 %');
  assert.equal(await p.locator('#count-created').textContent(), '300');
  await noSidewaysScroll(p, 'the finished import');
  await screenshot(p, 'import-done');
  await p.goto(`${base}/admin/data?lang=ru`);
  await screenshot(p, 'data-ru');
  await ctx.close();
});
