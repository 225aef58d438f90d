/**
 * Benchmark of the release writer: writeBundle (stream an artifact into a
 * new bundle, hashing it on the way) and addSignature (copy a bundle
 * through, re-hashing every artifact, with one more signature pair),
 * against the physical limit measured in the same run on the same bytes:
 * the slower of `sha256sum FILE` and `cp FILE COPY` (the writer reads,
 * hashes and writes every byte once; at best hashing and copying overlap).
 *
 *   npm run bench:release [-- SIZE_MIB]      (default 512)
 *
 * Prints MiB/s for each and its ratio to the limit, and the peak RSS growth.
 */
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { addSignature, writeBundle } from '../bundle/writer.js';
import { buildManifest } from '../release/manifest-build.js';
import { benchTempDir, devSigners, randomFile } from './common.js';

const sizeMiB = Number(process.argv[2] ?? 512);
if (!Number.isInteger(sizeMiB) || sizeMiB < 1) {
  process.stderr.write('usage: bench:release [SIZE_MIB]\n');
  process.exit(2);
}

function best(runs: number, f: () => Promise<void> | void): Promise<number> {
  return (async () => {
    let min = Infinity;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await f();
      min = Math.min(min, performance.now() - t0);
    }
    return min;
  })();
}

async function main(): Promise<void> {
  const bytes = sizeMiB * 1024 * 1024;
  // At most three copies at once: the artifact, the bundle, the signed bundle.
  const dir = await benchTempDir('glassbox-bench-release-', bytes * 3.1);
  try {
    const artifact = join(dir, 'rootfs.img');
    await randomFile(artifact, bytes);
    const template = {
      schema: 'glassbox.manifest/v1',
      product: 'hss-nvr',
      hardware: ['nvr-8p'],
      version: '1.0.0',
      securityVersion: 1,
      released: '2025-03-01T12:00:00Z',
      expires: '2099-03-01T12:00:00Z',
      egress: [],
      provenance: { sourceRepository: 'https://git.hss.example/fw', sourceCommit: 'a'.repeat(40), builder: 'https://ci.hss.example/b', buildFinished: '2025-03-01T11:00:00Z' },
    };
    const built = await buildManifest(template, [{ name: 'rootfs.img', role: 'rootfs', path: artifact }], { now: new Date('2025-03-01T11:30:00Z'), outDir: join(dir, 'gen') });
    const { signers } = await devSigners(dir);
    const files = built.files.map((f) => ({ name: f.name, path: f.path }));
    const bundle = join(dir, 'b.tar');
    const copy = join(dir, 'copy');

    // warm the page cache
    execFileSync('sh', ['-c', `cat "${artifact}" > /dev/null`]);
    const hashMs = await best(3, () => {
      execFileSync('sha256sum', [artifact], { stdio: 'ignore' });
    });
    const copyMs = await best(3, () => {
      execFileSync('cp', [artifact, copy]);
    });
    // Reading, hashing and writing every byte once: at best the slower of the two, if they overlap perfectly.
    const limit = Math.max(hashMs, copyMs);
    await rm(copy, { force: true });

    let peak = process.memoryUsage().rss;
    const base = peak;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const write = await best(3, async () => {
      await writeBundle(bundle, { manifestBytes: built.bytes, signatures: [], artifacts: files });
    });
    const signed = join(dir, 'signed.tar');
    const addSig = await best(3, async () => {
      await addSignature(bundle, signed, signers[0]!);
    });
    clearInterval(timer);

    const mibs = (ms: number): string => ((sizeMiB * 1000) / ms).toFixed(0);
    process.stdout.write(`artifact ${sizeMiB} MiB, best of 3, page cache warm\n`);
    process.stdout.write(`sha256sum FILE                      ${hashMs.toFixed(0)} ms  ${mibs(hashMs)} MiB/s\n`);
    process.stdout.write(`cp FILE COPY                        ${copyMs.toFixed(0)} ms  ${mibs(copyMs)} MiB/s\n`);
    process.stdout.write(`limit = max of the two              ${limit.toFixed(0)} ms  ${mibs(limit)} MiB/s\n`);
    process.stdout.write(`writeBundle                         ${write.toFixed(0)} ms  ${mibs(write)} MiB/s  ratio ${(limit / write).toFixed(2)} of the limit\n`);
    process.stdout.write(`addSignature (copy + re-hash)       ${addSig.toFixed(0)} ms  ${mibs(addSig)} MiB/s  ratio ${(limit / addSig).toFixed(2)} of the limit\n`);
    process.stdout.write(`peak RSS growth ${((peak - base) / 2 ** 20).toFixed(1)} MiB\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
