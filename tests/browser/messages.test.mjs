// Messages from the staff console in a real browser: the owner writes a message in both
// languages, previews it (the audience is counted, the lock-screen texts are shown), sends it and
// watches its progress reach 100 % by itself (htmx polls it). Run by scripts/test like
// admin.test.mjs (same variables). LOY_SCREENSHOT_DIR, when set, receives screenshots at 320,
// 390 and 1280 px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { base, launch, logIn, screenshot as shoot } from './support.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const screenshot = (p, name) => shoot(p, name, { width: 390, height: 844 });

async function noSidewaysScroll(p, what) {
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${what} is ${overflow}px wider than the phone screen`);
}

test('an owner previews a message, sends it and watches it reach every card', async () => {
  const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await ctx.newPage();
  // A customer to write to, registered through the form.
  await p.goto(`${base}/?lang=en`);
  await p.locator('#first_name').fill('Vera');
  await p.locator('#phone').fill(`+7 916 ${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`);
  await p.locator('input[name=consent]').check();
  await Promise.all([p.waitForURL(/\/c\/[a-z2-9]+/), p.locator('button[type=submit]').click()]);

  await logIn(p);
  await p.goto(`${base}/admin/messages`);
  await noSidewaysScroll(p, 'the messages page');
  await p.getByLabel('Title').first().fill('Двойные баллы');
  await p.getByLabel(/Text \(up to 200/).first().fill('Двойные баллы в эти выходные');
  await p.getByLabel('Title').nth(1).fill('Double points');
  await p.getByLabel(/Text \(up to 200/).nth(1).fill('Double points this weekend');
  await p.getByRole('button', { name: 'Count and preview' }).click();
  await p.locator('#preview').waitFor();
  const cards = Number(await p.locator('#audience-size').textContent());
  assert.ok(cards >= 1, `the audience is counted: ${cards}`);
  assert.match(await p.locator('#preview').textContent(), /Double points this weekend/);
  assert.match(await p.locator('#preview').textContent(), /Двойные баллы в эти выходные/);
  await noSidewaysScroll(p, 'the preview');
  await screenshot(p, 'messages-preview');

  await Promise.all([p.waitForURL(/\/admin\/messages\/msg_/), p.getByRole('button', { name: 'Send' }).click()]);
  // Without APNs or Google nothing is owed to a wallet once the fan-out is done.
  await p.locator('#message-progress[data-state="sent"]').waitFor({ timeout: 30000 });
  await p.locator('#message-percent', { hasText: '100 %' }).waitFor({ timeout: 30000 });
  await noSidewaysScroll(p, 'the message page');
  await screenshot(p, 'message-sent');
  await ctx.close();
});

test("an owner sets when automatic messages go out: an hour in the program's time zone", async () => {
  const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 320, height: 844 }, isMobile: true, hasTouch: true });
  const p = await ctx.newPage();
  await logIn(p);
  await p.goto(`${base}/admin/programs/default`);
  await p.getByLabel('Time zone').selectOption('Asia/Vladivostok');
  await Promise.all([p.waitForURL(/saved=1/), p.getByRole('button', { name: 'Save' }).click()]);
  assert.equal(await p.getByLabel('Time zone').inputValue(), 'Asia/Vladivostok');
  await noSidewaysScroll(p, "the program's settings");
  await screenshot(p, 'program-settings');

  await p.goto(`${base}/admin/messages/automatic`);
  await noSidewaysScroll(p, 'the automatic messages page');
  assert.match(await p.locator('#auto-time-zone').textContent(), /Asia\/Vladivostok/);
  await p.getByLabel('Hour').selectOption('9');
  await p.getByLabel('Send it').first().check();
  await p.getByLabel('Text in English').first().fill('Happy birthday!');
  await Promise.all([p.waitForURL(/saved=1/), p.getByRole('button', { name: 'Save' }).click()]);
  await p.locator('#auto-saved').waitFor();
  assert.equal(await p.getByLabel('Hour').inputValue(), '9');
  await noSidewaysScroll(p, 'the saved automatic messages page');
  await screenshot(p, 'messages-automatic');
  // The other tests' days are UTC days again.
  await p.goto(`${base}/admin/programs/default`);
  await p.getByLabel('Time zone').selectOption('UTC');
  await Promise.all([p.waitForURL(/saved=1/), p.getByRole('button', { name: 'Save' }).click()]);
  await ctx.close();
});
