import { OpenAPIHono } from '@hono/zod-openapi';
import { AppError } from '#shared/errors.js';
import type { LocalObjectStore } from '#shared/storage/local-store.js';
import { MAX_UPLOAD_BYTES } from '#shared/storage/object-store.js';
import type { ApiEnv } from '../context.js';

/** Reads a request body up to `limit` bytes; undefined as soon as it holds more. */
async function readAtMost(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Buffer | undefined> {
  if (!body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, total);
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
}

/**
 * The local store's upload and download URLs. Outside /v1 and its authentication: the HMAC
 * signature over every parameter, with its expiry, is the authorisation.
 */
export function storageRoutes(store: LocalObjectStore): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();

  app.put('/storage/upload', async (c) => {
    const verdict = store.verifyUpload(c.req.query());
    if ('refused' in verdict) throw new AppError('forbidden', verdict.refused);
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== verdict.contentType) {
      throw new AppError('validation_failed', `content-type must be ${verdict.contentType}, as declared (got ${type || 'none'})`);
    }
    const declared = Number(c.req.header('content-length') ?? NaN);
    if (declared > verdict.size) throw new AppError('payload_too_large', `the upload was declared as ${verdict.size} bytes`);
    const bytes = await readAtMost(c.req.raw.body, verdict.size);
    if (!bytes) throw new AppError('payload_too_large', `the upload was declared as ${verdict.size} bytes`);
    if (bytes.byteLength !== verdict.size) {
      throw new AppError('validation_failed', `the upload was declared as ${verdict.size} bytes but ${bytes.byteLength} arrived`);
    }
    await store.put(verdict.key, bytes, verdict.contentType);
    return c.body(null, 200);
  });

  app.get('/storage/object', async (c) => {
    const verdict = store.verifyDownload(c.req.query());
    if ('refused' in verdict) throw new AppError('forbidden', verdict.refused);
    const info = await store.head(verdict.key);
    if (!info) throw new AppError('not_found', 'no such object');
    // Uploads are at most MAX_UPLOAD_BYTES and edited images far less: nothing bigger is buffered.
    const bytes = await store.get(verdict.key, { maxBytes: MAX_UPLOAD_BYTES });
    // nosniff: the body is served from the API's own origin (the dashboard's too), so a browser must
    // take it as the declared image type and never sniff it into HTML or script.
    return c.body(new Uint8Array(bytes), 200, {
      'content-type': info.contentType,
      'cache-control': 'private, max-age=60',
      'x-content-type-options': 'nosniff',
    });
  });

  return app;
}
