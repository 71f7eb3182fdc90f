import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Sql } from '#shared/db/connect.js';
import { uuidv7 } from '#shared/jobs/uuid.js';

// What the governor tests share: a pattern, an image server, and the ledger read back.

/** A real 1×1 PNG. */
export const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

/** A strict receipt schema. */
export const RECEIPT_SCHEMA = {
  type: 'object',
  properties: { merchant: { type: 'string' }, total: { type: 'number' } },
  required: ['merchant', 'total'],
  additionalProperties: false,
};

/** An active one-version pattern straight in SQL (model null: OPENAI_MODEL); returns its id. */
export async function insertPattern(sql: Sql, tenantId: string, model: string | null = null): Promise<string> {
  const id = uuidv7();
  await sql`insert into leasehold.patterns (id, tenant_id) values (${id}, ${tenantId})`;
  await sql`
    insert into leasehold.pattern_versions (pattern_id, version, tenant_id, name, instructions, json_schema, format, model, is_active)
    values (${id}, 1, ${tenantId}, 'Receipt', 'Read the receipt.', ${sql.json(RECEIPT_SCHEMA)}, 'json', ${model}, true)`;
  return id;
}

/** A loopback server answering every GET with the PNG. */
export async function startImageServer(): Promise<{ base: string; close(): Promise<void> }> {
  const server: Server = http.createServer((_req, res) => void res.writeHead(200, { 'content-type': 'image/png' }).end(PNG));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** One ledger row, amounts as numbers. */
export interface LedgerRow {
  entry: string;
  job_id: string | null;
  amount_micros: number;
  owed_micros: number;
}

/** A tenant's ledger in order. */
export async function ledgerOf(sql: Sql, tenantId: string): Promise<LedgerRow[]> {
  const rows = await sql<{ entry: string; job_id: string | null; amount_micros: string; owed_micros: string }[]>`
    select entry, job_id, amount_micros, owed_micros from leasehold.credit_ledger where tenant_id = ${tenantId} order by id`;
  return rows.map((r) => ({ ...r, amount_micros: Number(r.amount_micros), owed_micros: Number(r.owed_micros) }));
}

/** The cached balance and debt, and the same derived from the ledger: they must always agree. */
export async function balances(sql: Sql, tenantId: string) {
  const [row] = await sql<{ cached: string; owed: string; ledger: string; ledger_owed: string }[]>`
    select a.balance_micros as cached, a.owed_micros as owed,
           (select coalesce(sum(amount_micros), 0) from leasehold.credit_ledger where tenant_id = a.tenant_id) as ledger,
           (select coalesce(sum(owed_micros), 0) from leasehold.credit_ledger where tenant_id = a.tenant_id) as ledger_owed
    from leasehold.credit_accounts a where a.tenant_id = ${tenantId}`;
  return { cached: Number(row!.cached), owed: Number(row!.owed), ledger: Number(row!.ledger), ledgerOwed: Number(row!.ledger_owed) };
}

/** Jobs whose reservations are not matched by refunds (should be none once jobs have ended). */
export async function danglingReservations(sql: Sql, tenantId: string): Promise<string[]> {
  const rows = await sql<{ job_id: string }[]>`
    select l.job_id from leasehold.credit_ledger l
    join leasehold.jobs j on j.id = l.job_id and j.status in ('succeeded', 'failed', 'cancelled')
    where l.tenant_id = ${tenantId} and l.entry in ('reservation', 'refund')
    group by l.job_id having sum(l.amount_micros) <> 0`;
  return rows.map((r) => r.job_id);
}
