/** Every error code the API can answer with; the table below must name each one. */
export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'request_timeout'
  | 'invalid_state'
  | 'idempotency_in_progress'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'validation_failed'
  | 'unknown_kind'
  | 'invalid_schema'
  | 'idempotency_key_reused'
  | 'queue_limit'
  | 'budget_exceeded'
  | 'margin_floor'
  | 'rate_limited'
  | 'internal'
  | 'unavailable';

/** HTTP status and human title per code (RFC 9457 `status` and `title`). */
export const ERROR_CODES: Record<ErrorCode, { status: number; title: string }> = {
  bad_request: { status: 400, title: 'Bad request' },
  unauthorized: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Not allowed for this credential' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  conflict: { status: 409, title: 'Conflict' },
  request_timeout: { status: 408, title: 'The request took too long' },
  invalid_state: { status: 409, title: 'Not possible in the current state' },
  idempotency_in_progress: { status: 409, title: 'A request with this Idempotency-Key is still in progress' },
  payload_too_large: { status: 413, title: 'Request body too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  validation_failed: { status: 422, title: 'Validation failed' },
  unknown_kind: { status: 422, title: 'Unknown job kind' },
  invalid_schema: { status: 422, title: 'JSON Schema not accepted by Structured Outputs (strict)' },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key reused with a different request' },
  queue_limit: { status: 422, title: 'The queue does not exist and no more queues may be made' },
  budget_exceeded: { status: 402, title: 'A spend ceiling or the credit balance does not allow this work' },
  margin_floor: { status: 402, title: "The estimated cost leaves less than the margin floor of the job's price" },
  rate_limited: { status: 429, title: 'Rate limit exceeded' },
  internal: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'Service unavailable' },
};

/** One offending place in a request: a JSON path (`body.images[2].image_url`) and what is wrong. */
export interface FieldError {
  path: string;
  message: string;
}

/** An error the API reports as `application/problem+json`; `extra` members are added to the body. */
export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    readonly detail?: string,
    readonly extra: Record<string, unknown> & { errors?: FieldError[] } = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? ERROR_CODES[code].title);
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/** The RFC 9457 body for an error; `type` resolves against the server to /problems/<code>. */
export function problemBody(err: AppError, instance: string, requestId: string): Record<string, unknown> {
  const { status, title } = ERROR_CODES[err.code];
  return {
    type: `/problems/${err.code}`,
    title,
    status,
    ...(err.detail ? { detail: err.detail } : {}),
    instance,
    code: err.code,
    request_id: requestId,
    ...err.extra,
  };
}

/** Converts a zod issue path into a JSON path rooted at the request part (`body.images[0].url`). */
export function jsonPath(root: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : `${acc}.${String(key)}`),
    root,
  );
}
