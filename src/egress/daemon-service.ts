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
 * Off unless the configuration enables it (config key `egress`, see
 * EgressSettings): the daemon's own tests must never load a table into the
 * host's namespace by accident.
 */
import type { DaemonContext, DaemonService } from '../daemon/types.js';
import { StateDir } from '../install/state-store.js';
import { DirectorySlotStore } from '../install/slot-dir.js';
import { parseManifest } from '../manifest/parse.js';
import { FileKeySigner } from '../pki/signer.js';
import { createAttester, type Attest } from '../attestation/attester.js';
import { isValidNonce } from '../attestation/statement.js';
import { ApiServer } from '../api/server.js';
import { egressRoutes } from '../api/routes.js';
import { statusPageDaemonRoutes } from '../statuspage/daemon-routes.js';
import { EgressService, type InstalledPolicy } from './service.js';
import type { EgressMode } from './ruleset.js';

/** The `egress` section the daemon configuration needs (to be added to src/config by its owner). */
export interface EgressSettings {
  readonly enabled: boolean;
  readonly mode?: EgressMode;
  /** API Unix socket; null = none. Default /run/glassbox/api.sock. */
  readonly socket?: string | null;
  readonly allowWildcard?: boolean;
  readonly conntrackBufferBytes?: number;
  readonly pollMs?: number;
  readonly dnsServers?: readonly string[];
  readonly flowsCap?: number;
}

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

export function createService(ctx: DaemonContext): DaemonService | null {
  const settings = (ctx.config as unknown as { egress?: EgressSettings }).egress;
  if (!settings?.enabled) return null;
  const log = ctx.log.child({ module: 'egress' });
  const egress = new EgressService({
    stateDir: ctx.config.stateDir,
    mode: settings.mode ?? 'observe',
    policy: () => activeManifest(ctx.config.stateDir),
    runtimeDir: '/run/glassbox/egress',
    conntrack: { bufferBytes: settings.conntrackBufferBytes },
    pollMs: settings.pollMs,
    flowsCap: settings.flowsCap,
    dns: { servers: settings.dnsServers },
    onUndeclared: (alert) => void ctx.publishEvent('egress.alert', { ...alert }).catch((e: unknown) => log.error({ err: String(e) }, 'egress alert not queued')),
    log,
    now: () => ctx.now(),
  });
  let api: ApiServer | null = null;
  let attest: Attest | null = null;
  return {
    name: 'egress',
    async start(signal: AbortSignal) {
      const { cert, key } = ctx.config.mqtt;
      if (cert !== null && key !== null) {
        const signer = await FileKeySigner.fromFiles(key, cert);
        attest = createAttester({ snapshot: () => egress.snapshot(), signer, hardware: ctx.config.hardware, now: () => ctx.now() });
      } else log.warn({}, 'no device key and certificate (mqtt.key / mqtt.cert): attestations cannot be signed');
      await egress.start(signal);
      api = new ApiServer({
        tcp: ctx.config.api.listen,
        socketPath: settings.socket === undefined ? DEFAULT_API_SOCKET : settings.socket,
        allowWildcard: settings.allowWildcard ?? false,
        routes: [
          ...egressRoutes({
            snapshot: () => egress.snapshot(),
            attest,
            health: async () => ({ deviceId: ctx.deviceId, egress: 'running' }),
            observer: () => egress.readerStats(),
          }),
          // The technician's status page: `/` (HTML) and `/v1/status` (JSON), src/statuspage/.
          ...statusPageDaemonRoutes(ctx, { egress: () => egress.snapshot() }),
        ],
      });
      await api.start(signal);
      ctx.commands.register('attest', async (args) => {
        const nonce = args['nonce'];
        if (!isValidNonce(nonce)) throw new Error('args.nonce must be 16–128 characters of [A-Za-z0-9_-]');
        if (attest === null) throw new Error('this device has no identity key to sign with');
        return JSON.parse((await attest(nonce)).toString('utf8')) as unknown;
      });
    },
    async stop() {
      await api?.stop();
      await egress.stop();
    },
  };
}
