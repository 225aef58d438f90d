/**
 * What the bundle benchmarks (verify, install, release) share: a real signed
 * bundle of a given size, child processes timed with their peak RSS, the
 * alternation of the measured commands, the in-process child's report, and
 * the small formatting and option helpers.
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, open, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeBundle } from '../bundle/writer.js';
import { canonicalBytes } from '../manifest/canonical.js';
import { parseManifest } from '../manifest/parse.js';
import { createDevPki, type DevPki } from '../pki/devpki.js';
import { FileKeySigner } from '../pki/signer.js';
import { buildProvenance } from '../release/provenance.js';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
/** Targets of verify and install: throughput >= 0.7 x the physical limit, peak RSS <= 96 MiB. */
export const TARGET_RATIO = 0.7;
export const TARGET_RSS_MIB = 96;
/** The glassbox CLI as built (dist/cli/main.js). */
export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface Run {
  readonly seconds: number;
  /** The child's VmHWM (kernel high-water mark of its RSS), null if never sampled. */
  readonly peakRssBytes: number | null;
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command, timing it, sampling VmHWM of the child every 10 ms until it exits. */
export function timed(cmd: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hwmKb = 0;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const sample = async (): Promise<void> => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
      } catch {
        // exited between samples
      }
    };
    const timer = setInterval(() => void sample(), 10);
    child.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
    child.on('close', (status) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      resolvePromise({ seconds, peakRssBytes: hwmKb > 0 ? hwmKb * 1024 : null, status, stdout, stderr });
    });
  });
}

/** Throws, naming `what` and the child's output, unless it exited 0. */
export function check(r: Run, what: string): Run {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${r.stdout}${r.stderr}`);
  return r;
}

export interface Step {
  /** Names the step when its command exits non-zero. */
  readonly what: string;
  readonly run: () => Promise<Run>;
  /** Untimed work after every run of this step (clean-up, a confirming command). */
  readonly after?: () => Promise<void>;
  /** One untimed pass before the measured ones (default true). */
  readonly warm?: boolean;
}

/**
 * One untimed pass of each step (page cache and module cache warm alike),
 * then `runs` rounds of every step in turn, so that drift in the machine's
 * state spreads over all of them. Every run must exit 0.
 */
export async function alternate<K extends string>(steps: Readonly<Record<K, Step>>, runs: number): Promise<Record<K, Run[]>> {
  const entries = Object.entries(steps) as Array<[K, Step]>;
  const once = async (s: Step): Promise<Run> => {
    const r = check(await s.run(), s.what);
    if (s.after) await s.after();
    return r;
  };
  for (const [, s] of entries) if (s.warm !== false) await once(s);
  const out = Object.fromEntries(entries.map(([k]) => [k, [] as Run[]])) as Record<K, Run[]>;
  for (let i = 0; i < runs; i++) {
    for (const [k, s] of entries) out[k].push(await once(s));
  }
  return out;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const fmtMiB = (b: number | null): string => (b === null ? 'n/a' : `${(b / MiB).toFixed(1)} MiB`);
/** The wall times of the runs, in order: "1.02 0.98 1.01". */
export const secondsList = (rs: readonly Run[]): string => rs.map((r) => r.seconds.toFixed(2)).join(' ');
export const met = (b: boolean): string => (b ? 'met' : 'NOT met');

/** The value after `name` on the command line, or `fallback`. */
export function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

/**
 * A fresh temp dir that is removed on SIGINT/SIGTERM (multi-GiB files must
 * not outlive an interrupted run); refused (and removed) when its file
 * system has less than `needBytes` free. The caller removes it when done.
 */
export async function benchTempDir(prefix: string, needBytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void rm(dir, { recursive: true, force: true }).finally(() => process.exit(130));
    });
  }
  const fs = await statfs(dir);
  if (fs.bavail * fs.bsize < needBytes) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`not enough free space in ${dir}: need ${(needBytes / GiB).toFixed(1)} GiB`);
  }
  return dir;
}

/** A development PKI in `dir`/pki (two signers, threshold 2) and its signers loaded. */
export async function devSigners(dir: string, now?: Date): Promise<{ pki: DevPki; signers: FileKeySigner[] }> {
  const pki = await createDevPki(join(dir, 'pki'), { signers: 2, threshold: 2, ...(now ? { now } : {}) });
  const signers = await Promise.all(pki.signers.map((s) => FileKeySigner.fromFiles(s.key, s.chain)));
  return { pki, signers };
}

/** Writes `size` random bytes to a new file at `path`, returning their sha256. */
export async function randomFile(path: string, size: number): Promise<string> {
  const fh = await open(path, 'wx');
  const buf = Buffer.allocUnsafe(4 * MiB);
  const hash = createHash('sha256');
  try {
    for (let left = size; left > 0; ) {
      const n = Math.min(left, buf.length);
      randomFillSync(buf, 0, n);
      hash.update(buf.subarray(0, n));
      await fh.write(buf, 0, n);
      left -= n;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

export interface BenchBundle {
  readonly path: string;
  readonly bytes: number;
}

/** The manifest's times (RFC 3339, whole seconds). */
export interface BundleTimes {
  readonly buildFinished: string;
  readonly released: string;
  readonly expires: string;
}

/**
 * A release bundle of about `size` bytes in `dir`: rootfs (random), sbom,
 * provenance; signed by every signer. The rootfs is removed once the bundle
 * is written (the bundle holds it); the caller removes the bundle.
 */
export async function buildBundle(dir: string, signers: readonly FileKeySigner[], size: number, times: BundleTimes): Promise<BenchBundle> {
  const rootfs = join(dir, 'rootfs.img');
  const sbom = Buffer.from(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, components: [] }));
  const rootfsSize = size - 64 * 1024;
  const rootfsSha = await randomFile(rootfs, rootfsSize);
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const provenance = {
    sourceRepository: 'https://git.hss.example/nvr/firmware',
    sourceCommit: '0123456789abcdef0123456789abcdef01234567',
    builder: 'https://ci.hss.example/builders/release',
    buildFinished: times.buildFinished,
  };
  const statement = buildProvenance({
    product: 'hss-nvr',
    version: '9.9.9',
    provenance,
    subjects: [
      { name: 'rootfs.img', sha256: rootfsSha },
      { name: 'sbom.cdx.json', sha256: sha(sbom) },
    ],
  }).bytes;
  await writeFile(join(dir, 'sbom.cdx.json'), sbom);
  await writeFile(join(dir, 'provenance.intoto.json'), statement);
  const manifestBytes = canonicalBytes({
    schema: 'glassbox.manifest/v1',
    product: 'hss-nvr',
    hardware: ['nvr-8p'],
    version: '9.9.9',
    securityVersion: 1,
    released: times.released,
    expires: times.expires,
    artifacts: [
      { name: 'rootfs.img', size: rootfsSize, sha256: rootfsSha, role: 'rootfs' },
      { name: 'sbom.cdx.json', size: sbom.length, sha256: sha(sbom), role: 'sbom' },
      { name: 'provenance.intoto.json', size: statement.length, sha256: sha(statement), role: 'provenance' },
    ],
    egress: [],
    provenance,
  });
  parseManifest(manifestBytes);
  const signatures = await Promise.all(signers.map(async (s) => ({ sig: await s.sign(manifestBytes), chainPem: s.chainPem })));
  const out = join(dir, `bundle-${size}.tar`);
  const written = await writeBundle(out, {
    manifestBytes,
    signatures,
    artifacts: ['rootfs.img', 'sbom.cdx.json', 'provenance.intoto.json'].map((name) => ({ name, path: join(dir, name) })),
  });
  await rm(rootfs);
  return { path: out, bytes: written.bytes };
}

/** What an in-process child prints: the work's own time and the process's peak RSS. */
export interface ChildFigures {
  readonly seconds: number;
  readonly maxRssBytes: number;
}

/**
 * The in-process child's side: runs `work` once, timed inside (no CLI
 * start-up), and prints ChildFigures as one JSON line; a refusal sets exit
 * code 1 and is printed to stderr.
 */
export async function runChild(work: () => Promise<{ readonly ok: boolean; readonly code: string | null; readonly reason: string }>): Promise<void> {
  const started = process.hrtime.bigint();
  const r = await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (!r.ok) {
    console.error(`${r.code}: ${r.reason}`);
    process.exitCode = 1;
  }
  const figures: ChildFigures = { seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 };
  console.log(JSON.stringify(figures));
}

/** The parent's side: the figures a runChild child printed. */
export function childFigures(r: Run): ChildFigures {
  const v = JSON.parse(r.stdout) as ChildFigures;
  return { seconds: Number(v.seconds), maxRssBytes: Number(v.maxRssBytes) };
}
