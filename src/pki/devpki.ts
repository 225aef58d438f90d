/**
 * A development PKI on disk: what release engineers and tests sign with
 * before the production HSM exists. `glassbox release pki` calls this.
 *
 *   <dir>/
 *     pki.json               index of everything below (schema glassbox.devpki/v1)
 *     trust-policy.json      canonical JSON trust policy (bundle-v1 section 3): the root, threshold, empty revocation lists
 *     root-ca.pem            self-signed root CA (default ECDSA P-384, 20 years)
 *     root-ca.key            its private key, PKCS #8 PEM, mode 0600
 *     release-ca.pem/.key    release intermediate under the root (pathLen 0, 10 years)
 *     signer-<k>.pem/.key    release signer k = 1..N: leaf, EKU codeSigning (3 years)
 *     signer-<k>.chain.pem   leaf + release intermediate: exactly what goes into signatures/<k>.pem
 *     device-ca.pem/.key     device identity intermediate under the root (pathLen 0): issues
 *                            clientAuth certificates named CN=<deviceId>, OU=<hardwareModel>
 *
 * Private keys are written unencrypted with mode 0600 (development only).
 * Files are created exclusively: an existing file is never overwritten, the
 * call fails naming it. Everything is generated in memory first and checked
 * (the policy loads, each signer chain validates) before the first byte is
 * written; pki.json is written last.
 */
import { lstat, mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { GlassboxError, IoError } from '../errors.js';
import { canonicalBytes } from '../manifest/canonical.js';
import { validateChain } from '../trust/chain.js';
import { certSha256, spkiSha256 } from '../trust/fingerprint.js';
import { loadTrustAnchors } from '../trust/policy.js';
import type { TrustPolicy } from '../trust/types.js';
import { createIntermediateCa, createLeaf, createRootCa, DEFAULT_ORGANIZATION, type CertifiedKey } from './certs.js';
import { ACCEPTED_KEY_ALGORITHMS, generateKey, privateKeyPem, type AcceptedKeyAlgorithm } from './keys.js';
import { x509 } from './x509.js';

export interface DevPkiOptions {
  /** Number of release signers (1..16); default 3, or the length of signerAlgorithms. */
  readonly signers?: number;
  /** Algorithm per signer; default all ecdsa-p256. A shorter list is repeated. */
  readonly signerAlgorithms?: readonly AcceptedKeyAlgorithm[];
  readonly rootAlgorithm?: AcceptedKeyAlgorithm;
  readonly intermediateAlgorithm?: AcceptedKeyAlgorithm;
  /** Trust policy threshold (1..signers); default 2, or 1 with a single signer. */
  readonly threshold?: number;
  /** Organization in every subject; default "Homeland Safety Systems". */
  readonly organization?: string;
  /** Reference time for validity periods; default now. */
  readonly now?: Date;
}

export interface DevPkiFile {
  /** Absolute paths. */
  readonly cert: string;
  readonly key: string;
  readonly subject: string;
  readonly algorithm: AcceptedKeyAlgorithm;
  readonly certSha256: string;
  readonly spkiSha256: string;
  readonly notAfter: string;
}

export interface DevPkiSigner extends DevPkiFile {
  readonly index: number;
  /** leaf + release intermediate, for signatures/<k>.pem */
  readonly chain: string;
}

export interface DevPki {
  readonly dir: string;
  /** pki.json */
  readonly index: string;
  readonly trustPolicy: string;
  readonly trustPolicySha256: string;
  readonly threshold: number;
  readonly root: DevPkiFile;
  readonly releaseCa: DevPkiFile;
  readonly deviceCa: DevPkiFile;
  readonly signers: readonly DevPkiSigner[];
}

export const DEVPKI_INDEX = 'pki.json';
export const DEVPKI_MAX_SIGNERS = 16;

function usage(message: string): GlassboxError {
  return new GlassboxError('USAGE', message, { exitCode: 2 });
}

function resolveOptions(opts: DevPkiOptions): { algorithms: AcceptedKeyAlgorithm[]; threshold: number } {
  const list = opts.signerAlgorithms ?? [];
  for (const a of [...list, opts.rootAlgorithm, opts.intermediateAlgorithm]) {
    if (a !== undefined && !(ACCEPTED_KEY_ALGORITHMS as readonly string[]).includes(a)) {
      throw usage(`key algorithm ${String(a)} is not accepted (use ${ACCEPTED_KEY_ALGORITHMS.join(', ')})`);
    }
  }
  const count = opts.signers ?? (list.length > 0 ? list.length : 3);
  if (!Number.isInteger(count) || count < 1 || count > DEVPKI_MAX_SIGNERS) throw usage(`signer count must be 1..${DEVPKI_MAX_SIGNERS}, got ${count}`);
  if (list.length > count) throw usage(`${list.length} signer algorithms given for ${count} signers`);
  const algorithms = Array.from({ length: count }, (_, i) => (list.length > 0 ? (list[i % list.length] as AcceptedKeyAlgorithm) : 'ecdsa-p256'));
  const threshold = opts.threshold ?? Math.min(2, count);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > count) {
    throw usage(`threshold must be 1..${count} (the number of signers), got ${threshold}`);
  }
  return { algorithms, threshold };
}

interface Planned {
  readonly rel: string;
  readonly bytes: string | Buffer;
  readonly mode: number;
}

function describe(dir: string, base: string, ck: CertifiedKey, algorithm: AcceptedKeyAlgorithm): DevPkiFile {
  return {
    cert: join(dir, `${base}.pem`),
    key: join(dir, `${base}.key`),
    subject: ck.cert.subject.split('\n').join(', '),
    algorithm,
    certSha256: certSha256(ck.cert),
    spkiSha256: spkiSha256(ck.cert),
    notAfter: new x509.X509Certificate(ck.cert.raw).notAfter.toISOString(),
  };
}

/** Builds the development PKI and writes it into `dir` (created if missing). */
export async function createDevPki(dirArg: string, opts: DevPkiOptions = {}): Promise<DevPki> {
  const dir = resolve(dirArg);
  const { algorithms, threshold } = resolveOptions(opts);
  const now = opts.now ?? new Date();
  const org = opts.organization ?? DEFAULT_ORGANIZATION;
  const rootAlg = opts.rootAlgorithm ?? 'ecdsa-p384';
  const interAlg = opts.intermediateAlgorithm ?? 'ecdsa-p256';
  const name = (cn: string): Array<Record<string, string[]>> => [{ CN: [cn] }, { O: [org] }];

  const [rootKey, releaseKey, deviceKey, ...signerKeys] = await Promise.all([
    generateKey(rootAlg),
    generateKey(interAlg),
    generateKey(interAlg),
    ...algorithms.map((a) => generateKey(a)),
  ]);
  if (!rootKey || !releaseKey || !deviceKey) throw new Error('key generation returned too few keys');
  const root = await createRootCa({ key: rootKey, subject: name('glassbox development root CA'), now });
  const releaseCa = await createIntermediateCa(root, { key: releaseKey, subject: name('glassbox development release CA'), pathLen: 0, now });
  const deviceCa = await createIntermediateCa(root, { key: deviceKey, subject: name('glassbox development device CA'), pathLen: 0, now });
  const signers: CertifiedKey[] = [];
  for (const [i, key] of signerKeys.entries()) {
    signers.push(await createLeaf(releaseCa, { key, subject: name(`glassbox development release signer ${i + 1}`), purpose: 'codeSigning', now }));
  }

  const policy: TrustPolicy = { schema: 'glassbox.trust/v1', roots: [root.pem], threshold, revoked: { certificates: [], keys: [] } };
  const policyBytes = canonicalBytes(policy);
  // Self-check before anything touches the disk.
  const anchors = loadTrustAnchors(policyBytes);
  for (const [i, s] of signers.entries()) {
    const chain = validateChain(s.pem + releaseCa.pem, anchors, now, 'codeSigning');
    if (!chain.ok) throw new Error(`development signer ${i + 1} does not validate: ${chain.reason}`);
  }

  const files: Planned[] = [
    { rel: 'root-ca.pem', bytes: root.pem, mode: 0o644 },
    { rel: 'root-ca.key', bytes: privateKeyPem(root.key), mode: 0o600 },
    { rel: 'release-ca.pem', bytes: releaseCa.pem, mode: 0o644 },
    { rel: 'release-ca.key', bytes: privateKeyPem(releaseCa.key), mode: 0o600 },
    { rel: 'device-ca.pem', bytes: deviceCa.pem, mode: 0o644 },
    { rel: 'device-ca.key', bytes: privateKeyPem(deviceCa.key), mode: 0o600 },
    ...signers.flatMap((s, i): Planned[] => [
      { rel: `signer-${i + 1}.pem`, bytes: s.pem, mode: 0o644 },
      { rel: `signer-${i + 1}.key`, bytes: privateKeyPem(s.key), mode: 0o600 },
      { rel: `signer-${i + 1}.chain.pem`, bytes: s.pem + releaseCa.pem, mode: 0o644 },
    ]),
    { rel: 'trust-policy.json', bytes: policyBytes, mode: 0o644 },
  ];

  const result: DevPki = {
    dir,
    index: join(dir, DEVPKI_INDEX),
    trustPolicy: join(dir, 'trust-policy.json'),
    trustPolicySha256: anchors.sha256,
    threshold,
    root: describe(dir, 'root-ca', root, rootAlg),
    releaseCa: describe(dir, 'release-ca', releaseCa, interAlg),
    deviceCa: describe(dir, 'device-ca', deviceCa, interAlg),
    signers: signers.map((s, i) => ({
      ...describe(dir, `signer-${i + 1}`, s, algorithms[i] as AcceptedKeyAlgorithm),
      index: i + 1,
      chain: join(dir, `signer-${i + 1}.chain.pem`),
    })),
  };

  const all = [...files, { rel: DEVPKI_INDEX, bytes: JSON.stringify(indexOf(result, now), null, 2) + '\n', mode: 0o644 }];
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new IoError(`cannot create PKI directory ${dir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  // Refuse before writing anything when any target exists (the 'wx' writes below still guard the race).
  const existing: string[] = [];
  for (const f of all) {
    try {
      await lstat(join(dir, f.rel));
      existing.push(f.rel);
    } catch {
      // absent: good
    }
  }
  if (existing.length > 0) {
    throw new IoError(`${dir} already holds ${existing.join(', ')}; a development PKI is never overwritten (choose an empty directory)`);
  }
  for (const f of all) {
    const path = join(dir, f.rel);
    try {
      // 'wx': never overwrite; mode applies at creation, before any byte is written.
      await writeFile(path, f.bytes, { flag: 'wx', mode: f.mode });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new IoError(code === 'EEXIST' ? `${path} already exists; a development PKI is never overwritten (choose an empty directory)` : `cannot write ${path}: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
  }
  return result;
}

/** pki.json: the same facts as the returned object, with paths relative to the directory. */
function indexOf(pki: DevPki, created: Date): unknown {
  const rel = (p: string): string => relative(pki.dir, p);
  const file = (f: DevPkiFile) => ({ ...f, cert: rel(f.cert), key: rel(f.key) });
  return {
    schema: 'glassbox.devpki/v1',
    created: created.toISOString(),
    warning: 'development PKI: private keys are unencrypted; never use for production releases',
    trustPolicy: { path: rel(pki.trustPolicy), sha256: pki.trustPolicySha256, threshold: pki.threshold },
    root: file(pki.root),
    releaseCa: file(pki.releaseCa),
    deviceCa: file(pki.deviceCa),
    signers: pki.signers.map((s) => ({ ...file(s), index: s.index, chain: rel(s.chain) })),
  };
}
