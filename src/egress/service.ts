/**
 * EgressService: the daemon's egress observer. It owns the nftables table,
 * the conntrack detail reader, host-rule resolution, process attribution,
 * the integrity check and the ledger, and answers snapshot() for the
 * attestation and the local API.
 *
 *   const egress = new EgressService({ stateDir, mode: 'observe', policy: loadPolicy, onUndeclared });
 *   await egress.start(signal);      // table installed, reader running, hosts resolved
 *   const snap = await egress.snapshot();
 *   await egress.stop();             // the table stays: counting (and enforcing) goes on
 *
 * The constructor only assigns. All nft work is serialized.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Manifest } from '../manifest/types.js';
import { canonicalJson } from '../manifest/canonical.js';
import type { ConntrackEvent } from './conntrack-parse.js';
import { ConntrackReader, DEFAULT_CONNTRACK_BUFFER } from './conntrack-reader.js';
import { HostResolver, type DnsOptions } from './dns.js';
import { Ledger, judge, newLedger, totalsFromKernel, type LedgerData } from './ledger.js';
import { LedgerStore, readBootId } from './ledger-store.js';
import { decodeMark } from './mark.js';
import { NftMonitor } from './monitor.js';
import { Nft, type NftOptions } from './nft.js';
import { ProcessAttributor } from './attribution.js';
import {
  DEFAULT_TABLE,
  buildTableScript,
  hostRefreshScript,
  readCounters,
  readDenied,
  readForwardSources,
  readHostSets,
  readUndeclaredUids,
  ruleSetName,
  rulesetDigest,
  type EgressMode,
  type HostElementUpdate,
  type ResolvedAddress,
} from './ruleset.js';
import type { Direction, EgressSnapshot, FlowEntry, PolicyInfo } from './types.js';
import { grid, type GridTimer } from '../sched/grid.js';

/** The installed, verified manifest (from the install state's active slot). */
export interface InstalledPolicy {
  readonly manifestBytes: Buffer;
  readonly manifest: Manifest;
}

export interface UndeclaredAlert {
  readonly at: string;
  readonly direction: Direction;
  readonly proto: string;
  readonly src: string;
  readonly dst: string;
  readonly dport: number | null;
  readonly uid: number | null;
  readonly srcMac: string | null;
  /** Flows of this destination since its previous alert (1 for the first). */
  readonly count: number;
  /** When the kernel saw the (first) flow. */
  readonly firstFlowAt: string;
  /** conntrack: from the detail stream; counter: the undeclared counter grew with no detail yet; denied-set: enforce mode. */
  readonly source: 'conntrack' | 'counter' | 'denied-set';
}

export interface EgressLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface EgressServiceOptions {
  readonly stateDir: string;
  readonly mode: EgressMode;
  /** Loads the installed manifest; null when none is installed. */
  readonly policy: () => Promise<InstalledPolicy | null>;
  readonly table?: string;
  readonly nft?: NftOptions;
  /**
   * Runtime files (tmpfs: /run/glassbox/egress on a recorder): the detail
   * reader's spool of conntrack events lives in `<runtimeDir>/conntrack`.
   */
  readonly runtimeDir: string;
  readonly conntrack?: {
    readonly command?: readonly string[];
    readonly bufferBytes?: number;
    readonly segmentBytes?: number;
    readonly maxSegments?: number;
    /** SCHED_FIFO priority of conntrack (default 10), or null for the normal scheduler (conntrack-reader.ts). */
    readonly realtimePriority?: number | null;
  };
  readonly dns?: DnsOptions;
  /**
   * Counter poll and integrity check interval while anything happens. In observe mode, when a
   * poll finds nothing new the interval doubles up to max(pollMs, 15000) ms; a conntrack record
   * or an `nft monitor` event brings it back to pollMs at once. Enforce mode always polls at
   * pollMs. snapshot() always reads the counters afresh.
   */
  readonly pollMs?: number;
  readonly flowsCap?: number;
  readonly attribution?: boolean;
  readonly bootIdPath?: string;
  /** How long snapshot() waits for detail records to catch up with the counters. */
  readonly settleMs?: number;
  /** Undeclared-flow alerts: at most this many per second (the rest are summed into later ones). */
  readonly alertsPerSecond?: number;
  readonly onUndeclared?: (alert: UndeclaredAlert) => void;
  readonly log?: EgressLogger;
  readonly now?: () => Date;
}

interface AlertState {
  last: number;
  pending: number;
  firstAt: string;
  flow: FlowEntry;
  source: UndeclaredAlert['source'];
}

/**
 * Ceiling of the adaptive counter-poll interval when nothing changes (ms). Idle, the poll is a
 * safety net: `nft monitor` reports table changes at once, each conntrack record (and a
 * reported loss of records) brings the fast rate back, and snapshot() reads the counters
 * afresh. Each poll wakes the daemon and nft (bench:idle).
 */
const IDLE_POLL_MAX_MS = 15_000;
/** Longest time the saved heartbeat may lag when nothing but the heartbeat moved (bounds the gap precision after a crash). */
const HEARTBEAT_SAVE_MS = 30_000;

const silent: EgressLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export class EgressService {
  private readonly opts: EgressServiceOptions;
  private readonly table: string;
  private readonly now: () => Date;
  private readonly log: EgressLogger;
  private nft!: Nft;
  private store!: LedgerStore;
  private ledger: Ledger | null = null;
  private reader: ConntrackReader | null = null;
  private monitor: NftMonitor | null = null;
  private resolver: HostResolver | null = null;
  private attributor: ProcessAttributor | null = null;
  private policyInfo: PolicyInfo | null = null;
  private policyKey = '';
  private serial: Promise<unknown> = Promise.resolve();
  private pollTimer: GridTimer | null = null;
  /** Current counter-poll interval (adaptive, see EgressServiceOptions.pollMs) and when the next poll is due. */
  private pollDelay = 500;
  private pollDueAt = 0;
  /** Something happened since the last poll (a record, a monitor event, a changed ledger). */
  private activity = false;
  private dnsTimers = new Map<string, GridTimer>();
  private checkTimer: NodeJS.Timeout | null = null;
  private running = false;
  private dirty = false;
  private lastSave = 0;
  private lastDigest: string | null = null;
  /** Host-rule addresses the daemon put in the sets, with the instant each runs out (ms). */
  private hostAddresses = new Map<string, Map<string, number>>();
  private resolvedByRule = new Map<number, ResolvedAddress[]>();
  private macs = new Map<string, string>();
  private alertState = new Map<string, AlertState>();
  private lastUndeclaredEventMs = 0;
  private alertWindow = { start: 0, sent: 0 };
  private lastUndeclared = 0;
  private stats = { dnsErrors: 0, nftErrors: 0, malformed: 0 };

  constructor(opts: EgressServiceOptions) {
    this.opts = opts;
    this.table = opts.table ?? DEFAULT_TABLE;
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log ?? silent;
  }

  get rules() {
    return this.policyInfo?.rules ?? null;
  }

  /** pid of the conntrack process (diagnostics and tests). */
  get readerPid(): number | undefined {
    return this.reader?.pid;
  }

  /** The detail reader's own figures (diagnostics; not part of the signed document). */
  readerStats(): Record<string, number | null> {
    const r = this.reader;
    if (r === null) return { readerPid: null };
    return { readerPid: r.pid ?? null, events: r.events, restarts: r.restarts, rotations: r.rotations, duplicatesDropped: r.duplicatesDropped, segmentsPending: r.segmentsPending, segmentsDropped: r.droppedSegments };
  }

  async start(signal?: AbortSignal): Promise<void> {
    if (this.running) return;
    this.nft = new Nft(this.opts.nft);
    this.store = new LedgerStore(this.opts.stateDir);
    const bootId = await readBootId(this.opts.bootIdPath);
    const installed = await this.opts.policy();
    this.policyInfo = policyInfoOf(this.opts.mode, installed);
    this.policyKey = sha256(canonicalJson({ mode: this.opts.mode, rules: this.policyInfo.rules, manifest: this.policyInfo.manifestSha256 }));

    const loaded = await this.store.load(bootId);
    const startedAt = this.now();
    let resumed = false;
    if (loaded.data !== null) {
      this.ledger = new Ledger(loaded.data);
      resumed = true;
    } else {
      this.ledger = new Ledger(newLedger({ bootId, table: this.table, now: startedAt, policyKey: this.policyKey, flowsCap: this.opts.flowsCap }));
      if (loaded.problem !== null) {
        this.ledger.integrityLost(`ledger of this boot could not be used (${loaded.problem}); a new window starts`, startedAt);
        this.log.warn({ problem: loaded.problem }, 'egress ledger unusable');
      }
    }

    // Detail reader first, so that nothing the table counts goes unrecorded.
    this.reader = new ConntrackReader({
      command: this.opts.conntrack?.command,
      bufferBytes: this.opts.conntrack?.bufferBytes ?? DEFAULT_CONNTRACK_BUFFER,
      spoolDir: join(this.opts.runtimeDir, 'conntrack'),
      segmentBytes: this.opts.conntrack?.segmentBytes,
      maxSegments: this.opts.conntrack?.maxSegments,
      realtimePriority: this.opts.conntrack?.realtimePriority,
      onEvent: (ev) => this.onEvent(ev),
      onOverrun: () => {
        if (this.ledger) this.ledger.data.readerOverruns++;
        this.dirty = true;
        this.log.warn({}, 'conntrack reported lost events (ENOBUFS)');
        // Details were lost: the counters are now the only prompt source of alerts.
        this.wake();
      },
      onMalformed: () => {
        if (this.ledger) this.ledger.data.malformedLines++;
        this.dirty = true;
      },
      onDropped: (bytes) => {
        if (this.ledger) this.ledger.data.readerDroppedBytes += bytes;
        this.dirty = true;
      },
      onHandoverFault: (reason) => {
        if (this.ledger) this.ledger.data.handoverFaults = (this.ledger.data.handoverFaults ?? 0) + 1;
        this.dirty = true;
        this.log.warn({ reason }, 'detail reader handover fault');
      },
      onGap: (s, e, reason) => {
        this.ledger?.addGap(s, e, reason);
        this.dirty = true;
      },
      onError: (message) => this.log.warn({ message }, 'egress reader'),
      now: this.now,
    });
    try {
      await this.reader.start();
      if (this.opts.attribution !== false) this.attributor = new ProcessAttributor();
      this.resolver = new HostResolver(this.opts.dns);
      await this.resolveAll();
      await this.adoptOrInstall(resumed, startedAt);
    } catch (e) {
      // Leave nothing running behind a failed start (the caller reports the observer as not running).
      for (const t of this.dnsTimers.values()) t.cancel();
      this.dnsTimers.clear();
      this.resolver?.cancel();
      this.attributor?.stop();
      await this.reader.stop().catch(() => undefined);
      await this.nft.close();
      throw e;
    }
    this.running = true;
    this.monitor = new NftMonitor(this.nft.monitorArgv(), () => {
      this.wake();
      this.scheduleCheck(50);
    }, (message) => this.log.warn({ message }, 'nft monitor'));
    this.monitor.start();
    this.pollDelay = this.fastPollMs();
    this.armPoll(this.pollDelay);
    await this.save(true);
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    this.log.info({ table: this.table, mode: this.opts.mode, resumed, rules: this.policyInfo.rules?.length ?? null }, 'egress observer started');
  }

  private async adoptOrInstall(resumed: boolean, startedAt: Date): Promise<void> {

    await this.exclusive(async () => {
      const listing = await this.nft.listTable(this.table);
      const digest = listing === null ? null : rulesetDigest(listing, this.table);
      const ledger = this.ledger as Ledger;
      if (resumed) {
        ledger.addGap(new Date(ledger.data.heartbeat), startedAt, 'observer not running (daemon restarted)');
        if (digest === null) ledger.integrityLost('the table was missing when the daemon started again', startedAt);
        else if (digest !== ledger.data.installedDigest) ledger.integrityLost('the table was changed while the daemon was not running', startedAt);
      } else if (digest !== null) {
        ledger.integrityLost('a glassbox table was already loaded before this window began (its history is unknown)', startedAt);
      }
      const adopt = resumed && digest !== null && digest === ledger.data.installedDigest && ledger.data.policyKey === this.policyKey;
      if (adopt) {
        this.lastDigest = digest;
        await this.pushHosts(this.allResolvedUpdates());
        this.readKernel(listing);
      } else {
        await this.installTable();
      }
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.pollTimer?.cancel();
    this.pollTimer = null;
    if (this.checkTimer) clearTimeout(this.checkTimer);
    for (const t of this.dnsTimers.values()) t.cancel();
    this.dnsTimers.clear();
    this.resolver?.cancel();
    this.attributor?.stop();
    await this.monitor?.stop();
    await this.reader?.stop();
    await this.exclusive(async () => {
      const listing = await this.nft.listTable(this.table).catch(() => null);
      if (listing !== null) this.readKernel(listing);
    });
    await this.nft.close();
    this.ledger?.heartbeat(this.now());
    await this.save(true);
    this.log.info({}, 'egress observer stopped (the table stays loaded)');
  }

  /** Removes the table (uninstall, tests). Not part of stop(): counting must go on while the daemon restarts. */
  async removeTable(): Promise<void> {
    await new Nft(this.opts.nft).deleteTable(this.table);
  }

  /**
   * A judged view of the window now: counters read and the table checked at
   * this instant, then detail records given up to settleMs to catch up.
   */
  async snapshot(): Promise<EgressSnapshot> {
    if (!this.running || this.ledger === null || this.policyInfo === null) throw new Error('egress observer is not running');
    const deadline = Date.now() + (this.opts.settleMs ?? 1500);
    const counted = () => {
      const d = (this.ledger as Ledger).data;
      return d.base.localNew + d.base.forwardNew + d.lastKernel.localNew + d.lastKernel.forwardNew;
    };
    // Counters first (the kernel counts a flow before conntrack reports it), then the records:
    // parse everything conntrack has written so far, and wait while records are behind the
    // counters and still arriving (conntrack may still hold events it has not written yet).
    // Records of flows newer than the counter read can overtake them: then read the counters again.
    for (let round = 0; round < 3; round++) {
      await this.exclusive(() => this.check());
      let last = -1;
      let stillSince = Date.now();
      for (;;) {
        await this.reader?.drain();
        const recorded = this.ledger.data.recorded;
        if (recorded >= counted() || Date.now() >= deadline) break;
        if (recorded !== last) {
          last = recorded;
          stillSince = Date.now();
        } else if (Date.now() - stillSince > 300) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      if (this.ledger.data.recorded <= counted()) break;
    }
    const now = this.now();
    const downSince = this.reader?.downSinceTime ?? null;
    const openGap = downSince ? { start: downSince.toISOString(), end: now.toISOString(), reason: 'detail reader (conntrack) not running' } : null;
    this.fillMacs();
    return judge({ ledger: this.ledger.toJSON(), flows: this.ledger.flows(), policy: this.policyInfo, now, rulesetSha256: this.lastDigest, openGap });
  }

  // ------------------------------------------------------------ internals

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.serial.then(fn, fn);
    this.serial = next.catch(() => undefined);
    return next;
  }

  private async installTable(): Promise<void> {
    const ledger = this.ledger as Ledger;
    const script = buildTableScript({ table: this.table, mode: this.opts.mode, rules: this.policyInfo?.rules ?? null, resolved: this.resolvedByRule });
    await this.nft.load(script);
    const listing = await this.nft.listTable(this.table);
    const digest = listing === null ? null : rulesetDigest(listing, this.table);
    ledger.tableInstalled(digest, this.policyKey);
    this.lastDigest = digest;
    this.lastUndeclared = 0;
    this.noteHosts(this.allResolvedUpdates());
    this.dirty = true;
    this.log.info({ rulesetSha256: digest }, 'egress table installed');
  }

  private scheduleCheck(delayMs: number): void {
    if (this.checkTimer || !this.running) return;
    this.checkTimer = setTimeout(() => {
      this.checkTimer = null;
      void this.exclusive(() => this.check()).catch((e) => this.log.error({ err: String(e) }, 'egress integrity check failed'));
    }, delayMs);
  }

  private fastPollMs(): number {
    return this.opts.pollMs ?? 500;
  }

  /** Polls of 1 s or more (the idle back-off) are on the wake-up grid: they may come up to a grid step early. */
  private armPoll(delayMs: number): void {
    this.pollTimer?.cancel();
    this.pollDueAt = Date.now() + delayMs;
    this.pollTimer = grid.timeout(delayMs, () => {
      this.pollTimer = null;
      this.poll();
    });
  }

  /** Activity seen: poll at the fast rate again, starting now rather than after a long idle wait. */
  private wake(): void {
    this.activity = true;
    if (!this.running) return;
    const fast = this.fastPollMs();
    this.pollDelay = fast;
    // Cheap when already fast (called per conntrack record): only re-arm a poll due later than fast.
    if (this.pollTimer !== null && this.pollDueAt - Date.now() > fast) this.armPoll(fast);
  }

  private poll(): void {
    if (!this.running) return;
    this.activity = false;
    void this.exclusive(() => this.check())
      .then(() => this.save(false))
      .catch((e) => {
        this.stats.nftErrors++;
        this.activity = true;
        this.log.error({ err: String(e) }, 'egress poll failed');
      })
      .finally(() => {
        if (!this.running) return;
        const fast = this.fastPollMs();
        // Stay fast while anything happens, alerts wait to be sent, the detail reader is down (then
        // the counters are the only prompt source of undeclared-flow alerts), or in enforce mode
        // (refused flows reach no conntrack record and no `nft monitor` event: the poll of the
        // denied sets is what alerts on them).
        let pending = false;
        for (const st of this.alertState.values()) if (st.pending > 0) { pending = true; break; }
        const busy = this.activity || pending || this.opts.mode === 'enforce' || (this.reader?.downSinceTime ?? null) !== null;
        this.pollDelay = busy ? fast : Math.min(this.pollDelay * 2, Math.max(fast, IDLE_POLL_MAX_MS));
        if (this.pollTimer === null) this.armPoll(this.pollDelay);
      });
  }

  /** Integrity check + counter read: the heart of the poll. Runs under exclusive(). */
  private async check(): Promise<void> {
    const ledger = this.ledger as Ledger;
    const now = this.now();
    const listing = await this.nft.listTable(this.table);
    if (listing === null) {
      ledger.integrityLost('the glassbox table was deleted', now);
      this.log.warn({}, 'egress table deleted by someone else; reinstalling');
      await this.installTable();
      return;
    }
    const digest = rulesetDigest(listing, this.table);
    if (digest !== ledger.data.installedDigest) {
      ledger.integrityLost(`the glassbox table was changed (digest ${digest?.slice(0, 12)} instead of ${ledger.data.installedDigest?.slice(0, 12)})`, now);
      this.log.warn({ digest }, 'egress table changed by someone else; reinstalling');
      this.readKernel(listing);
      await this.installTable();
      return;
    }
    const intruders = this.hostIntruders(listing, now.getTime());
    if (intruders.length > 0) {
      ledger.integrityLost(`addresses the daemon never resolved were added to host sets: ${intruders.slice(0, 5).join(', ')}`, now);
      this.readKernel(listing);
      await this.installTable();
      return;
    }
    this.readKernel(listing);
    ledger.heartbeat(now);
  }

  private readKernel(listing: unknown): void {
    const ledger = this.ledger as Ledger;
    const counters = readCounters(listing, this.table);
    if (counters === null) return;
    const now = this.now();
    const before = kernelStateKey(ledger.data);
    ledger.kernelCounters(totalsFromKernel(counters, this.policyInfo?.rules ?? null), readUndeclaredUids(listing, this.table), now);
    for (const [ip, mac] of readForwardSources(listing, this.table)) {
      if (this.macs.size < 4096 || this.macs.has(ip)) this.macs.set(ip, mac);
    }
    if (this.opts.mode === 'enforce') {
      const grown = ledger.recordDenied(readDenied(listing, this.table), now, this.macs);
      for (const f of grown) this.alert(f, f.count, 'denied-set', now.toISOString());
    }
    const undeclared = counters.localUndeclared + counters.forwardUndeclared;
    // The undeclared counter grew and no detail event explained it within a second: alert from the counter.
    if (undeclared > this.lastUndeclared && this.opts.mode !== 'enforce' && Date.now() - this.lastUndeclaredEventMs > 1000) {
      this.alertFromCounter(undeclared - this.lastUndeclared, now);
    }
    this.lastUndeclared = undeclared;
    this.flushAlerts();
    // A real change (counters, denied flows, integrity) makes the ledger dirty and keeps the poll fast;
    // the heartbeat alone is saved at most every HEARTBEAT_SAVE_MS.
    if (kernelStateKey(ledger.data) !== before) {
      this.dirty = true;
      this.activity = true;
    }
  }

  private hostIntruders(listing: unknown, nowMs: number): string[] {
    const rules = this.policyInfo?.rules;
    if (!rules) return [];
    const out: string[] = [];
    for (const [set, addrs] of readHostSets(listing, this.table, rules)) {
      const known = this.hostAddresses.get(set);
      for (const a of addrs) {
        const until = known?.get(a);
        // Elements the daemon added may outlive its record by a second of rounding.
        if (until === undefined || until + 2000 < nowMs) out.push(`${set}:${a}`);
      }
    }
    return out;
  }

  private onEvent(ev: ConntrackEvent): void {
    const ledger = this.ledger;
    if (ledger === null) return;
    const mark = decodeMark(ev.mark);
    if (mark === null) return;
    const srcMac = mark.direction === 'forwarded' ? (this.macs.get(ev.src) ?? null) : null;
    const flow = ledger.recordEvent(ev, mark, this.policyInfo?.rules ?? null, { srcMac });
    this.dirty = true;
    this.wake();
    if (mark.ruleIndex === null) {
      this.alert(flow, 1, 'conntrack', new Date(ev.at).toISOString());
    }
    if (mark.direction === 'local' && ev.sport !== null && this.attributor) {
      this.attributor.request({
        proto: ev.proto,
        family: ev.family,
        src: ev.src,
        sport: ev.sport,
        done: (p) => {
          ledger.attachProcess(flow, p);
          this.dirty = true;
        },
      });
    }
  }

  private alert(flow: FlowEntry, count: number, source: UndeclaredAlert['source'], at: string): void {
    if (!this.opts.onUndeclared) return;
    if (source === 'conntrack') this.lastUndeclaredEventMs = Date.now();
    const key = `${flow.direction}|${flow.proto}|${flow.src}|${flow.dst}|${flow.dport}`;
    let st = this.alertState.get(key);
    if (st === undefined) {
      if (this.alertState.size >= 4096) return;
      st = { last: 0, pending: 0, firstAt: at, flow, source };
      this.alertState.set(key, st);
    }
    if (st.pending === 0) st.firstAt = at;
    st.pending += count;
    st.flow = flow;
    st.source = source;
    this.flushAlert(st);
  }

  /** Sends a destination's pending alert when its second has passed and the global rate allows. */
  private flushAlert(st: AlertState): void {
    const cb = this.opts.onUndeclared;
    if (!cb || st.pending === 0) return;
    const nowMs = Date.now();
    const limit = this.opts.alertsPerSecond ?? 10;
    if (nowMs - this.alertWindow.start >= 1000) this.alertWindow = { start: nowMs, sent: 0 };
    if (nowMs - st.last < 1000 || this.alertWindow.sent >= limit) return;
    this.alertWindow.sent++;
    const f = st.flow;
    const alert: UndeclaredAlert = {
      at: new Date(nowMs).toISOString(),
      direction: f.direction,
      proto: f.proto,
      src: f.src,
      dst: f.dst,
      dport: f.dport,
      uid: f.uids[f.uids.length - 1] ?? null,
      srcMac: f.srcMac,
      count: st.pending,
      firstFlowAt: st.firstAt,
      source: st.source,
    };
    st.last = nowMs;
    st.pending = 0;
    try {
      cb(alert);
    } catch (e) {
      this.log.error({ err: String(e) }, 'undeclared-flow alert callback failed');
    }
  }

  private flushAlerts(): void {
    for (const st of this.alertState.values()) this.flushAlert(st);
  }

  private alertFromCounter(n: number, now: Date): void {
    const cb = this.opts.onUndeclared;
    if (!cb) return;
    try {
      cb({ at: now.toISOString(), direction: 'local', proto: 'unknown', src: '', dst: '', dport: null, uid: null, srcMac: null, count: n, firstFlowAt: now.toISOString(), source: 'counter' });
    } catch (e) {
      this.log.error({ err: String(e) }, 'undeclared-flow alert callback failed');
    }
  }

  private fillMacs(): void {
    // Forwarded flows recorded before the poll saw their source's MAC get it now.
    const ledger = this.ledger;
    if (!ledger) return;
    for (const f of ledger.flows()) {
      if (f.direction === 'forwarded' && f.srcMac === null) {
        const mac = this.macs.get(f.src);
        if (mac) {
          ledger.setMac(f, mac);
          this.dirty = true;
        }
      }
    }
  }

  // ------------------------------------------------------------ DNS

  private hostRules(): Array<{ index: number; host: string }> {
    const rules = this.policyInfo?.rules ?? [];
    const out: Array<{ index: number; host: string }> = [];
    rules.forEach((r, index) => {
      if (r.host !== undefined) out.push({ index, host: r.host });
    });
    return out;
  }

  private async resolveAll(): Promise<void> {
    const hosts = [...new Set(this.hostRules().map((h) => h.host))];
    await Promise.all(hosts.map((h) => this.resolveHost(h, false)));
  }

  /** Resolves one name, records its addresses for every rule naming it, and schedules the next refresh. */
  private async resolveHost(host: string, push: boolean): Promise<void> {
    if (!this.resolver) return;
    const res = await this.resolver.resolve(host);
    if (res.error !== null) {
      this.stats.dnsErrors++;
      this.log.warn({ host, error: res.error }, 'declared host did not resolve');
    }
    const updates: HostElementUpdate[] = [];
    for (const { index, host: h } of this.hostRules()) {
      if (h !== host) continue;
      this.resolvedByRule.set(index, [...res.addresses]);
      for (const a of res.addresses) updates.push({ ruleIndex: index, address: a });
    }
    if (push && updates.length > 0) {
      await this.exclusive(() => this.pushHosts(updates)).catch((e) => this.log.error({ err: String(e) }, 'host set refresh failed'));
    } else {
      this.noteHosts(updates);
    }
    this.dnsTimers.get(host)?.cancel();
    // On the wake-up grid: up to one grid step (≤ 60 s) before refreshSeconds, never after.
    const t = grid.timeout(
      res.refreshSeconds * 1000,
      () => {
        this.dnsTimers.delete(host);
        if (this.running || !push) void this.resolveHost(host, true);
      },
      { unref: true },
    );
    this.dnsTimers.set(host, t);
  }

  private allResolvedUpdates(): HostElementUpdate[] {
    const out: HostElementUpdate[] = [];
    for (const [ruleIndex, addrs] of this.resolvedByRule) for (const address of addrs) out.push({ ruleIndex, address });
    return out;
  }

  private noteHosts(updates: readonly HostElementUpdate[]): void {
    const nowMs = Date.now();
    for (const u of updates) {
      const set = ruleSetName(u.ruleIndex, u.address.family);
      const m = this.hostAddresses.get(set) ?? new Map<string, number>();
      m.set(u.address.address, nowMs + u.address.timeoutSeconds * 1000);
      this.hostAddresses.set(set, m);
    }
  }

  private async pushHosts(updates: readonly HostElementUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    this.noteHosts(updates);
    await this.nft.load(hostRefreshScript(this.table, updates));
  }

  // ------------------------------------------------------------ persistence

  private async save(force: boolean): Promise<void> {
    if (!this.ledger) return;
    const nowMs = Date.now();
    if (!force) {
      const since = nowMs - this.lastSave;
      // A real change is saved within 2 s; a heartbeat alone at most every HEARTBEAT_SAVE_MS
      // (so a gap after a crash starts up to that much before the daemon actually stopped).
      if (this.dirty ? since < 2000 : since < HEARTBEAT_SAVE_MS) return;
    }
    this.dirty = false;
    this.lastSave = nowMs;
    const data: LedgerData = this.ledger.toJSON();
    await this.store.save(data).catch((e) => this.log.error({ err: String(e) }, 'egress ledger not saved'));
  }
}

/** What a counter read can change in the ledger (compared before/after to tell a real change from a mere heartbeat). */
function kernelStateKey(d: LedgerData): string {
  return JSON.stringify([d.lastKernel, d.base, d.undeclaredByUidLast, d.denied, d.recorded, d.countersWentBackwards, d.integrityEvents.length, d.integrityOmitted]);
}

function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

export function policyInfoOf(mode: EgressMode, installed: InstalledPolicy | null): PolicyInfo {
  if (installed === null) return { mode, rules: null, manifestSha256: null, firmwareVersion: null, securityVersion: null };
  return {
    mode,
    rules: installed.manifest.egress,
    manifestSha256: sha256(installed.manifestBytes),
    firmwareVersion: installed.manifest.version,
    securityVersion: installed.manifest.securityVersion,
  };
}
