import { createHash } from 'node:crypto';

/** Most albums the fake provider makes, however many images it is given. */
const MAX_FAKE_ALBUMS = 4;
// Roughly this many images per album, so small galleries get one or two albums.
const IMAGES_PER_ALBUM = 3;
const THEMES = ['Golden hour', 'City streets', 'Quiet interiors', 'Open water'] as const;

/**
 * A grouping made up from the images' bytes alone: each image goes to the album its bytes' SHA-256
 * picks, identical images share an album, input order is kept inside each album, empty albums are dropped.
 */
export function fakeGrouping(images: readonly { key: string; bytes: Uint8Array }[]) {
  const count = Math.max(1, Math.min(MAX_FAKE_ALBUMS, Math.ceil(images.length / IMAGES_PER_ALBUM)));
  const buckets = Array.from({ length: count }, () => [] as string[]);
  for (const image of images) {
    const digest = createHash('sha256').update(image.bytes).digest();
    buckets[digest.readUInt32BE(0) % count]!.push(image.key);
  }
  const albums = buckets
    .map((keys, i) => ({ title: THEMES[i]!, description: `Images the fake provider filed under "${THEMES[i]!}".`, images: keys }))
    .filter((album) => album.images.length > 0);
  return { albums };
}
