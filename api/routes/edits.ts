import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { KINDS } from '#shared/jobs/kinds.js';
import type { ImageEditResult } from '#shared/ai/image-edit-result.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { imageRefusals } from '../stored-image-refusal.js';
import { requireScope } from '../middleware/authenticate.js';
import { idempotencyHeaders, replayedHeader } from '../middleware/idempotency.js';
import { absoluteDownloadUrl, enqueueOne, jobOfKind } from '../job-of-kind.js';
import { invalidFields } from '../middleware/problems.js';
import { problemResponses } from '../openapi-problems.js';

/** How long the download URL in GET /v1/edits/{id} stays valid, in seconds. */
export const EDIT_URL_TTL_S = 15 * 60;

const KIND = 'image.edit';
const payload = KINDS[KIND].payload.shape;
const EditRequest = z
  .object({
    image: payload.image.describe('A key from POST /v1/uploads (uploads/<your tenant id>/…).'),
    prompt: payload.prompt.describe('What to change, 1–4000 characters.'),
    mask: payload.mask.describe('An uploaded PNG whose transparent areas mark where the image may change.'),
    size: payload.size.describe('Output size; `auto` unless set.'),
  })
  .strict()
  .openapi('EditRequest');

const Queued = z.object({ edit_id: z.uuid(), status: z.literal('queued') }).openapi('EditQueued');
const Edit = z
  .object({
    id: z.uuid(),
    status: z.string(),
    result: z
      .object({ storage_key: z.string(), url: z.string(), content_type: z.string(), bytes: z.number().int() })
      .optional()
      .openapi({ description: 'Present once the job succeeded.' }),
  })
  .openapi('Edit');

/** /v1/edits: edit an uploaded image with a prompt (an image.edit job) and read the result back. */
export function editsRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { config, storage, governor } = deps;
  const app = new OpenAPIHono<ApiEnv>();

  const create = createRoute({
    method: 'post',
    path: '/edits',
    tags: ['edits'],
    summary: 'Edit an uploaded image as a prompt says',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:write')] as const,
    request: { headers: idempotencyHeaders(config), body: { required: true, content: { 'application/json': { schema: EditRequest } } } },
    responses: {
      202: { description: 'Queued; the edit id is the job id.', headers: replayedHeader, content: { 'application/json': { schema: Queued } } },
      ...problemResponses({ 400: 'Malformed JSON', 402: 'budget_exceeded or margin_floor: the governor refused the estimated cost', 415: 'Not application/json', 422: "validation_failed (another tenant's key, a missing upload, …)" }),
    },
  });

  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    const { tenantId } = c.get('principal');
    const named = Object.entries({ image: body.image, mask: body.mask }).filter((e): e is [string, string] => e[1] !== undefined);
    const errors = await imageRefusals(deps, tenantId, named.map(([, key]) => ({ storage_key: key })), (i) => `body.${named[i]![0]}`);
    if (errors.length) throw invalidFields(errors, 'body');
    const job = { kind: KIND, tenantId, payload: body };
    return c.json({ edit_id: await enqueueOne(c, deps, governor, job), status: 'queued' as const }, 202);
  });

  const read = createRoute({
    method: 'get',
    path: '/edits/{id}',
    tags: ['edits'],
    summary: 'An edit: its status, and the edited image with a signed download URL once done',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:read')] as const,
    request: { params: z.object({ id: z.string().openapi({ format: 'uuid', description: 'An edit id; anything else is a 404.' }) }) },
    responses: {
      200: { description: 'The edit', content: { 'application/json': { schema: Edit } } },
      ...problemResponses({ 404: 'No such edit for this tenant' }),
    },
  });

  app.openapi(read, async (c) => {
    const { id } = c.req.valid('param');
    const { tenantId } = c.get('principal');
    const row = await jobOfKind<ImageEditResult>(deps, tenantId, id, KIND, 'edit');
    if (row.status !== 'succeeded' || !row.result) return c.json({ id, status: row.status }, 200);
    const { storage_key, content_type, bytes } = row.result;
    const url = await absoluteDownloadUrl(storage, storage_key, EDIT_URL_TTL_S, c.req.url);
    return c.json({ id, status: row.status, result: { storage_key, url, content_type, bytes } }, 200);
  });

  return app;
}
