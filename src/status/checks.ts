/**
 * The checks a technician reads, from plain facts. Pure: the time is in the
 * facts; nothing is read here.
 */
import type {
  BrokerFacts,
  CheckState,
  ClockFacts,
  EgressFacts,
  FirmwareFacts,
  IdentityFacts,
  StatusCheck,
  StatusFacts,
  StatusView,
  TrustFacts,
} from './types.js';
import type { HealthPayload } from '../telemetry/payloads.js';

const DAY = 86_400_000;
/** A certificate closer than this to its end is flagged (warn), so ops renews it in time. */
export const CERT_RENEW_WARN_DAYS = 30;
/** A health sample older than this many intervals (or 10 min when unknown) is stale. */
export const HEALTH_STALE_MS = 10 * 60_000;

const short = (hex: string) => `${hex.slice(0, 16)}…`;

/** 2048 → "2 kB", 33554432 → "33.6 MB" (decimal units, as disks are sold). */
export function formatBytes(n: number): string {
  if (n >= 1e12) return `${(n / 1e12).toFixed(1)} TB`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
  return `${n} B`;
}

export function checkIdentity(id: IdentityFacts | null, now: Date, error: string | null = null): StatusCheck {
  const base = { id: 'identity', label: 'Identity' } as const;
  if (id === null) {
    return { ...base, state: 'fail', detail: error ?? 'not provisioned: no identity key on this recorder', fix: 'run `glassbox provision init` (see docs/provisioning.md)' };
  }
  if (id.keyFile === null) return { ...base, state: 'fail', detail: `identity key of ${id.deviceId} is missing`, fix: 'provision again: `glassbox provision init --force`' };
  if ((id.keyFile.mode & 0o077) !== 0) {
    return {
      ...base,
      state: 'fail',
      detail: `identity key ${id.keyFile.path} is readable by others (mode ${(id.keyFile.mode & 0o777).toString(8).padStart(4, '0')})`,
      fix: `chmod 0600 ${id.keyFile.path}`,
    };
  }
  if (id.expectedOwner && (id.keyFile.uid !== id.expectedOwner.uid || id.keyFile.gid !== id.expectedOwner.gid)) {
    return {
      ...base,
      state: 'fail',
      detail: `identity key is owned by ${id.keyFile.uid}:${id.keyFile.gid}, not by the daemon's account ${id.expectedOwner.uid}:${id.expectedOwner.gid}`,
      fix: `chown ${id.expectedOwner.uid}:${id.expectedOwner.gid} ${id.keyFile.path}`,
    };
  }
  const c = id.certificate;
  if (c === null) {
    return { ...base, state: 'fail', detail: `${id.deviceId}: key made (sha256 ${short(id.spkiSha256)}), no certificate imported yet`, fix: 'take identity/device.csr to ops, then `glassbox provision import`' };
  }
  const until = new Date(c.notAfter);
  const from = new Date(c.notBefore);
  const who = `${id.deviceId} (${id.hardware}), certificate ${short(c.sha256)} from ${c.issuer}`;
  if (now < from) return { ...base, state: 'fail', detail: `${who} is not valid before ${c.notBefore}`, fix: "this recorder's clock is behind: set it (NTP)" };
  if (now > until) return { ...base, state: 'fail', detail: `${who} expired ${c.notAfter}`, fix: "ask ops for a new certificate from this recorder's CSR, then `provision import --force`" };
  const days = Math.floor((until.getTime() - now.getTime()) / DAY);
  if (days < CERT_RENEW_WARN_DAYS) {
    return { ...base, state: 'warn', detail: `${who} expires in ${days} days (${c.notAfter})`, fix: "ask ops to renew it now (`ca issue-device --allow-reissue` from this recorder's CSR)" };
  }
  return { ...base, state: 'ok', detail: `${who}, valid until ${c.notAfter.slice(0, 10)}`, fix: null };
}

export function checkTrust(trust: TrustFacts | null): StatusCheck {
  const base = { id: 'trust', label: 'Trust policy' } as const;
  if (trust === null) return { ...base, state: 'fail', detail: 'no trust policy installed', fix: 'provision with `glassbox provision import … --trust trust-policy.json`' };
  return {
    ...base,
    state: 'ok',
    detail: `sha256 ${trust.sha256} (${trust.roots.length} root${trust.roots.length === 1 ? '' : 's'}, threshold ${trust.threshold})`,
    fix: null,
  };
}

export function checkBrokerFacts(b: BrokerFacts | null): StatusCheck {
  const base = { id: 'broker', label: 'Broker' } as const;
  if (b === null || b.url === null) return { ...base, state: 'fail', detail: 'no broker configured', fix: 'provision with `glassbox provision import … --broker mqtts://HOST:8883`' };
  const queue = b.queue ? `; queue ${b.queue.depth} message${b.queue.depth === 1 ? '' : 's'} (${formatBytes(b.queue.bytes)} of ${formatBytes(b.queue.maxBytes)})` : '';
  const dropped = b.queue && b.queue.droppedEvents + b.queue.droppedHealth > 0 ? `; dropped ${b.queue.droppedEvents} events, ${b.queue.droppedHealth} health samples` : '';
  if (b.connected === true) {
    const state: CheckState = dropped ? 'warn' : 'ok';
    return {
      ...base,
      state,
      detail: `connected to ${b.url}${b.since ? ` since ${b.since}` : ''}${b.detail ? ` (${b.detail})` : ''}${queue}${dropped}`,
      fix: dropped ? 'messages were dropped while offline (queue full): check why the broker was unreachable for so long' : null,
    };
  }
  if (b.connected === false) {
    return {
      ...base,
      state: 'fail',
      detail: `not connected to ${b.url}${b.lastError ? `: ${b.lastError}` : ''}${queue}${dropped}`,
      fix: 'check the network path to the broker; `glassbox provision import` re-runs the broker check and names the cause',
    };
  }
  return { ...base, state: 'warn', detail: `${b.url}: connection unknown (the daemon is not running)`, fix: 'start the daemon: systemctl start glassbox' };
}

export function checkClock(c: ClockFacts): StatusCheck {
  const base = { id: 'clock', label: 'Clock' } as const;
  const now = new Date(c.now);
  if (c.trustedTime !== null && now < new Date(c.trustedTime)) {
    return {
      ...base,
      state: 'fail',
      detail: `reads ${c.now}, before the latest trustworthy time recorded (${c.trustedTime})`,
      fix: 'set the clock (enable NTP, or `timedatectl set-time` in UTC)',
    };
  }
  if (c.sync === 'unsynchronized') return { ...base, state: 'warn', detail: `reads ${c.now}, not synchronised`, fix: 'enable NTP (timedatectl set-ntp true) and check the time server is reachable' };
  return { ...base, state: 'ok', detail: `reads ${c.now}${c.sync === 'synchronized' ? ', synchronised' : ''}`, fix: null };
}

export function checkFirmware(f: FirmwareFacts | null): StatusCheck {
  const base = { id: 'firmware', label: 'Firmware' } as const;
  if (f === null || f.error !== null) {
    return { ...base, state: 'fail', detail: f?.error ?? 'device state not readable', fix: 'check the state directory; `glassbox status --json` shows the error in full' };
  }
  if (f.installed === null) return { ...base, state: 'warn', detail: 'no firmware installed through glassbox yet', fix: 'install a signed bundle: `glassbox install BUNDLE`' };
  const name = `${f.installed.product ?? 'firmware'} ${f.installed.version} (securityVersion ${f.installed.securityVersion}, slot ${f.activeSlot ?? '?'})`;
  if (f.verification === null) return { ...base, state: 'warn', detail: `${name}: not re-verified`, fix: 'run `glassbox status --verify` to re-check the installed files' };
  if (!f.verification.ok) {
    return { ...base, state: 'fail', detail: `${name} does not verify: ${f.verification.code ?? ''} ${f.verification.reason}`.trim(), fix: 'reinstall a signed bundle, or roll back: `glassbox rollback`' };
  }
  const signers = f.installed.signers.length;
  const how = f.verification.deep ? 'verifies now' : f.verification.reason;
  return { ...base, state: 'ok', detail: `${name}: ${how} (${signers} signer${signers === 1 ? '' : 's'}, manifest ${short(f.installed.manifestSha256)})`, fix: null };
}

export function checkEgressPolicy(f: FirmwareFacts | null): StatusCheck {
  const base = { id: 'egress-policy', label: 'Egress policy' } as const;
  if (f === null || f.installed === null || f.egressRules === null) {
    return { ...base, state: 'warn', detail: 'no egress policy: it comes with the installed firmware manifest', fix: 'install a signed bundle; its manifest declares the allowed destinations' };
  }
  const n = f.egressRules.length;
  return { ...base, state: 'ok', detail: `${n} declared destination${n === 1 ? '' : 's'} (${f.egressRules.slice(0, 4).map((r) => r.id).join(', ')}${n > 4 ? ', …' : ''})`, fix: null };
}

export function checkHealth(h: HealthPayload | null, now: Date): StatusCheck {
  const base = { id: 'health', label: 'Health' } as const;
  if (h === null) return { ...base, state: 'warn', detail: 'no health sample yet (the daemon samples every 30 s by default)', fix: 'start the daemon: systemctl start glassbox' };
  const age = now.getTime() - new Date(h.at).getTime();
  const problems: string[] = [];
  for (const d of h.disks) {
    if (d.smart?.health === 'failed') problems.push(`disk ${d.path}: SMART failed`);
    if (d.usedPercent >= 95) problems.push(`disk ${d.path} ${d.usedPercent.toFixed(0)}% full`);
    if (d.error) problems.push(`disk ${d.path}: ${d.error}`);
  }
  if (h.memory && h.memory.usedPercent >= 95) problems.push(`memory ${h.memory.usedPercent.toFixed(0)}% used`);
  const hot = h.temperatures.filter((t) => t.celsius >= 85);
  for (const t of hot) problems.push(`${t.sensor} at ${t.celsius} °C`);
  const summary = [
    h.cpu ? `load ${h.cpu.load1.toFixed(2)}` : null,
    h.memory ? `memory ${h.memory.usedPercent.toFixed(0)}%` : null,
    ...h.disks.map((d) => `${d.path} ${d.usedPercent.toFixed(0)}%`),
  ]
    .filter((s): s is string => s !== null)
    .join(', ');
  if (age > HEALTH_STALE_MS) return { ...base, state: 'warn', detail: `last sample ${h.at} is stale (${Math.round(age / 60_000)} min old): ${summary}`, fix: 'check that the daemon is running: systemctl status glassbox' };
  if (problems.length > 0) return { ...base, state: 'fail', detail: `${problems.join('; ')} (sample ${h.at})`, fix: 'replace the failing disk / free space / check cooling' };
  return { ...base, state: 'ok', detail: `${summary} (sample ${h.at})`, fix: null };
}

export function checkEgress(e: EgressFacts | null): StatusCheck {
  const base = { id: 'egress', label: 'Egress attestation' } as const;
  if (e === null) return { ...base, state: 'warn', detail: 'no egress verdict (the observer is not running)', fix: 'start the daemon: systemctl start glassbox' };
  if (e.verdict === 'undeclared-egress') {
    const first = e.undeclaredFlows[0];
    return {
      ...base,
      state: 'fail',
      detail: `${e.undeclared} undeclared flow${e.undeclared === 1 ? '' : 's'}${first ? `, e.g. ${first.proto} ${first.src} → ${first.dst}${first.dport === null ? '' : `:${first.dport}`} (${first.direction})` : ''}`,
      fix: 'find the device or process behind the flows (status page lists them); if legitimate, the next firmware manifest must declare it',
    };
  }
  if (e.verdict === 'incomplete') {
    return { ...base, state: 'warn', detail: `incomplete: ${e.reasons.join('; ') || 'the observation cannot vouch for the whole window'}`, fix: 'keep the daemon running; a new observation window starts clean at the next boot' };
  }
  return { ...base, state: 'ok', detail: `clean since ${e.windowStart ?? '?'}${e.flowsCounted === null ? '' : ` (${e.flowsCounted} flows, all declared)`}`, fix: null };
}

const ORDER: Record<CheckState, number> = { ok: 0, warn: 1, fail: 2 };

export function worst(checks: readonly StatusCheck[]): CheckState {
  return checks.reduce<CheckState>((acc, c) => (ORDER[c.state] > ORDER[acc] ? c.state : acc), 'ok');
}

/** The full technician's view: every check, in reading order. */
export function composeStatus(facts: StatusFacts): StatusView {
  const now = new Date(facts.generatedAt);
  const checks: StatusCheck[] = [
    checkIdentity(facts.identity, now, facts.identityError),
    checkTrust(facts.trust),
    checkFirmware(facts.firmware),
    checkEgressPolicy(facts.firmware),
    checkBrokerFacts(facts.broker),
    checkClock(facts.clock),
    checkHealth(facts.health, now),
    checkEgress(facts.egress),
  ];
  return { ...facts, checks, overall: worst(checks) };
}
