/**
 * Decides which `job_events` rows a reader may pass, given that ids are handed out before commit
 * and so become visible out of order. A reader that just follows `id > cursor` would skip, for
 * ever, an id whose transaction commits after a higher one was read.
 *
 * Every read comes with the snapshot it saw (`pg_current_snapshot()`, same statement). A missing id
 * below a visible one was taken before that visible row committed, so before the snapshot; its
 * writer already held an xid then (every writer inserts events after writing jobs in the same
 * transaction: see sql/migrations/0001 and 0007), so that writer was either still running at the
 * snapshot or has aborted. The running ones are the snapshot's in-progress list (`xip`) and every
 * xid from its `xmax` up to one assigned after it: `xmax` is one past the newest *completed*
 * transaction, so a writer whose xid is above that (it took its xid before the writer of a visible
 * row did, and committed later) is running but not listed. The reader's statement takes an xid
 * of its own after its snapshot for that bound (`parseSnapshot`'s `after`). Each read therefore
 * leaves a checkpoint "everything up to `hi` is settled once every one of those xids has finished".
 * Once a later snapshot shows all of them finished, the ids up to `hi` that are still missing never
 * will appear.
 *
 * A transaction that wrote an event and then sat idle must not freeze every stream: after
 * `gapTimeoutMs` the reader moves past the hole, but keeps watching the ids it skipped and
 * delivers them late (out of order) if they commit.
 */

/** A snapshot as `pg_current_snapshot()::text` shows it: `xmin:xmax:xip,…`. */
export interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  xip: bigint[];
}

/**
 * Parses `pg_current_snapshot()::text`. With `after`, an xid assigned after the snapshot was taken,
 * every xid in [xmax, after) joins `xip`: those were assigned and had not completed when the
 * snapshot was taken (or were assigned just after it, and only wait a little longer).
 */
export function parseSnapshot(text: string, after?: bigint): Snapshot {
  const [xmin, xmax, xip] = text.split(':');
  if (xmin === undefined || xmax === undefined || xip === undefined) throw new Error(`not a snapshot: ${text}`);
  const s: Snapshot = { xmin: BigInt(xmin), xmax: BigInt(xmax), xip: xip === '' ? [] : xip.split(',').map((x) => BigInt(x)) };
  if (after !== undefined) for (let x = s.xmax; x < after; x++) s.xip.push(x);
  return s;
}

/**
 * True when every xid of `xids` (all in progress at some earlier snapshot) has finished by `s`:
 * below its `xmin`, or below its `xmax` and not in its in-progress list.
 */
export function finishedBy(xids: readonly bigint[], s: Snapshot): boolean {
  for (const x of xids) if (x >= s.xmin && (x >= s.xmax || s.xip.includes(x))) return false;
  return true;
}

interface Checkpoint {
  /** Every id up to here is settled once all of `xip` has finished. */
  hi: number;
  xip: bigint[];
  /** When first seen (ms), for the gap timeout. */
  since: number;
}

/** Ids skipped on timeout that may still commit, with the xids that might commit them. */
interface LateWatch {
  ranges: [number, number][];
  xip: bigint[];
}

/** What one read yields: rows to deliver in order, and rows that arrived late (ids below the cursor). */
export interface GapDecision<R> {
  rows: R[];
  late: R[];
  /** Rows of the page were held back behind a hole: read again once it may have filled. */
  holding: boolean;
}

// Checkpoints accumulate while a hole stays open (one per read); past this many the newest two are
// merged, which is safe (the union of their xids must finish) and only makes that one wait longer.
const MAX_CHECKPOINTS = 64;
// Skipped ids watched for late arrival at most this many ranges; the oldest are dropped first.
const MAX_LATE_RANGES = 10_000;

/** The gap-aware cursor over job_events ids; pure, so its logic is tested without a database. */
export class GapTracker<R extends { id: number }> {
  #cursor: number;
  #checkpoints: Checkpoint[] = [];
  #late: LateWatch[] = [];

  constructor(cursor: number, private readonly gapTimeoutMs: number) {
    this.#cursor = cursor;
  }

  /** Every id up to here has been delivered or settled as missing (late arrivals aside). */
  get cursor(): number {
    return this.#cursor;
  }

  /** The id ranges skipped on timeout and still watched, for the late part of the next read. */
  lateRanges(): { lo: number[]; hi: number[] } {
    const lo: number[] = [];
    const hi: number[] = [];
    for (const w of this.#late) for (const [a, b] of w.ranges) lo.push(a), hi.push(b);
    return { lo, hi };
  }

  /** True when `id` is at or below the cursor but may still arrive late. */
  isWatched(id: number): boolean {
    return this.#late.some((w) => w.ranges.some(([a, b]) => a <= id && id <= b));
  }

  /** True while a hole holds rows back. */
  get holding(): boolean {
    return this.#checkpoints.length > 0;
  }

  /**
   * Starts watching ids missing at start-up: `present` are the ids visible in (lo, hi] under
   * snapshot `s`; the others may belong to transactions of `s.xip` that are still open.
   */
  watchMissing(lo: number, hi: number, present: readonly number[], s: Snapshot): void {
    if (s.xip.length === 0) return;
    const ranges = missingRanges(lo, hi, present);
    if (ranges.length) this.#late.push({ ranges, xip: s.xip });
  }

  /**
   * Takes one read: `rows` are the page of ids above the cursor (ascending, at most `pageSize`)
   * plus any watched late ids, all seen under snapshot `snap` at time `now` (ms).
   */
  accept(rows: readonly R[], snap: Snapshot, pageFull: boolean, now: number): GapDecision<R> {
    const late: R[] = [];
    const page: R[] = [];
    for (const r of rows) (r.id <= this.#cursor ? late : page).push(r);
    this.#acceptLate(late, snap);

    // Everything up to the page's last id is judged here; beyond it, the next read.
    const pageEnd = page.length ? page[page.length - 1]!.id : this.#cursor;
    if (page.length) this.#addCheckpoint({ hi: pageEnd, xip: snap.xip, since: now });

    // The settled horizon: checkpoints whose xids have all finished, or that timed out.
    let settled = this.#cursor;
    let forced: Checkpoint | undefined;
    for (const cp of this.#checkpoints) {
      if (finishedBy(cp.xip, snap)) settled = Math.max(settled, cp.hi);
      else if (now - cp.since >= this.gapTimeoutMs) (settled = Math.max(settled, cp.hi)), (forced = cp);
    }
    // A full page cannot vouch for ids past its end: they were not read.
    if (pageFull) settled = Math.min(settled, pageEnd);

    const out: R[] = [];
    const skipped: [number, number][] = [];
    let pos = this.#cursor;
    for (const r of page) {
      if (r.id > settled && r.id !== pos + 1) break;
      if (r.id > pos + 1) skipped.push([pos + 1, r.id - 1]);
      out.push(r);
      pos = r.id;
    }
    if (settled > pos) skipped.push([pos + 1, settled]), (pos = settled);
    // Holes passed on a timeout stay watched: their writers (in the forced checkpoint's xip, or
    // an earlier one's, which is a subset of what was open then) may still commit.
    if (forced && skipped.length) this.#watch(skipped, this.#xipOfOpenCheckpoints(snap));
    this.#cursor = pos;
    this.#checkpoints = this.#checkpoints.filter((cp) => cp.hi > pos);
    return { rows: out, late, holding: this.#checkpoints.length > 0 };
  }

  #acceptLate(late: R[], snap: Snapshot): void {
    for (const r of late) for (const w of this.#late) w.ranges = removeId(w.ranges, r.id);
    // Rows read in this same snapshot: a watch whose xids have all finished has yielded all it will.
    this.#late = this.#late.filter((w) => w.ranges.length > 0 && !finishedBy(w.xip, snap));
  }

  #addCheckpoint(cp: Checkpoint): void {
    const last = this.#checkpoints[this.#checkpoints.length - 1];
    if (last && sameXids(last.xip, cp.xip)) {
      last.hi = Math.max(last.hi, cp.hi);
      return;
    }
    this.#checkpoints.push(cp);
    if (this.#checkpoints.length > MAX_CHECKPOINTS) {
      const b = this.#checkpoints.pop()!;
      const a = this.#checkpoints.pop()!;
      this.#checkpoints.push({ hi: Math.max(a.hi, b.hi), xip: [...new Set([...a.xip, ...b.xip])], since: a.since });
    }
  }

  /** The xids still open among every checkpoint's: who may yet commit a skipped id. */
  #xipOfOpenCheckpoints(snap: Snapshot): bigint[] {
    const open = new Set<bigint>();
    for (const cp of this.#checkpoints) for (const x of cp.xip) if (!finishedBy([x], snap)) open.add(x);
    return [...open];
  }

  #watch(ranges: [number, number][], xip: bigint[]): void {
    if (xip.length === 0) return;
    this.#late.push({ ranges, xip });
    let total = this.#late.reduce((n, w) => n + w.ranges.length, 0);
    while (total > MAX_LATE_RANGES && this.#late.length > 1) total -= this.#late.shift()!.ranges.length;
  }
}

/** The ranges of (lo, hi] not in `present` (ascending). */
export function missingRanges(lo: number, hi: number, present: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  let pos = lo;
  for (const id of present) {
    if (id <= pos || id > hi) continue;
    if (id > pos + 1) out.push([pos + 1, id - 1]);
    pos = id;
  }
  if (hi > pos) out.push([pos + 1, hi]);
  return out;
}

function removeId(ranges: [number, number][], id: number): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of ranges) {
    if (id < a || id > b) out.push([a, b]);
    else {
      if (a < id) out.push([a, id - 1]);
      if (id < b) out.push([id + 1, b]);
    }
  }
  return out;
}

function sameXids(a: readonly bigint[], b: readonly bigint[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
