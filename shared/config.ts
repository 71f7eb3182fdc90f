import cron from 'node-cron';
import { z } from 'zod';
import { OPERATOR_KEY } from './auth/api-keys.js';
import { PriceOverrides } from './governor/pricing.js';
import { DEFAULT_WEBHOOK_SCHEDULE, parseSchedule } from './webhooks/schedule.js';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const ms = (dflt: number) => z.coerce.number().int().min(1).default(dflt);
/** A JSON value in an environment variable, checked against `shape`. */
const jsonEnv = <S extends z.ZodType>(shape: S) =>
  z
    .string()
    .transform((raw, ctx) => {
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be JSON' });
        return z.NEVER;
      }
    })
    .pipe(shape);
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

/** A queue a worker serves, with its own concurrency cap (defaults to the worker's total). */
export interface QueueSpec {
  name: string;
  concurrency?: number;
}

/** `all`, or `default,webhooks:5,ai:2`: queue names with optional per-queue concurrency. */
const queueList = z
  .string()
  .default('all')
  .transform((raw, ctx): QueueSpec[] | 'all' => {
    const text = raw.trim();
    if (text === '' || text === 'all' || text === '*') return 'all';
    const specs: QueueSpec[] = [];
    const bad = (message: string) => (ctx.addIssue({ code: 'custom', message }), z.NEVER);
    for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
      // Queue names may hold ':' (POST /v1/jobs allows it): a last segment that is a number is the
      // concurrency, and must be a positive integer.
      const segments = part.split(':');
      const last = segments[segments.length - 1]!;
      const numeric = segments.length > 1 && /^[-+]?[\d.]+$/.test(last);
      const name = (numeric ? segments.slice(0, -1) : segments).join(':');
      const n = numeric ? Number(last) : undefined;
      if (!/^[a-zA-Z0-9_.-]+(:[a-zA-Z0-9_.-]+)*$/.test(name) || name.length > 64 || (n !== undefined && !(Number.isInteger(n) && n > 0))) {
        return bad(`bad queue spec "${part}" (want name or name:concurrency)`);
      }
      if (specs.some((s) => s.name === name)) return bad(`queue "${name}" is listed twice`);
      specs.push(n === undefined ? { name } : { name, concurrency: n });
    }
    return specs.length ? specs : bad('names no queue (want "all" or name[:concurrency],…)');
  });

const schema = z.object({
  /** PostgreSQL to use; unset starts an embedded PostgreSQL under `.data/`. */
  DATABASE_URL: optionalText.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  /** Where the embedded PostgreSQL and local objects live. */
  LEASEHOLD_DATA_DIR: z.string().default('.data'),
  /** Port of the embedded PostgreSQL. */
  EMBEDDED_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  /** API listen port. */
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** API listen host. */
  HOST: z.string().default('127.0.0.1'),
  /** Connections in each process's pool. */
  DATABASE_POOL_MAX: z.coerce.number().int().min(2).max(200).default(10),
  /** Jobs a worker runs at once, across its queues. */
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(10),
  /** How long a claim holds a job before the reclaimer may hand it to another worker. */
  WORKER_LEASE_MS: ms(30_000),
  /** How often a worker extends the leases of the jobs it holds (one statement for all of them). */
  WORKER_HEARTBEAT_MS: ms(10_000),
  /** Queues this worker serves: `all` or `name[:concurrency],…` (a name may hold `:`; a last `:<number>` is the concurrency). */
  WORKER_QUEUES: queueList,
  /** Fallback poll when no NOTIFY arrives; bounds the delay of a lost wake-up. */
  WORKER_POLL_MS: ms(1_000),
  /** How often each worker looks for expired leases. */
  WORKER_RECLAIM_MS: ms(2_000),
  /** How long a stopping worker lets running jobs finish before handing their leases back. */
  WORKER_SHUTDOWN_GRACE_MS: ms(10_000),
  /** Largest number of jobs one claim statement takes. */
  WORKER_BATCH_SIZE: z.coerce.number().int().min(1).max(1_000).default(500),
  /** Trade the last few milliseconds of outcomes on a crash for throughput (those jobs re-run). */
  WORKER_SYNCHRONOUS_COMMIT: bool.default(true),
  /** Claims commit without waiting for the WAL flush; event streams still send nothing before it. A PostgreSQL crash may undo the last few ms of claims: those jobs run again, as after a worker crash. `false`: every claim waits for the flush. */
  WORKER_ASYNC_CLAIMS: bool.default(true),
  /** The key `start` makes sure exists (admin scope, development tenant) and prints: any 1 to 512 visible ASCII characters, e.g. `demo-key-123`; unset: a generated key kept in LEASEHOLD_DATA_DIR/dev-api-key. */
  LEASEHOLD_API_KEY: optionalText.pipe(z.string().regex(OPERATOR_KEY, 'must be 1 to 512 visible ASCII characters, with no spaces').optional()),
  /** Bearer token Prometheus sends to GET /metrics (an admin API key works too); unset: admin keys only. */
  METRICS_TOKEN: optionalText.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  /** `leasehold worker` serves GET /metrics on this port when set (the API serves it for `start` and `api`). */
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** HMAC secret of dashboard session cookies; unset: a random one per process (sessions end on restart). */
  DASHBOARD_SESSION_SECRET: optionalText.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  /** HS256 secret for JWTs, 32+ characters (RFC 7518 §3.2: a key at least as long as the hash). */
  JWT_SECRET: optionalText.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  /** JWKS endpoint for RS256/ES256 JWTs (instead of JWT_SECRET); needs JWT_ISSUER and JWT_AUDIENCE. */
  JWT_JWKS_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()),
  /** Expected JWT issuer: required with JWT_JWKS_URL, checked when set with JWT_SECRET. */
  JWT_ISSUER: optionalText,
  /** Expected JWT audience: required with JWT_JWKS_URL, checked when set with JWT_SECRET. */
  JWT_AUDIENCE: optionalText,
  /** The JWT claim that names the caller's tenant. */
  JWT_TENANT_CLAIM: z.string().default('sub'),
  /** How long an Idempotency-Key is remembered, in hours. */
  IDEMPOTENCY_TTL_HOURS: z.coerce.number().positive().max(24 * 30).default(24),
  /** Default rate limit per tenant and route group: sustained requests per second. */
  RATE_LIMIT_PER_S: z.coerce.number().positive().default(50),
  /** Default rate limit per tenant and route group: burst size. */
  RATE_LIMIT_BURST: z.coerce.number().int().positive().default(200),
  /** Most queues that may exist: a job the API is asked to put in a queue that does not exist yet is refused (422 queue_limit) once this many do; the library, SQL and the CLI may still make queues, which count. */
  MAX_QUEUES: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
  /** Most of those queues one tenant's jobs may make, so that no tenant takes every place: past it, that tenant's job for a new queue is refused (422 queue_limit). */
  MAX_QUEUES_PER_TENANT: z.coerce.number().int().min(1).max(1_000_000).default(100),
  /** Key of the OpenAI (or compatible) API. */
  OPENAI_API_KEY: optionalText,
  /** Base URL of an OpenAI-compatible server. */
  OPENAI_BASE_URL: optionalText,
  /** Default vision model. */
  OPENAI_MODEL: z.string().default('gpt-4o-mini'),
  /** Default image-editing model (image.edit jobs that name none). */
  OPENAI_IMAGE_MODEL: z.string().default('gpt-image-1'),
  /** How closely the vision model looks at an image (`low` costs 85 tokens; `high` tiles it). */
  OPENAI_IMAGE_DETAIL: z.enum(['auto', 'low', 'high']).default('auto'),
  /** `openai` or `fake`; defaults to `openai` when a key is set. */
  AI_PROVIDER: z.enum(['openai', 'fake']).optional(),
  /** Let server-side fetches reach private and loopback addresses (development and tests only). */
  FETCH_ALLOW_PRIVATE: bool.default(false),
  /** Global spend ceiling per UTC day, in USD. */
  GOVERNOR_GLOBAL_DAILY_USD: z.coerce.number().positive().optional(),
  /** Minimum margin between a job's price and its estimated cost. */
  GOVERNOR_MARGIN_FLOOR: z.coerce.number().min(0).max(1).default(0.4),
  /** What one credit is worth in USD (grants and kind prices are in credits). */
  GOVERNOR_CREDIT_USD: z.coerce.number().positive().max(1_000).default(0.001),
  /** Model prices over the built-in table, JSON: {"model": {"input": 2.5, "cached_input": 1.25, "output": 10}} (USD per million tokens). */
  GOVERNOR_PRICES: jsonEnv(PriceOverrides).optional(),
  /** Kind prices in credits over the built-in ones, JSON: {"manifest.extract": 100}. */
  GOVERNOR_KIND_PRICES: jsonEnv(z.record(z.string().min(1), z.number().int().nonnegative())).optional(),
  /** Output tokens a vision call's estimate reserves (bounded by the model's own maximum). */
  GOVERNOR_MAX_OUTPUT_TOKENS: z.coerce.number().int().min(1).max(1_000_000).default(4_096),
  /** S3 bucket for uploads and outputs; unset keeps objects on local disk under LEASEHOLD_DATA_DIR/objects. */
  S3_BUCKET: optionalText,
  /** Endpoint of an S3-compatible server (MinIO, R2, …); unset means AWS S3. */
  S3_ENDPOINT: optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()),
  /** Region the S3 client signs for. */
  S3_REGION: z.string().default('us-east-1'),
  /** Address buckets as https://endpoint/bucket/key rather than https://bucket.endpoint/key (most non-AWS servers). */
  S3_FORCE_PATH_STYLE: bool.default(false),
  /** Access key id of the S3 credentials; unset uses the AWS SDK's default credential chain. */
  AWS_ACCESS_KEY_ID: optionalText,
  /** Secret access key of the S3 credentials. */
  AWS_SECRET_ACCESS_KEY: optionalText,
  /** HMAC secret of the local store's upload and download URLs; unset derives one stored under LEASEHOLD_DATA_DIR. */
  STORAGE_SIGNING_SECRET: optionalText.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  /** Uploads and downloads the local store serves at once in one API process; past it a 503 with Retry-After (each holds a file and ~64 KB, not the object). */
  STORAGE_MAX_TRANSFERS: z.coerce.number().int().min(1).max(100_000).default(64),
  /** Uploads one tenant may presign per UTC day (POST /v1/uploads, S3 or local); past it a 429 until midnight UTC; 0: no limit. */
  UPLOADS_PER_TENANT_DAILY: z.coerce.number().int().min(0).default(10_000),
  /** Bytes one tenant may presign per UTC day, by declared size; past it a 429 until midnight UTC; 0: no limit. */
  UPLOAD_BYTES_PER_TENANT_DAILY: z.coerce.number().int().min(0).default(5 * 1024 ** 3),
  /** The API's job-event reader: fallback read when no NOTIFY arrives. */
  EVENTS_POLL_MS: ms(1_000),
  /** How long a not-yet-committed event id may hold later events back before streams move past it. */
  EVENTS_GAP_TIMEOUT_MS: ms(5_000),
  /** SSE: a comment line this often keeps idle streams open through proxies. */
  SSE_KEEPALIVE_MS: ms(15_000),
  /** SSE: the `retry:` advice, how long a client waits before reconnecting. */
  SSE_RETRY_MS: ms(2_000),
  /** SSE: bytes a client may have waiting before it counts as too slow and is disconnected (it resumes with Last-Event-ID). */
  SSE_CLIENT_BUFFER_BYTES: z.coerce.number().int().min(65_536).default(4 * 1024 * 1024),
  /** SSE: streams one tenant may hold open on one API process; past it a new one is a 429 (2,000 clients of one tenant took ~210 MB). */
  SSE_MAX_STREAMS_PER_TENANT: z.coerce.number().int().min(1).max(1_000_000).default(2_500),
  /** SSE: streams all tenants together may hold open on one API process; past it a new one is a 503 with Retry-After (each costs ~25 KB, plus up to a replay page, ~30 KB, in the socket of a client that stops reading). */
  SSE_MAX_STREAMS: z.coerce.number().int().min(1).max(1_000_000).default(4_000),
  /** SSE: bytes all of one API process's streams may have waiting, a chunk shared by many counted once; past it, streams holding more than an equal share are disconnected as too slow. */
  SSE_BUFFER_BUDGET_BYTES: z.coerce.number().int().min(65_536).default(64 * 1024 * 1024),
  /** SSE: gzip streams for clients that accept it (browsers and fetch do); each chunk of events is compressed once for all its clients. */
  SSE_GZIP: bool.default(true),
  /** Base URL clients reach the API at, for links in webhook payloads; unset means http://HOST:PORT. */
  PUBLIC_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()),
  /** Encrypts webhook signing secrets at rest (AES-256-GCM); every API and worker process must share it. */
  WEBHOOK_SECRET_KEY: optionalText.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  /** Time one webhook attempt may take, connection to response. */
  WEBHOOK_TIMEOUT_MS: ms(10_000),
  /** Delays between webhook attempts (`5s,5m,30m,2h,…`); attempts = entries + 1. */
  WEBHOOK_RETRY_SCHEDULE: z.string().default(DEFAULT_WEBHOOK_SCHEDULE).transform((raw, ctx) => {
    const delays = parseSchedule(raw);
    return delays ?? (ctx.addIssue({ code: 'custom', message: 'want durations like 5s,5m,30m,2h (units ms, s, m, h, d)' }), z.NEVER);
  }),
  /** A subscription whose deliveries have all failed for this long is disabled. */
  WEBHOOK_DISABLE_AFTER_HOURS: z.coerce.number().positive().default(72),
  /** Largest manifest inlined in a webhook payload, in bytes of JSON; larger ones are linked. */
  WEBHOOK_INLINE_MAX_BYTES: z.coerce.number().int().min(0).default(64 * 1024),
  /** Succeeded, failed and cancelled jobs with their events, and finished webhook deliveries, are deleted this many days after they finished; uploads (row and local object) a day later than that after their presign or last use by a job, once no job left names them. */
  RETENTION_JOBS_DAYS: z.coerce.number().positive().default(14),
  /** Dead letters (and the admin audit log) are deleted this many days after the failure. */
  RETENTION_DEAD_LETTERS_DAYS: z.coerce.number().positive().default(90),
  /** A queue with no queued or running job, not paused, is deleted once retention has found it so for this many hours (a new job registers it again). */
  RETENTION_QUEUE_IDLE_HOURS: z.coerce.number().positive().default(24),
  /** When worker processes run retention (node-cron syntax; one process at a time does the work). */
  RETENTION_CRON: z.string().default('*/10 * * * *').refine((v) => cron.validate(v), 'must be a cron expression (node-cron syntax)'),
  /** How often each worker process looks for due schedule ticks. */
  SCHEDULER_POLL_MS: ms(1_000),
  /** pino level. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** The validated configuration every entry point reads once. */
export type Config = Omit<z.output<typeof schema>, 'AI_PROVIDER'> & {
  /** `openai` or `fake`, never unset: loadConfig applies the default. */
  AI_PROVIDER: 'openai' | 'fake';
};

/** Raised when the environment holds bad values; lists every bad key at once. */
export class ConfigError extends Error {
  constructor(readonly problems: { key: string; message: string }[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.key}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses the environment into a typed config; pure, so tests pass their own env. An empty value
 * counts as unset (`PORT=` in a .env file means the default, not port 0).
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const set = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(set);
  const problems = result.success
    ? []
    : result.error.issues.map((i) => ({ key: String(i.path[0] ?? '?'), message: i.message }));
  // Checked apart from the rest so that it is reported together with any other bad key.
  const timing = schema.pick({ WORKER_LEASE_MS: true, WORKER_HEARTBEAT_MS: true }).safeParse(set);
  if (timing.success && timing.data.WORKER_HEARTBEAT_MS >= timing.data.WORKER_LEASE_MS) {
    problems.push({
      key: 'WORKER_HEARTBEAT_MS',
      message: `must be shorter than WORKER_LEASE_MS (${timing.data.WORKER_LEASE_MS})`,
    });
  }
  // A JWKS is an identity provider's key set, which signs tokens for every application it serves
  // (and, at multi-tenant providers, for every issuer under it): without both checks, a token the
  // provider minted for another application would authenticate here, and create its tenant.
  if (set.JWT_JWKS_URL !== undefined) {
    for (const key of ['JWT_ISSUER', 'JWT_AUDIENCE'] as const) {
      if (set[key] === undefined) problems.push({ key, message: 'is required with JWT_JWKS_URL' });
    }
    // Either one verifies every token: with both, one of them would be ignored without a word.
    if (set.JWT_SECRET !== undefined) problems.push({ key: 'JWT_JWKS_URL', message: 'set JWT_SECRET or JWT_JWKS_URL, not both' });
  }
  if (!result.success || problems.length) throw new ConfigError(problems);
  const config = result.data;
  // DESIGN.md: the provider is `openai` when a key is set, otherwise the `fake` one.
  return { ...config, AI_PROVIDER: config.AI_PROVIDER ?? (config.OPENAI_API_KEY ? 'openai' : 'fake') };
}

/** PUBLIC_URL, or the API's own listen address (0.0.0.0 read as 127.0.0.1), without a trailing slash. */
export function publicUrl(config: Pick<Config, 'PUBLIC_URL' | 'HOST' | 'PORT'>): string {
  if (config.PUBLIC_URL) return config.PUBLIC_URL.replace(/\/+$/, '');
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST;
  return `http://${host}:${config.PORT}`;
}
/** The schema itself, for documentation generated from it (README's configuration table). */
export { schema as configSchema };
