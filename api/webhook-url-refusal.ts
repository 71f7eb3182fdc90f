import type { Config } from '#shared/config.js';
import { fetchTargetRefusal } from '#shared/net/address-policy.js';
import { FetchRefused } from '#shared/net/fetch-refused.js';
import { resolveChecked, type ResolvedAddress } from '#shared/net/safe-fetch.js';

/**
 * Why the server will not call this webhook URL, or undefined: the image fetches' SSRF guard,
 * applied at registration by text (localhost, literal private addresses) and after DNS (a name
 * that resolves to a private address, or to nothing). The worker checks again at every send.
 */
export async function webhookUrlRefusal(
  url: string,
  config: Pick<Config, 'FETCH_ALLOW_PRIVATE'>,
  lookup?: (hostname: string) => Promise<ResolvedAddress[]>,
): Promise<string | undefined> {
  const byText = fetchTargetRefusal(url, config.FETCH_ALLOW_PRIVATE);
  if (byText || config.FETCH_ALLOW_PRIVATE) return byText;
  try {
    await resolveChecked(new URL(url), { allowPrivate: false, ...(lookup && { lookup }) }, AbortSignal.timeout(5_000));
    return undefined;
  } catch (err) {
    if (err instanceof FetchRefused) return err.message;
    return `cannot check the host: ${(err as Error).message}`;
  }
}
