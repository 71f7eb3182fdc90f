import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { AppError, type FieldError } from '#shared/errors.js';
import { KINDS, isKind, manifestPattern, type PayloadOf } from '#shared/jobs/kinds.js';
import { KIND_QUEUES, type NewJob } from '#shared/jobs/queue.js';
import { insertPaidJobs } from '#shared/governor/insert-paid.js';
import { reserveRequeue } from '#shared/governor/reserve-requeue.js';
import { isUuid } from '#shared/jobs/uuid.js';
import { timestamptzRefusal } from '#shared/db/timestamptz-refusal.js';
import { orderLikeSchema } from '#shared/formats/order-like-schema.js';
import { CsvShapeError, CsvTooLargeError, MANIFEST_CONTENT_TYPES, MANIFEST_FORMATS, SchemaTooLargeError, renderManifest, type ManifestFormat } from '#shared/formats/render-manifest.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { currentPattern } from '../current-pattern.js';
import { imageRefusal } from '../image-refusal.js';
import { imageRefusals } from '../stored-image-refusal.js';
import { JOB_STATUSES, JobView, jobView, listJobs, selectJobs } from '../job-view.js';
import { requireScope } from '../middleware/authenticate.js';
import { idempotencyHeaders, replayedHeader, withIdempotency } from '../middleware/idempotency.js';
import { invalidFields, validationError } from '../middleware/problems.js';
import { problemResponses } from '../openapi-problems.js';
import { pageFrom, pageOf, pageQuery } from '../pagination.js';

const IdParam = z.object({ id: z.string().openapi({ format: 'uuid', description: 'A job id; anything else is a 404.' }) });
const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });
const notFound = (id: string) => new AppError('not_found', `no job ${id}`);
const KNOWN_KINDS = Object.keys(KINDS);

/** The uploads a payload of `kind` reads, each with its path under body.payload. */
function storedImages(kind: string, payload: unknown): [path: string, key: string][] {
  switch (kind) {
    case 'manifest.extract': {
      const { image } = payload as PayloadOf<'manifest.extract'>;
      return 'storage_key' in image ? [['image.storage_key', image.storage_key]] : [];
    }
    case 'gallery.group':
      return (payload as PayloadOf<'gallery.group'>).images.map((key, i) => [`images[${i}]`, key]);
    case 'image.edit': {
      const { image, mask } = payload as PayloadOf<'image.edit'>;
      return mask === undefined ? [['image', image]] : [['image', image], ['mask', mask]];
    }
    default:
      return [];
  }
}

const RETRY_REFUSED: Record<number, string> = {
  402: 'budget_exceeded or margin_floor: a paid kind the governor would refuse as a new job; the job is left as it was',
};

const QueueName = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1–64 of A-Z a-z 0-9 _ . : -');
/** An RFC 3339 time that PostgreSQL takes: zod allows offsets to ±23:59 and year 0000, which it refuses. */
const Timestamp = z.iso.datetime({ offset: true }).check((ctx) => {
  const why = ctx.issues.length ? undefined : timestamptzRefusal(ctx.value);
  if (why) ctx.issues.push({ code: 'custom', message: why, input: ctx.value });
});

const CreateJob = z
  .object({
    kind: z.string().min(1).max(200).openapi({ description: `A registered kind: ${KNOWN_KINDS.join(', ')}.` }),
    payload: z.unknown().optional().openapi({ type: 'object', description: "Validated by the kind's own schema; default {}." }),
    queue: QueueName.optional().openapi({
      description:
        "Default: the kind's queue. The system's queues (default, ai, webhooks) take only the kinds that use them. A queue that does not exist yet is made, unless MAX_QUEUES queues exist already, or the tenant made MAX_QUEUES_PER_TENANT of them: then the job is refused (422 queue_limit). Queues without queued or running jobs are deleted after a while, and made again by their next job.",
    }),
    priority: z.number().int().min(-2_147_483_648).max(2_147_483_647).optional().openapi({ description: 'Lower runs first; default 100.' }),
    run_at: Timestamp
      // postgres.js reads timestamptz text back through Date, which turns year 0001 into 2001.
      .refine((t) => Date.parse(t) >= Date.UTC(2000, 0, 1), 'must be on or after 2000-01-01')
      .optional()
      .openapi({ description: 'Not before this time; default now.' }),
    max_attempts: z.number().int().min(1).max(1000).optional().openapi({ description: "Default: the kind's own." }),
  })
  .strict()
  // The system's queues (default, ai, webhooks) take only their own kinds: a tenant's cheap or long
  // jobs sent to another kind's queue would hold the slots of every tenant's work there.
  .superRefine((body, ctx) => {
    if (typeof body?.kind !== 'string' || !isKind(body.kind) || typeof body.queue !== 'string' || !KIND_QUEUES.has(body.queue)) return;
    const own = KINDS[body.kind].queue;
    if (body.queue === own) return;
    const users = Object.entries(KINDS).filter(([, k]) => k.queue === body.queue).map(([name]) => name);
    ctx.addIssue({
      code: 'custom',
      path: ['queue'],
      message: `queue "${body.queue}" is the system's queue for ${users.join(', ')}; leave queue out for ${body.kind}'s own ("${own}"), or name a queue of your own`,
    });
  }, { when: () => true })
  // The handler checks the payload against its kind once the rest is valid. When the rest is not,
  // the payload is checked here too, so that one answer lists every offending path.
  .superRefine(
    (body, ctx) => {
      if (typeof body?.kind !== 'string' || !isKind(body.kind)) return;
      const payload = KINDS[body.kind].payload.safeParse(body.payload ?? {});
      if (payload.success) return;
      for (const issue of payload.error.issues) ctx.addIssue({ ...issue, path: ['payload', ...issue.path] } as Parameters<typeof ctx.addIssue>[0]);
    },
    { when: (parse) => parse.issues.length > 0 },
  )
  .openapi('CreateJob');

const ListQuery = z
  .object({
    status: z.enum(JOB_STATUSES).optional(),
    kind: z.string().regex(/^[^\s\u0000]{1,200}$/, 'must be 1–200 characters without spaces').optional(),
    queue: QueueName.optional(),
    pattern_id: z.uuid().optional(),
    created_after: Timestamp.optional().openapi({ description: 'Exclusive lower bound of created_at.' }),
    created_before: Timestamp.optional().openapi({ description: 'Exclusive upper bound of created_at.' }),
    ...pageQuery,
  })
  .strict();

const ManifestQuery = z
  .object({
    format: z
      .enum(MANIFEST_FORMATS, { error: `supported formats: ${MANIFEST_FORMATS.join(', ')}` })
      .optional()
      .openapi({ description: 'Output format (default json); the rules of each are in docs/formats.md. csv needs the pattern schema of a manifest.extract job.' }),
  })
  .strict();

/** /v1/jobs: create any registered kind, list, read, fetch the manifest, cancel and retry. */
export function jobsRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { sql, config, queue, governor } = deps;
  const app = new OpenAPIHono<ApiEnv>();
  const write = requireScope('jobs:write');
  const read = requireScope('jobs:read');

  const create = createRoute({
    method: 'post',
    path: '/jobs',
    tags: ['jobs'],
    summary: 'Enqueue a job of any registered kind',
    security: [{ bearer: [] }],
    middleware: [write] as const,
    request: { headers: idempotencyHeaders(config), body: { required: true, content: { 'application/json': { schema: CreateJob } } } },
    responses: {
      202: { ...json(JobView, 'Queued; the job as it now stands.'), headers: replayedHeader },
      ...problemResponses({
        400: 'Malformed JSON or Idempotency-Key',
        402: 'budget_exceeded or margin_floor: a paid kind whose estimated cost the governor refused',
        404: 'manifest.extract: no such pattern for this tenant',
        409: 'manifest.extract: the pattern is inactive; or the Idempotency-Key is still in progress',
        413: 'Body too large',
        415: 'Not application/json',
        422: "validation_failed (paths under body or body.payload; an upload that is not the caller's, missing, or of the wrong type or size), unknown_kind (lists known_kinds), queue_limit (`queue` names a new queue and MAX_QUEUES exist already, or the tenant made MAX_QUEUES_PER_TENANT of them) or idempotency_key_reused",
      }),
    },
  });
  app.openapi(create, async (c) => {
    const body = c.req.valid('json');
    if (!isKind(body.kind)) {
      throw new AppError('unknown_kind', `no job kind "${body.kind}"; known kinds: ${KNOWN_KINDS.join(', ')}`, { known_kinds: KNOWN_KINDS });
    }
    const parsed = KINDS[body.kind].payload.safeParse(body.payload ?? {});
    if (!parsed.success) throw validationError(parsed.error, 'body.payload');
    const { tenantId } = c.get('principal');
    // manifest.extract gets ingest's edge checks: fetch targets here, its pattern in the transaction.
    const manifest = body.kind === 'manifest.extract' ? (parsed.data as PayloadOf<'manifest.extract'>) : undefined;
    const errors: FieldError[] = [];
    if (manifest && 'url' in manifest.image) {
      const image = imageRefusal(manifest.image, tenantId, config);
      if (image) errors.push({ path: 'body.payload.image.url', message: image });
    }
    const hook = manifest?.webhook_url === undefined ? undefined : imageRefusal({ url: manifest.webhook_url }, tenantId, config);
    if (hook) errors.push({ path: 'body.payload.webhook_url', message: hook });
    // Uploads get the checks of ingest, /v1/galleries and /v1/edits: the caller's own prefix, and an
    // object there of an accepted type and size.
    const stored = storedImages(body.kind, parsed.data);
    errors.push(...(await imageRefusals(deps, tenantId, stored.map(([, key]) => ({ storage_key: key })), (i) => `body.payload.${stored[i]![0]}`)));
    if (errors.length) throw invalidFields(errors, 'body.payload');
    let enqueued: NewJob[] = [];
    const r = await withIdempotency(c, deps, async (db) => {
      if (manifest) await currentPattern(db, tenantId, manifest.pattern_id, manifest.pattern_version);
      enqueued = [
        {
          kind: body.kind,
          payload: parsed.data,
          tenantId,
          ...manifestPattern(body.kind, parsed.data),
          ...(body.queue !== undefined && { queue: body.queue }),
          ...(body.priority !== undefined && { priority: body.priority }),
          ...(body.run_at !== undefined && { runAt: new Date(body.run_at) }),
          ...(body.max_attempts !== undefined && { maxAttempts: body.max_attempts }),
        },
      ];
      // A queue the caller chose (not one the kinds use anyway) may be new: it must fit MAX_QUEUES and
      // MAX_QUEUES_PER_TENANT.
      const bounded = body.queue !== undefined && !KIND_QUEUES.has(body.queue);
      const limits = { total: config.MAX_QUEUES, perTenant: config.MAX_QUEUES_PER_TENANT };
      const { ids } = await insertPaidJobs(db, governor, enqueued, bounded ? { queueLimits: limits } : {});
      const [job] = await selectJobs(db, tenantId, db`and id = ${ids[0]!}::uuid`);
      return { status: 202 as const, body: jobView(job!) };
    });
    queue.wake(enqueued);
    return c.json(r.body, r.status);
  });

  const list = createRoute({
    method: 'get',
    path: '/jobs',
    tags: ['jobs'],
    summary: "List the caller's jobs, newest first",
    description:
      'Cursor pagination by id: pass `next_cursor` back as `cursor` for the next (older) page. Ids are time-ordered, ' +
      'so jobs inserted meanwhile land before the first page and never shift or repeat the pages after it.',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { query: ListQuery },
    responses: { 200: json(pageOf(JobView), 'One page of jobs.'), ...problemResponses({ 422: 'A bad filter or cursor' }) },
  });
  app.openapi(list, async (c) => {
    const q = c.req.valid('query');
    const rows = await listJobs(sql, c.get('principal').tenantId, q, q.limit);
    return c.json(pageFrom(rows, q.limit, jobView), 200);
  });

  const get = createRoute({
    method: 'get',
    path: '/jobs/{id}',
    tags: ['jobs'],
    summary: 'A job: status, attempts, progress, result, last error, timings',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { params: IdParam },
    responses: { 200: json(JobView, 'The job.'), ...problemResponses({ 404: 'No such job for this tenant' }) },
  });
  app.openapi(get, async (c) => {
    const { id } = c.req.valid('param');
    const [job] = isUuid(id) ? await selectJobs(sql, c.get('principal').tenantId, sql`and id = ${id}::uuid`) : [];
    if (!job) throw notFound(id);
    return c.json(jobView(job), 200);
  });

  const manifest = createRoute({
    method: 'get',
    path: '/jobs/{id}/manifest',
    tags: ['jobs'],
    summary: "A succeeded job's output, in the format asked for",
    description:
      'For manifest.extract jobs, the manifest laid out by the schema of the pattern version the job ran with; for other kinds, the stored result. ' +
      'json, yaml, xml, csv and text, each with its own content type; every format reads back to the same data (docs/formats.md). ' +
      "Without `format`, the format of the job's pattern version; json for jobs without a pattern.",
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { params: IdParam, query: ManifestQuery },
    responses: {
      200: {
        description: 'The output.',
        content: Object.fromEntries(
          MANIFEST_FORMATS.map((f) => [MANIFEST_CONTENT_TYPES[f].split(';')[0]!, { schema: z.string().openapi({ description: `format=${f}` }) }]),
        ),
      },
      ...problemResponses({ 404: 'No such job for this tenant', 409: 'The job has not succeeded', 422: 'An unknown format, csv for a job without a pattern or too large to write, or invalid_schema: csv for a schema too large to lay out' }),
    },
  });
  app.openapi(manifest, async (c) => {
    const { id } = c.req.valid('param');
    const tenantId = c.get('principal').tenantId;
    const [job] = isUuid(id)
      ? await sql<{ status: string; result: unknown; schema: unknown; format: ManifestFormat | null }[]>`
          select j.status, j.result, v.json_schema as schema, v.format
          from leasehold.jobs j
          left join leasehold.pattern_versions v
            on v.pattern_id = j.pattern_id and v.version = j.pattern_version and v.tenant_id = j.tenant_id
          where j.id = ${id}::uuid and j.tenant_id = ${tenantId}::uuid`
      : [];
    if (!job) throw notFound(id);
    if (job.status !== 'succeeded') throw new AppError('invalid_state', `job ${id} is ${job.status}; its output exists once it has succeeded`);
    // Without ?format=, the format of the pattern version the job ran with; json for other kinds.
    const format = c.req.valid('query').format ?? job.format ?? 'json';
    const result = job.result as { manifest?: unknown } | null;
    const output =
      job.schema !== null && result !== null && typeof result === 'object' && 'manifest' in result
        ? orderLikeSchema(result.manifest, job.schema)
        : result;
    if (format === 'csv' && job.schema === null) {
      throw new AppError('validation_failed', 'csv is laid out by a pattern schema, and this job has none', {
        errors: [{ path: 'query.format', message: 'csv needs a manifest.extract job; use json, yaml, xml or text' }],
      });
    }
    let rendered;
    try {
      rendered = renderManifest(output ?? null, format, job.schema ?? {});
    } catch (err) {
      if (err instanceof CsvShapeError) throw new AppError('invalid_state', `the stored manifest does not fit its pattern schema, so it has no csv form: ${err.message}`);
      if (err instanceof CsvTooLargeError) {
        throw new AppError('validation_failed', `this manifest has no csv form: ${err.message}`, {
          errors: [{ path: 'query.format', message: 'the csv would repeat too much on every row; use json, yaml, xml or text' }],
        });
      }
      // A schema stored before the pattern check bounded its expansion.
      if (err instanceof SchemaTooLargeError) {
        throw new AppError('invalid_schema', `the pattern schema is too large to lay out csv columns from: ${err.message}`, {
          errors: [{ path: 'query.format', message: 'csv is laid out from the expanded schema; use json, yaml, xml or text' }],
        });
      }
      throw err;
    }
    return c.body(rendered.body, 200, { 'content-type': rendered.contentType });
  });

  for (const action of ['cancel', 'retry'] as const) {
    const allowed = action === 'cancel' ? ['queued', 'running'] : ['failed', 'cancelled'];
    const route = createRoute({
      method: 'post',
      path: `/jobs/{id}/${action}`,
      tags: ['jobs'],
      summary:
        action === 'cancel'
          ? 'Cancel a job: a queued one at once, a running one is asked to stop (its status moves to cancelled when its worker stops it)'
          : 'Retry a failed or cancelled job with a fresh attempt budget',
      security: [{ bearer: [] }],
      middleware: [write] as const,
      request: { params: IdParam },
      responses: {
        202: json(JobView, 'The job after the request.'),
        ...problemResponses({ ...(action === 'retry' ? RETRY_REFUSED : {}), 404: 'No such job for this tenant', 409: `invalid_state: the job is not ${allowed.join(' or ')}` }),
      },
    });
    app.openapi(route, async (c) => {
      const { id } = c.req.valid('param');
      const tenantId = c.get('principal').tenantId;
      if (!isUuid(id)) throw notFound(id);
      const view = await sql.begin(async (tx) => {
        // Only a retry reads the payload (the governor estimates the run from it); it may be 1 MiB.
        const columns = action === 'retry' ? tx`status, tenant_id, kind, payload` : tx`status, tenant_id, kind, null as payload`;
        const [job] = await tx<{ status: string; tenant_id: string; kind: string; payload: unknown }[]>`
          select ${columns} from leasehold.jobs where id = ${id}::uuid and tenant_id = ${tenantId}::uuid for update`;
        if (!job) throw notFound(id);
        if (!allowed.includes(job.status)) throw new AppError('invalid_state', `job ${id} is ${job.status}; only ${allowed.join(' or ')} jobs can be ${action === 'cancel' ? 'cancelled' : 'retried'}`);
        // The principal (`key:<id>` or `jwt:<subject>`) is recorded as who did it.
        if (action === 'cancel') await tx`select leasehold.cancel_job(${id}::uuid, ${tenantId}::uuid, ${c.get('principal').subject})`;
        else {
          // Another run of a paid job is another model call: the governor checks it as a new job.
          await reserveRequeue(tx, governor, { id, ...job });
          await tx`select leasehold.retry_job(${id}::uuid, ${tenantId}::uuid, ${c.get('principal').subject})`;
        }
        const [row] = await selectJobs(tx, tenantId, tx`and id = ${id}::uuid`);
        return jobView(row!);
      });
      return c.json(view, 202);
    });
  }

  return app;
}
