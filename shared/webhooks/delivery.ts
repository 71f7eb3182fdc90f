import { orderLikeSchema } from '../formats/order-like-schema.js';

/** The queue webhook.deliver jobs run on (the outbox trigger in 0003_webhooks.sql names it too). */
export const WEBHOOKS_QUEUE = 'webhooks';

/** Job events a subscription may ask for: the terminal ones. */
export const WEBHOOK_EVENTS = ['job.succeeded', 'job.failed', 'job.cancelled'] as const;
/** A job event a webhook can carry. */
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
/** What a subscription gets when it names no events (DESIGN.md: webhooks carry these two). */
export const DEFAULT_WEBHOOK_EVENTS: WebhookEvent[] = ['job.succeeded', 'job.failed'];

/** What the payload is built from: the delivery row and the job it is about. */
export interface PayloadSource {
  event: string;
  jobId: string;
  kind: string;
  patternId: string | null;
  /** The stored result of a succeeded job. */
  result: unknown;
  /** The JSON Schema of the job's pattern version, if any: an inlined manifest's keys follow its order. */
  schema: unknown;
  /** The job's error at a failed or cancelled event. */
  error: string | null;
  occurredAt: Date;
}

/**
 * The JSON body of a callback: `{event, job_id, kind, pattern_id, status, manifest | error, timestamp}`.
 * A succeeded manifest.extract job's manifest (keys in its pattern schema's order, as
 * GET /v1/jobs/:id/manifest gives them; any other kind's whole result) is inlined up to
 * `inlineMaxBytes` of JSON; above that, `manifest` is null and `manifest_url` is where to fetch
 * it (GET /v1/jobs/:id/manifest). Deterministic, so every attempt sends the same bytes.
 */
export function webhookBody(src: PayloadSource, opts: { publicUrl: string; inlineMaxBytes: number }): string {
  const status = src.event.replace(/^job\./, '');
  const base = { event: src.event, job_id: src.jobId, kind: src.kind, pattern_id: src.patternId, status };
  const timestamp = src.occurredAt.toISOString();
  if (src.event !== 'job.succeeded') return JSON.stringify({ ...base, error: src.error ?? status, timestamp });
  const result = src.result as { manifest?: unknown } | null;
  const extracted = src.kind === 'manifest.extract' && result && typeof result === 'object' && 'manifest' in result;
  const manifest = !extracted ? src.result : src.schema ? orderLikeSchema(result.manifest, src.schema) : result.manifest;
  const text = JSON.stringify(manifest ?? null);
  const bytes = Buffer.byteLength(text);
  if (bytes <= opts.inlineMaxBytes) return JSON.stringify({ ...base, manifest: manifest ?? null, timestamp });
  const manifestUrl = `${opts.publicUrl.replace(/\/+$/, '')}/v1/jobs/${src.jobId}/manifest`;
  return JSON.stringify({ ...base, manifest: null, manifest_url: manifestUrl, manifest_bytes: bytes, timestamp });
}
