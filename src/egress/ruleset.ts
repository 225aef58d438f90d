/**
 * The nftables table glassbox owns: built as one `nft -f -` script (one
 * transaction: create-if-missing, delete, define), and read back from
 * `nft -j list table` as counters, set contents and a digest. Pure: text
 * and JSON in, text and values out.
 *
 * Layout (see docs/egress.md for the whole picture):
 *
 *   chain output  (hook output, priority filter)   oif lo → accept; first packet of a
 *                                                   new flow → jump local_new
 *   chain forward (hook forward, priority filter)  first packet of a new flow → jump forward_new
 *   chain local_new / forward_new                   count, write the mark (uid bits), jump
 *                                                   classify_*, else count undeclared
 *                                                   (and reject in enforce mode)
 *   chain classify_local / classify_forward         one rule per (egress rule, family):
 *                                                   proto + port + daddr @set → mark class, count, accept
 *
 * "First packet of a new flow" is `ct state new ct status & confirmed == 0`:
 * a retransmitted SYN of a flow already confirmed is not counted twice.
 */
import { createHash } from 'node:crypto';
import type { EgressRule } from '../manifest/types.js';
import { canonicalJson } from '../manifest/canonical.js';
import { parseCidr } from '../manifest/cidr.js';
import { MARK_CLASS_SHIFT, MARK_COUNTED, MARK_FORWARDED, MARK_UID_BITS, MARK_UID_UNKNOWN, MAX_RULES, hex32 } from './mark.js';

export type EgressMode = 'observe' | 'enforce';

export const TABLE_FAMILY = 'inet';
export const DEFAULT_TABLE = 'glassbox';

export interface ResolvedAddress {
  readonly family: 4 | 6;
  readonly address: string;
  /** Seconds the element stays in the set from now (the record's TTL, floored and capped by the caller). */
  readonly timeoutSeconds: number;
}

export interface RulesetOptions {
  readonly table: string;
  readonly mode: EgressMode;
  /** The manifest's egress rules, in manifest order (first match wins). null = no installed manifest. */
  readonly rules: readonly EgressRule[] | null;
  /** Addresses of host rules known at install time, by rule index: installed in the same transaction. */
  readonly resolved?: ReadonlyMap<number, readonly ResolvedAddress[]>;
  /** Capacity of the dynamic sets (per-uid counters, forwarded sources, denied flows). */
  readonly dynamicSetSize?: number;
  /** Seconds a denied-flow element lives without being seen again (enforce mode). */
  readonly deniedTimeoutSeconds?: number;
}

export const DEFAULT_DYNAMIC_SET_SIZE = 4096;
export const DEFAULT_DENIED_TIMEOUT_SECONDS = 3600;

/** Named counters of the table. */
export const COUNTER = {
  localNew: 'local_new',
  forwardNew: 'forward_new',
  localUndeclared: 'local_undeclared',
  forwardUndeclared: 'forward_undeclared',
} as const;

export function ruleCounterName(index: number, direction: 'local' | 'forward'): string {
  return `rule_${index}_${direction}`;
}

export function ruleSetName(index: number, family: 4 | 6): string {
  return `rule_${index}_v${family}`;
}

/** Sets whose elements are not part of the ruleset digest: they change while the daemon runs. */
export const DYNAMIC_SETS = ['undeclared_uids', 'forward_sources_v4', 'forward_sources_v6', 'denied_local_v4', 'denied_local_v6', 'denied_local_np_v4', 'denied_local_np_v6', 'denied_forward_v4', 'denied_forward_v6', 'denied_forward_np_v4', 'denied_forward_np_v6'] as const;

/** Names glassbox gives its nftables table (also checked before a name goes into an nft command line). */
export const TABLE_NAME = /^[a-z][a-z0-9_]{0,31}$/;

export class RulesetError extends Error {
  readonly code = 'EGRESS_POLICY_UNSUPPORTED';
}

interface RuleFamilies {
  readonly index: number;
  readonly rule: EgressRule;
  readonly families: readonly (4 | 6)[];
  readonly kind: 'cidr' | 'host';
}

function ruleFamilies(rules: readonly EgressRule[]): RuleFamilies[] {
  if (rules.length > MAX_RULES) throw new RulesetError(`${rules.length} egress rules: the table can name at most ${MAX_RULES}`);
  return rules.map((rule, index) => {
    if (rule.cidr !== undefined) {
      const parsed = parseCidr(rule.cidr);
      if (!parsed.ok) throw new RulesetError(`egress rule ${rule.id}: cidr ${rule.cidr}: ${parsed.reason}`);
      return { index, rule, families: [parsed.cidr.family], kind: 'cidr' as const };
    }
    return { index, rule, families: [4, 6] as const, kind: 'host' as const };
  });
}

function portMatch(rule: EgressRule): string {
  if (rule.ports !== undefined) return `th dport ${rule.ports[0]}-${rule.ports[1]}`;
  if (rule.port !== undefined) return `th dport ${rule.port}`;
  throw new RulesetError(`egress rule ${rule.id} has neither port nor ports`);
}

/** The nft rules copying the socket uid into the mark's low bits, bit by bit. */
function uidBitRules(): string[] {
  const lines = [`meta skuid < ${MARK_UID_UNKNOWN} ct mark set ${hex32(MARK_COUNTED)}`];
  for (let bit = 0; bit < MARK_UID_BITS; bit++) {
    const v = hex32(1 << bit);
    lines.push(`meta skuid & ${v} == ${v} ct mark set ct mark | ${v}`);
  }
  return lines;
}

function setDecl(name: string, body: string[]): string[] {
  return [`  set ${name} {`, ...body.map((l) => `    ${l}`), '  }'];
}

/**
 * The whole-table script. Loading it with `nft -f -` replaces any previous
 * table of that name atomically (one transaction: `table … {}` makes sure
 * the delete has something to delete).
 */
export function buildTableScript(opts: RulesetOptions): string {
  if (!TABLE_NAME.test(opts.table)) throw new RulesetError(`table name ${JSON.stringify(opts.table)} is not [a-z][a-z0-9_]{0,31}`);
  const t = `${TABLE_FAMILY} ${opts.table}`;
  const rules = ruleFamilies(opts.rules ?? []);
  const dyn = opts.dynamicSetSize ?? DEFAULT_DYNAMIC_SET_SIZE;
  const deniedTimeout = opts.deniedTimeoutSeconds ?? DEFAULT_DENIED_TIMEOUT_SECONDS;
  const enforce = opts.mode === 'enforce';
  const out: string[] = [`table ${t} {}`, `delete table ${t}`, `table ${t} {`];
  out.push(`  comment "owned by glassbox: egress accounting (${opts.mode}); changes by anyone else make the attestation incomplete"`);
  for (const name of Object.values(COUNTER)) out.push(`  counter ${name} {}`);
  for (const r of rules) for (const dir of ['local', 'forward'] as const) out.push(`  counter ${ruleCounterName(r.index, dir)} {}`);

  for (const r of rules) {
    for (const family of r.families) {
      const type = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
      if (r.kind === 'cidr') {
        out.push(...setDecl(ruleSetName(r.index, family), [`type ${type}`, 'flags interval', `elements = { ${r.rule.cidr} }`]));
      } else {
        const elems = (opts.resolved?.get(r.index) ?? []).filter((a) => a.family === family);
        const body = [`type ${type}`, 'flags timeout'];
        if (elems.length > 0) body.push(`elements = { ${elems.map((a) => `${a.address} timeout ${Math.max(1, Math.round(a.timeoutSeconds))}s`).join(', ')} }`);
        out.push(...setDecl(ruleSetName(r.index, family), body));
      }
    }
  }
  out.push(...setDecl('undeclared_uids', ['type uid', `size ${dyn}`, 'flags dynamic', 'counter']));
  out.push(...setDecl('forward_sources_v4', ['type ipv4_addr . ether_addr', `size ${dyn}`, 'flags dynamic,timeout', 'timeout 1h']));
  out.push(...setDecl('forward_sources_v6', ['type ipv6_addr . ether_addr', `size ${dyn}`, 'flags dynamic,timeout', 'timeout 1h']));
  if (enforce) {
    for (const f of [4, 6] as const) {
      const a = f === 4 ? 'ipv4_addr' : 'ipv6_addr';
      const common = [`size ${dyn}`, 'flags dynamic,timeout', `timeout ${deniedTimeout}s`, 'counter'];
      out.push(...setDecl(`denied_local_v${f}`, [`type inet_proto . ${a} . ${a} . inet_service . uid`, ...common]));
      out.push(...setDecl(`denied_local_np_v${f}`, [`type inet_proto . ${a} . ${a} . uid`, ...common]));
      out.push(...setDecl(`denied_forward_v${f}`, [`type inet_proto . ${a} . ${a} . inet_service`, ...common]));
      out.push(...setDecl(`denied_forward_np_v${f}`, [`type inet_proto . ${a} . ${a}`, ...common]));
    }
  }

  const firstPacket = 'ct state new ct status & confirmed == 0';
  out.push('  chain output {', '    type filter hook output priority filter; policy accept;', '    oif "lo" accept', `    ${firstPacket} jump local_new`, '  }');
  out.push('  chain forward {', '    type filter hook forward priority filter; policy accept;', `    ${firstPacket} jump forward_new`, '  }');

  for (const dir of ['local', 'forward'] as const) {
    const fwd = dir === 'forward';
    const body: string[] = [`counter name ${fwd ? COUNTER.forwardNew : COUNTER.localNew}`];
    body.push(`ct mark set ${hex32(MARK_COUNTED | (fwd ? MARK_FORWARDED : 0) | MARK_UID_UNKNOWN)}`);
    if (fwd) {
      body.push('meta nfproto ipv4 update @forward_sources_v4 { ip saddr . ether saddr }');
      body.push('meta nfproto ipv6 update @forward_sources_v6 { ip6 saddr . ether saddr }');
    } else {
      body.push(...uidBitRules());
    }
    body.push(`jump classify_${dir}`);
    body.push(`counter name ${fwd ? COUNTER.forwardUndeclared : COUNTER.localUndeclared}`);
    if (!fwd) body.push('update @undeclared_uids { meta skuid }');
    if (enforce) {
      for (const f of [4, 6] as const) {
        const [nf, ip] = f === 4 ? ['ipv4', 'ip'] : ['ipv6', 'ip6'];
        const set = fwd ? 'forward' : 'local';
        const uid = fwd ? '' : ' . meta skuid';
        body.push(`meta nfproto ${nf} meta l4proto { tcp, udp, udplite, sctp, dccp } update @denied_${set}_v${f} { meta l4proto . ${ip} saddr . ${ip} daddr . th dport${uid} }`);
        body.push(`meta nfproto ${nf} meta l4proto != { tcp, udp, udplite, sctp, dccp } update @denied_${set}_np_v${f} { meta l4proto . ${ip} saddr . ${ip} daddr${uid} }`);
      }
      body.push('meta l4proto tcp reject with tcp reset');
      body.push('reject with icmpx admin-prohibited');
    }
    out.push(`  chain ${dir}_new {`, ...body.map((l) => `    ${l}`), '  }');

    const cls: string[] = [];
    for (const r of rules) {
      const classBits = hex32((r.index + 1) << MARK_CLASS_SHIFT);
      for (const family of r.families) {
        const ip = family === 4 ? 'ip' : 'ip6';
        cls.push(`meta l4proto ${r.rule.proto} ${portMatch(r.rule)} ${ip} daddr @${ruleSetName(r.index, family)} ct mark set ct mark | ${classBits} counter name ${ruleCounterName(r.index, dir)} accept`);
      }
    }
    out.push(`  chain classify_${dir} {`, ...cls.map((l) => `    ${l}`), '  }');
  }
  out.push('}');
  return out.join('\n') + '\n';
}

export interface HostElementUpdate {
  readonly ruleIndex: number;
  readonly address: ResolvedAddress;
}

/**
 * Refreshes host-rule addresses with new timeouts in one transaction. An
 * element's timeout cannot be changed in place, so each one is added (so
 * that the delete cannot fail when it has just expired), deleted and added
 * again with its new timeout.
 */
export function hostRefreshScript(table: string, updates: readonly HostElementUpdate[]): string {
  const t = `${TABLE_FAMILY} ${table}`;
  const lines: string[] = [];
  for (const u of updates) {
    const set = ruleSetName(u.ruleIndex, u.address.family);
    const a = u.address.address;
    lines.push(`add element ${t} ${set} { ${a} }`, `delete element ${t} ${set} { ${a} }`, `add element ${t} ${set} { ${a} timeout ${Math.max(1, Math.round(u.address.timeoutSeconds))}s }`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- reading back

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function items(listing: unknown): Array<Record<string, Json>> {
  const arr = (listing as { nftables?: unknown } | null)?.nftables;
  if (!Array.isArray(arr)) throw new TypeError('not an nft -j listing (no "nftables" array)');
  return arr.filter((x): x is Record<string, Json> => typeof x === 'object' && x !== null && !Array.isArray(x));
}

/** True when the listing has the table at all. */
export function hasTable(listing: unknown, table: string): boolean {
  return items(listing).some((i) => {
    const tb = i['table'] as { name?: unknown; family?: unknown } | undefined;
    return tb !== undefined && tb.name === table && tb.family === TABLE_FAMILY;
  });
}

/** Keys a JS object would list before all others, whatever the insertion order (array-index-like). */
const INDEX_KEY = /^(0|[1-9][0-9]*)$/;

/**
 * Drops handles and counter values, and inserts each object's keys in
 * sorted order (UTF-16 code units, as RFC 8785 sorts them). `indexKeys`
 * is set when an object has an array-index-like key, which JS would list
 * first whatever the insertion order.
 */
function strip(value: Json, dropElemOf: ReadonlySet<string>, indexKeys: { found: boolean }): Json {
  if (Array.isArray(value)) return value.map((v) => strip(v, dropElemOf, indexKeys));
  if (value === null || typeof value !== 'object') return value;
  // No prototype: a "__proto__" key from the listing stays an ordinary key.
  const out = Object.create(null) as { [k: string]: Json };
  const isCounterValues = 'packets' in value && 'bytes' in value;
  for (const k of Object.keys(value).sort()) {
    if (k === 'handle') continue;
    if (isCounterValues && (k === 'packets' || k === 'bytes')) continue;
    if (INDEX_KEY.test(k)) indexKeys.found = true;
    out[k] = strip(value[k] as Json, dropElemOf, indexKeys);
  }
  return out;
}

/**
 * sha256 of the table's normalized JSON: handles and counter values dropped,
 * and the elements of sets the daemon changes while running (host-rule
 * addresses, dynamic sets) dropped; those are checked separately
 * (hostSetIntruders). Everything else, chains, rules, CIDR sets and their
 * elements, is covered.
 */
export function rulesetDigest(listing: unknown, table: string): string | null {
  const mine = items(listing).filter((i) => {
    const body = Object.values(i)[0] as { table?: unknown; name?: unknown; family?: unknown } | undefined;
    if ('metainfo' in i) return false;
    if ('table' in i) return body?.name === table && body.family === TABLE_FAMILY;
    return body?.table === table && body.family === TABLE_FAMILY;
  });
  if (!mine.some((i) => 'table' in i)) return null;
  const dropped = new Set<string>(DYNAMIC_SETS);
  const indexKeys = { found: false };
  const normalized = mine.map((i) => {
    const set = i['set'] as { name?: unknown; flags?: unknown } | undefined;
    if (set !== undefined && typeof set.name === 'string') {
      const flags = Array.isArray(set.flags) ? set.flags : [];
      if (dropped.has(set.name) || flags.includes('timeout')) {
        const { elem: _e, ...rest } = set as Record<string, Json>;
        return strip({ set: rest }, dropped, indexKeys);
      }
    }
    return strip(i, dropped, indexKeys);
  });
  // The RFC 8785 form of values parsed from JSON, with every object's keys already in sorted order,
  // is what JSON.stringify prints (same number and string forms), at a fraction of the CPU and
  // garbage of the general canonicalizer: this runs at every counter poll. Objects with
  // index-like keys, which JSON.stringify would list first, go through the canonicalizer.
  const text = indexKeys.found ? canonicalJson(normalized) : JSON.stringify(normalized);
  return createHash('sha256').update(text).digest('hex');
}

export interface KernelCounters {
  readonly localNew: number;
  readonly forwardNew: number;
  readonly localUndeclared: number;
  readonly forwardUndeclared: number;
  /** By rule index: flows that matched it. */
  readonly rules: ReadonlyMap<number, { readonly local: number; readonly forward: number }>;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function setsOf(listing: unknown, table: string): Map<string, Record<string, Json>> {
  const m = new Map<string, Record<string, Json>>();
  for (const i of items(listing)) {
    const s = i['set'] as Record<string, Json> | undefined;
    if (s && s['table'] === table && s['family'] === TABLE_FAMILY && typeof s['name'] === 'string') m.set(s['name'], s);
  }
  return m;
}

/** Named counters as packet counts (each counted flow is one packet: its first). null when the table is missing. */
export function readCounters(listing: unknown, table: string): KernelCounters | null {
  const named = new Map<string, number>();
  let seenTable = false;
  for (const i of items(listing)) {
    const tb = i['table'] as Record<string, Json> | undefined;
    if (tb && tb['name'] === table && tb['family'] === TABLE_FAMILY) seenTable = true;
    const c = i['counter'] as Record<string, Json> | undefined;
    if (c && c['table'] === table && c['family'] === TABLE_FAMILY && typeof c['name'] === 'string') named.set(c['name'], num(c['packets']));
  }
  if (!seenTable) return null;
  const rules = new Map<number, { local: number; forward: number }>();
  for (const [name, packets] of named) {
    const m = /^rule_(\d+)_(local|forward)$/.exec(name);
    if (!m) continue;
    const idx = Number(m[1]);
    const cur = rules.get(idx) ?? { local: 0, forward: 0 };
    rules.set(idx, m[2] === 'local' ? { ...cur, local: packets } : { ...cur, forward: packets });
  }
  return {
    localNew: named.get(COUNTER.localNew) ?? 0,
    forwardNew: named.get(COUNTER.forwardNew) ?? 0,
    localUndeclared: named.get(COUNTER.localUndeclared) ?? 0,
    forwardUndeclared: named.get(COUNTER.forwardUndeclared) ?? 0,
    rules,
  };
}

function elems(set: Record<string, Json> | undefined): Array<{ val: Json; counter: number; expires: number | null }> {
  const list = set?.['elem'];
  if (!Array.isArray(list)) return [];
  return list.map((e) => {
    const inner = e !== null && typeof e === 'object' && !Array.isArray(e) && 'elem' in e ? (e['elem'] as Record<string, Json>) : null;
    if (inner === null) return { val: e, counter: 0, expires: null };
    const ctr = inner['counter'] as Record<string, Json> | undefined;
    return { val: inner['val'] ?? null, counter: num(ctr?.['packets']), expires: typeof inner['expires'] === 'number' ? inner['expires'] : null };
  });
}

/** Addresses currently in each host-rule set, by set name. */
export function readHostSets(listing: unknown, table: string, rules: readonly EgressRule[]): Map<string, string[]> {
  const sets = setsOf(listing, table);
  const out = new Map<string, string[]>();
  rules.forEach((rule, index) => {
    if (rule.host === undefined) return;
    for (const f of [4, 6] as const) {
      const name = ruleSetName(index, f);
      out.set(name, elems(sets.get(name)).map((e) => String(e.val)));
    }
  });
  return out;
}

/** Per-uid counts of undeclared local flows, from the kernel's dynamic set. */
export function readUndeclaredUids(listing: unknown, table: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of elems(setsOf(listing, table).get('undeclared_uids'))) if (typeof e.val === 'number') out.set(e.val, e.counter);
  return out;
}

/** Latest MAC seen for each forwarded source address. */
export function readForwardSources(listing: unknown, table: string): Map<string, string> {
  const out = new Map<string, string>();
  const sets = setsOf(listing, table);
  for (const name of ['forward_sources_v4', 'forward_sources_v6']) {
    for (const e of elems(sets.get(name))) {
      const c = (e.val as { concat?: unknown } | null)?.concat;
      if (Array.isArray(c) && typeof c[0] === 'string' && typeof c[1] === 'string') out.set(c[0], c[1]);
    }
  }
  return out;
}

export interface DeniedElement {
  readonly direction: 'local' | 'forwarded';
  readonly proto: string;
  readonly src: string;
  readonly dst: string;
  readonly dport: number | null;
  readonly uid: number | null;
  /** Flows the kernel counted for this element since it was (re)created. */
  readonly count: number;
  /** Seconds until the element expires (refreshed each time it is hit). */
  readonly expires: number | null;
  /** Stable identity of the element. */
  readonly key: string;
}

/** Flows rejected in enforce mode, as the kernel's denied sets hold them. */
export function readDenied(listing: unknown, table: string): DeniedElement[] {
  const sets = setsOf(listing, table);
  const out: DeniedElement[] = [];
  for (const [name, set] of sets) {
    const m = /^denied_(local|forward)(_np)?_v[46]$/.exec(name);
    if (!m) continue;
    const local = m[1] === 'local';
    const hasPort = m[2] === undefined;
    for (const e of elems(set)) {
      const c = (e.val as { concat?: unknown } | null)?.concat;
      if (!Array.isArray(c)) continue;
      const proto = typeof c[0] === 'number' ? String(c[0]) : String(c[0]);
      const src = String(c[1]);
      const dst = String(c[2]);
      const dport = hasPort && typeof c[3] === 'number' ? c[3] : null;
      const uidRaw = local ? c[hasPort ? 4 : 3] : undefined;
      const uid = typeof uidRaw === 'number' ? uidRaw : null;
      out.push({ direction: local ? 'local' : 'forwarded', proto, src, dst, dport, uid, count: e.counter, expires: e.expires, key: `${name}|${JSON.stringify(c)}` });
    }
  }
  return out;
}
