import { Readable } from 'node:stream';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Sql } from '#shared/db/connect.js';
import { AppError } from '#shared/errors.js';
import { ObjectTooLarge } from '#shared/storage/keys.js';
import type { LocalObjectStore, ReceivedObject } from '#shared/storage/local-store.js';
import { claimUpload, finishUpload, releaseUpload, unfinishUpload, type ClaimRefusal } from '#shared/storage/upload-claims.js';
import type { ApiEnv } from '../context.js';
import { TransferSlots } from '../transfer-slots.js';

/**
 * Longest one upload or download may take; Node's own limit on receiving a request
 * (`server.requestTimeout`) is the same 5 minutes. 20 MB in that time is 70 KB/s.
 */
const TRANSFER_TIMEOUT_MS = 5 * 60_000;

/** A claim this old belongs to a PUT that no longer runs (a live one ends within TRANSFER_TIMEOUT_MS). */
const CLAIM_STALE_MS = TRANSFER_TIMEOUT_MS + 60_000;

/** Raised while reading a request body that the client stopped sending. */
class BodyAborted extends Error {
  override name = 'BodyAborted';
}

/** The request body's chunks, a failure to read them (the client went away) raised as BodyAborted. */
async function* bodyChunks(body: ReadableStream<Uint8Array> | null): AsyncGenerator<Uint8Array> {
  if (!body) return;
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw new BodyAborted((err as Error).message);
  }
}

/** Why this URL takes no PUT, as a problem. */
function claimProblem(claim: ClaimRefusal): AppError {
  switch (claim.refused) {
    case 'used':
      return new AppError('conflict', `this upload URL was used at ${claim.at.toISOString()}: each takes its bytes once; presign a new upload with POST /v1/uploads`);
    case 'busy':
      return new AppError('conflict', `another request has been sending the bytes of this upload URL since ${claim.since.toISOString()}; each URL takes its bytes once`);
    case 'unrecorded':
      return new AppError('forbidden', 'this upload URL has no record (POST /v1/uploads makes one for each URL it hands out)');
  }
}

/**
 * The local store's upload and download URLs. Outside /v1 and its authentication: the HMAC
 * signature over every parameter, with its expiry, is the authorisation. Each URL takes one upload
 * (its `uploads` row records it), bodies go to disk and come from it a chunk at a time, and at most
 * `maxTransfers` of either run at once in this process (503 past it).
 */
export function storageRoutes(store: LocalObjectStore, deps: { sql: Sql; maxTransfers: number }): OpenAPIHono<ApiEnv> {
  const app = new OpenAPIHono<ApiEnv>();
  const { sql } = deps;
  const slots = new TransferSlots(deps.maxTransfers);
  const slot = () => {
    const release = slots.tryAcquire();
    if (release) return release;
    throw new AppError('unavailable', `this server is already moving ${slots.max} objects; retry shortly`, {}, { 'retry-after': '1' });
  };

  app.put('/storage/upload', async (c) => {
    const verdict = store.verifyUpload(c.req.query());
    if ('refused' in verdict) throw new AppError('forbidden', verdict.refused);
    const { key, size } = verdict;
    const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== verdict.contentType) {
      throw new AppError('validation_failed', `content-type must be ${verdict.contentType}, as declared (got ${type || 'none'})`);
    }
    const tooLarge = new AppError('payload_too_large', `the upload was declared as ${size} bytes`);
    if (Number(c.req.header('content-length') ?? NaN) > size) throw tooLarge;
    const release = slot();
    try {
      const claim = await claimUpload(sql, key, CLAIM_STALE_MS);
      if ('refused' in claim) throw claimProblem(claim);
      let received: ReceivedObject | undefined;
      try {
        try {
          received = await store.receive(key, verdict.contentType, bodyChunks(c.req.raw.body), { maxBytes: size, signal: AbortSignal.timeout(TRANSFER_TIMEOUT_MS) });
        } catch (err) {
          if (err instanceof ObjectTooLarge) throw tooLarge;
          if (err instanceof BodyAborted) throw new AppError('bad_request', `the upload ended before its bytes arrived: ${err.message}`);
          if ((err as Error).name === 'TimeoutError') throw new AppError('request_timeout', `an upload may take at most ${TRANSFER_TIMEOUT_MS / 1000} s`);
          throw err;
        }
        if (received.size !== size) throw new AppError('validation_failed', `the upload was declared as ${size} bytes but ${received.size} arrived`);
        if (!(await finishUpload(sql, key, claim.token))) throw claimProblem({ refused: 'busy', since: new Date() });
      } catch (err) {
        await received?.discard();
        await releaseUpload(sql, key, claim.token).catch((e: unknown) => c.get('log').warn({ err: e, key }, 'cannot release an upload claim; it lapses by itself'));
        throw err;
      }
      try {
        await received.publish();
      } catch (err) {
        await unfinishUpload(sql, key).catch((e: unknown) => c.get('log').error({ err: e, key }, 'an upload URL is marked used with no object'));
        throw err;
      }
      return c.body(null, 200);
    } finally {
      release();
    }
  });

  app.get('/storage/object', async (c) => {
    const verdict = store.verifyDownload(c.req.query());
    if ('refused' in verdict) throw new AppError('forbidden', verdict.refused);
    // Hono answers HEAD with GET's route and drops the body: its headers need no file opened, nor a slot.
    if (c.req.method === 'HEAD') {
      const info = await store.head(verdict.key);
      if (!info) throw new AppError('not_found', 'no such object');
      return c.body(null, 200, objectHeaders(info));
    }
    const release = slot();
    let object;
    try {
      object = await store.open(verdict.key);
    } catch (err) {
      release();
      throw err;
    }
    if (!object) {
      release();
      throw new AppError('not_found', 'no such object');
    }
    const { stream } = object;
    // The slot is held until the file closes: the body was sent, the client went away (the server
    // cancels the body, which destroys the stream), or the transfer ran out of time.
    const timer = setTimeout(() => stream.destroy(), TRANSFER_TIMEOUT_MS);
    stream.once('close', () => {
      clearTimeout(timer);
      release();
    });
    return c.body(Readable.toWeb(stream) as ReadableStream<Uint8Array>, 200, objectHeaders(object));
  });

  return app;
}

/**
 * A stored object's response headers. nosniff: the body is served from the API's own origin (the
 * dashboard's too), so a browser must take it as the declared image type and never sniff it into
 * HTML or script.
 */
function objectHeaders(info: { contentType: string; size: number }): Record<string, string> {
  return {
    'content-type': info.contentType,
    'content-length': String(info.size),
    'cache-control': 'private, max-age=60',
    'x-content-type-options': 'nosniff',
  };
}
