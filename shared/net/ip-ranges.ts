import { isIP } from 'node:net';

/** What kind of address an IP is; everything but `public` is refused to server-side fetches by default. */
export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link_local'
  | 'metadata'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'reserved'
  | 'invalid';

type Range = readonly [network: string, prefix: number, cls: AddressClass];

// RFC 6890's special-purpose registries (IANA, checked November 2026). Most specific first: the
// first matching range wins, so 169.254.169.254 (every cloud's metadata service) is `metadata`
// rather than `link_local`, and 255.255.255.255 is `broadcast` rather than `reserved`.
const V4_RANGES: readonly Range[] = [
  ['169.254.169.254', 32, 'metadata'],
  ['255.255.255.255', 32, 'broadcast'],
  // Linux connects 0.0.0.0 to the local host, so "this network" is as dangerous as loopback.
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'cgnat'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link_local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

// IPv4-mapped (::ffff:0:0/96) and NAT64 (64:ff9b::/96, RFC 6052) addresses are classified by the
// IPv4 address they carry, before this table is consulted.
const V6_RANGES: readonly Range[] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  // AWS's instance metadata service over IPv6.
  ['fd00:ec2::254', 128, 'metadata'],
  ['64:ff9b:1::', 48, 'private'],
  // IPv4-compatible addresses (deprecated by RFC 4291) and the rest of ::/8.
  ['::', 8, 'reserved'],
  ['100::', 64, 'reserved'],
  // IETF protocol assignments, Teredo (2001::/32) among them: tunnels that embed other addresses.
  ['2001::', 23, 'reserved'],
  ['2001:db8::', 32, 'documentation'],
  ['3fff::', 20, 'documentation'],
  // 6to4 embeds an IPv4 address and is deprecated (RFC 7526).
  ['2002::', 16, 'reserved'],
  ['fc00::', 7, 'private'],
  ['fe80::', 10, 'link_local'],
  ['fec0::', 10, 'private'],
  ['ff00::', 8, 'multicast'],
  // Only 2000::/3 is allocated as global unicast; whatever else is left is unassigned.
  ['2000::', 3, 'public'],
  ['::', 0, 'reserved'],
];

const V4_BITS = 32n;
const V6_BITS = 128n;

/** An IPv4 address in dotted-quad form as a 32-bit integer (the caller has checked isIP === 4). */
function v4ToBigInt(ip: string): bigint {
  return ip.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

/** An IPv6 address (the caller has checked isIP === 6) as a 128-bit integer. */
function v6ToBigInt(ip: string): bigint {
  let text = ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const v4 = v4ToBigInt(dotted[1]);
    text = `${text.slice(0, -dotted[1].length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...zeros, ...tailGroups].reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function inRange(value: bigint, bits: bigint, network: bigint, prefix: number): boolean {
  const shift = bits - BigInt(prefix);
  return value >> shift === network >> shift;
}

type Parsed = readonly [network: bigint, prefix: number, cls: AddressClass];
const V4_PARSED: readonly Parsed[] = V4_RANGES.map(([net, prefix, cls]) => [v4ToBigInt(net), prefix, cls]);
const V6_PARSED: readonly Parsed[] = V6_RANGES.map(([net, prefix, cls]) => [v6ToBigInt(net), prefix, cls]);
const NAT64 = v6ToBigInt('64:ff9b::');
const V4_MAPPED = 0xffff_0000_0000n;

function classify(value: bigint, bits: bigint, ranges: readonly Parsed[]): AddressClass {
  return ranges.find(([network, prefix]) => inRange(value, bits, network, prefix))?.[2] ?? 'public';
}

/**
 * The class of an IP address (IPv4 dotted quad or IPv6 text, brackets and zone id allowed);
 * `invalid` for anything else, so callers that refuse every non-public class refuse it too.
 */
export function classifyAddress(address: string): AddressClass {
  const ip = address.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const family = isIP(ip);
  if (family === 4) return classify(v4ToBigInt(ip), V4_BITS, V4_PARSED);
  if (family !== 6) return 'invalid';
  const value = v6ToBigInt(ip);
  if (inRange(value, V6_BITS, V4_MAPPED, 96) || inRange(value, V6_BITS, NAT64, 96)) {
    return classify(value & 0xffff_ffffn, V4_BITS, V4_PARSED);
  }
  return classify(value, V6_BITS, V6_PARSED);
}

/** True when a server-side fetch may reach this address without FETCH_ALLOW_PRIVATE. */
export function isPublicAddress(address: string): boolean {
  return classifyAddress(address) === 'public';
}
