import { CronExpressionParser, type CronExpression } from 'cron-parser';

// How schedules tick across daylight-saving changes, as cronie's cron(8) does it. A schedule with
// fixed hours runs on wall-clock time: a local time the clocks repeat (going back) runs once, at
// its first occurrence, and the times they skip (going forward) run once, at the first instant
// after the gap, so a daily 02:30 job still runs that day, at 03:00. A schedule with every hour in
// its hour field runs on elapsed time: at every instant whose local time matches, through both.
//
// cron-parser 5.10 (the latest) has no such option. Its prev() returns both occurrences of a
// repeated time and none of a skipped one (a daily 01:30 job in America/New_York ran twice on
// 2026-11-01, a 02:30 one not at all on 2026-03-08); its next() runs a skipped 02:30 at 03:30; and
// in a zone whose clocks move by 30 minutes (Australia/Lord_Howe) it misplaces hourly ticks. So
// cron-parser is only asked about "wall times" (local date and time written as UTC milliseconds,
// evaluated in UTC, where no clock jumps), and this module places each in real time.
// cron-ticks.test.ts checks both rules minute by minute across every 2026 change of five zones.

const SECOND = 1_000;
const DAY = 86_400_000;

const formats = new Map<string, Intl.DateTimeFormat>();

/** The wall time of `instant` in `zone` (milliseconds carried over). Throws on an unknown zone. */
function wallOf(zone: string, instant: number): number {
  let format = formats.get(zone);
  if (!format) {
    const n = 'numeric';
    format = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: n, month: n, day: n, hour: n, minute: n, second: n });
    formats.set(zone, format);
  }
  const p: Record<string, number> = {};
  for (const part of format.formatToParts(instant)) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) + (((instant % SECOND) + SECOND) % SECOND);
}

/** The instant `zone`'s offset changes between `from` (the old offset) and `to` (another); offsets change on whole seconds. */
function changeBetween(zone: string, from: number, to: number): number {
  const old = wallOf(zone, from) - from;
  let lo = Math.floor(from / SECOND);
  let hi = Math.ceil(to / SECOND);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (wallOf(zone, mid * SECOND) - mid * SECOND === old) lo = mid;
    else hi = mid;
  }
  return hi * SECOND;
}

/** When a wall time takes place: at its first occurrence if the clocks repeat it, at the gap's end if they skip it. */
function instantOf(zone: string, wall: number): number {
  // The offsets a day either side are the ones either side of any change near `wall`.
  const early = wall - (wallOf(zone, wall - DAY) - (wall - DAY));
  const late = wall - (wallOf(zone, wall + DAY) - (wall + DAY));
  const earlyHolds = wallOf(zone, early) === wall;
  const lateHolds = wallOf(zone, late) === wall;
  if (earlyHolds && lateHolds) return Math.min(early, late);
  if (earlyHolds) return early;
  if (lateHolds) return late;
  // Skipped: the clocks went forward between the two readings.
  return changeBetween(zone, Math.min(early, late), Math.max(early, late));
}

/**
 * The latest wall time whose ticks are due at `now`: now's own, except while the clocks repeat
 * wall times after going back, when each of those has already had its turn at its first occurrence.
 */
function dueWall(zone: string, now: number): number {
  const wall = wallOf(zone, now);
  const first = instantOf(zone, wall);
  if (first === now) return wall;
  // The repetition ends where the wall time the clocks went back from comes round again.
  return changeBetween(zone, first, now) + (wallOf(zone, first) - first) - 1;
}

/** The latest instant at or before `now` whose local time is a tick (elapsed time: a repeated time counts twice). */
function latestElapsed(walls: CronExpression, zone: string, now: number): number {
  for (let at = now; ; ) {
    const offset = wallOf(zone, at) - at;
    walls.reset(new Date(at + offset + 1));
    const wall = walls.prev().getTime();
    if (wallOf(zone, wall - offset) === wall) return wall - offset;
    // That local time came before the clocks last changed: look again from just before the change.
    at = changeBetween(zone, wall - offset, at) - 1;
  }
}

/** The first instant after `after` whose local time is a tick (elapsed time). */
function nextElapsed(walls: CronExpression, zone: string, after: number): number {
  for (let from = after; ; ) {
    const offset = wallOf(zone, from + 1) - (from + 1);
    walls.reset(new Date(from + offset));
    const wall = walls.next().getTime();
    if (wallOf(zone, wall - offset) === wall) return wall - offset;
    // That local time comes after the clocks next change: look again from the change.
    from = changeBetween(zone, from + 1, wall - offset) - 1;
  }
}

/** The expression on wall times, and whether every hour is in it (then it runs on elapsed time). */
function parse(cron: string): { walls: CronExpression; elapsed: boolean } {
  const walls = CronExpressionParser.parse(cron, { tz: 'UTC' });
  return { walls, elapsed: walls.fields.hour.values.length === 24 };
}

/**
 * The latest tick of `cron` in `timezone` at or before `now`; throws on a bad expression or zone.
 * Five fields (minute resolution) or six (seconds first). Daylight-saving changes as above.
 */
export function latestTick(cron: string, timezone: string, now: Date): Date {
  const { walls, elapsed } = parse(cron);
  const at = now.getTime();
  if (elapsed) return new Date(latestElapsed(walls, timezone, at));
  walls.reset(new Date(dueWall(timezone, at) + 1));
  return new Date(instantOf(timezone, walls.prev().getTime()));
}

/** The next `count` ticks after `now` (for `schedules ls` and validation), by the same rules as latestTick. */
export function nextTicks(cron: string, timezone: string, now: Date, count = 1): Date[] {
  const { walls, elapsed } = parse(cron);
  const ticks: Date[] = [];
  if (elapsed) {
    for (let at = now.getTime(); ticks.length < count; ) {
      at = nextElapsed(walls, timezone, at);
      ticks.push(new Date(at));
    }
    return ticks;
  }
  walls.reset(new Date(dueWall(timezone, now.getTime())));
  while (ticks.length < count) {
    const wall = walls.next().getTime();
    const tick = instantOf(timezone, wall);
    if (tick === ticks.at(-1)?.getTime()) continue;
    ticks.push(new Date(tick));
    // The wall times a gap skipped all run at its end, once: go on from the first one after it.
    const landed = wallOf(timezone, tick);
    if (landed > wall) walls.reset(new Date(landed - 1));
  }
  return ticks;
}

/** Throws a readable error when the expression or the time zone is unusable. */
export function checkCron(cron: string, timezone: string): void {
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
  } catch {
    throw new Error(`unknown time zone "${timezone}" (want an IANA name such as UTC or Europe/Paris)`);
  }
  try {
    nextTicks(cron, timezone, new Date());
  } catch (err) {
    throw new Error(`bad cron expression "${cron}": ${(err as Error).message}`);
  }
}
