/**
 * The DSSE envelope of attestation-v1 §3: pre-authentication encoding,
 * signing through a Signer (the device identity key), and strict parsing.
 *
 *   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
 *   (LEN = byte length in ASCII decimal, no leading zeros)
 *
 * The envelope is serialised as canonical JSON; `certificates` is ONE
 * string holding the PEM chain (leaf first, intermediates, never the root).
 */
import { canonicalBytes } from '../manifest/canonical.js';

export const PAYLOAD_TYPE = 'application/vnd.in-toto+json';
/** An envelope larger than this is refused before parsing (1000 flows of ~600 bytes fit easily). */
export const ENVELOPE_MAX_BYTES = 4 * 1024 * 1024;

export interface Envelope {
  readonly payloadType: string;
  readonly payload: string;
  readonly signatures: readonly { readonly keyid: string; readonly sig: string }[];
  readonly certificates: string;
}

/** What signs envelopes: src/pki/signer.ts's Signer (FileKeySigner) has this shape. */
export interface EnvelopeSigner {
  readonly chainPem: string;
  readonly spkiSha256: string;
  sign(data: Buffer): Promise<Buffer>;
}

export function pae(payloadType: string, body: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `, 'ascii'), type, Buffer.from(` ${body.length} `, 'ascii'), body]);
}

export async function signEnvelope(payload: Buffer, signer: EnvelopeSigner): Promise<Envelope> {
  const sig = await signer.sign(pae(PAYLOAD_TYPE, payload));
  return {
    payloadType: PAYLOAD_TYPE,
    payload: payload.toString('base64'),
    signatures: [{ keyid: signer.spkiSha256, sig: sig.toString('base64') }],
    certificates: signer.chainPem,
  };
}

export function envelopeBytes(env: Envelope): Buffer {
  return canonicalBytes(env);
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64 (padding required, no whitespace); null when it is not. */
export function decodeBase64Strict(text: string): Buffer | null {
  if (!B64.test(text)) return null;
  return Buffer.from(text, 'base64');
}

export type EnvelopeParse = { ok: true; envelope: Envelope; payload: Buffer; signature: Buffer } | { ok: false; reasons: string[] };

/** Parses envelope bytes: JSON shape, payload type, exactly one signature, strict base64. */
export function parseEnvelope(bytes: Buffer): EnvelopeParse {
  if (bytes.length > ENVELOPE_MAX_BYTES) return { ok: false, reasons: [`envelope is ${bytes.length} bytes, over the ${ENVELOPE_MAX_BYTES}-byte limit`] };
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    return { ok: false, reasons: [`envelope is not JSON: ${(e as Error).message}`] };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, reasons: ['envelope is not a JSON object'] };
  const e = v as Record<string, unknown>;
  const reasons: string[] = [];
  if (e['payloadType'] !== PAYLOAD_TYPE) reasons.push(`payloadType is ${JSON.stringify(e['payloadType'])}, not ${PAYLOAD_TYPE}`);
  const payload = typeof e['payload'] === 'string' ? decodeBase64Strict(e['payload']) : null;
  if (payload === null) reasons.push('payload is missing or not strict base64');
  const sigs = e['signatures'];
  let signature: Buffer | null = null;
  let keyid = '';
  if (!Array.isArray(sigs) || sigs.length !== 1) reasons.push('signatures must hold exactly one signature');
  else {
    const s = sigs[0] as Record<string, unknown> | null;
    if (typeof s !== 'object' || s === null || typeof s['sig'] !== 'string' || typeof s['keyid'] !== 'string') reasons.push('signature entry must have string keyid and sig');
    else {
      signature = decodeBase64Strict(s['sig']);
      keyid = s['keyid'];
      if (signature === null) reasons.push('signature is not strict base64');
    }
  }
  if (typeof e['certificates'] !== 'string' || e['certificates'].length === 0) reasons.push('certificates (the PEM chain, leaf first) is missing');
  if (reasons.length > 0 || payload === null || signature === null) return { ok: false, reasons };
  return {
    ok: true,
    envelope: { payloadType: PAYLOAD_TYPE, payload: e['payload'] as string, signatures: [{ keyid, sig: (sigs as Array<{ sig: string }>)[0]!.sig }], certificates: e['certificates'] as string },
    payload,
    signature,
  };
}
