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
    const upstreamAt = upstreamOf(url);
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
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const viaProxy = connect(await through(proxy, url), { max: 1 });
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

  // patches/postgres+3.4.9.patch: rows are decoded where they lie in what the socket delivered,
  // not each copied out first. A proxy hands the server's bytes on in pieces a millisecond apart,
  // each the end of one message and the start of the next, cut at its first bytes, inside it or one
  // byte short of its end: rows, lengths and multi-byte characters straddle reads.
  test('rows split across socket reads, at any byte, decode as PostgreSQL sent them', async () => {
    const url = new URL(db.url);
    const upstreamAt = upstreamOf(url);
    const proxy = net.createServer((client) => {
      const upstream = net.connect(upstreamAt);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream);
      let pending = Buffer.alloc(0);
      let sending = Promise.resolve();
      let n = 0;
      upstream.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        const pieces: Buffer[] = [];
        let sent = 0;
        let at = 0;
        // Whole messages only: a type byte, then a length that counts itself.
        while (pending.length - at >= 5 && pending.length - at >= 1 + pending.readUInt32BE(at + 1)) {
          const size = 1 + pending.readUInt32BE(at + 1);
          const cuts = [1, 3, 6, 9, Math.floor(size / 2), size - 1, size - 2];
          const cut = at + Math.max(1, Math.min(size - 1, cuts[n++ % cuts.length]!));
          pieces.push(pending.subarray(sent, cut));
          sent = cut;
          at += size;
        }
        pieces.push(pending.subarray(sent, at));
        pending = pending.subarray(at);
        sending = sending.then(async () => {
          for (const piece of pieces) {
            client.write(piece);
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
        });
      });
    });
    const viaProxy = connect(await through(proxy, url), { max: 1 });
    const rows = `
      select i, case when i % 7 = 0 then null else repeat('é😀界' || i, 1 + i % 40) end as text,
             i % 3 = 0 as flag, jsonb_build_object('i', i, 'tag', 'ü' || i) as doc,
             array['a' || i, 'ß', '"q,{' || i] as tags, case when i = 77 then repeat('x', 70000) end as long
      from generate_series(1, 150) as i`;
    try {
      const got = await viaProxy.unsafe(`${rows} order by i`);
      // The same rows as one JSON text: a single value, decoded apart from the row-by-row path.
      const [{ expected }] = (await db.sql.unsafe(`select json_agg(r order by i)::text as expected from (${rows}) r`)) as unknown as [{ expected: string }];
      expect(got.map((r) => ({ ...r }))).toEqual(JSON.parse(expected));
    } finally {
      await viaProxy.end({ timeout: 1 });
      proxy.close();
    }
  });
});

/** Where `url`'s server listens, for a proxy to connect on to. */
function upstreamOf(url: URL): net.NetConnectOpts {
  const dir = url.searchParams.get('host');
  return dir?.startsWith('/') ? { path: `${dir}/.s.PGSQL.${url.port || '5432'}` } : { host: url.hostname, port: Number(url.port || 5432) };
}

/** Starts `proxy` and returns `url` leading through it. */
async function through(proxy: net.Server, url: URL): Promise<string> {
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const via = new URL(url);
  via.hostname = '127.0.0.1';
  via.port = String((proxy.address() as net.AddressInfo).port);
  via.searchParams.delete('host');
  return via.toString();
}
