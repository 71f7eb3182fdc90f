import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from './connect.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('connect', () => {
  // patches/postgres+3.4.9.patch: the pool hands out the connection that went idle last. Stock
  // postgres.js hands out the one idle longest, so a quiet process sent each statement to the next
  // of its backends in turn, each one cold (idle-worker latency p99 1.3–1.6 ms higher, README).
  test('a quiet pool keeps using the connection that went idle last', async () => {
    const sql = db.connect({ max: 4 });
    const opened = await Promise.all(
      Array.from({ length: 4 }, () => sql<{ pid: number }[]>`select pg_backend_pid() as pid, pg_sleep(0.05)`),
    );
    expect(new Set(opened.map(([r]) => r!.pid)).size).toBe(4);

    const pids: number[] = [];
    for (let i = 0; i < 8; i++) {
      const [r] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
      pids.push(r!.pid);
    }
    expect(new Set(pids).size).toBe(1);

    // A transaction reserves a connection the same way.
    const inTx = await sql.begin(async (tx) => (await tx<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid);
    expect(inTx).toBe(pids[0]);
  });

  // patches/postgres+3.4.9.patch: a connection that dropped while it fetched the server's array
  // types left that query's rejection unhandled, which ends a Node process by default: a worker or
  // API starting while PostgreSQL restarts could die of it.
  test('a connection lost while it reads the array types fails its query, with no unhandled rejection', async () => {
    const url = new URL(db.url);
    const dir = url.searchParams.get('host');
    const upstreamAt = dir?.startsWith('/')
      ? { path: `${dir}/.s.PGSQL.${url.port || '5432'}` }
      : { host: url.hostname, port: Number(url.port || 5432) };
    let resets = 0;
    const proxy = net.createServer((client) => {
      const upstream = net.connect(upstreamAt);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.pipe(client);
      let tail = Buffer.alloc(0); // the text looked for may straddle two chunks
      client.on('data', (chunk: Buffer) => {
        tail = Buffer.concat([tail.subarray(-32), chunk]);
        // The first connection is reset as it asks for the types; later ones pass.
        if (resets === 0 && tail.includes('pg_catalog.pg_type')) {
          resets++;
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
        upstream.write(chunk);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    // The same database, through the proxy.
    url.hostname = '127.0.0.1';
    url.port = String((proxy.address() as net.AddressInfo).port);
    url.searchParams.delete('host');
    const viaProxy = connect(url.toString(), { max: 1 });
    try {
      await expect(viaProxy`select 1 as one`).rejects.toMatchObject({ code: expect.stringMatching(/ECONNRESET|CONNECTION_CLOSED/) });
      expect(resets).toBe(1);
      // The pool reconnects for the next query, and the types are fetched then.
      const [row] = await viaProxy<{ ids: string[] }[]>`select array['a', 'b'] as ids`;
      expect(row!.ids).toEqual(['a', 'b']);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await viaProxy.end({ timeout: 1 });
      proxy.close();
    }
  });
});
