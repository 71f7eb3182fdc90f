import type { ImageDetail, VisionProvider } from '#shared/ai/provider.js';
import { GALLERY_INSTRUCTIONS, GALLERY_SCHEMA, GALLERY_SCHEMA_NAME, checkAlbums, type GalleryResult } from '#shared/ai/gallery-albums.js';
import { PermanentError } from '#shared/jobs/job-errors.js';
import type { PayloadOf } from '#shared/jobs/kinds.js';
import type { ObjectStore } from '#shared/storage/object-store.js';
import type { Handler } from '../handler.js';
import { loadStored, recordVisionCost } from './manifest-extract.js';
import type { CostRecorder } from '#shared/governor/cost-recorder.js';

/** What gallery.group needs from its worker. */
export interface GalleryGroupDeps {
  provider: VisionProvider;
  /** OPENAI_MODEL. */
  model: string;
  /** Where the uploaded images are read from. */
  storage?: ObjectStore;
  /** Image detail sent to the model; `low` unless set (many images in one call). */
  detail?: ImageDetail;
  /** Records what each model call cost. */
  costs?: CostRecorder;
}

const FALLBACK_TITLE = 'All photos';

/** One album holding every image in input order, and why. */
function fallback(keys: string[], provider: VisionProvider, model: string, code: string, message: string): GalleryResult {
  const albums = [{ title: FALLBACK_TITLE, description: 'Every image, in the order given (the model could not group them).', images: keys }];
  return { albums, fallback: true, fallback_reason: { code, message }, provider: provider.name, model };
}

/**
 * `gallery.group`: reads the job's uploads (the tenant's own prefix only), asks the provider for
 * albums in one call, and keeps the answer only when every image is in exactly one album; a
 * permanent model failure or a rule-breaking answer gives one fallback album instead of a failed job.
 */
export function galleryGroup(deps: GalleryGroupDeps): Handler<PayloadOf<'gallery.group'>> {
  return async (payload, ctx) => {
    const keys = payload.images;
    const images = [];
    for (const key of keys) {
      const image = await loadStored(key, ctx.tenantId, deps.storage, ctx.signal);
      images.push({ key, bytes: image.bytes, contentType: image.contentType });
    }
    ctx.progress(30, `${images.length} images read`);
    const instructions = payload.hint === undefined ? GALLERY_INSTRUCTIONS : `${GALLERY_INSTRUCTIONS}\nThe owner's hint: ${payload.hint}`;
    let answer;
    try {
      answer = await deps.provider.group({
        images,
        schema: GALLERY_SCHEMA,
        schemaName: GALLERY_SCHEMA_NAME,
        instructions,
        model: deps.model,
        detail: deps.detail ?? 'low',
        signal: ctx.signal,
      });
    } catch (err) {
      if (!(err instanceof PermanentError)) throw err;
      ctx.log.warn({ code: err.code, err: err.message }, 'gallery grouping failed for good; using one fallback album');
      return fallback(keys, deps.provider, deps.model, err.code, err.message);
    }
    await recordVisionCost(deps.costs, ctx, deps.model, answer);
    const verdict = checkAlbums(answer.manifest, keys);
    if (!verdict.ok) {
      ctx.log.warn({ reason: verdict.reason }, 'gallery grouping broke the rules; using one fallback album');
      return { ...fallback(keys, deps.provider, answer.model, 'output_invalid', verdict.reason), usage: answer.usage };
    }
    return { albums: verdict.albums, fallback: false, provider: answer.provider, model: answer.model, usage: answer.usage } satisfies GalleryResult;
  };
}
