/**
 * The running daemon's view for `glassbox status` and technicians:
 * <stateDir>/daemon-status.json, replaced atomically every few seconds
 * while the state changes (never more than once per 5 s) and at stop.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TelemetryStatus } from '../telemetry/service.js';

export const DAEMON_STATUS_FILE = 'daemon-status.json';

export interface DaemonStatus {
  readonly schema: 'glassbox.daemon-status/v1';
  readonly pid: number;
  readonly running: boolean;
  readonly deviceId: string;
  readonly version: string;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly telemetry: TelemetryStatus;
  readonly lastHealthAt: string | null;
  readonly installedVersion: string | null;
  readonly api: string | null;
}

export async function writeDaemonStatus(stateDir: string, status: DaemonStatus): Promise<void> {
  const path = join(stateDir, DAEMON_STATUS_FILE);
  await writeFile(`${path}.tmp`, JSON.stringify(status, null, 2) + '\n', { mode: 0o644 });
  await rename(`${path}.tmp`, path);
}

/** The last status the daemon wrote, or null (never ran here, or unreadable). `running` is checked against the pid. */
export async function readDaemonStatus(stateDir: string): Promise<DaemonStatus | null> {
  try {
    const text = await readFile(join(stateDir, DAEMON_STATUS_FILE), 'utf8');
    if (text.length > 1024 * 1024) return null;
    const s = JSON.parse(text) as DaemonStatus;
    if (s.schema !== 'glassbox.daemon-status/v1') return null;
    let alive = false;
    if (s.running) {
      try {
        process.kill(s.pid, 0);
        alive = true;
      } catch {
        alive = false;
      }
    }
    return { ...s, running: alive };
  } catch {
    return null;
  }
}
