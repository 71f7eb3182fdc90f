import { randomUUID } from 'node:crypto';
import path from 'node:path';

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const KEY = new RegExp(`^uploads/${UUID}/${UUID}/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`);

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': 'jpg', 'image/png': 'png', 'image/webp': 'webp', 'image/gif': 'gif',
  'image/heic': 'heic', 'image/heif': 'heif', 'image/avif': 'avif',
};

/** Raised for a key that is not `uploads/<tenant>/<uuid>/<safe-name>`. */
export class InvalidStorageKey extends Error {
  override name = 'InvalidStorageKey';
  constructor(key: string) {
    super(`not a storage key of the form uploads/<tenant>/<uuid>/<name>: ${JSON.stringify(key.slice(0, 80))}`);
  }
}

/** Whether a key has the shape uploads get: `uploads/<tenant>/<uuid>/<safe-name>`, no `..`. */
export function isStorageKey(key: string): boolean {
  return KEY.test(key) && !key.includes('..');
}

/** Throws InvalidStorageKey unless `isStorageKey`. */
export function assertStorageKey(key: string): void {
  if (!isStorageKey(key)) throw new InvalidStorageKey(key);
}

/** Whether a key lies under the tenant's own `uploads/<tenant>/` prefix. */
export function ownedBy(key: string, tenantId: string): boolean {
  return key.toLowerCase().startsWith(`uploads/${tenantId.toLowerCase()}/`);
}

/** A fresh key under the tenant's prefix, keeping a sanitised form of the client's file name. */
export function newUploadKey(tenantId: string, contentType: string, filename?: string): string {
  const base = path.posix.basename((filename ?? '').replaceAll('\\', '/'));
  const safe = base.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/\.{2,}/g, '.').replace(/^[._]+/, '').slice(0, 100);
  return `uploads/${tenantId.toLowerCase()}/${randomUUID()}/${safe || `upload.${EXTENSIONS[contentType] ?? 'bin'}`}`;
}

/** Raised by ObjectStore.get when no object has the key. */
export class ObjectMissing extends Error {
  override name = 'ObjectMissing';
  constructor(readonly key: string) {
    super(`no object at ${key}`);
  }
}

/**
 * Raised by ObjectStore.get when an object holds more than the reader's limit: `sizeBytes` is its
 * declared size, or, when it declared none (or lied), how many bytes had arrived when reading stopped.
 */
export class ObjectTooLarge extends Error {
  override name = 'ObjectTooLarge';
  constructor(
    readonly key: string,
    readonly limitBytes: number,
    readonly sizeBytes: number,
    readonly declared: boolean,
  ) {
    super(`the object at ${key} is ${declared ? '' : 'at least '}${sizeBytes} bytes, more than the ${limitBytes} bytes an image may have`);
  }
}
