import { findTenant, grantCredit, setBudget, type BudgetChange } from '#shared/governor/budget.js';
import { Governor, usdText, usdToMicros } from '#shared/governor/governor.js';
import { readUsage } from '#shared/governor/usage.js';
import { UsageError, withDatabase, type CommandContext } from '../context.js';
import { printObject, printTable } from '../output.js';

type Flags = Record<string, string | boolean | undefined>;

const USAGE =
  'tenants budget <tenant slug or id> [--grant credits | --grant-usd usd] [--note text] [--per-job-usd usd|none] ' +
  '[--daily-usd usd|none] [--monthly-usd usd|none] [--kind-daily-usd kind=usd,…|none] [--enforce-credits true|false]';

/** A positive USD amount, or null for `none` (lifts the ceiling), or undefined when the flag is absent. */
function usdFlag(flags: Flags, name: string): number | null | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  if (v === 'none') return null;
  const n = typeof v === 'string' && /^\d+(\.\d{1,6})?$/.test(v) ? Number(v) : NaN;
  if (!(n > 0)) throw new UsageError(`--${name} must be a positive amount in USD (up to 6 decimals) or "none"; usage: leasehold ${USAGE}`);
  return usdToMicros(n);
}

/**
 * `leasehold tenants budget <tenant>`: grants credit and sets ceilings (each flag optional), then
 * prints the tenant's credit, reservations, ceilings and spend by kind.
 */
export async function budgetCommand(ctx: CommandContext, target: string | undefined, flags: Flags): Promise<number> {
  if (!target) throw new UsageError(`usage: leasehold ${USAGE}`);
  const governor = new Governor(ctx.config);
  if (flags.grant !== undefined && flags['grant-usd'] !== undefined) throw new UsageError('give --grant (credits) or --grant-usd, not both');
  const grantText = flags.grant ?? flags['grant-usd'];
  let grant: number | undefined;
  if (grantText !== undefined) {
    const n = typeof grantText === 'string' && /^\d+(\.\d{1,6})?$/.test(grantText) ? Number(grantText) : NaN;
    if (!(n > 0)) throw new UsageError('--grant and --grant-usd take a positive number');
    grant = flags.grant !== undefined ? Math.round(n * governor.creditMicros) : usdToMicros(n);
  }
  const change: BudgetChange = {};
  const perJob = usdFlag(flags, 'per-job-usd');
  const daily = usdFlag(flags, 'daily-usd');
  const monthly = usdFlag(flags, 'monthly-usd');
  if (perJob !== undefined) change.perJobMicros = perJob;
  if (daily !== undefined) change.dailyMicros = daily;
  if (monthly !== undefined) change.monthlyMicros = monthly;
  const kinds = flags['kind-daily-usd'];
  if (kinds !== undefined) {
    change.kindDailyMicros = {};
    if (kinds !== 'none') {
      for (const part of String(kinds).split(',')) {
        const [kind, amount] = part.split('=');
        const n = Number(amount);
        if (!kind || !(n > 0)) throw new UsageError('--kind-daily-usd takes kind=usd pairs, comma-separated (or "none")');
        change.kindDailyMicros[kind.trim()] = usdToMicros(n);
      }
    }
  }
  const enforce = flags['enforce-credits'];
  if (enforce !== undefined) {
    if (enforce !== 'true' && enforce !== 'false') throw new UsageError('--enforce-credits takes true or false');
    change.enforceCredits = enforce === 'true';
  }
  const usage = await withDatabase(ctx, async (sql) => {
    const tenantId = await findTenant(sql, target);
    if (!tenantId) throw new Error(`no tenant ${target}`);
    if (Object.keys(change).length) await setBudget(sql, tenantId, change);
    if (grant !== undefined) await grantCredit(sql, tenantId, grant, typeof flags.note === 'string' ? flags.note : 'granted with the CLI');
    return readUsage(sql, tenantId);
  });
  const balanceCredits = usage.balance_micros === null ? null : usage.balance_micros / governor.creditMicros;
  if (ctx.json) {
    printObject({ ...usage, balance_credits: balanceCredits }, true);
    return 0;
  }
  const money = (m: number | null) => (m === null ? 'none' : usdText(m));
  printObject(
    {
      tenant: target,
      tenant_id: usage.tenant_id,
      metered: usage.metered ? (usage.enforce_credits ? 'yes (credits required)' : 'yes (ceilings only)') : 'no',
      balance: usage.balance_micros === null ? 'none' : `${usdText(usage.balance_micros)} (${balanceCredits} credits)`,
      owed: usdText(usage.owed_micros),
      reserved: usdText(usage.reserved_micros),
      [`spent ${usage.day}`]: usdText(usage.spent_today_micros),
      'spent this month': usdText(usage.spent_month_micros),
      'per-job ceiling': money(usage.ceilings.per_job_micros),
      'daily ceiling': money(usage.ceilings.daily_micros),
      'monthly ceiling': money(usage.ceilings.monthly_micros),
      'kind daily ceilings': Object.entries(usage.ceilings.kind_daily_micros).map(([k, v]) => `${k}=${usdText(v)}`).join(', ') || 'none',
    },
    false,
  );
  if (usage.by_kind.length) {
    process.stdout.write('\n');
    printTable(
      usage.by_kind.map((k) => ({ kind: k.kind, today: usdText(k.spent_today_micros), month: usdText(k.spent_month_micros), calls: k.calls_month, jobs: k.settled_jobs_month, drift: k.drift })),
      false,
    );
  }
  return 0;
}
