import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CHANNELS, EVENTS_GAP_MS, Notifier } from '#shared/jobs/notifier.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { waitFor } from '../../test/helpers/wait.js';

let db: TestDatabase;
beforeAll(async () => (db = await createTestDatabase()));
afterAll(() => db.drop());

describe('Notifier', () => {
  test('event wake-ups go out at most once per EVENTS_GAP_MS; job wake-ups at once; flush sends the held one', async () => {
    const events: number[] = [];
    const jobs: string[] = [];
    const listener = db.connect({ max: 1 });
    const notifier = new Notifier(db.sql);
    try {
      await listener.listen(CHANNELS.events, () => events.push(performance.now()));
      await listener.listen(CHANNELS.jobs, (q) => jobs.push(q));
      const started = performance.now();
      // A busy worker: an event wake-up asked for every 2 ms, with a job wake-up for a queue each time.
      for (let i = 0; i < 50; i++) {
        notifier.notify(CHANNELS.events);
        notifier.notify(CHANNELS.jobs, `q${i}`);
        await sleep(2);
      }
      const elapsed = performance.now() - started;
      await notifier.flush();
      await waitFor(() => jobs.length === 50, 'every job wake-up');
      await waitFor(() => events.length >= 2, 'the held event wake-up');
      // Every queue's wake-up arrived: none is held back or merged away.
      expect(new Set(jobs).size).toBe(50);
      // Far fewer event wake-ups than asks: one per gap (plus the first and the flushed one).
      expect(events.length).toBeLessThanOrEqual(Math.ceil(elapsed / EVENTS_GAP_MS) + 2);
      expect(events.length).toBeLessThan(25);
    } finally {
      await listener.end();
    }
  });
});
