import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { AppError } from '#shared/errors.js';
import { usdToMicros } from '#shared/governor/governor.js';
import { findTenant, grantCredit, setBudget } from '#shared/governor/budget.js';
import { readUsage } from '#shared/governor/usage.js';
import type { AppDeps, ApiEnv } from '../context.js';
import { requireScope } from '../middleware/authenticate.js';
import { problemResponses } from '../openapi-problems.js';

const micros = (description: string) => z.number().int().openapi({ description: `${description} (micro-dollars: 1 USD = 1,000,000).` });
const KindUsage = z.object({
  kind: z.string(),
  spent_today_micros: micros('Spent today (UTC) on calls of this kind'),
  spent_month_micros: micros('Spent this month'),
  calls_month: z.number().int(),
  settled_jobs_month: z.number().int().openapi({ description: 'Jobs of this kind that ended this month.' }),
  estimated_micros_month: micros('What those jobs were estimated at'),
  actual_micros_month: micros('What their calls actually cost'),
  drift: z.number().nullable().openapi({ description: 'actual ÷ estimated for those jobs (below 1: the estimates are cautious); null before any.' }),
});
const Usage = z
  .object({
    tenant_id: z.uuid(),
    day: z.string().openapi({ description: 'The UTC day "today" means.' }),
    metered: z.boolean().openapi({ description: 'False: no credit account; spend is still estimated, recorded and shown, and only configured ceilings refuse work.' }),
    enforce_credits: z.boolean(),
    balance_micros: micros('Credit left, after open reservations').nullable(),
    balance_credits: z.number().nullable().openapi({ description: 'The same in credits (GOVERNOR_CREDIT_USD each).' }),
    owed_micros: micros('Spend past the balance (an overrun), taken from the next reservation'),
    reserved_micros: micros("Estimates held by the caller's queued and running paid jobs"),
    spent_today_micros: micros('Spent today (UTC)'),
    spent_month_micros: micros('Spent this month (UTC)'),
    ceilings: z.object({
      per_job_micros: z.number().int().nullable(),
      daily_micros: z.number().int().nullable(),
      monthly_micros: z.number().int().nullable(),
      kind_daily_micros: z.record(z.string(), z.number().int()),
    }),
    by_kind: z.array(KindUsage),
  })
  .openapi('Usage');

const usd = z.number().positive().max(1_000_000_000);
const Grant = z
  .object({
    tenant: z.string().min(1).max(200).openapi({ description: 'A tenant slug or id.' }),
    credits: z.number().positive().max(1e12).optional().openapi({ description: 'Credits to add (GOVERNOR_CREDIT_USD each).' }),
    usd: usd.optional().openapi({ description: 'Or the amount in USD.' }),
    note: z.string().max(500).optional(),
  })
  .strict()
  .refine((g) => (g.credits === undefined) !== (g.usd === undefined), { message: 'give exactly one of credits or usd', path: [] })
  .openapi('CreditGrant');
const Budget = z
  .object({
    enforce_credits: z.boolean().optional().openapi({ description: 'False: ceilings apply, but work does not need credit.' }),
    per_job_usd: usd.nullable().optional().openapi({ description: 'Most one job may be estimated at; null lifts it.' }),
    daily_usd: usd.nullable().optional().openapi({ description: 'Spent plus reserved per UTC day; null lifts it.' }),
    monthly_usd: usd.nullable().optional().openapi({ description: 'Spent plus reserved per UTC month; null lifts it.' }),
    kind_daily_usd: z.record(z.string().min(1).max(200), usd).optional().openapi({ description: 'Per-kind daily ceilings; replaces the previous set.' }),
  })
  .strict()
  .openapi('BudgetChange');
const TenantParam = z.object({ tenant: z.string().min(1).max(200).openapi({ description: 'A tenant slug or id.' }) });
const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });
const toMicros = (v: number | null | undefined) => (v === undefined ? undefined : v === null ? null : usdToMicros(v));

// Shown on every /v1/admin route: they act on any tenant named in the request.
const OPERATOR_ONLY =
  'Operators only: needs an API key with the `admin` scope, which acts on every tenant (made with `leasehold keys create --scopes admin`; ' +
  'a JWT never carries it). Give tenants `jobs:read` / `jobs:write` keys, which see only their own usage (GET /v1/usage).';

/** GET /v1/usage (the caller's own), and the operators' grants and ceilings for any tenant. */
export function usageRoutes(deps: AppDeps): OpenAPIHono<ApiEnv> {
  const { sql, governor } = deps;
  const app = new OpenAPIHono<ApiEnv>();
  const withCredits = <U extends { balance_micros: number | null }>(u: U) => ({
    ...u,
    balance_credits: u.balance_micros === null ? null : u.balance_micros / governor.creditMicros,
  });
  const tenantOr404 = async (slugOrId: string) => {
    const id = await findTenant(sql, slugOrId);
    if (!id) throw new AppError('not_found', `no tenant ${slugOrId}`);
    return id;
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/usage',
      tags: ['usage'],
      summary: 'Credit, reservations, ceilings and spend (today and this month, by kind, estimate against actual) of the caller',
      security: [{ bearer: [] }],
      middleware: [requireScope('jobs:read')] as const,
      responses: { 200: json(Usage, "The caller's usage."), ...problemResponses({}) },
    }),
    async (c) => c.json(withCredits(await readUsage(sql, c.get('principal').tenantId)), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/admin/credits',
      tags: ['admin'],
      summary: "Grant credit to a tenant (admin): appends a grant to its ledger and meters it from then on",
      description: OPERATOR_ONLY,
      security: [{ bearer: [] }],
      middleware: [requireScope('admin')] as const,
      request: { body: { required: true, content: { 'application/json': { schema: Grant } } } },
      responses: { 201: json(Usage, "The tenant's usage after the grant."), ...problemResponses({ 404: 'No such tenant', 422: 'validation_failed' }) },
    }),
    async (c) => {
      const body = c.req.valid('json');
      const tenantId = await tenantOr404(body.tenant);
      const amount = body.usd !== undefined ? usdToMicros(body.usd) : Math.round(body.credits! * governor.creditMicros);
      if (amount < 1) throw new AppError('validation_failed', 'the grant is less than one micro-dollar', { errors: [{ path: 'body', message: 'grant at least $0.000001' }] });
      await grantCredit(sql, tenantId, amount, body.note ?? `granted by ${c.get('principal').subject}`);
      return c.json(withCredits(await readUsage(sql, tenantId)), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/admin/tenants/{tenant}/budget',
      tags: ['admin'],
      summary: "A tenant's credit, ceilings and spend (admin)",
      description: OPERATOR_ONLY,
      security: [{ bearer: [] }],
      middleware: [requireScope('admin')] as const,
      request: { params: TenantParam },
      responses: { 200: json(Usage, "The tenant's usage."), ...problemResponses({ 404: 'No such tenant' }) },
    }),
    async (c) => c.json(withCredits(await readUsage(sql, await tenantOr404(c.req.valid('param').tenant))), 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/admin/tenants/{tenant}/budget',
      tags: ['admin'],
      summary: "Set a tenant's ceilings (admin); the tenant is metered from then on",
      description: OPERATOR_ONLY,
      security: [{ bearer: [] }],
      middleware: [requireScope('admin')] as const,
      request: { params: TenantParam, body: { required: true, content: { 'application/json': { schema: Budget } } } },
      responses: { 200: json(Usage, "The tenant's usage under its new ceilings."), ...problemResponses({ 404: 'No such tenant', 422: 'validation_failed' }) },
    }),
    async (c) => {
      const tenantId = await tenantOr404(c.req.valid('param').tenant);
      const b = c.req.valid('json');
      await setBudget(sql, tenantId, {
        ...(b.enforce_credits !== undefined && { enforceCredits: b.enforce_credits }),
        perJobMicros: toMicros(b.per_job_usd),
        dailyMicros: toMicros(b.daily_usd),
        monthlyMicros: toMicros(b.monthly_usd),
        ...(b.kind_daily_usd && { kindDailyMicros: Object.fromEntries(Object.entries(b.kind_daily_usd).map(([k, v]) => [k, usdToMicros(v)])) }),
      });
      return c.json(withCredits(await readUsage(sql, tenantId)), 200);
    },
  );

  return app;
}
