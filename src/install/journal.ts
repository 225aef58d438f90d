/**
 * The install journal (edge): one JSON line per outcome of init, install,
 * boot-check and rollback, so `status` can say what happened last, even for
 * a refused install (which changes no device state). It is a log, not state:
 * nothing decides from it. Bounded: past JOURNAL_MAX_BYTES the file is
 * rotated to journal.1.jsonl (one generation kept). A torn last line (power
 * cut mid-append) is skipped on read.
 */
import { open, readFile, rename, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';

export const JOURNAL_NAME = 'journal.jsonl';
export const JOURNAL_ROTATED_NAME = 'journal.1.jsonl';
export const JOURNAL_MAX_BYTES = 256 * 1024;
/** Longest line written (reasons are cut to fit). */
const LINE_MAX = 8 * 1024;

export type JournalCommand = 'init' | 'install' | 'boot-check' | 'rollback';

export interface JournalEntry {
  readonly at: string;
  readonly command: JournalCommand;
  /** ok: done; rejected: input judged and refused; failed: I/O or device problem. */
  readonly outcome: 'ok' | 'rejected' | 'failed';
  readonly code: string | null;
  readonly reason: string | null;
  readonly slot: string | null;
  readonly version: string | null;
  readonly securityVersion: number | null;
  readonly manifestSha256: string | null;
  /** state generation after the command (unchanged for refusals). */
  readonly generation: number | null;
  readonly source: string | null;
}

export async function appendJournal(stateDir: string, entry: JournalEntry): Promise<void> {
  const path = join(stateDir, JOURNAL_NAME);
  let line = JSON.stringify(entry);
  if (line.length > LINE_MAX) line = JSON.stringify({ ...entry, reason: (entry.reason ?? '').slice(0, LINE_MAX / 2) + '…' });
  try {
    const st = await stat(path);
    if (st.size + line.length > JOURNAL_MAX_BYTES) await rename(path, join(stateDir, JOURNAL_ROTATED_NAME));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o644);
  try {
    await fh.write(line + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function parseLines(text: string): JournalEntry[] {
  const out: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const v = JSON.parse(line) as JournalEntry;
      if (v && typeof v === 'object' && typeof v.command === 'string' && typeof v.outcome === 'string') out.push(v);
    } catch {
      // torn or foreign line: skipped
    }
  }
  return out;
}

/** The last `limit` entries, oldest first. */
export async function readJournal(stateDir: string, limit = 50): Promise<JournalEntry[]> {
  const read = async (name: string): Promise<string> => {
    try {
      const bytes = await readFile(join(stateDir, name));
      return bytes.subarray(Math.max(0, bytes.length - JOURNAL_MAX_BYTES * 2)).toString('utf8');
    } catch {
      return '';
    }
  };
  const entries = [...parseLines(await read(JOURNAL_ROTATED_NAME)), ...parseLines(await read(JOURNAL_NAME))];
  return entries.slice(-limit);
}
