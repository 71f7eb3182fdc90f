/**
 * Errors that mean "the database cannot be reached right now", as opposed to a bad query: the API
 * answers them with 503 `unavailable` (and Retry-After) instead of 500, so clients and load
 * balancers retry while PostgreSQL restarts or fails over.
 */

// postgres.js's own connection errors, and the socket errors it passes through.
const CLIENT_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT', // the Unix socket file is gone while the server is down
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

// SQLSTATEs: class 08 connection exception; 57P01 admin_shutdown, 57P02 crash_shutdown,
// 57P03 cannot_connect_now (starting up or in recovery); 53300 too_many_connections.
const SERVER_CODES = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/;

/** True when `err` (or the error it wraps) says the database is unreachable or restarting. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (CLIENT_CODES.has(code) || SERVER_CODES.test(code))) return true;
  }
  return false;
}
