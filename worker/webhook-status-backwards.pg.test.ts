import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '#shared/config.js';
import { WEBHOOKS_QUEUE } from '#shared/webhooks/delivery.js';
import { createTestApi, type TestApi } from '../test/helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { deferred } from '../test/helpers/deferred.js';
import { WorkerPool, jobRow } from '../test/helpers/engine.js';
import { waitFor } from '../test/helpers/wait.js';
import { claimsSettled, loseLease, zombieSettings } from '../test/helpers/zombie.js';

// A webhook.deliver attempt recorded its outcome without asking whether it still held the job's
// lease. A worker stalled in a send, whose lease was reclaimed and whose delivery another worker
// then made, came back with its failure and set the delivered delivery back to pending, cleared
// delivered_at, and marked the subscription failing.

let db: TestDatabase;
let api: TestApi;
let server: Server | undefined;
const pool = new WorkerPool();
beforeAll(async () => {
  db = await createTestDatabase();
  api = createTestApi(db.sql, { FETCH_ALLOW_PRIVATE: 'true' });
});
afterEach(async () => {
  await pool.stopAll();
  if (server) await new Promise((r) => (server!.closeAllConnections(), server!.close(r)));
  server = undefined;
});
afterAll(() => db.drop());

const config = loadConfig({ FETCH_ALLOW_PRIVATE: 'true', WEBHOOK_TIMEOUT_MS: '30000', LOG_LEVEL: 'silent' });

test("a zombie's failed attempt, returning after another worker delivered, leaves the delivery delivered and the subscription healthy", async () => {
  // The receiver holds the first request until the test lets it fail; every later one succeeds.
  const firstArrived = deferred();
  const releaseFirst = deferred();
  let requests = 0;
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (++requests > 1) return void res.writeHead(200).end('ok');
      firstArrived.resolve();
      void releaseFirst.promise.then(() => res.writeHead(500).end('stalled attempt'));
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;

  const t = await api.tenant('zombie-hook');
  const res = await api.request(t.key, 'POST', '/v1/webhooks', { url });
  expect(res.status).toBe(201);
  const hook = (await res.json()) as { id: string };
  const [d] = await db.sql<{ id: string; deliver_job_id: string }[]>`
    insert into leasehold.webhook_deliveries (id, tenant_id, webhook_id, job_id, event)
    values (leasehold.uuid_v7(), ${t.tenantId}::uuid, ${hook.id}::uuid, leasehold.uuid_v7(), 'job.succeeded')
    returning id, deliver_job_id`;

  const zombie = await pool.start({ sql: db.sql, config, id: 'zombie-A', settings: zombieSettings(WEBHOOKS_QUEUE) });
  await firstArrived.promise;
  await claimsSettled(zombie);
  await loseLease(db.sql, d!.deliver_job_id);

  await pool.start({ sql: db.sql, config, id: 'owner-B', settings: { ...zombieSettings(WEBHOOKS_QUEUE), pollMs: 50 } });
  await waitFor(async () => (await jobRow(db.sql, d!.deliver_job_id)).status === 'succeeded', 'B to deliver');
  const delivered = await delivery(d!.id);
  expect(delivered).toMatchObject({ status: 'delivered', attempts: 1, last_status_code: 200, delivered_at: expect.any(Date) });

  // The zombie's send now fails: nothing of it may be recorded, and its outcome is fenced.
  releaseFirst.resolve();
  await waitFor(() => zombie.counters.fenced === 1, "the zombie's outcome to be fenced");
  expect(await delivery(d!.id)).toEqual(delivered);
  const [h] = await db.sql`select failing_since, disabled_at from leasehold.webhooks where id = ${hook.id}`;
  expect(h).toEqual({ failing_since: null, disabled_at: null });
  const attempts = await db.sql`select attempt, status_code from leasehold.webhook_delivery_attempts where delivery_id = ${d!.id} order by id`;
  expect(attempts).toEqual([{ attempt: 2, status_code: 200 }]);
});

async function delivery(id: string) {
  const [row] = await db.sql`
    select status, attempts, last_status_code, last_error, next_retry_at, delivered_at
    from leasehold.webhook_deliveries where id = ${id}`;
  return row!;
}
