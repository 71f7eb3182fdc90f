import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '#shared/config.js';
import { Governor } from '#shared/governor/governor.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool } from '../test/helpers/engine.js';
import { balances, danglingReservations, insertPattern, ledgerOf, startImageServer } from '../test/helpers/governor.js';
import { serveTestApi, type ServedApi } from '../test/helpers/served-api.js';
import { waitFor } from '../test/helpers/wait.js';

// Credit for exactly N jobs, 10×N concurrent ingests on as many connections: exactly N may pass.
const N = 6;

let db: TestDatabase;
let api: TestApi;
let served: ServedApi;
let images: Awaited<ReturnType<typeof startImageServer>>;
const pool = new WorkerPool();
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { FETCH_ALLOW_PRIVATE: 'true', RATE_LIMIT_PER_S: '100000', RATE_LIMIT_BURST: '100000', DATABASE_POOL_MAX: '20' });
  served = await serveTestApi(api);
  images = await startImageServer();
});
afterAll(async () => {
  await pool.stopAll();
  await served.close();
  await images.close();
  await db.drop();
});

/** POST on a connection of its own (no keep-alive): every request is a separate client. */
function postOnNewConnection(url: string, key: string, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test(`a tenant with credit for exactly ${N} jobs gets exactly ${N} of ${10 * N} concurrent ingests; the ledger balances and nothing dangles`, async () => {
  const { tenantId, key } = await api.tenant('racer');
  const admin = await api.tenant('operator', ['admin']);
  const pattern = await insertPattern(db.sql, tenantId);
  const governor = new Governor(api.config);
  const estimate = governor.manifestEstimate(await governor.patternInputs(db.sql, tenantId, pattern)).micros;
  expect(estimate).toBeGreaterThan(0);

  const grant = await served.call('POST', '/v1/admin/credits', admin.key, { tenant: 'racer', usd: (N * estimate) / 1_000_000 });
  expect(grant.status).toBe(201);
  expect(grant.body).toMatchObject({ metered: true, balance_micros: N * estimate });

  const url = `${served.base}/v1/patterns/${pattern}/ingest`;
  const answers = await Promise.all(
    Array.from({ length: 10 * N }, (_, i) => postOnNewConnection(url, key, { image_url: `${images.base}/receipt-${i}.png` })),
  );
  const accepted = answers.filter((a) => a.status === 202);
  const refused = answers.filter((a) => a.status === 402);
  expect(accepted).toHaveLength(N);
  expect(refused).toHaveLength(9 * N);
  for (const r of refused) {
    expect(r.body).toMatchObject({ code: 'budget_exceeded', status: 402, ceiling: 'credit_balance', limit_micros: 0, requested_micros: estimate, exceeded_by_micros: estimate });
  }

  // Exactly N jobs and N reservations; the balance is exactly zero, in the cache and in the ledger.
  const jobs = await db.sql<{ id: string; estimate_micros: string }[]>`select id, estimate_micros from leasehold.jobs where tenant_id = ${tenantId}`;
  expect(jobs.map((j) => j.id).sort()).toEqual(accepted.map((a) => a.body.job_id).sort());
  expect(jobs.every((j) => Number(j.estimate_micros) === estimate)).toBe(true);
  const afterBurst = await ledgerOf(db.sql, tenantId);
  expect(afterBurst.map((r) => r.entry)).toEqual(['grant', ...Array<string>(N).fill('reservation')]);
  expect(await balances(db.sql, tenantId)).toEqual({ cached: 0, owed: 0, ledger: 0, ledgerOwed: 0 });

  // The jobs run (fake provider, priced as the default model); each settles: refund, then the actual cost.
  const config = loadConfig({ LOG_LEVEL: 'silent', FETCH_ALLOW_PRIVATE: 'true', LEASEHOLD_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'leasehold-race-')) });
  await pool.start({ sql: db.sql, config, settings: { pollMs: 50 } });
  await waitFor(async () => {
    const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from leasehold.jobs where tenant_id = ${tenantId} and status = 'succeeded'`;
    return r!.n === N;
  }, 'every accepted job to succeed', 30_000);
  await waitFor(async () => (await ledgerOf(db.sql, tenantId)).filter((r) => r.entry === 'settlement').length === N, 'every job settled');

  expect(await danglingReservations(db.sql, tenantId)).toEqual([]);
  const [spent] = await db.sql<{ micros: string }[]>`select sum(cost_micros) as micros from leasehold.cost_events where tenant_id = ${tenantId}`;
  const actual = Number(spent!.micros);
  expect(actual).toBeGreaterThan(0);
  expect(actual).toBeLessThanOrEqual(N * estimate);
  const end = await balances(db.sql, tenantId);
  expect(end).toEqual({ cached: N * estimate - actual, owed: 0, ledger: N * estimate - actual, ledgerOwed: 0 });
  const ledger = await ledgerOf(db.sql, tenantId);
  expect(ledger.filter((r) => r.entry === 'refund').reduce((s, r) => s + r.amount_micros, 0)).toBe(N * estimate);
  expect(ledger.filter((r) => r.entry === 'settlement').reduce((s, r) => s + r.amount_micros, 0)).toBe(-actual);
}, 180_000);
