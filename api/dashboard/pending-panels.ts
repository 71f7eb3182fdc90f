import type { Sql } from '#shared/db/connect.js';
import type { PanelData } from './panels.js';

/*
 * The two panels whose data lives in tables other parts of Leasehold own. Each is one function
 * returning rows keyed like its PANELS columns; replace the body with a query once the table is
 * there. Until then the panel says so instead of showing zeros that would look like health.
 */

/**
 * Governor spend against ceilings and estimate drift (PANELS.governor): one row per ceiling
 * (global daily, each tenant's budget) with spent, ceiling, used %, drift between estimated and
 * actual cost, and refusals today.
 */
export async function readGovernorPanel(_sql: Sql): Promise<PanelData> {
  return { rows: [], note: 'Not available: the governor has not recorded spend in this database yet.' };
}

/**
 * Webhook delivery health (PANELS.webhooks): one row per subscription with deliveries that
 * succeeded and failed in the last hour, deliveries pending, and the last error.
 */
export async function readWebhooksPanel(_sql: Sql): Promise<PanelData> {
  return { rows: [], note: 'Not available: no webhook deliveries are recorded in this database yet.' };
}
