import { z } from 'zod';
import { DEFAULT_RETRY, type RetryPolicy } from './backoff.js';
import { isUuid } from './uuid.js';

/** What the queue needs to know about a kind, beyond its handler. */
export interface KindSpec<P extends z.ZodType = z.ZodType> {
  /** Validates the payload at enqueue (API edge) and again before the handler runs. */
  payload: P;
  /** Queue used when the producer names none. */
  queue: string;
  /** Attempts when the producer names none. */
  maxAttempts: number;
  /** The handler is aborted (and the attempt fails, retryably) after this long. */
  timeoutMs: number;
  retry: RetryPolicy;
  /** One-line description for the API's kind list. */
  description: string;
  /**
   * What a job of this kind is sold for, in credits (GOVERNOR_CREDIT_USD each). Present means the
   * kind is paid: the governor estimates, reserves and settles its cost. Absent (the default): free.
   */
  priceCredits?: number;
}

// PostgreSQL's jsonb refuses both U+0000 (SQLSTATE 22P05) and unpaired surrogates (22P02), which
// JSON.parse lets through from `\u` escapes: refused here rather than failing the insert.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// In JSON.stringify's output: such an escape, after an even number of backslashes (so not `\\u…`).
const JSON_ESCAPE_JSONB_REFUSES = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

// Rules a fetch target must meet whoever enqueued the job; the API adds the SSRF refusal (which
// depends on FETCH_ALLOW_PRIVATE) and the worker re-checks the resolved address before fetching
// (both with shared/net/address-policy.ts).
const fetchUrl = z
  .url({ protocol: /^https?$/, error: 'must be an http or https URL' })
  .max(2048)
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters')
  .refine((u) => !LONE_SURROGATE.test(u), 'must be valid Unicode (no lone surrogates)')
  .refine((u) => {
    const parsed = URL.canParse(u) ? new URL(u) : undefined;
    return !parsed || (parsed.username === '' && parsed.password === '');
  }, 'must not carry credentials (user:password@)');
// `uploads/<tenant uuid>/<segments>`: the shape presigned uploads get; no `.`/`..` segments.
const storageKey = z
  .string()
  .max(512)
  .regex(
    /^uploads\/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(\/(?!\.\.?(\/|$))[A-Za-z0-9._-]+)+$/,
    'must look like uploads/<tenant_id>/<name>, with no empty, "." or ".." segments',
  );
const METADATA_MAX_BYTES = 16 * 1024;
const METADATA_MAX_DEPTH = 32;
// JSON text, or undefined when nesting is too deep for JSON.stringify (a RangeError).
function jsonText(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}
function jsonBytes(value: unknown): number {
  const text = jsonText(value);
  return text === undefined ? Infinity : Buffer.byteLength(text);
}
// Bounded by `levels`, so 16 KB of `[[[[…` cannot exhaust the stack of whoever walks it later.
function nestedDeeperThan(value: unknown, levels: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  return levels === 0 || Object.values(value).some((v) => nestedDeeperThan(v, levels - 1));
}

function kind<P extends z.ZodType>(spec: Partial<KindSpec<P>> & { payload: P; description: string }): KindSpec<P> {
  return { queue: 'default', maxAttempts: 3, timeoutMs: 15 * 60_000, retry: DEFAULT_RETRY, ...spec };
}

/** Fewest images one gallery.group job sorts into albums. */
export const GALLERY_MIN_IMAGES = 2;
/** Most images one gallery.group job sorts into albums (all of them go to the model in one call). */
export const GALLERY_MAX_IMAGES = 50;

/** Output sizes an image.edit job may ask for. */
export const IMAGE_EDIT_SIZES = ['1024x1024', '1536x1024', '1024x1536', 'auto'] as const;

/**
 * Every job kind. The strings never change once deployed: jobs already in the table are worked by
 * kind name across releases. The worker's handler map must cover every key (a compile error otherwise).
 */
export const KINDS = {
  'system.noop': kind({
    payload: z.object({}).strict(),
    description: 'Does nothing; for tests, demos and benchmarks.',
    timeoutMs: 60_000,
  }),
  'system.sleep': kind({
    payload: z.object({ ms: z.number().int().min(0).max(3_600_000) }).strict(),
    description: 'Sleeps `ms` milliseconds, honouring cancellation; for tests and demos.',
    timeoutMs: 3_700_000,
  }),
  'manifest.extract': kind({
    payload: z
      .object({
        pattern_id: z.uuid(),
        /** The pattern version current at ingest: the job runs with it even if the pattern changes. */
        pattern_version: z.number().int().min(1).max(2_147_483_647),
        image: z.union([z.object({ url: fetchUrl }).strict(), z.object({ storage_key: storageKey }).strict()]),
        webhook_url: fetchUrl.optional(),
        metadata: z
          .record(z.string(), z.unknown())
          .refine((m) => jsonBytes(m) <= METADATA_MAX_BYTES, `must be at most ${METADATA_MAX_BYTES} bytes as JSON`)
          .refine((m) => !JSON_ESCAPE_JSONB_REFUSES.test(jsonText(m) ?? ''), 'must not contain NUL (\\u0000) or unpaired surrogate characters')
          .refine((m) => !nestedDeeperThan(m, METADATA_MAX_DEPTH), `must not nest deeper than ${METADATA_MAX_DEPTH} levels`)
          .optional(),
      })
      .strict(),
    description:
      'One image + a pattern (instructions + JSON Schema) → a schema-conformant manifest from a vision model ' +
      '(OpenAI Structured Outputs, or the deterministic fake provider without a key); images by URL only in this build.',
    queue: 'ai',
    // $0.10 at the default credit: above the worst case of every priced vision model (gpt-4o:
    // 1,445 image tokens + 4,096 output ≈ $0.045) with the 40 % margin floor.
    priceCredits: 100,
    // A vision call takes seconds to a minute; three minutes leaves room for a slow image fetch.
    timeoutMs: 3 * 60_000,
    maxAttempts: 4,
    // 15 s, 1 min, 4 min: rate limits and provider blips clear in minutes, not hours.
    retry: { initialMs: 15_000, factor: 4, maxMs: 15 * 60_000, jitter: 0.2 },
  }),
  'gallery.group': kind({
    payload: z
      .object({
        images: z
          .array(storageKey)
          .min(GALLERY_MIN_IMAGES)
          .max(GALLERY_MAX_IMAGES)
          .refine((keys) => new Set(keys).size === keys.length, 'must not name the same storage key twice'),
        hint: z.string().max(500).optional(),
      })
      .strict(),
    description:
      `${GALLERY_MIN_IMAGES}–${GALLERY_MAX_IMAGES} uploaded images → albums {title, description, images} in one model call; ` +
      'every image lands in exactly one album, or one fallback album holds them all when the model fails for good.',
    queue: 'ai',
    // Up to 50 images at low detail (gpt-4o-mini: 2,833 tokens each) plus the output bound.
    priceCredits: 200,
    // Up to 50 images in one call: slower than one image, still minutes at most.
    timeoutMs: 5 * 60_000,
    maxAttempts: 4,
    retry: { initialMs: 15_000, factor: 4, maxMs: 15 * 60_000, jitter: 0.2 },
  }),
  'image.edit': kind({
    payload: z
      .object({
        image: storageKey,
        prompt: z.string().min(1).max(4000),
        mask: storageKey.optional(),
        model: z.string().min(1).max(200).optional(),
        size: z.enum(IMAGE_EDIT_SIZES).optional(),
      })
      .strict(),
    description: 'One uploaded image (and an optional mask) + a prompt → an edited PNG stored under the tenant\'s uploads/.',
    queue: 'ai',
    // A high-quality 1536-px output alone is 6,240 tokens at $40 per million ($0.25).
    priceCredits: 500,
    // Image models take up to a minute or two per edit.
    timeoutMs: 5 * 60_000,
    maxAttempts: 4,
    retry: { initialMs: 15_000, factor: 4, maxMs: 15 * 60_000, jitter: 0.2 },
  }),
  'webhook.deliver': kind({
    payload: z.object({ delivery_id: z.uuid() }).strict(),
    description:
      'One signed HTTP callback (Standard Webhooks) for a row of webhook_deliveries; written by the outbox when a job ends. ' +
      'Free: it spends no AI budget.',
    queue: 'webhooks',
    // The handler's own timeout (WEBHOOK_TIMEOUT_MS, 10 s) ends an attempt first; this bounds the bookkeeping too.
    timeoutMs: 60_000,
    // A cap only: the handler follows WEBHOOK_RETRY_SCHEDULE and fails the job itself after its last entry.
    maxAttempts: 50,
    // Used only when an attempt dies unexpectedly (timeout sweep); the schedule's first step otherwise.
    retry: { initialMs: 5_000, factor: 10, maxMs: 10 * 3_600_000, jitter: 0.1 },
  }),
} as const;

/** A registered kind name. */
export type KindName = keyof typeof KINDS;
/** The validated payload of a kind. */
export type PayloadOf<K extends KindName> = z.output<(typeof KINDS)[K]['payload']>;

/** True when jobs of `name` cost money (a registered kind with a price); any other kind is free. */
export function isPaidKind(name: string): boolean {
  return isKind(name) && (KINDS[name] as KindSpec).priceCredits !== undefined;
}

/** True when `name` is a registered kind. */
export function isKind(name: string): name is KindName {
  return Object.hasOwn(KINDS, name);
}

/**
 * The pattern version a manifest.extract payload names, for the job row's pattern_id and
 * pattern_version columns (NewJob's patternId and patternVersion); nothing for other kinds.
 */
export function manifestPattern(kind: string, payload: unknown): { patternId?: string; patternVersion?: number } {
  if (kind !== 'manifest.extract' || typeof payload !== 'object' || payload === null) return {};
  const { pattern_id: id, pattern_version: version } = payload as Record<string, unknown>;
  return typeof id === 'string' && isUuid(id) && Number.isInteger(version) ? { patternId: id, patternVersion: version as number } : {};
}
