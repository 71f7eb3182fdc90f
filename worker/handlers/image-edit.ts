import { randomUUID } from 'node:crypto';
import type { ImageEditResult } from '#shared/ai/image-edit-result.js';
import type { VisionProvider } from '#shared/ai/provider.js';
import { RetryError } from '#shared/jobs/job-errors.js';
import type { PayloadOf } from '#shared/jobs/kinds.js';
import type { Sql } from '#shared/db/connect.js';
import type { ObjectStore } from '#shared/storage/object-store.js';
import { outputStored, recordOutput } from '#shared/storage/uploads.js';
import type { Handler } from '../handler.js';
import { loadStored } from './manifest-extract.js';
import { FAKE_PROVIDER } from '#shared/ai/fake-provider.js';
import { imageApiTokens } from '#shared/governor/cost.js';
import type { CostRecorder } from '#shared/governor/cost-recorder.js';

// How long the signed URL stored in a job's result stays valid.
const RESULT_URL_TTL_S = 7 * 24 * 3600;

/** What image.edit needs from its worker. */
export interface ImageEditDeps {
  /** Where the edited image is recorded (a row of `uploads`), so retention deletes it with its job. */
  sql: Sql;
  provider: VisionProvider;
  /** OPENAI_IMAGE_MODEL: used when the payload names no model. */
  model: string;
  /** Where the image and mask are read from and the edited image is written to. */
  storage?: ObjectStore;
  /** Records what each model call cost. */
  costs?: CostRecorder;
}


/**
 * `image.edit`: reads the image (and mask) from the tenant's own uploads, asks the provider for
 * the edit, and stores the result as `uploads/<tenant>/<new uuid>/edited.png`, recorded in
 * `uploads` first: retention deletes it once its job is gone and no other job names it.
 */
export function imageEdit(deps: ImageEditDeps): Handler<PayloadOf<'image.edit'>> {
  return async (payload, ctx) => {
    const image = await loadStored(payload.image, ctx.tenantId, deps.storage, ctx.signal);
    const mask = payload.mask === undefined ? undefined : await loadStored(payload.mask, ctx.tenantId, deps.storage, ctx.signal);
    ctx.progress(20, 'image read');
    const started = performance.now();
    const model = payload.model ?? deps.model;
    const edited = await deps.provider.edit({
      image,
      mask,
      prompt: payload.prompt,
      model,
      size: payload.size ?? 'auto',
      signal: ctx.signal,
    });
    const latency = Math.round(performance.now() - started);
    if (edited.usage) {
      const owner = { id: ctx.id, tenantId: ctx.tenantId, kind: ctx.kind, attempt: ctx.attempt };
      await deps.costs?.record(owner, edited.provider, edited.provider === FAKE_PROVIDER ? model : edited.model, 'gpt-image-1', imageApiTokens(edited.usage));
    }
    ctx.progress(80, 'edited');
    const key = `uploads/${ctx.tenantId.toLowerCase()}/${randomUUID()}/edited.png`;
    try {
      // The row first: an object is never stored without the record that lets retention delete it.
      await recordOutput(deps.sql, { tenantId: ctx.tenantId, storageKey: key, contentType: edited.contentType, sizeBytes: edited.bytes.byteLength, jobId: ctx.id });
      await deps.storage!.put(key, edited.bytes, edited.contentType);
      await outputStored(deps.sql, key);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      throw new RetryError(`cannot store the edited image: ${(err as Error).message}`, {}, 'storage_error');
    }
    // A link to the result that works without an API call; GET /v1/edits/:id always signs a fresh one.
    const url = await deps.storage!.signedDownloadUrl(key, RESULT_URL_TTL_S);
    return {
      storage_key: key,
      url,
      url_expires_at: new Date(Date.now() + RESULT_URL_TTL_S * 1000).toISOString(),
      content_type: edited.contentType,
      bytes: edited.bytes.byteLength,
      provider: edited.provider,
      model: edited.model,
      ...(edited.usage && { usage: edited.usage }),
      latency_ms: latency,
    } satisfies ImageEditResult;
  };
}
