/**
 * Signed test bundles and device states for the install tests, built in
 * code at test time with the real writer and the test PKI (ECDSA P-256,
 * fast). Nothing here is committed key material.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { canonicalBytes } from '../../src/manifest/canonical.js';
import { writeBundle } from '../../src/bundle/writer.js';
import type { ArtifactRole } from '../../src/manifest/types.js';
import { makeTestPki, signWith, type TestPki, type TestPkiOptions } from '../helpers/pki.js';

export const HARDWARE = 'nvr-8p';
const HOUR = 3600_000;
const DAY = 24 * HOUR;

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `glassbox-${prefix}-`));
}

/** A PKI valid around the real clock (the CLI reads the real clock). */
export function installPki(opts: TestPkiOptions = {}): Promise<TestPki> {
  return makeTestPki({ now: new Date(), signers: 3, threshold: 2, ...opts });
}

export interface ArtifactSpec {
  readonly name: string;
  readonly role: ArtifactRole;
  readonly data: Buffer;
}

export interface BundleSpec {
  readonly version?: string;
  readonly securityVersion?: number;
  readonly hardware?: readonly string[];
  readonly artifacts?: readonly ArtifactSpec[];
  /** Bytes of a new trust policy, carried as a `trust` artifact. */
  readonly trustPolicy?: Buffer;
  /** Which signers of which PKI sign, in order (default: the first two of `pki`). */
  readonly signWith?: ReadonlyArray<{ readonly pki: TestPki; readonly signer: number }>;
  readonly expires?: Date;
  readonly released?: Date;
}

export interface BuiltBundle {
  readonly path: string;
  readonly manifestBytes: Buffer;
  readonly manifestSha256: string;
  readonly artifacts: readonly ArtifactSpec[];
}

/** Deterministic pseudo-random bytes (fast, seedable). */
export function payload(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

const BUILDER = 'https://ci.hss.example/builders/release';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

export async function buildBundle(dir: string, pki: TestPki, spec: BundleSpec = {}): Promise<BuiltBundle> {
  const version = spec.version ?? '1.0.0';
  const work = await mkdtemp(join(dir, 'bundle-src-'));
  const now = Date.now();
  const released = spec.released ?? new Date(now - HOUR);
  const payloads: ArtifactSpec[] = [...(spec.artifacts ?? [{ name: 'app.bin', role: 'app', data: payload(64 * 1024, 7) }])];
  if (spec.trustPolicy) payloads.push({ name: 'trust.json', role: 'trust', data: spec.trustPolicy });
  const sbom = Buffer.from(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, components: [] }));
  payloads.push({ name: 'sbom.cdx.json', role: 'sbom', data: sbom });
  const finished = new Date(released.getTime() - HOUR).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: payloads.map((a) => ({ name: a.name, digest: { sha256: sha256(a.data) } })),
    predicateType: 'https://slsa.dev/provenance/v1',
    predicate: {
      buildDefinition: {
        buildType: 'https://ci.hss.example/build/v1',
        externalParameters: {},
        resolvedDependencies: [{ uri: 'git+https://git.hss.example/nvr/firmware', digest: { gitCommit: COMMIT } }],
      },
      runDetails: { builder: { id: BUILDER }, metadata: { finishedOn: finished } },
    },
  };
  const all: ArtifactSpec[] = [...payloads, { name: 'provenance.intoto.json', role: 'provenance', data: Buffer.from(JSON.stringify(statement)) }];
  const manifest = {
    schema: 'glassbox.manifest/v1',
    product: 'hss-nvr',
    hardware: [...(spec.hardware ?? [HARDWARE])],
    version,
    securityVersion: spec.securityVersion ?? 1,
    released: released.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    expires: (spec.expires ?? new Date(now + 30 * DAY)).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    artifacts: all.map((a) => ({ name: a.name, size: a.data.length, sha256: sha256(a.data), role: a.role })),
    egress: [],
    provenance: { sourceRepository: 'https://git.hss.example/nvr/firmware', sourceCommit: COMMIT, builder: BUILDER, buildFinished: finished },
  };
  const manifestBytes = canonicalBytes(manifest);
  for (const a of all) await writeFile(join(work, a.name), a.data);
  const signers = spec.signWith ?? [
    { pki, signer: 0 },
    { pki, signer: 1 },
  ];
  const signatures = signers.map(({ pki: p, signer }) => ({ sig: signWith(p.signers[signer]!, manifestBytes), chainPem: p.chains[signer]! }));
  const path = join(dir, `bundle-${version}-${sha256(manifestBytes).slice(0, 8)}.tar`);
  await writeBundle(path, { manifestBytes, signatures, artifacts: all.map((a) => ({ name: a.name, path: join(work, a.name) })) });
  await rm(work, { recursive: true, force: true });
  return { path, manifestBytes, manifestSha256: sha256(manifestBytes), artifacts: all };
}

/** Every file under `root` (relative path → sha256), for "state unchanged" assertions. */
export async function snapshot(root: string, ignore: (rel: string) => boolean = () => false): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const rel = relative(root, p);
      if (ignore(rel)) continue;
      if (e.isDirectory()) {
        out[rel + '/'] = 'dir';
        await walk(p);
      } else {
        out[rel] = sha256(await readFile(p));
      }
    }
  };
  await walk(root);
  return out;
}

/** The device state files (everything but the journal, which logs every outcome). */
export function deviceStateSnapshot(stateDir: string): Promise<Record<string, string>> {
  return snapshot(stateDir, (rel) => rel.startsWith('journal'));
}

export async function writeHook(stateDir: string, name: string, script: string): Promise<void> {
  await mkdir(join(stateDir, 'health.d'), { recursive: true });
  await writeFile(join(stateDir, 'health.d', name), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
}

export async function fileExists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
