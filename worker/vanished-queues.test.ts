import { expect, test } from 'vitest';
import { createMetrics } from '#shared/metrics/metrics.js';
import { forgetVanishedQueues } from './vanished-queues.js';
import { WorkerMetrics } from './worker-metrics.js';

test('drops the counts and series of queues that two listings in a row lack, unless a job of theirs is still counted', async () => {
  const metrics = new WorkerMetrics(createMetrics());
  const job = (queue: string) => ({ id: queue, tenant_id: 't', kind: 'system.noop', queue, payload: {}, priority: 100, attempts: 1, max_attempts: 3, cancel_requested: false, waited_ms: 1 });
  for (const q of ['gone', 'busy', 'live']) {
    metrics.claimed(1, [job(q)]);
    metrics.ran(job(q), 1);
    metrics.written(new Map([[q, { queue: q, kind: 'system.noop', outcome: 'retried' as const, n: 1 }]]));
  }
  metrics.reclaimed({ requeued: 0, failed: 1, cancelled: 0, queues: new Set(), deadLettered: new Map([['x', { queue: 'reclaimed-only', kind: 'k', n: 1 }]]) });
  const active = new Map([['gone', 0], ['busy', 1], ['live', 0]]);
  const requested = new Map([['gone', 0], ['busy', 0], ['live', 2], ['listed-only', 0]]);

  // A listing may be older than a queue's first jobs: one listing without a queue drops nothing.
  const missed = new Set<string>();
  expect(forgetVanishedQueues(new Set(['live']), [active, requested], metrics, missed)).toEqual([]);
  expect([...missed].sort()).toEqual(['gone', 'listed-only', 'reclaimed-only']);
  expect([...metrics.queues()].sort()).toEqual(['busy', 'gone', 'live', 'reclaimed-only']);
  // Listed again in between: it starts over.
  expect(forgetVanishedQueues(new Set(['live', 'gone']), [active, requested], metrics, missed).sort()).toEqual(['listed-only', 'reclaimed-only']);
  expect(forgetVanishedQueues(new Set(['live']), [active, requested], metrics, missed)).toEqual([]);
  expect(forgetVanishedQueues(new Set(['live']), [active, requested], metrics, missed)).toEqual(['gone']);
  expect(missed.size).toBe(0);
  expect([...active.keys()].sort()).toEqual(['busy', 'live']);
  expect([...requested.keys()].sort()).toEqual(['busy', 'live']);
  expect([...metrics.queues()].sort()).toEqual(['busy', 'live']);
  const text = await metrics.metrics.registry.metrics();
  expect(text).not.toMatch(/queue="(gone|reclaimed-only)"/);
  for (const q of ['busy', 'live']) {
    for (const name of ['leasehold_job_attempts_total', 'leasehold_job_retries_total', 'leasehold_job_duration_seconds_count', 'leasehold_claim_latency_seconds_count']) {
      expect(text).toContain(`${name}{queue="${q}"`);
    }
  }
});
