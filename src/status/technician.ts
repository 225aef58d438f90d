/**
 * `glassbox status` for technicians (edge + text): ask the running daemon
 * for its view (`/v1/status` on its local API); when it does not answer,
 * build the view from the recorder's files and the daemon's last status
 * file, and say so.
 */
import { apiGet, type ApiTarget } from '../api/client.js';
import { readConfigFile } from '../config/load.js';
import { readDaemonStatus } from '../daemon/status-file.js';
import { describeError } from '../errors.js';
import { composeStatus } from './checks.js';
import { brokerFromDaemonStatus, gatherStatusFacts } from './gather.js';
import type { StatusCheck, StatusView } from './types.js';

export interface TechnicianOptions {
  readonly stateDir: string;
  readonly configPath: string;
  readonly explicitConfig: boolean;
  /** Where the daemon's API is; null = from the configuration (api.listen). */
  readonly api: ApiTarget | null;
  readonly now: Date;
  readonly version: string;
  /** Re-verify the installed firmware here (reads all of it). */
  readonly verify: boolean;
}

export interface TechnicianView extends StatusView {
  /** Where the live part came from. */
  readonly source: 'daemon' | 'files';
  /** Why the daemon was not asked or did not answer (source = files). */
  readonly daemonUnavailable: string | null;
  readonly statusPage: string | null;
}

function objectAt(v: unknown, key: string): Record<string, unknown> | null {
  if (typeof v !== 'object' || v === null) return null;
  const x = (v as Record<string, unknown>)[key];
  return typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : null;
}

export async function technicianView(o: TechnicianOptions): Promise<TechnicianView> {
  let config: unknown;
  let configNote: string | null = null;
  try {
    config = await readConfigFile(o.configPath, o.explicitConfig);
  } catch (err) {
    configNote = `configuration ${o.configPath} unreadable: ${describeError(err)}`;
  }
  const brokerUrl = objectAt(config, 'mqtt')?.['url'];
  const listen = objectAt(config, 'api')?.['listen'];
  const apiUrl = typeof listen === 'string' ? `http://${listen}` : 'http://127.0.0.1:8780';
  const target = o.api ?? { url: apiUrl };
  const statusPage = target.url !== undefined ? new URL('/', target.url).href : null;

  let unavailable: string;
  try {
    const reply = await apiGet(target, '/v1/status', { timeoutMs: 3000, maxBytes: 4 * 1024 * 1024 });
    if (reply.status === 200) {
      const view = JSON.parse(reply.body.toString('utf8')) as StatusView;
      if (Array.isArray(view.checks) && typeof view.overall === 'string' && view.stateDir !== o.stateDir) {
        unavailable = `the daemon at ${statusPage ?? 'its socket'} serves another state directory (${String(view.stateDir)})`;
      } else if (Array.isArray(view.checks) && typeof view.overall === 'string') {
        // The firmware re-check asked for here replaces the daemon's install-time record.
        if (!o.verify) return { ...view, source: 'daemon', daemonUnavailable: null, statusPage };
        const local = await gatherStatusFacts({ stateDir: o.stateDir, daemonVersion: o.version, now: o.now, verify: true, live: null });
        return { ...composeStatus({ ...view, firmware: local.firmware }), source: 'daemon', daemonUnavailable: null, statusPage };
      }
      unavailable = 'the daemon answered /v1/status with something else than a status view';
    } else {
      unavailable = reply.status === 401 || reply.status === 429 ? 'the daemon API asks for the status page password (use --socket with its Unix socket)' : `the daemon API answered HTTP ${reply.status}`;
    }
  } catch (err) {
    unavailable = `the daemon API does not answer (${describeError(err)})`;
  }

  const last = await readDaemonStatus(o.stateDir);
  const facts = await gatherStatusFacts({
    stateDir: o.stateDir,
    daemonVersion: o.version,
    now: o.now,
    verify: o.verify,
    configuredBroker: typeof brokerUrl === 'string' ? brokerUrl : null,
    live:
      last === null
        ? null
        : {
            broker: last.running ? brokerFromDaemonStatus(last, typeof brokerUrl === 'string' ? brokerUrl : null) : null,
            health: null,
            egress: null,
            running: last.running,
            detail: `last daemon status ${last.updatedAt}${last.lastHealthAt ? `, last health sample ${last.lastHealthAt}` : ''}`,
          },
  });
  const view = composeStatus({ ...facts, broker: facts.broker ?? (typeof brokerUrl === 'string' ? { url: brokerUrl, connected: null, source: 'config', since: null, lastError: null, queue: null, detail: null } : null) });
  return { ...view, source: 'files', daemonUnavailable: configNote ? `${unavailable}; ${configNote}` : unavailable, statusPage };
}

const MARK: Record<StatusCheck['state'], string> = { ok: '[ ok ]', warn: '[warn]', fail: '[FAIL]' };

/** The human form: the checks, then the details a technician reads off to ops. */
export function renderTechnician(v: TechnicianView): string {
  const lines: string[] = [];
  const id = v.identity;
  lines.push('');
  lines.push(`Recorder ${id ? `${id.deviceId} (${id.hardware})` : '(not provisioned)'}: ${v.overall === 'ok' ? 'all checks pass' : v.overall === 'warn' ? 'needs attention' : 'FAILING'}`);
  const width = Math.max(...v.checks.map((c) => c.label.length));
  for (const c of v.checks) {
    lines.push(`${MARK[c.state]} ${c.label.padEnd(width)}  ${c.detail}`);
    if (c.state !== 'ok' && c.fix) lines.push(`       ${' '.repeat(width)}  fix: ${c.fix}`);
  }
  const fw = v.firmware?.installed;
  if (fw) {
    lines.push(`Firmware: ${fw.product ?? ''} ${fw.version}, securityVersion ${fw.securityVersion}, manifest ${fw.manifestSha256}`);
    lines.push(`  signed by ${fw.signers.map((s) => s.subject ?? '?').join('; ') || 'nobody'}`);
    if (fw.sourceRepository) lines.push(`  built from ${fw.sourceRepository} @ ${fw.sourceCommit ?? '?'} by ${fw.builder ?? '?'}`);
  }
  const b = v.broker;
  if (b?.queue) lines.push(`Queue: ${b.queue.depth} messages waiting (${b.queue.bytes} bytes of ${b.queue.maxBytes}); dropped ${b.queue.droppedEvents} events, ${b.queue.droppedHealth} health samples`);
  const e = v.egress;
  if (e && e.undeclaredFlows.length > 0) {
    lines.push(`Undeclared flows (${e.undeclared}):`);
    for (const f of e.undeclaredFlows.slice(0, 10)) lines.push(`  ${f.direction} ${f.proto} ${f.src} -> ${f.dst}${f.dport === null ? '' : `:${f.dport}`} x${f.count} last ${f.lastSeen}${f.process ? ` (${f.process})` : ''}`);
  }
  if (v.source === 'files') lines.push(`Live data: none (${v.daemonUnavailable ?? 'daemon not asked'}); shown from the recorder's files.`);
  if (v.statusPage) lines.push(`Status page: ${v.statusPage}`);
  return lines.join('\n');
}
