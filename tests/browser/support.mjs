// What the browser tests share: where the server is, launching Debian's Chromium, logging in as
// the owner `scripts/test` made with `loy staff add`, screenshots at 320, 390 and 1280 px
// (into LOY_SCREENSHOT_DIR when set), and layout checks.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const base = process.env.LOY_BASE_URL ?? 'http://127.0.0.1:8080';
export const ownerEmail = process.env.LOY_OWNER_EMAIL;
export const ownerPassword = process.env.LOY_OWNER_PASSWORD;
const shots = process.env.LOY_SCREENSHOT_DIR;

/**
 * Chromium as every test runs it; the console tests also need the owner's login. With `camera`,
 * the path of a Y4M clip (see qr-clip.mjs), a page that starts the camera is shown that clip.
 */
export async function launch({ needsOwner = true, camera } = {}) {
  if (needsOwner) {
    assert.ok(ownerEmail && ownerPassword, 'LOY_OWNER_EMAIL and LOY_OWNER_PASSWORD name the owner made by `loy staff add`');
  }
  if (shots) mkdirSync(shots, { recursive: true });
  const args = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
  if (camera) {
    args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${camera}`);
  }
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args });
}

/** Logs `p` in to the console as the owner. */
export async function logIn(p) {
  await p.goto(`${base}/admin/login?lang=en`);
  await p.getByLabel('E-mail').fill(ownerEmail);
  await p.getByLabel('Password').fill(ownerPassword);
  await Promise.all([p.waitForURL((u) => !u.pathname.startsWith('/admin/login')), p.getByRole('button', { name: 'Log in' }).click()]);
}

/** Full-page screenshots of `p` at 320, 390 and 1280 px, then back to `restore`. */
export async function screenshot(p, name, restore = { width: 1280, height: 900 }) {
  if (!shots) return;
  for (const width of [320, 390, 1280]) {
    await p.setViewportSize({ width, height: width < 1000 ? 844 : 900 });
    await p.screenshot({ path: join(shots, `${name}-${width}.png`), fullPage: true });
  }
  await p.setViewportSize(restore);
}

/** Whether `inner` lies within `outer` (boxes from boundingBox()), to a pixel. */
export function inside(inner, outer) {
  return inner.x >= outer.x - 1 && inner.y >= outer.y - 1 &&
    inner.x + inner.width <= outer.x + outer.width + 1 && inner.y + inner.height <= outer.y + outer.height + 1;
}

/** A 600×200 PNG drawn on a canvas in the page (Chromium encodes it): `fill` behind a `mark` shape. */
export async function logoPng(p, fill = '#f4c462', mark = '#1c2b4a') {
  const dataUrl = await p.evaluate(([f, m]) => {
    const canvas = document.createElement('canvas');
    canvas.width = 600;
    canvas.height = 200;
    const g = canvas.getContext('2d');
    g.fillStyle = f;
    g.fillRect(0, 0, 600, 200);
    g.fillStyle = m;
    g.fillRect(40, 40, 520, 120);
    return canvas.toDataURL('image/png');
  }, [fill, mark]);
  return Buffer.from(dataUrl.split(',')[1], 'base64');
}
