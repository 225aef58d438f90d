/**
 * One release signer adds their signature to a bundle. Separate people with
 * separate keys run this one after another; each run adds one
 * `signatures/<k>.sig/.pem` pair (bundle/writer.ts addSignature).
 *
 * The Signer is the seam for hardware keys: FileKeySigner reads a PEM key
 * from disk; a PKCS #11 / HSM signer implements the same two members
 * (`chainPem`, `sign(data)`) and is passed to signBundle unchanged.
 */
import { addSignature, type AddSignatureResult } from '../bundle/writer.js';
import { FileKeySigner, type Signer } from '../pki/signer.js';
import type { SignatureAlgorithm } from '../trust/algorithms.js';

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
