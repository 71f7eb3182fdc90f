import { pino, type Logger } from 'pino';

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

/** The process logger: JSON lines, secrets redacted. */
export function createLogger(level: string, name = 'leasehold'): Logger {
  return pino({ name, level, redact: { paths: redact, censor: '[redacted]' } });
}
