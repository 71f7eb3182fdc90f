import { describe, expect, test } from 'vitest';
import { GapTracker, finishedBy, missingRanges, parseSnapshot } from './gap-tracker.js';

const snap = (xmin: number, xmax: number, xip: number[] = []) => parseSnapshot(`${xmin}:${xmax}:${xip.join(',')}`);
const rows = (...ids: number[]) => ids.map((id) => ({ id }));
const ids = (r: { id: number }[]) => r.map((x) => x.id);

describe('GapTracker', () => {
  test('parses pg_current_snapshot() text and judges finished xids', () => {
    expect(parseSnapshot('100:105:100,103')).toEqual({ xmin: 100n, xmax: 105n, xip: [100n, 103n] });
    expect(finishedBy([100n, 103n], snap(103, 110, [103]))).toBe(false);
    expect(finishedBy([100n, 103n], snap(104, 110, [104]))).toBe(true);
  });

  test('xids from the snapshot\'s xmax up to one assigned after it count as running, until a later snapshot passes them', () => {
    // 105 and 106 were assigned, and none at or above 105 had completed: xip does not list them.
    expect(parseSnapshot('100:105:100', 107n)).toEqual({ xmin: 100n, xmax: 105n, xip: [100n, 105n, 106n] });
    expect(finishedBy([106n], snap(100, 106))).toBe(false);
    expect(finishedBy([106n], snap(100, 110, [106]))).toBe(false);
    expect(finishedBy([106n], snap(100, 110, [108]))).toBe(true);
  });

  test('a hole whose writer sat above xmax holds the rows after it until that writer finishes', () => {
    const t = new GapTracker(10, 60_000);
    // Id 11's writer has xid 105; id 12's (104) committed; the reader's own xid was 106.
    expect(ids(t.accept(rows(12), parseSnapshot('105:105:', 106n), false, 0).rows)).toEqual([]);
    expect(t.holding).toBe(true);
    expect(ids(t.accept(rows(11, 12), snap(107, 107), false, 10).rows)).toEqual([11, 12]);
  });

  test('contiguous ids go out at once; a hole with no transaction open is settled at once', () => {
    const t = new GapTracker(10, 1_000);
    expect(ids(t.accept(rows(11, 12, 13), snap(50, 50), false, 0).rows)).toEqual([11, 12, 13]);
    expect(ids(t.accept(rows(15, 16), snap(51, 51), false, 0).rows)).toEqual([15, 16]);
    expect(t.cursor).toBe(16);
    expect(t.holding).toBe(false);
  });

  test('a hole while transactions are open holds later ids until they have finished', () => {
    const t = new GapTracker(10, 1_000);
    const first = t.accept(rows(12, 13), snap(40, 45, [40, 42]), false, 0);
    expect(first.rows).toEqual([]);
    expect(first.holding).toBe(true);
    // 42 finished, 40 not yet: still held.
    expect(t.accept(rows(12, 13), snap(40, 46, [40, 45]), false, 10).rows).toEqual([]);
    // Both finished; id 11 came in: all three in order.
    expect(ids(t.accept(rows(11, 12, 13), snap(46, 47, [46]), false, 20).rows)).toEqual([11, 12, 13]);
    expect(t.cursor).toBe(13);
  });

  test('a hole whose writers finished without it is skipped for good', () => {
    const t = new GapTracker(10, 1_000);
    t.accept(rows(12), snap(40, 41, [40]), false, 0);
    const d = t.accept(rows(12, 14), snap(41, 41), false, 5);
    expect(ids(d.rows)).toEqual([12, 14]);
    expect(t.isWatched(11)).toBe(false);
  });

  test('after the timeout the hole is passed and watched; a late commit is delivered as late', () => {
    const t = new GapTracker(10, 100);
    t.accept(rows(12), snap(40, 41, [40]), false, 0);
    const passed = t.accept(rows(12), snap(40, 42, [40]), false, 150);
    expect(ids(passed.rows)).toEqual([12]);
    expect(t.isWatched(11)).toBe(true);
    expect(t.lateRanges()).toEqual({ lo: [11], hi: [11] });
    const late = t.accept(rows(11, 13), snap(42, 43), false, 200);
    expect(ids(late.late)).toEqual([11]);
    expect(ids(late.rows)).toEqual([13]);
    expect(t.isWatched(11)).toBe(false);
  });

  test('a full page vouches only for the ids it read', () => {
    const t = new GapTracker(0, 1_000);
    const d = t.accept(rows(1, 2, 4), snap(9, 9), true, 0);
    expect(ids(d.rows)).toEqual([1, 2, 4]);
    expect(t.cursor).toBe(4);
  });

  test('missingRanges lists the ids of a range that are absent', () => {
    expect(missingRanges(10, 20, [11, 12, 15, 20])).toEqual([[13, 14], [16, 19]]);
    expect(missingRanges(10, 12, [])).toEqual([[11, 12]]);
  });
});
