import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const SECRET_FILE = 'storage-signing-secret';

/**
 * The local store's HMAC secret: STORAGE_SIGNING_SECRET when set, else one made once per install
 * and kept (mode 0600) under the data directory, so API restarts keep issued URLs valid.
 */
export function signingSecret(configured: string | undefined, dataDir: string): string {
  if (configured) return configured;
  const file = path.join(dataDir, SECRET_FILE);
  mkdirSync(dataDir, { recursive: true });
  try {
    writeFileSync(file, randomBytes(32).toString('hex'), { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = readFileSync(file, 'utf8').trim();
  if (secret.length < 16) throw new Error(`${file} holds no usable secret; delete it to make a new one`);
  return secret;
}

/** HMAC-SHA256 (hex) over every parameter, in a fixed order, newline-separated. */
export function sign(secret: string, fields: readonly string[]): string {
  return createHmac('sha256', secret).update(fields.join('\n')).digest('hex');
}

/** Whether `sig` is the signature of `fields`, compared in constant time. */
export function verify(secret: string, fields: readonly string[], sig: string): boolean {
  const want = Buffer.from(sign(secret, fields), 'hex');
  const got = Buffer.from(/^[0-9a-f]{64}$/.test(sig) ? sig : '', 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}
