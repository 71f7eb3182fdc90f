import { describe, expect, test } from 'vitest';
import type { ClaimPlan } from './claim-sizing.js';
import { QueuePlanner } from './queue-planner.js';

const queues = ['a', 'b', 'c', 'd', 'e'];
const room10 = () => 10;

/** A planner over `queues` whose first (start) plan has gone out. */
function started(): QueuePlanner {
  const p = new QueuePlanner();
  p.queues = queues;
  p.plan(10, room10);
  return p;
}

/** What a claim of `plan` took: `got[q]` rows of queue q. */
const took = (got: Record<string, number>) => new Map(Object.entries(got));
const rowsOf = (got: Record<string, number>) => Object.values(got).reduce((a, b) => a + b, 0);

describe('QueuePlanner', () => {
  test('a start plan covers every queue, and each later full plan starts one queue further on', () => {
    const p = new QueuePlanner();
    p.queues = queues;
    expect(p.wanted).toBe(true);
    expect(p.plan(10, room10)?.queues).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(p.wanted).toBe(false);
    p.want();
    expect(p.plan(10, room10)?.queues).toEqual(['b', 'c', 'd', 'e', 'a']);
  });

  test('a wake-up plans the queues wake-ups named, and only those', () => {
    const p = started();
    p.want('d');
    p.want('b');
    expect(p.plan(10, room10)).toEqual({ queues: ['b', 'd'], limits: [10, 10], total: 10 });
  });

  test('a backlog puts the queues that filled their limit first, then the rest in rotation', () => {
    const p = started();
    p.want();
    const plan = p.plan(10, room10)!; // b c d e a
    p.claimed(plan, took({ d: 10 }), 10);
    p.want(null, true);
    expect(p.plan(10, room10)?.queues).toEqual(['d', 'c', 'e', 'a', 'b']);
  });

  test('a queue read to its end by a claim that fell short of its total is no longer busy', () => {
    const p = started();
    const first: ClaimPlan = { queues: ['c', 'd'], limits: [5, 5], total: 10 };
    p.claimed(first, took({ c: 5, d: 5 }), 10);
    // Short of the total: c filled its limit again, d was read to its end.
    p.claimed(first, took({ c: 5, d: 2 }), 7);
    p.want(null, true);
    expect(p.plan(10, room10)?.queues).toEqual(['c', 'b', 'd', 'e', 'a']);
  });

  test('a claim that reached its total: queues before the one it stopped in were read to their end, those after it were not read', () => {
    const p = started();
    const plan: ClaimPlan = { queues: ['a', 'b', 'c'], limits: [10, 10, 10], total: 10 };
    p.claimed(plan, took({ a: 10, c: 10 }), 20); // a and c busy
    p.claimed(plan, took({ a: 6, b: 4 }), 10); // a ran dry; stopped in b; c was never reached
    p.want(null, true);
    expect(p.plan(10, room10)?.queues).toEqual(['b', 'c', 'd', 'e', 'a']);
  });

  test('every eighth backlog plan leads with the queues that are not busy', () => {
    const p = started();
    p.claimed({ queues: ['e'], limits: [10], total: 10 }, took({ e: 10 }), 10);
    const plans: string[][] = [];
    for (let i = 0; i < 16; i++) {
      p.want(null, true);
      plans.push([...p.plan(10, room10)!.queues]);
    }
    // e leads seven plans; the eighth starts with the others (in rotation) and ends with e.
    expect(plans.slice(0, 7).map((q) => q[0])).toEqual(Array(7).fill('e'));
    expect(plans[7]).toEqual(['d', 'a', 'b', 'c', 'e']);
    expect(plans.slice(8, 15).map((q) => q[0])).toEqual(Array(7).fill('e'));
  });

  test('busy queues take turns at the front', () => {
    const p = started();
    p.claimed({ queues: ['b', 'c'], limits: [5, 5], total: 10 }, took({ b: 5, c: 5 }), 10);
    const fronts: string[] = [];
    for (let i = 0; i < 4; i++) {
      p.want(null, true);
      fronts.push(p.plan(10, room10)!.queues.slice(0, 2).join(''));
    }
    expect(fronts).toEqual(['bc', 'cb', 'bc', 'cb']);
  });

  test('any full want other than a backlog makes the next plan plain rotation', () => {
    const p = started();
    p.claimed({ queues: ['e'], limits: [10], total: 10 }, took({ e: 10 }), 10);
    p.want(null, true);
    p.want(); // the poll, say, before the plan went out
    expect(p.plan(10, room10)?.queues).toEqual(['b', 'c', 'd', 'e', 'a']);
  });

  test('a queue a wake-up named goes first in the next backlog plan', () => {
    const p = started();
    p.want(null, true);
    p.want('c');
    expect(p.plan(10, room10)?.queues[0]).toBe('c');
  });

  test('queues without room are left out, and stay left out across a wake-up plan of other queues', () => {
    const p = started();
    p.want();
    const plan = p.plan(10, (q) => (q === 'c' ? 0 : 10))!;
    expect(plan.queues).not.toContain('c');
    expect(p.leftOut('c')).toBe(true);
    p.want('a');
    p.plan(10, room10);
    expect(p.leftOut('c')).toBe(true);
    p.want();
    p.plan(10, room10);
    expect(p.leftOut('c')).toBe(false);
  });

  test('a queue that left the list stops counting as busy', () => {
    const p = started();
    p.claimed({ queues: ['e'], limits: [10], total: 10 }, took({ e: 10 }), rowsOf({ e: 10 }));
    p.queues = ['a', 'b', 'c', 'd'];
    p.queues = queues;
    p.want(null, true);
    // No queue is busy: plain rotation.
    expect(p.plan(10, room10)?.queues[0]).toBe('b');
  });
});
