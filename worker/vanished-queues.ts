import type { WorkerMetrics } from './worker-metrics.js';

/**
 * With WORKER_QUEUES=all, what a worker keeps per queue would otherwise grow with every queue it
 * ever served, and every queue name a tenant ever made: drops the queues that no longer exist
 * (retention deleted them) from each per-queue count, and their metric series, once no count
 * holds anything of theirs. Returns the queues dropped.
 */
export function forgetVanishedQueues(existing: ReadonlySet<string>, counts: readonly Map<string, number>[], metrics: WorkerMetrics): string[] {
  const candidates = new Set(metrics.queues());
  for (const count of counts) for (const q of count.keys()) candidates.add(q);
  const gone: string[] = [];
  for (const q of candidates) {
    if (existing.has(q) || counts.some((count) => (count.get(q) ?? 0) !== 0)) continue;
    for (const count of counts) count.delete(q);
    metrics.forgetQueue(q);
    gone.push(q);
  }
  return gone;
}
