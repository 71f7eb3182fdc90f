import { isIP } from 'node:net';
import { classifyAddress } from './ip-ranges.js';

const LOCAL_NAMES = /^(localhost|.+\.localhost|metadata\.google\.internal)$/;

/** True when an IP address is not a public unicast one (one range table: ip-ranges.ts). */
export function isNonPublicAddress(ip: string): boolean {
  return classifyAddress(ip) !== 'public';
}

/**
 * Why a server-side fetch of `url` is refused from its text alone (localhost names, literal
 * non-public addresses), or undefined: the API's early answer. Names that resolve to such
 * addresses are caught at fetch time, after DNS (safe-fetch.ts). The WHATWG parser has already
 * turned `0x7f.1` and `2130706433` into 127.0.0.1.
 */
export function fetchTargetRefusal(url: string, allowPrivate: boolean): string | undefined {
  if (allowPrivate || !URL.canParse(url)) return undefined;
  const host = new URL(url).hostname.toLowerCase().replace(/\.$/, '').replace(/^\[(.*)\]$/, '$1');
  if (LOCAL_NAMES.test(host)) return `must not point at ${host}: the server refuses to fetch local addresses`;
  if (isIP(host) && isNonPublicAddress(host)) {
    return `must not point at ${host}: a ${classifyAddress(host).replace('_', '-')} address, not a public one`;
  }
  return undefined;
}
