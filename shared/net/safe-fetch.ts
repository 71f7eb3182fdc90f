import { lookup as dnsLookup } from 'node:dns/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { FetchRefused, isRetryableStatus, parseRetryAfter } from './fetch-refused.js';
import { IMAGE_TYPES, declaredImageType, sniffImageType, type ImageType } from './image-type.js';
import { classifyAddress, isPublicAddress } from './ip-ranges.js';
import { redactUrl } from './redact-url.js';

/** One resolved address of a host name, as `dns.lookup(host, {all: true})` returns it. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** How safeFetchImage may reach the network; every field has a production default. */
export interface SafeFetchOptions {
  /** FETCH_ALLOW_PRIVATE: reach private, loopback and link-local addresses (development and tests only). */
  allowPrivate?: boolean;
  /** Exempts single non-public addresses from the refusal while keeping it for the rest (tests). */
  allowAddress?: (address: string) => boolean;
  /** Resolves a host name to every address it has; defaults to dns.lookup with `all: true`. */
  lookup?: (hostname: string) => Promise<ResolvedAddress[]>;
  /** Time for the whole fetch, redirects and body included. */
  timeoutMs?: number;
  /** Largest body accepted, in bytes. */
  maxBytes?: number;
  /** Redirects followed before giving up. */
  maxRedirects?: number;
  /** Aborts the fetch (lease lost, job cancelled); its reason is rethrown as is. */
  signal?: AbortSignal;
}

/** A fetched image: its bytes, its type as its magic bytes tell it, and the URL it came from after redirects. */
export interface FetchedImage {
  bytes: Buffer;
  contentType: ImageType;
  finalUrl: string;
}

const DEFAULTS = { timeoutMs: 15_000, maxBytes: 20 * 1024 * 1024, maxRedirects: 3 };
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
// RFC 6761 §6.3: localhost names are loopback whatever a resolver says, so they are not looked up.
const LOCALHOST = /^(?:.+\.)?localhost\.?$/;
const ISO_BMFF: readonly ImageType[] = ['image/heic', 'image/heif', 'image/avif'];

const defaultLookup = (hostname: string) => dnsLookup(hostname, { all: true, verbatim: true });

/** The URL as a fetch target, or a `scheme` refusal for anything but http and https. */
export function target(url: string | URL, base?: URL): URL {
  let parsed: URL;
  try {
    parsed = new URL(url, base);
  } catch {
    throw new FetchRefused('scheme', `${JSON.stringify(redactUrl(String(url)))} is not a valid URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FetchRefused('scheme', `${parsed.protocol} URLs are not fetched: only http and https`, { url: parsed.href });
  }
  return parsed;
}

/** The host without IPv6 brackets; the WHATWG parser has already turned `0177.0.0.1`, `0x7f.1` and `2130706433` into 127.0.0.1. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** Waits for `promise` unless `signal` aborts first. */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Every address the URL's host has, refused when any one of them is not public (one bad answer is enough to rebind to). */
export async function resolveChecked(url: URL, opts: SafeFetchOptions, signal: AbortSignal): Promise<ResolvedAddress[]> {
  const host = bareHost(url);
  let addresses: ResolvedAddress[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else if (LOCALHOST.test(host)) addresses = [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }];
  else {
    try {
      addresses = await unlessAborted((opts.lookup ?? defaultLookup)(host), signal);
    } catch (err) {
      if (signal.aborted) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      // NXDOMAIN and NODATA are answers; anything else (EAI_AGAIN, SERVFAIL, a timeout) may clear.
      const retryable = code !== 'ENOTFOUND' && code !== 'ENODATA';
      throw new FetchRefused('dns', `cannot resolve ${host}: ${code}`, { retryable, url: url.href, cause: err });
    }
    if (addresses.length === 0) throw new FetchRefused('dns', `${host} has no addresses`, { url: url.href });
  }
  const allowed = (ip: string) => opts.allowPrivate === true || isPublicAddress(ip) || opts.allowAddress?.(ip) === true;
  const refused = addresses.find((a) => !allowed(a.address));
  if (refused) {
    const where = refused.address === host ? host : `${host} resolves to ${refused.address}, which`;
    const why = `${where} is not a public address (${classifyAddress(refused.address)})`;
    throw new FetchRefused('private_address', `${why}: server-side fetches stay off private networks`, { url: url.href });
  }
  return addresses;
}

/** A `lookup` for net.connect that answers with the addresses already checked, so a second DNS answer cannot swap them. */
function pinnedLookup(addresses: ResolvedAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const usable = addresses.filter((a) => !options.family || a.family === options.family);
    const list = usable.length > 0 ? usable : addresses;
    if (options.all) (callback as (e: null, all: ResolvedAddress[]) => void)(null, list);
    else callback(null, list[0]!.address, list[0]!.family);
  };
}

/** Sends one request to `url`, connecting only to `addresses` (safePost's POST shares it). */
export function send(
  url: URL,
  addresses: ResolvedAddress[],
  signal: AbortSignal,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? https.request : http.request;
    const req = request(
      {
        protocol: url.protocol,
        hostname: bareHost(url),
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: init.method,
        // A fresh connection per request: a pooled socket may have been opened to another address.
        agent: false,
        lookup: pinnedLookup(addresses),
        signal,
        headers: init.headers,
      },
      resolve,
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** The response body, refused as soon as it grows past `maxBytes`. */
async function readBody(res: IncomingMessage, maxBytes: number, url: URL): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      res.destroy();
      throw new FetchRefused('too_large', `the image is larger than ${maxBytes} bytes`, { url: url.href });
    }
    chunks.push(chunk);
  }
  if (!res.complete) throw new FetchRefused('network', 'the connection closed before the body was complete', { url: url.href });
  return Buffer.concat(chunks, total);
}

/** Checks a final response and reads its body as an image. */
async function readImage(res: IncomingMessage, url: URL, maxBytes: number): Promise<FetchedImage> {
  const status = res.statusCode ?? 0;
  if (status !== 200) {
    res.destroy();
    const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
    throw new FetchRefused('http_status', `the server answered ${status}`, { status, retryable: isRetryableStatus(status), retryAfterMs, url: url.href });
  }
  const declared = declaredImageType(res.headers['content-type']);
  if (!declared) {
    res.destroy();
    throw new FetchRefused('not_image', `content type ${JSON.stringify(res.headers['content-type'] ?? '')} is not one of ${IMAGE_TYPES.join(', ')}`, { url: url.href });
  }
  const length = Number(res.headers['content-length']);
  if (Number.isFinite(length) && length > maxBytes) {
    res.destroy();
    throw new FetchRefused('too_large', `Content-Length ${length} is over the ${maxBytes}-byte limit`, { url: url.href });
  }
  const bytes = await readBody(res, maxBytes, url);
  const sniffed = sniffImageType(bytes);
  if (!sniffed) {
    throw new FetchRefused('not_image', `the body is not a ${declared} image (its first bytes match no accepted image format)`, { url: url.href });
  }
  // A mislabelled image (a PNG served as image/jpeg) is still an image: its bytes decide, except
  // between HEIC/HEIF/AVIF, whose brands overlap and the declared type is the better guess.
  const contentType = ISO_BMFF.includes(declared) && ISO_BMFF.includes(sniffed) ? declared : sniffed;
  return { bytes, contentType, finalUrl: url.href };
}

/**
 * Fetches an image from a URL a tenant gave us without letting it reach private networks: every
 * hop's host is resolved once, refused if any address is not public, and connected to by that
 * address; redirects, time, size and content type are all bounded. Failures are FetchRefused.
 */
export async function safeFetchImage(url: string | URL, opts: SafeFetchOptions = {}): Promise<FetchedImage> {
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.timeoutMs;
  const maxBytes = opts.maxBytes ?? DEFAULTS.maxBytes;
  const maxRedirects = opts.maxRedirects ?? DEFAULTS.maxRedirects;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  let current = target(url);
  try {
    for (let redirects = 0; ; redirects++) {
      const addresses = await resolveChecked(current, opts, signal);
      const res = await send(current, addresses, signal, { method: 'GET', headers: { accept: IMAGE_TYPES.join(', '), 'user-agent': 'leasehold-fetch/1' } });
      const location = res.headers.location;
      if (!REDIRECTS.has(res.statusCode ?? 0) || location === undefined) return await readImage(res, current, maxBytes);
      res.destroy();
      if (redirects === maxRedirects) {
        throw new FetchRefused('redirects', `more than ${maxRedirects} redirects`, { url: current.href });
      }
      current = target(location, current);
    }
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (err instanceof FetchRefused) throw err;
    if (deadline.aborted) throw new FetchRefused('timeout', `the fetch took longer than ${timeoutMs} ms`, { url: current.href, cause: err });
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
    throw new FetchRefused('network', `cannot fetch ${redactUrl(current)}: ${code}`, { url: current.href, cause: err });
  }
}
