import type { Config } from '../config.js';
import { IMAGE_TYPES, type ImageType } from '../net/image-type.js';
import { LocalObjectStore } from './local-store.js';
import { S3ObjectStore } from './s3-store.js';
import { signingSecret } from './signing.js';

/** Largest upload POST /v1/uploads presigns, in bytes (20 MB). */
export const MAX_UPLOAD_BYTES = 20 * 1024 * 1024;

/** Content types an upload may declare: the image types the vision pipeline reads. */
export const UPLOAD_TYPES = IMAGE_TYPES;

/** Whether a content type is one uploads accept. */
export function isUploadType(type: string | undefined): type is ImageType {
  return (UPLOAD_TYPES as readonly string[]).includes(type ?? '');
}

/** What a client needs to upload one object: send `method` to `url` with `headers` before `expires_at`. */
export interface PresignedUpload {
  url: string;
  method: 'PUT';
  headers: Record<string, string>;
  expires_at: string;
}

/** An object's stored size and content type. */
export interface ObjectInfo {
  size: number;
  contentType: string;
}

/** Objects by key: presigned uploads, reads, writes and signed downloads, on S3 or local disk. */
export interface ObjectStore {
  /** A presigned upload of exactly `size` bytes of `contentType` to `key`, valid for `expiresInS`. */
  presignUpload(req: { key: string; contentType: string; size: number; expiresInS: number }): Promise<PresignedUpload>;
  /** The object's size and type, or undefined when there is none. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /**
   * The object's bytes; rejects with ObjectMissing when there is none, and with ObjectTooLarge,
   * having read no more than `maxBytes` + one chunk, when it is bigger than `maxBytes`.
   */
  get(key: string, opts: { maxBytes: number; signal?: AbortSignal }): Promise<Buffer>;
  /** Stores bytes under a key. */
  put(key: string, bytes: Uint8Array, contentType: string): Promise<void>;
  /** A URL that downloads the object until it expires. */
  signedDownloadUrl(key: string, expiresInS: number): Promise<string>;
  /** Resolves when the store is reachable and writable; rejects with the reason otherwise. */
  check(): Promise<void>;
}

/** Where the store lives besides the config: the data directory and the API's public URL. */
export interface StoreOptions {
  dataDir: string;
  /** Prefix of the local store's URLs; relative URLs (`/storage/…`) when absent. */
  publicBaseUrl?: string;
}

/** The store the config names: S3 when S3_BUCKET is set, the local disk store otherwise. */
export function createObjectStore(config: Config, opts: StoreOptions): ObjectStore {
  if (config.S3_BUCKET) return S3ObjectStore.fromConfig(config);
  return new LocalObjectStore({
    dataDir: opts.dataDir,
    secret: () => signingSecret(config.STORAGE_SIGNING_SECRET, opts.dataDir),
    ...(opts.publicBaseUrl !== undefined && { publicBaseUrl: opts.publicBaseUrl }),
  });
}
