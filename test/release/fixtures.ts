/**
 * Release fixtures for writer/release/buyer tests, generated at test time:
 * small artifact files, a canonical manifest naming them, and signers
 * (root CA → release intermediate → code-signing leaves). No key is committed.
 */
import { createHash, sign as cryptoSign, constants } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildManifest, type ArtifactFile } from '../../src/release/manifest-build.js';
import type { ArtifactRole, Manifest } from '../../src/manifest/types.js';
import { generateKey, type AcceptedKeyAlgorithm } from '../../src/pki/keys.js';
import { createIntermediateCa, createLeaf, createRootCa, type CertifiedKey } from '../../src/pki/certs.js';
import type { BundleSigner } from '../../src/bundle/writer.js';

export const RELEASED = '2025-03-01T12:00:00Z';

const made: string[] = [];

/** A fresh temporary directory, removed by removeTempDirs() (call it in afterAll). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `glassbox-${prefix}-`));
  made.push(dir);
  return dir;
}

/** Removes every directory tempDir() made in this test file. */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ArtifactSpec {
  readonly name: string;
  readonly role: ArtifactRole;
  /** The bytes, written to the release folder; or `path` of an existing file. */
  readonly data?: Buffer;
  readonly path?: string;
}

/** Payload artifacts; makeRelease adds the generated SBOM and provenance statement. */
export function defaultArtifacts(): (ArtifactSpec & { data: Buffer })[] {
  return [
    { name: 'rootfs.squashfs', role: 'rootfs', data: Buffer.alloc(70_000, 0x5a) },
    { name: 'app.tar', role: 'app', data: Buffer.from('recorder application\n'.repeat(100)) },
  ];
}

export const TEMPLATE = {
  schema: 'glassbox.manifest/v1',
  product: 'hss-nvr',
  hardware: ['nvr-8p'],
  version: '4.2.0',
  securityVersion: 3,
  released: RELEASED,
  expires: '2035-03-01T12:00:00Z',
  egress: [{ id: 'ntp', purpose: 'time sync', proto: 'udp', host: 'ntp.hss.example', port: 123 }],
  provenance: {
    sourceRepository: 'https://git.hss.example/nvr/firmware',
    sourceCommit: '0123456789abcdef0123456789abcdef01234567',
    builder: 'https://ci.hss.example/builders/release',
    buildFinished: '2025-03-01T11:00:00Z',
  },
} as const;

export interface Release {
  readonly dir: string;
  readonly manifest: Manifest;
  readonly manifestBytes: Buffer;
  /** Every artifact in bundle order, the generated SBOM and provenance included. */
  readonly artifacts: { name: string; path: string }[];
}

/**
 * Writes the payload artifacts to `dir` and builds the release with
 * buildManifest (real SBOM and provenance statement, canonical manifest).
 */
export async function makeRelease(dir: string, specs: ArtifactSpec[] = defaultArtifacts(), extra: Record<string, unknown> = {}): Promise<Release> {
  const files: ArtifactFile[] = [];
  for (const a of specs) {
    let path = a.path;
    if (path === undefined) {
      path = join(dir, `in-${a.name}`);
      await writeFile(path, a.data ?? Buffer.alloc(0));
    }
    files.push({ name: a.name, role: a.role, path });
  }
  const built = await buildManifest({ ...TEMPLATE, ...extra }, files, { now: new Date(RELEASED), outDir: join(dir, 'generated') });
  return { dir, manifest: built.manifest, manifestBytes: built.bytes, artifacts: built.files.map((f) => ({ name: f.name, path: f.path })) };
}

export interface TestPki {
  readonly root: CertifiedKey;
  readonly intermediate: CertifiedKey;
  readonly leaves: CertifiedKey[];
}

/** Root → intermediate → `n` code-signing leaves of the given algorithms. */
export async function makePki(algorithms: AcceptedKeyAlgorithm[]): Promise<TestPki> {
  const root = await createRootCa({ key: await generateKey('ecdsa-p256'), subject: 'CN=test root' });
  const intermediate = await createIntermediateCa(root, { key: await generateKey('ecdsa-p256'), subject: 'CN=test release CA' });
  const leaves: CertifiedKey[] = [];
  for (const [i, alg] of algorithms.entries()) {
    leaves.push(await createLeaf(intermediate, { key: await generateKey(alg), subject: `CN=release signer ${i + 1}`, purpose: 'codeSigning' }));
  }
  return { root, intermediate, leaves };
}

/** A signer over a leaf's private key, signing as `openssl dgst` would. */
export function keySigner(leaf: CertifiedKey, intermediate: CertifiedKey, opts: { pss?: boolean } = {}): BundleSigner {
  const hash = leaf.key.algorithm === 'ecdsa-p384' ? 'sha384' : 'sha256';
  return {
    chainPem: leaf.pem + intermediate.pem,
    sign: async (data) =>
      cryptoSign(hash, data, opts.pss ? { key: leaf.key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : leaf.key.privateKey),
  };
}
