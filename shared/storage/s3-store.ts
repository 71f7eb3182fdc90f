import { GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException, type S3ClientConfig } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Readable } from 'node:stream';
import type { Config } from '../config.js';
import type { ObjectInfo, ObjectStore, PresignedUpload } from './object-store.js';
import { ObjectMissing, ObjectTooLarge, assertStorageKey } from './keys.js';
import { readCapped } from './read-capped.js';

type S3Settings = Pick<Config, 'S3_BUCKET' | 'S3_ENDPOINT' | 'S3_REGION' | 'S3_FORCE_PATH_STYLE' | 'AWS_ACCESS_KEY_ID' | 'AWS_SECRET_ACCESS_KEY'>;

/** The S3 client options the config names, with checksums only when an operation requires them. */
export function s3ClientConfig(config: S3Settings): S3ClientConfig {
  return {
    region: config.S3_REGION,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    // S3-compatible servers reject or corrupt the SDK's default trailing checksums of streamed bodies.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(config.S3_ENDPOINT !== undefined && { endpoint: config.S3_ENDPOINT }),
    ...(config.AWS_ACCESS_KEY_ID !== undefined &&
      config.AWS_SECRET_ACCESS_KEY !== undefined && {
        credentials: { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY },
      }),
  };
}

const isMissing = (err: unknown) =>
  err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound' || err.name === 'NoSuchKey');

/** Objects in one S3 (or S3-compatible) bucket; uploads and downloads are SigV4-presigned URLs. */
export class S3ObjectStore implements ObjectStore {
  constructor(
    readonly client: S3Client,
    readonly bucket: string,
  ) {}

  /** The store of S3_BUCKET with the config's endpoint, region, path style and credentials. */
  static fromConfig(config: S3Settings): S3ObjectStore {
    if (!config.S3_BUCKET) throw new Error('S3_BUCKET is not set');
    return new S3ObjectStore(new S3Client(s3ClientConfig(config)), config.S3_BUCKET);
  }

  async presignUpload(req: { key: string; contentType: string; size: number; expiresInS: number }): Promise<PresignedUpload> {
    assertStorageKey(req.key);
    // The signature covers Content-Type and Content-Length: a PUT of any other type or size is
    // refused (403), so the URL stores at most the `size` bytes that POST /v1/uploads allowed. It
    // covers `If-None-Match: *` too, a conditional write: S3 stores the first PUT's bytes and
    // answers 412 to any later one, so the object a job was given cannot be replaced under it (the
    // local store's URL takes its bytes once as well). A store that ignores the condition (the
    // test server here) lets the URL be reused until it expires, for the same size. A PUT of the
    // SDK's own signs none of these.
    const command = new PutObjectCommand({ Bucket: this.bucket, Key: req.key, ContentType: req.contentType, ContentLength: req.size, IfNoneMatch: '*' });
    const url = await getSignedUrl(this.client, command, {
      expiresIn: req.expiresInS,
      signableHeaders: new Set(['content-type', 'content-length', 'if-none-match']),
    });
    return {
      url,
      method: 'PUT',
      headers: { 'content-type': req.contentType, 'if-none-match': '*' },
      expires_at: new Date(Date.now() + req.expiresInS * 1000).toISOString(),
    };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertStorageKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0, contentType: out.ContentType ?? 'application/octet-stream' };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async get(key: string, opts: { maxBytes: number; signal?: AbortSignal }): Promise<Buffer> {
    assertStorageKey(key);
    let out;
    try {
      out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), opts.signal ? { abortSignal: opts.signal } : {});
    } catch (err) {
      if (isMissing(err)) throw new ObjectMissing(key);
      throw err;
    }
    // On Node the body is the response stream (an IncomingMessage); nothing of it is buffered yet.
    const body = out.Body as (Readable & AsyncIterable<Uint8Array>) | undefined;
    if (!body) return Buffer.alloc(0);
    if (out.ContentLength !== undefined && out.ContentLength > opts.maxBytes) {
      body.destroy();
      throw new ObjectTooLarge(key, opts.maxBytes, out.ContentLength, true);
    }
    return readCapped(body, opts.maxBytes, (seen) => new ObjectTooLarge(key, opts.maxBytes, seen, false), opts.signal);
  }

  async put(key: string, bytes: Uint8Array, contentType: string): Promise<void> {
    assertStorageKey(key);
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentType: contentType }));
  }

  async signedDownloadUrl(key: string, expiresInS: number): Promise<string> {
    assertStorageKey(key);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: expiresInS });
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }
}
