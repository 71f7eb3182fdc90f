/** The image types the pipeline accepts from a fetch (what vision models and our storage read). */
export const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/heic', 'image/heif', 'image/avif'] as const;

/** One accepted image content type. */
export type ImageType = (typeof IMAGE_TYPES)[number];

// `image/jpg` and `image/pjpeg` are not registered but common enough on real servers.
const ALIASES: Record<string, ImageType> = { 'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg' };

/** The accepted image type a Content-Type header names (parameters and case ignored), or undefined. */
export function declaredImageType(header: string | undefined): ImageType | undefined {
  const mime = (header ?? '').split(';')[0]!.trim().toLowerCase();
  if ((IMAGE_TYPES as readonly string[]).includes(mime)) return mime as ImageType;
  return ALIASES[mime];
}

// ISO-BMFF major brands (ISO/IEC 23008-12 for HEIF, AV1 Image File Format for AVIF).
const HEIC_BRANDS = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'hevm', 'hevs']);
const HEIF_BRANDS = new Set(['mif1', 'msf1', 'mif2']);
const AVIF_BRANDS = new Set(['avif', 'avis']);

/** The accepted image type the first bytes announce (magic numbers), or undefined when they announce none. */
export function sniffImageType(bytes: Uint8Array): ImageType | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 32));
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  const ascii = b.toString('latin1');
  if (ascii.startsWith('GIF87a') || ascii.startsWith('GIF89a')) return 'image/gif';
  if (ascii.startsWith('RIFF') && ascii.slice(8, 12) === 'WEBP') return 'image/webp';
  if (ascii.slice(4, 8) === 'ftyp') {
    const brand = ascii.slice(8, 12);
    if (AVIF_BRANDS.has(brand)) return 'image/avif';
    if (HEIC_BRANDS.has(brand)) return 'image/heic';
    if (HEIF_BRANDS.has(brand)) return 'image/heif';
  }
  return undefined;
}
