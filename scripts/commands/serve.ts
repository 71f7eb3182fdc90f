import { serve as serveHttp, type ServerType } from '@hono/node-server';
import { connect } from '#shared/db/connect.js';
import { openDatabase } from '#shared/db/open-database.js';
import { migrate } from '#shared/db/migrator.js';
import { applyGovernorSettings } from '#shared/governor/settings.js';
import { ensureDevKey } from '#shared/auth/tenants.js';
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
      maintenance = startMaintenance({ sql, log, config });
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
    let devKey: string | undefined;
    if (what.api && what.worker) {
      // `start`: make sure a development key exists, and show it when it was just made or given.
      const dev = await ensureDevKey(sql, config.LEASEHOLD_API_KEY);
      devKey = dev.key;
      if (dev.created) log.info({ tenant: dev.tenant.slug }, 'development API key created');
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
        retryMs: config.SSE_RETRY_MS,
        gzip: config.SSE_GZIP,
      });
      await events.start();
      const app = createApp({ sql, config, log, queue, storage, events, metrics });
      pruning = startPruning({ sql, log });
      server = await new Promise<ServerType>((resolve, reject) => {
        const s = serveHttp({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, () => resolve(s));
        s.once('error', reject);
      });
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : config.PORT;
      const url = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${port}`;
      log.info({ url }, 'API listening');
      if (!ctx.json) {
        const key = devKey
          ? `  API key: ${devKey}\n  try:     curl -H "Authorization: Bearer ${devKey}" ${url}/v1/jobs\n`
          : what.worker
            ? '  API key: the development key was printed when it was made; new ones: leasehold keys create\n'
            : '';
        process.stdout.write(`\nLeasehold is running at ${url}\n  docs:    ${url}/docs\n  dashboard: ${url}/dashboard (log in with an admin key)\n${key}\n`);
      }
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
