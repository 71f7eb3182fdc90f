import type { Sql } from '#shared/db/connect.js';
import { usdText } from '#shared/governor/governor.js';
import { PREPARED } from '#shared/jobs/queue-sql.js';
import { utcTime as time, type PanelData } from './panels.js';
import { GOVERNOR_PANEL, WEBHOOKS_PANEL } from './snapshot-sql.js';

/*
 * The two panels whose data lives in the governor's and the webhooks' tables. Each is one statement
 * (snapshot-sql.ts) returning rows keyed like its PANELS columns.
 */

const TOP = 15;
const usd = (micros: number) => usdText(Math.round(micros)).slice(1);
// A little spent shows as such, not as 0.0 %.
const percent = (fraction: number) => (fraction > 0 && fraction < 0.001 ? '< 0.1 %' : `${(fraction * 100).toFixed(1)} %`);

interface GovernorRow {
  tenant: string | null;
  scope: string;
  ceiling: number | null;
  spent: number;
  estimated: number | null;
  actual: number | null;
}

/**
 * Governor spend against ceilings and estimate drift (PANELS.governor): today's global spend
 * against the global daily ceiling, then each metered tenant's spend today and this month against
 * its ceilings, nearest its ceiling first. Drift is what settled jobs cost against their estimates.
 */
export async function readGovernorPanel(sql: Sql): Promise<PanelData> {
  const rows = await sql.unsafe<GovernorRow[]>(GOVERNOR_PANEL, [TOP], PREPARED);
  return {
    rows: rows.map((r) => ({
      scope: r.tenant === null ? r.scope : `${r.tenant}: ${r.scope}`,
      spent: usd(r.spent),
      ceiling: r.ceiling === null ? 'none' : usd(r.ceiling),
      used: r.ceiling === null ? '' : percent(r.spent / r.ceiling),
      drift: r.estimated ? (Number(r.actual ?? 0) / r.estimated).toFixed(3) : '',
    })),
    note:
      'Today and this month in UTC. Drift: actual ÷ estimated cost of the jobs settled in the period (estimates reserve the worst case, ' +
      'so well below 1 is normal). Refusals are not stored: see leasehold_governor_refusals_total on /metrics.',
  };
}

interface WebhookRow {
  webhook_id: string | null;
  url: string | null;
  tenant: string | null;
  delivered: number;
  failed: number;
  pending: number;
  failing_since: Date | null;
  disabled_at: Date | null;
  disabled_reason: string | null;
  last_error: string | null;
}

/**
 * Webhook delivery health (PANELS.webhooks): one row per subscription with deliveries of the last
 * hour that were delivered and that failed (given up, or failed once and waiting to retry),
 * deliveries waiting for an attempt, its state (disabled and why, or failing since when) and the
 * last error; disabled and failing subscriptions first.
 */
export async function readWebhooksPanel(sql: Sql): Promise<PanelData> {
  const rows = await sql.unsafe<WebhookRow[]>(WEBHOOKS_PANEL, [TOP], PREPARED);
  return {
    rows: rows.map((r) => ({
      webhook: r.webhook_id === null ? 'job callback URLs' : `${r.url ?? ''} (${r.webhook_id})`,
      tenant: r.tenant ?? '',
      delivered: String(r.delivered),
      failed: String(r.failed),
      pending: String(r.pending),
      state: r.disabled_at
        ? `disabled: ${r.disabled_reason ?? 'by request'}`
        : r.failing_since
          ? `failing since ${time(r.failing_since)}`
          : r.webhook_id === null ? '' : 'healthy',
      last_error: r.last_error ?? '',
    })),
    note: 'Delivered and failed: deliveries of the last hour (failed: given up, or failed and waiting to retry). Pending: waiting for an attempt.',
  };
}
