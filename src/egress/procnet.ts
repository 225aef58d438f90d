/**
 * Parsers for /proc/net/{tcp,tcp6,udp,udp6} and helpers of process
 * attribution. Pure.
 *
 *   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
 *    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 …
 */
export interface SocketLine {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly uid: number;
  readonly inode: number;
}

function hexToIpv4(hex: string): string {
  // /proc prints the 32-bit address in host byte order (little-endian here).
  const n = parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
}

function hexToIpv6(hex: string): string {
  const groups: string[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    const bytes = [word.slice(6, 8), word.slice(4, 6), word.slice(2, 4), word.slice(0, 2)];
    groups.push((bytes[0]! + bytes[1]!).replace(/^0+(?=.)/, ''), (bytes[2]! + bytes[3]!).replace(/^0+(?=.)/, ''));
  }
  return compressIpv6(groups.map((g) => g.toLowerCase()));
}

function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function parseProcNet(text: string, family: 4 | 6): SocketLine[] {
  const out: SocketLine[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [la, lp] = (f[1] ?? '').split(':');
    const [ra, rp] = (f[2] ?? '').split(':');
    if (!la || !lp || !ra || !rp) continue;
    const inode = Number(f[9]);
    if (!Number.isInteger(inode) || inode <= 0) continue;
    out.push({
      localAddress: family === 4 ? hexToIpv4(la) : hexToIpv6(la),
      localPort: parseInt(lp, 16),
      remoteAddress: family === 4 ? hexToIpv4(ra) : hexToIpv6(ra),
      remotePort: parseInt(rp, 16),
      uid: Number(f[7]),
      inode,
    });
  }
  return out;
}

/** `socket:[12345]` → 12345. */
export function socketInode(link: string): number | null {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : null;
}
