/** One queue under test in bench:compare: the same no-op workload, run the system's own way. */
export interface QueueSystem {
  name: string;
  /** Installs its schema in its own (empty) database. */
  setup(): Promise<void>;
  /** Empties its tables between rounds (and vacuums them), so every round starts alike. */
  reset(): Promise<void>;
  /** Enqueues `n` no-op jobs in the system's bulk way; resolves when they are committed. */
  bulk(n: number): Promise<void>;
  /** Enqueues `n` no-op jobs for a processing round (in its bulk way) and analyzes its table. */
  fill(n: number): Promise<void>;
  /**
   * With `n` jobs already queued (fill), starts a worker at `concurrency`, resolves once every
   * job's outcome is written, and stops the worker. Returns the milliseconds from start to drained.
   */
  drain(n: number, concurrency: number): Promise<number>;
  /** Enqueue→handler-start latencies (ms) of `samples` single jobs on an idle worker. */
  latency(samples: number): Promise<number[]>;
  close(): Promise<void>;
}

/** Waits until `check` is true, polling every 5 ms. */
export async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 5));
}

/**
 * When each sample since the last takeSampleWindows() began and ended (performance.now()). Only
 * bench:compare --gc reads them; elsewhere they are a few hundred pairs a run.
 */
let windows: [number, number][] = [];

/** The [start, end] of every latency sample taken since the last call, in order (bench:compare --gc). */
export function takeSampleWindows(): [number, number][] {
  const w = windows;
  windows = [];
  return w;
}

/** Latency samples: enqueue one job, wait for its handler to start, 2 ms apart; 20 warm-ups dropped. */
export async function sampleLatency(samples: number, enqueue: () => Promise<unknown>, started: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < samples + 20; i++) {
    const start = started();
    const t0 = performance.now();
    await enqueue();
    const t1 = await start;
    if (i >= 20) out.push(t1 - t0), windows.push([t0, t1]);
    await new Promise((r) => setTimeout(r, 2));
  }
  return out;
}

/** A worker a benchmark started, as timeDrain and workerLatency stop it. */
export interface RunningWorker {
  stop(): Promise<void>;
}

/**
 * Times one drain: starts a worker whose handler reports each run (or a batch of `count` runs)
 * through `ran`, waits for `n` runs and then for `drained()` (every outcome written), and stops
 * the worker. Returns the milliseconds from start to drained.
 */
export async function timeDrain(n: number, start: (ran: (count?: number) => void) => Promise<RunningWorker>, drained: () => Promise<boolean>): Promise<number> {
  let done = 0;
  let allRan!: () => void;
  const finished = new Promise<void>((r) => (allRan = r));
  const t0 = performance.now();
  const worker = await start((count = 1) => void ((done += count) >= n && allRan()));
  await finished;
  await until(drained);
  const ms = performance.now() - t0;
  await worker.stop();
  return ms;
}

/** sampleLatency with an idle worker of its own, whose handler calls `started` as it begins. */
export async function idleLatency(samples: number, start: (started: () => void) => Promise<RunningWorker>, enqueue: () => Promise<unknown>): Promise<number[]> {
  let onStart: ((t: number) => void) | undefined;
  const worker = await start(() => onStart?.(performance.now()));
  try {
    return await sampleLatency(samples, enqueue, () => new Promise((r) => (onStart = r)));
  } finally {
    await worker.stop();
  }
}
