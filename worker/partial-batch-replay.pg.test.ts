import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createMetrics } from '#shared/metrics/metrics.js';
import { WEBHOOKS_QUEUE } from '#shared/webhooks/delivery.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { WorkerPool, jobRow, queueFor, testLog } from '../test/helpers/engine.js';
import { insertJobs } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';
import { Completer, type FlushReport } from './completer.js';
import type { ClaimedJob, HeldJob } from './held-job.js';

// A batch of outcomes is written as two statements at once, COMPLETE_JOBS for the successes and
// FAIL_JOBS for the rest. When only one of them failed, the whole batch was written again: the
// part that had committed was then refused by its own fence, so the worker reported its own
// successes as "the lease had moved on" (counted fenced, never succeeded) and lost the webhooks
// queue's wake-up.

let db: TestDatabase;
const pool = new WorkerPool();
beforeAll(async () => {
  db = await createTestDatabase();
  // Test-side fault: once armed for an event type, the next statement writing such an event
  // raises. Sequences are not rolled back with the statement, so only that one does.
  await db.sql.unsafe(`
    create sequence fail_once_seq;
    create table fail_once (type text primary key, armed_at bigint not null);
    create function fail_once() returns trigger language plpgsql as $$
    begin
      if exists (select 1 from fail_once where type = new.type)
         and nextval('fail_once_seq') = (select armed_at + 1 from fail_once where type = new.type) then
        raise exception 'injected failure of a % write', new.type;
      end if;
      return new;
    end $$;
    create trigger fail_once before insert on leasehold.job_events for each row execute function fail_once();`);
});
afterEach(() => pool.stopAll());
afterAll(() => db.drop());

/** Makes the next statement that writes a `type` event fail (once); one type is armed at a time. */
async function failNextWriteOf(type: string): Promise<void> {
  await db.sql.begin(async (tx) => {
    await tx`delete from fail_once`;
    await tx`insert into fail_once (type, armed_at) values (${type}, nextval('fail_once_seq'))`;
  });
}

const KIND_OK = 'test.partial-ok';
const KIND_FAIL = 'test.partial-fail';

describe('a batch whose successes committed while its failures did not', () => {
  test('the successes are counted succeeded once, nothing is fenced, and the webhooks queue is woken', async () => {
    const queue = `partial-${randomUUID().slice(0, 8)}`;
    const wakes: string[] = [];
    const listening = await db.sql.listen('leasehold_jobs', (q) => wakes.push(q));
    try {
      await failNextWriteOf('job.retrying');
      const { ids } = await queueFor(db.sql).enqueueMany([
        { kind: KIND_OK, queue, payload: { webhook_url: 'https://example.com/hook' } },
        { kind: KIND_FAIL, queue, maxAttempts: 5 },
      ]);
      const metrics = createMetrics();
      const w = await pool.start({
        sql: db.sql,
        metrics,
        settings: { pollMs: 50, queues: [{ name: queue }] },
        handlers: {
          [KIND_OK]: () => ({ fine: true }),
          [KIND_FAIL]: () => {
            throw new Error('nope');
          },
        },
      });
      await waitFor(async () => {
        const failing = await jobRow(db.sql, ids[1]!);
        return failing.status === 'queued' && failing.attempts === 1;
      }, 'the retry to be written after the injected failure');
      await w.stop();

      expect(await jobRow(db.sql, ids[0]!)).toMatchObject({ status: 'succeeded', result: { fine: true } });
      expect(w.counters.fenced).toBe(0);
      const text = await metrics.registry.metrics();
      const attempts = (outcome: string, kind: string) =>
        Number(text.match(new RegExp(`^leasehold_job_attempts_total\\{[^}]*kind="${kind.replace('.', '\\.')}"[^}]*outcome="${outcome}"[^}]*\\} (\\d+)$`, 'm'))?.[1] ?? 0);
      expect(attempts('succeeded', KIND_OK)).toBe(1);
      expect(attempts('retried', KIND_FAIL)).toBe(1);
      await waitFor(() => wakes.includes(WEBHOOKS_QUEUE), 'the webhooks queue to be woken');
    } finally {
      await listening.unlisten();
    }
  });

  /** A HeldJob as the worker keeps it while its outcome is written. */
  async function held(id: string, token: string): Promise<HeldJob> {
    const job = (await jobRow(db.sql, id)) as unknown as ClaimedJob;
    return { job, token, state: 'settling', leaseDeadline: Date.now() + 60_000 };
  }

  test.each([
    ['FAIL_JOBS fails, COMPLETE_JOBS commits', 'job.retrying'],
    ['COMPLETE_JOBS fails, FAIL_JOBS commits', 'job.succeeded'],
  ])('%s: only the failed part is written again, and each outcome is reported written once', async (_what, failing) => {
    const queue = `partial-${randomUUID().slice(0, 8)}`;
    const [ok, bad] = [randomUUID(), randomUUID()];
    const [okId, badId] = await insertJobs(db.sql, [
      { kind: KIND_OK, queue, status: 'running', leaseOwner: 'A', leaseToken: ok, attempts: 1 },
      { kind: KIND_FAIL, queue, status: 'running', leaseOwner: 'A', leaseToken: bad, attempts: 1, maxAttempts: 5 },
    ]);
    await failNextWriteOf(failing);
    const reports: FlushReport[] = [];
    const written: string[] = [];
    const completer = new Completer(db.sql, 'A', testLog, (h, report) => (written.push(...h.map((x) => x.job.id)), reports.push(report)));
    // Pushed in one tick, so that both go out in one batch.
    const [heldOk, heldBad] = [await held(okId!, ok), await held(badId!, bad)];
    completer.push(heldOk, { type: 'success', result: { fine: true } });
    completer.push(heldBad, { type: 'retry', code: 'boom', message: 'nope', retryAt: new Date(Date.now() + 60_000) });
    await completer.drain();

    expect(await jobRow(db.sql, okId!)).toMatchObject({ status: 'succeeded' });
    expect(await jobRow(db.sql, badId!)).toMatchObject({ status: 'queued', last_error: 'nope' });
    expect(written.sort()).toEqual([okId, badId].sort());
    expect(reports.reduce((n, r) => n + r.fenced, 0)).toBe(0);
    expect(reports.reduce((n, r) => n + r.written, 0)).toBe(2);
    const tally = reports.flatMap((r) => [...r.tally.values()]).map(({ kind, outcome, n }) => ({ kind, outcome, n }));
    expect(tally).toEqual(expect.arrayContaining([{ kind: KIND_OK, outcome: 'succeeded', n: 1 }, { kind: KIND_FAIL, outcome: 'retried', n: 1 }]));
    expect(tally).toHaveLength(2);
  });
});
