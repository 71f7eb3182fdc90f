import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import postgres from 'postgres';
import { ZodError } from 'zod';
import { isDatabaseUnavailable } from '#shared/db/unavailable.js';
import { AppError, jsonPath, problemBody, type ErrorCode, type FieldError } from '#shared/errors.js';
import type { ApiEnv } from '../context.js';

/** Sends an AppError as `application/problem+json`. */
export function problem(c: Context<ApiEnv>, err: AppError): Response {
  const requestId = c.get('requestId') ?? '';
  const body = problemBody(err, c.req.path, requestId);
  // A new Response carries none of the headers set so far (X-Request-Id, RateLimit): keep them.
  const headers = new Headers(c.res.headers);
  headers.set('content-type', 'application/problem+json');
  if (requestId) headers.set('x-request-id', requestId);
  for (const [k, v] of Object.entries(err.headers)) headers.set(k, v);
  return new Response(JSON.stringify(body), { status: err.status, headers });
}

/**
 * A zod failure as `validation_failed`, every path and message listed; an unknown field is
 * reported at its own path (`body.colour`), not at the object that holds it.
 */
export function validationError(error: ZodError, root: string): AppError {
  const errors = error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys'
      ? i.keys.map((k) => ({ path: jsonPath(root, [...i.path, k]), message: 'unknown field' }))
      : [{ path: jsonPath(root, i.path), message: i.message }],
  );
  return invalidFields(errors, root);
}

/** `validation_failed` listing every offending path under `root` (body, query, body.payload) and why. */
export function invalidFields(errors: FieldError[], root: string): AppError {
  return new AppError('validation_failed', `${errors.length} problem(s) in the request ${root}`, { errors });
}

const HTTP_CODES: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

// SQLSTATEs PostgreSQL raises for a value it cannot take: 22P05 untranslatable_character (U+0000 in
// jsonb), 22021 character_not_in_repertoire (U+0000 in text), 22P02 invalid_text_representation (an
// unpaired surrogate in jsonb), 22008 datetime_field_overflow (year 0000), 22009
// invalid_time_zone_displacement_value. The edge refuses each first (refuseUnstorableText, the
// timestamp checks); one that slips past a new route is still the request's fault, so a 422, not a 500.
const UNTAKEABLE_VALUE = new Set(['22P05', '22021', '22P02', '22008', '22009']);

// SQLSTATEs that say "collided with a concurrent transaction, try again": 40P01 deadlock_detected,
// 40001 serialization_failure. Locks are taken in one order (a job before its dead letters), so
// neither is expected; should one happen, its transaction was rolled back (an Idempotency-Key's
// record with it) and the same request may be sent again: a 503 with Retry-After, not a 500.
const TRANSIENT_CONFLICT = new Set(['40P01', '40001']);

/** Anything thrown becomes a problem; unknown errors are logged in full and answered as `internal`. */
export const onError: ErrorHandler<ApiEnv> = (err, c) => {
  if (err instanceof AppError) return problem(c, err);
  if (err instanceof ZodError) return problem(c, validationError(err, 'body'));
  if (err instanceof HTTPException && HTTP_CODES[err.status]) {
    // Hono's own validators: a body that is not JSON arrives here as a 400.
    return problem(c, new AppError(HTTP_CODES[err.status]!, err.message || undefined));
  }
  if (isDatabaseUnavailable(err)) {
    // PostgreSQL is restarting or unreachable: a retryable 503, not a 500 (pools reconnect by themselves).
    (c.get('log') ?? console).warn({ err }, 'database unavailable');
    return problem(c, new AppError('unavailable', 'the database is unavailable; retry shortly', {}, { 'retry-after': '1' }));
  }
  if (err instanceof postgres.PostgresError && TRANSIENT_CONFLICT.has(err.code)) {
    // Logged as an error all the same: some transaction takes its locks out of order.
    (c.get('log') ?? console).error({ err }, 'a transaction was rolled back by a concurrent one; answered 503 for the client to retry');
    return problem(c, new AppError('unavailable', `the request collided with a concurrent one and was rolled back (SQLSTATE ${err.code}); retry it`, {}, { 'retry-after': '1' }));
  }
  if (err instanceof postgres.PostgresError && UNTAKEABLE_VALUE.has(err.code)) {
    // Logged as an error all the same: an edge check is missing.
    (c.get('log') ?? console).error({ err }, 'a request value reached PostgreSQL unchecked');
    return problem(c, invalidFields([{ path: 'request', message: `holds a value PostgreSQL cannot take (SQLSTATE ${err.code})` }], 'request'));
  }
  (c.get('log') ?? console).error({ err }, 'unhandled error');
  return problem(c, new AppError('internal', 'an unexpected error occurred; quote the request_id when reporting it'));
};

/** Unknown routes are problems too. */
export const notFound: NotFoundHandler<ApiEnv> = (c) =>
  problem(c, new AppError('not_found', `no route ${c.req.method} ${c.req.path}`));
