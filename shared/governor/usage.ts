import type { Sql, Tx } from '../db/connect.js';

/** One kind's spend for a tenant: today, this month, and estimate against actual for jobs settled this month. */
export interface KindUsage {
  kind: string;
  spent_today_micros: number;
  spent_month_micros: number;
  calls_month: number;
  settled_jobs_month: number;
  estimated_micros_month: number;
  actual_micros_month: number;
  /** actual ÷ estimated for this month's settled jobs; null before any settled. */
  drift: number | null;
}

/** A tenant's credit, reservations, ceilings and spend, as GET /v1/usage and `tenants budget` show them. */
export interface Usage {
  tenant_id: string;
  /** UTC day the "today" figures are for. */
  day: string;
  /** False: no credit account; spend is recorded and shown, only configured ceilings refuse work. */
  metered: boolean;
  enforce_credits: boolean;
  balance_micros: number | null;
  owed_micros: number;
  /** Estimates held by the tenant's queued and running paid jobs. */
  reserved_micros: number;
  spent_today_micros: number;
  spent_month_micros: number;
  ceilings: {
    per_job_micros: number | null;
    daily_micros: number | null;
    monthly_micros: number | null;
    kind_daily_micros: Record<string, number>;
  };
  by_kind: KindUsage[];
}

const num = (v: unknown): number => Number(v ?? 0);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** Reads a tenant's usage (every figure in micro-dollars). */
export async function readUsage(db: Sql | Tx, tenantId: string): Promise<Usage> {
  const [[head], kinds] = await Promise.all([
    db<Record<string, unknown>[]>`
      select leasehold.governor_today()::text as day, a.tenant_id is not null as metered,
             coalesce(a.enforce_credits, false) as enforce_credits, a.balance_micros, coalesce(a.owed_micros, 0) as owed_micros,
             a.per_job_max_micros, a.daily_max_micros, a.monthly_max_micros, coalesce(a.kind_daily_max, '{}') as kind_daily_max,
             (select coalesce(sum(estimate_micros), 0) from leasehold.jobs
               where tenant_id = ${tenantId}::uuid and estimate_micros is not null and status in ('queued', 'running')) as reserved_micros
      from (select 1) as one
      left join leasehold.credit_accounts a on a.tenant_id = ${tenantId}::uuid`,
    db<Record<string, unknown>[]>`
      select kind,
             sum(spent_micros) filter (where day = leasehold.governor_today()) as spent_today,
             sum(spent_micros) as spent_month, sum(calls) as calls, sum(settled_jobs) as settled_jobs,
             sum(settled_estimate_micros) as estimated, sum(settled_actual_micros) as actual
      from leasehold.spend_daily
      where tenant_id = ${tenantId}::uuid and day >= date_trunc('month', leasehold.governor_today())::date
      group by kind order by kind`,
  ]);
  const byKind: KindUsage[] = kinds.map((k) => ({
    kind: String(k.kind),
    spent_today_micros: num(k.spent_today),
    spent_month_micros: num(k.spent_month),
    calls_month: num(k.calls),
    settled_jobs_month: num(k.settled_jobs),
    estimated_micros_month: num(k.estimated),
    actual_micros_month: num(k.actual),
    drift: num(k.estimated) > 0 ? Math.round((num(k.actual) / num(k.estimated)) * 10_000) / 10_000 : null,
  }));
  const kindMax = head!.kind_daily_max as Record<string, unknown>;
  return {
    tenant_id: tenantId,
    day: String(head!.day),
    metered: head!.metered as boolean,
    enforce_credits: head!.enforce_credits as boolean,
    balance_micros: numOrNull(head!.balance_micros),
    owed_micros: num(head!.owed_micros),
    reserved_micros: num(head!.reserved_micros),
    spent_today_micros: byKind.reduce((s, k) => s + k.spent_today_micros, 0),
    spent_month_micros: byKind.reduce((s, k) => s + k.spent_month_micros, 0),
    ceilings: {
      per_job_micros: numOrNull(head!.per_job_max_micros),
      daily_micros: numOrNull(head!.daily_max_micros),
      monthly_micros: numOrNull(head!.monthly_max_micros),
      kind_daily_micros: Object.fromEntries(Object.entries(kindMax).map(([k, v]) => [k, Number(v)])),
    },
    by_kind: byKind,
  };
}
