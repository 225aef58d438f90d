/**
 * The daemon's plug-in for egress: EgressService + the local API +
 * attest(), wired to the daemon's context (src/daemon/services.ts loads
 * this module and calls createService).
 *
 *   - undeclared flows → ctx.publishEvent('egress.alert', alert) (…/events, QoS 1, queued)
 *   - MQTT command `attest` {nonce} → the signed envelope (same as GET /v1/attestation)
 *   - policy: the installed, verified manifest of the install state's active slot
 *   - identity: the device key and certificate chain (mqtt.key / mqtt.cert)
 *
 * On when `egress.enabled` is true after `glassbox daemon` resolved "auto"
 * (src/egress/enablement.ts, docs/config.md). When the observer cannot run
 * (CAP_NET_ADMIN neither held by the daemon nor by nft and conntrack
 * themselves, no nft or conntrack, its start failed) the API and the
 * `attest` command still answer, with a signed `incomplete` document saying
 * why; when the API cannot listen, observation and MQTT attest go on.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { DaemonContext, DaemonService } from '../daemon/types.js';
import { StateDir } from '../install/state-store.js';
import { DirectorySlotStore } from '../install/slot-dir.js';
import { parseManifest } from '../manifest/parse.js';
import { FileKeySigner } from '../pki/signer.js';
import type { Attest } from '../attestation/attester.js';
import { isValidNonce } from '../attestation/statement.js';
import { ApiServer, type Route } from '../api/server.js';
import { egressRoutes } from '../api/routes.js';
import type { StatusPageSources } from '../statuspage/daemon-routes.js';
import { EgressService, policyInfoOf, type InstalledPolicy } from './service.js';
import { readBootId } from './ledger-store.js';
import { unavailableSnapshot } from './ledger.js';
import type { EgressSnapshot } from './types.js';

export const DEFAULT_API_SOCKET = '/run/glassbox/api.sock';

/** The installed manifest of the active slot, or null when none is installed. */
export async function activeManifest(stateDir: string): Promise<InstalledPolicy | null> {
  const dir = new StateDir(stateDir);
  if (!(await dir.isInitialised())) return null;
  const { state } = await dir.read();
  const active = state.active === null ? null : state.slots[state.active];
  if (!active || active.ref === null) return null;
  const bytes = await new DirectorySlotStore(stateDir).open(active.ref).readManifest();
  return { manifestBytes: bytes, manifest: parseManifest(bytes) };
}

/** The paths src/statuspage/routes.ts serves (checked when its module loads). */
const STATUS_PAGE_PATHS = ['/', '/v1/status'] as const;

/**
 * The technician's status page, loaded on its first request: its module
 * gathers device facts with the install re-verification (tar) and the
 * certificate library (@peculiar/x509), which an idle daemon that nobody
 * looks at should not keep resident (docs/daemon.md, "Footprint").
 */
function lazyStatusPageRoutes(ctx: DaemonContext, sources: StatusPageSources): Route[] {
  let loaded: Promise<Route[]> | null = null;
  const routes = () =>
    (loaded ??= import('../statuspage/daemon-routes.js').then((m) => {
      const r = m.statusPageDaemonRoutes(ctx, sources);
      const paths = r.map((x) => x.path).sort();
      if (JSON.stringify(paths) !== JSON.stringify([...STATUS_PAGE_PATHS].sort())) {
        throw new Error(`status page serves ${paths.join(', ')}, not the paths declared here (${STATUS_PAGE_PATHS.join(', ')}): update STATUS_PAGE_PATHS`);
      }
      return r;
    }));
  return STATUS_PAGE_PATHS.map((path) => ({
    path,
    handle: async (req) => {
      const route = (await routes()).find((r) => r.path === path);
      if (route === undefined) throw new Error(`status page route ${path} missing`);
      return route.handle(req);
    },
  }));
}

export function createService(ctx: DaemonContext): DaemonService | null {
  const settings = ctx.config.egress;
  // "auto" is resolved to true or false by `glassbox daemon` (src/egress/enablement.ts); anything but true is off.
  if (settings.enabled !== true) return null;
  const log = ctx.log.child({ module: 'egress' });
  const stateDir = ctx.config.stateDir;
  const egress = new EgressService({
    stateDir,
    mode: settings.mode,
    policy: () => activeManifest(stateDir),
    runtimeDir: settings.runtimeDir,
    conntrack: { bufferBytes: settings.conntrackBufferBytes, realtimePriority: settings.conntrackRealtimePriority },
    pollMs: settings.pollMs,
    flowsCap: settings.flowsCap,
    dns: settings.dnsServers === null ? {} : { servers: settings.dnsServers },
    onUndeclared: (alert) => void ctx.publishEvent('egress.alert', { ...alert }).catch((e: unknown) => log.error({ err: String(e) }, 'egress alert not queued')),
    log,
    now: () => ctx.now(),
  });
  let api: ApiServer | null = null;
  let attest: Attest | null = null;
  let running = false;
  let notRunning: string | null = null;
  return {
    name: 'egress',
    async start(signal: AbortSignal) {
      let snapshot: () => Promise<EgressSnapshot>;
      try {
        await mkdir(settings.runtimeDir, { recursive: true, mode: 0o750 });
        await egress.start(signal);
        running = true;
        snapshot = () => egress.snapshot();
      } catch (e) {
        // The recorder can still be asked: its attestation says that nothing was observed, and why.
        notRunning = e instanceof Error ? e.message : String(e);
        log.error({ err: notRunning }, 'egress observer cannot run: attestations and status say incomplete');
        const since = ctx.now();
        const bootId = await readBootId().catch(() => 'unknown');
        const policy = policyInfoOf(settings.mode, await activeManifest(stateDir).catch(() => null));
        const reason = notRunning;
        snapshot = async () => unavailableSnapshot({ bootId, since, now: ctx.now(), policy, reason, flowsCap: settings.flowsCap });
      }
      const { cert, key } = ctx.config.mqtt;
      if (cert !== null && key !== null) {
        // The key and chain are read and checked now (a bad identity is logged at start); the
        // statement and envelope code, and the certificate library its device-id check uses, load on
        // the first attestation request. A device certificate without a usable CN fails every
        // request with SIGNER_INVALID, as it would have failed here.
        const signer = await FileKeySigner.fromFiles(key, cert);
        const snap = snapshot;
        let made: Promise<Attest> | null = null;
        const attester = () =>
          (made ??= import('../attestation/attester.js').then((m) => m.createAttester({ snapshot: snap, signer, hardware: ctx.config.hardware, now: () => ctx.now() })));
        attest = async (nonce) => (await attester())(nonce);
      } else log.warn({}, 'no device key and certificate (mqtt.key / mqtt.cert): attestations cannot be signed');
      if (settings.socket !== null) await mkdir(dirname(settings.socket), { recursive: true, mode: 0o750 }).catch(() => undefined);
      const server = new ApiServer({
        tcp: ctx.config.api.listen,
        socketPath: settings.socket,
        allowWildcard: settings.allowWildcard,
        routes: [
          ...egressRoutes({
            snapshot,
            attest,
            health: async () => ({ deviceId: ctx.deviceId, egress: running ? 'running' : `not running: ${notRunning}` }),
            observer: () => (running ? egress.readerStats() : { readerPid: null, notRunning }),
          }),
          // The technician's status page: `/` (HTML) and `/v1/status` (JSON), src/statuspage/.
          ...lazyStatusPageRoutes(ctx, { egress: snapshot }),
        ],
      });
      try {
        await server.start(signal);
        api = server;
        log.info({ tcp: server.tcpAddress, socket: settings.socket }, 'local API listening');
      } catch (e) {
        // Telemetry and egress observation go on; attestations are still served over MQTT.
        await server.stop().catch(() => undefined);
        log.error({ err: e instanceof Error ? e.message : String(e) }, 'local API not served');
      }
      ctx.commands.register('attest', async (args) => {
        const nonce = args['nonce'];
        if (!isValidNonce(nonce)) throw new Error('args.nonce must be 16–128 characters of [A-Za-z0-9_-]');
        if (attest === null) throw new Error('this device has no identity key to sign with');
        // The same envelope GET /v1/attestation serves: canonical JSON, parsed into the response's `result`.
        return JSON.parse((await attest(nonce)).toString('utf8')) as unknown;
      });
    },
    async stop() {
      await api?.stop();
      if (running) {
        await egress.stop();
        if (!settings.keepTableOnStop) {
          await egress.removeTable().then(
            () => log.info({}, 'egress table removed (egress.keepTableOnStop is false)'),
            (e: unknown) => log.warn({ err: String(e) }, 'egress table not removed'),
          );
        }
      }
    },
  };
}
