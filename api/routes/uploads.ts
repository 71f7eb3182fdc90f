import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { MAX_UPLOAD_BYTES, UPLOAD_TYPES } from '#shared/storage/object-store.js';
import { newUploadKey } from '#shared/storage/keys.js';
import { recordUpload } from '#shared/storage/uploads.js';
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
export function uploadsRoutes({ sql, storage }: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();

  const presign = createRoute({
    method: 'post',
    path: '/uploads',
    tags: ['uploads'],
    summary: 'Presign an image upload',
    description:
      'Send exactly `size` bytes with `method` to `url`, with `headers`, before `expires_at` (the signature covers the ' +
      'length: a body of any other size is refused); then ingest by `storage_key`, ' +
      'which checks that the object exists with the declared type and an accepted size.',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:write')] as const,
    request: { body: { required: true, content: { 'application/json': { schema: UploadRequest } } } },
    responses: {
      201: { description: 'Presigned', content: { 'application/json': { schema: PresignedUpload } } },
      ...problemResponses({ 400: 'Malformed JSON', 415: 'Not application/json', 422: 'validation_failed' }),
    },
  });

  app.openapi(presign, async (c) => {
    const body = c.req.valid('json');
    const { tenantId, subject } = c.get('principal');
    const key = newUploadKey(tenantId, body.content_type, body.filename);
    const upload = await storage.presignUpload({ key, contentType: body.content_type, size: body.size, expiresInS: UPLOAD_URL_TTL_S });
    // Recorded before the URL leaves: a failed insert is a problem response, never a URL without its row.
    const id = await recordUpload(sql, {
      tenantId, storageKey: key, contentType: body.content_type, sizeBytes: body.size, createdBy: subject, expiresAt: new Date(upload.expires_at),
    });
    // The local store answers with /storage/… paths: made absolute against the URL this request came to.
    return c.json({ id, ...upload, url: new URL(upload.url, c.req.url).toString(), storage_key: key }, 201);
  });

  return app;
}
