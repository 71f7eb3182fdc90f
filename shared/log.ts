import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths whose values never reach a log line. */
const redact = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'password',
  'apiKey',
  'api_key',
  'secret',
  'token',
  '*.password',
  '*.secret',
  '*.token',
];

/**
 * The process logger: JSON lines, secrets redacted. Servers log to stdout (fd 1); one-shot CLI
 * commands pass fd 2 so that their stdout carries only their output (`--json` stays parseable);
 * tests pass a stream to read what was logged.
 */
export function createLogger(level: string, name = 'leasehold', fd: 1 | 2 | DestinationStream = 1): Logger {
  const options = { name, level, redact: { paths: redact, censor: '[redacted]' } };
  if (typeof fd === 'object') return pino(options, fd);
  return fd === 1 ? pino(options) : pino(options, pino.destination({ dest: 2, sync: true }));
}
