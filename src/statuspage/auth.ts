/**
 * The optional status-page password, set at provisioning. Stored as an
 * scrypt hash (node:crypto) in <stateDir>/statuspage-password.json; checked
 * with a constant-time compare; failed attempts are rate-limited per client.
 * The page is GET-only, so the browser's HTTP Basic prompt carries it (any
 * user name); the Unix socket (root and the daemon's group only) needs none.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { Ajv2020 } from 'ajv/dist/2020.js';

export const PASSWORD_SCHEMA = 'glassbox.statuspage-password/v1' as const;
export const PASSWORD_FILE = 'statuspage-password.json';
/** Shortest password accepted: a technician types it on a phone, but it guards the recorder's view. */
export const PASSWORD_MIN_LENGTH = 10;
export const PASSWORD_MAX_LENGTH = 256;

export interface PasswordRecord {
  readonly schema: typeof PASSWORD_SCHEMA;
  readonly algorithm: 'scrypt';
  /** scrypt cost parameters. */
  readonly N: number;
  readonly r: number;
  readonly p: number;
  /** base64 */
  readonly salt: string;
  /** base64, 32 bytes */
  readonly hash: string;
  readonly setAt: string;
}

/** N = 2^15, r = 8: 32 MiB and some tens of ms per check on the recorder. */
export const SCRYPT_PARAMS = { N: 32768, r: 8, p: 1 } as const;
const KEYLEN = 32;

function scrypt(password: string, salt: Buffer, p: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 };
  return new Promise((resolve, reject) => scryptCb(password.normalize('NFC'), salt, KEYLEN, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string, at: Date): Promise<PasswordRecord> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, SCRYPT_PARAMS);
  return { schema: PASSWORD_SCHEMA, algorithm: 'scrypt', ...SCRYPT_PARAMS, salt: salt.toString('base64'), hash: hash.toString('base64'), setAt: at.toISOString() };
}

export async function verifyPassword(record: PasswordRecord, candidate: string): Promise<boolean> {
  if (candidate.length > PASSWORD_MAX_LENGTH) return false;
  const expected = Buffer.from(record.hash, 'base64');
  const got = await scrypt(candidate, Buffer.from(record.salt, 'base64'), record);
  return expected.length === got.length && timingSafeEqual(expected, got);
}

const validate = new Ajv2020({ strict: true }).compile({
  type: 'object',
  additionalProperties: false,
  required: ['schema', 'algorithm', 'N', 'r', 'p', 'salt', 'hash', 'setAt'],
  properties: {
    schema: { const: PASSWORD_SCHEMA },
    algorithm: { const: 'scrypt' },
    N: { type: 'integer', minimum: 16384, maximum: 1048576 },
    r: { type: 'integer', minimum: 8, maximum: 32 },
    p: { type: 'integer', minimum: 1, maximum: 16 },
    salt: { type: 'string', pattern: '^[A-Za-z0-9+/]{22}==$' },
    hash: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' },
    setAt: { type: 'string', maxLength: 40 },
  },
});

/** Parses the stored record (pure); null with a reason when it is not one. */
export function parsePasswordRecord(bytes: Buffer): { record: PasswordRecord } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { error: `not JSON (${(err as Error).message})` };
  }
  if (!validate(value)) return { error: (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ') };
  const N = (value as { N: number }).N;
  if ((N & (N - 1)) !== 0) return { error: '/N is not a power of two' };
  return { record: value as unknown as PasswordRecord };
}

/** The password of an `Authorization: Basic …` header (the user name is ignored), or null. */
export function basicPassword(header: string | undefined): string | null {
  if (header === undefined || header.length > 1024) return null;
  const m = /^Basic +([A-Za-z0-9+/]+=*)$/i.exec(header.trim());
  if (!m || m[1] === undefined) return null;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? null : text.slice(colon + 1);
}

/**
 * Failed-attempt limiter (pure; time passed in): at most `maxFailures` per
 * client in `windowMs`; then every attempt is refused until the window
 * moves on. Clients tracked are bounded (oldest forgotten first).
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  constructor(
    private readonly maxFailures = 5,
    private readonly windowMs = 5 * 60_000,
    private readonly maxClients = 1024,
  ) {}

  private recent(client: string, now: number): number[] {
    const list = (this.failures.get(client) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length === 0) this.failures.delete(client);
    else this.failures.set(client, list);
    return list;
  }

  /** Seconds until the client may try again, or 0 when it may try now. */
  blockedFor(client: string, now: number): number {
    const list = this.recent(client, now);
    if (list.length < this.maxFailures) return 0;
    return Math.max(1, Math.ceil(((list[0] as number) + this.windowMs - now) / 1000));
  }

  fail(client: string, now: number): void {
    const list = this.recent(client, now);
    list.push(now);
    this.failures.delete(client);
    this.failures.set(client, list);
    while (this.failures.size > this.maxClients) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }
}
