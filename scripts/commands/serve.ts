import { serve as serveHttp, type ServerType } from '@hono/node-server';
import { connect } from '#shared/db/connect.js';
import { openDatabase } from '#shared/db/open-database.js';
import { migrate } from '#shared/db/migrator.js';
import { applyGovernorSettings } from '#shared/governor/settings.js';
import { Governor } from '#shared/governor/governor.js';
import { ensureDevKey, type DevKey } from '#shared/auth/dev-key.js';
import { Notifier } from '#shared/jobs/notifier.js';
import { JobQueue } from '#shared/jobs/queue.js';
import { startMaintenance } from '#shared/maintenance/maintenance.js';
import { createMetrics } from '#shared/metrics/metrics.js';
import { startMetricsServer } from '#shared/metrics/metrics-server.js';
import { scrapeAuthorizer } from '#shared/metrics/scrape-auth.js';
import { createObjectStore } from '#shared/storage/object-store.js';
import { createApp } from '../../api/app.js';
import { EventHub } from '../../api/events/event-hub.js';
import { startPruning } from '../../api/prune-expired.js';
import { Worker } from '../../worker/worker.js';
import { assertMigrated, type CommandContext } from '../context.js';

/**
 * Runs the API, a worker, or both in one process until SIGINT/SIGTERM, then stops in order:
 * HTTP first, then the worker (hand-back of unfinished leases), then the pools, then the embedded
 * PostgreSQL. A second signal skips the worker's grace period.
 */
export async function serve(ctx: CommandContext, what: { api: boolean; worker: boolean; migrate: boolean }): Promise<number> {
  const { config, log } = ctx;
  const db = await openDatabase(config, log);
  const sql = connect(db.url, { max: config.DATABASE_POOL_MAX, application: what.worker && !what.api ? 'leasehold-worker' : 'leasehold' });
  const workerSql = what.worker
    ? connect(db.url, {
        max: config.DATABASE_POOL_MAX,
        application: 'leasehold-worker',
        synchronousCommit: config.WORKER_SYNCHRONOUS_COMMIT,
        worker: true,
      })
    : undefined;
  const storage = createObjectStore(config, { dataDir: config.LEASEHOLD_DATA_DIR });
  // One per process: the API's routes and maintenance's schedule ticks share its cache of pattern cost inputs.
  const governor = new Governor(config);
  let server: ServerType | undefined;
  let pruning: { stop(): void } | undefined;
  let worker: Worker | undefined;
  let events: EventHub | undefined;
  let maintenance: { stop(): Promise<void> } | undefined;
  let metricsServer: { close(): Promise<void> } | undefined;
  // One registry per process: in `start`, the API's /metrics also shows the worker's counters.
  const metrics = createMetrics();
  const closeAll = async () => {
    await metricsServer?.close();
    await Promise.all([sql.end({ timeout: 5 }), workerSql?.end({ timeout: 5 })]);
    await db.close();
  };
  try {
    if (what.migrate || db.embedded) {
      const applied = await migrate(sql);
      if (applied.length) log.info({ applied }, 'migrations applied');
    } else await assertMigrated(sql);
    await applyGovernorSettings(sql, config);
    // `start`: a development key to print, settled before anything runs so that a clash with
    // LEASEHOLD_API_KEY ends the start at once.
    const dev = what.api && what.worker
      ? await ensureDevKey(sql, { configured: config.LEASEHOLD_API_KEY, dataDir: config.LEASEHOLD_DATA_DIR, log })
      : undefined;

    if (what.worker) {
      worker = new Worker({
        sql: workerSql!,
        log,
        config,
        storage,
        metrics,
        settings: {
          concurrency: config.WORKER_CONCURRENCY,
          leaseMs: config.WORKER_LEASE_MS,
          heartbeatMs: config.WORKER_HEARTBEAT_MS,
          queues: config.WORKER_QUEUES,
          pollMs: config.WORKER_POLL_MS,
          reclaimMs: config.WORKER_RECLAIM_MS,
          shutdownGraceMs: config.WORKER_SHUTDOWN_GRACE_MS,
          batchSize: config.WORKER_BATCH_SIZE,
          asyncClaims: config.WORKER_ASYNC_CLAIMS,
        },
      });
      await worker.start();
      // Retention and schedule ticks run beside every worker (see shared/maintenance/).
      maintenance = startMaintenance({ sql, log, config, storage, governor });
      if (!what.api && config.WORKER_METRICS_PORT !== undefined) {
        metricsServer = await startMetricsServer({
          registry: metrics.registry,
          port: config.WORKER_METRICS_PORT,
          host: config.HOST,
          log,
          authorize: scrapeAuthorizer(sql, config.METRICS_TOKEN),
        });
      }
    }
    if (what.api) {
      const queue = new JobQueue(sql, new Notifier(sql, (err) => log.debug({ err }, 'notify failed')));
      // One job_events reader (one LISTEN) for every SSE client of this process.
      events = new EventHub({
        sql,
        log,
        pollMs: config.EVENTS_POLL_MS,
        gapTimeoutMs: config.EVENTS_GAP_TIMEOUT_MS,
        keepAliveMs: config.SSE_KEEPALIVE_MS,
        clientBufferBytes: config.SSE_CLIENT_BUFFER_BYTES,
        bufferBudgetBytes: config.SSE_BUFFER_BUDGET_BYTES,
        retryMs: config.SSE_RETRY_MS,
        gzip: config.SSE_GZIP,
      });
      await events.start();
      const app = createApp({ sql, config, log, queue, governor, storage, events, metrics });
      pruning = startPruning({ sql, log });
      server = await new Promise<ServerType>((resolve, reject) => {
        const s = serveHttp({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, () => resolve(s));
        s.once('error', reject);
      });
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : config.PORT;
      const url = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${port}`;
      log.info({ url }, 'API listening');
      process.stdout.write(banner(url, dev, ctx.json));
    }
  } catch (err) {
    await maintenance?.stop().catch(() => {});
    await worker?.stop().catch(() => {});
    await events?.close().catch(() => {});
    server?.close();
    await closeAll();
    throw err;
  }

  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log.warn({ signal }, 'second signal: cutting the grace period short');
        worker?.hurry();
        return;
      }
      log.info({ signal }, 'shutting down');
      void (async () => {
        pruning?.stop();
        // Open event streams would keep the server from closing; their clients resume elsewhere.
        await events?.close();
        await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
        await maintenance?.stop();
        await worker?.stop();
        await closeAll();
        resolve(0);
      })().catch((err: unknown) => {
        log.error({ err }, 'unclean shutdown');
        resolve(1);
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * What `start` and `api` print for the developer once listening: where to go and, for `start`, a
 * working API key. On stdout, never through the logger, whose lines must carry no secret.
 */
function banner(url: string, dev: DevKey | undefined, json: boolean): string {
  if (json) return `${JSON.stringify({ url, docs: `${url}/docs`, dashboard: `${url}/dashboard`, ...(dev && { api_key: dev.key, api_key_source: dev.source }) })}\n`;
  const where = dev?.file ? `kept in ${dev.file}` : 'not saved: see the log';
  const source = { LEASEHOLD_API_KEY: 'from LEASEHOLD_API_KEY', saved: where, created: `new, ${where}` };
  const key = dev
    ? `  API key:   ${dev.key}  (${source[dev.source]})\n  try:       curl -H ${shellQuote(`Authorization: Bearer ${dev.key}`)} ${url}/v1/jobs\n`
    : '';
  return `\nLeasehold is running at ${url}\n  docs:      ${url}/docs\n  dashboard: ${url}/dashboard (log in with an admin key)\n${key}\n`;
}

/** One shell word: a key an operator chose may hold `$`, `"` or `'`. */
const shellQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
