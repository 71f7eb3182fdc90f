import { describe, expect, test } from 'vitest';
import { ClaimSizing } from './claim-sizing.js';

describe('ClaimSizing', () => {
  test('before any handler is timed, the prefetch is the slots and no claim goes out ahead', () => {
    const s = new ClaimSizing(500);
    expect(s.factor()).toBe(1);
    expect(s.prefetch(10)).toBe(10);
    expect(s.claimsAhead).toBe(false);
    // 10 slots + 10 prefetched, in two claims of 10.
    expect(s.room(10, 0)).toEqual({ room: 10, capacity: 20 });
  });

  test('handlers far faster than claims: twenty times the slots, at most two batches, claims ahead', () => {
    const s = new ClaimSizing(500);
    s.claimed(10);
    s.ran(0.01);
    expect(s.factor()).toBe(20);
    expect(s.claimsAhead).toBe(true);
    expect(s.prefetch(10)).toBe(200);
    expect(s.prefetch(200)).toBe(1_000);
    // c=50: 1,050 in hand at most, two claims of 500; the second waits for half a claim of room.
    expect(s.room(50, 0)).toEqual({ room: 500, capacity: 1_050 });
    expect(s.room(50, 550)).toEqual({ room: 500, capacity: 1_050 });
    expect(s.room(50, 850)).toBeUndefined();
  });

  test('handlers slower than claims: half the slots, one claim at a time, and a single open slot is claimed', () => {
    const s = new ClaimSizing(500);
    s.ran(100);
    expect(s.factor()).toBe(0.5);
    expect(s.claimsAhead).toBe(false);
    expect(s.prefetch(4)).toBe(2);
    // 4 running and 1 buffered of a capacity of 6: half the prefetch (1) is open, so it claims.
    expect(s.room(4, 5)).toEqual({ room: 1, capacity: 6 });
  });
});
