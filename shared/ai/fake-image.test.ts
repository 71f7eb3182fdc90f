import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { FAKE_IMAGE_SIDE, fakeEdit, solidPng } from './fake-image.js';

/** A `width`×`height` RGBA PNG with a gradient, so channel rotations are visible. */
function gradientPng(width: number, height: number, alpha = 255): Buffer {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      png.data[i] = (x * 17) & 0xff;
      png.data[i + 1] = (y * 29) & 0xff;
      png.data[i + 2] = (x * y * 7 + 40) & 0xff;
      png.data[i + 3] = alpha;
    }
  return PNG.sync.write(png);
}

function read(bytes: Buffer): PNG {
  return PNG.sync.read(bytes);
}

describe('fakeEdit', () => {
  it('transforms a PNG into a PNG of the same size, deterministically per image and prompt', () => {
    const input = gradientPng(13, 7);
    const a = fakeEdit(input, 'make it red');
    const out = read(a);
    expect([out.width, out.height]).toEqual([13, 7]);
    expect(Buffer.from(out.data).equals(Buffer.from(read(input).data))).toBe(false);
    expect(fakeEdit(input, 'make it red').equals(a)).toBe(true);
    expect(Buffer.from(read(fakeEdit(input, 'make it blue')).data).equals(Buffer.from(out.data))).toBe(false);
  });

  it('keeps alpha and changes only the transparent area of a same-size PNG mask', () => {
    const input = gradientPng(4, 2);
    const maskPng = new PNG({ width: 4, height: 2 });
    maskPng.data.fill(255);
    for (let i = 0; i < 4; i++) maskPng.data[i * 4 + 3] = 0; // top row transparent: edit it
    const out = read(fakeEdit(input, 'x', PNG.sync.write(maskPng))).data;
    const src = read(input).data;
    expect(Buffer.from(out.subarray(16)).equals(Buffer.from(src.subarray(16)))).toBe(true);
    expect(Buffer.from(out.subarray(0, 16)).equals(Buffer.from(src.subarray(0, 16)))).toBe(false);
    for (let i = 3; i < out.length; i += 4) expect(out[i]).toBe(255);
  });

  it('transforms a JPEG into a PNG of the same size', () => {
    const width = 16;
    const height = 9;
    const data = Buffer.alloc(width * height * 4);
    for (let i = 0; i < data.length; i += 4) data.set([(i * 3) & 0xff, 120, 200, 255], i);
    const input = jpeg.encode({ width, height, data }, 90).data;
    const out = read(fakeEdit(input, 'sepia'));
    expect([out.width, out.height]).toEqual([width, height]);
    expect(fakeEdit(input, 'sepia').equals(fakeEdit(input, 'sepia'))).toBe(true);
  });

  it('falls back to a small solid PNG for inputs it cannot decode', () => {
    for (const input of [Buffer.from('RIFF\0\0\0\0WEBPVP8 '), Buffer.from('not an image'), solidPng([1, 2, 3]).subarray(0, 20)]) {
      const bytes = fakeEdit(input, 'x');
      const out = read(bytes);
      expect([out.width, out.height]).toEqual([FAKE_IMAGE_SIDE, FAKE_IMAGE_SIDE]);
      expect(new Set(Array.from({ length: out.width * out.height }, (_, i) => out.data.readUInt32BE(i * 4))).size).toBe(1);
      expect(fakeEdit(input, 'x').equals(bytes)).toBe(true);
    }
  });
});
