import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApiKey } from '#shared/auth/api-keys.js';
import { ensureTenant } from '#shared/auth/tenants.js';
import { createTestApi } from '../../test/helpers/api.js';
import { queueFor, testLog } from '../../test/helpers/engine.js';
import { serveTestApi, type ServedApi } from '../../test/helpers/served-api.js';
import { OwnCluster } from '../../test/helpers/own-cluster.js';
import { openStream, type StreamClient } from '../../test/helpers/sse.js';
import { waitFor } from '../../test/helpers/wait.js';
import { EventHub } from './event-hub.js';

let cluster: OwnCluster;

beforeAll(async () => {
  cluster = await OwnCluster.start('sse-restart');
});
afterAll(async () => {
  await cluster?.remove();
});

describe('PostgreSQL restart under open streams', () => {
  test('clients stay connected through the restart, and every event reaches each of them exactly once', async () => {
    const apiSql = cluster.open(10);
    const producerSql = cluster.open(2);
    const checkSql = cluster.open(1);
    // The poll is an hour away: after the restart only the reader's own recovery (a failed read
    // retried, a LISTEN set up again, or postgres.js's re-LISTEN) can make it catch up, from the
    // last id it passed.
    const hub = new EventHub({
      sql: apiSql,
      log: testLog,
      pollMs: 3_600_000,
      gapTimeoutMs: 5_000,
      keepAliveMs: 15_000,
      clientBufferBytes: 4 << 20,
      listenCheckMs: 1_000,
    });
    await hub.start();
    const api = createTestApi(apiSql, { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_S: '100000' }, { events: hub });
    let served: ServedApi | undefined;
    const clients: StreamClient[] = [];
    let producing = true;
    let producer: Promise<void> | undefined;
    try {
      served = await serveTestApi(api);
      const tenant = await ensureTenant(apiSql, 'restart');
      const { key } = await createApiKey(apiSql, { tenantId: tenant.id, name: 'restart', scopes: ['jobs:read'] });
      const [startRow] = await checkSql<{ start: number }[]>`select coalesce(max(id), 0)::float8 as start from leasehold.job_events`;
      const start = startRow!.start;
      for (let i = 0; i < 3; i++) clients.push(openStream(served.base, '/v1/events', { key, lastEventId: String(start) }));
      await waitFor(() => clients.every((c) => c.es.readyState === 1), 'the streams to open');

      let producerErrors = 0;
      const q = queueFor(producerSql);
      producer = (async () => {
        while (producing) {
          try {
            await q.enqueueMany(Array.from({ length: 10 }, () => ({ kind: 'test.restart', queue: 'restart', tenantId: tenant.id })));
          } catch {
            producerErrors++;
          }
          await sleep(15);
        }
      })();
      await waitFor(() => clients.every((c) => c.events.length >= 50), 'events before the restart', 20_000);

      await cluster.stop();
      await waitFor(() => producerErrors > 0, 'the producer to notice the outage');
      await cluster.restart();
      const [countRow] = await checkSql<{ n: number }[]>`select count(*)::int as n from leasehold.job_events`;
      const before = countRow!.n;
      await waitFor(async () => {
        const [r] = await checkSql<{ n: number }[]>`select count(*)::int as n from leasehold.job_events`;
        return r!.n >= before + 100;
      }, 'the producer to enqueue again', 30_000);
      producing = false;
      await producer;

      const all = (await checkSql<{ id: number }[]>`
        select id::float8 as id from leasehold.job_events where tenant_id = ${tenant.id} and id > ${start} order by id`).map((r) => r.id);
      for (const c of clients) {
        await c.until(() => c.ids().length >= all.length, `a client to catch up (it has ${c.ids().length} of ${all.length}; hub cursor ${hub.cursor}, last id ${all[all.length - 1]})`, 30_000);
      }
      await sleep(100);
      // None missing, none twice, in order; and no client had to reconnect.
      for (const c of clients) expect(c.ids()).toEqual(all);
      expect(clients.every((c) => c.es.readyState === 1)).toBe(true);
      expect(hub.size).toBe(3);
      // The LISTEN hears again: a new event arrives with the poll an hour away.
      const [next] = (await q.enqueueMany([{ kind: 'test.restart', queue: 'restart', tenantId: tenant.id }])).ids;
      for (const c of clients) await c.until((e) => e.some((x) => x.data.id === next), 'an event after the restart, by NOTIFY', 10_000);
    } finally {
      producing = false;
      await producer;
      for (const c of clients) c.close();
      await hub.close();
      await served?.close();
    }
  }, 120_000);
});
