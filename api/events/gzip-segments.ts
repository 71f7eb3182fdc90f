import { constants, crc32, deflateRawSync } from 'node:zlib';

/**
 * gzip for event streams without a compressor per connection. Each piece of a stream (a chunk
 * of events, a keep-alive, a replay page) is deflated on its own and ends on a sync flush, so it
 * holds no back-reference to earlier bytes: pieces concatenate into one valid deflate stream in
 * any order. A chunk that a thousand subscribers receive is therefore compressed once and its
 * bytes written to each of them, and a connection keeps only a running CRC and length for the
 * gzip trailer (RFC 1952), combined per piece rather than computed over the bytes again.
 */

/** One deflated piece: its bytes, and the CRC-32 and length of what they inflate to. */
export interface Segment {
  bytes: Buffer;
  crc: number;
  len: number;
}

/** Level 1: on event JSON, as small as level 6 within a few per cent, at several times the speed. */
const LEVEL = 1;
/**
 * Pieces shorter than this go out as stored (uncompressed) blocks: a lone event or a keep-alive
 * would shrink by a few dozen bytes, while a compressor costs tens of microseconds to set up.
 */
const STORE_BELOW = 1_024;

/** gzip member header: deflate, no name, no mtime, unknown OS. */
export const GZIP_HEADER: Segment = { bytes: Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]), crc: 0, len: 0 };

const cache = new WeakMap<Buffer, Segment>();

/** The segment of `raw`, made once per buffer: every stream given the same buffer shares it. */
export function segmentOf(raw: Buffer): Segment {
  let seg = cache.get(raw);
  if (!seg) {
    seg = { bytes: raw.length < STORE_BELOW ? stored(raw) : deflateRawSync(raw, { level: LEVEL, finishFlush: constants.Z_SYNC_FLUSH }), crc: crc32(raw), len: raw.length };
    cache.set(raw, seg);
  }
  return seg;
}

/** A non-final stored block (RFC 1951 §3.2.4), byte-aligned like a sync flush's output. */
function stored(raw: Buffer): Buffer {
  const b = Buffer.allocUnsafe(5 + raw.length);
  b[0] = 0;
  b.writeUInt16LE(raw.length, 1);
  b.writeUInt16LE(~raw.length & 0xffff, 3);
  raw.copy(b, 5);
  return b;
}

/** The end of a gzip member: an empty final block, then the CRC-32 and length (mod 2³²) of everything inflated. */
export function gzipTrailer(crc: number, len: number): Buffer {
  const b = Buffer.from([0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
  b.writeUInt32LE(crc >>> 0, 2);
  b.writeUInt32LE(len % 2 ** 32, 6);
  return b;
}

// CRC-32 of a concatenation from the CRCs of its parts (zlib's crc32_combine): polynomial
// arithmetic modulo the CRC polynomial, with x^(2^k) precomputed, so a combine costs a few hundred
// operations whatever the lengths.
const POLY = 0xedb88320;

/** a·b modulo the CRC polynomial (bit-reflected). */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

const X2N = new Uint32Array(32);
{
  let p = 0x40000000; // x^1
  X2N[0] = p;
  for (let k = 1; k < 32; k++) X2N[k] = p = multModP(p, p);
}

/** x^(n·2^k) modulo the CRC polynomial. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2) p = multModP(X2N[k & 31]!, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** The CRC-32 of A followed by B, given crc(A), crc(B) and B's length. */
export function crc32Combine(crcA: number, crcB: number, lenB: number): number {
  return (multModP(x2nModP(lenB, 3), crcA >>> 0) ^ crcB) >>> 0;
}

/**
 * True when an Accept-Encoding header accepts gzip: listed (or `*`) with a non-zero q. An explicit
 * `gzip;q=0` refuses it even when `*` is there.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star = false;
  for (const part of header.split(',')) {
    const [name = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const ok = q === undefined || Number(q.slice(2)) > 0;
    if (name === 'gzip' || name === 'x-gzip') return ok;
    if (name === '*') star = ok;
  }
  return star;
}
