import type { WorkerMetrics } from './worker-metrics.js';

/**
 * With WORKER_QUEUES=all, what a worker keeps per queue would otherwise grow with every queue it
 * ever served, and every queue name a tenant ever made: drops the queues that no longer exist
 * (retention deleted them) from each per-queue count, and their metric series, once no count
 * holds anything of theirs. Returns the queues dropped.
 *
 * A queue is dropped only when two listings in a row lack it (`missed` carries the queues the
 * last one lacked). A listing read before a new queue's first jobs committed may return after the
 * worker ran them: that queue is missing from it, though it exists, and its series are fresh.
 * The next listing starts after that one returned, so it sees the queue.
 */
export function forgetVanishedQueues(
  existing: ReadonlySet<string>,
  counts: readonly Map<string, number>[],
  metrics: WorkerMetrics,
  missed: Set<string>,
): string[] {
  const candidates = new Set(metrics.queues());
  for (const count of counts) for (const q of count.keys()) candidates.add(q);
  const gone: string[] = [];
  const missing: string[] = [];
  for (const q of candidates) {
    if (existing.has(q) || counts.some((count) => (count.get(q) ?? 0) !== 0)) continue;
    if (!missed.has(q)) {
      missing.push(q);
      continue;
    }
    for (const count of counts) count.delete(q);
    metrics.forgetQueue(q);
    gone.push(q);
  }
  missed.clear();
  for (const q of missing) missed.add(q);
  return gone;
}
