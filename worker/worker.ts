import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { loadConfig } from '#shared/config.js';
import { DEFAULT_RETRY } from '#shared/jobs/backoff.js';
import { KINDS, isKind, isPaidKind } from '#shared/jobs/kinds.js';
import { CHANNELS, Notifier } from '#shared/jobs/notifier.js';
import { CLAIM_JOBS, GOVERNOR_BRAKE, LIST_QUEUES, PREPARED, PRUNE_WORKERS, WORKER_STOPPED } from '#shared/jobs/queue-sql.js';
import { createMetrics } from '#shared/metrics/metrics.js';
import { abortAttempt, runAttempt, type AttemptDeps, type KindOptions } from './attempt.js';
import { ClaimSizing, type ClaimPlan } from './claim-sizing.js';
import { Completer } from './completer.js';
import type { Handler } from './handler.js';
import { mergeByPriority, type ClaimedJob, type HeldJob, type Outcome } from './held-job.js';
import { ProgressReporter } from './progress-reporter.js';
import { createHandlers } from './handlers/index.js';
import { leaseBudgetMs, startHeartbeat } from './heartbeat.js';
import { startReclaimer } from './reclaimer.js';
import { WorkerMetrics } from './worker-metrics.js';
import { DEFAULT_SETTINGS, type WorkerOptions, type WorkerSettings } from './worker-settings.js';
import { QueuePlanner } from './queue-planner.js';
import { forgetVanishedQueues } from './vanished-queues.js';

const MAX_CLAIMS_IN_FLIGHT = 2;
// Failed claims back off from 100 ms up to this (or the poll interval, if shorter).
const MAX_CLAIM_BACKOFF_MS = 2_000;

/**
 * A long-lived worker: claims ready jobs in batches (up to two claims ahead of what runs), runs
 * their handlers up to its concurrency, writes outcomes in batches, heartbeats its leases, and
 * reclaims other workers' expired leases. Woken by LISTEN/NOTIFY, with a poll as fallback.
 */
export class Worker {
  readonly id: string;
  readonly settings: WorkerSettings;
  readonly #sql: Sql;
  readonly #log: Logger;
  readonly #handlers: Record<string, Handler<never>>;
  readonly #specs = new Map<string, KindOptions>();
  /** What runAttempt needs, per kind: made once here, not per job. */
  readonly #deps = new Map<string, AttemptDeps>();
  readonly #notifier: Notifier;
  readonly #completer: Completer;
  readonly #held = new Map<string, HeldJob>();
  #buffer: HeldJob[] = [];
  #running = 0;
  readonly #runningPerQueue = new Map<string, number>();
  /** Buffered plus running jobs per queue: what per-queue room is measured against. */
  readonly #activePerQueue = new Map<string, number>();
  #paused = new Set<string>();
  /** The kinds claims ask for: every handled kind, less the paid ones while the governor's brake is on. */
  #claimKinds: string[] = [];
  /** Why the governor holds paid kinds (the global daily ceiling is reached), read with each queue refresh. */
  #brake: string | null = null;
  /** Which queues the next claim covers, in what order, and whether one is wanted. */
  readonly #planner = new QueuePlanner();
  /** The last claim came back full: the queues hold more, so a second claim may go out at once. */
  #backlog = false;
  readonly #sizing: ClaimSizing;
  /** Consecutive failed claims, and when the next may be tried (backoff up to MAX_CLAIM_BACKOFF_MS). */
  #claimFailures = 0;
  #claimRetryAt = 0;
  /** Claims in flight (at most MAX_CLAIMS_IN_FLIGHT), and the rows they asked for, in all and per queue. */
  readonly #fetching = new Set<Promise<void>>();
  /** Settles once the latest claim sent has handed out its jobs (or failed). */
  #handedOut: Promise<void> = Promise.resolve();
  #requested = 0;
  readonly #requestedPerQueue = new Map<string, number>();
  /** Queues the last listing lacked: dropped if the next lacks them too (forgetVanishedQueues). */
  readonly #missedQueues = new Set<string>();
  #started = false;
  #stopping: Promise<void> | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  readonly #progress: ProgressReporter;
  readonly #metrics: WorkerMetrics;
  #heartbeat: ReturnType<typeof startHeartbeat> | undefined;
  #reclaimer: ReturnType<typeof startReclaimer> | undefined;
  #unlisten: (() => Promise<void>)[] = [];
  #idleWaiters: (() => void)[] = [];

  /** Counters since start, for stats and tests. */
  readonly counters = { claims: 0, claimed: 0, claimMs: 0, succeeded: 0, failed: 0, fenced: 0, leaseLost: 0, handedBack: 0 };

  /** Claim statements sent and not yet answered (at most two). */
  get claimsInFlight(): number {
    return this.#fetching.size;
  }

  constructor(opts: WorkerOptions) {
    this.id = opts.id ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.settings = { ...DEFAULT_SETTINGS, ...opts.settings };
    this.#sizing = new ClaimSizing(this.settings.batchSize);
    this.#sql = opts.sql;
    this.#log = opts.log.child({ worker: this.id });
    const metrics = opts.metrics ?? createMetrics();
    const builtins = createHandlers({ sql: this.#sql, config: opts.config ?? loadConfig({}), provider: opts.provider, storage: opts.storage, log: this.#log, metrics });
    this.#handlers = { ...(builtins as Record<string, Handler<never>>), ...opts.handlers };
    for (const kind of Object.keys(this.#handlers)) {
      const spec: KindOptions = isKind(kind)
        ? KINDS[kind]
        : { queue: 'default', maxAttempts: 3, timeoutMs: 15 * 60_000, retry: DEFAULT_RETRY, ...opts.kinds?.[kind] };
      this.#specs.set(kind, spec);
      this.#deps.set(kind, { handler: this.#handlers[kind]!, kind: spec, abortGraceMs: this.settings.abortGraceMs, log: this.#log, progress: this.#reportProgressFn });
    }
    this.#claimKinds = [...this.#specs.keys()];
    this.#notifier = new Notifier(this.#sql, (err) => this.#log.debug({ err }, 'notify failed'));
    this.#metrics = new WorkerMetrics(metrics);
    this.#progress = new ProgressReporter(this.#sql, this.#log, () => this.#notifier.notify(CHANNELS.events));
    this.#completer = new Completer(this.#sql, this.id, this.#log, (held, report) => {
      for (let i = 0; i < held.length; i++) this.#release(held[i]!);
      this.counters.fenced += report.fenced;
      this.#metrics.written(report.tally);
      for (const q of report.requeued) this.#notifier.notify(CHANNELS.jobs, q);
      if (report.written > 0 && !report.woke) this.#notifier.notify(CHANNELS.events);
      for (const job of report.fencedJobs) {
        this.#log.warn({ job_id: job.id, kind: job.kind, tenant_id: job.tenant_id }, 'outcome discarded: the lease had moved on');
      }
      this.#maybeFetch();
    }, this.#notifier);
  }

  /** Why paid kinds are not being claimed now (the governor's brake), or null. */
  get brake(): string | null {
    return this.#brake;
  }

  /** Jobs whose handlers are running now. */
  get running(): number {
    return this.#running;
  }

  /** Starts listening, heartbeating, reclaiming and claiming. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('worker already started');
    this.#started = true;
    const { settings } = this;
    await this.#refreshQueues();
    await this.#sql.unsafe(PRUNE_WORKERS);
    const jobs = await this.#sql.listen(CHANNELS.jobs, (q) => this.#onWake(q), () => this.#onWake(null));
    const cancel = await this.#sql.listen(CHANNELS.cancel, (id) => this.#onCancel(id));
    this.#unlisten.push(() => jobs.unlisten(), () => cancel.unlisten());
    this.#heartbeat = startHeartbeat({
      sql: this.#sql,
      intervalMs: settings.heartbeatMs,
      leaseMs: settings.leaseMs,
      identity: {
        id: this.id,
        queues: settings.queues === 'all' ? null : settings.queues.map((q) => q.name),
        kinds: [...this.#specs.keys()],
        concurrency: settings.concurrency,
      },
      log: this.#log,
      held: () => this.#held.values(),
      onCancelRequested: (h) => abortAttempt(h, 'cancelled', 'cancellation requested'),
      onLeaseLost: (h, why) => this.#leaseLost(h, why),
    });
    this.#reclaimer = startReclaimer({
      sql: this.#sql,
      intervalMs: settings.reclaimMs,
      log: this.#log,
      onReclaimed: (r) => {
        this.#metrics.reclaimed(r);
        for (const q of r.queues) this.#notifier.notify(CHANNELS.jobs, q);
        this.#notifier.notify(CHANNELS.events);
      },
    });
    this.#schedulePoll();
    const shortestTimeoutMs = Math.min(...[...this.#specs.values()].map((k) => k.timeoutMs));
    this.#sweepTimer = setInterval(() => this.#sweepTimeouts(), Math.min(250, Math.max(10, shortestTimeoutMs / 4)));
    this.#log.info({ concurrency: settings.concurrency, queues: settings.queues, kinds: [...this.#specs.keys()] }, 'worker started');
    this.#maybeFetch();
  }

  /**
   * Graceful stop: claims nothing more, hands prefetched jobs back at once, lets running handlers
   * finish within the grace period, then aborts the rest and hands their leases back without
   * costing an attempt. Resolves when every outcome is written.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  /** During stop(): end the grace period now (a second Ctrl-C). */
  hurry(): void {
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  async #shutdown(): Promise<void> {
    const t0 = Date.now();
    clearTimeout(this.#pollTimer);
    await Promise.all(this.#unlisten.map((u) => u().catch(() => {})));
    await Promise.all(this.#fetching);
    this.#handBack(this.#buffer.splice(0));
    await Promise.all([this.#waitIdle(this.settings.shutdownGraceMs), this.#reclaimer?.stop()]);
    if (this.#running > 0) {
      this.#log.warn({ running: this.#running }, 'grace period over; aborting handlers and handing their leases back');
      for (const h of this.#held.values()) if (h.state === 'running') abortAttempt(h, 'shutdown', 'worker shutting down');
      await this.#waitIdle(this.settings.abortGraceMs + 1_000);
    }
    clearInterval(this.#sweepTimer);
    this.#progress.flush();
    await this.#completer.drain();
    await this.#heartbeat?.stop();
    await this.#sql.unsafe(WORKER_STOPPED, [this.id]).catch(() => {});
    await this.#notifier.flush();
    this.#log.info({ ms: Date.now() - t0, ...this.counters }, 'worker stopped');
  }

  #waitIdle(timeoutMs: number): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#idleWaiters.push(() => (clearTimeout(timer), resolve()));
    });
  }

  // ---- waking up -------------------------------------------------------------------------

  #onWake(queue: string | null): void {
    // A notification (or the listener reconnecting) proves the database answers again: whatever
    // backoff failed claims had built up must not delay the job that was just announced.
    this.#claimRetryAt = 0;
    if (queue !== null && (this.#paused.has(queue) || !this.#planner.queues.includes(queue))) {
      // Another worker's queue: nothing to claim, and nothing to read again.
      const served = this.settings.queues;
      if (served !== 'all' && !served.some((q) => q.name === queue)) return;
      // A queue we don't know yet, or one that may have been resumed.
      void this.#refreshQueues().then(() => this.#onWake(null));
      return;
    }
    // Every new job's wake-up names its queue, so an idle worker need not look at the others. Jobs
    // that become ready without a wake-up (a retry's backoff running out, a plain SQL insert) are
    // found by the poll or, during a backlog, by the claims that lead with the quiet queues
    // (QueuePlanner).
    this.#planner.want(queue);
    this.#maybeFetch();
  }

  #schedulePoll(): void {
    this.#pollTimer = setTimeout(async () => {
      await this.#refreshQueues();
      this.#planner.want();
      this.#maybeFetch();
      if (!this.#stopping) this.#schedulePoll();
    }, this.settings.pollMs);
  }

  async #refreshQueues(): Promise<void> {
    try {
      const [rows, [brake]] = await Promise.all([
        this.#sql.unsafe<{ name: string; paused: boolean }[]>(LIST_QUEUES, [], PREPARED),
        this.#sql.unsafe<{ reason: string | null }[]>(GOVERNOR_BRAKE, [], PREPARED),
      ]);
      this.#setBrake(brake?.reason ?? null);
      this.#paused = new Set(rows.filter((r) => r.paused).map((r) => r.name));
      const served = this.settings.queues;
      const wanted = served === 'all' ? rows.map((r) => r.name) : served.map((q) => q.name);
      this.#planner.queues = wanted.filter((q) => !this.#paused.has(q));
      // Queues retention deleted leave no counts or metric series behind.
      if (served === 'all') forgetVanishedQueues(new Set(wanted), [this.#activePerQueue, this.#runningPerQueue, this.#requestedPerQueue], this.#metrics, this.#missedQueues);
    } catch (err) {
      this.#log.warn({ err }, 'could not read queues; keeping the last list');
    }
  }

  /** Applies the governor's brake to the claim's kinds: paid kinds wait while it is on; free kinds keep flowing. */
  #setBrake(reason: string | null): void {
    if (reason === this.#brake) return;
    this.#brake = reason;
    const kinds = [...this.#specs.keys()];
    this.#claimKinds = reason === null ? kinds : kinds.filter((k) => !isPaidKind(k));
    if (reason === null) this.#log.info('governor brake released; claiming paid kinds again');
    else this.#log.warn({ reason }, 'governor brake on; paid kinds are not claimed');
  }

  // ---- claiming --------------------------------------------------------------------------

  #queueCap(queue: string): number {
    const q = this.settings.queues === 'all' ? undefined : this.settings.queues.find((s) => s.name === queue);
    return Math.min(q?.concurrency ?? this.settings.concurrency, this.settings.concurrency);
  }

  /**
   * How many to claim from each queue so that the slots and the prefetch are filled by two claims
   * (each at most a batch): one can be in flight while the other's jobs run.
   */
  #claimPlan(): ClaimPlan | undefined {
    const open = this.#sizing.room(this.settings.concurrency, this.#running + this.#buffer.length + this.#requested);
    if (!open || this.#completer.size > 4 * open.capacity) return undefined;
    return this.#planner.plan(open.room, (q) => {
      const cap = this.#queueCap(q);
      return cap + this.#sizing.prefetch(cap) - (this.#activePerQueue.get(q) ?? 0) - (this.#requestedPerQueue.get(q) ?? 0);
    });
  }

  /**
   * Starts claims while there is room, up to two at once: a claim round trip (~2.5 ms for 50 rows
   * here) is far longer than short handlers take, so a second claim in flight keeps the slots fed.
   */
  #maybeFetch(): void {
    while (this.#started && !this.#stopping && this.#planner.wanted && this.#fetching.size < MAX_CLAIMS_IN_FLIGHT) {
      if (Date.now() < this.#claimRetryAt) {
        // Timers may fire a millisecond before Date.now() reaches their deadline: come back then,
        // or a failed claim's retry would wait for the next NOTIFY or poll.
        this.#retryClaimAt(this.#claimRetryAt);
        return;
      }
      const plan = this.#claimPlan();
      if (!plan) return;
      // Behind a full claim there are likely more jobs: a second claim may go out before this one
      // is back (ClaimSizing.claimsAhead). Otherwise one at a time, until this one says whether
      // more are waiting.
      if (this.#backlog && this.#sizing.claimsAhead) this.#planner.want(null, true);
      this.#reserve(plan, 1);
      const claim: Promise<void> = this.#claim(plan)
        .then(
          (maybeMore) => {
            this.#claimFailures = 0;
            // A queue that filled its limit may hold more; otherwise the queues are drained until
            // a NOTIFY or the poll says otherwise.
            this.#backlog = maybeMore;
            if (maybeMore) this.#planner.want(null, true);
          },
          (err: unknown) => {
            // Try again soon by ourselves: a wake-up that arrived while this claim was failing
            // (the LISTEN reconnecting after a database restart, say) has already been spent.
            this.#claimFailures++;
            this.#backlog = false;
            const delayMs = Math.min(this.settings.pollMs, MAX_CLAIM_BACKOFF_MS, 50 * 2 ** Math.min(this.#claimFailures, 10));
            this.#claimRetryAt = Date.now() + delayMs;
            this.#planner.want();
            this.#retryClaimAt(this.#claimRetryAt);
            this.#log.warn({ err, retry_in_ms: delayMs }, 'claim failed');
          },
        )
        .finally(() => {
          this.#reserve(plan, -1);
          this.#fetching.delete(claim);
          // A queue that a later plan left out while this claim held its room gets its turn now:
          // this claim may have read the queue before jobs that a wake-up announced meanwhile
          // (the wake-up's own claim could not take them, for lack of room), and nothing else
          // would claim them before the poll.
          for (const q of plan.queues) if (this.#planner.leftOut(q)) this.#planner.want(q);
          // The claim's jobs were started in #take; a slot freed since starts the next in #finish.
          this.#maybeFetch();
        });
      this.#fetching.add(claim);
    }
  }

  #claimRetryTimer: NodeJS.Timeout | undefined;
  /** One timer that tries the claim again at `at` (a failed claim's backoff); later calls reuse it. */
  #retryClaimAt(at: number): void {
    if (this.#claimRetryTimer) return;
    this.#claimRetryTimer = setTimeout(() => {
      this.#claimRetryTimer = undefined;
      this.#maybeFetch();
    }, Math.max(1, at - Date.now() + 1)).unref();
  }

  /** Counts (sign 1) or uncounts (-1) the rows a claim in flight asked for. */
  #reserve(plan: ClaimPlan, sign: 1 | -1): void {
    this.#requested += sign * plan.total;
    plan.queues.forEach((q, i) => this.#requestedPerQueue.set(q, (this.#requestedPerQueue.get(q) ?? 0) + sign * plan.limits[i]!));
  }

  async #claim(plan: ClaimPlan): Promise<boolean> {
    // Two claims in flight can come back out of order; each hands out its jobs only after the one
    // sent before it, which holds the lower priority values and earlier run_at.
    const before = this.#handedOut;
    const token = randomUUID();
    const sentAt = Date.now();
    let handedOut!: () => void;
    this.#handedOut = new Promise((resolve) => (handedOut = resolve));
    try {
      const rows = await this.#sql.unsafe<ClaimedJob[]>(CLAIM_JOBS, [
        plan.queues,
        plan.limits,
        this.#claimKinds,
        plan.total,
        this.id,
        token,
        this.settings.leaseMs,
        this.settings.asyncClaims,
      ], PREPARED);
      const claimMs = Date.now() - sentAt;
      await before;
      return this.#take(plan, rows, token, sentAt, claimMs);
    } finally {
      handedOut();
    }
  }

  /**
   * Tracks a claim's rows as held jobs and starts them while there are free slots (the rest wait
   * in the buffer); true when the queues may hold more. The claim's own bookkeeping (sizing,
   * metrics, the events wake-up) comes after the starts: on an idle worker the job waits for
   * nothing but its claim (the claim stage's p50 30–40 µs lower here; the metrics alone took ~25 µs).
   */
  #take(plan: ClaimPlan, rows: ClaimedJob[], token: string, sentAt: number, claimMs: number): boolean {
    this.counters.claims++;
    this.counters.claimed += rows.length;
    this.counters.claimMs += claimMs;
    const deadline = sentAt + leaseBudgetMs(this.settings.leaseMs);
    const fresh: HeldJob[] = new Array(rows.length);
    // Indexed loops here and below: a for-of over the rows made an iterator result per row (~100
    // bytes a job in a heap profile) where this code was not optimised yet.
    for (let i = 0; i < rows.length; i++) {
      const job = rows[i]!;
      const stale = this.#held.get(job.id);
      // Our own earlier lease on this job was reclaimed and we won it again: the old attempt
      // must never write, so it is aborted and forgotten here before the new one is tracked.
      if (stale) this.#leaseLost(stale, 'job reclaimed and claimed again');
      // Every field set here, even those set later: one object shape from the start, where adding
      // timeoutAt once running allocated a property store for each job.
      const held: HeldJob = { job, token, state: 'buffered', leaseDeadline: deadline, timeoutAt: undefined, controller: undefined, aborted: undefined, onAbort: undefined };
      this.#held.set(job.id, held);
      this.#activePerQueue.set(job.queue, (this.#activePerQueue.get(job.queue) ?? 0) + 1);
      fresh[i] = held;
    }
    if (this.#stopping) this.#handBack(fresh);
    else {
      this.#buffer = mergeByPriority(this.#buffer, fresh);
      this.#startBuffered();
    }
    // Asked for later: the outcomes' statement that follows a short job's start carries it. A
    // handler that already answered has its outcome queued, and the flush waits for setImmediate.
    if (rows.length) this.#notifier.notify(CHANNELS.events, '', true);
    this.#sizing.claimed(claimMs);
    this.#metrics.claimed(claimMs, rows);
    const perQueue = new Map<string, number>();
    for (let i = 0; i < rows.length; i++) {
      const { queue } = rows[i]!;
      perQueue.set(queue, (perQueue.get(queue) ?? 0) + 1);
    }
    return this.#planner.claimed(plan, perQueue, rows.length);
  }

  // ---- running ---------------------------------------------------------------------------

  #startBuffered(): void {
    if (this.#stopping) return;
    for (let i = 0; i < this.#buffer.length && this.#running < this.settings.concurrency; ) {
      const h = this.#buffer[i]!;
      if ((this.#runningPerQueue.get(h.job.queue) ?? 0) >= this.#queueCap(h.job.queue)) {
        i++;
        continue;
      }
      // shift() when taking the head (the common case): V8 trims the array's front in place,
      // where splice(0, 1) moves every element behind it (up to a batch and a half of them).
      if (i === 0) this.#buffer.shift();
      else this.#buffer.splice(i, 1);
      this.#run(h);
    }
  }

  #run(h: HeldJob): void {
    const { job } = h;
    const deps = this.#deps.get(job.kind)!;
    h.state = 'running';
    this.#running++;
    this.#runningPerQueue.set(job.queue, (this.#runningPerQueue.get(job.queue) ?? 0) + 1);
    const startedAt = performance.now();
    h.timeoutAt = Date.now() + deps.kind.timeoutMs;
    const outcome = runAttempt(h, deps);
    if (outcome instanceof Promise) void outcome.then((o) => this.#finish(h, o, startedAt));
    else this.#finish(h, outcome, startedAt);
  }

  /** Bookkeeping once an attempt has its outcome: free the slot, queue the write, start more. */
  #finish(h: HeldJob, outcome: Outcome, startedAt: number): void {
    const ms = performance.now() - startedAt;
    this.#sizing.ran(ms);
    this.#metrics.ran(h.job, ms);
    this.#running--;
    this.#runningPerQueue.set(h.job.queue, this.#runningPerQueue.get(h.job.queue)! - 1);
    this.#settle(h, outcome);
    if (this.#running === 0) for (const w of this.#idleWaiters.splice(0)) w();
    this.#startBuffered();
    this.#maybeFetch();
  }

  /** Aborts handlers past their kind's timeout; one sweep for all jobs instead of a timer each. */
  #sweepTimeouts(): void {
    const now = Date.now();
    for (const h of this.#held.values()) {
      if (h.state === 'running' && h.timeoutAt !== undefined && h.timeoutAt <= now) {
        abortAttempt(h, 'timeout', `timed out after ${this.#specs.get(h.job.kind)!.timeoutMs} ms`);
      }
    }
  }

  #settle(h: HeldJob, outcome: Outcome): void {
    if (this.#held.get(h.job.id) !== h) return;
    if (outcome.type === 'drop') return this.#release(h);
    this.#transition(h, 'settling');
    if (outcome.type === 'success') this.counters.succeeded++;
    else if (outcome.type === 'handback') this.counters.handedBack++;
    else {
      this.counters.failed++;
      if (outcome.type !== 'cancelled') this.#logFailure(h, outcome);
    }
    this.#completer.push(h, outcome);
  }

  /** One line per failed attempt (successes are counted in metrics, not logged: 30k lines/s). */
  #logFailure(h: HeldJob, outcome: Extract<Outcome, { type: 'retry' | 'permanent' }>): void {
    const { job } = h;
    const fields = { job_id: job.id, kind: job.kind, tenant_id: job.tenant_id, queue: job.queue, attempt: job.attempts, code: outcome.code, error: outcome.message };
    if (outcome.type === 'retry' && job.attempts < job.max_attempts) this.#log.info({ ...fields, retry_at: outcome.retryAt }, 'attempt failed; will retry');
    else this.#log.warn({ ...fields, max_attempts: job.max_attempts }, 'job failed for good; copied to dead_letters');
  }

  #release(h: HeldJob): void {
    if (this.#held.get(h.job.id) !== h) return;
    this.#held.delete(h.job.id);
    this.#progress.forget(h.job.id);
    this.#transition(h, 'done');
  }

  /**
   * Moves a held job on, keeping #activePerQueue right. Room opens when a job stops being active
   * (its outcome settled), not when the outcome is written: counting unwritten outcomes made every
   * claim wait for the previous completion flush (claims and flushes ran in series, -60 % at c=50).
   */
  #transition(h: HeldJob, next: 'settling' | 'done'): void {
    if (h.state === 'buffered' || h.state === 'running') {
      this.#activePerQueue.set(h.job.queue, this.#activePerQueue.get(h.job.queue)! - 1);
      if (this.#planner.leftOut(h.job.queue)) this.#planner.want(h.job.queue);
    }
    h.state = next;
  }

  #handBack(jobs: HeldJob[]): void {
    for (const h of jobs) {
      this.#transition(h, 'settling');
      this.counters.handedBack++;
      this.#completer.push(h, { type: 'handback' });
    }
  }

  #leaseLost(h: HeldJob, why: string): void {
    if (this.#held.get(h.job.id) !== h) return;
    this.counters.leaseLost++;
    this.#log.warn({ job_id: h.job.id, kind: h.job.kind, tenant_id: h.job.tenant_id, state: h.state, why }, 'lease lost; the attempt may not write');
    if (h.state === 'buffered') this.#buffer = this.#buffer.filter((b) => b !== h);
    abortAttempt(h, 'lease_lost', why);
    this.#release(h);
  }

  #onCancel(jobId: string): void {
    const h = this.#held.get(jobId);
    if (h) abortAttempt(h, 'cancelled', 'cancellation requested');
  }

  // ---- progress --------------------------------------------------------------------------

  readonly #reportProgressFn = (h: HeldJob, pct: number, message?: string): void => {
    if (this.#held.get(h.job.id) === h && h.state === 'running') this.#progress.report(h, pct, message);
  };
}
