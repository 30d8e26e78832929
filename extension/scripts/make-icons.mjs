// Draws the toolbar icons (a speech bubble with three "typing" dots) into
// icons/iconN.png, so the repository needs no image editor or downloaded art.
//
//   node scripts/make-icons.mjs      # from extension/; rewrites icons/*.png
import { writeFileSync } from "node:fs";
import { deflateSync } from "node:zlib";

const SIZES = [16, 32, 48, 128];
const BUBBLE = [91, 63, 214]; // --accent in popup.css
const DOT = [255, 255, 255];

// Coverage of one point in a unit square: 1 = dot, 2 = bubble, 0 = outside.
function shapeAt(x, y) {
  const dots = [0.3, 0.5, 0.7];
  if (dots.some((cx) => (x - cx) ** 2 + (y - 0.45) ** 2 < 0.075 ** 2)) return 1;
  const inBody = (x - 0.5) ** 2 / 0.46 ** 2 + (y - 0.45) ** 2 / 0.38 ** 2 < 1;
  // The tail: a triangle under the body's lower left.
  const inTail = y > 0.7 && y < 0.95 && x > 0.18 && x < 0.45 && x - 0.18 < (0.95 - y) * 1.1;
  return inBody || inTail ? 2 : 0;
}

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function png(size) {
  const samples = 4; // per axis, for anti-aliased edges
  const rows = [];
  for (let py = 0; py < size; py++) {
    const row = [0]; // filter type: none
    for (let px = 0; px < size; px++) {
      let dot = 0;
      let bubble = 0;
      for (let sy = 0; sy < samples; sy++) {
        for (let sx = 0; sx < samples; sx++) {
          const shape = shapeAt((px + (sx + 0.5) / samples) / size, (py + (sy + 0.5) / samples) / size);
          if (shape === 1) dot++;
          else if (shape === 2) bubble++;
        }
      }
      const total = dot + bubble;
      const color = BUBBLE.map((c, i) => (total ? Math.round((c * bubble + DOT[i] * dot) / total) : 0));
      row.push(...color, Math.round((255 * total) / samples ** 2));
    }
    rows.push(Buffer.from(row));
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows), { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

for (const size of SIZES) {
  const path = new URL(`../icons/icon${size}.png`, import.meta.url);
  writeFileSync(path, png(size));
  console.log(`wrote icons/icon${size}.png`);
}
