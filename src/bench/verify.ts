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
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { verifyBundleFile } from '../bundle/verify.js';
import { loadTrustAnchors } from '../trust/policy.js';
import { TARGET_RATIO, TARGET_RSS_MIB, CLI, GiB, MiB, alternate, benchTempDir, buildBundle, childFigures, devSigners, fmtMiB, median, met, option, runChild, secondsList, timed, type BenchBundle, type Run } from './common.js';

const HERE = fileURLToPath(import.meta.url);
const AT = '2026-06-01T12:00:00Z';
const TIMES = { buildFinished: '2026-05-01T11:00:00Z', released: '2026-05-01T12:00:00Z', expires: '2027-05-01T12:00:00Z' };

const fmtRate = (bytes: number, s: number): string => `${(bytes / s / 1e9).toFixed(2)} GB/s`;

interface Measured {
  readonly openssl: Run[];
  readonly cli: Run[];
  readonly inProcess: Run[];
}

function measure(bundle: BenchBundle, policy: string, runs: number): Promise<Measured> {
  return alternate(
    {
      openssl: { what: 'openssl', run: () => timed('openssl', ['dgst', '-sha256', bundle.path]) },
      cli: { what: 'verification', run: () => timed(process.execPath, [CLI, 'verify', bundle.path, '--trust', policy, '--at', AT]) },
      inProcess: { what: 'verification', run: () => timed(process.execPath, [HERE, '--child', bundle.path, policy]) },
    },
    runs,
  );
}

function report(label: string, bytes: number, m: Measured): { ratioCli: number; ratioInProcess: number; peakCli: number; peakChild: number } {
  const o = median(m.openssl.map((r) => r.seconds));
  const c = median(m.cli.map((r) => r.seconds));
  const p = median(m.inProcess.map((r) => childFigures(r).seconds));
  const pWall = median(m.inProcess.map((r) => r.seconds));
  const peakCli = Math.max(...m.cli.map((r) => r.peakRssBytes ?? 0));
  const peakChild = Math.max(...m.inProcess.map((r) => childFigures(r).maxRssBytes));
  console.log(`\n${label}: ${bytes} bytes, ${m.openssl.length} alternating runs (median)`);
  console.log(`  openssl dgst -sha256            ${o.toFixed(3)} s  ${fmtRate(bytes, o)}   [${secondsList(m.openssl)}]`);
  console.log(`  glassbox verify (CLI process)   ${c.toFixed(3)} s  ${fmtRate(bytes, c)}   ratio ${(o / c).toFixed(2)}   peak RSS ${fmtMiB(peakCli)}   [${secondsList(m.cli)}]`);
  console.log(`  verifyBundleFile (child, timed inside) ${p.toFixed(3)} s  ${fmtRate(bytes, p)}   ratio ${(o / p).toFixed(2)}   peak RSS ${fmtMiB(peakChild)}   (process wall ${pWall.toFixed(3)} s)`);
  return { ratioCli: o / c, ratioInProcess: o / p, peakCli, peakChild };
}

/** The in-process child: verifies once and prints {seconds, maxRssBytes}. */
async function child(bundlePath: string, policyPath: string): Promise<void> {
  const trust = loadTrustAnchors(await readFile(policyPath));
  await runChild(() => verifyBundleFile(bundlePath, { trust, at: new Date(AT), securityFloor: 0 }));
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]!, process.argv[4]!);
  const sizes = option('--sizes', '1,4').split(',').map(Number);
  const runs = Number(option('--runs', '3'));
  if (sizes.some((s) => !(s > 0)) || !(runs >= 1)) throw new Error('usage: bench:verify [--sizes 1,4] [--runs 3]');
  const dir = await benchTempDir('glassbox-bench-verify-', Math.max(...sizes) * GiB * 1.1);
  try {
    console.log(`glassbox bench:verify — node ${process.version}, temp dir ${dir}`);
    const { pki, signers } = await devSigners(dir, new Date('2026-01-01T00:00:00Z'));
    const results: Array<{ size: number } & ReturnType<typeof report>> = [];
    for (const [i, size] of sizes.entries()) {
      const bundle = await buildBundle(dir, signers, size * GiB, TIMES);
      // The first size gets the full alternation; larger ones are for memory (one timed run each).
      const m = await measure(bundle, pki.trustPolicy, i === 0 ? runs : 1);
      results.push({ size, ...report(`${size} GiB bundle`, bundle.bytes, m) });
      await rm(bundle.path);
    }
    console.log('\nsummary');
    for (const r of results) {
      console.log(
        `  ${r.size} GiB: throughput ratio CLI ${r.ratioCli.toFixed(2)} (${met(r.ratioCli >= TARGET_RATIO)}), verifier ${r.ratioInProcess.toFixed(2)} (${met(r.ratioInProcess >= TARGET_RATIO)}); ` +
          `peak RSS CLI ${fmtMiB(r.peakCli)} (${met(r.peakCli <= TARGET_RSS_MIB * MiB)}), verifier ${fmtMiB(r.peakChild)} (${met(r.peakChild <= TARGET_RSS_MIB * MiB)})`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
