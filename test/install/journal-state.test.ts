import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { appendJournal, readJournal, JOURNAL_MAX_BYTES, type JournalEntry } from '../../src/install/journal.js';
import { parseState, serializeState } from '../../src/install/state-schema.js';
import { afterBootFailure, afterBootStart, afterInstall, afterRollback, initialState, installTarget, verificationTime, type DeviceState } from '../../src/install/state.js';
import { buildStatus, renderStatus } from '../../src/install/status.js';
import { tempDir } from './fixtures.js';

let root: string;
beforeAll(async () => {
  root = await tempDir('journal');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const entry = (i: number, extra: Partial<JournalEntry> = {}): JournalEntry => ({
  at: new Date(1_800_000_000_000 + i).toISOString(),
  command: 'install',
  outcome: 'ok',
  code: null,
  reason: `entry ${i} ${'x'.repeat(200)}`,
  slot: 'a',
  version: '1.0.0',
  securityVersion: 1,
  manifestSha256: null,
  generation: i,
  source: null,
  ...extra,
});

describe('journal', () => {
  it('stays bounded (one rotated generation) and skips a torn last line', async () => {
    const dir = join(root, 'j1');
    await import('node:fs/promises').then((fs) => fs.mkdir(dir));
    for (let i = 0; i < 3000; i++) await appendJournal(dir, entry(i));
    expect((await stat(join(dir, 'journal.jsonl'))).size).toBeLessThanOrEqual(JOURNAL_MAX_BYTES);
    expect((await stat(join(dir, 'journal.1.jsonl'))).size).toBeLessThanOrEqual(JOURNAL_MAX_BYTES);
    await appendFile(join(dir, 'journal.jsonl'), '{"at":"2027-01-01T00:00:00Z","command":"inst'); // power cut mid-append
    const last = await readJournal(dir, 5);
    expect(last).toHaveLength(5);
    expect(last.at(-1)?.generation).toBe(2999);
  });
});

const S0 = (): DeviceState => initialState({ hardware: 'nvr-8p', trustPolicy: 'a'.repeat(64), trustedTime: new Date('2026-01-01T00:00:00Z'), maxBootAttempts: 3 });
const facts = (target: 'a' | 'b', sv: number) => ({
  target,
  ref: `${target}-${'0'.repeat(16)}`,
  product: 'hss-nvr',
  version: `${sv}.0.0`,
  manifestSha256: 'b'.repeat(64),
  securityVersion: sv,
  released: '2026-02-01T00:00:00.000Z',
  verifiedAt: new Date('2026-03-01T00:00:00Z'),
  installedAt: new Date('2026-03-01T00:00:00Z'),
  trustPolicy: null,
});

describe('state file', () => {
  it('round-trips through the schema and refuses damaged states', () => {
    const s = afterInstall(S0(), facts('a', 4));
    expect(parseState(serializeState(s), 'state.json')).toEqual(s);
    expect(() => parseState(Buffer.from('{"schema":"glassbox.device-state/v1"'), 'state.json')).toThrow(expect.objectContaining({ code: 'STATE_CORRUPT' }));
    const bad = { ...s, securityFloor: -1 };
    expect(() => parseState(serializeState(bad), 'state.json')).toThrow(/securityFloor/);
    const activeEmpty = { ...S0(), active: 'b' };
    expect(() => parseState(Buffer.from(JSON.stringify(activeEmpty)), 'state.json')).toThrow(/active slot b is empty/);
    const traversal = { ...s, slots: { ...s.slots, a: { ...s.slots.a, ref: '../../etc' } } };
    expect(() => parseState(Buffer.from(JSON.stringify(traversal)), 'state.json')).toThrow(expect.objectContaining({ code: 'STATE_CORRUPT' }));
  });

  it('verification time is never earlier than the trustworthy time', () => {
    expect(verificationTime(new Date('2020-01-01T00:00:00Z'), S0()).toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(verificationTime(new Date('2027-01-01T00:00:00Z'), S0()).toISOString()).toBe('2027-01-01T00:00:00.000Z');
  });

  it('targets the pending slot while one is pending, otherwise the inactive one', () => {
    let s = S0();
    expect(installTarget(s)).toBe('a');
    s = afterInstall(s, facts('a', 1));
    expect(installTarget(s)).toBe('a');
  });

  it('a failed start with no committed fallback keeps the slot active and says why', () => {
    let s = afterBootStart(afterInstall(S0(), facts('a', 1)));
    s = afterBootFailure(s, { code: 'HEALTH_CHECK_FAILED', reason: 'x', at: '2026-03-02T00:00:00.000Z' }, { retryable: false });
    expect(s.active).toBe('a');
    expect(s.slots.a.state).toBe('failed');
    expect(s.lastBoot?.outcome).toBe('no-fallback');
    expect('refusal' in afterRollback(s, new Date())).toBe(true);
    const text = renderStatus(buildStatus('/x', s, [], null));
    expect(text).toMatch(/Next: The running slot failed its checks and there is no committed firmware/);
  });
});
