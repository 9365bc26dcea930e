// The customer pages in a real browser: Debian's Chromium driven by playwright-core.
// Run by scripts/test against a `loy serve` it starts; LOY_BASE_URL says where.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const base = process.env.LOY_BASE_URL ?? 'http://127.0.0.1:8080';
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
});

function phone() {
  return '+7 9' + String(Math.floor(Math.random() * 1e9)).padStart(9, '0');
}

async function page(options = {}) {
  const context = await browser.newContext({ locale: 'en-US', ...options });
  return context.newPage();
}

test('a customer registers through the form and lands on the card page', async () => {
  const p = await page();
  await p.goto(`${base}/?lang=en`);
  await p.getByLabel('First name').fill('Anna');
  await p.getByLabel('Last name').fill('Ivanova');
  await p.getByLabel('Phone').fill(phone());
  await p.getByLabel('E-mail').fill('anna@example.com');
  await p.getByLabel(/I agree/).check();
  await Promise.all([p.waitForURL(/\/c\/[a-z2-9]+/), p.getByRole('button', { name: 'Get my card' }).click()]);

  await assert.doesNotReject(p.getByRole('heading', { name: 'Your loyalty card' }).waitFor());
  assert.equal(await p.getByTestId('member').textContent(), 'Anna I.');
  assert.equal(await p.getByTestId('balance').textContent(), '100');
  assert.match(await p.getByTestId('card-number').textContent(), /^\d{4} \d{4} \d{4} \d{4}$/);
  assert.equal(await p.getByTestId('till-qr').locator('svg').count(), 1, 'a QR code for the till');
  const apple = p.locator('a[href$="/card.pkpass"]');
  assert.equal(await apple.count(), 1, 'an Add to Apple Wallet button');
  const pass = await p.request.get(new URL(await apple.getAttribute('href'), p.url()).toString());
  assert.equal(pass.status(), 200);
  assert.equal(pass.headers()['content-type'], 'application/vnd.apple.pkpass');
  await p.context().close();
});

/** Registers a customer in `lang` and returns the card page's address. */
async function register(p, lang) {
  await p.goto(`${base}/?lang=${lang}`);
  await p.locator('#first_name').fill('Anna');
  await p.locator('#phone').fill(phone());
  await p.locator('input[name=consent]').check();
  await Promise.all([p.waitForURL(/\/c\/[a-z2-9]+/), p.locator('button[type=submit]').click()]);
  return p.url();
}

/** Whether `inner` lies within `outer` (boxes from boundingBox()), to a pixel. */
function inside(inner, outer) {
  return inner.x >= outer.x - 1 && inner.y >= outer.y - 1 &&
    inner.x + inner.width <= outer.x + outer.width + 1 && inner.y + inner.height <= outer.y + outer.height + 1;
}

for (const lang of ['en', 'ru']) {
  test(`the wallet badges hold their words at 320, 390 and 1280 px (${lang})`, async () => {
    const p = await page({ locale: lang === 'ru' ? 'ru-RU' : 'en-US' });
    const card = await register(p, lang);
    for (const width of [320, 390, 1280]) {
      await p.setViewportSize({ width, height: 900 });
      await p.goto(card);
      const badges = p.locator('.wallet-badge');
      assert.equal(await badges.count(), 2, 'Apple and Google (the test server has Google Wallet configured)');
      for (let i = 0; i < 2; i += 1) {
        const badge = badges.nth(i);
        const box = await badge.boundingBox();
        const text = await badge.getByTestId('badge-text').boundingBox();
        assert.ok(inside(text, box), `${lang} ${width}px: the words of badge ${i} stay inside it`);
        assert.ok(box.x >= 0 && box.x + box.width <= width, `${lang} ${width}px: badge ${i} fits the screen`);
        assert.ok(box.height >= 44, 'large enough to tap');
      }
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${lang} ${width}px: the page is ${overflow}px wider than the screen`);
      // A phone shows the till's code; a wide screen the page's address to carry it to a phone.
      const phoneSized = width < 768;
      assert.equal(await p.getByTestId('till-qr').isVisible(), phoneSized, `${width}px: till code`);
      assert.equal(await p.getByTestId('handoff').isVisible(), !phoneSized, `${width}px: the page's QR`);
    }
    await p.context().close();
  });
}

test("a customer's invitation link opens the form with the code filled in", async () => {
  const p = await page();
  await register(p, 'en');
  const code = (await p.getByTestId('referral-code').textContent()).trim();
  await p.getByTestId('referral-link').click();
  await p.waitForURL(/\/\?ref=/);
  assert.equal(await p.getByLabel(/Invitation code/).inputValue(), code);
  await p.context().close();
});

test('mistakes are shown next to their fields and what was typed is kept', async () => {
  const p = await page();
  await p.goto(`${base}/?lang=en`);
  await p.getByLabel('First name').fill('Olga');
  await p.getByLabel('Phone').fill('+8 912 345 67 89');
  await p.getByLabel('E-mail').fill('olga@');
  await p.getByRole('button', { name: 'Get my card' }).click();
  await p.waitForLoadState('domcontentloaded');

  assert.match(await p.locator('#phone-error').textContent(), /No country has this code/);
  assert.match(await p.locator('#email-error').textContent(), /e-mail address/);
  assert.match(await p.locator('#consent-error').textContent(), /agree/);
  assert.equal(await p.getByLabel('Phone').getAttribute('aria-invalid'), 'true');
  assert.equal(await p.getByLabel('Phone').inputValue(), '+8 912 345 67 89');
  assert.equal(await p.getByLabel('First name').inputValue(), 'Olga');
  assert.equal(await p.getByLabel('E-mail').inputValue(), 'olga@');
  assert.equal(await p.getByRole('alert').count(), 1);
  await p.context().close();
});

test('the form speaks Russian to a Russian browser', async () => {
  const p = await page({ locale: 'ru-RU' });
  await p.goto(`${base}/`);
  await assert.doesNotReject(p.getByRole('heading', { name: 'Получите карту лояльности' }).waitFor());
  assert.equal(await p.locator('html').getAttribute('lang'), 'ru');
  await p.getByRole('link', { name: 'English' }).click();
  await assert.doesNotReject(p.getByRole('heading', { name: 'Get your loyalty card' }).waitFor());
  await p.context().close();
});

test('registration works with JavaScript turned off', async () => {
  const p = await page({ javaScriptEnabled: false });
  await p.goto(`${base}/?lang=en`);
  await p.getByLabel('First name').fill('Ivan');
  await p.getByLabel('Phone').fill(phone());
  await p.getByLabel(/I agree/).check();
  await Promise.all([p.waitForURL(/\/c\//), p.getByRole('button', { name: 'Get my card' }).click()]);
  assert.equal(await p.getByTestId('member').textContent(), 'Ivan');
  await p.context().close();
});

test('a lost card leads to staff when e-mail is off, and the form promises no mail', async () => {
  const p = await page();
  await p.goto(`${base}/?lang=en`);
  assert.equal(await p.getByText('We send the link to your card here').count(), 0, 'no e-mail promise without SMTP');
  await Promise.all([p.waitForURL(/\/recover/), p.getByRole('link', { name: 'Lost your card?' }).click()]);
  await assert.doesNotReject(p.getByRole('heading', { name: 'Lost your card?' }).waitFor());
  assert.match(await p.locator('main').textContent(), /Ask staff at the till/);
  assert.equal(await p.locator('form[action^="/recover"]').count(), 0, 'no form that would promise a mail');
  await p.context().close();
});

test('the pages fit a phone screen without sideways scrolling', async () => {
  const p = await page({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  await p.goto(`${base}/?lang=en`);
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the form is ${overflow}px wider than the screen`);
  const box = await p.getByRole('button', { name: 'Get my card' }).boundingBox();
  assert.ok(box.height >= 44, 'the button is large enough to tap');
  await p.context().close();
});

test('the pages break no rule of their Content Security Policy and the card keeps its colours', async () => {
  const p = await page();
  const violations = [];
  p.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
  });
  const response = await p.goto(`${base}/?lang=en`);
  assert.match(response.headers()['content-security-policy'], /default-src 'none'/);
  await p.getByLabel('First name').fill('Anna');
  await p.getByLabel('Phone').fill(phone());
  await p.getByLabel(/I agree/).check();
  await Promise.all([p.waitForURL(/\/c\/[a-z2-9]+/), p.getByRole('button', { name: 'Get my card' }).click()]);
  const background = await p.locator('section.card').evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.notEqual(background, 'rgba(0, 0, 0, 0)', 'the program colour applies (style attributes are allowed)');
  const stylesheets = await p.evaluate(() => document.styleSheets.length);
  assert.ok(stylesheets >= 1, 'the stylesheet loads');
  assert.deepEqual(violations, []);
});
