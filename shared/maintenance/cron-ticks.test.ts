import { CronExpressionParser } from 'cron-parser';
import { describe, expect, test } from 'vitest';
import { latestTick, nextTicks } from './cron-ticks.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const formats = new Map<string, Intl.DateTimeFormat>();

/** Local time in `zone` as UTC milliseconds, read through another Intl path than the module's ("2026-03-08 03:00:00"). */
function localOf(zone: string, at: number): number {
  let f = formats.get(zone);
  if (!f) formats.set(zone, (f = new Intl.DateTimeFormat('sv-SE', { timeZone: zone, dateStyle: 'short', timeStyle: 'medium' })));
  return Date.parse(`${f.format(at).replace(' ', 'T')}Z`);
}

/** The instants of 2026 at which `zone`'s clocks change (to the minute). */
function changes(zone: string): number[] {
  const found: number[] = [];
  for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2027, 0, 1); t += HOUR) {
    if (localOf(zone, t + HOUR) - (t + HOUR) === localOf(zone, t) - t) continue;
    let m = t;
    while (localOf(zone, m) - m === localOf(zone, t) - t) m += MINUTE;
    found.push(m);
  }
  return found;
}

/**
 * The documented rules, minute by minute and without cleverness: a schedule with every hour runs
 * at each instant whose local time matches; any other runs a local time at its first occurrence,
 * and the times a gap skipped once, at its end.
 */
function referenceTicks(cron: string, zone: string, from: number, to: number): number[] {
  const walls = CronExpressionParser.parse(cron, { tz: 'UTC' });
  const everyHour = walls.fields.hour.values.length === 24;
  const matches = (wall: number) => walls.includesDate(new Date(wall));
  const seen = new Set<number>();
  const ticks: number[] = [];
  let before = localOf(zone, from - MINUTE);
  for (let t = from; t <= to; t += MINUTE) {
    const wall = localOf(zone, t);
    let skipped = false;
    for (let w = before + MINUTE; w < wall && !everyHour; w += MINUTE) skipped ||= matches(w);
    if ((matches(wall) && (everyHour || !seen.has(wall))) || skipped) ticks.push(t);
    seen.add(wall);
    before = wall;
  }
  return ticks;
}

const ZONES = ['America/New_York', 'Europe/Paris', 'Australia/Sydney', 'Australia/Lord_Howe', 'America/Santiago'];
const CRONS = [
  '30 1 * * *', '30 2 * * *', '0 2 * * *', '0 0 * * *', '15 23 * * *', '*/20 1-3 * * *', '45 2 * * 0', '0 * * * *', '*/15 * * * *',
];

// Zones whose clocks change at 01:00 UTC, at 02:00 and 03:00 local, by 30 minutes, and at midnight.
describe('latestTick and nextTicks across every 2026 clock change of five zones', () => {
  for (const zone of ZONES) {
    test.each(CRONS)(`${zone}: %s agrees with the rules minute by minute`, (cron) => {
      for (const change of changes(zone)) {
        const ticks = referenceTicks(cron, zone, change - 36 * HOUR, change + 36 * HOUR);
        for (let now = change - 11 * HOUR; now <= change + 11 * HOUR; now += 17 * MINUTE + 1_000) {
          const latest = ticks.filter((t) => t <= now).at(-1);
          const next = ticks.find((t) => t > now);
          const where = `${cron} in ${zone} at ${new Date(now).toISOString()}`;
          // A weekly expression may have no tick within the window.
          if (latest !== undefined) expect(latestTick(cron, zone, new Date(now)).getTime(), where).toBe(latest);
          if (next !== undefined) expect(nextTicks(cron, zone, new Date(now), 1)[0]!.getTime(), where).toBe(next);
        }
        // Exactly on a tick, and a second before it.
        for (const [i, tick] of ticks.entries()) {
          if (i === 0 || i === ticks.length - 1 || Math.abs(tick - change) > 4 * HOUR) continue;
          const where = `${cron} in ${zone} at ${new Date(tick).toISOString()}`;
          expect(latestTick(cron, zone, new Date(tick)).getTime(), where).toBe(tick);
          expect(latestTick(cron, zone, new Date(tick - 1_000)).getTime(), where).toBe(ticks[i - 1]);
          expect(nextTicks(cron, zone, new Date(tick - 1_000), 2).map((d) => d.getTime()), where).toEqual(ticks.slice(i, i + 2));
        }
      }
    });
  }
});

test('America/New_York in 2026: a daily 01:30 once on the night clocks go back, a daily 02:30 at 03:00 EDT the day they go forward', () => {
  expect(nextTicks('30 1 * * *', 'America/New_York', new Date('2026-10-31T12:00:00Z'), 3).map((d) => d.toISOString()))
    .toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z', '2026-11-03T06:30:00.000Z']);
  expect(latestTick('30 1 * * *', 'America/New_York', new Date('2026-11-01T06:45:00Z')).toISOString())
    .toBe('2026-11-01T05:30:00.000Z');
  expect(nextTicks('30 2 * * *', 'America/New_York', new Date('2026-03-07T12:00:00Z'), 2).map((d) => d.toISOString()))
    .toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']);
  // The 3,600 seconds of the skipped hour run once, at its end; the next are the next day's.
  expect(nextTicks('* * 2 * * *', 'America/New_York', new Date('2026-03-08T06:59:59Z'), 2).map((d) => d.toISOString()))
    .toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:00:00.000Z']);
  // Six fields with every hour: elapsed time, every 10 s through the repeated hour.
  expect(latestTick('*/10 * * * * *', 'America/New_York', new Date('2026-11-01T06:00:05Z')).toISOString())
    .toBe('2026-11-01T06:00:00.000Z');
});

test('a bad expression or zone throws', () => {
  expect(() => latestTick('every tuesday-ish', 'UTC', new Date())).toThrow();
  expect(() => latestTick('0 3 * * *', 'Mars/Olympus', new Date())).toThrow();
  expect(() => nextTicks('0 3 * * *', 'Mars/Olympus', new Date())).toThrow();
});
