import { isIPv4, isIPv6 } from 'node:net';

/**
 * IP text <-> bytes, for the binary PROXY v2 header. Text out is what node itself shows in
 * `socket.remoteAddress`: dotted quad, RFC 5952 compressed lowercase IPv6, `::ffff:a.b.c.d`
 * for v4-mapped addresses.
 */

/** 4 bytes, or undefined when `text` is not a dotted-quad IPv4 address. */
export function ipv4ToBytes(text: string): Buffer | undefined {
  if (!isIPv4(text)) return undefined;
  return Buffer.from(text.split('.').map(Number));
}

export function bytesToIpv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** 16 bytes, or undefined when `text` is not an IPv6 address (zone ids are refused). */
export function ipv6ToBytes(text: string): Buffer | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let head = text;
  let tail: number[] = [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes the last two groups.
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = ipv4ToBytes(text.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const gap = head.indexOf('::');
  let groups: number[];
  if (gap >= 0) {
    const left = parse(head.slice(0, gap));
    const right = [...parse(head.slice(gap + 2)), ...tail];
    groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  } else {
    groups = [...parse(head), ...tail];
  }
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i]!, 2 * i);
  return out;
}

export function bytesToIpv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytesToIpv4(b.subarray(12, 16))}`;
  }
  // Longest run of two or more zero groups (the first on a tie) becomes '::'.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** `::ffff:a.b.c.d` -> `a.b.c.d`; anything else unchanged. */
export function unmapIpv4(text: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  return m && isIPv4(m[1]!) ? m[1]! : text;
}
