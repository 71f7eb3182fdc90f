import { publicUrl, type Config } from '#shared/config.js';
import type { Sql } from '#shared/db/connect.js';
import { createProvider, type VisionProvider } from '#shared/ai/provider.js';
import { createObjectStore, type ObjectStore } from '#shared/storage/object-store.js';
import { CostRecorder } from '#shared/governor/cost-recorder.js';
import { priceTable } from '#shared/governor/pricing.js';
import type { Logger } from '#shared/log.js';
import type { Metrics } from '#shared/metrics/metrics.js';
import type { HandlerMap } from '../handler.js';
import { galleryGroup } from './gallery-group.js';
import { imageEdit } from './image-edit.js';
import { manifestExtract } from './manifest-extract.js';
import { noop, sleepFor } from './system.js';
import { webhookDeliver } from './webhook-deliver.js';

/** What the built-in handlers need: the worker's pool, the config, and a vision provider. */
export interface HandlerDeps {
  sql: Sql;
  config: Config;
  /** The vision provider; the one the config names (createProvider) when absent. */
  provider?: VisionProvider;
  /** Object storage of uploaded images; the one the config names (createObjectStore) when absent. */
  storage?: ObjectStore;
  /** Where a failure to record a call's cost is reported. */
  log?: Logger;
  /** The worker's metrics: spend per call, webhook delivery outcomes. */
  metrics?: Metrics;
}

/** The handler of every registered kind, bound to its dependencies. */
export function createHandlers(deps: HandlerDeps) {
  const { sql, config } = deps;
  const provider = deps.provider ?? createProvider(config);
  const storage = deps.storage ?? createObjectStore(config, { dataDir: config.LEASEHOLD_DATA_DIR });
  // Every billable call is priced and recorded in cost_events as soon as it returns.
  const costs = new CostRecorder(sql, priceTable(config.GOVERNOR_PRICES), deps.log, deps.metrics);
  return {
    'system.noop': noop,
    'system.sleep': sleepFor,
    'manifest.extract': manifestExtract({
      sql,
      provider,
      defaultModel: config.OPENAI_MODEL,
      ...(config.OPENAI_IMAGE_DETAIL && { detail: config.OPENAI_IMAGE_DETAIL }),
      allowPrivate: config.FETCH_ALLOW_PRIVATE,
      costs,
      storage,
    }),
    'gallery.group': galleryGroup({ provider, model: config.OPENAI_MODEL, costs, storage }),
    'image.edit': imageEdit({ sql, provider, model: config.OPENAI_IMAGE_MODEL ?? 'gpt-image-1', costs, storage }),
    'webhook.deliver': webhookDeliver({ ...webhookDeliverDeps(sql, config), ...(deps.metrics && { metrics: deps.metrics }) }),
  } satisfies HandlerMap;
}

/** webhook.deliver's settings from the config. */
function webhookDeliverDeps(sql: Sql, c: Config) {
  return {
    sql,
    allowPrivate: c.FETCH_ALLOW_PRIVATE,
    secretKey: c.WEBHOOK_SECRET_KEY,
    timeoutMs: c.WEBHOOK_TIMEOUT_MS,
    scheduleMs: c.WEBHOOK_RETRY_SCHEDULE,
    disableAfterMs: c.WEBHOOK_DISABLE_AFTER_HOURS * 3_600_000,
    inlineMaxBytes: c.WEBHOOK_INLINE_MAX_BYTES,
    publicUrl: publicUrl(c),
  };
}
