import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** How long a rotated-out secret still signs, next to the new one. */
export const ROTATION_GRACE_MS = 24 * 3_600_000;

/** A new signing secret: `whsec_` + base64 of 32 random bytes, the form Standard Webhooks libraries take. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The HMAC key a `whsec_` secret stands for. */
export function secretKeyBytes(secret: string): Buffer {
  return Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
}

/** The secret raised when a stored secret cannot be opened (missing or different WEBHOOK_SECRET_KEY). */
export class SecretUnavailable extends Error {
  override name = 'SecretUnavailable';
}

const aesKey = (key: string) => createHash('sha256').update(key).digest();

/**
 * The stored form of a secret: AES-256-GCM under `key` (WEBHOOK_SECRET_KEY) as
 * `v1:<iv>:<tag>:<ciphertext>`, or `plain:<secret>` when no key is configured. HMAC signing needs
 * the secret itself, so a hash would not do.
 */
export function sealSecret(secret: string, key: string | undefined): string {
  if (!key) return `plain:${secret}`;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', aesKey(key), iv);
  const data = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return `v1:${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${data.toString('base64')}`;
}

/** The secret behind a stored form; SecretUnavailable when it is encrypted under another key or none. */
export function openSecret(stored: string, key: string | undefined): string {
  if (stored.startsWith('plain:')) return stored.slice('plain:'.length);
  const [version, iv, tag, data] = stored.split(':');
  if (version !== 'v1' || !iv || !tag || data === undefined) throw new SecretUnavailable('unrecognised stored secret');
  if (!key) throw new SecretUnavailable('the signing secret is encrypted but WEBHOOK_SECRET_KEY is not set');
  try {
    const decipher = createDecipheriv('aes-256-gcm', aesKey(key), Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretUnavailable('the signing secret was encrypted under another WEBHOOK_SECRET_KEY');
  }
}
