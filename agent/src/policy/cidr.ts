// IP addresses as raw bytes (how xDS carries them) and CIDR containment, for policy matching.
import { isIPv4, isIPv6 } from 'node:net';

/** Parses a textual IPv4/IPv6 address into 4 or 16 bytes; IPv4-mapped IPv6 becomes 4 bytes. */
export function ipToBytes(ip: string): Uint8Array | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) ip = mapped[1]!;
  if (isIPv4(ip)) return new Uint8Array(ip.split('.').map(Number));
  if (!isIPv6(ip)) return undefined;
  const [head, tail] = ip.includes('::') ? ip.split('::') as [string, string] : [ip, undefined];
  const parse = (s: string) => (s ? s.split(':') : []);
  let groups = parse(head);
  let tailGroups = tail === undefined ? [] : parse(tail);
  // a trailing dotted quad counts as two groups
  const expandV4 = (gs: string[]) => {
    const last = gs[gs.length - 1];
    if (last && last.includes('.')) {
      const b = last.split('.').map(Number);
      gs.splice(gs.length - 1, 1, ((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16));
    }
    return gs;
  };
  if (tail === undefined) groups = expandV4(groups);
  else tailGroups = expandV4(tailGroups);
  const fill = tail === undefined ? 0 : 8 - groups.length - tailGroups.length;
  const all = [...groups, ...Array<string>(fill).fill('0'), ...tailGroups];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** Formats 4 or 16 raw bytes as text; other lengths give undefined. */
export function bytesToIp(b: Uint8Array): string | undefined {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) return undefined;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:::+/, '::');
}

/** True if `ip` lies in network/prefix. Mismatched families never match. */
export function cidrContains(network: Uint8Array, prefix: number, ip: Uint8Array): boolean {
  if (network.length !== ip.length) return false;
  const bits = Math.min(prefix, network.length * 8);
  const full = bits >> 3;
  for (let i = 0; i < full; i++) if (network[i] !== ip[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (network[full]! & mask) === (ip[full]! & mask);
}

/** Parses "a.b.c.d", "a.b.c.d/n" or IPv6 forms; undefined when invalid. */
export function parseCidr(text: string): { address: Uint8Array; length: number } | undefined {
  const [ip, len, extra] = text.split('/');
  if (extra !== undefined || !ip) return undefined;
  const address = ipToBytes(ip);
  if (!address) return undefined;
  const max = address.length * 8;
  if (len === undefined) return { address, length: max };
  if (!/^\d+$/.test(len) || Number(len) > max) return undefined;
  return { address, length: Number(len) };
}
