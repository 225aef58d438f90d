/**
 * One release signer adds their signature to a bundle. Separate people with
 * separate keys run this one after another; each run adds one
 * `signatures/<k>.sig/.pem` pair (bundle/writer.ts addSignature).
 *
 * The Signer is the seam for hardware keys: FileKeySigner reads a PEM key
 * from disk; a PKCS #11 / HSM signer implements the same two members
 * (`chainPem`, `sign(data)`) and is passed to signBundle unchanged. A
 * signature made entirely outside glassbox (offline HSM workstation) is
 * attached with signBundleWithSignatureFile.
 */
import { readFile } from 'node:fs/promises';
import { addSignature, leafOf, type AddSignatureResult } from '../bundle/writer.js';
import { BundleRejected } from '../bundle/codes.js';
import { CHAIN_PEM_MAX_BYTES, SIGNATURE_MAX_BYTES } from '../bundle/layout.js';
import { IoError, UsageError } from '../errors.js';
import { FileKeySigner, type Signer } from '../pki/signer.js';
import type { SignatureAlgorithm } from '../trust/algorithms.js';
import { verifySignature } from '../trust/signature.js';

export interface SignBundleResult extends AddSignatureResult {
  readonly algorithm: SignatureAlgorithm;
  /** Bundle read. */
  readonly input: string;
}

/** Signs `bundle` with `signer`, writing to `out` (default: in place, through a temp file and rename). */
export async function signBundle(bundle: string, signer: Signer, out: string = bundle): Promise<SignBundleResult> {
  const res = await addSignature(bundle, out, signer);
  return { ...res, algorithm: signer.algorithm, input: bundle };
}

export interface KeyFileSignOptions {
  readonly key: string;
  readonly chain: string;
  /** RSA keys: sign with PSS (salt 32) instead of PKCS #1 v1.5. */
  readonly pss?: boolean;
  readonly out?: string;
}

/** signBundle with a PEM key file and its chain file (what `glassbox release sign` does). */
export async function signBundleWithKeyFile(bundle: string, opts: KeyFileSignOptions): Promise<SignBundleResult> {
  const signer = await FileKeySigner.fromFiles(opts.key, opts.chain, opts.pss ? { rsaPadding: 'pss' } : {});
  return signBundle(bundle, signer, opts.out ?? bundle);
}

export interface DetachedSignOptions {
  /** Raw signature over the bundle's manifest.json, made elsewhere (an HSM tool, `openssl dgst -sign` on an offline machine). */
  readonly signature: string;
  readonly chain: string;
  readonly out?: string;
}

async function readSmall(path: string, what: string, limit: number): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new IoError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (bytes.length > limit) throw new UsageError(`${what} ${path} is ${bytes.length} bytes, over the ${limit}-byte limit`);
  return bytes;
}

/**
 * Adds a signature made outside glassbox (detached, over the exact bytes of
 * the bundle's manifest.json, e.g. `tar -xOf BUNDLE manifest.json | openssl
 * dgst -sha256 -sign …`). The signature is checked against the chain's leaf
 * with the verifier's own rules before it goes in: one that a recorder
 * would refuse is refused here (SIGNATURE_INVALID, exit 1) and the bundle
 * is left as it was.
 */
export async function signBundleWithSignatureFile(bundle: string, opts: DetachedSignOptions): Promise<SignBundleResult> {
  const sig = await readSmall(opts.signature, 'signature', SIGNATURE_MAX_BYTES);
  const chainPem = (await readSmall(opts.chain, 'signer chain', CHAIN_PEM_MAX_BYTES)).toString('utf8');
  const leaf = leafOf(chainPem, `signer chain ${opts.chain}`);
  let algorithm: SignatureAlgorithm | undefined;
  const res = await addSignature(bundle, opts.out ?? bundle, {
    chainPem,
    sign: async (manifest) => {
      const check = verifySignature(leaf, manifest, sig);
      if (!check.ok) throw new BundleRejected('SIGNATURE_INVALID', `${opts.signature} is not a valid signature of this bundle's manifest.json by ${opts.chain}: ${check.reason}`);
      algorithm = check.algorithm;
      return sig;
    },
  });
  return { ...res, algorithm: algorithm!, input: bundle };
}
