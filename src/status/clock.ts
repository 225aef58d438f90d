/**
 * Whether the system clock is synchronised (edge). systemd-timesyncd and
 * chrony/ntpd under systemd create /run/systemd/timesync/synchronized once
 * the kernel clock is disciplined; without it we say "unknown", never
 * "synchronized" by guess.
 */
import { access } from 'node:fs/promises';
import type { ClockFacts } from './types.js';

export const TIMESYNC_FLAG = '/run/systemd/timesync/synchronized';

export async function clockSync(flag = TIMESYNC_FLAG): Promise<ClockFacts['sync']> {
  try {
    await access(flag);
    return 'synchronized';
  } catch {
    return 'unknown';
  }
}
