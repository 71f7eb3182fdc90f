import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { AppError } from '#shared/errors.js';
import { KINDS } from '#shared/jobs/kinds.js';
import { isUuid } from '#shared/jobs/uuid.js';
import { enqueueIngest } from '#shared/patterns/enqueue-ingest.js';
import { refusalError } from '#shared/governor/governor.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { imageRefusal } from '../image-refusal.js';
import { imageRefusals } from '../stored-image-refusal.js';
import { requireScope } from '../middleware/authenticate.js';
import { idempotencyHeaders, replayedHeader, withIdempotency } from '../middleware/idempotency.js';
import { invalidFields } from '../middleware/problems.js';
import { problemResponses } from '../openapi-problems.js';

/** Most images one batch ingest takes; they are enqueued in one transaction, all or none. */
export const MAX_BATCH_IMAGES = 100;

// The manifest.extract payload's own rules (http/https, ≤ 2048 characters, no credentials; the
// uploads/<tenant>/… key shape, ≤ 512), so the edge and the worker agree on what is valid.
const payload = KINDS['manifest.extract'].payload.shape;
const [byUrl, byKey] = payload.image.options;
const imageUrl = byUrl.shape.url.describe('http or https, ≤ 2048 characters, no credentials, not a private address.');
const storageKey = byKey.shape.storage_key.describe('A key from POST /v1/uploads: uploads/<your tenant id>/…, ≤ 512 characters.');

const IngestBody = z
  .object({
    image_url: imageUrl.optional(),
    storage_key: storageKey.optional(),
    images: z
      .array(z.union([z.object({ image_url: imageUrl }).strict(), z.object({ storage_key: storageKey }).strict()]))
      .min(1)
      .max(MAX_BATCH_IMAGES)
      .optional()
      .openapi({ description: `A batch of 1–${MAX_BATCH_IMAGES} images, each {image_url} or {storage_key}: one job each, all enqueued or none.` }),
    webhook_url: payload.webhook_url.describe('Called when each job succeeds or fails for good (not when cancelled); the same URL rules as image_url.'),
    metadata: payload.metadata.describe('Any JSON object up to 16 KB and 32 levels deep, kept with each job.'),
    priority: z.number().int().min(-2_147_483_648).max(2_147_483_647).optional().openapi({ description: 'Lower runs first; default 100.' }),
  })
  .strict()
  .superRefine((b, ctx) => {
    const given = (['image_url', 'storage_key', 'images'] as const).filter((k) => b[k] !== undefined);
    if (given.length !== 1) ctx.addIssue({ code: 'custom', path: [], message: `give exactly one of image_url, storage_key or images (got ${given.length ? given.join(', ') : 'none'})` });
  })
  .openapi('IngestRequest');

const Queued = z.object({ job_id: z.uuid(), status: z.literal('queued') }).openapi('IngestQueued');
const BatchQueued = z.object({ job_ids: z.array(z.uuid()), status: z.literal('queued') }).openapi('IngestBatchQueued');

/** /v1/patterns/{id}/ingest: images in, manifest.extract jobs out. */
export function ingestRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { config, governor } = deps;
  const app = new OpenAPIHono<ApiEnv>();

  const ingest = createRoute({
    method: 'post',
    path: '/patterns/{id}/ingest',
    tags: ['ingest'],
    summary: 'Send one image, or a batch, to a pattern',
    description:
      'Exactly one of `image_url`, `storage_key` or `images` (a batch of up to ' + MAX_BATCH_IMAGES + '). Each image becomes a ' +
      '`manifest.extract` job with the pattern\'s current version. URLs pointing at localhost or at literal private, ' +
      'loopback, link-local or metadata addresses are refused here; names are checked again after DNS when fetched.',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:write')] as const,
    request: {
      params: z.object({ id: z.string().openapi({ format: 'uuid', description: 'A pattern id; anything else is a 404.' }) }),
      headers: idempotencyHeaders(config),
      body: { required: true, content: { 'application/json': { schema: IngestBody } } },
    },
    responses: {
      202: {
        description: 'Queued: `{job_id}` for one image, `{job_ids}` (in input order) for a batch.',
        headers: replayedHeader,
        content: { 'application/json': { schema: z.union([Queued, BatchQueued]) } },
      },
      ...problemResponses({
        400: 'Malformed JSON or Idempotency-Key',
        404: 'No such pattern for this tenant (or it was deleted)',
        402: 'budget_exceeded (a spend ceiling or the credit balance; names the ceiling and by how much) or margin_floor',
        409: 'invalid_state: the pattern is inactive; or idempotency_in_progress',
        413: 'Body too large',
        415: 'Not application/json',
        422: 'validation_failed (every offending path: refused URLs, another tenant\'s storage key, a missing upload, …) or idempotency_key_reused',
      }),
    },
  });

  app.openapi(ingest, async (c) => {
    const { id } = c.req.valid('param');
    const body = c.req.valid('json');
    const { tenantId } = c.get('principal');
    if (!isUuid(id)) throw new AppError('not_found', `no pattern ${id}`);
    const images = body.images ?? [body.image_url !== undefined ? { image_url: body.image_url } : { storage_key: body.storage_key! }];
    // Each image as the jobs' payloads name it. URL-only requests (the hot path) ask neither the
    // database nor the store; an upload of the caller's own must be there, an image of an accepted size.
    const jobImages = images.map((img) => ('image_url' in img ? { url: img.image_url } : { storage_key: img.storage_key }));
    const fieldOf = (i: number) => (body.images ? `body.images[${i}].` : 'body.') + ('url' in jobImages[i]! ? 'image_url' : 'storage_key');
    const errors = await imageRefusals(deps, tenantId, jobImages, fieldOf);
    const hook = body.webhook_url === undefined ? undefined : imageRefusal({ url: body.webhook_url }, tenantId, config);
    if (hook) errors.push({ path: 'body.webhook_url', message: hook });
    if (errors.length) throw invalidFields(errors, 'body');

    // Every image of a request gets the same estimate: the sizes are unknown here, so each reserves
    // the worst case for the pattern's model and prompt.
    const estimate = governor.manifestEstimate(await governor.patternInputs(deps.sql, tenantId, id)).micros;
    governor.checkMargin('manifest.extract', estimate);
    let queue: string | undefined;
    const r = await withIdempotency(c, deps, async (db) => {
      const result = await enqueueIngest(
        db,
        tenantId,
        id,
        jobImages,
        {
          ...(body.webhook_url !== undefined && { webhookUrl: body.webhook_url }),
          ...(body.metadata !== undefined && { metadata: body.metadata }),
          ...(body.priority !== undefined && { priority: body.priority }),
          estimateMicros: estimate,
        },
      );
      if (result.outcome === 'not_found') throw new AppError('not_found', `no pattern ${id}`);
      if (result.outcome === 'inactive') {
        throw new AppError('invalid_state', `pattern ${id} is inactive (version ${result.version}); activate it before sending images to it`);
      }
      if (result.outcome === 'refused') throw refusalError(result.refusal);
      queue = result.queue;
      return {
        status: 202 as const,
        body: body.images ? { job_ids: result.ids, status: 'queued' as const } : { job_id: result.ids[0]!, status: 'queued' as const },
      };
    });
    // After commit, coalesced: a NOTIFY inside the transaction would serialise every ingest's commit.
    if (queue) deps.queue.wake([{ kind: 'manifest.extract', queue }]);
    return c.json(r.body, r.status);
  });

  return app;
}
