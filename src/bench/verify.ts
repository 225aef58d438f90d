/**
 * Benchmark of the bundle verifier against the physical limit: hashing the
 * same bytes with `openssl dgst -sha256` (which reads and hashes the file
 * and nothing else).
 *
 *   npm run bench:verify                        # 1 GiB (3 alternating runs) and 4 GiB (peak memory)
 *   npm run bench:verify -- --sizes 1 --runs 5  # GiB per bundle, runs per tool
 *
 * For each size it builds a real bundle in a temp dir (random artifact data,
 * a manifest, a provenance statement, two real ECDSA signatures from a
 * freshly generated development PKI, written by the project's bundle
 * writer), then alternates:
 *   - openssl dgst -sha256 BUNDLE
 *   - glassbox verify BUNDLE --trust POLICY (the CLI, in a child process);
 *     its peak RSS is the kernel's high-water mark VmHWM from
 *     /proc/<pid>/status, sampled until the child exits
 *   - verifyBundleFile in a child process (the verifier without CLI start-up:
 *     command loading, schema compilation); that child reports its own
 *     process.resourceUsage().maxRSS
 * and prints median wall times, throughputs, the ratios to openssl and the
 * peak RSS. Targets: ratio >= 0.7, peak RSS <= 96 MiB. Temp files are removed.
 */
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, open, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyBundleFile } from '../bundle/verify.js';
import { writeBundle } from '../bundle/writer.js';
import { canonicalBytes } from '../manifest/canonical.js';
import { parseManifest } from '../manifest/parse.js';
import { createDevPki } from '../pki/devpki.js';
import { FileKeySigner } from '../pki/signer.js';
import { buildProvenance } from '../release/provenance.js';
import { loadTrustAnchors } from '../trust/policy.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TARGET_RATIO = 0.7;
const TARGET_RSS_MIB = 96;
const HERE = fileURLToPath(import.meta.url);
const CLI = resolve(HERE, '..', '..', 'cli', 'main.js');
const AT = '2026-06-01T12:00:00Z';

interface Run {
  readonly seconds: number;
  readonly peakRssBytes: number | null;
  readonly status: number | null;
  readonly stderr: string;
  readonly stdout: string;
}

/** Runs a command, timing it, sampling VmHWM of the child until it exits. */
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
        const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
        const m = /VmHWM:\s+(\d+) kB/.exec(status);
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
      resolvePromise({ seconds, peakRssBytes: hwmKb > 0 ? hwmKb * 1024 : null, status, stderr, stdout });
    });
  });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmtMiB = (b: number | null): string => (b === null ? 'n/a' : `${(b / MiB).toFixed(1)} MiB`);
const fmtRate = (bytes: number, s: number): string => `${(bytes / s / 1e9).toFixed(2)} GB/s`;

/** Writes `size` random bytes to `path`, returning the sha256. */
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

interface BenchBundle {
  readonly path: string;
  readonly bytes: number;
}

/** A release bundle of about `size` bytes: rootfs (random), sbom, provenance; signed by the dev PKI's two signers. */
async function buildBundle(dir: string, signers: readonly FileKeySigner[], size: number): Promise<BenchBundle> {
  const rootfs = join(dir, 'rootfs.img');
  const sbom = Buffer.from(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, components: [] }));
  const rootfsSize = size - 64 * 1024;
  const rootfsSha = await randomFile(rootfs, rootfsSize);
  const sbomPath = join(dir, 'sbom.cdx.json');
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const provenance = {
    sourceRepository: 'https://git.hss.example/nvr/firmware',
    sourceCommit: '0123456789abcdef0123456789abcdef01234567',
    builder: 'https://ci.hss.example/builders/release',
    buildFinished: '2026-05-01T11:00:00Z',
  };
  const subjects = [
    { name: 'rootfs.img', sha256: rootfsSha },
    { name: 'sbom.cdx.json', sha256: sha(sbom) },
  ];
  const statement = buildProvenance({ product: 'hss-nvr', version: '9.9.9', provenance, subjects }).bytes;
  const provPath = join(dir, 'provenance.intoto.json');
  await writeFile(sbomPath, sbom);
  await writeFile(provPath, statement);
  const manifestBytes = canonicalBytes({
    schema: 'glassbox.manifest/v1',
    product: 'hss-nvr',
    hardware: ['nvr-8p'],
    version: '9.9.9',
    securityVersion: 1,
    released: '2026-05-01T12:00:00Z',
    expires: '2027-05-01T12:00:00Z',
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
    artifacts: [
      { name: 'rootfs.img', path: rootfs },
      { name: 'sbom.cdx.json', path: sbomPath },
      { name: 'provenance.intoto.json', path: provPath },
    ],
  });
  await rm(rootfs);
  return { path: out, bytes: written.bytes };
}

interface Measured {
  readonly openssl: Run[];
  readonly cli: Run[];
  readonly inProcess: Run[];
}

async function measure(bundle: BenchBundle, policy: string, runs: number): Promise<Measured> {
  const m: Measured = { openssl: [], cli: [], inProcess: [] };
  const openssl = (): Promise<Run> => timed('openssl', ['dgst', '-sha256', bundle.path]);
  const cli = (): Promise<Run> => timed(process.execPath, [CLI, 'verify', bundle.path, '--trust', policy, '--at', AT]);
  const child = (): Promise<Run> => timed(process.execPath, [HERE, '--child', bundle.path, policy]);
  // One untimed pass of each warms the page cache and the module cache alike.
  for (const warm of [openssl, cli, child]) await warm();
  for (let i = 0; i < runs; i++) {
    m.openssl.push(await openssl());
    m.cli.push(await cli());
    m.inProcess.push(await child());
  }
  for (const r of [...m.cli, ...m.inProcess]) {
    if (r.status !== 0) throw new Error(`verification failed (exit ${r.status}): ${r.stdout}${r.stderr}`);
  }
  return m;
}

function report(label: string, bytes: number, m: Measured): { ratioCli: number; ratioInProcess: number; peakCli: number; peakChild: number } {
  const o = median(m.openssl.map((r) => r.seconds));
  const c = median(m.cli.map((r) => r.seconds));
  const p = median(m.inProcess.map((r) => Number(JSON.parse(r.stdout).seconds)));
  const pWall = median(m.inProcess.map((r) => r.seconds));
  const peakCli = Math.max(...m.cli.map((r) => r.peakRssBytes ?? 0));
  const peakChild = Math.max(...m.inProcess.map((r) => Number(JSON.parse(r.stdout).maxRssBytes)));
  const runs = (rs: Run[]): string => rs.map((r) => r.seconds.toFixed(2)).join(' ');
  console.log(`\n${label}: ${bytes} bytes, ${m.openssl.length} alternating runs (median)`);
  console.log(`  openssl dgst -sha256            ${o.toFixed(3)} s  ${fmtRate(bytes, o)}   [${runs(m.openssl)}]`);
  console.log(`  glassbox verify (CLI process)   ${c.toFixed(3)} s  ${fmtRate(bytes, c)}   ratio ${(o / c).toFixed(2)}   peak RSS ${fmtMiB(peakCli)}   [${runs(m.cli)}]`);
  console.log(`  verifyBundleFile (child, timed inside) ${p.toFixed(3)} s  ${fmtRate(bytes, p)}   ratio ${(o / p).toFixed(2)}   peak RSS ${fmtMiB(peakChild)}   (process wall ${pWall.toFixed(3)} s)`);
  return { ratioCli: o / c, ratioInProcess: o / p, peakCli, peakChild };
}

/** The in-process child: verifies once and prints {seconds, maxRssBytes}. */
async function child(bundlePath: string, policyPath: string): Promise<void> {
  const trust = loadTrustAnchors(await readFile(policyPath));
  const started = process.hrtime.bigint();
  const r = await verifyBundleFile(bundlePath, { trust, at: new Date(AT), securityFloor: 0 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (!r.ok) {
    console.error(`${r.code}: ${r.reason}`);
    process.exitCode = 1;
  }
  console.log(JSON.stringify({ seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
}

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]!, process.argv[4]!);
  const sizes = option('--sizes', '1,4').split(',').map(Number);
  const runs = Number(option('--runs', '3'));
  if (sizes.some((s) => !(s > 0)) || !(runs >= 1)) throw new Error('usage: bench:verify [--sizes 1,4] [--runs 3]');
  const dir = await mkdtemp(join(tmpdir(), 'glassbox-bench-verify-'));
  // Multi-GiB temp files must not outlive an interrupted run.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void rm(dir, { recursive: true, force: true }).finally(() => process.exit(130));
    });
  }
  const fs = await statfs(dir);
  const need = Math.max(...sizes) * GiB * 1.1;
  if (fs.bavail * fs.bsize < need) throw new Error(`not enough free space in ${dir} for a ${Math.max(...sizes)} GiB bundle`);
  try {
    console.log(`glassbox bench:verify — node ${process.version}, temp dir ${dir}`);
    const pki = await createDevPki(join(dir, 'pki'), { signers: 2, threshold: 2, now: new Date('2026-01-01T00:00:00Z') });
    const signers = await Promise.all(pki.signers.map((s) => FileKeySigner.fromFiles(s.key, s.chain)));
    const results: Array<{ size: number } & ReturnType<typeof report>> = [];
    for (const [i, size] of sizes.entries()) {
      const bundle = await buildBundle(dir, signers, size * GiB);
      // The first size gets the full alternation; larger ones are for memory (one timed run each).
      const m = await measure(bundle, pki.trustPolicy, i === 0 ? runs : 1);
      results.push({ size, ...report(`${size} GiB bundle`, bundle.bytes, m) });
      await rm(bundle.path);
    }
    console.log('\nsummary');
    for (const r of results) {
      const ok = (b: boolean): string => (b ? 'met' : 'NOT met');
      console.log(
        `  ${r.size} GiB: throughput ratio CLI ${r.ratioCli.toFixed(2)} (${ok(r.ratioCli >= TARGET_RATIO)}), verifier ${r.ratioInProcess.toFixed(2)} (${ok(r.ratioInProcess >= TARGET_RATIO)}); ` +
          `peak RSS CLI ${fmtMiB(r.peakCli)} (${ok(r.peakCli <= TARGET_RSS_MIB * MiB)}), verifier ${fmtMiB(r.peakChild)} (${ok(r.peakChild <= TARGET_RSS_MIB * MiB)})`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
