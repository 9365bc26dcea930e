// A video clip of a QR code for Chromium's fake camera: a Y4M (YUV 4:2:0) file showing the
// code in black on white, the same frame repeated, as `--use-file-for-fake-video-capture`
// reads it. The camera scan test points the browser's camera at it.
import { writeFileSync } from 'node:fs';
import QRCode from 'qrcode';

/** Writes a `seconds`-long clip of `text` as a QR code to `path`. */
export function writeQrClip(path, text, { width = 640, height = 480, fps = 10, seconds = 3 } = {}) {
  const qr = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const size = qr.modules.size;
  const quiet = 4;
  const scale = Math.floor(Math.min(width, height) * 0.9 / (size + 2 * quiet));
  const side = (size + 2 * quiet) * scale;
  const left = Math.floor((width - side) / 2);
  const top = Math.floor((height - side) / 2);
  const luma = Buffer.alloc(width * height, 235);
  for (let row = 0; row < size; row++) {
    for (let col = 0; col < size; col++) {
      if (!qr.modules.get(row, col)) continue;
      for (let y = 0; y < scale; y++) {
        const start = (top + (row + quiet) * scale + y) * width + left + (col + quiet) * scale;
        luma.fill(16, start, start + scale);
      }
    }
  }
  const chroma = Buffer.alloc((width / 2) * (height / 2) * 2, 128);
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`);
  const frame = Buffer.concat([Buffer.from('FRAME\n'), luma, chroma]);
  const frames = Array.from({ length: fps * seconds }, () => frame);
  writeFileSync(path, Buffer.concat([header, ...frames]));
}
