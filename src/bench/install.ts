/**
 * Benchmark of `glassbox install` against the physical limits measured in
 * the same run, on the same bytes:
 *   - hashing:  openssl dgst -sha256 BUNDLE
 *   - writing:  cp BUNDLE COPY && sync COPY   (copy, then fsync the copy)
 * An install must read, hash and write every byte, fsync it, and switch;
 * target: throughput >= 0.7 x the slower of the two, peak RSS <= 96 MiB.
 *
 *   npm run bench:install                        # 1 GiB bundle, 3 alternating runs
 *   npm run bench:install -- --sizes 1,4 --runs 3
 *
 * It builds a real bundle (random rootfs, sbom, provenance, two ECDSA
 * signatures from a fresh development PKI, the project's bundle writer) in a
 * temp dir, initialises a device state next to it (same file system), then
 * alternates the three commands. `glassbox install` runs as the CLI in a
 * child process (its peak RSS is the kernel's VmHWM, sampled until exit),
 * and installBundle runs in a child of its own, timed inside (the installer
 * without the CLI's start-up), reporting process.resourceUsage().maxRSS;
 * each install is confirmed with `boot-check` (untimed) so slots alternate
 * as on a device. The bundle-building code mirrors src/bench/verify.ts,
 * which does not export it. Temp files are removed.
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, open, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeBundle } from '../bundle/writer.js';
import { canonicalBytes } from '../manifest/canonical.js';
import { createDevPki } from '../pki/devpki.js';
import { FileKeySigner } from '../pki/signer.js';
import { buildProvenance } from '../release/provenance.js';
import { readFileChunks } from '../bundle/reader.js';
import { installBundle } from '../install/install.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TARGET_RATIO = 0.7;
const TARGET_RSS_MIB = 96;
const HERE = fileURLToPath(import.meta.url);
const CLI = resolve(HERE, '..', '..', 'cli', 'main.js');

interface Run {
  readonly seconds: number;
  readonly peakRssBytes: number | null;
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function timed(cmd: string, args: readonly string[]): Promise<Run> {
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
      resolvePromise({ seconds: Number(process.hrtime.bigint() - started) / 1e9, peakRssBytes: hwmKb > 0 ? hwmKb * 1024 : null, status, stdout, stderr });
    });
  });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmtMiB = (b: number | null): string => (b === null ? 'n/a' : `${(b / MiB).toFixed(1)} MiB`);
const fmtRate = (bytes: number, s: number): string => `${(bytes / s / 1e6).toFixed(0)} MB/s`;
const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

async function randomFile(path: string, size: number): Promise<string> {
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

async function buildBundle(dir: string, signers: readonly FileKeySigner[], size: number, now: Date): Promise<{ path: string; bytes: number }> {
  const rootfs = join(dir, 'rootfs.img');
  const sbom = Buffer.from(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, components: [] }));
  const rootfsSize = size - 64 * 1024;
  const rootfsSha = await randomFile(rootfs, rootfsSize);
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const provenance = {
    sourceRepository: 'https://git.hss.example/nvr/firmware',
    sourceCommit: '0123456789abcdef0123456789abcdef01234567',
    builder: 'https://ci.hss.example/builders/release',
    buildFinished: iso(new Date(now.getTime() - 2 * 3600_000)),
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
    released: iso(new Date(now.getTime() - 3600_000)),
    expires: iso(new Date(now.getTime() + 365 * 24 * 3600_000)),
    artifacts: [
      { name: 'rootfs.img', size: rootfsSize, sha256: rootfsSha, role: 'rootfs' },
      { name: 'sbom.cdx.json', size: sbom.length, sha256: sha(sbom), role: 'sbom' },
      { name: 'provenance.intoto.json', size: statement.length, sha256: sha(statement), role: 'provenance' },
    ],
    egress: [],
    provenance,
  });
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

/** The in-process child: one install, timed inside (no CLI start-up); prints {seconds, maxRssBytes}. */
async function child(bundlePath: string, stateDir: string): Promise<void> {
  const started = process.hrtime.bigint();
  const r = await installBundle({ stateDir, source: readFileChunks(bundlePath), sourceName: bundlePath, clock: new Date() });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (!r.ok) {
    console.error(`${r.code}: ${r.reason}`);
    process.exitCode = 1;
  }
  console.log(JSON.stringify({ seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
}

function check(r: Run, what: string): Run {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${r.stdout}${r.stderr}`);
  return r;
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]!, process.argv[4]!);
  const sizes = option('--sizes', '1').split(',').map(Number);
  const runs = Number(option('--runs', '3'));
  if (sizes.some((s) => !(s > 0)) || !(runs >= 1)) throw new Error('usage: bench:install [--sizes 1] [--runs 3]');
  const dir = await mkdtemp(join(tmpdir(), 'glassbox-bench-install-'));
  const fs = await statfs(dir);
  const need = Math.max(...sizes) * GiB * 5.2; // bundle, copy, two slots, one staging
  if (fs.bavail * fs.bsize < need) throw new Error(`not enough free space in ${dir}: need ${(need / GiB).toFixed(1)} GiB`);
  const summary: string[] = [];
  try {
    const now = new Date();
    console.log(`glassbox bench:install — node ${process.version}, temp dir ${dir}`);
    const pki = await createDevPki(join(dir, 'pki'), { signers: 2, threshold: 2, now: new Date(now.getTime() - 24 * 3600_000) });
    const signers = await Promise.all(pki.signers.map((s) => FileKeySigner.fromFiles(s.key, s.chain)));
    for (const [i, size] of sizes.entries()) {
      const bundle = await buildBundle(dir, signers, size * GiB, now);
      const state = join(dir, `state-${size}`);
      check(await timed(process.execPath, [CLI, 'device', 'init', '--state-dir', state, '--trust', pki.trustPolicy, '--hardware', 'nvr-8p']), 'device init');
      const copy = join(dir, 'copy.bin');
      const openssl = (): Promise<Run> => timed('openssl', ['dgst', '-sha256', bundle.path]);
      const cpSync = (): Promise<Run> => timed('sh', ['-c', 'cp "$1" "$2" && sync "$2"', 'cp-sync', bundle.path, copy]);
      const install = (): Promise<Run> => timed(process.execPath, [CLI, 'install', bundle.path, '--state-dir', state]);
      const inner = (): Promise<Run> => timed(process.execPath, [HERE, '--child', bundle.path, state]);
      const confirm = async (): Promise<void> => void check(await timed(process.execPath, [CLI, 'boot-check', '--state-dir', state]), 'boot-check');
      // One untimed pass of each warms the page cache (the bundle is read from cache by all three).
      check(await openssl(), 'openssl');
      check(await cpSync(), 'cp+sync');
      await rm(copy);
      check(await install(), 'install');
      await confirm();
      const o: Run[] = [];
      const c: Run[] = [];
      const g: Run[] = [];
      const k: Run[] = [];
      const n = i === 0 ? runs : 1;
      for (let r = 0; r < n; r++) {
        o.push(check(await openssl(), 'openssl'));
        c.push(check(await cpSync(), 'cp+sync'));
        await rm(copy);
        g.push(check(await install(), 'install'));
        await confirm();
        k.push(check(await inner(), 'installBundle'));
        await confirm();
      }
      const bytes = bundle.bytes;
      const to = median(o.map((r) => r.seconds));
      const tc = median(c.map((r) => r.seconds));
      const tg = median(g.map((r) => r.seconds));
      const limit = Math.max(to, tc);
      const ratio = limit / tg;
      const peak = Math.max(...g.map((r) => r.peakRssBytes ?? 0));
      const tk = median(k.map((r) => Number(JSON.parse(r.stdout).seconds)));
      const peakInner = Math.max(...k.map((r) => Number(JSON.parse(r.stdout).maxRssBytes)));
      const list = (rs: Run[]): string => rs.map((r) => r.seconds.toFixed(2)).join(' ');
      console.log(`\n${size} GiB bundle: ${bytes} bytes, ${n} alternating run(s) (median)`);
      console.log(`  openssl dgst -sha256          ${to.toFixed(3)} s  ${fmtRate(bytes, to)}   [${list(o)}]`);
      console.log(`  cp + sync (fsync the copy)    ${tc.toFixed(3)} s  ${fmtRate(bytes, tc)}   [${list(c)}]`);
      console.log(`  glassbox install (CLI)        ${tg.toFixed(3)} s  ${fmtRate(bytes, tg)}   ratio to the slower limit ${ratio.toFixed(2)}   peak RSS ${fmtMiB(peak)}   [${list(g)}]`);
      console.log(`  installBundle (child, timed inside) ${tk.toFixed(3)} s  ${fmtRate(bytes, tk)}   ratio ${(limit / tk).toFixed(2)}   peak RSS ${fmtMiB(peakInner)}   [${k.map((r) => Number(JSON.parse(r.stdout).seconds).toFixed(2)).join(' ')}]`);
      const ok = (b: boolean): string => (b ? 'met' : 'NOT met');
      summary.push(
        `  ${size} GiB: ratio CLI ${ratio.toFixed(2)}, installer ${(limit / tk).toFixed(2)} vs ${to >= tc ? 'openssl' : 'cp+sync'} (target ${TARGET_RATIO}: ${ok(ratio >= TARGET_RATIO)} / ${ok(limit / tk >= TARGET_RATIO)}); ` +
          `peak RSS CLI ${fmtMiB(peak)}, installer ${fmtMiB(peakInner)} (target ${TARGET_RSS_MIB} MiB: ${ok(peak <= TARGET_RSS_MIB * MiB)} / ${ok(peakInner <= TARGET_RSS_MIB * MiB)})`,
      );
      await rm(bundle.path);
      await rm(state, { recursive: true, force: true });
    }
    console.log('\nsummary');
    for (const line of summary) console.log(line);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
