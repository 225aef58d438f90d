/**
 * IP prefixes of egress rules (bundle-v1 section 4), judged beyond what the
 * schema's patterns can say. Pure.
 *
 * Accepted: `<address>/<length>` where the address is a valid IPv4 dotted
 * quad (no leading zeros) or a valid IPv6 address in lowercase hex (any
 * valid textual form, `::` compression and an embedded dotted quad allowed,
 * no zone id), the length is 0–32 or 0–128, and the address has NO bits set
 * beyond the prefix length (`192.0.2.1/24` is rejected: write `192.0.2.0/24`
 * or `192.0.2.1/32`). A host-bits rule is almost always a typo, and a
 * buyer reading the manifest should see the exact range that is declared.
 * Prefix length 0 is accepted and means every address of that family.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface ParsedCidr {
  readonly family: 4 | 6;
  /** Network address, 4 or 16 bytes. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

export type CidrParse = { ok: true; cidr: ParsedCidr } | { ok: false; reason: string };

export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, reason: 'has no prefix length (write address/length)' };
  const address = text.slice(0, slash);
  const lengthText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lengthText)) return { ok: false, reason: `prefix length "${lengthText}" is not a number` };
  const prefix = Number(lengthText);
  let family: 4 | 6;
  let bytes: Uint8Array;
  if (isIPv4(address) && /^[0-9.]+$/.test(address)) {
    family = 4;
    bytes = ipv4Bytes(address);
    if (bytes.join('.') !== address) return { ok: false, reason: `IPv4 address "${address}" is not in dotted decimal without leading zeros` };
  } else if (isIPv6(address) && /^[0-9a-f:.]+$/.test(address)) {
    family = 6;
    bytes = ipv6Bytes(address);
  } else {
    return { ok: false, reason: `"${address}" is not an IPv4 or lowercase IPv6 address` };
  }
  const bits = family === 4 ? 32 : 128;
  if (prefix > bits) return { ok: false, reason: `prefix length ${prefix} is over ${bits} for an IPv${family} address` };
  for (let bit = prefix; bit < bits; bit++) {
    if (((bytes[bit >> 3] as number) >> (7 - (bit & 7))) & 1) {
      return { ok: false, reason: `address has host bits set beyond /${prefix} (the network address is ${formatNetwork(family, bytes, prefix)})` };
    }
  }
  return { ok: true, cidr: { family, bytes, prefix } };
}

function ipv4Bytes(address: string): Uint8Array {
  return Uint8Array.from(address.split('.').map(Number));
}

/** Only called on text that node:net already judged a valid IPv6 address. */
function ipv6Bytes(address: string): Uint8Array {
  const out = new Uint8Array(16);
  let text = address;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tail = Array.from(ipv4Bytes(text.slice(lastColon + 1)));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [headText, restText] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const head = headText === '' ? [] : headText.split(':');
  const rest = restText === undefined || restText === '' ? [] : restText.split(':');
  const groups = restText === undefined ? head : [...head, ...Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  groups.forEach((group, i) => {
    const v = parseInt(group, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

function formatNetwork(family: 4 | 6, bytes: Uint8Array, prefix: number): string {
  const net = Uint8Array.from(bytes);
  for (let bit = prefix; bit < net.length * 8; bit++) net[bit >> 3] = (net[bit >> 3] as number) & ~(1 << (7 - (bit & 7)));
  if (family === 4) return `${net.join('.')}/${prefix}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((net[i] as number) << 8) | (net[i + 1] as number)).toString(16));
  return `${compressIpv6(groups)}/${prefix}`;
}

/** RFC 5952: the longest run (2 or more) of zero groups becomes "::". */
function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < groups.length; i++) {
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** True when `address` (4 or 16 bytes, same family) lies inside the prefix. */
export function cidrContains(cidr: ParsedCidr, address: Uint8Array): boolean {
  if (address.length !== cidr.bytes.length) return false;
  for (let bit = 0; bit < cidr.prefix; bit++) {
    const mask = 1 << (7 - (bit & 7));
    if (((address[bit >> 3] as number) & mask) !== ((cidr.bytes[bit >> 3] as number) & mask)) return false;
  }
  return true;
}
