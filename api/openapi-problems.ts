import { z } from '@hono/zod-openapi';
import { ERROR_CODES, type ErrorCode } from '#shared/errors.js';

// The OpenAPI side of middleware/problems.ts: one `Problem` component that every /v1 error
// response refers to, so /openapi.json describes the problem body once.

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
    max_queues: z.number().int().optional().openapi({ description: 'queue_limit: how many queues may exist (MAX_QUEUES).' }),
    max_queues_per_tenant: z.number().int().optional().openapi({ description: 'queue_limit: how many queues one tenant may make (MAX_QUEUES_PER_TENANT).' }),
    ceiling: z.string().optional().openapi({ description: 'budget_exceeded, margin_floor: which ceiling refused (per_job, tenant_daily, tenant_monthly, kind_daily:<kind>, global_daily, credit_balance, margin_floor).' }),
    limit_micros: z.number().int().optional().openapi({ description: 'budget_exceeded, margin_floor: the ceiling, in micro-dollars.' }),
    used_micros: z.number().int().optional().openapi({ description: 'budget_exceeded: already spent or reserved against it (credit_balance: owed from overruns).' }),
    requested_micros: z.number().int().optional().openapi({ description: 'budget_exceeded, margin_floor: the estimate this request asked to reserve.' }),
    exceeded_by_micros: z.number().int().optional().openapi({ description: 'budget_exceeded, margin_floor: by how much the ceiling would be exceeded.' }),
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
