import type { Sql, Tx } from '../db/connect.js';
import { isUuid } from '../jobs/uuid.js';

/** A tenant's ceilings in micro-dollars; null lifts one, undefined leaves it as it is. */
export interface BudgetChange {
  enforceCredits?: boolean;
  perJobMicros?: number | null;
  dailyMicros?: number | null;
  monthlyMicros?: number | null;
  /** Replaces the per-kind daily ceilings. */
  kindDailyMicros?: Record<string, number>;
}

/** Adds credit to a tenant (its account is created, which meters it); returns the new balance. */
export async function grantCredit(db: Sql | Tx, tenantId: string, micros: number, note?: string): Promise<number> {
  const [row] = await db<{ balance: string }[]>`
    select leasehold.grant_credit(${tenantId}::uuid, ${micros}::bigint, ${note ?? null}) as balance`;
  return Number(row!.balance);
}

/** Sets a tenant's ceilings (creating its account, which meters it). */
export async function setBudget(db: Sql | Tx, tenantId: string, change: BudgetChange): Promise<void> {
  const keep = (v: unknown) => v === undefined;
  await db`
    insert into leasehold.credit_accounts (tenant_id) values (${tenantId}::uuid) on conflict (tenant_id) do nothing`;
  await db`
    update leasehold.credit_accounts set
      enforce_credits = case when ${keep(change.enforceCredits)} then enforce_credits else ${change.enforceCredits ?? true}::boolean end,
      per_job_max_micros = case when ${keep(change.perJobMicros)} then per_job_max_micros else ${change.perJobMicros ?? null}::bigint end,
      daily_max_micros = case when ${keep(change.dailyMicros)} then daily_max_micros else ${change.dailyMicros ?? null}::bigint end,
      monthly_max_micros = case when ${keep(change.monthlyMicros)} then monthly_max_micros else ${change.monthlyMicros ?? null}::bigint end,
      kind_daily_max = case when ${keep(change.kindDailyMicros)} then kind_daily_max else ${db.json(change.kindDailyMicros ?? {})} end,
      updated_at = now()
    where tenant_id = ${tenantId}::uuid`;
}

/** A tenant id for a slug or id, or undefined (also for text no slug or id can be: NUL, say). */
export async function findTenant(db: Sql | Tx, slugOrId: string): Promise<string | undefined> {
  const isId = isUuid(slugOrId);
  if (!isId && !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(slugOrId)) return undefined;
  const [row] = isId
    ? await db<{ id: string }[]>`select id from leasehold.tenants where id = ${slugOrId}::uuid`
    : await db<{ id: string }[]>`select id from leasehold.tenants where slug = ${slugOrId}`;
  return row?.id;
}
