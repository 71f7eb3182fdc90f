import cron from 'node-cron';
import type { Config } from '#shared/config.js';
import type { Sql } from '#shared/db/connect.js';
import type { Logger } from '#shared/log.js';
import { Governor, type GovernorConfig } from '#shared/governor/governor.js';
import { CHANNELS, Notifier } from '#shared/jobs/notifier.js';
import { LocalObjectStore } from '#shared/storage/local-store.js';
import type { ObjectStore } from '#shared/storage/object-store.js';
import { runRetention } from './retention.js';
import { runDueSchedules } from './schedules.js';
import { STATISTICS_CHECK_MS, analyzeGrownTables } from './statistics.js';

/** The settings the maintenance runner reads (the governor's, for schedules of paid kinds). */
export type MaintenanceConfig = Pick<
  Config,
  'RETENTION_JOBS_DAYS' | 'RETENTION_DEAD_LETTERS_DAYS' | 'RETENTION_QUEUE_IDLE_HOURS' | 'RETENTION_CRON' | 'SCHEDULER_POLL_MS'
> & GovernorConfig;

/**
 * Runs in every worker process: retention on the RETENTION_CRON schedule (node-cron; one runner at
 * a time across processes through an advisory lock), the scheduler every SCHEDULER_POLL_MS
 * (every process may tick: a tick enqueues once however many race for it), and every
 * STATISTICS_CHECK_MS an ANALYZE of tables that outgrew their statistics (one process at a time).
 */
export function startMaintenance(opts: {
  sql: Sql;
  log: Logger;
  config: MaintenanceConfig;
  /** The process's object store: retention deletes unused uploads from it when it is the local one. */
  storage?: ObjectStore;
  /** How often to look for tables that outgrew their statistics (tests shorten it). */
  statisticsCheckMs?: number;
  /** The process's governor, when its API has one (schedule ticks of paid kinds estimate with it). */
  governor?: Governor;
}): { stop(): Promise<void> } {
  const { sql, config } = opts;
  const local = opts.storage instanceof LocalObjectStore ? opts.storage : undefined;
  const log = opts.log.child({ component: 'maintenance' });
  const notifier = new Notifier(sql, (err) => log.debug({ err }, 'notify failed'));
  const governor = opts.governor ?? new Governor(config);
  let stopped = false;
  let inflight: Promise<unknown> = Promise.resolve();

  const retention = cron.schedule(
    config.RETENTION_CRON,
    async () => {
      const policy = {
        jobsDays: config.RETENTION_JOBS_DAYS,
        deadLettersDays: config.RETENTION_DEAD_LETTERS_DAYS,
        queueIdleHours: config.RETENTION_QUEUE_IDLE_HOURS,
      };
      const run = runRetention(sql, policy, new Date(), local)
        .then((report) => {
          if (report === null) log.debug('retention skipped: another process is running it');
          else log.info({ ...report }, 'retention pass done');
        })
        .catch((err: unknown) => log.warn({ err }, 'retention pass failed; the next one retries'));
      inflight = run;
      await run;
    },
    { name: 'leasehold-retention', noOverlap: true },
  );

  const timers = new Map<string, NodeJS.Timeout>();
  /** Runs `pass` after `firstMs`, then again `everyMs` after each run ends, until stop(). */
  const repeat = (name: string, firstMs: number, everyMs: number, pass: () => Promise<void>) => {
    const run = async () => {
      const done = pass();
      inflight = Promise.all([inflight, done]);
      await done;
      if (!stopped) timers.set(name, setTimeout(run, everyMs));
    };
    timers.set(name, setTimeout(run, firstMs));
  };

  repeat('schedules', 0, config.SCHEDULER_POLL_MS, () =>
    runDueSchedules(sql, governor)
      .then((handled) => {
        const ticks = handled.filter((t) => t.jobId !== null);
        // Each job wake-up is also the event readers' wake-up for the ticks' job.queued events.
        for (const t of ticks) notifier.notify(CHANNELS.jobs, t.queue);
        if (ticks.length) {
          log.info({ ticks: ticks.map((t) => ({ schedule: t.schedule, tick_at: t.tickAt, job_id: t.jobId })) }, 'schedules enqueued');
        }
        for (const t of handled) {
          if (t.refusal !== null) {
            log.warn({ schedule: t.schedule, tick_at: t.tickAt, refusal: t.refusal }, 'schedule tick refused: no job enqueued; the next tick asks again');
          }
        }
      })
      .catch((err: unknown) => log.warn({ err }, 'schedule pass failed; will retry')),
  );

  const statisticsMs = opts.statisticsCheckMs ?? STATISTICS_CHECK_MS;
  repeat('statistics', statisticsMs, statisticsMs, () =>
    analyzeGrownTables(sql)
      .then((tables) => {
        for (const t of tables) log.info({ ...t }, 'table outgrew its statistics: analyzed, so cached plans are made anew');
      })
      .catch((err: unknown) => log.warn({ err }, 'statistics pass failed; will retry')),
  );

  return {
    async stop() {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      await retention.destroy();
      await inflight;
      await notifier.flush();
    },
  };
}
