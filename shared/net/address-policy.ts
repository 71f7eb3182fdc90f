import { BlockList, isIP } from 'node:net';

// Addresses a server-side fetch must not reach (RFC 6890 special-purpose registries): loopback,
// private, shared (CGNAT), link-local (169.254.169.254 is every cloud's metadata service),
// documentation, benchmarking, multicast and reserved; IPv6 ULAs (fd00:ec2::254 is AWS's metadata
// service over IPv6) and the transition forms that embed an IPv4 address. BlockList applies the
// IPv4 rules to IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) by itself.
const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15],
  ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [['::', 96], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 32],
  ['2001:db8::', 32], ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8]] as const) {
  NON_PUBLIC.addSubnet(net, prefix, 'ipv6');
}
const LOCAL_NAMES = /^(localhost|.+\.localhost|metadata\.google\.internal)$/;

/** True when an IP address is not a public unicast one; the worker applies it to resolved addresses. */
export function isNonPublicAddress(ip: string): boolean {
  const family = isIP(ip);
  return family === 0 || NON_PUBLIC.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Why a server-side fetch of `url` is refused from its text alone (localhost names, literal
 * non-public addresses), or undefined; names that resolve to such addresses are caught by the
 * worker after DNS. The WHATWG parser has already turned `0x7f.1` and `2130706433` into 127.0.0.1.
 */
export function fetchTargetRefusal(url: string, allowPrivate: boolean): string | undefined {
  if (allowPrivate || !URL.canParse(url)) return undefined;
  const host = new URL(url).hostname.toLowerCase().replace(/\.$/, '').replace(/^\[(.*)\]$/, '$1');
  if (LOCAL_NAMES.test(host)) return `must not point at ${host}: the server refuses to fetch local addresses`;
  if (isIP(host) && isNonPublicAddress(host)) return `must not point at ${host}: a private, loopback, link-local or reserved address`;
  return undefined;
}
