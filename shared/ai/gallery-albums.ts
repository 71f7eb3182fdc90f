import { z } from 'zod';
import type { VisionUsage } from './provider.js';

/** The strict Structured Outputs schema every gallery.group answer must follow. */
export const GALLERY_SCHEMA = {
  type: 'object',
  properties: {
    albums: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          title: { type: 'string' },
          description: { type: 'string' },
          images: { type: 'array', items: { type: 'string' } },
        },
        required: ['title', 'description', 'images'],
        additionalProperties: false,
      },
    },
  },
  required: ['albums'],
  additionalProperties: false,
} as const;

/** The schema's name as the model sees it. */
export const GALLERY_SCHEMA_NAME = 'gallery_albums';

/** What the model is told, before the optional hint. */
export const GALLERY_INSTRUCTIONS =
  'Group these photos into albums by theme. Each image is introduced by a text line naming its storage key. ' +
  'Put every image in exactly one album, refer to images only by the storage keys given, keep a sensible order ' +
  'inside each album, and give each album a short title and a one-sentence theme description.';

const Albums = z
  .object({
    albums: z.array(z.object({ title: z.string(), description: z.string(), images: z.array(z.string()) }).strict()),
  })
  .strict();

/** One album of a gallery: its images are storage keys, in display order. */
export type Album = z.output<typeof Albums>['albums'][number];

/** The albums when `answer` places every key of `keys` in exactly one album and names no other; the reason otherwise. */
export function checkAlbums(answer: unknown, keys: readonly string[]): { ok: true; albums: Album[] } | { ok: false; reason: string } {
  const parsed = Albums.safeParse(answer);
  if (!parsed.success) return { ok: false, reason: `the answer does not match the album schema: ${parsed.error.issues[0]?.message ?? 'invalid'}` };
  const wanted = new Set(keys);
  const seen = new Set<string>();
  for (const album of parsed.data.albums) {
    for (const key of album.images) {
      if (!wanted.has(key)) return { ok: false, reason: `album "${album.title}" names an unknown image ${key}` };
      if (seen.has(key)) return { ok: false, reason: `image ${key} is in more than one album (or twice in one)` };
      seen.add(key);
    }
  }
  const missing = keys.filter((k) => !seen.has(k));
  if (missing.length) return { ok: false, reason: `${missing.length} image(s) are in no album: ${missing.slice(0, 5).join(', ')}` };
  return { ok: true, albums: parsed.data.albums.filter((a) => a.images.length > 0) };
}

/** What a succeeded gallery.group job stores as its result. */
export interface GalleryResult {
  albums: Album[];
  /** True when the model failed for good and one album holds every image in input order. */
  fallback: boolean;
  /** Why the fallback was used: the model's error code and message, or the rule its answer broke. */
  fallback_reason?: { code: string; message: string };
  provider: string;
  model: string;
  usage?: VisionUsage;
}
