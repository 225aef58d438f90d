/**
 * Reads the repo's Dockerfile into instructions, the way the Docker builder
 * does for the parts the tests look at: comment lines dropped (also inside a
 * continuation), `\` continuations joined, stages split at FROM. Exec-form
 * (JSON array) ENTRYPOINT/CMD only: the image uses no shell form.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');

export interface Instruction {
  readonly keyword: string;
  /** Everything after the keyword, continuations joined with a space. */
  readonly args: string;
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const whole = (pending + line.trim()).trim();
    pending = '';
    if (whole === '') continue;
    const m = /^([A-Za-z]+)\s*(.*)$/.exec(whole);
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]! });
  }
  return out;
}

/** The instructions of the last stage (from its FROM on): what the image runs. */
export function finalStage(all: readonly Instruction[]): Instruction[] {
  let at = -1;
  all.forEach((ins, i) => {
    if (ins.keyword === 'FROM') at = i;
  });
  return all.slice(at);
}

export function execForm(ins: Instruction | undefined, what: string): string[] {
  if (ins === undefined) throw new Error(`Dockerfile: no ${what}`);
  const v = JSON.parse(ins.args) as unknown;
  if (!Array.isArray(v) || v.length === 0 || !v.every((a) => typeof a === 'string')) throw new Error(`Dockerfile: ${what} is not an exec-form JSON array of strings`);
  return v as string[];
}

/** `ENV K=V [K2=V2 …]` lines, in order (later wins). Unquoted values only. */
export function envOf(stage: readonly Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.filter((i) => i.keyword === 'ENV')) {
    for (const pair of ins.args.split(/\s+/)) {
      const eq = pair.indexOf('=');
      if (eq <= 0 || /["']/.test(pair)) throw new Error(`Dockerfile: ENV ${ins.args}: only unquoted KEY=value pairs are read here`);
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

export interface ImageLaunch {
  /** ENTRYPOINT followed by CMD. */
  readonly argv: string[];
  readonly env: Record<string, string>;
  /** The last USER, as written. */
  readonly user: string;
  /** The last WORKDIR. */
  readonly workdir: string;
}

export function imageLaunch(text: string): ImageLaunch {
  const stage = finalStage(parseDockerfile(text));
  const last = (k: string) => stage.filter((i) => i.keyword === k).at(-1);
  return {
    argv: [...execForm(last('ENTRYPOINT'), 'ENTRYPOINT'), ...execForm(last('CMD'), 'CMD')],
    env: envOf(stage),
    user: last('USER')?.args.trim() ?? 'root',
    workdir: last('WORKDIR')?.args.trim() ?? '/',
  };
}

/** The `&&`-separated commands of every RUN of the last stage, each split into words. */
export function runCommands(text: string): string[][] {
  return finalStage(parseDockerfile(text))
    .filter((i) => i.keyword === 'RUN')
    .flatMap((i) => i.args.split('&&'))
    .map((c) => c.trim().split(/\s+/))
    .filter((w) => w.length > 0 && w[0] !== '');
}

export function readDockerfile(): string {
  return readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
}
