/**
 * `npm run chaos:webhooks [-- --fast] [-- --json]`: a webhook receiver that flaps (down: connection
 * refused; slow: answers after the sender's timeout; failing: 500s; up) while jobs finish and their
 * callbacks go out through the outbox. Invariants: every callback has exactly one `webhook-id` and
 * is eventually acknowledged, so a receiver de-duplicating on it processes each callback exactly
 * once; the sender records exactly one success per `webhook-id` and sends nothing after it; every
 * request carried a valid Standard Webhooks signature; every retry sent the same bytes. A receiver
 * that answered after the sender gave up sees that id again (at least once): counted, not a fault.
 * Prints one summary line; exits 1 when an invariant breaks.
 * Uses DATABASE_URL when set, otherwise a fresh embedded PostgreSQL (scripts/chaos/harness.ts).
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '#shared/config.js';
import { connect, type Sql } from '#shared/db/connect.js';
import { migrate } from '#shared/db/migrator.js';
import { PermanentError } from '#shared/jobs/job-errors.js';
import { createLogger } from '#shared/log.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { uuidv7 } from '#shared/jobs/uuid.js';
import { newSigningSecret, openSecret, sealSecret } from '#shared/webhooks/secrets.js';
import { tenantSigningSecret } from '#shared/webhooks/signing-secrets.js';
import { WebhookReceiver, type Answer } from '../../test/fixtures/webhook-receiver.js';
import { Worker } from '../../worker/worker.js';
import { openChaosDatabase, pollUntil } from './harness.js';

/** How hard to shake it. */
export interface FlapOptions {
  /** Jobs to run; each one has a callback to the subscription, every third one also to its own webhook_url. */
  jobs: number;
  /** How long the receiver flaps before it stays up. */
  flapMs: number;
  /** Length of each receiver phase. */
  phaseMs: number;
  /** The sender's per-attempt timeout (WEBHOOK_TIMEOUT_MS); `slow` answers after 3× this. */
  timeoutMs: number;
  /** Give up waiting for delivery this long after the flapping ends. */
  settleMs: number;
  workers: number;
}

/** The fast variant `npm test` runs. */
export const FAST: FlapOptions = { jobs: 60, flapMs: 4_000, phaseMs: 400, timeoutMs: 1_000, settleMs: 30_000, workers: 2 };
const FULL: FlapOptions = { jobs: 600, flapMs: 30_000, phaseMs: 1_500, timeoutMs: 1_000, settleMs: 120_000, workers: 3 };

/** What a run found; `violations` empty means every invariant held. */
export interface FlapReport {
  ok: boolean;
  callbacks: number;
  delivered: number;
  requests: number;
  unverified: number;
  /** Distinct webhook-ids the receiver acknowledged. */
  acked: number;
  /** Webhook-ids the receiver acknowledged more than once (it answered after the sender's timeout). */
  redelivered: number;
  refused_attempts: number;
  failed_attempts: number;
  ms: number;
  violations: string[];
}

type Phase = 'up' | 'down' | 'slow' | 'failing';
const PHASES: Phase[] = ['down', 'failing', 'up', 'slow', 'failing', 'down', 'up'];

/** Runs the scenario against the database at `url` (migrated here). */
export async function runWebhookFlap(url: string, opts: FlapOptions, log = createLogger('silent', 'chaos')): Promise<FlapReport> {
  const t0 = Date.now();
  const sql = connect(url, { max: 4, application: 'chaos-webhooks' });
  const workerSql = connect(url, { max: 4 * opts.workers, application: 'chaos-webhooks-worker', worker: true });
  const receiver = await new WebhookReceiver().start();
  const workers: Worker[] = [];
  let phase: Phase = 'up';
  let flapper: NodeJS.Timeout | undefined;
  try {
    await migrate(sql);
    const tenantId = uuidv7();
    await sql`insert into leasehold.tenants (id, slug, name) values (${tenantId}, ${`chaos-${tenantId.slice(-12)}`}, 'chaos')`;
    const secret = newSigningSecret();
    await sql`
      insert into leasehold.webhooks (id, tenant_id, url, events, secret)
      values (${uuidv7()}, ${tenantId}, ${receiver.url}, '{job.succeeded,job.failed}', ${sealSecret(secret, undefined)})`;
    receiver.secrets = [secret, openSecret((await tenantSigningSecret(sql, tenantId, undefined)).secret, undefined)];

    const slowMs = 3 * opts.timeoutMs;
    receiver.answer = (): Answer => (phase === 'failing' ? 500 : phase === 'slow' ? { status: 200, delayMs: slowMs } : 200);
    const config = loadConfig({
      FETCH_ALLOW_PRIVATE: 'true',
      WEBHOOK_TIMEOUT_MS: String(opts.timeoutMs),
      // Short steps, many of them: the flapping must end before the schedule does.
      WEBHOOK_RETRY_SCHEDULE: Array.from({ length: 45 }, (_, i) => `${Math.min(100 * 2 ** i, 1_000)}ms`).join(','),
      LOG_LEVEL: 'silent',
    });
    for (let i = 0; i < opts.workers; i++) {
      const w = new Worker({
        sql: workerSql,
        log,
        config,
        settings: { concurrency: 20, pollMs: 100, reclaimMs: 500, leaseMs: Math.max(5_000, slowMs * 2), heartbeatMs: 1_000 },
        handlers: {
          'chaos.work': (p: { n: number }) => {
            if (p.n % 7 === 0) throw new PermanentError(`job ${p.n} fails on purpose`);
            return { n: p.n, squares: [p.n * p.n] };
          },
        },
      });
      await w.start();
      workers.push(w);
    }

    // The receiver flaps through its phases while jobs are enqueued in bursts.
    let phaseIndex = 0;
    const nextPhase = async () => {
      const next = PHASES[phaseIndex++ % PHASES.length]!;
      if (next === 'down' && phase !== 'down') await receiver.stop();
      if (next !== 'down' && phase === 'down') await receiver.start();
      phase = next;
    };
    const flapUntil = Date.now() + opts.flapMs;
    const flapping = (async () => {
      while (Date.now() < flapUntil) {
        await nextPhase();
        await new Promise((r) => (flapper = setTimeout(r, opts.phaseMs)));
      }
      // `phase` changes in nextPhase(): read it as the union, not as its initial value.
      if ((phase as Phase) === 'down') await receiver.start();
      phase = 'up';
    })();
    const queue = new JobQueue(sql, new Notifier(sql));
    const bursts = 8;
    for (let b = 0; b < bursts; b++) {
      const from = Math.floor((b * opts.jobs) / bursts);
      const to = Math.floor(((b + 1) * opts.jobs) / bursts);
      await queue.enqueueMany(
        Array.from({ length: to - from }, (_, k) => {
          const n = from + k + 1;
          return { kind: 'chaos.work', tenantId, payload: n % 3 === 0 ? { n, webhook_url: receiver.url } : { n } };
        }),
      );
      await new Promise((r) => setTimeout(r, opts.flapMs / bursts));
    }
    await flapping;

    // Settle: every delivery ends (delivered, or failed for good), or time runs out.
    await pollUntil(async () => {
      const [r] = await sql<{ jobs_open: number; pending: number }[]>`
        select (select count(*)::int from leasehold.jobs where tenant_id = ${tenantId} and status in ('queued', 'running')) as jobs_open,
               (select count(*)::int from leasehold.webhook_deliveries where tenant_id = ${tenantId} and status = 'pending') as pending`;
      return r!.jobs_open === 0 && r!.pending === 0;
    }, opts.settleMs);
    return await check(sql, tenantId, receiver, opts, t0);
  } finally {
    clearTimeout(flapper);
    await Promise.all(workers.map((w) => w.stop()));
    await receiver.stop();
    await Promise.all([sql.end({ timeout: 5 }), workerSql.end({ timeout: 5 })]);
  }
}

async function check(sql: Sql, tenantId: string, receiver: WebhookReceiver, opts: FlapOptions, t0: number): Promise<FlapReport> {
  const violations: string[] = [];
  const deliveries = await sql<{ id: string; job_id: string; event: string; status: string; webhook_id: string | null }[]>`
    select id, job_id, event, status, webhook_id from leasehold.webhook_deliveries where tenant_id = ${tenantId}`;
  // Every job: one callback to the subscription, plus one to its own URL for every third.
  const expected = opts.jobs + Math.floor(opts.jobs / 3);
  if (deliveries.length !== expected) violations.push(`${deliveries.length} deliveries written, ${expected} expected`);
  const byJob = new Map<number, number>();
  const jobs = await sql<{ id: string; n: number; status: string }[]>`
    select id, (payload ->> 'n')::int as n, status::text from leasehold.jobs where tenant_id = ${tenantId} and kind = 'chaos.work'`;
  for (const d of deliveries) {
    const job = jobs.find((j) => j.id === d.job_id);
    const want = job?.status === 'failed' ? 'job.failed' : 'job.succeeded';
    if (!job || d.event !== want) violations.push(`delivery ${d.id} is ${d.event} for a ${job?.status ?? 'missing'} job`);
    if (job) byJob.set(job.n, (byJob.get(job.n) ?? 0) + 1);
  }
  const notDelivered = deliveries.filter((d) => d.status !== 'delivered');
  if (notDelivered.length) violations.push(`${notDelivered.length} deliveries not delivered (${[...new Set(notDelivered.map((d) => d.status))].join(', ')})`);

  const acks = receiver.ackCounts();
  const ids = new Set(deliveries.map((d) => d.id));
  const twice = [...acks].filter(([, n]) => n > 1);
  const [doubled] = await sql<{ n: number }[]>`
    select count(*)::int as n from (
      select 1 from leasehold.webhook_deliveries where tenant_id = ${tenantId}
      group by job_id, event, coalesce(webhook_id::text, url) having count(*) > 1) x`;
  if (doubled!.n) violations.push(`${doubled!.n} callbacks got more than one webhook-id`);
  const [sender] = await sql<{ not_once: number; after: number }[]>`
    with s as (
      select d.id, count(*) filter (where a.status_code between 200 and 299) as ok,
             max(a.id) filter (where a.status_code between 200 and 299) as ok_id, max(a.id) as last_id
      from leasehold.webhook_deliveries d left join leasehold.webhook_delivery_attempts a on a.delivery_id = d.id
      where d.tenant_id = ${tenantId} group by d.id)
    select count(*) filter (where ok <> 1)::int as not_once, count(*) filter (where ok_id < last_id)::int as after from s`;
  if (sender!.not_once) violations.push(`${sender!.not_once} deliveries without exactly one recorded success`);
  if (sender!.after) violations.push(`${sender!.after} deliveries were attempted again after a recorded success`);
  const missing = deliveries.filter((d) => !acks.has(d.id));
  if (missing.length) violations.push(`${missing.length} callbacks never acknowledged (e.g. ${missing[0]!.id})`);
  const strangers = [...acks.keys()].filter((id) => !ids.has(id));
  if (strangers.length) violations.push(`${strangers.length} acknowledged webhook-ids match no delivery`);
  const unverified = receiver.received.filter((r) => !r.verified || !r.hexVerified).length;
  if (unverified) violations.push(`${unverified} requests failed signature verification`);
  const bodies = new Map<string, string>();
  let changed = 0;
  for (const r of receiver.received) {
    const first = bodies.get(r.id);
    if (first === undefined) bodies.set(r.id, r.body);
    else if (first !== r.body) changed++;
  }
  if (changed) violations.push(`${changed} retries sent a different body than the first attempt`);

  const [attempts] = await sql<{ refused: number; failed: number }[]>`
    select count(*) filter (where a.status_code is null)::int as refused,
           count(*) filter (where a.status_code is not null and a.status_code not between 200 and 299)::int as failed
    from leasehold.webhook_delivery_attempts a join leasehold.webhook_deliveries d on d.id = a.delivery_id
    where d.tenant_id = ${tenantId}`;
  return {
    ok: violations.length === 0,
    callbacks: expected,
    delivered: deliveries.length - notDelivered.length,
    requests: receiver.received.length,
    unverified,
    acked: [...acks.keys()].filter((id) => ids.has(id)).length,
    redelivered: twice.length,
    refused_attempts: attempts!.refused,
    failed_attempts: attempts!.failed,
    ms: Date.now() - t0,
    violations,
  };
}

/** The summary line. */
export function summaryLine(r: FlapReport): string {
  const head = `webhook-flap: ${r.ok ? 'ok' : 'FAILED'} callbacks=${r.callbacks} delivered=${r.delivered} acked=${r.acked} ` +
    `redelivered=${r.redelivered} requests=${r.requests} refused=${r.refused_attempts} failed=${r.failed_attempts} ` +
    `unverified=${r.unverified} ${(r.ms / 1000).toFixed(1)}s`;
  return r.ok ? head : `${head} — ${r.violations.join('; ')}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { fast: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } } });
  const log = createLogger(process.env.LOG_LEVEL ?? 'silent', 'chaos');
  const db = await openChaosDatabase('chaos-webhooks');
  try {
    const report = await runWebhookFlap(db.url, values.fast ? FAST : FULL, log);
    console.log(values.json ? JSON.stringify(report) : summaryLine(report));
    return report.ok ? 0 : 1;
  } finally {
    await db.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error('webhook-flap: error', err);
      process.exit(2);
    },
  );
}
