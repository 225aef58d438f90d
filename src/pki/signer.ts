/**
 * Who signs a manifest. The interface is what release tooling programs
 * against; FileKeySigner is the file-based implementation, and a PKCS #11
 * (HSM) signer can follow with the same shape.
 *
 * Output bytes are exactly what bundle-v1 section 3 accepts and what
 * `openssl dgst` verifies:
 *   ECDSA P-256: DER signature, SHA-256   openssl dgst -sha256 -verify pub.pem -signature s m
 *   ECDSA P-384: DER signature, SHA-384   openssl dgst -sha384 -verify …
 *   RSA pkcs1:   PKCS #1 v1.5, SHA-256    openssl dgst -sha256 -verify …
 *   RSA pss:     PSS, MGF1-SHA-256, salt 32
 *                openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -verify …
 */
import { constants, createPublicKey, sign as signCb, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { GlassboxError, IoError } from '../errors.js';
import { acceptKey, PSS_SALT_LENGTH, type SignatureAlgorithm } from '../trust/algorithms.js';
import { splitPemCertificates } from '../trust/chain.js';
import { spkiDer, spkiSha256 } from '../trust/fingerprint.js';
import { verifySignature } from '../trust/signature.js';
import { keyPairFromPem } from './keys.js';

const signAsync = promisify(signCb);

export type RsaPadding = 'pkcs1' | 'pss';

export interface Signer {
  /** The signer's chain as it goes into the bundle: leaf first, then intermediates, never the root. */
  readonly chainPem: string;
  readonly algorithm: SignatureAlgorithm;
  /** sha256 of the leaf's SubjectPublicKeyInfo: what makes signers distinct. */
  readonly spkiSha256: string;
  /** Signs the exact bytes given (the manifest) and returns the raw signature. */
  sign(data: Buffer): Promise<Buffer>;
}

export interface FileKeySignerOptions {
  /** RSA only: PKCS #1 v1.5 (default) or PSS with salt length 32. */
  readonly rsaPadding?: RsaPadding;
}

/** Key and chain files are small; anything bigger is not what we think it is. */
export const SIGNER_FILE_MAX_BYTES = 64 * 1024;

async function readBounded(path: string, what: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new IoError(`cannot read ${what} ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (bytes.length > SIGNER_FILE_MAX_BYTES) throw new GlassboxError('SIGNER_INVALID', `${what} ${path} is ${bytes.length} bytes, over the ${SIGNER_FILE_MAX_BYTES}-byte limit`);
  return bytes;
}

function invalid(message: string): GlassboxError {
  return new GlassboxError('SIGNER_INVALID', message);
}

export class FileKeySigner implements Signer {
  private constructor(
    private readonly privateKey: KeyObject,
    private readonly leaf: X509Certificate,
    readonly chainPem: string,
    readonly algorithm: SignatureAlgorithm,
    readonly spkiSha256: string,
  ) {}

  /** Reads a PEM private key and a PEM chain (leaf first, then intermediates). */
  static async fromFiles(keyPath: string, chainPath: string, opts: FileKeySignerOptions = {}): Promise<FileKeySigner> {
    const [keyPem, chainPem] = await Promise.all([readBounded(keyPath, 'signer key'), readBounded(chainPath, 'signer chain')]);
    return FileKeySigner.fromPem(keyPem, chainPem, opts);
  }

  /**
   * Checks that the key is an accepted algorithm, that the chain's first
   * certificate carries this very key, and that the chain holds no
   * self-signed (root) certificate. Throws GlassboxError SIGNER_INVALID.
   */
  static fromPem(keyPem: string | Buffer, chainPem: string | Buffer, opts: FileKeySignerOptions = {}): FileKeySigner {
    const pair = keyPairFromPem(keyPem);
    const accepted = acceptKey(pair.publicKey);
    if (!accepted.ok) throw invalid(`signer key: ${accepted.reason}`);

    const split = splitPemCertificates(typeof chainPem === 'string' ? chainPem : chainPem.toString('latin1'));
    if (split.faults.length > 0) throw invalid(`signer chain: ${split.faults.join('; ')}`);
    const certs: X509Certificate[] = [];
    for (const [i, der] of split.ders.entries()) {
      try {
        certs.push(new X509Certificate(der));
      } catch {
        throw invalid(`signer chain: certificate #${i + 1} is not a parsable X.509 certificate`);
      }
    }
    const leaf = certs[0];
    if (!leaf) throw invalid('signer chain holds no certificate');
    if (!spkiDer(leaf).equals(spkiDer(createPublicKey(pair.privateKey)))) {
      throw invalid('signer chain: the first certificate does not carry the signer key (leaf must come first)');
    }
    for (const [i, c] of certs.entries()) {
      if (c.checkIssued(c) && c.verify(c.publicKey)) throw invalid(`signer chain: certificate #${i + 1} is self-signed; the bundle carries leaf and intermediates, never the root`);
    }

    let algorithm: SignatureAlgorithm;
    const a = accepted.key;
    if (a.kind === 'ecdsa') {
      if (opts.rsaPadding !== undefined) throw invalid(`rsaPadding given for an ECDSA ${a.curve} key`);
      algorithm = a.curve === 'P-256' ? 'ecdsa-p256-sha256' : 'ecdsa-p384-sha384';
    } else {
      algorithm = (opts.rsaPadding ?? 'pkcs1') === 'pss' ? 'rsa-pss-sha256' : 'rsa-pkcs1v15-sha256';
    }
    const normalized = certs.map((c) => c.toString().trim() + '\n').join('');
    return new FileKeySigner(pair.privateKey, leaf, normalized, algorithm, spkiSha256(leaf));
  }

  async sign(data: Buffer): Promise<Buffer> {
    let sig: Buffer;
    switch (this.algorithm) {
      case 'ecdsa-p256-sha256':
        sig = await signAsync('sha256', data, { key: this.privateKey, dsaEncoding: 'der' });
        break;
      case 'ecdsa-p384-sha384':
        sig = await signAsync('sha384', data, { key: this.privateKey, dsaEncoding: 'der' });
        break;
      case 'rsa-pkcs1v15-sha256':
        sig = await signAsync('sha256', data, { key: this.privateKey, padding: constants.RSA_PKCS1_PADDING });
        break;
      case 'rsa-pss-sha256':
        sig = await signAsync('sha256', data, { key: this.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH });
        break;
    }
    // A signature the verifier would refuse must never leave the signer.
    const check = verifySignature(this.leaf, data, sig);
    if (!check.ok || check.algorithm !== this.algorithm) throw new GlassboxError('SIGNER_INVALID', `signature self-check failed: ${check.ok ? check.algorithm : check.reason}`);
    return sig;
  }
}
