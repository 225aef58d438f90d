import { describe, expect, it } from 'vitest';
import { cidrContains, parseCidr } from '../../src/manifest/cidr.js';

function parsed(text: string) {
  const r = parseCidr(text);
  if (!r.ok) throw new Error(r.reason);
  return r.cidr;
}

describe('parseCidr', () => {
  it('parses IPv4 and IPv6 network addresses to bytes', () => {
    expect(parsed('198.51.100.0/24')).toEqual({ family: 4, bytes: Uint8Array.from([198, 51, 100, 0]), prefix: 24 });
    expect(Array.from(parsed('2001:db8::/32').bytes)).toEqual([0x20, 0x01, 0x0d, 0xb8, ...Array(12).fill(0)]);
    expect(Array.from(parsed('::ffff:192.0.2.128/121').bytes.subarray(10))).toEqual([0xff, 0xff, 192, 0, 2, 128]);
    expect(Array.from(parsed('1:2:3:4:5:6:7:8/128').bytes)).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
    expect(Array.from(parsed('1::8/128').bytes)).toEqual([0, 1, ...Array(12).fill(0), 0, 8]);
    expect(Array.from(parsed('::/0').bytes)).toEqual(Array(16).fill(0));
  });

  it('rejects host bits, naming the network address', () => {
    expect(parseCidr('203.0.113.7/25')).toEqual({ ok: false, reason: 'address has host bits set beyond /25 (the network address is 203.0.113.0/25)' });
    expect(parseCidr('203.0.113.128/25').ok).toBe(true);
    expect(parseCidr('2001:db8::c000/113')).toEqual({ ok: false, reason: 'address has host bits set beyond /113 (the network address is 2001:db8::8000/113)' });
    expect(parseCidr('2001:db8::8000/113').ok).toBe(true);
    expect(parseCidr('2001:db8:0:1::1/48')).toEqual({ ok: false, reason: 'address has host bits set beyond /48 (the network address is 2001:db8::/48)' });
    expect(parseCidr('1:0:0:1:0:0:0:1/16')).toEqual({ ok: false, reason: 'address has host bits set beyond /16 (the network address is 1::/16)' });
  });

  it('rejects prefix lengths out of range and malformed input', () => {
    expect(parseCidr('192.0.2.0/33')).toEqual({ ok: false, reason: 'prefix length 33 is over 32 for an IPv4 address' });
    expect(parseCidr('::/129')).toEqual({ ok: false, reason: 'prefix length 129 is over 128 for an IPv6 address' });
    expect(parseCidr('192.0.2.0')).toEqual({ ok: false, reason: 'has no prefix length (write address/length)' });
    expect(parseCidr('192.0.2.0/024').ok).toBe(false);
    expect(parseCidr('192.0.2.0/').ok).toBe(false);
    expect(parseCidr('192.0.02.0/24').ok).toBe(false);
    expect(parseCidr('2001:DB8::/32').ok).toBe(false);
    expect(parseCidr('fe80::%eth0/64').ok).toBe(false);
  });
});

describe('cidrContains', () => {
  it('matches addresses inside the prefix only', () => {
    const net = parsed('198.51.100.0/24');
    expect(cidrContains(net, Uint8Array.from([198, 51, 100, 255]))).toBe(true);
    expect(cidrContains(net, Uint8Array.from([198, 51, 101, 0]))).toBe(false);
    expect(cidrContains(parsed('0.0.0.0/0'), Uint8Array.from([203, 0, 113, 1]))).toBe(true);
    expect(cidrContains(net, new Uint8Array(16))).toBe(false);
  });
});
