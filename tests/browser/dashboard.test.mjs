// The dashboard on the console's home in a real browser: the charts drawn with the vendored
// uPlot from each chart's table (a canvas per chart, with the series' colour on it), the tables
// folded behind their summary; and without JavaScript, the tables shown open and no canvas.
// Run by scripts/test like the other browser tests (see admin.test.mjs for the environment).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { base, launch, logIn, screenshot } from './support.mjs';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** Registers a customer through the enrollment form, so today has a registration to draw. */
async function enroll(name) {
  const ctx = await browser.newContext({ locale: 'en-US' });
  const p = await ctx.newPage();
  const number = '+7 9' + String(Math.floor(Math.random() * 1e9)).padStart(9, '0');
  await p.goto(`${base}/?lang=en`);
  await p.getByLabel('First name').fill(name);
  await p.getByLabel('Phone').fill(number);
  await p.getByLabel(/I agree/).check();
  await Promise.all([p.waitForURL(/\/c\/[a-z2-9]+/), p.getByRole('button', { name: 'Get my card' }).click()]);
  await ctx.close();
}

/** How many pixels of each chart's canvas are painted, and how many in the first series' blue. */
async function painted(p) {
  return p.evaluate(() => Array.from(document.querySelectorAll('figure.chart')).map((figure) => {
    const canvas = figure.querySelector('canvas');
    if (!canvas) return { id: figure.dataset.chart, canvas: false, painted: 0, blue: 0 };
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    let blue = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0) painted++;
      // #1f5fd1, the first series' stroke (anti-aliasing blends it: a tolerance).
      if (data[i + 3] > 200 && Math.abs(data[i] - 0x1f) < 40 && Math.abs(data[i + 1] - 0x5f) < 40 && Math.abs(data[i + 2] - 0xd1) < 40) blue++;
    }
    return { id: figure.dataset.chart, canvas: true, painted, blue };
  }));
}

test('the dashboard draws every chart with uPlot and keeps the numbers in tables', async () => {
  await enroll('Dana');
  const ctx = await browser.newContext({ locale: 'en-US' });
  const p = await ctx.newPage();
  await logIn(p);
  await p.goto(`${base}/admin?lang=en&days=30`);
  // Today's registration is counted at once by "Update now" (the background round is a minute).
  await Promise.all([p.waitForURL(/updated=1/), p.getByRole('button', { name: 'Update now' }).click()]);
  await p.getByText('The figures are up to date.').waitFor();
  await p.waitForSelector('figure.chart.drawn canvas');
  const charts = await painted(p);
  assert.deepEqual(charts.map((c) => c.id), ['registrations', 'points', 'purchases', 'revenue', 'active', 'tiers', 'wallets', 'segments', 'messages']);
  for (const chart of charts) {
    assert.ok(chart.canvas, `${chart.id} has a canvas`);
    assert.ok(chart.painted > 500, `${chart.id} is drawn: ${chart.painted} pixels`);
  }
  for (const id of ['registrations', 'points', 'active', 'tiers']) {
    assert.ok(charts.find((c) => c.id === id).blue > 20, `${id} shows its data in the series colour`);
  }
  // The tables are still there for screen readers, folded behind their summary.
  const table = p.locator('#chart-registrations details table');
  assert.equal(await table.isVisible(), false);
  await p.locator('#chart-registrations summary').click();
  assert.ok(await table.isVisible());
  const today = new Date().toISOString().slice(0, 10);
  const registered = await p.locator(`#chart-registrations details tr:has(th:text-is("${today}")) td`).getAttribute('data-v');
  assert.ok(Number(registered) >= 1, `today's registration is counted: ${registered}`);
  // Every chart fits the page at a phone's width.
  await p.setViewportSize({ width: 320, height: 844 });
  await p.waitForTimeout(300);
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `no sideways scrolling at 320 px: ${overflow}`);
  await p.setViewportSize({ width: 1280, height: 900 });
  await screenshot(p, 'dashboard');
  await ctx.close();
});

test('without JavaScript the dashboard shows its tables', async () => {
  const ctx = await browser.newContext({ locale: 'en-US', javaScriptEnabled: false });
  const p = await ctx.newPage();
  await logIn(p);
  await p.goto(`${base}/admin?lang=en&days=7`);
  assert.equal(await p.locator('canvas').count(), 0);
  for (const id of ['registrations', 'points', 'purchases', 'revenue', 'active', 'tiers', 'wallets', 'segments', 'messages']) {
    assert.ok(await p.locator(`#chart-${id} table`).isVisible(), `${id}'s table is shown`);
    const csv = await p.locator(`#chart-${id} a.csv`).getAttribute('href');
    assert.match(csv, new RegExp(`^/admin/dashboard\\.csv\\?chart=${id}&program=default&from=`));
  }
  assert.equal(await p.locator('#chart-registrations tbody tr').count(), 7);
  await screenshot(p, 'dashboard-nojs');
  await ctx.close();
});
