/**
 * The checklist `provision import` prints once the identity is written:
 * identity, trust policy fingerprint, broker, clock, installed firmware
 * verifies, egress policy present. Gathered from what is now on disk
 * (edge), judged by the status checks (pure), printed one line each.
 */
import { checkBrokerFacts, checkClock, checkEgressPolicy, checkFirmware, checkIdentity, checkTrust } from '../status/checks.js';
import { clockSync } from '../status/clock.js';
import { readDeviceFacts, readIdentityFacts } from '../status/device.js';
import type { StatusCheck } from '../status/types.js';
import type { ImportResult } from './import.js';

export async function importChecklist(stateDir: string, result: ImportResult, now: Date): Promise<StatusCheck[]> {
  const { identity, error } = await readIdentityFacts(stateDir);
  const device = await readDeviceFacts(stateDir, { verify: true, now });
  const b = result.broker;
  const broker = checkBrokerFacts({
    url: b?.url ?? null,
    connected: b === null ? null : true,
    source: 'provision-check',
    since: null,
    lastError: null,
    queue: null,
    detail: b === null ? null : `MQTT ${b.protocolVersion === 5 ? '5' : '3.1.1'} over ${b.tlsVersion ?? 'TLS'}, retained status read back in ${b.roundTripMs} ms`,
  });
  const clock = checkClock({ now: now.toISOString(), trustedTime: device.state?.trustedTime ?? null, sync: await clockSync() });
  return [
    checkIdentity(identity, now, error),
    checkTrust(device.trust),
    b === null
      ? { ...broker, state: 'fail', detail: 'not checked (--skip-broker-check)', fix: 'run `glassbox provision import` again without --skip-broker-check once the broker is reachable' }
      : broker,
    clock.state === 'ok' ? { ...clock, detail: `${clock.detail}; inside the certificate's validity${b ? "; the broker's certificate is valid at this time" : ''}` } : clock,
    checkFirmware(device.firmware),
    checkEgressPolicy(device.firmware),
  ];
}

const MARK: Record<StatusCheck['state'], string> = { ok: '[ ok ]', warn: '[warn]', fail: '[FAIL]' };

/** Text lines: one per check, the fix indented under anything not ok. */
export function renderChecks(checks: readonly StatusCheck[]): string[] {
  const width = Math.max(...checks.map((c) => c.label.length));
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${MARK[c.state]} ${c.label.padEnd(width)}  ${c.detail}`);
    if (c.state !== 'ok' && c.fix) lines.push(`       ${' '.repeat(width)}  fix: ${c.fix}`);
  }
  return lines;
}
