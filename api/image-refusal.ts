import type { Config } from '#shared/config.js';
import { fetchTargetRefusal } from '#shared/net/address-policy.js';

/** Why the server will not fetch this image (or webhook URL) for the tenant, or undefined. */
export function imageRefusal(image: { url: string } | { storage_key: string }, tenantId: string, config: Pick<Config, 'FETCH_ALLOW_PRIVATE'>): string | undefined {
  if ('url' in image) return fetchTargetRefusal(image.url, config.FETCH_ALLOW_PRIVATE);
  if (!image.storage_key.toLowerCase().startsWith(`uploads/${tenantId.toLowerCase()}/`)) return `must start with uploads/${tenantId}/ (your own uploads)`;
  return undefined;
}
