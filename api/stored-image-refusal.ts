import type { Config } from '#shared/config.js';
import { AppError, type FieldError } from '#shared/errors.js';
import type { Sql } from '#shared/db/connect.js';
import { InvalidStorageKey } from '#shared/storage/keys.js';
import { MAX_UPLOAD_BYTES, isUploadType, type ObjectStore } from '#shared/storage/object-store.js';
import { touchUploads, uploadOf } from '#shared/storage/uploads.js';
import { imageRefusal } from './image-refusal.js';

/** An image a request names: a URL the worker will fetch, or the storage key of an upload. */
export type NamedImage = { url: string } | { storage_key: string };

/**
 * The images a request names, checked as every route that reads images checks them: a URL's target
 * (imageRefusal); an upload's key under the caller's own prefix, then an object there of an
 * accepted type and size. One error per refused image, at `pathOf(its index)`, in input order.
 * The caller's own keys are first marked as used by a job (touchUploads), so retention keeps them
 * while the job may need them. A request naming no such key (ingest's URL-only hot path) asks
 * neither the database nor the store, and makes no promise and no path per image.
 */
export async function imageRefusals(
  deps: { sql: Sql; storage: ObjectStore; config: Pick<Config, 'FETCH_ALLOW_PRIVATE'> },
  tenantId: string,
  images: readonly NamedImage[],
  pathOf: (index: number) => string,
): Promise<FieldError[]> {
  const edge = images.map((image) => imageRefusal(image, tenantId, deps.config));
  const keys = images.flatMap((image, i) => ('storage_key' in image && !edge[i] ? [image.storage_key] : []));
  let refusals = edge;
  if (keys.length) {
    await touchUploads(deps.sql, tenantId, keys);
    refusals = await Promise.all(
      images.map(async (image, i) => edge[i] ?? ('storage_key' in image ? await storedImageRefusal(deps, tenantId, image.storage_key) : undefined)),
    );
  }
  return refusals.flatMap((why, i) => (why ? [{ path: pathOf(i), message: why }] : []));
}

/** Why an uploaded object cannot be ingested (missing, wrong type, bad size), or undefined; touchUploads comes first when a job will name it. */
async function storedImageRefusal(deps: { sql: Sql; storage: ObjectStore }, tenantId: string, key: string): Promise<string | undefined> {
  let info;
  try {
    info = await deps.storage.head(key);
  } catch (err) {
    if (err instanceof InvalidStorageKey) return err.message;
    throw new AppError('unavailable', `object storage did not answer: ${(err as Error).message}`);
  }
  if (!info) return missingObject(deps.sql, tenantId, key);
  if (!isUploadType(info.contentType)) return `the object's content type ${info.contentType} is not an accepted image type`;
  if (info.size < 1 || info.size > MAX_UPLOAD_BYTES) return `the object's size ${info.size} is outside 1..${MAX_UPLOAD_BYTES} bytes`;
  return undefined;
}

/** Says why a key has no object, from its `uploads` row: read on this error path only, never for an accepted image. */
async function missingObject(sql: Sql, tenantId: string, key: string): Promise<string> {
  const upload = await uploadOf(sql, tenantId, key);
  if (!upload) return 'no object at this key: upload it first through the URL POST /v1/uploads returned';
  if (upload.expiresAt.getTime() <= Date.now()) {
    return `no object at this key: its upload URL expired at ${upload.expiresAt.toISOString()} before the bytes were sent; presign a new upload with POST /v1/uploads`;
  }
  return `no object at this key yet: send the bytes to the URL POST /v1/uploads returned (valid until ${upload.expiresAt.toISOString()}), then try again`;
}
