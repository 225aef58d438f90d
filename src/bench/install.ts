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
 * as on a device. The bundle, the timing and the alternation are
 * src/bench/common.ts, shared with bench:verify. Temp files are removed.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileChunks } from '../bundle/reader.js';
import { installBundle } from '../install/install.js';
import { TARGET_RATIO, TARGET_RSS_MIB, CLI, GiB, MiB, alternate, benchTempDir, buildBundle, check, childFigures, devSigners, fmtMiB, median, met, option, runChild, secondsList, timed } from './common.js';

const HERE = fileURLToPath(import.meta.url);

const fmtRate = (bytes: number, s: number): string => `${(bytes / s / 1e6).toFixed(0)} MB/s`;
const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The in-process child: one install, timed inside (no CLI start-up); prints {seconds, maxRssBytes}. */
async function child(bundlePath: string, stateDir: string): Promise<void> {
  await runChild(() => installBundle({ stateDir, source: readFileChunks(bundlePath), sourceName: bundlePath, clock: new Date() }));
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]!, process.argv[4]!);
  const sizes = option('--sizes', '1').split(',').map(Number);
  const runs = Number(option('--runs', '3'));
  if (sizes.some((s) => !(s > 0)) || !(runs >= 1)) throw new Error('usage: bench:install [--sizes 1] [--runs 3]');
  const dir = await benchTempDir('glassbox-bench-install-', Math.max(...sizes) * GiB * 5.2); // bundle, copy, two slots, one staging
  const summary: string[] = [];
  try {
    const now = new Date();
    console.log(`glassbox bench:install — node ${process.version}, temp dir ${dir}`);
    const { pki, signers } = await devSigners(dir, new Date(now.getTime() - 24 * 3600_000));
    const times = {
      buildFinished: iso(new Date(now.getTime() - 2 * 3600_000)),
      released: iso(new Date(now.getTime() - 3600_000)),
      expires: iso(new Date(now.getTime() + 365 * 24 * 3600_000)),
    };
    for (const [i, size] of sizes.entries()) {
      const bundle = await buildBundle(dir, signers, size * GiB, times);
      const state = join(dir, `state-${size}`);
      check(await timed(process.execPath, [CLI, 'device', 'init', '--state-dir', state, '--trust', pki.trustPolicy, '--hardware', 'nvr-8p']), 'device init');
      const copy = join(dir, 'copy.bin');
      const confirm = async (): Promise<void> => void check(await timed(process.execPath, [CLI, 'boot-check', '--state-dir', state]), 'boot-check');
      // One untimed pass of each (but the inner installer) warms the page cache: the bundle is read from cache by all.
      const n = i === 0 ? runs : 1;
      const m = await alternate(
        {
          openssl: { what: 'openssl', run: () => timed('openssl', ['dgst', '-sha256', bundle.path]) },
          cpSync: { what: 'cp+sync', run: () => timed('sh', ['-c', 'cp "$1" "$2" && sync "$2"', 'cp-sync', bundle.path, copy]), after: () => rm(copy) },
          install: { what: 'install', run: () => timed(process.execPath, [CLI, 'install', bundle.path, '--state-dir', state]), after: confirm },
          inner: { what: 'installBundle', run: () => timed(process.execPath, [HERE, '--child', bundle.path, state]), after: confirm, warm: false },
        },
        n,
      );
      const bytes = bundle.bytes;
      const to = median(m.openssl.map((r) => r.seconds));
      const tc = median(m.cpSync.map((r) => r.seconds));
      const tg = median(m.install.map((r) => r.seconds));
      const limit = Math.max(to, tc);
      const ratio = limit / tg;
      const peak = Math.max(...m.install.map((r) => r.peakRssBytes ?? 0));
      const inner = m.inner.map(childFigures);
      const tk = median(inner.map((f) => f.seconds));
      const peakInner = Math.max(...inner.map((f) => f.maxRssBytes));
      console.log(`\n${size} GiB bundle: ${bytes} bytes, ${n} alternating run(s) (median)`);
      console.log(`  openssl dgst -sha256          ${to.toFixed(3)} s  ${fmtRate(bytes, to)}   [${secondsList(m.openssl)}]`);
      console.log(`  cp + sync (fsync the copy)    ${tc.toFixed(3)} s  ${fmtRate(bytes, tc)}   [${secondsList(m.cpSync)}]`);
      console.log(`  glassbox install (CLI)        ${tg.toFixed(3)} s  ${fmtRate(bytes, tg)}   ratio to the slower limit ${ratio.toFixed(2)}   peak RSS ${fmtMiB(peak)}   [${secondsList(m.install)}]`);
      console.log(`  installBundle (child, timed inside) ${tk.toFixed(3)} s  ${fmtRate(bytes, tk)}   ratio ${(limit / tk).toFixed(2)}   peak RSS ${fmtMiB(peakInner)}   [${inner.map((f) => f.seconds.toFixed(2)).join(' ')}]`);
      summary.push(
        `  ${size} GiB: ratio CLI ${ratio.toFixed(2)}, installer ${(limit / tk).toFixed(2)} vs ${to >= tc ? 'openssl' : 'cp+sync'} (target ${TARGET_RATIO}: ${met(ratio >= TARGET_RATIO)} / ${met(limit / tk >= TARGET_RATIO)}); ` +
          `peak RSS CLI ${fmtMiB(peak)}, installer ${fmtMiB(peakInner)} (target ${TARGET_RSS_MIB} MiB: ${met(peak <= TARGET_RSS_MIB * MiB)} / ${met(peakInner <= TARGET_RSS_MIB * MiB)})`,
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
