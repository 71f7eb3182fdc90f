import type { Config } from '../config.js';
import type { Sql } from '../db/connect.js';
import { KINDS, isPaidKind } from '../jobs/kinds.js';
import { usdToMicros } from './governor.js';

/**
 * Writes this process's governor settings into leasehold.governor_settings (the global daily
 * ceiling, the paid kinds), where the reservation functions, the brake and governor_block_reason
 * read them. Each API and worker process does this at start; an operator's UPDATE holds until then.
 */
export async function applyGovernorSettings(sql: Sql, config: Pick<Config, 'GOVERNOR_GLOBAL_DAILY_USD'>): Promise<void> {
  const ceiling = config.GOVERNOR_GLOBAL_DAILY_USD === undefined ? null : usdToMicros(config.GOVERNOR_GLOBAL_DAILY_USD);
  const paid = Object.keys(KINDS).filter(isPaidKind);
  await sql`
    update leasehold.governor_settings
    set global_daily_micros = ${ceiling}::bigint, paid_kinds = ${paid}::text[], updated_at = now()`;
}
