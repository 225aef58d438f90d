import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LineSplitter, parseConntrackLine } from '../../src/egress/conntrack-parse.js';
import { decodeMark, encodeMark } from '../../src/egress/mark.js';
import { buildTableScript, hostRefreshScript, readCounters, readDenied, rulesetDigest, RulesetError } from '../../src/egress/ruleset.js';
import { Ledger, judge, newLedger, totalsFromKernel, ZERO_TOTALS } from '../../src/egress/ledger.js';
import { parseProcNet, socketInode } from '../../src/egress/procnet.js';
import { retryDelaySeconds } from '../../src/egress/dns.js';
import { MARKER_DST, MARKER_SRC, SegmentCut, markerArgv, markerText, type Marker } from '../../src/egress/handover.js';
import type { EgressRule } from '../../src/manifest/types.js';
import type { PolicyInfo } from '../../src/egress/types.js';
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../src/manifest/canonical.js';

const rules: EgressRule[] = [
  { id: 'dns', purpose: 'dns', proto: 'udp', port: 53, cidr: '192.0.2.53/32' },
  { id: 'broker', purpose: 'mqtt', proto: 'tcp', port: 8883, host: 'broker.hss.example' },
  { id: 'v6', purpose: 'x', proto: 'tcp', ports: [1000, 2000], cidr: '2001:db8::/32' },
];
const policy: PolicyInfo = { mode: 'observe', rules, manifestSha256: 'ab'.repeat(32), firmwareVersion: '1', securityVersion: 1 };

describe('the mark', () => {
  it('round-trips direction, rule and uid', () => {
    fc.assert(
      fc.property(fc.constantFrom('local' as const, 'forwarded' as const), fc.option(fc.integer({ min: 0, max: 1022 })), fc.option(fc.integer({ min: 0, max: 0xffffe })), (direction, ruleIndex, uid) => {
        expect(decodeMark(encodeMark({ direction, ruleIndex, uid }))).toEqual({ direction, ruleIndex, uid });
      }),
    );
  });
  it('is not ours without bit 31', () => {
    expect(decodeMark(0)).toBeNull();
    expect(decodeMark(0x7fffffff)).toBeNull();
  });
});

describe('the conntrack parser', () => {
  const line = '[1795969464.685919]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=192.0.2.1 dst=203.0.113.66 sport=52758 dport=7000 [UNREPLIED] src=203.0.113.66 dst=192.0.2.1 sport=7000 dport=52758 mark=2147483650 id=889105574';
  it('reads the original tuple, mark, id and time', () => {
    expect(parseConntrackLine(line)).toEqual({ kind: 'event', event: { at: 1795969464685, family: 4, proto: 'tcp', src: '192.0.2.1', dst: '203.0.113.66', sport: 52758, dport: 7000, mark: 2147483650, id: 889105574 } });
  });
  it('reads icmp without ports and takes the last id=', () => {
    const p = parseConntrackLine('[1.5]\t[NEW] ipv4     2 icmp     1 30 src=192.0.2.1 dst=203.0.113.66 type=8 code=0 id=7 [UNREPLIED] src=203.0.113.66 dst=192.0.2.1 type=0 code=0 id=7 mark=2148532223 id=99');
    expect(p).toMatchObject({ kind: 'event', event: { proto: 'icmp', sport: null, dport: null, id: 99, at: 1500 } });
  });
  it('never throws on garbage', () => {
    fc.assert(fc.property(fc.string(), (s) => { expect(['event', 'other', 'malformed']).toContain(parseConntrackLine(s).kind); }));
    expect(parseConntrackLine('[1.0] [NEW] ipv9 x').kind).toBe('malformed');
  });
  it('splits lines across chunks and drops overlong ones', () => {
    const sp = new LineSplitter(10);
    expect(sp.push('abc\nde')).toEqual(['abc']);
    expect(sp.push('f\n' + 'x'.repeat(30))).toEqual(['def']);
    expect(sp.push('yyy\nok\n')).toEqual(['ok']);
    expect(sp.overlong).toBe(1);
  });
});

describe('the reader handover (make-before-break rotation, cut at a marker)', () => {
  const ev = (sport: number, at = 1000) => ({ at, family: 4 as const, proto: 'tcp', src: '192.0.2.1', dst: '203.0.113.66', sport, dport: 7000, mark: 0x80000000, id: 7 });
  const m: Marker = { sport: 3, dport: 4242 };
  const mark = (mk: Marker, at = 1000) => ({ at, family: 4 as const, proto: 'udp', src: MARKER_SRC, dst: MARKER_DST, sport: mk.sport, dport: mk.dport, mark: 0x80000000, id: 9 });
  const run = (cut: SegmentCut, evs: ReturnType<typeof ev>[]) => evs.map((e) => cut.decide(e));

  it('reads the overlap once: the old segment up to the marker, the new one after it', () => {
    const oldCut = new SegmentCut();
    const newCut = new SegmentCut();
    oldCut.cutAfterMarker(m);
    newCut.skipUntilMarker(m);
    // Both listeners saw b, M, c, d (the same netlink sequence); only the old one saw a; only the new one e.
    expect(run(oldCut, [ev(1), ev(2), mark(m), ev(3), ev(4)])).toEqual(['deliver', 'deliver', 'marker', 'duplicate', 'duplicate']);
    newCut.skipAtMostUntil(5000);
    expect(run(newCut, [ev(2), mark(m), ev(3), ev(4), ev(5)])).toEqual(['duplicate', 'marker', 'deliver', 'deliver', 'deliver']);
    expect(oldCut.faults + newCut.faults).toBe(0);
  });

  it('keeps the same id and tuple twice when they are two flows (ids and ports are reused)', () => {
    const cut = new SegmentCut();
    expect(run(cut, [ev(1), ev(1), ev(1)])).toEqual(['deliver', 'deliver', 'deliver']);
  });

  it('never delivers a marker, nor is cut by another rotation\'s marker', () => {
    const cut = new SegmentCut();
    cut.cutAfterMarker(m);
    expect(run(cut, [mark({ sport: 9, dport: 9 }), ev(1), mark(m), ev(2)])).toEqual(['marker', 'deliver', 'marker', 'duplicate']);
  });

  it('stops skipping past the deadline when the new listener lost the marker, and says so', () => {
    const cut = new SegmentCut();
    cut.skipUntilMarker(m);
    cut.skipAtMostUntil(2000);
    expect(run(cut, [ev(1, 1500), ev(2, 2500), ev(3, 2600)])).toEqual(['duplicate', 'deliver', 'deliver']);
    expect(cut.faults).toBe(1);
  });

  it('discards an abandoned rotation\'s segment whole (the old writer went on and saw it all)', () => {
    const cut = new SegmentCut();
    cut.skipUntilMarker(m);
    cut.discardEverything();
    expect(run(cut, [ev(1), mark(m), ev(2)])).toEqual(['duplicate', 'marker', 'duplicate']);
  });

  it('inserts a marker the reader can find in the bytes conntrack prints', () => {
    const argv = markerArgv(['conntrack'], m);
    expect(argv).toContain('-I');
    expect(argv.join(' ')).toContain(`-s ${MARKER_SRC} -d ${MARKER_DST} --sport 3 --dport 4242`);
    const line = `[1795972367.986490]\t    [NEW] ipv4     2 udp      17 1 src=${MARKER_SRC} dst=${MARKER_DST} sport=3 dport=4242 [UNREPLIED] src=${MARKER_DST} dst=${MARKER_SRC} sport=4242 dport=3 mark=2147483648 id=3259153764 [USERSPACE] portid=5222`;
    expect(line).toContain(markerText(m));
    expect(line).not.toContain(markerText({ sport: 3, dport: 424 }));
  });
});

describe('the table script', () => {
  const script = buildTableScript({ table: 'glassbox', mode: 'observe', rules, resolved: new Map([[1, [{ family: 4, address: '192.0.2.10', timeoutSeconds: 3 }]]]) });
  it('replaces the table in one transaction and excludes loopback', () => {
    expect(script.startsWith('table inet glassbox {}\ndelete table inet glassbox\ntable inet glassbox {')).toBe(true);
    expect(script).toContain('oif "lo" accept');
    expect(script).toContain('ct state new ct status & confirmed == 0 jump local_new');
    expect(script).toContain('ct state new ct status & confirmed == 0 jump forward_new');
  });
  it('puts CIDRs in interval sets, host addresses with a timeout, and counts per rule', () => {
    expect(script).toMatch(/set rule_0_v4 \{\s+type ipv4_addr\s+flags interval\s+elements = \{ 192\.0\.2\.53\/32 \}/);
    expect(script).toMatch(/set rule_1_v4 \{\s+type ipv4_addr\s+flags timeout\s+elements = \{ 192\.0\.2\.10 timeout 3s \}/);
    expect(script).toContain('meta l4proto tcp th dport 1000-2000 ip6 daddr @rule_2_v6 ct mark set ct mark | 0x00300000 counter name rule_2_local accept');
    expect(script).not.toContain('reject');
  });
  it('rejects (and records) undeclared flows only in enforce mode', () => {
    const e = buildTableScript({ table: 'glassbox', mode: 'enforce', rules });
    expect(e).toContain('meta l4proto tcp reject with tcp reset');
    expect(e).toContain('update @denied_local_v4 { meta l4proto . ip saddr . ip daddr . th dport . meta skuid }');
  });
  it('refuses names and rules it cannot express', () => {
    expect(() => buildTableScript({ table: 'Bad Name', mode: 'observe', rules })).toThrow(RulesetError);
    expect(() => buildTableScript({ table: 'glassbox', mode: 'observe', rules: Array.from({ length: 1024 }, (_, i) => ({ ...rules[0]!, id: `r${i}` })) })).toThrow(/at most 1023/);
  });
  it('refreshes host elements with add, delete, add', () => {
    expect(hostRefreshScript('glassbox', [{ ruleIndex: 1, address: { family: 4, address: '192.0.2.11', timeoutSeconds: 3.4 } }])).toBe(
      'add element inet glassbox rule_1_v4 { 192.0.2.11 }\ndelete element inet glassbox rule_1_v4 { 192.0.2.11 }\nadd element inet glassbox rule_1_v4 { 192.0.2.11 timeout 3s }\n',
    );
  });
});

describe('reading the table back', () => {
  const listing = (packets: number, extraElem = false, ruleExpr = 'accept') => ({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 'glassbox', handle: 1 } },
      { counter: { family: 'inet', name: 'local_new', table: 'glassbox', handle: 2, packets, bytes: packets * 60 } },
      { counter: { family: 'inet', name: 'rule_1_local', table: 'glassbox', handle: 3, packets: 1, bytes: 60 } },
      { set: { family: 'inet', name: 'rule_1_v4', table: 'glassbox', type: 'ipv4_addr', handle: 4, flags: ['timeout'], elem: extraElem ? [{ elem: { val: '192.0.2.10', timeout: 3, expires: 2 } }] : [] } },
      { set: { family: 'inet', name: 'denied_local_v4', table: 'glassbox', type: ['inet_proto', 'ipv4_addr', 'ipv4_addr', 'inet_service', 'uid'], handle: 5, flags: ['timeout'], elem: [{ elem: { val: { concat: ['tcp', '192.0.2.1', '203.0.113.66', 7000, 65534] }, expires: 3599, counter: { packets: 4, bytes: 240 } } }] } },
      { rule: { family: 'inet', table: 'glassbox', chain: 'classify_local', handle: 9, expr: [{ [ruleExpr]: null }] } },
    ],
  });
  it('has a digest blind to counters, handles and host elements, but not to rules', () => {
    const d = rulesetDigest(listing(1), 'glassbox');
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(rulesetDigest(listing(500, true), 'glassbox')).toBe(d);
    expect(rulesetDigest(listing(1, false, 'drop'), 'glassbox')).not.toBe(d);
    expect(rulesetDigest({ nftables: [] }, 'glassbox')).toBeNull();
  });
  it('keeps the digest of earlier versions (ledgers saved by them stay comparable)', () => {
    // The value the RFC 8785 canonicalizer gave for this listing before the JSON.stringify fast path.
    expect(rulesetDigest(listing(1), 'glassbox')).toBe('16b13c9adf83293a1ca5e666dafc18d5f5ec3fe083ed2b6f1429a1057dc7082a');
  });
  it('digests any JSON in the table exactly as the RFC 8785 canonicalizer would, whatever the key order', () => {
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    const dropsNothing = (v: unknown) => !/"(handle|packets|bytes)":/.test(JSON.stringify(v));
    const shuffled = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(shuffled);
      if (v === null || typeof v !== 'object') return v;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).reverse()) Object.defineProperty(out, k, { value: shuffled((v as Record<string, unknown>)[k]), enumerable: true, writable: true, configurable: true });
      return out;
    };
    fc.assert(
      fc.property(fc.jsonValue().filter(dropsNothing), (expr) => {
        const table = { table: { family: 'inet', name: 'glassbox' } };
        const rule = { rule: { chain: 'classify_local', expr, family: 'inet', table: 'glassbox' } };
        // Parsed from JSON, as nft's output is ("__proto__" then is an ordinary key).
        const parsed = JSON.parse(JSON.stringify({ nftables: [table, rule] })) as unknown;
        const expected = sha(canonicalJson(JSON.parse(JSON.stringify([table, rule]))));
        expect(rulesetDigest(parsed, 'glassbox')).toBe(expected);
        expect(rulesetDigest(shuffled(parsed), 'glassbox')).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });
  it('reads counters and denied elements', () => {
    const c = readCounters(listing(7), 'glassbox');
    expect(c?.localNew).toBe(7);
    expect(c?.rules.get(1)).toEqual({ local: 1, forward: 0 });
    expect(readDenied(listing(7), 'glassbox')).toEqual([{ direction: 'local', proto: 'tcp', src: '192.0.2.1', dst: '203.0.113.66', dport: 7000, uid: 65534, count: 4, expires: 3599, key: expect.any(String) as string }]);
  });
});

describe('the ledger and the verdict', () => {
  const t0 = new Date('2026-06-01T12:00:00Z');
  const ev = (dport: number, mark: number) => ({ at: t0.getTime(), family: 4 as const, proto: 'tcp', src: '192.0.2.1', dst: '192.0.2.10', sport: 40000, dport, mark, id: 1 });
  const fresh = () => new Ledger(newLedger({ bootId: 'b', table: 'glassbox', now: t0, policyKey: 'k', flowsCap: 2 }));
  const kernel = (localNew: number, localUndeclared = 0) => ({ ...ZERO_TOTALS, localNew, localUndeclared });
  const verdictOf = (l: Ledger, p: PolicyInfo = policy) => judge({ ledger: l.toJSON(), flows: l.flows(), policy: p, now: t0, rulesetSha256: 'x' });

  it('is clean when every counted flow is recorded and declared', () => {
    const l = fresh();
    l.recordEvent(ev(8883, 0x80200000), decodeMark(0x80200000)!, rules);
    l.kernelCounters(kernel(1), new Map(), t0);
    const s = verdictOf(l);
    expect(s.verdict).toBe('clean');
    expect(s.flows[0]).toMatchObject({ rule: 'broker', uids: [0], count: 1 });
  });
  it('is undeclared-egress when a flow matched no rule, whatever else', () => {
    const l = fresh();
    l.kernelCounters(kernel(3, 1), new Map([[65534, 1]]), t0);
    const s = verdictOf(l);
    expect(s.verdict).toBe('undeclared-egress');
    expect(s.observation.eventsLost).toBe(3);
  });
  it('is incomplete for lost events, a gap, a changed ruleset, counters going backwards, or no policy', () => {
    const lost = fresh();
    lost.kernelCounters(kernel(2), new Map(), t0);
    expect(verdictOf(lost).verdict).toBe('incomplete');
    const gap = fresh();
    gap.addGap(t0, new Date(t0.getTime() + 1000), 'down');
    expect(verdictOf(gap).verdict).toBe('incomplete');
    const changed = fresh();
    changed.integrityLost('flushed', t0);
    expect(verdictOf(changed).verdict).toBe('incomplete');
    const back = fresh();
    back.kernelCounters(kernel(5), new Map(), t0);
    back.kernelCounters(kernel(1), new Map(), t0);
    expect(back.data.countersWentBackwards).toBe(true);
    expect(verdictOf(back).observation.flowsCounted).toBe(6);
    expect(verdictOf(fresh(), { ...policy, rules: null }).verdict).toBe('incomplete');
  });
  it('caps the listed flows, stating what was left out, never the counts', () => {
    const l = fresh();
    for (const p of [1, 2, 3, 3]) l.recordEvent(ev(p, 0x80000000), decodeMark(0x80000000)!, rules);
    l.kernelCounters(kernel(4, 4), new Map(), t0);
    const s = verdictOf(l);
    expect(s.flows.map((f) => f.dport)).toEqual([3, 2]);
    expect(s.flowsOmitted).toBe(1);
    expect(s.flowsOmittedCount).toBe(1);
    expect(s.observation.flowsRecorded).toBe(4);
  });
  it('turns denied-set counters into increments', () => {
    const l = fresh();
    const e = { direction: 'local' as const, proto: 'tcp', src: 'a', dst: 'b', dport: 1, uid: 7, count: 2, expires: 10, key: 'k' };
    l.recordDenied([e], t0, new Map());
    l.recordDenied([{ ...e, count: 5 }], t0, new Map());
    expect(l.data.recorded).toBe(5);
    expect(l.flows()[0]).toMatchObject({ count: 5, uids: [7], source: 'denied-set' });
  });
  it('folds counters into the base when the daemon reinstalls its table', () => {
    const l = fresh();
    l.kernelCounters(totalsFromKernel({ localNew: 4, forwardNew: 1, localUndeclared: 0, forwardUndeclared: 0, rules: new Map([[1, { local: 4, forward: 0 }]]) }, rules), new Map(), t0);
    l.tableInstalled('d', 'k');
    l.kernelCounters(kernel(2), new Map(), t0);
    const s = verdictOf(l);
    expect(s.observation.flowsCounted).toBe(7);
    expect(s.observation.counters.rules['broker']).toEqual({ local: 4, forward: 0 });
    expect(l.data.countersWentBackwards).toBe(false);
  });
});

describe('/proc/net parsing', () => {
  it('reads IPv4 and IPv6 sockets and their inodes', () => {
    const v4 = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 010200C0:9C40 0A02000C:1F90 01 00000000:00000000 00:00000000 00000000 65534        0 12345 1 0000000000000000 20 4 30 10 -1\n';
    expect(parseProcNet(v4, 4)).toEqual([{ localAddress: '192.0.2.1', localPort: 40000, remoteAddress: '12.0.2.10', remotePort: 8080, uid: 65534, inode: 12345 }]);
    const v6 = 'h\n   0: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1\n';
    expect(parseProcNet(v6, 6)[0]).toMatchObject({ localAddress: '2001:db8::1', localPort: 80, inode: 777 });
    expect(socketInode('socket:[42]')).toBe(42);
    expect(socketInode('pipe:[42]')).toBeNull();
  });
});

describe('dns retry backoff', () => {
  it('doubles from the base to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 100].map((n) => retryDelaySeconds(n, 2, 60))).toEqual([2, 4, 8, 16, 32, 60, 60, 60]);
  });
});
