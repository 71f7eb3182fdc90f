import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { AppError } from '#shared/errors.js';
import { MAX_UPLOAD_BYTES, UPLOAD_TYPES } from '#shared/storage/object-store.js';
import { newUploadKey } from '#shared/storage/keys.js';
import { recordUpload, type QuotaRefusal, type UploadQuota } from '#shared/storage/uploads.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { problemResponses } from '../openapi-problems.js';

/** How long a presigned upload stays valid, in seconds. */
export const UPLOAD_URL_TTL_S = 15 * 60;

const UploadRequest = z
  .object({
    content_type: z.enum(UPLOAD_TYPES).openapi({ description: 'The image type the upload must be sent with.' }),
    size: z.number().int().min(1).max(MAX_UPLOAD_BYTES).openapi({ description: `Exact size in bytes, 1–${MAX_UPLOAD_BYTES}.` }),
    filename: z.string().max(255).optional().openapi({ description: 'Kept, sanitised, as the last segment of the key.' }),
  })
  .strict()
  .openapi('UploadRequest');

const PresignedUpload = z
  .object({
    id: z.uuid().openapi({ description: 'The upload\'s record (`uploads` table), for support and operators.' }),
    url: z.url(),
    method: z.literal('PUT'),
    headers: z.record(z.string(), z.string()),
    storage_key: z.string(),
    expires_at: z.iso.datetime(),
  })
  .openapi('PresignedUpload');

/** /v1/uploads: a presigned upload under the caller's own `uploads/<tenant>/` prefix, recorded in `uploads`. */
export function uploadsRoutes({ sql, storage, config }: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();
  const quota: UploadQuota = { uploadsPerDay: config.UPLOADS_PER_TENANT_DAILY, bytesPerDay: config.UPLOAD_BYTES_PER_TENANT_DAILY };

  const presign = createRoute({
    method: 'post',
    path: '/uploads',
    tags: ['uploads'],
    summary: 'Presign an image upload',
    description:
      'Send exactly `size` bytes with `method` to `url`, with `headers`, before `expires_at` (the signature covers the ' +
      'length: a body of any other size is refused); then ingest by `storage_key`, ' +
      'which checks that the object exists with the declared type and an accepted size. Each URL takes one upload: ' +
      'on the local store another PUT is a 409; on S3 `headers` holds `If-None-Match: *`, and another PUT is a 412. Each tenant may presign a daily quota of uploads and bytes (429 past it).',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:write')] as const,
    request: { body: { required: true, content: { 'application/json': { schema: UploadRequest } } } },
    responses: {
      201: { description: 'Presigned', content: { 'application/json': { schema: PresignedUpload } } },
      ...problemResponses({
        400: 'Malformed JSON',
        415: 'Not application/json',
        422: 'validation_failed',
        429: "rate_limited: the tenant's daily upload quota (UPLOADS_PER_TENANT_DAILY, UPLOAD_BYTES_PER_TENANT_DAILY) is used up until midnight UTC (see Retry-After)",
      }),
    },
  });

  app.openapi(presign, async (c) => {
    const body = c.req.valid('json');
    const { tenantId, subject } = c.get('principal');
    const key = newUploadKey(tenantId, body.content_type, body.filename);
    const upload = await storage.presignUpload({ key, contentType: body.content_type, size: body.size, expiresInS: UPLOAD_URL_TTL_S });
    // Recorded before the URL leaves, and counted against the day's quota in the same statement: a
    // failed insert or a refusal is a problem response, never a URL without its row.
    const recorded = await recordUpload(sql, {
      tenantId, storageKey: key, contentType: body.content_type, sizeBytes: body.size, createdBy: subject, expiresAt: new Date(upload.expires_at),
    }, quota);
    if (!('id' in recorded)) throw quotaProblem(recorded, body.size);
    const { id } = recorded;
    // The local store answers with /storage/… paths: made absolute against the URL this request came to.
    return c.json({ id, ...upload, url: new URL(upload.url, c.req.url).toString(), storage_key: key }, 201);
  });

  return app;
}

/** The 429 of a used-up daily quota: which limit, what was used, and Retry-After until midnight UTC. */
function quotaProblem(r: QuotaRefusal, size: number): AppError {
  const now = new Date();
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  const retryAfter = Math.max(1, Math.ceil((midnight - now.getTime()) / 1000));
  const { uploadsPerDay, bytesPerDay } = r.quota;
  const which = uploadsPerDay > 0 && r.usedUploads + 1 > uploadsPerDay
    ? `this tenant has presigned ${r.usedUploads} of its ${uploadsPerDay} uploads for today (UTC)`
    : `this upload of ${size} bytes would take this tenant past its ${bytesPerDay} bytes for today (UTC), of which ${r.usedBytes} are presigned`;
  return new AppError(
    'rate_limited',
    `${which}; the quota renews at midnight UTC`,
    { retry_after: retryAfter, quota: { uploads_per_day: uploadsPerDay, bytes_per_day: bytesPerDay, used_uploads: r.usedUploads, used_bytes: r.usedBytes } },
    { 'retry-after': String(retryAfter) },
  );
}
