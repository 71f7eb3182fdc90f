import type { Sql, Tx } from '../db/connect.js';
import { ROTATION_GRACE_MS, newSigningSecret, openSecret, sealSecret } from './secrets.js';

/** Stored secret columns of a subscription or of a tenant's default secret. */
export interface StoredSecrets {
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
}

/** Until when a rotated-out secret still signs, or null when none does any more. */
export function previousSecretExpiry(row: Pick<StoredSecrets, 'previous_secret_expires_at'>, now = Date.now()): Date | null {
  const at = row.previous_secret_expires_at;
  return at && at.getTime() > now ? at : null;
}

/** The secrets that sign now: the current one, then the previous one while its grace period lasts. */
export function activeSecrets(row: StoredSecrets, key: string | undefined, now = Date.now()): string[] {
  const secrets = [openSecret(row.secret, key)];
  if (row.previous_secret && previousSecretExpiry(row, now)) {
    secrets.push(openSecret(row.previous_secret, key));
  }
  return secrets;
}

/**
 * A tenant's default signing secret (for jobs' own `webhook_url`), created on first use by
 * whichever process needs it first; concurrent first uses agree on one. Once it exists (every
 * call but the first), this is one read: no secret is generated and sealed only to be discarded.
 */
export async function tenantSigningSecret(db: Sql | Tx, tenantId: string, key: string | undefined): Promise<StoredSecrets & { created_at: Date }> {
  const read = () => db<(StoredSecrets & { created_at: Date })[]>`
    select secret, previous_secret, previous_secret_expires_at, created_at
    from leasehold.webhook_signing_secrets where tenant_id = ${tenantId}::uuid`;
  const [found] = await read();
  if (found) return found;
  await db`
    insert into leasehold.webhook_signing_secrets (tenant_id, secret)
    values (${tenantId}::uuid, ${sealSecret(newSigningSecret(), key)})
    on conflict (tenant_id) do nothing`;
  const [row] = await read();
  return row!;
}

/** Replaces a tenant's default secret; the old one keeps signing for ROTATION_GRACE_MS. Returns the new one. */
export async function rotateTenantSigningSecret(sql: Sql, tenantId: string, key: string | undefined): Promise<{ secret: string; previousExpiresAt: Date }> {
  const secret = newSigningSecret();
  const previousExpiresAt = new Date(Date.now() + ROTATION_GRACE_MS);
  await sql.begin(async (tx) => {
    await tenantSigningSecret(tx, tenantId, key);
    await tx`
      update leasehold.webhook_signing_secrets
      set previous_secret = secret, previous_secret_expires_at = ${previousExpiresAt},
          secret = ${sealSecret(secret, key)}, rotated_at = now()
      where tenant_id = ${tenantId}::uuid`;
  });
  return { secret, previousExpiresAt };
}
