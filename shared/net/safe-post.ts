import { FetchRefused } from './fetch-refused.js';
import { resolveChecked, send, target, type SafeFetchOptions } from './safe-fetch.js';

/** How a POST went: the status and the first bytes of the answer (a receiver's error message). */
export interface PostResponse {
  status: number;
  /** Up to 512 bytes of the response body, as text. */
  excerpt: string;
}

const EXCERPT_BYTES = 512;

/**
 * POSTs a body to a URL a tenant gave us, under the same guard as image fetches (safe-fetch.ts):
 * the host is resolved once, refused if any address is not public, and connected to by that
 * address. Redirects are not followed: a 3xx is an answer like any other. The whole exchange is
 * bounded by `timeoutMs`. Network failures, refusals and timeouts are FetchRefused.
 */
export async function safePost(
  url: string,
  body: string,
  headers: Record<string, string>,
  opts: Pick<SafeFetchOptions, 'allowPrivate' | 'allowAddress' | 'lookup' | 'signal'> & { timeoutMs: number },
): Promise<PostResponse> {
  const deadline = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  const current = target(url);
  try {
    const addresses = await resolveChecked(current, opts, signal);
    const res = await send(current, addresses, signal, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': 'leasehold-webhooks/1', ...headers },
      body,
    });
    // Only the first bytes matter (an error message); the rest is not waited for.
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= EXCERPT_BYTES) break;
    }
    res.destroy();
    return { status: res.statusCode ?? 0, excerpt: Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8') };
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (err instanceof FetchRefused) throw err;
    if (deadline.aborted) throw new FetchRefused('timeout', `no answer within ${opts.timeoutMs} ms`, { url: current.href, cause: err });
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
    throw new FetchRefused('network', `cannot reach ${current.host}: ${code}`, { url: current.href, cause: err });
  }
}
