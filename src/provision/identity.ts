/**
 * The recorder's identity on disk, under <stateDir>/identity/ (mode 0700,
 * owned by the daemon's account):
 *
 *   device.key          private key, PKCS #8 PEM, 0600. Born here, never leaves.
 *   device.csr          the request to carry to ops (0644)
 *   device.crt          after `provision import`: the issued certificate followed by
 *                       the device CA chain (leaf first, root excluded), exactly what is
 *                       presented to the broker and put in attestation envelopes (0644)
 *   broker-ca.pem       the CA that signed the broker's certificate (0644)
 *   identity.json       what was provisioned: device id, model, key fingerprint,
 *                       certificate fingerprint (0644)
 *
 * An identity replaced with --force is moved, whole, to
 * <stateDir>/identity.replaced-<UTC timestamp>/.
 */
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ProvisionError } from './errors.js';
import { ACCEPTED_KEY_ALGORITHMS, type AcceptedKeyAlgorithm } from '../pki/keys.js';

export const IDENTITY_SCHEMA = 'glassbox.identity/v1' as const;
export const DEFAULT_STATE_DIR = '/var/lib/glassbox';

export interface IdentityPaths {
  readonly stateDir: string;
  readonly dir: string;
  readonly key: string;
  readonly csr: string;
  readonly cert: string;
  readonly brokerCa: string;
  readonly meta: string;
}

export function identityPaths(stateDir: string): IdentityPaths {
  const dir = join(stateDir, 'identity');
  return {
    stateDir,
    dir,
    key: join(dir, 'device.key'),
    csr: join(dir, 'device.csr'),
    cert: join(dir, 'device.crt'),
    brokerCa: join(dir, 'broker-ca.pem'),
    meta: join(dir, 'identity.json'),
  };
}

/** Where a replaced identity is kept: identity.replaced-20250101T120000Z (colons are awkward in paths). */
export function replacedIdentityDir(stateDir: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return join(stateDir, `identity.replaced-${stamp}`);
}

export interface ImportedCertificate {
  readonly sha256: string;
  readonly serial: string;
  readonly issuer: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly importedAt: string;
  /** sha256 of the canonical trust policy the chain was judged against. */
  readonly trustPolicySha256: string;
}

export interface IdentityMeta {
  readonly schema: typeof IDENTITY_SCHEMA;
  readonly deviceId: string;
  readonly hardware: string;
  readonly keyAlgorithm: AcceptedKeyAlgorithm;
  /** sha256 of the public key's SubjectPublicKeyInfo DER. */
  readonly spkiSha256: string;
  readonly createdAt: string;
  readonly certificate: ImportedCertificate | null;
}

const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const time = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$', maxLength: 40 } as const;

export const IDENTITY_META_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  additionalProperties: false,
  required: ['schema', 'deviceId', 'hardware', 'keyAlgorithm', 'spkiSha256', 'createdAt', 'certificate'],
  properties: {
    schema: { const: IDENTITY_SCHEMA },
    deviceId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    hardware: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$' },
    keyAlgorithm: { enum: [...ACCEPTED_KEY_ALGORITHMS] },
    spkiSha256: sha256,
    createdAt: time,
    certificate: {
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['sha256', 'serial', 'issuer', 'notBefore', 'notAfter', 'importedAt', 'trustPolicySha256'],
          properties: {
            sha256,
            serial: { type: 'string', pattern: '^[0-9a-f]{1,64}$' },
            issuer: { type: 'string', maxLength: 1024 },
            notBefore: time,
            notAfter: time,
            importedAt: time,
            trustPolicySha256: sha256,
          },
        },
      ],
    },
  },
} as const;

const validateMeta = new Ajv2020({ allErrors: true, strict: true }).compile(IDENTITY_META_SCHEMA);

export const META_MAX_BYTES = 64 * 1024;

/** Parses identity.json (pure); `where` names the file in errors. */
export function parseIdentityMeta(bytes: Buffer, where: string): IdentityMeta {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw corrupt(where, `not JSON (${(err as Error).message})`);
  }
  if (!validateMeta(value)) {
    const errs = (validateMeta.errors ?? []).slice(0, 3).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    throw corrupt(where, errs.join('; '));
  }
  return value as unknown as IdentityMeta;
}

export function serializeIdentityMeta(meta: IdentityMeta): string {
  return JSON.stringify(meta, null, 2) + '\n';
}

function corrupt(where: string, detail: string): ProvisionError {
  return new ProvisionError(
    'IDENTITY_CORRUPT',
    `${where} is not a glassbox identity record: ${detail}`,
    'start the identity over with `glassbox provision init --force` (the current files are kept aside)',
  );
}
