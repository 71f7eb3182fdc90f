import type { ClaimPlan } from './claim-sizing.js';

/**
 * After this many busy-first plans in a row, one plan leads with the other queues, so a queue
 * holding jobs that no wake-up announced (a retry's backoff run out, a plain SQL insert) waits a
 * few claims at most, not for the poll or for the busy queues to drain.
 */
const BUSY_FIRST_RUN = 7;

/**
 * Which queues a worker's next claim covers, and in what order. The claim reads each queue's range
 * of `jobs_claim_idx` in the plan's order and stops once it has its total, so the order decides
 * both which queues get served first and how many empty ones are probed.
 *
 * - **A wake-up** wants a claim of the queue it names alone (plus any other queue named before
 *   that claim goes out): with 1,000 queues a claim of all of them took p50 5.4–5.8 ms against
 *   0.6–0.8 for one. So does a freed slot of a queue the last plan left out for lack of room.
 * - **A backlog** (the last claim came back full) wants a claim of every queue, the busy ones
 *   first, taking turns at the front: those whose last claim filled their limit, or that a
 *   wake-up named since. The claim then stops before the empty queues while the busy ones fill
 *   it. Every eighth such plan leads with the other queues instead.
 * - **Anything else** (start, the poll, a failed claim's retry) wants a claim of every queue in
 *   plain rotation: each plan starts one queue further on.
 */
export class QueuePlanner {
  #queues: string[] = [];
  #offset = 0;
  #wanted = true;
  /** While the wanted claim is only for queues wake-ups named: those queues. */
  #woken: Set<string> | undefined;
  /** A wanted claim of every queue asks for plain rotation (not only backlogs want it). */
  #plain = true;
  readonly #busy = new Set<string>();
  #busyFirstRun = 0;
  #busyTurn = 0;
  /**
   * Queues the last plan left out for lack of room. A claim that found every other queue empty
   * says "drained"; releasing a job of one of these must claim again rather than wait for the poll.
   */
  readonly #leftOut = new Set<string>();

  /** The queues claims may cover (served and not paused), in rotation order. */
  get queues(): readonly string[] {
    return this.#queues;
  }

  set queues(list: string[]) {
    this.#queues = list;
    const known = new Set(list);
    for (const q of this.#busy) if (!known.has(q)) this.#busy.delete(q);
  }

  /** A claim is wanted and has not been planned yet. */
  get wanted(): boolean {
    return this.#wanted;
  }

  /** Whether the last plan that looked at `queue` left it out for lack of room. */
  leftOut(queue: string): boolean {
    return this.#leftOut.has(queue);
  }

  /**
   * Wants a claim: of the queue a wake-up named (`queue`), or of every queue (null); `backlog`
   * says a full claim is wanted only because the last one came back full.
   */
  want(queue: string | null = null, backlog = false): void {
    const fresh = !this.#wanted;
    if (queue === null) this.#woken = undefined;
    else {
      this.#busy.add(queue);
      if (fresh) this.#woken = new Set([queue]);
      else this.#woken?.add(queue);
    }
    const plain = queue === null && !backlog;
    this.#plain = fresh ? plain : this.#plain || plain;
    this.#wanted = true;
  }

  /**
   * The wanted claim's plan, given `room` rows in all and each queue's own room (`queueRoom`);
   * undefined when no queue has room. A plan is sent: the claim stops being wanted.
   */
  plan(room: number, queueRoom: (queue: string) => number): ClaimPlan | undefined {
    const only = this.#woken;
    const backlog = !only && !this.#plain && this.#busy.size > 0;
    const busyFirst = backlog && this.#busyFirstRun < BUSY_FIRST_RUN;
    this.#busyFirstRun = busyFirst ? this.#busyFirstRun + 1 : 0;
    const n = this.#queues.length;
    // In rotation order: the woken queues, or every queue, or (a backlog) every queue not busy.
    const rotated: string[] = [];
    for (let i = 0; i < n; i++) {
      const q = this.#queues[(this.#offset + i) % n]!;
      if (only ? only.has(q) : !(backlog && this.#busy.has(q))) rotated.push(q);
    }
    this.#offset = (this.#offset + 1) % Math.max(1, n);
    let order = rotated;
    if (backlog) {
      // The busy queues take turns at the front. (A step of one through a long list would put the
      // same one of two neighbours first in all but one plan of the list's length.) Between runs
      // of busy-first plans, one leads with the other queues: a queue whose jobs no wake-up
      // announced is found there and joins the busy ones.
      const busy = this.#queues.filter((q) => this.#busy.has(q));
      const turn = this.#busyTurn++ % busy.length;
      const turned = [...busy.slice(turn), ...busy.slice(0, turn)];
      order = busyFirst ? [...turned, ...rotated] : [...rotated, ...turned];
    }
    // A claim of the woken queues alone says nothing of the others: those left out stay left out.
    if (!only) this.#leftOut.clear();
    const queues: string[] = [];
    const limits: number[] = [];
    for (const q of order) {
      this.#leftOut.delete(q);
      const qRoom = queueRoom(q);
      if (qRoom > 0) queues.push(q), limits.push(Math.min(qRoom, room));
      else this.#leftOut.add(q);
    }
    if (queues.length === 0) return undefined;
    this.#wanted = false;
    this.#woken = undefined;
    return { queues, limits, total: room };
  }

  /**
   * What a claim of `plan` took per queue (`taken`, `rows` in all). The claim reads the queues in
   * the plan's order and stops at its total: a queue that filled its limit is busy; one read to its
   * end (short of its limit, and before the queue the claim stopped in, or in a claim that never
   * reached its total) is not. The queue the claim stopped in may hold more; queues after it were
   * not read and stay as they were. Returns whether the queues may hold more: the claim reached
   * its total, or some queue filled its limit.
   */
  claimed(plan: ClaimPlan, taken: ReadonlyMap<string, number>, rows: number): boolean {
    const stopped = rows >= plan.total;
    const last = plan.queues.findLastIndex((q) => (taken.get(q) ?? 0) > 0);
    let filled = false;
    plan.queues.forEach((q, i) => {
      const full = (taken.get(q) ?? 0) >= plan.limits[i]!;
      filled ||= full;
      if (full || (stopped && i === last)) this.#busy.add(q);
      else if (!stopped || i < last) this.#busy.delete(q);
    });
    return stopped || filled;
  }
}
