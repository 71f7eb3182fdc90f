import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Width and height of the fake provider's fallback images (inputs it cannot decode), in pixels. */
export const FAKE_IMAGE_SIDE = 8;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}

/** A valid 8-bit RGB PNG of `side`×`side` pixels, all of one colour. */
export function solidPng(rgb: readonly [number, number, number], side = FAKE_IMAGE_SIDE): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: side }, () => rgb).flat())]);
  const raw = Buffer.concat(Array.from({ length: side }, () => row));
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff]);

interface Rgba {
  width: number;
  height: number;
  /** RGBA, 4 bytes a pixel, row-major. */
  data: Uint8Array;
}

/** Decodes a PNG or JPEG to RGBA; `undefined` for any other type or bytes that fail to decode. */
function decode(bytes: Uint8Array): Rgba | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    if (buf.subarray(0, 8).equals(SIGNATURE)) {
      const png = PNG.sync.read(buf);
      return { width: png.width, height: png.height, data: png.data };
    }
    if (buf.subarray(0, 3).equals(JPEG_MAGIC)) {
      const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: 50, maxMemoryUsageInMB: 256 });
      return { width: img.width, height: img.height, data: img.data };
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * The fake provider's "edit": a deterministic transform of the input, seeded by
 * SHA-256(image bytes, mask bytes, prompt).
 *
 * - PNG (via pngjs) and JPEG (via jpeg-js) inputs are decoded and every pixel's colour channels are
 *   rotated (by one or two places, from the hash) and XOR-tinted with three hash bytes; alpha is kept.
 *   The result is an RGBA PNG of the input's width and height.
 * - When the mask is a PNG of the same width and height, only pixels the mask marks for editing are
 *   changed: those whose mask alpha is 0 (fully transparent), as in OpenAI's image-edit API. Any other
 *   mask (another type or size, or undecodable) is ignored and the whole image is transformed.
 * - Inputs of any other type (webp, gif, heic, avif, ...) or that fail to decode fall back to
 *   {@link solidPng}: a {@link FAKE_IMAGE_SIDE}×{@link FAKE_IMAGE_SIDE} PNG whose colour is the first
 *   three hash bytes.
 */
export function fakeEdit(image: Uint8Array, prompt: string, mask?: Uint8Array): Buffer {
  const hash = createHash('sha256').update(image);
  if (mask) hash.update(mask);
  const digest = hash.update(prompt).digest();
  const input = decode(image);
  if (!input) return solidPng([digest[0]!, digest[1]!, digest[2]!]);

  const { width, height, data } = input;
  const maskPng = mask ? decodeMask(mask, width, height) : undefined;
  const shift = 1 + (digest[3]! % 2);
  const tint = [digest[4]!, digest[5]!, digest[6]!] as const;
  const out = new PNG({ width, height });
  out.data.set(data.subarray(0, width * height * 4));
  for (let i = 0; i < width * height * 4; i += 4) {
    if (maskPng && maskPng[i + 3] !== 0) continue;
    for (let c = 0; c < 3; c++) out.data[i + c] = data[i + ((c + shift) % 3)]! ^ tint[c]!;
  }
  return PNG.sync.write(out);
}

/** The RGBA pixels of a PNG mask of exactly `width`×`height`, else `undefined`. */
function decodeMask(mask: Uint8Array, width: number, height: number): Uint8Array | undefined {
  const buf = Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength);
  if (!buf.subarray(0, 8).equals(SIGNATURE)) return undefined;
  try {
    const png = PNG.sync.read(buf);
    return png.width === width && png.height === height ? png.data : undefined;
  } catch {
    return undefined;
  }
}
