import { existsSync, mkdtempSync } from 'node:fs';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Sql } from '#shared/db/connect.js';
import { LocalObjectStore } from '#shared/storage/local-store.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { queueFor } from '../../test/helpers/engine.js';
import { daysAgo, uuidv7At } from '../../test/helpers/uuid-at.js';
import { deferred } from '../../test/helpers/deferred.js';
import { waitFor } from '../../test/helpers/wait.js';
import { PRUNE_ADMIN_ACTIONS, RETENTION_LOCK_KEY, runRetention } from './retention.js';

let db: TestDatabase;
// A tenant of the API's, so that its jobs have tenant_jobs rows (the system tenant's have none).
const TENANT = '0190b000-0000-7000-8000-00000000aa01';
beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`insert into leasehold.tenants (id, slug, name) values (${TENANT}, 'retention', 'Retention')`;
});
afterAll(() => db.drop());

const POLICY = { jobsDays: 14, deadLettersDays: 90, batchSize: 4 };

/** Inserts one job created `createdDaysAgo` days ago, finished `finishedDaysAgo` ago (null: not finished). */
async function job(sql: Sql, status: string, createdDaysAgo: number, finishedDaysAgo: number | null): Promise<string> {
  const created = daysAgo(createdDaysAgo);
  const id = uuidv7At(created);
  const finished = finishedDaysAgo === null ? null : daysAgo(finishedDaysAgo);
  await sql`insert into leasehold.jobs (id, tenant_id, kind, status, attempts, created_at, finished_at, run_at, lease_token, lease_owner, lease_expires_at)
            values (${id}, ${TENANT}, 'system.noop', ${status}::leasehold.job_status, 1, ${created}, ${finished}, ${created},
                    ${status === 'running' ? uuidv7At(created) : null}, ${status === 'running' ? 'w' : null},
                    ${status === 'running' ? new Date(Date.now() + 30_000) : null})`;
  // A second event besides the insert trigger's, so events are counted per job, not per row.
  await sql`insert into leasehold.job_events (job_id, tenant_id, type, attempt) values (${id}, ${TENANT}, 'job.progress', 1)`;
  return id;
}

/** A dead letter of `jobId` failed `failedDaysAgo` days ago, open unless `requeued`. */
async function deadLetter(sql: Sql, jobId: string, failedDaysAgo: number): Promise<string> {
  const failed = daysAgo(failedDaysAgo);
  const [row] = await sql<{ id: string }[]>`
    insert into leasehold.dead_letters (id, job_id, tenant_id, kind, queue, payload, priority, attempts, max_attempts, errors, job_created_at, failed_at)
    values (${uuidv7At(failed)}, ${jobId}, ${TENANT}, 'system.noop', 'default', '{}', 100, 3, 3, '[]', ${failed}, ${failed})
    returning id`;
  return row!.id;
}

async function present(sql: Sql, ids: string[]) {
  const rows = await sql<{ id: string; events: number; listed: boolean }[]>`
    select j.id, (select count(*) from leasehold.job_events e where e.job_id = j.id)::int as events,
           exists (select 1 from leasehold.tenant_jobs t where t.job_id = j.id) as listed
    from leasehold.jobs j where j.id = any(${ids}::uuid[])`;
  return new Map(rows.map((r) => [r.id, r]));
}

test('deletes old finished jobs with their events and list rows, in batches, and keeps everything else', async () => {
  const oldDone = await Promise.all(Array.from({ length: 11 }, (_, i) => job(db.sql, i % 2 ? 'succeeded' : 'cancelled', 20 + i, 20 + i)));
  const finishedRecently = await job(db.sql, 'succeeded', 20, 1);
  const oldQueued = await job(db.sql, 'queued', 30, null);
  const oldRunning = await job(db.sql, 'running', 30, null);
  const recentDone = await job(db.sql, 'succeeded', 2, 2);
  const failedOpen = await job(db.sql, 'failed', 20, 20);
  const failedOpenLetter = await deadLetter(db.sql, failedOpen, 20);
  const failedAncient = await job(db.sql, 'failed', 100, 100);
  const ancientLetter = await deadLetter(db.sql, failedAncient, 100);
  await db.sql`insert into leasehold.admin_actions (actor, action, at) values ('ops', 'pause_queue', now() - interval '100 days'), ('ops', 'resume_queue', now())`;
  // What the governor counted for a job goes with the job, and stays while the job does.
  await db.sql`insert into leasehold.job_settlements (job_id, actual_micros) values (${oldDone[0]!}, 10), (${failedOpen}, 20)`;

  const report = await runRetention(db.sql, POLICY);
  // The ancient dead letter goes first, so its failed job (no open dead letter left) goes in the same pass.
  expect(report).toEqual({ jobs: 12, events: 24, deadLetters: 1, scheduleTicks: 0, adminActions: 1, webhookDeliveries: 0, uploads: 0, patterns: 0, patternVersions: 0, queues: 0, objects: 0, abandonedFiles: 0 });

  const left = await present(db.sql, [...oldDone, finishedRecently, oldQueued, oldRunning, recentDone, failedOpen, failedAncient]);
  for (const id of [...oldDone, failedAncient]) expect(left.has(id), `job ${id} should be gone`).toBe(false);
  for (const id of [finishedRecently, oldQueued, oldRunning, recentDone, failedOpen]) {
    expect(left.get(id), `job ${id} should stay, with its events and list row`).toEqual({ id, events: 2, listed: true });
  }
  const orphans = await db.sql`select count(*)::int as n from leasehold.job_events where job_id = any(${[...oldDone, failedAncient]}::uuid[])`;
  expect(orphans[0]!.n).toBe(0);
  const letters = await db.sql<{ id: string }[]>`select id from leasehold.dead_letters where id in ${db.sql([failedOpenLetter, ancientLetter])}`;
  expect(letters.map((l) => l.id)).toEqual([failedOpenLetter]);
  expect(await db.sql`select action from leasehold.admin_actions`).toEqual([{ action: 'resume_queue' }]);
  expect(await db.sql`select job_id from leasehold.job_settlements`).toEqual([{ job_id: failedOpen }]);

  // The kept failed job can still be requeued from its dead letter; a second pass finds nothing.
  expect((await db.sql`select leasehold.requeue_dead_letter(${failedOpenLetter}) as job`)[0]!.job).toBe(failedOpen);
  expect(await runRetention(db.sql, POLICY)).toEqual({ jobs: 0, events: 0, deadLetters: 0, scheduleTicks: 0, adminActions: 0, webhookDeliveries: 0, uploads: 0, patterns: 0, patternVersions: 0, queues: 0, objects: 0, abandonedFiles: 0 });
});

test('while another process holds the retention lock, a runner does nothing and says so', async () => {
  const old = await job(db.sql, 'succeeded', 40, 40);
  const other = db.connect({ max: 1 });
  const holder = await other.reserve();
  await holder`select pg_advisory_lock(${RETENTION_LOCK_KEY.toString()}::bigint)`;
  try {
    expect(await runRetention(db.sql, POLICY)).toBeNull();
    expect((await present(db.sql, [old])).has(old)).toBe(true);
  } finally {
    await holder`select pg_advisory_unlock(${RETENTION_LOCK_KEY.toString()}::bigint)`;
    holder.release();
  }
  expect(await runRetention(db.sql, POLICY)).toMatchObject({ jobs: 1 });
});

test('two runners started together: one does the work, the other skips or finds nothing left', async () => {
  const old = await Promise.all(Array.from({ length: 40 }, () => job(db.sql, 'succeeded', 30, 30)));
  const [a, b] = await Promise.all([runRetention(db.connect({ max: 2 }), POLICY), runRetention(db.connect({ max: 2 }), POLICY)]);
  const reports = [a, b].filter((r) => r !== null);
  expect(reports.map((r) => r.jobs).sort((x, y) => x - y)).toEqual(reports.length === 1 ? [40] : [0, 40]);
  expect((await present(db.sql, old)).size).toBe(0);
});

test('deletes webhook deliveries that finished before the cutoff, with their attempts, in batches; pending ones stay', async () => {
  const [tenant] = await db.sql<{ id: string }[]>`insert into leasehold.tenants (id, slug, name) values (gen_random_uuid(), 'ret-hooks', 'hooks') returning id`;
  const [hook] = await db.sql<{ id: string }[]>`
    insert into leasehold.webhooks (id, tenant_id, url, events, secret)
    values (gen_random_uuid(), ${tenant!.id}, 'https://hooks.example.com/x', array['job.succeeded'], 'x') returning id`;
  /** A delivery made `madeDaysAgo` days ago, in `status`, its last attempt `lastDaysAgo` ago, with two attempts logged. */
  const delivery = async (status: string, madeDaysAgo: number, lastDaysAgo: number) => {
    const id = uuidv7At(daysAgo(madeDaysAgo));
    const last = daysAgo(lastDaysAgo);
    await db.sql`
      insert into leasehold.webhook_deliveries (id, tenant_id, webhook_id, job_id, event, occurred_at, status, deliver_job_id, attempts, last_attempt_at, delivered_at)
      values (${id}, ${tenant!.id}, ${hook!.id}, gen_random_uuid(), 'job.succeeded', ${daysAgo(madeDaysAgo)}, ${status}, gen_random_uuid(), 2, ${last},
              ${status === 'delivered' ? last : null})`;
    for (const attempt of [1, 2]) {
      await db.sql`
        insert into leasehold.webhook_delivery_attempts (delivery_id, attempt, deliver_job_id, started_at, latency_ms, status_code)
        values (${id}, ${attempt}, gen_random_uuid(), ${last}, 5, 200)`;
    }
    return id;
  };
  const old = await Promise.all([
    ...Array.from({ length: 6 }, (_, i) => delivery('delivered', 20 + i, 20 + i)),
    delivery('failed', 30, 16),
    delivery('skipped', 15, 15),
  ]);
  const keep = await Promise.all([
    delivery('pending', 30, 20), // still being retried
    delivery('failed', 20, 3), // made long ago, gave up recently
    delivery('delivered', 2, 2),
  ]);

  const report = await runRetention(db.sql, POLICY);
  expect(report).toMatchObject({ webhookDeliveries: 8 });
  const left = await db.sql<{ id: string; attempts: number }[]>`
    select d.id, (select count(*) from leasehold.webhook_delivery_attempts a where a.delivery_id = d.id)::int as attempts
    from leasehold.webhook_deliveries d where d.id = any(${[...old, ...keep]}::uuid[]) order by d.id`;
  expect(left).toEqual([...keep].sort().map((id) => ({ id, attempts: 2 })));
  const orphans = await db.sql`select count(*)::int as n from leasehold.webhook_delivery_attempts where delivery_id = any(${old}::uuid[])`;
  expect(orphans[0]!.n).toBe(0);
  expect(await runRetention(db.sql, POLICY)).toMatchObject({ webhookDeliveries: 0 });
});

/** A row of `uploads` made `madeDaysAgo` days ago (a job's output when `createdBy` is `job:…`), last named by a job `usedDaysAgo` ago. */
async function uploadRow(madeDaysAgo: number, opts: { usedDaysAgo?: number; createdBy?: string } = {}): Promise<string> {
  const made = daysAgo(madeDaysAgo);
  const id = uuidv7At(made);
  const key = `uploads/${TENANT}/${id}/a.png`;
  const output = opts.createdBy?.startsWith('job:');
  await db.sql`
    insert into leasehold.uploads (id, tenant_id, storage_key, content_type, size_bytes, created_by, created_at, expires_at, used_at)
    values (${id}, ${TENANT}, ${key}, 'image/png', 68, ${opts.createdBy ?? 'key:test'}, ${made},
            ${output ? made : new Date(made.getTime() + 15 * 60_000)}, ${opts.usedDaysAgo === undefined ? null : daysAgo(opts.usedDaysAgo)})`;
  return key;
}

/** A job of `kind` with `payload` (and `result`), made and finished as `job` makes them. */
async function jobNaming(kind: string, payload: object, status: string, createdDaysAgo: number, finishedDaysAgo: number | null, result?: object) {
  const id = await job(db.sql, status, createdDaysAgo, finishedDaysAgo);
  await db.sql`update leasehold.jobs set kind = ${kind}, payload = ${db.sql.json(payload as never)}, result = ${result ? db.sql.json(result as never) : null} where id = ${id}`;
  return id;
}

test('deletes upload rows made before the cutoff whose URL expired, in batches, and keeps recent ones; on S3 the objects are left to the bucket', async () => {
  const old = await Promise.all(Array.from({ length: 9 }, (_, i) => uploadRow(16 + i)));
  const keep = await Promise.all([uploadRow(14), uploadRow(13), uploadRow(1), uploadRow(0)]);

  expect(await runRetention(db.sql, POLICY)).toMatchObject({ uploads: 9, objects: 0 });
  const left = await db.sql<{ storage_key: string }[]>`select storage_key from leasehold.uploads where storage_key = any(${[...old, ...keep]}::text[]) order by id`;
  expect(left.map((r) => r.storage_key)).toEqual([...keep].sort());
  expect(await runRetention(db.sql, POLICY)).toMatchObject({ uploads: 0 });
  await db.sql`delete from leasehold.uploads`;
});

test('deletes local objects of expired uploads and outputs that no job or schedule names, and keeps those one does', async () => {
  const store = new LocalObjectStore({ dataDir: mkdtempSync(path.join(tmpdir(), 'retention-objects-')), secret: 'x'.repeat(32) });
  const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
  /** An uploads row and its object in the store. */
  const stored = async (madeDaysAgo: number, opts: Parameters<typeof uploadRow>[1] = {}) => {
    const key = await uploadRow(madeDaysAgo, opts);
    await store.put(key, PNG, 'image/png');
    return key;
  };
  // The image of two edit jobs below; one of them is kept, so it stays.
  const other = await stored(30);

  // Gone: nothing names them, or only a job that this pass deletes.
  const unused = await Promise.all(Array.from({ length: 6 }, (_, i) => stored(16 + i)));
  const ofPrunedJob = await stored(40);
  await jobNaming('image.edit', { image: ofPrunedJob, prompt: 'p' }, 'succeeded', 40, 40);
  const prunedOutputJob = await jobNaming('image.edit', { image: other, prompt: 'p' }, 'succeeded', 35, 35);
  const prunedOutput = await stored(35, { createdBy: `job:${prunedOutputJob}` });
  await db.sql`update leasehold.jobs set result = ${db.sql.json({ storage_key: prunedOutput })} where id = ${prunedOutputJob}`;

  // Kept: made or named by a job recently, or named by a queued or running job (made by SQL, so
  // nothing marked them used), by an old job still in the table, by a schedule, or the result of a kept job.
  const recent = await stored(14);
  const usedLately = await stored(30, { usedDaysAgo: 10 });
  const ofQueued = await stored(30);
  await jobNaming('manifest.extract', { pattern_id: TENANT, pattern_version: 1, image: { storage_key: ofQueued.toUpperCase().replace('UPLOADS/', 'uploads/') } }, 'queued', 1, null);
  const [inGallery, alsoInGallery] = [await stored(30), await stored(25)];
  await jobNaming('gallery.group', { images: [inGallery, alsoInGallery] }, 'running', 0, null);
  const [image, mask] = [await stored(30), await stored(30)];
  await jobNaming('image.edit', { image, mask, prompt: 'p' }, 'failed', 20, 10);
  const ofSchedule = await stored(30);
  await db.sql`insert into leasehold.schedules (name, cron, kind, payload, tenant_id)
               values ('nightly-edit', '0 3 * * *', 'image.edit', ${db.sql.json({ image: ofSchedule, prompt: 'p' })}, ${TENANT})`;
  const keptOutputJob = await jobNaming('image.edit', { image: other, prompt: 'p' }, 'succeeded', 20, 3);
  const keptOutput = await stored(20, { createdBy: `job:${keptOutputJob}` });
  await db.sql`update leasehold.jobs set result = ${db.sql.json({ storage_key: keptOutput })} where id = ${keptOutputJob}`;

  // Temporary files of transfers: one a dead process left an hour ago, one still being written.
  const incoming = path.join(store.root, '.incoming');
  await mkdir(incoming, { recursive: true });
  await writeFile(path.join(incoming, 'dead.tmp'), 'x');
  await utimes(path.join(incoming, 'dead.tmp'), daysAgo(1), daysAgo(1));
  await writeFile(path.join(incoming, 'live.tmp'), 'x');

  const gone = [...unused, ofPrunedJob, prunedOutput];
  const kept = [recent, usedLately, ofQueued, inGallery, alsoInGallery, image, mask, ofSchedule, keptOutput, other];
  expect(await runRetention(db.sql, POLICY, new Date(), store)).toMatchObject({ uploads: gone.length, objects: gone.length, abandonedFiles: 1 });

  for (const key of gone) {
    expect(await store.head(key), `${key} should be gone`).toBeUndefined();
    // Its directory (one per key) goes with it.
    expect(existsSync(path.dirname(path.join(store.root, key))), `${key}'s directory should be gone`).toBe(false);
  }
  for (const key of kept) expect(await store.head(key), `${key} should stay`).toEqual({ size: PNG.byteLength, contentType: 'image/png' });
  const rows = await db.sql<{ storage_key: string }[]>`select storage_key from leasehold.uploads where storage_key = any(${[...gone, ...kept]}::text[])`;
  expect(rows.map((r) => r.storage_key).sort()).toEqual([...kept].sort());
  expect(await readdir(incoming)).toEqual(['live.tmp']);
  expect(await runRetention(db.sql, POLICY, new Date(), store)).toMatchObject({ uploads: 0, objects: 0, abandonedFiles: 0 });
});

// The payloads that may name an upload are read once per pass; jobs and schedules made by SQL
// while the pass runs must still keep the uploads they name, as when every batch read them all.
test('an upload named by a job or a schedule made by SQL while the pass runs is kept', async () => {
  const keys: string[] = [];
  for (let i = 0; i < 8; i++) keys.push(await uploadRow(30 - i));
  const [ofNewJob, ofNewSchedule] = [keys[5]!, keys[6]!];
  let made = false;
  const store = {
    // Called inside the first batch's transaction, after the names were collected.
    async delete() {
      if (made) return;
      made = true;
      await db.sql`insert into leasehold.jobs (tenant_id, kind, payload) values (${TENANT}, 'image.edit', ${db.sql.json({ image: ofNewJob, prompt: 'p' })})`;
      await db.sql`insert into leasehold.schedules (name, cron, kind, payload, tenant_id)
                   values ('made-mid-pass', '0 3 * * *', 'image.edit', ${db.sql.json({ image: ofNewSchedule, prompt: 'p' })}, ${TENANT})`;
    },
    sweepIncoming: async () => 0,
  };
  expect(await runRetention(db.sql, POLICY, new Date(), store)).toMatchObject({ uploads: 6 });
  expect(made).toBe(true);
  const left = await db.sql<{ storage_key: string }[]>`select storage_key from leasehold.uploads where storage_key = any(${keys}::text[]) order by id`;
  expect(left.map((r) => r.storage_key)).toEqual([ofNewJob, ofNewSchedule]);
  await db.sql`delete from leasehold.schedules where name = 'made-mid-pass'`;
  await db.sql`delete from leasehold.jobs where kind = 'image.edit' and status = 'queued'`;
  await db.sql`delete from leasehold.uploads`;
});

describe('idle queues', () => {
  // Queue names used to stay for good: any tenant could make them without end, and a worker serving
  // all queues probes each one in every claim.
  const HOURS = 3_600_000;
  /** A queues row marked idle `idleHoursAgo` hours ago (null: not marked), paused or not. */
  const queueRow = (name: string, idleHoursAgo: number | null, paused = false) => db.sql`
    insert into leasehold.queues (name, idle_since, paused_at)
    values (${name}, ${idleHoursAgo === null ? null : new Date(Date.now() - idleHoursAgo * HOURS)}, ${paused ? new Date() : null})
    on conflict (name) do update set idle_since = excluded.idle_since, paused_at = excluded.paused_at`;
  /** A job of `status` in `queue` (the insert trigger registers the queue). */
  const jobIn = async (queue: string, status: string) => {
    const [row] = await db.sql<{ id: string }[]>`
      insert into leasehold.jobs (id, tenant_id, kind, queue, status, attempts, run_at, finished_at, lease_token, lease_owner, lease_expires_at)
      values (${uuidv7At(new Date())}, ${TENANT}, 'system.noop', ${queue}, ${status}::leasehold.job_status, 1, now() + interval '1 day',
              ${['succeeded', 'failed', 'cancelled'].includes(status) ? new Date() : null},
              ${status === 'running' ? uuidv7At(new Date()) : null}, ${status === 'running' ? 'w' : null},
              ${status === 'running' ? new Date(Date.now() + 30_000) : null})
      returning id`;
    return row!.id;
  };
  const marks = async (names: string[]) =>
    Object.fromEntries(
      (await db.sql<{ name: string; marked: boolean }[]>`select name, idle_since is not null as marked from leasehold.queues where name = any(${names})`)
        .map((r) => [r.name, r.marked]),
    );

  test('deletes queues idle past the grace period, in batches; keeps paused, live and recently idle ones, and marks the newly idle', async () => {
    const old = Array.from({ length: 6 }, (_, i) => `idle-old-${i}`);
    for (const q of old) await queueRow(q, 25);
    const finished = await jobIn('only-finished', 'cancelled');
    await queueRow('only-finished', 25);
    await queueRow('paused-old', 25, true);
    await jobIn('queued-old', 'queued');
    await queueRow('queued-old', 25);
    await jobIn('running-old', 'running');
    await queueRow('running-old', 25);
    await queueRow('idle-recent', 1);
    await queueRow('never-looked-at', null);

    const report = await runRetention(db.sql, { ...POLICY, queueIdleHours: 24 });
    expect(report).toMatchObject({ queues: 7 });
    const kept = ['paused-old', 'queued-old', 'running-old', 'idle-recent', 'never-looked-at'];
    expect(await marks([...old, 'only-finished', ...kept])).toEqual({
      'paused-old': true,
      'queued-old': false, // a live job clears the mark
      'running-old': false,
      'idle-recent': true,
      'never-looked-at': true, // idle from this pass on
    });

    // A finished job does not hold its queue; retrying it registers the queue again.
    expect((await db.sql`select leasehold.retry_job(${finished}) as ok`)[0]!.ok).toBe(true);
    expect(await marks(['only-finished'])).toEqual({ 'only-finished': false });
    expect(await runRetention(db.sql, { ...POLICY, queueIdleHours: 24 })).toMatchObject({ queues: 0 });
  });

  test('a job inserted into a queue while retention deletes it keeps its queue, whichever goes first', async () => {
    const pending = await db.connect({ max: 1 }).reserve();
    const lockWaits = async () =>
      (await db.sql`select count(*)::int as n from pg_locks where relation = 'leasehold.queues'::regclass and not granted`)[0]!.n > 0;

    // The job's insert goes first and is not committed: retention waits for it (or, past its lock
    // timeout, leaves the queues to the next pass), then sees the job.
    await queueRow('race-insert-first', 25);
    const inserted = deferred();
    const go = deferred();
    const producer = db.sql.begin(async (tx) => {
      await tx`insert into leasehold.jobs (id, tenant_id, kind, queue) values (${uuidv7At(new Date())}, ${TENANT}, 'system.noop', 'race-insert-first')`;
      inserted.resolve();
      await go.promise;
    });
    await inserted.promise;
    expect(await runRetention(db.sql, { ...POLICY, queueLockTimeoutMs: 50 })).toMatchObject({ queues: null });
    const retention = runRetention(db.sql, { ...POLICY, queueLockTimeoutMs: 10_000 });
    await waitFor(lockWaits, 'retention waiting for the lock on queues');
    go.resolve();
    await producer;
    expect(await retention).toMatchObject({ queues: 0 });
    expect(await marks(['race-insert-first'])).toEqual({ 'race-insert-first': true });
    expect(await runRetention(db.sql, POLICY)).toMatchObject({ queues: 0 });
    expect(await marks(['race-insert-first'])).toEqual({ 'race-insert-first': false });

    // The delete goes first and is not committed: the job's insert waits for it, then registers the queue again.
    await queueRow('race-delete-first', 25);
    await pending`begin`;
    await pending`lock table leasehold.queues in share row exclusive mode`;
    expect(await pending`delete from leasehold.queues where name = 'race-delete-first' returning name`).toHaveLength(1);
    const late = queueFor(db.sql).enqueue({ kind: 'system.noop', queue: 'race-delete-first' });
    await waitFor(lockWaits, 'the insert waiting for the lock on queues');
    await pending`commit`;
    pending.release();
    await late;
    expect(await marks(['race-delete-first'])).toEqual({ 'race-delete-first': false });
  });
});

test('the admin audit log is pruned through an index range on `at`, not by reading the whole table', async () => {
  const other = await createTestDatabase();
  try {
    // A tenant's API cancels and retries are logged too: 50,000 rows over 200 days, 90 of them kept.
    await other.sql`
      insert into leasehold.admin_actions (actor, action, target, at)
      select 'key:k', 'cancel_job', gen_random_uuid()::text, now() - make_interval(days => 200) + make_interval(secs => i * 345.6)
      from generate_series(1, 50000) i`;
    await other.sql`vacuum analyze leasehold.admin_actions`;
    const cutoff = daysAgo(90).toISOString();
    const plan = (await other.sql.unsafe<{ 'QUERY PLAN': string }[]>(`explain ${PRUNE_ADMIN_ACTIONS}`, [cutoff, 1_000])).map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(/Index (Only )?Scan using admin_actions_at_idx on admin_actions/);
    expect(plan).not.toMatch(/Seq Scan on admin_actions/);
    const report = await runRetention(other.sql, { jobsDays: 14, deadLettersDays: 90, batchSize: 1_000 });
    const [left] = await other.sql<{ n: number; oldest: Date }[]>`select count(*)::int as n, min(at) as oldest from leasehold.admin_actions`;
    expect(report!.adminActions + left!.n).toBe(50_000);
    expect(left!.oldest.getTime()).toBeGreaterThanOrEqual(Date.parse(cutoff));
    expect(report!.adminActions).toBeGreaterThan(27_000);
  } finally {
    await other.drop();
  }
});
