/**
 * attest(nonce): a fresh egress snapshot, as a signed envelope. What the
 * local API, the CLI (through the API) and the MQTT `attest` command serve.
 */
import { X509Certificate } from 'node:crypto';
import { GlassboxError } from '../errors.js';
import { splitPemCertificates } from '../trust/chain.js';
import { certSha256 } from '../trust/fingerprint.js';
import { deviceIdOf } from '../pki/certs.js';
import type { EgressSnapshot } from '../egress/types.js';
import { envelopeBytes, signEnvelope, type EnvelopeSigner } from './dsse.js';
import { buildStatement, isValidNonce, statementBytes } from './statement.js';

export class NonceInvalid extends GlassboxError {
  constructor() {
    super('NONCE_INVALID', 'nonce must be 16–128 characters of [A-Za-z0-9_-]', { exitCode: 2 });
  }
}

export interface AttesterOptions {
  readonly snapshot: () => Promise<EgressSnapshot>;
  readonly signer: EnvelopeSigner;
  readonly hardware: string | null;
  readonly now?: () => Date;
}

export type Attest = (nonce: string) => Promise<Buffer>;

/** Device id (the leaf's CN) and the leaf's DER sha256 of a device chain. */
export function deviceIdentityOf(chainPem: string): { id: string; certificateSha256: string } {
  const leafDer = splitPemCertificates(chainPem).ders[0];
  if (!leafDer) throw new GlassboxError('SIGNER_INVALID', 'device chain holds no certificate');
  const leaf = new X509Certificate(leafDer);
  const id = deviceIdOf(leaf);
  if (id === null) throw new GlassboxError('SIGNER_INVALID', 'device certificate has no usable CN (device id)');
  return { id, certificateSha256: certSha256(leaf) };
}

/** Builds attest(); the device id is the signing certificate's CN (there is no other source of truth). */
export function createAttester(opts: AttesterOptions): Attest {
  const device = { ...deviceIdentityOf(opts.signer.chainPem), hardware: opts.hardware };
  const now = opts.now ?? (() => new Date());
  return async (nonce: string) => {
    if (!isValidNonce(nonce)) throw new NonceInvalid();
    const snapshot = await opts.snapshot();
    const statement = buildStatement({ snapshot, nonce, issuedAt: now(), device });
    return envelopeBytes(await signEnvelope(statementBytes(statement), opts.signer));
  };
}
