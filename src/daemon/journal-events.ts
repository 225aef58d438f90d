/**
 * Install outcomes, boot fallbacks, rollbacks and trust rotations as events.
 * The install commands run as separate processes and write the install
 * journal (src/install/journal.ts) and state.json; the daemon reads both at
 * every poll and turns what is new into events. A cursor (the key of the
 * last journal entry turned into an event, and the trust policy last seen)
 * is saved after the events are in the durable queue. Event ids are derived
 * from the journal line, so a redelivery after a crash keeps its id.
 */
import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { readJournal, type JournalEntry } from '../install/journal.js';
import type { DeviceState } from '../install/state.js';
import type { EventType, EventTypes } from '../telemetry/topics.js';

export interface JournalCursor {
  readonly lastKey: string | null;
  readonly lastAt: string | null;
  readonly trustPolicy: string | null;
}

export interface DerivedEvent<T extends EventType = EventType> {
  readonly id: string;
  readonly type: T;
  readonly data: EventTypes[T];
  readonly key: string;
  readonly at: string | null;
}

export function entryKey(e: JournalEntry): string {
  return createHash('sha256').update(JSON.stringify(e)).digest('hex');
}

/** A UUID-shaped id derived from a digest (version nibble 8: custom, RFC 9562). */
export function derivedId(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function toEvent(deviceId: string, e: JournalEntry, state: DeviceState | null): DerivedEvent | null {
  const key = entryKey(e);
  const id = derivedId(`${deviceId}:journal:${key}`);
  const common = { slot: e.slot, version: e.version, code: e.code, reason: e.reason, journalAt: e.at };
  switch (e.command) {
    case 'install':
      return { id, key, at: e.at, type: 'install.outcome', data: { ...common, outcome: e.outcome === 'ok' ? 'installed' : e.outcome, manifestSha256: e.manifestSha256 } };
    case 'boot-check':
      if (e.outcome === 'ok') return { id, key, at: e.at, type: 'install.outcome', data: { ...common, outcome: 'committed', manifestSha256: e.manifestSha256 } };
      return {
        id,
        key,
        at: e.at,
        type: 'boot.fallback',
        data: { ...common, bootOutcome: state?.lastBoot && state.lastBoot.at === e.at ? state.lastBoot.outcome : null },
      };
    case 'rollback':
      return { id, key, at: e.at, type: 'install.rollback', data: { ...common, outcome: e.outcome } };
    default:
      return null;
  }
}

/** New events since the cursor (pure). */
export function newEvents(deviceId: string, entries: readonly JournalEntry[], state: DeviceState | null, cursor: JournalCursor): { events: DerivedEvent[]; cursor: JournalCursor } {
  let start = 0;
  if (cursor.lastKey !== null) {
    const i = entries.findIndex((e) => entryKey(e) === cursor.lastKey);
    if (i >= 0) start = i + 1;
    else if (cursor.lastAt !== null) {
      const lastAt = cursor.lastAt;
      start = entries.findIndex((e) => e.at > lastAt);
      if (start < 0) start = entries.length;
    }
  }
  const events: DerivedEvent[] = [];
  let next: JournalCursor = cursor;
  for (const e of entries.slice(start)) {
    const ev = toEvent(deviceId, e, state);
    if (ev) events.push(ev);
    next = { ...next, lastKey: entryKey(e), lastAt: e.at };
  }
  if (state !== null && cursor.trustPolicy !== null && state.trustPolicy !== cursor.trustPolicy) {
    const seed = `${deviceId}:trust:${cursor.trustPolicy}->${state.trustPolicy}:${state.generation}`;
    events.push({ id: derivedId(seed), key: seed, at: null, type: 'trust.rotation', data: { previousPolicySha256: cursor.trustPolicy, policySha256: state.trustPolicy } });
  }
  if (state !== null) next = { ...next, trustPolicy: state.trustPolicy };
  return { events, cursor: next };
}

export type EventSink = <T extends EventType>(type: T, data: EventTypes[T], id?: string) => Promise<unknown>;

export class JournalEventSource {
  private cursor: JournalCursor | null = null;
  private readonly cursorFile: string;

  constructor(
    private readonly stateDir: string,
    cursorDir: string,
    private readonly deviceId: string,
    private readonly publish: EventSink,
    private readonly log: Logger,
  ) {
    this.cursorFile = join(cursorDir, 'journal-cursor.json');
  }

  private async loadCursor(): Promise<JournalCursor> {
    if (this.cursor) return this.cursor;
    try {
      const c = JSON.parse(await readFile(this.cursorFile, 'utf8')) as JournalCursor;
      this.cursor = { lastKey: c.lastKey ?? null, lastAt: c.lastAt ?? null, trustPolicy: c.trustPolicy ?? null };
    } catch {
      this.cursor = { lastKey: null, lastAt: null, trustPolicy: null };
    }
    return this.cursor;
  }

  /** Reads the journal and state; queues what is new; saves the cursor. */
  async poll(state: DeviceState | null): Promise<number> {
    const cursor = await this.loadCursor();
    const entries = await readJournal(this.stateDir, 200);
    const { events, cursor: next } = newEvents(this.deviceId, entries, state, cursor);
    for (const ev of events) await this.publish(ev.type, ev.data, ev.id);
    if (JSON.stringify(next) !== JSON.stringify(cursor)) {
      await writeFile(`${this.cursorFile}.tmp`, JSON.stringify(next));
      await rename(`${this.cursorFile}.tmp`, this.cursorFile);
      this.cursor = next;
    }
    if (events.length > 0) this.log.info({ events: events.length }, 'install journal: events queued');
    return events.length;
  }
}
