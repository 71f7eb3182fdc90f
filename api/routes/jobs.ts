import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type postgres from 'postgres';
import type { Config } from '#shared/config.js';
import type { Sql, Tx } from '#shared/db/connect.js';
import { AppError, ERROR_CODES, type ErrorCode, type FieldError } from '#shared/errors.js';
import { KINDS, fetchTargetRefusal, isKind, type PayloadOf } from '#shared/jobs/kinds.js';
import { insertJobs, type NewJob } from '#shared/jobs/queue.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { idempotencyHeaders, replayedHeader, withIdempotency } from '../middleware/idempotency.js';
import { validationError } from '../middleware/problems.js';

// What the other /v1 routers share with this one: the problem and page shapes, the job view,
// and the checks a manifest.extract job passes at the edge (ingest makes only such jobs).

/** An RFC 9457 problem as every /v1 error is sent. */
export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    instance: z.string(),
    code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
    request_id: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional().openapi({ description: 'validation_failed: every offending path.' }),
    known_kinds: z.array(z.string()).optional().openapi({ description: 'unknown_kind: the registered kinds.' }),
  })
  .openapi('Problem');

const problemContent = { 'application/problem+json': { schema: Problem } };

/** OpenAPI responses for the given problem statuses, plus the 401, 403 and 429 every /v1 route can send. */
export function problemResponses<const C extends number>(described: Record<C, string>) {
  const all: Record<number, string> = {
    401: 'Missing, malformed or revoked credentials',
    403: 'The credential lacks the required scope',
    429: 'Rate limited (see Retry-After)',
    ...described,
  };
  return Object.fromEntries(Object.entries(all).map(([s, d]) => [s, { description: d, content: problemContent }])) as Record<
    C | 401 | 403 | 429,
    { description: string; content: typeof problemContent }
  >;
}

/** The query parameters of a cursor-paginated list. */
export const pageQuery = {
  cursor: z.uuid().optional().openapi({ description: '`next_cursor` of the previous page.' }),
  limit: z.coerce.number().int().min(1).max(100).default(50).openapi({ description: '1–100, default 50.' }),
};

/** A page of a list: `next_cursor` is null on the last page. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), next_cursor: z.uuid().nullable() });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** True for a UUID's text form; other ids are answered 404 without a query. */
export const isUuid = (id: string): boolean => UUID.test(id);

const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
const time = z.iso.datetime({ offset: true });

/** A job as the API shows it. */
export const JobView = z
  .object({
    id: z.uuid(),
    kind: z.string(),
    queue: z.string(),
    status: z.enum(JOB_STATUSES),
    priority: z.number().int().openapi({ description: 'Lower runs first.' }),
    attempts: z.number().int().openapi({ description: 'Claims so far.' }),
    max_attempts: z.number().int(),
    run_at: time.openapi({ description: 'Not before this time (the next attempt, while queued).' }),
    progress: z.number().nullable().openapi({ description: '0–100, as last reported by the handler.' }),
    progress_message: z.string().nullable(),
    result: z.unknown().openapi({ description: "The handler's output once succeeded, else null." }),
    last_error: z.string().nullable(),
    error_count: z.number().int().openapi({ description: 'Failed attempts recorded so far.' }),
    pattern_id: z.uuid().nullable(),
    pattern_version: z.number().int().nullable(),
    created_at: time,
    started_at: time.nullable(),
    finished_at: time.nullable(),
    cancel_requested_at: time.nullable(),
    latency_ms: z.number().nullable().openapi({ description: 'finished_at − created_at, once finished.' }),
    rescues: z.number().int().openapi({ description: 'Times its lease was reclaimed from a worker that stopped heartbeating.' }),
  })
  .openapi('Job');

type JobRow = Omit<z.output<typeof JobView>, 'run_at' | 'created_at' | 'started_at' | 'finished_at' | 'cancel_requested_at'> & {
  run_at: Date;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  cancel_requested_at: Date | null;
};

/** The caller's jobs matching `rest` (more conditions, order, limit), as rows for jobView. */
export function selectJobs(db: Sql | Tx, tenantId: string, rest: postgres.Fragment): Promise<JobRow[]> {
  return db<JobRow[]>`
    select id, kind, queue, status, priority, attempts, max_attempts, run_at, progress, progress_message, result, last_error,
           jsonb_array_length(errors) as error_count, pattern_id, pattern_version, created_at, started_at, finished_at,
           cancel_requested_at, round(extract(epoch from finished_at - created_at) * 1000)::float8 as latency_ms, rescues
    from leasehold.jobs where tenant_id = ${tenantId}::uuid ${rest}`;
}

/** A row of selectJobs as the API shows it. */
export function jobView(row: JobRow): z.output<typeof JobView> {
  const iso = (d: Date | null) => d && d.toISOString();
  return {
    ...row,
    result: row.result ?? null,
    run_at: row.run_at.toISOString(),
    created_at: row.created_at.toISOString(),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
    cancel_requested_at: iso(row.cancel_requested_at),
  };
}

/** Why the server will not fetch this image (or webhook URL) for the tenant, or undefined. */
export function imageRefusal(image: { url: string } | { storage_key: string }, tenantId: string, config: Pick<Config, 'FETCH_ALLOW_PRIVATE'>): string | undefined {
  if ('url' in image) return fetchTargetRefusal(image.url, config.FETCH_ALLOW_PRIVATE);
  if (!image.storage_key.toLowerCase().startsWith(`uploads/${tenantId.toLowerCase()}/`)) return `must start with uploads/${tenantId}/ (your own uploads)`;
  return undefined;
}

/**
 * The pattern's current version, for the caller's transaction: 404 when the tenant has no such
 * pattern (or it was deleted), 409 when it is inactive, 422 when `version` is given and the pattern
 * never had it. No row lock: a change committed meanwhile is simply later than this ingest, and
 * share-locking one hot pattern row from every concurrent ingest would create a MultiXact each time.
 */
export async function currentPattern(db: Sql | Tx, tenantId: string, patternId: string, version?: number): Promise<number> {
  const [p] = await db<{ current_version: number; is_active: boolean; has_version: boolean }[]>`
    select p.current_version, v.is_active,
           exists (select 1 from leasehold.pattern_versions o where o.pattern_id = p.id and o.version = ${version ?? 0}::int) as has_version
    from leasehold.patterns p
    join leasehold.pattern_versions v on v.pattern_id = p.id and v.version = p.current_version
    where p.id = ${patternId}::uuid and p.tenant_id = ${tenantId}::uuid and p.deleted_at is null`;
  if (!p) throw new AppError('not_found', `no pattern ${patternId}`);
  if (!p.is_active) throw new AppError('invalid_state', `pattern ${patternId} is inactive (version ${p.current_version}); activate it before sending images to it`);
  if (version !== undefined && !p.has_version) {
    throw new AppError('validation_failed', `pattern ${patternId} has no version ${version}`, {
      errors: [{ path: 'body.payload.pattern_version', message: `pattern ${patternId} has no version ${version} (current: ${p.current_version})` }],
    });
  }
  return p.current_version;
}

const IdParam = z.object({ id: z.string().openapi({ format: 'uuid', description: 'A job id; anything else is a 404.' }) });
const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });
const notFound = (id: string) => new AppError('not_found', `no job ${id}`);
const KNOWN_KINDS = Object.keys(KINDS);

const CreateJob = z
  .object({
    kind: z.string().min(1).max(200).openapi({ description: `A registered kind: ${KNOWN_KINDS.join(', ')}.` }),
    payload: z.unknown().optional().openapi({ type: 'object', description: "Validated by the kind's own schema; default {}." }),
    queue: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1–64 of A-Z a-z 0-9 _ . : -').optional().openapi({ description: "Default: the kind's queue." }),
    priority: z.number().int().min(-2_147_483_648).max(2_147_483_647).optional().openapi({ description: 'Lower runs first; default 100.' }),
    run_at: z.iso
      .datetime({ offset: true })
      // postgres.js reads timestamptz text back through Date, which turns year 0001 into 2001.
      .refine((t) => Date.parse(t) >= Date.UTC(2000, 0, 1), 'must be on or after 2000-01-01')
      .optional()
      .openapi({ description: 'Not before this time; default now.' }),
    max_attempts: z.number().int().min(1).max(1000).optional().openapi({ description: "Default: the kind's own." }),
  })
  .strict()
  .openapi('CreateJob');

const ListQuery = z
  .object({
    status: z.enum(JOB_STATUSES).optional(),
    kind: z.string().regex(/^[^\s\u0000]{1,200}$/, 'must be 1–200 characters without spaces').optional(),
    pattern_id: z.uuid().optional(),
    created_after: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Exclusive lower bound of created_at.' }),
    created_before: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Exclusive upper bound of created_at.' }),
    ...pageQuery,
  })
  .strict();

const ManifestQuery = z
  .object({
    format: z
      .enum(['json'], { error: 'supported formats: json (yaml, xml, csv and text are not available yet)' })
      .optional()
      .openapi({ description: 'Output format; only `json` (the default) is available in this build.' }),
  })
  .strict();

/** /v1/jobs: create any registered kind, list, read, fetch the manifest, cancel and retry. */
export function jobsRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { sql, config, queue } = deps;
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
        404: 'manifest.extract: no such pattern for this tenant',
        409: 'manifest.extract: the pattern is inactive; or the Idempotency-Key is still in progress',
        413: 'Body too large',
        415: 'Not application/json',
        422: 'validation_failed (paths under body or body.payload), unknown_kind (lists known_kinds) or idempotency_key_reused',
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
    if (manifest) {
      const errors: FieldError[] = [];
      const image = imageRefusal(manifest.image, tenantId, config);
      if (image) errors.push({ path: `body.payload.image.${'url' in manifest.image ? 'url' : 'storage_key'}`, message: image });
      const hook = manifest.webhook_url === undefined ? undefined : imageRefusal({ url: manifest.webhook_url }, tenantId, config);
      if (hook) errors.push({ path: 'body.payload.webhook_url', message: hook });
      if (errors.length) throw new AppError('validation_failed', `${errors.length} problem(s) in the request body.payload`, { errors });
    }
    let enqueued: NewJob[] = [];
    const r = await withIdempotency(c, deps, async (db) => {
      if (manifest) await currentPattern(db, tenantId, manifest.pattern_id, manifest.pattern_version);
      enqueued = [
        {
          kind: body.kind,
          payload: parsed.data,
          tenantId,
          ...(manifest && { patternId: manifest.pattern_id, patternVersion: manifest.pattern_version }),
          ...(body.queue !== undefined && { queue: body.queue }),
          ...(body.priority !== undefined && { priority: body.priority }),
          ...(body.run_at !== undefined && { runAt: new Date(body.run_at) }),
          ...(body.max_attempts !== undefined && { maxAttempts: body.max_attempts }),
        },
      ];
      const { ids } = await insertJobs(db, enqueued);
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
    const rows = await selectJobs(
      sql,
      c.get('principal').tenantId,
      sql`${q.status ? sql`and status = ${q.status}` : sql``}
          ${q.kind ? sql`and kind = ${q.kind}` : sql``}
          ${q.pattern_id ? sql`and pattern_id = ${q.pattern_id}::uuid` : sql``}
          ${q.created_after ? sql`and created_at > ${q.created_after}::timestamptz` : sql``}
          ${q.created_before ? sql`and created_at < ${q.created_before}::timestamptz` : sql``}
          ${q.cursor ? sql`and id < ${q.cursor}::uuid` : sql``}
          order by id desc limit ${q.limit + 1}`,
    );
    const data = rows.slice(0, q.limit).map(jobView);
    return c.json({ data, next_cursor: rows.length > q.limit ? data.at(-1)!.id : null }, 200);
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
    summary: "A succeeded job's output",
    description: 'The stored result as JSON. Other formats (yaml, xml, csv, text) are not available in this build: asking for one is a 422.',
    security: [{ bearer: [] }],
    middleware: [read] as const,
    request: { params: IdParam, query: ManifestQuery },
    responses: {
      200: json(z.unknown().openapi({ description: "The job's result, as stored." }), 'The output.'),
      ...problemResponses({ 404: 'No such job for this tenant', 409: 'The job has not succeeded', 422: 'An unsupported format' }),
    },
  });
  app.openapi(manifest, async (c) => {
    const { id } = c.req.valid('param');
    const tenantId = c.get('principal').tenantId;
    const [job] = isUuid(id)
      ? await sql<{ status: string; result: unknown }[]>`select status, result from leasehold.jobs where id = ${id}::uuid and tenant_id = ${tenantId}::uuid`
      : [];
    if (!job) throw notFound(id);
    if (job.status !== 'succeeded') throw new AppError('invalid_state', `job ${id} is ${job.status}; its output exists once it has succeeded`);
    return c.json(job.result ?? null, 200);
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
        ...problemResponses({ 404: 'No such job for this tenant', 409: `invalid_state: the job is not ${allowed.join(' or ')}` }),
      },
    });
    app.openapi(route, async (c) => {
      const { id } = c.req.valid('param');
      const tenantId = c.get('principal').tenantId;
      if (!isUuid(id)) throw notFound(id);
      const view = await sql.begin(async (tx) => {
        const [job] = await tx<{ status: string }[]>`
          select status from leasehold.jobs where id = ${id}::uuid and tenant_id = ${tenantId}::uuid for update`;
        if (!job) throw notFound(id);
        if (!allowed.includes(job.status)) throw new AppError('invalid_state', `job ${id} is ${job.status}; only ${allowed.join(' or ')} jobs can be ${action === 'cancel' ? 'cancelled' : 'retried'}`);
        if (action === 'cancel') await tx`select leasehold.cancel_job(${id}::uuid, ${tenantId}::uuid)`;
        else await tx`select leasehold.retry_job(${id}::uuid, ${tenantId}::uuid)`;
        const [row] = await selectJobs(tx, tenantId, tx`and id = ${id}::uuid`);
        return jobView(row!);
      });
      return c.json(view, 202);
    });
  }

  return app;
}
