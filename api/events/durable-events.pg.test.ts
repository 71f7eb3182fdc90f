import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { deferred } from '../../test/helpers/deferred.js';
import { WorkerPool, jobRow, queueFor, testLog } from '../../test/helpers/engine.js';
import { OwnCluster } from '../../test/helpers/own-cluster.js';
import { waitFor } from '../../test/helpers/wait.js';
import { EventReader } from './event-reader.js';
import type { EventRow } from './event-sql.js';

// Claims commit without waiting for the WAL flush (WORKER_ASYNC_CLAIMS, the default). Their rows
// are visible at once, so the event reader must not hand a claim's job.running on before it is on
// disk. The WAL writer here flushes at most every 10 s (the longest wal_writer_delay), so an
// asynchronous commit stays off disk for seconds unless something flushes it; SIGQUIT then loses it.

let cluster: OwnCluster;
const workers = new WorkerPool();
const readers: EventReader[] = [];
const holds: (() => void)[] = [];

beforeAll(async () => {
  cluster = await OwnCluster.start('durable-events', { wal_writer_delay: '10000' });
});
afterEach(async () => {
  for (const release of holds.splice(0)) release();
  await Promise.all(readers.splice(0).map((r) => r.stop()));
  await workers.stopAll();
});
afterAll(async () => {
  await cluster?.remove();
});

/** A worker with asynchronous claims whose system.noop handler holds its job until `release`. */
async function holdingWorker(sql: Sql) {
  const release = deferred();
  holds.push(() => release.resolve());
  await workers.start({
    sql,
    handlers: { 'system.noop': async () => (await release.promise, null) },
    settings: { asyncClaims: true, heartbeatMs: 60_000, pollMs: 60_000 },
  });
  return release;
}

/** An event reader on `sql` that records every row it hands on. */
async function recordingReader(sql: Sql): Promise<{ reader: EventReader; delivered: EventRow[] }> {
  const delivered: EventRow[] = [];
  const reader = new EventReader({ sql, log: testLog, pollMs: 3_600_000, gapTimeoutMs: 5_000, onBatch: async (b) => void delivered.push(...b.rows) });
  await reader.start();
  readers.push(reader);
  return { reader, delivered };
}

const runningEvent = (delivered: EventRow[], jobId: string) => delivered.find((e) => e.job_id === jobId && e.type === 'job.running');

describe('event streams hand on only what a crash cannot take back', () => {
  test('control: a claim committed without waiting for the flush is gone after a crash', async () => {
    const sql = cluster.open(4);
    const release = await holdingWorker(sql);
    const { id } = await queueFor(sql).enqueue({ kind: 'system.noop', payload: {} });
    const claimed = await waitFor(async () => {
      const row = await jobRow(sql, id);
      return row.status === 'running' && (row.lease_token as string);
    }, 'the claim');
    // Nothing has written the claim's commit record to the WAL files yet.
    const [wal] = await sql<{ unwritten: boolean }[]>`select pg_current_wal_lsn() < pg_current_wal_insert_lsn() as unwritten`;
    expect(wal!.unwritten).toBe(true);

    await cluster.crash();
    // The claim is undone (the worker may have claimed the job again since: a new token).
    expect((await jobRow(sql, id)).lease_token).not.toBe(claimed);
    release.resolve();
    await waitFor(async () => (await jobRow(sql, id)).status === 'succeeded', 'the job to run again and succeed');
  });

  test('a job.running the reader handed on is still there after a crash: the reader flushed the WAL first', async () => {
    const sql = cluster.open(4);
    const { reader, delivered } = await recordingReader(cluster.open(2));
    const release = await holdingWorker(sql);
    const { id } = await queueFor(sql).enqueue({ kind: 'system.noop', payload: {} });
    const sent = await waitFor(() => runningEvent(delivered, id), 'the reader to hand on job.running');
    const { lease_token: token } = await jobRow(sql, id);

    await cluster.crash();
    const [row] = await sql<{ job_id: string; type: string }[]>`select job_id, type from leasehold.job_events where id = ${sent.id}`;
    expect(row).toEqual({ job_id: id, type: 'job.running' });
    expect((await jobRow(sql, id)).lease_token).toBe(token);
    expect(reader.walFlush.forced).toBeGreaterThan(0);
    release.resolve();
    await waitFor(async () => (await jobRow(sql, id)).status === 'succeeded', 'the job to finish on its first claim');
  });

  test('where the logical message is not allowed, the reader waits for another commit to flush the WAL', async () => {
    const admin = cluster.open(4);
    await admin.unsafe(`
      do $$ begin
        if not exists (select 1 from pg_roles where rolname = 'stream_reader') then
          create role stream_reader login password 'stream_reader';
        end if;
      end $$;
      grant usage on schema leasehold to stream_reader;
      grant select on leasehold.job_events to stream_reader;
      revoke execute on function pg_logical_emit_message(boolean, text, text, boolean) from public`);
    try {
      const url = new URL(cluster.url);
      url.username = 'stream_reader';
      url.password = 'stream_reader';
      const { reader, delivered } = await recordingReader(cluster.open(2, url.toString()));
      const release = await holdingWorker(admin);
      const { id } = await queueFor(admin).enqueue({ kind: 'system.noop', payload: {} });
      await waitFor(() => reader.walFlush.waited > 0, 'the reader to fall back to waiting for a flush');
      const [wal] = await admin<{ flushed: boolean }[]>`select pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() as flushed`;
      // Unless the WAL writer's own flush came between (it runs every 10 s here), the claim is not
      // on disk and its job.running is held back.
      if (!wal!.flushed) expect(runningEvent(delivered, id)).toBeUndefined();

      // Any durable commit flushes the WAL before it: here, another job.
      await queueFor(admin).enqueue({ kind: 'system.noop', queue: 'elsewhere', payload: {} });
      await waitFor(() => runningEvent(delivered, id), 'job.running once the WAL is flushed', 2_000);
      expect(reader.walFlush.forced).toBe(0);
      release.resolve();
    } finally {
      await admin`grant execute on function pg_logical_emit_message(boolean, text, text, boolean) to public`;
    }
  });
});
