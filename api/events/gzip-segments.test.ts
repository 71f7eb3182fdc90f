import { randomBytes } from 'node:crypto';
import { crc32, gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { GZIP_HEADER, acceptsGzip, crc32Combine, gzipTrailer, segmentOf } from './gzip-segments.js';

describe('crc32Combine', () => {
  it('equals the CRC-32 of the concatenation, for lengths from 0 to past 2^32 bits', () => {
    for (const [la, lb] of [[0, 0], [0, 7], [5, 0], [1, 1], [300, 4_096], [70_000, 123_457]] as const) {
      const a = randomBytes(la);
      const b = randomBytes(lb);
      expect(crc32Combine(crc32(a), crc32(b), lb)).toBe(crc32(Buffer.concat([a, b])));
    }
  });
});

describe('gzip segments', () => {
  it('concatenate, in any order and with a piece repeated, into one gzip member that inflates strictly', () => {
    // Small pieces go out stored, large ones deflated; both kinds mix in one member.
    const pieces = [Buffer.from('retry: 2000\n\n'), Buffer.from(':\n\n'), randomBytes(40_000), Buffer.from('id: 7\nevent: job.queued\ndata: {}\n\n'.repeat(500)), Buffer.alloc(0), randomBytes(1_023)];
    const order = [0, 3, 1, 2, 1, 4, 3, 5];
    let crc = 0;
    let len = 0;
    const out: Buffer[] = [GZIP_HEADER.bytes];
    for (const i of order) {
      const seg = segmentOf(pieces[i]!);
      out.push(seg.bytes);
      crc = crc32Combine(crc, seg.crc, seg.len);
      len += seg.len;
    }
    out.push(gzipTrailer(crc, len));
    // gunzipSync checks the trailer's CRC and length: a wrong one throws.
    expect(gunzipSync(Buffer.concat(out)).equals(Buffer.concat(order.map((i) => pieces[i]!)))).toBe(true);
  });

  it("makes a shared buffer's segment once; small pieces are stored, large ones deflated", () => {
    const b = Buffer.from('x'.repeat(5_000));
    expect(segmentOf(b)).toBe(segmentOf(b));
    expect(segmentOf(b).bytes.length).toBeLessThan(50);
    expect(segmentOf(Buffer.from('x'.repeat(100))).bytes.length).toBe(105);
  });

  it('a wrong CRC in the trailer is caught by a strict inflater (the check above can fail)', () => {
    const seg = segmentOf(Buffer.from('hello'));
    expect(() => gunzipSync(Buffer.concat([GZIP_HEADER.bytes, seg.bytes, gzipTrailer(seg.crc ^ 1, seg.len)]))).toThrow();
  });
});

describe('acceptsGzip', () => {
  it.each([
    ['gzip, deflate', true],
    ['gzip, deflate, br, zstd', true],
    ['deflate, br', false],
    ['GZIP;q=0.5', true],
    ['gzip;q=0', false],
    ['*', true],
    ['*;q=0', false],
    ['gzip;q=0, *', false],
    ['identity', false],
    ['', false],
    [undefined, false],
  ])('%s → %s', (header, ok) => {
    expect(acceptsGzip(header)).toBe(ok);
  });
});
