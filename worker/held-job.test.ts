import { describe, expect, test } from 'vitest';
import { mergeByPriority, type HeldJob } from './held-job.js';

const held = (id: string, priority: number): HeldJob => ({
  job: { id, tenant_id: 't', kind: 'k', queue: 'q', payload: null, priority, attempts: 1, max_attempts: 3, waited_ms: 0, cancel_requested: false },
  token: 'token',
  state: 'buffered',
  leaseDeadline: 0,
});
const ids = (jobs: HeldJob[]) => jobs.map((h) => h.job.id);

describe('mergeByPriority', () => {
  test('a claim that sorts after everything waiting is appended to the same array', () => {
    const waiting = [held('a', 1), held('b', 5)];
    const out = mergeByPriority(waiting, [held('c', 5), held('d', 9)]);
    expect(out).toBe(waiting);
    expect(ids(out)).toEqual(['a', 'b', 'c', 'd']);
  });

  test('a later claim that locked better jobs: they go before the worse ones waiting', () => {
    // The claim sent first came back with priorities 100 and 200; the one sent with it took the 7.
    const out = mergeByPriority([held('p100', 100), held('p200', 200)], [held('p7', 7), held('p150', 150)]);
    expect(ids(out)).toEqual(['p7', 'p100', 'p150', 'p200']);
  });

  test('ties keep arrival order: jobs already waiting first', () => {
    const out = mergeByPriority([held('w1', 3), held('w2', 8)], [held('f1', 3), held('f2', 8), held('f3', 8)]);
    expect(ids(out)).toEqual(['w1', 'f1', 'w2', 'f2', 'f3']);
  });

  test('into an empty buffer, and with nothing claimed', () => {
    expect(ids(mergeByPriority([], [held('a', 2), held('b', 4)]))).toEqual(['a', 'b']);
    expect(ids(mergeByPriority([held('a', 2)], []))).toEqual(['a']);
  });
});
