import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CHANNELS, EVENTS_GAP_MS, Notifier } from '#shared/jobs/notifier.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/db.js';
import { jobRow, testLog } from '../test/helpers/engine.js';
import { interceptUnsafe } from '../test/helpers/intercept-unsafe.js';
import { insertJobs } from '../test/helpers/job-factory.js';
import { waitFor } from '../test/helpers/wait.js';
import { Completer, type FlushReport } from './completer.js';
import type { ClaimedJob, HeldJob } from './held-job.js';

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

/** A running job of its own, as the worker holds it after a claim. */
async function runningJob(): Promise<HeldJob> {
  const token = randomUUID();
  const [id] = await insertJobs(db.sql, [{ kind: 'test.wake', queue: `wake-${randomUUID()}`, status: 'running', leaseOwner: 'A', leaseToken: token }]);
  const job = (await jobRow(db.sql, id!)) as unknown as ClaimedJob;
  return { job, token, state: 'settling', leaseDeadline: Date.now() + 60_000 };
}

/** Records when each `leasehold_events` wake-up arrives, on a connection of its own. */
async function listen(): Promise<{ at: number[]; end: () => Promise<void> }> {
  const at: number[] = [];
  const listener = db.connect({ max: 1 });
  await listener.listen(CHANNELS.events, () => void at.push(performance.now()));
  return { at, end: () => listener.end() };
}

/**
 * A Notifier whose own statements go nowhere (any wake-up that arrives came from another
 * statement), with a gap between event wake-ups longer than the test.
 */
async function deadNotifier(): Promise<Notifier> {
  const dead = db.connect({ max: 1 });
  await dead.end();
  return new Notifier(dead, () => {}, 60_000);
}

describe('the event wake-up rides in the successes statement', () => {
  test('a flush carries it when one is due, and the next flush within the gap does not', async () => {
    const heard = await listen();
    try {
      const reports: FlushReport[] = [];
      const completer = new Completer(db.sql, 'A', testLog, (_, r) => reports.push(r), await deadNotifier());
      const first = await runningJob();
      const second = await runningJob();
      completer.push(first, { type: 'success', result: null });
      await completer.drain();
      await waitFor(() => heard.at.length === 1, 'the wake-up carried by COMPLETE_JOBS');
      completer.push(second, { type: 'success', result: null });
      await completer.drain();
      expect(reports.map((r) => [r.written, r.woke])).toEqual([[1, true], [1, false]]);
      expect(await jobRow(db.sql, second.job.id)).toMatchObject({ status: 'succeeded' });
      // The second flush left the wake-up to the caller (the worker's notify(), here a dead one).
      await sleep(100);
      expect(heard.at).toHaveLength(1);
    } finally {
      await heard.end();
    }
  });

  test("a claim's wake-up asked for later waits for a statement to carry it; taken, it is not sent again", async () => {
    const heard = await listen();
    const notifier = new Notifier(db.sql);
    try {
      // Asked for later and never taken: sent on its own, no sooner than EVENTS_GAP_MS.
      const asked = performance.now();
      notifier.notify(CHANNELS.events, '', true);
      await waitFor(() => heard.at.length === 1, 'the held wake-up, sent by its timer');
      expect(heard.at[0]! - asked).toBeGreaterThanOrEqual(EVENTS_GAP_MS - 1);
      // Asked for later, then taken by a statement once the gap allows: nothing of the Notifier's own.
      await sleep(EVENTS_GAP_MS + 5);
      notifier.notify(CHANNELS.events, '', true);
      expect(notifier.takeEventsWake()).toBe(true);
      expect(notifier.takeEventsWake()).toBe(false);
      await notifier.flush();
      await sleep(EVENTS_GAP_MS * 3);
      expect(heard.at).toHaveLength(1);
    } finally {
      await heard.end();
    }
  });

  test('a wake-up taken by a statement that failed is given back to the Notifier', async () => {
    let failNext = true;
    // The first COMPLETE_JOBS fails as a lost connection would; the retry goes through.
    const flaky = interceptUnsafe(db.sql, (text, _params, run) => {
      if (failNext && text.includes('with done as')) {
        failNext = false;
        return Promise.reject(new Error('connection lost'));
      }
      return run();
    });
    const given: string[] = [];
    let takes = 0;
    const notifier = { takeEventsWake: () => (takes++, true), notify: (channel: string) => void given.push(channel) };
    const reports: FlushReport[] = [];
    const completer = new Completer(flaky, 'A', testLog, (_, r) => reports.push(r), notifier);
    const job = await runningJob();
    completer.push(job, { type: 'success', result: null });
    await completer.drain();
    expect(given).toEqual([CHANNELS.events]);
    expect(takes).toBe(2);
    expect(reports.map((r) => [r.written, r.woke])).toEqual([[1, true]]);
    expect(await jobRow(db.sql, job.job.id)).toMatchObject({ status: 'succeeded' });
  });
});
