/**
 * The demo's folder (default `.glassbox-dev/`, git-ignored):
 *
 *   <dir>/pki/       development PKI: created once, reused while it is whole and valid
 *   <dir>/release/   template, sample artifacts, bundles: recreated on every run
 *
 * Only folders the demo itself made are ever removed: `pki/` when every file
 * in it is one a development PKI holds, `release/` when it carries the
 * demo's marker file. Anything else there is refused, never deleted.
 */
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IoError, describeError } from '../errors.js';
import { createDevPki } from '../pki/devpki.js';
import { loadTrustAnchors } from '../trust/policy.js';

export const RELEASE_MARKER = '.glassbox-demo';
const DEVPKI_FILE = /^(pki\.json|trust-policy\.json|(root-ca|release-ca|device-ca)\.(pem|key)|signer-([1-9]|1[0-6])\.(pem|key|chain\.pem))(\.tmp.*)?$/;
const INDEX_MAX_BYTES = 256 * 1024;
/** A reused PKI must stay valid at least this long after `now`. */
const MIN_REMAINING_MS = 7 * 24 * 3600_000;

export interface DemoSigner {
  readonly index: number;
  readonly key: string;
  readonly chain: string;
  readonly subject: string;
}

export interface DemoPki {
  readonly dir: string;
  readonly reused: boolean;
  readonly trustPolicy: string;
  readonly threshold: number;
  readonly signers: readonly DemoSigner[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

interface IndexFile {
  schema?: unknown;
  trustPolicy?: { path?: unknown; threshold?: unknown };
  signers?: Array<{ index?: unknown; key?: unknown; chain?: unknown; subject?: unknown; notAfter?: unknown }>;
  root?: { notAfter?: unknown };
  releaseCa?: { notAfter?: unknown };
}

/** The PKI in `dir` when it is whole, loads, and stays valid a while; otherwise null (with the reason). */
async function reusable(dir: string, now: Date): Promise<{ pki: DemoPki } | { reason: string }> {
  let index: IndexFile;
  try {
    const bytes = await readFile(join(dir, 'pki.json'));
    if (bytes.length > INDEX_MAX_BYTES) return { reason: 'pki.json is too large' };
    index = JSON.parse(bytes.toString('utf8')) as IndexFile;
  } catch (err) {
    return { reason: `no readable pki.json (${describeError(err)})` };
  }
  if (index.schema !== 'glassbox.devpki/v1') return { reason: 'pki.json is not a glassbox development PKI index' };
  const threshold = index.trustPolicy?.threshold;
  const policyRel = index.trustPolicy?.path;
  if (typeof threshold !== 'number' || typeof policyRel !== 'string') return { reason: 'pki.json names no trust policy' };
  const signers = (index.signers ?? []).slice(0, 3);
  if (signers.length < 3 || threshold !== 2) return { reason: 'the demo needs 3 signers and a threshold of 2' };
  const horizon = now.getTime() + MIN_REMAINING_MS;
  for (const cert of [index.root, index.releaseCa, ...signers]) {
    if (typeof cert?.notAfter !== 'string' || !(Date.parse(cert.notAfter) > horizon)) return { reason: 'a certificate expires within a week' };
  }
  try {
    loadTrustAnchors(await readFile(join(dir, policyRel)));
  } catch (err) {
    return { reason: `the trust policy does not load (${describeError(err)})` };
  }
  const out: DemoSigner[] = [];
  for (const s of signers) {
    if (typeof s.key !== 'string' || typeof s.chain !== 'string' || typeof s.index !== 'number') return { reason: 'pki.json lists an incomplete signer' };
    const key = join(dir, s.key);
    const chain = join(dir, s.chain);
    if (!(await exists(key)) || !(await exists(chain))) return { reason: `signer ${s.index}'s key or chain file is missing` };
    out.push({ index: s.index, key, chain, subject: typeof s.subject === 'string' ? s.subject : `signer ${s.index}` });
  }
  return { pki: { dir, reused: true, trustPolicy: join(dir, policyRel), threshold, signers: out } };
}

/** Removes `dir` only when every entry in it is a file a development PKI holds. */
async function removeOwnPki(dir: string): Promise<void> {
  const names = await readdir(dir);
  const foreign = names.filter((n) => !DEVPKI_FILE.test(n));
  if (foreign.length > 0) {
    throw new IoError(`${dir} holds ${foreign.slice(0, 5).join(', ')}, which the demo did not make; move them away or use --dir`);
  }
  await rm(dir, { recursive: true, force: true });
}

/** Reuses `<dir>/pki` when it is whole and valid, otherwise (re)creates it. */
export async function preparePki(dir: string, now: Date): Promise<DemoPki & { replaced: string | null }> {
  const pkiDir = join(dir, 'pki');
  let replaced: string | null = null;
  if (await exists(pkiDir)) {
    const r = await reusable(pkiDir, now);
    if ('pki' in r) return { ...r.pki, replaced: null };
    replaced = r.reason;
    await removeOwnPki(pkiDir);
  }
  const pki = await createDevPki(pkiDir, { signers: 3, threshold: 2, now });
  return {
    dir: pki.dir,
    reused: false,
    trustPolicy: pki.trustPolicy,
    threshold: pki.threshold,
    signers: pki.signers.map((s) => ({ index: s.index, key: s.key, chain: s.chain, subject: s.subject })),
    replaced,
  };
}

/** Empties and recreates `<dir>/release` (only when it is the demo's own). */
export async function prepareReleaseDir(dir: string): Promise<string> {
  const releaseDir = join(dir, 'release');
  if (await exists(releaseDir)) {
    const names = await readdir(releaseDir);
    if (names.length > 0 && !names.includes(RELEASE_MARKER)) {
      throw new IoError(`${releaseDir} exists and was not made by the demo (no ${RELEASE_MARKER} marker); move it away or use --dir`);
    }
    await rm(releaseDir, { recursive: true, force: true });
  }
  await mkdir(releaseDir, { recursive: true });
  await writeFile(join(releaseDir, RELEASE_MARKER), 'made by glassbox demo; recreated on every run\n');
  return releaseDir;
}

/** Creates the demo folder. */
export async function prepareDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new IoError(`cannot create the demo folder ${dir}: ${describeError(err)}`, { cause: err });
  }
}
