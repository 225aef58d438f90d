/**
 * `glassbox daemon`: the long-running telemetry daemon.
 *
 *   glassbox daemon [--config FILE] [--state-dir DIR] [--broker URL] …
 *   glassbox daemon --dev      (npm start: dev PKI, sample install, embedded broker)
 *
 * Logs are pino JSON lines on stdout. SIGTERM/SIGINT: final retained
 * `offline`, queue persisted, exit 0 within 5 s.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { join } from 'node:path';
import { DEFAULTS, DEFAULT_CONFIG_PATH } from '../config/defaults.js';
import type { DaemonConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { loadConfig } from '../config/load.js';
import { LAYERED_OPTIONS } from '../config/resolve.js';
import { createRootLogger } from '../log/logger.js';
import { runCommand, type CliIO } from './run.js';

const STOP_DEADLINE_MS = 4_500;

/**
 * egress.enabled "auto" becomes true or false here, once, with a log line
 * saying why (src/egress/enablement.ts); in --dev the API socket and the
 * egress runtime files default to the dev state directory, not /run/glassbox,
 * and the table is removed when the daemon stops.
 */
async function resolveEgress(config: DaemonConfig, dev: boolean, env: Readonly<Record<string, string | undefined>>, log: Logger): Promise<DaemonConfig> {
  const { decideEgress, probeEgress } = await import('../egress/enablement.js');
  const decision = decideEgress(config.egress.enabled, dev, await probeEgress(config.stateDir, env));
  if (decision.on && decision.missing.length > 0) log.error({ missing: decision.missing }, decision.why);
  else if (!decision.on && !dev && config.egress.enabled !== false) log.warn(decision.why);
  else log.info(decision.why);
  const egress = { ...config.egress, enabled: decision.on };
  if (dev) {
    const run = join(config.stateDir, 'run');
    if (egress.socket === DEFAULTS.egress.socket) egress.socket = join(run, 'api.sock');
    if (egress.runtimeDir === DEFAULTS.egress.runtimeDir) egress.runtimeDir = join(run, 'egress');
    // A developer's machine keeps no glassbox table once the dev daemon stops.
    egress.keepTableOnStop = false;
  }
  return Object.freeze({ ...config, egress: Object.freeze(egress) });
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function register(program: Command, io: CliIO): void {
  const cmd = program
    .command('daemon')
    .description('run the telemetry daemon: health, provenance and events over MQTT, with a persistent offline queue')
    .option('--config <file>', `config file (JSON; default $GLASSBOX_CONFIG or ${DEFAULT_CONFIG_PATH})`)
    .option('--dev', 'development mode: dev PKI and device identity in .glassbox-dev/, a sample signed bundle installed, an embedded MQTT broker on loopback when no broker is configured');
  for (const o of LAYERED_OPTIONS) cmd.option(o.flagSpelling, `${o.help} [env ${o.env}]`);
  cmd.action(async (opts: Record<string, unknown>) => {
    await runCommand(io, false, async () => {
      const env = process.env;
      const explicit = typeof opts['config'] === 'string' || (env['GLASSBOX_CONFIG'] ?? '') !== '';
      const path = (opts['config'] as string | undefined) ?? env['GLASSBOX_CONFIG'] ?? DEFAULT_CONFIG_PATH;
      let dev: Awaited<ReturnType<typeof import('../daemon/dev.js').prepareDev>> | null = null;
      let flags = opts;
      if (opts['dev'] === true) {
        const { prepareDev } = await import('../daemon/dev.js');
        dev = await prepareDev({ io, flags: opts, env });
        flags = { ...dev.flags, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
      }
      const loaded = await loadConfig({ path, explicit: explicit && dev === null ? true : explicit, env, flags });
      const { warnings, file } = loaded;
      const log = createRootLogger({ level: loaded.config.log.level });
      for (const w of warnings) log.warn(w);
      if (file) log.info({ file }, 'config loaded');
      const config = await resolveEgress(loaded.config, dev !== null, env, log);
      const { Daemon } = await import('../daemon/daemon.js');
      const daemon = new Daemon({ config, log, version: packageVersion(), env, brokerUrl: dev?.brokerUrl ?? undefined });
      let stopping: Promise<void> | null = null;
      const done = new Promise<number>((resolve) => {
        const onSignal = (sig: NodeJS.Signals) => {
          if (stopping) return;
          log.info({ signal: sig }, 'stopping');
          const deadline = setTimeout(() => {
            log.error('shutdown deadline passed: exiting');
            process.exit(0);
          }, STOP_DEADLINE_MS);
          stopping = daemon
            .stop()
            .then(() => dev?.stop())
            .catch((err: unknown) => log.error({ err }, 'shutdown error'))
            .finally(() => {
              clearTimeout(deadline);
              resolve(0);
            });
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      try {
        await daemon.start();
      } catch (err) {
        await daemon.stop().catch(() => undefined);
        await dev?.stop();
        throw err;
      }
      if (dev) {
        dev.announce(daemon.id);
        const watch = setInterval(() => {
          const t = daemon.status().telemetry;
          if (t.published > 0) {
            clearInterval(watch);
            io.err(`telemetry flowing: ${t.published} message(s) acknowledged by ${t.broker?.url ?? 'the broker'}`);
          }
        }, 200);
        watch.unref();
      }
      const code = await done;
      // Sockets and timers are closed; leave without waiting for stragglers.
      setTimeout(() => process.exit(code), 50).unref();
      return code;
    });
  });
}
