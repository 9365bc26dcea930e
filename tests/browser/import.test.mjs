// Importing customers from the staff console in a real browser: the owner uploads a CSV file,
// the dry run's report appears by itself (htmx polls the progress), the import is started and
// its progress bar fills to 100 %. Run by scripts/test like admin.test.mjs (same variables).
// LOY_SCREENSHOT_DIR, when set, receives screenshots at 320, 390 and 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { base, launch, logIn, screenshot as shoot } from './support.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** Screenshots at 320, 390 and 1280 px, then back to a phone's width. */
const screenshot = (p, name) => shoot(p, name, { width: 390, height: 844 });

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
  await logIn(p);
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
