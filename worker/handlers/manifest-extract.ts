import type { Sql } from '#shared/db/connect.js';
import type { ImageDetail, VisionProvider, VisionResult, VisionUsage } from '#shared/ai/provider.js';
import { FAKE_PROVIDER } from '#shared/ai/fake-provider.js';
import { SchemaCompileError, compileSchema, validateManifest } from '#shared/ai/validate-output.js';
import { PermanentError, RetryError } from '#shared/jobs/job-errors.js';
import type { PayloadOf } from '#shared/jobs/kinds.js';
import { FetchRefused } from '#shared/net/fetch-refused.js';
import { sniffImageType } from '#shared/net/image-type.js';
import { safeFetchImage, type FetchedImage, type SafeFetchOptions } from '#shared/net/safe-fetch.js';
import { InvalidStorageKey, ObjectMissing, ObjectTooLarge, ownedBy } from '#shared/storage/keys.js';
import { MAX_UPLOAD_BYTES, type ObjectStore } from '#shared/storage/object-store.js';
import type { Handler, JobContext } from '../handler.js';
import { chatTokens } from '#shared/governor/cost.js';
import type { CostRecorder } from '#shared/governor/cost-recorder.js';

/** What manifest.extract needs from its worker. */
export interface ManifestExtractDeps {
  sql: Sql;
  provider: VisionProvider;
  /** OPENAI_MODEL: used when the pattern version names no model of its own. */
  defaultModel: string;
  /** FETCH_ALLOW_PRIVATE: let image URLs reach private and loopback addresses. */
  allowPrivate: boolean;
  /** Where uploaded images (payload.image.storage_key) are read from. */
  storage?: ObjectStore;
  /** Image detail sent to the model; `auto` unless set. */
  detail?: ImageDetail;
  /** Other safe-fetch limits (time, size, redirects); the production defaults otherwise. */
  fetch?: Omit<SafeFetchOptions, 'allowPrivate' | 'signal'>;
  /** Records what each model call cost. */
  costs?: CostRecorder;
}

/**
 * Records a vision call's cost as soon as it returns. The fake provider's counts are priced as
 * the model that was asked for, so spend and ceilings behave offline as they would for real.
 */
export function recordVisionCost(costs: CostRecorder | undefined, ctx: JobContext, requested: string, answer: VisionResult): Promise<unknown> | undefined {
  const model = answer.provider === FAKE_PROVIDER ? requested : answer.model;
  return costs?.record({ id: ctx.id, tenantId: ctx.tenantId, kind: ctx.kind, attempt: ctx.attempt }, answer.provider, model, 'gpt-4o', chatTokens(answer.usage));
}

/** What a succeeded manifest.extract job stores as its result. */
export interface ManifestResult {
  manifest: unknown;
  provider: string;
  model: string;
  usage: VisionUsage;
  /** Time the model call took, in ms. */
  latency_ms: number;
  pattern_id: string;
  pattern_version: number;
}

interface PatternVersionRow {
  name: string;
  instructions: string;
  json_schema: Record<string, unknown>;
  model: string | null;
}

// Enough of a schema mismatch to fix the pattern or the prompt; the rest are counted.
const MAX_LISTED_PROBLEMS = 10;

/** The version the job was created with; jobs run with it even after the pattern moves on. */
async function loadVersion(sql: Sql, tenantId: string, patternId: string, version: number): Promise<PatternVersionRow> {
  const [row] = await sql<PatternVersionRow[]>`
    select name, instructions, json_schema, model from leasehold.pattern_versions
    where pattern_id = ${patternId} and version = ${version} and tenant_id = ${tenantId}`;
  if (!row) throw new PermanentError(`pattern ${patternId} has no version ${version} for this tenant`, 'pattern_not_found');
  return row;
}

/**
 * An uploaded image's bytes, from the job tenant's own prefix only, with its sniffed type. An
 * object over the size POST /v1/uploads allows is never read whole: the attempt fails for good
 * (a retry would meet the same object, and a worker run out of memory would hand the job on to the next).
 */
export async function loadStored(key: string, tenantId: string, storage: ObjectStore | undefined, signal: AbortSignal): Promise<FetchedImage> {
  if (!storage) throw new PermanentError('this worker has no object storage', 'storage_unavailable');
  if (!ownedBy(key, tenantId)) throw new PermanentError(`storage key ${key} is not under this tenant's uploads/`, 'storage_forbidden');
  let bytes: Buffer;
  try {
    bytes = await storage.get(key, { maxBytes: MAX_UPLOAD_BYTES, signal });
  } catch (err) {
    if (err instanceof ObjectMissing || err instanceof InvalidStorageKey) throw new PermanentError(err.message, 'storage_not_found');
    if (err instanceof ObjectTooLarge) throw new PermanentError(err.message, 'storage_too_large');
    if (signal.aborted) throw err;
    throw new RetryError(`cannot read ${key} from storage: ${(err as Error).message}`, {}, 'storage_error');
  }
  const contentType = sniffImageType(bytes);
  if (!contentType) throw new PermanentError(`the object at ${key} is not a supported image`, 'not_an_image');
  return { bytes, contentType, finalUrl: key };
}

/** The image's bytes: from object storage by key, or by URL through the SSRF-safe fetch. */
async function loadImage(image: PayloadOf<'manifest.extract'>['image'], tenantId: string, deps: ManifestExtractDeps, signal: AbortSignal): Promise<FetchedImage> {
  if ('storage_key' in image) return loadStored(image.storage_key, tenantId, deps.storage, signal);
  try {
    return await safeFetchImage(image.url, { ...deps.fetch, allowPrivate: deps.allowPrivate, signal });
  } catch (err) {
    if (!(err instanceof FetchRefused)) throw err;
    const message = `cannot fetch the image: ${err.message}`;
    if (err.retryable) throw new RetryError(message, { afterMs: err.retryAfterMs }, `fetch_${err.code}`);
    throw new PermanentError(message, `fetch_${err.code}`);
  }
}

/**
 * `manifest.extract`: loads the job's pattern version, fetches the image, asks the vision
 * provider for a manifest under the pattern's strict schema, and succeeds only with output that
 * validates against that schema (ajv), whatever the provider promised.
 */
export function manifestExtract(deps: ManifestExtractDeps): Handler<PayloadOf<'manifest.extract'>> {
  return async (payload, ctx) => {
    const { pattern_id: patternId, pattern_version: patternVersion } = payload;
    const pattern = await loadVersion(deps.sql, ctx.tenantId, patternId, patternVersion);
    try {
      // Before paying for a fetch and a model call that could never succeed.
      compileSchema(pattern.json_schema);
    } catch (err) {
      if (err instanceof SchemaCompileError) throw new PermanentError(`pattern version ${patternVersion}: ${err.message}`, 'invalid_schema');
      throw err;
    }
    const image = await loadImage(payload.image, ctx.tenantId, deps, ctx.signal);
    ctx.progress(30, `image fetched (${image.contentType}, ${image.bytes.byteLength} bytes)`);

    const startedAt = performance.now();
    const model = pattern.model ?? deps.defaultModel;
    const answer = await deps.provider.extract({
      schema: pattern.json_schema,
      schemaName: pattern.name,
      instructions: pattern.instructions,
      image: { bytes: image.bytes, contentType: image.contentType },
      model,
      detail: deps.detail ?? 'auto',
      signal: ctx.signal,
    });
    const latencyMs = Math.round(performance.now() - startedAt);
    await recordVisionCost(deps.costs, ctx, model, answer);
    ctx.progress(80, `model answered (${answer.provider}/${answer.model}, ${latencyMs} ms)`);

    const verdict = validateManifest(pattern.json_schema, answer.manifest);
    if (!verdict.ok) {
      const listed = verdict.errors.slice(0, MAX_LISTED_PROBLEMS).map((p) => `${p.path} ${p.message}`);
      const more = verdict.errors.length > listed.length ? ` (and ${verdict.errors.length - listed.length} more)` : '';
      throw new PermanentError(`the model's output does not match the pattern's schema: ${listed.join('; ')}${more}`, 'output_invalid');
    }
    ctx.log.debug({ provider: answer.provider, model: answer.model, usage: answer.usage, latency_ms: latencyMs }, 'manifest extracted');
    return {
      manifest: answer.manifest,
      provider: answer.provider,
      model: answer.model,
      usage: answer.usage,
      latency_ms: latencyMs,
      pattern_id: patternId,
      pattern_version: patternVersion,
    } satisfies ManifestResult;
  };
}
