import { AppError } from '#shared/errors.js';
import { InvalidStorageKey } from '#shared/storage/keys.js';
import { MAX_UPLOAD_BYTES, isUploadType, type ObjectStore } from '#shared/storage/object-store.js';

/** Why an uploaded object cannot be ingested (missing, wrong type, bad size), or undefined. */
export async function storedImageRefusal(storage: ObjectStore, key: string): Promise<string | undefined> {
  let info;
  try {
    info = await storage.head(key);
  } catch (err) {
    if (err instanceof InvalidStorageKey) return err.message;
    throw new AppError('unavailable', `object storage did not answer: ${(err as Error).message}`);
  }
  if (!info) return 'no object at this key: upload it first through the URL POST /v1/uploads returned';
  if (!isUploadType(info.contentType)) return `the object's content type ${info.contentType} is not an accepted image type`;
  if (info.size < 1 || info.size > MAX_UPLOAD_BYTES) return `the object's size ${info.size} is outside 1..${MAX_UPLOAD_BYTES} bytes`;
  return undefined;
}
