import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { Album, GalleryResult } from '#shared/ai/gallery-albums.js';
import { GALLERY_MAX_IMAGES, GALLERY_MIN_IMAGES, KINDS } from '#shared/jobs/kinds.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { imageRefusals } from '../stored-image-refusal.js';
import { requireScope } from '../middleware/authenticate.js';
import { idempotencyHeaders, replayedHeader } from '../middleware/idempotency.js';
import { absoluteDownloadUrl, enqueueOne, jobOfKind } from '../job-of-kind.js';
import { invalidFields } from '../middleware/problems.js';
import { problemResponses } from '../openapi-problems.js';

/** How long the download URLs in GET /v1/galleries/{id} stay valid, in seconds. */
export const GALLERY_URL_TTL_S = 15 * 60;

const KIND = 'gallery.group';
const payload = KINDS[KIND].payload.shape;
const GalleryRequest = z
  .object({
    images: payload.images.describe(`${GALLERY_MIN_IMAGES}–${GALLERY_MAX_IMAGES} distinct keys from POST /v1/uploads (uploads/<your tenant id>/…).`),
    hint: payload.hint.describe('Up to 500 characters of guidance for the grouping ("by city", "by guest").'),
  })
  .strict()
  .openapi('GalleryRequest');

const Queued = z.object({ gallery_id: z.uuid(), status: z.literal('queued') }).openapi('GalleryQueued');
const Album = z.object({
  title: z.string(),
  description: z.string(),
  images: z.array(z.object({ storage_key: z.string(), url: z.string() })),
});
const Gallery = z
  .object({
    id: z.uuid(),
    status: z.string(),
    albums: z.array(Album).optional().openapi({ description: 'Present once the job succeeded.' }),
    fallback: z.boolean().optional().openapi({ description: 'True when the model failed for good and one album holds every image.' }),
  })
  .openapi('Gallery');

/** /v1/galleries: sort uploaded images into albums (a gallery.group job) and read the albums back. */
export function galleriesRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { config, storage, governor } = deps;
  const app = new OpenAPIHono<ApiEnv>();

  const create = createRoute({
    method: 'post',
    path: '/galleries',
    tags: ['galleries'],
    summary: 'Group uploaded images into albums',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:write')] as const,
    request: { headers: idempotencyHeaders(config), body: { required: true, content: { 'application/json': { schema: GalleryRequest } } } },
    responses: {
      202: { description: 'Queued; the gallery id is the job id.', headers: replayedHeader, content: { 'application/json': { schema: Queued } } },
      ...problemResponses({ 400: 'Malformed JSON', 402: 'budget_exceeded or margin_floor: the governor refused the estimated cost', 415: 'Not application/json', 422: "validation_failed (another tenant's key, a missing upload, …)" }),
    },
  });

  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    const { tenantId } = c.get('principal');
    const errors = await imageRefusals(deps, tenantId, body.images.map((key) => ({ storage_key: key })), (i) => `body.images[${i}]`);
    if (errors.length) throw invalidFields(errors, 'body');
    const job = { kind: KIND, tenantId, payload: { images: body.images, ...(body.hint !== undefined && { hint: body.hint }) } };
    return c.json({ gallery_id: await enqueueOne(c, deps, governor, job), status: 'queued' as const }, 202);
  });

  const read = createRoute({
    method: 'get',
    path: '/galleries/{id}',
    tags: ['galleries'],
    summary: 'A gallery: its status, and its albums with signed download URLs once done',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:read')] as const,
    request: { params: z.object({ id: z.string().openapi({ format: 'uuid', description: 'A gallery id; anything else is a 404.' }) }) },
    responses: {
      200: { description: 'The gallery', content: { 'application/json': { schema: Gallery } } },
      ...problemResponses({ 404: 'No such gallery for this tenant' }),
    },
  });

  app.openapi(read, async (c) => {
    const { id } = c.req.valid('param');
    const { tenantId } = c.get('principal');
    const row = await jobOfKind<GalleryResult>(deps, tenantId, id, KIND, 'gallery');
    if (row.status !== 'succeeded' || !row.result) return c.json({ id, status: row.status }, 200);
    const signed = async (key: string) => ({ storage_key: key, url: await absoluteDownloadUrl(storage, key, GALLERY_URL_TTL_S, c.req.url) });
    const albums = await Promise.all(
      // Results stored before the field was named as DESIGN.md names it call it theme_description.
      row.result.albums.map(async (a: Omit<Album, 'description'> & { description?: string; theme_description?: string }) => ({
        title: a.title,
        description: a.description ?? a.theme_description ?? '',
        images: await Promise.all(a.images.map(signed)),
      })),
    );
    return c.json({ id, status: row.status, albums, fallback: row.result.fallback }, 200);
  });

  return app;
}
