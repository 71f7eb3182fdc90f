import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { requeueDeadLetter } from '../requeue-dead-letter.js';
import { problemResponses } from '../openapi-problems.js';
import { pageFrom, pageOf, pageQuery } from '../pagination.js';

const time = z.iso.datetime({ offset: true });

/** A dead letter as the API shows it: the failed job's copy with its whole error history. */
export const DeadLetterView = z
  .object({
    id: z.uuid(),
    job_id: z.uuid(),
    kind: z.string(),
    queue: z.string(),
    payload: z.unknown(),
    priority: z.number().int(),
    attempts: z.number().int(),
    max_attempts: z.number().int(),
    last_error: z.string().nullable(),
    errors: z.array(z.unknown()).openapi({ description: 'One entry per failed attempt: {attempt, at, message, code?, worker?}.' }),
    job_created_at: time,
    failed_at: time,
    requeued_at: time.nullable().openapi({ description: 'When it was requeued; null while open.' }),
  })
  .openapi('DeadLetter');

type Row = Omit<z.output<typeof DeadLetterView>, 'job_created_at' | 'failed_at' | 'requeued_at'> & {
  job_created_at: Date;
  failed_at: Date;
  requeued_at: Date | null;
};

/** The columns of DeadLetterView, in its order. */
const COLUMNS = ['id', 'job_id', 'kind', 'queue', 'payload', 'priority', 'attempts', 'max_attempts', 'last_error', 'errors', 'job_created_at', 'failed_at', 'requeued_at'];

const view = (r: Row): z.output<typeof DeadLetterView> => ({
  ...r,
  job_created_at: r.job_created_at.toISOString(),
  failed_at: r.failed_at.toISOString(),
  requeued_at: r.requeued_at && r.requeued_at.toISOString(),
});

const ListQuery = z
  .object({
    all: z.enum(['true', 'false']).default('false').openapi({ description: '`true` includes dead letters already requeued.' }),
    ...pageQuery,
  })
  .strict();

/** /v1/dead-letters: the caller's failed jobs, and requeueing them (jobs:write, like retrying a job). */
export function deadLettersRoutes({ sql, governor }: AppDeps): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();

  const list = createRoute({
    method: 'get',
    path: '/dead-letters',
    tags: ['dead letters'],
    summary: 'List dead letters, newest first (open ones unless all=true)',
    description: 'Cursor pagination by id, as for GET /v1/jobs.',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:read')] as const,
    request: { query: ListQuery },
    responses: {
      200: { description: 'One page of dead letters.', content: { 'application/json': { schema: pageOf(DeadLetterView) } } },
      ...problemResponses({ 422: 'A bad parameter or cursor' }),
    },
  });
  app.openapi(list, async (c) => {
    const q = c.req.valid('query');
    const rows = await sql<Row[]>`
      select ${sql(COLUMNS)}
      from leasehold.dead_letters
      where tenant_id = ${c.get('principal').tenantId}::uuid
        ${q.all === 'true' ? sql`` : sql`and requeued_at is null`}
        ${q.cursor ? sql`and id < ${q.cursor}::uuid` : sql``}
      order by id desc limit ${q.limit + 1}`;
    return c.json(pageFrom(rows, q.limit, view), 200);
  });

  const requeue = createRoute({
    method: 'post',
    path: '/dead-letters/{id}/requeue',
    tags: ['dead letters'],
    summary: 'Put the job behind a dead letter back in its queue with a fresh attempt budget',
    description:
      "The caller's own dead letters only, with the `jobs:write` scope, as for POST /v1/jobs/{id}/retry. " +
      'Operators requeue across tenants with `leasehold dlq requeue` or the dashboard.',
    security: [{ bearer: [] }],
    middleware: [requireScope('jobs:write')] as const,
    request: { params: z.object({ id: z.string().openapi({ format: 'uuid', description: 'A dead letter id; anything else is a 404.' }) }) },
    responses: {
      202: { description: 'The dead letter, now requeued (`requeued_at` set); `job_id` is the job back in its queue.', content: { 'application/json': { schema: DeadLetterView } } },
      ...problemResponses({
        402: 'budget_exceeded or margin_floor: a paid kind the governor would refuse as a new job; the dead letter stays open',
        404: 'No such dead letter for this tenant',
        409: 'invalid_state: already requeued',
      }),
    },
  });
  app.openapi(requeue, async (c) => {
    const { id } = c.req.valid('param');
    const tenantId = c.get('principal').tenantId;
    await requeueDeadLetter(sql, governor, id, tenantId, c.get('principal').subject);
    const [row] = await sql<Row[]>`select ${sql(COLUMNS)} from leasehold.dead_letters where id = ${id}::uuid and tenant_id = ${tenantId}::uuid`;
    return c.json(view(row!), 202);
  });

  return app;
}
