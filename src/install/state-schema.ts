/**
 * JSON Schema (2020-12) of state.json and its validator. Pure: the edge
 * reads the bytes, this judges them. A state file that fails here is never
 * "repaired": the command stops with STATE_CORRUPT and names the path.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import { InstallError } from './errors.js';
import { STATE_SCHEMA, type DeviceState } from './state.js';

const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const isoTime = { type: 'string', minLength: 20, maxLength: 40, pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' } as const;
const nullable = <T extends object>(schema: T) => ({ anyOf: [schema, { type: 'null' }] });

const failure = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'reason', 'at'],
  properties: { code: { type: 'string', maxLength: 64 }, reason: { type: 'string', maxLength: 4096 }, at: isoTime },
} as const;

const slot = {
  type: 'object',
  additionalProperties: false,
  required: ['state', 'ref', 'product', 'version', 'manifestSha256', 'securityVersion', 'released', 'installedAt', 'verifiedAt', 'committedAt', 'bootAttempts', 'trustPolicy', 'failure'],
  properties: {
    state: { enum: ['committed', 'pending', 'failed', 'empty'] },
    ref: nullable({ type: 'string', pattern: '^[ab]-[0-9a-f]{16,64}$' }),
    product: nullable({ type: 'string', maxLength: 64 }),
    version: nullable({ type: 'string', maxLength: 256 }),
    manifestSha256: nullable(sha256),
    securityVersion: nullable({ type: 'integer', minimum: 0, maximum: 2147483647 }),
    released: nullable(isoTime),
    installedAt: nullable(isoTime),
    verifiedAt: nullable(isoTime),
    committedAt: nullable(isoTime),
    bootAttempts: { type: 'integer', minimum: 0, maximum: 1000000 },
    trustPolicy: nullable(sha256),
    failure: nullable(failure),
  },
  // A slot with content must say what it is; an empty one must not point at content.
  if: { properties: { state: { const: 'empty' } } },
  then: { properties: { ref: { type: 'null' } } },
  else: { properties: { ref: { type: 'string' }, manifestSha256: sha256, securityVersion: { type: 'integer' }, verifiedAt: isoTime } },
} as const;

export const DEVICE_STATE_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://glassbox.invalid/schema/device-state-v1.json',
  type: 'object',
  additionalProperties: false,
  required: ['schema', 'generation', 'hardware', 'trustPolicy', 'securityFloor', 'trustedTime', 'maxBootAttempts', 'active', 'slots', 'lastBoot'],
  properties: {
    schema: { const: STATE_SCHEMA },
    generation: { type: 'integer', minimum: 1 },
    hardware: { type: 'string', minLength: 1, maxLength: 128 },
    trustPolicy: sha256,
    securityFloor: { type: 'integer', minimum: 0, maximum: 2147483647 },
    trustedTime: isoTime,
    maxBootAttempts: { type: 'integer', minimum: 1, maximum: 100 },
    active: { enum: ['a', 'b', null] },
    slots: { type: 'object', additionalProperties: false, required: ['a', 'b'], properties: { a: slot, b: slot } },
    lastBoot: nullable({
      type: 'object',
      additionalProperties: false,
      required: ['at', 'slot', 'outcome', 'reason'],
      properties: {
        at: isoTime,
        slot: { enum: ['a', 'b', null] },
        outcome: { enum: ['committed', 'retry', 'fell-back', 'no-fallback', 'nothing-pending', 'rolled-back'] },
        reason: nullable({ type: 'string', maxLength: 8192 }),
      },
    }),
  },
} as const;

const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(DEVICE_STATE_SCHEMA);

/** Largest state.json we read (it is a few KiB; anything bigger is corrupt). */
export const STATE_MAX_BYTES = 256 * 1024;

/** Parses and checks state.json bytes; `where` names the file in errors. */
export function parseState(bytes: Buffer, where: string): DeviceState {
  if (bytes.length > STATE_MAX_BYTES) throw new InstallError('STATE_CORRUPT', `${where} is ${bytes.length} bytes, over the ${STATE_MAX_BYTES}-byte limit`);
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new InstallError('STATE_CORRUPT', `${where} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!validate(value)) {
    const errs = (validate.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    throw new InstallError('STATE_CORRUPT', `${where} does not match the device-state schema: ${errs.join('; ')}`);
  }
  const state = value as DeviceState;
  if (state.active !== null && state.slots[state.active].state === 'empty') {
    throw new InstallError('STATE_CORRUPT', `${where}: active slot ${state.active} is empty`);
  }
  return state;
}

/** The bytes written for a state: stable key order as built, newline-terminated. */
export function serializeState(state: DeviceState): Buffer {
  return Buffer.from(JSON.stringify(state, null, 2) + '\n', 'utf8');
}
