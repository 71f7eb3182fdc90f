import { redactUrl } from './redact-url.js';

/** Why a safe fetch gave up; the worker maps `retryable` to a retry and everything else to a permanent failure. */
export type FetchRefusalCode =
  | 'scheme'
  | 'private_address'
  | 'dns'
  | 'network'
  | 'too_large'
  | 'timeout'
  | 'not_image'
  | 'redirects'
  | 'http_status';

// Codes whose cause may clear by itself; `dns` and `http_status` decide per failure (see below).
const RETRYABLE_BY_DEFAULT: Record<FetchRefusalCode, boolean> = {
  scheme: false,
  private_address: false,
  dns: true,
  network: true,
  too_large: false,
  timeout: true,
  not_image: false,
  redirects: false,
  http_status: false,
};

/** Details that refine a refusal: the HTTP status, a server's Retry-After, the underlying error. */
export interface FetchRefusedDetails {
  retryable?: boolean;
  status?: number;
  retryAfterMs?: number;
  /** Kept without its query string, fragment or userinfo (redactUrl). */
  url?: string;
  cause?: unknown;
}

/** A server-side fetch that was refused or failed, with a machine code and whether retrying may help. */
export class FetchRefused extends Error {
  override name = 'FetchRefused';
  /** True for failures that may clear by themselves (timeouts, resets, 5xx, 429); false for refusals. */
  readonly retryable: boolean;
  /** The HTTP status when `code` is `http_status`. */
  readonly status: number | undefined;
  /** How long the server asked us to wait (Retry-After), when it did. */
  readonly retryAfterMs: number | undefined;
  /** The URL being fetched when it failed (after redirects), without its query string, fragment or userinfo. */
  readonly url: string | undefined;

  constructor(readonly code: FetchRefusalCode, message: string, details: FetchRefusedDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.retryable = details.retryable ?? RETRYABLE_BY_DEFAULT[code];
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
    this.url = details.url === undefined ? undefined : redactUrl(details.url);
  }
}

/** True for statuses worth retrying (RFC 9110: 408 timeout, 429 too many requests, 5xx server errors). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A Retry-After header (delay-seconds or an HTTP date, RFC 9110 §10.2.3) in milliseconds from `now`. */
export function parseRetryAfter(header: string | undefined, now = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
