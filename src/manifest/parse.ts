/**
 * From manifest.json bytes to a checked Manifest (bundle-v1 section 2),
 * in the order a verifier must judge them: size, then bytes (UTF-8, no BOM,
 * JSON, canonical), then the schema and its semantic rules. Any failure is
 * MANIFEST_INVALID. Pure.
 */
import { createHash } from 'node:crypto';
import { checkCanonical } from './canonical.js';
import { describeProblems, ManifestInvalid } from './errors.js';
import { validateManifest } from './schema.js';
import { MANIFEST_MAX_BYTES, type Manifest } from './types.js';

export { ManifestInvalid, MESSAGE_MAX_PROBLEMS } from './errors.js';

/**
 * Parses and checks manifest bytes. Throws ManifestInvalid (a BundleRejected
 * with code MANIFEST_INVALID) whose message names the first problem and
 * lists up to MESSAGE_MAX_PROBLEMS of them; `problems` holds them all.
 * The returned manifest is deeply frozen.
 */
export function parseManifest(bytes: Buffer): Manifest {
  if (bytes.length > MANIFEST_MAX_BYTES) {
    const problem = `manifest is ${bytes.length} bytes, over the limit of ${MANIFEST_MAX_BYTES} bytes (1 MiB)`;
    throw new ManifestInvalid([problem], problem);
  }
  const canonical = checkCanonical(bytes);
  if (!canonical.ok) throw new ManifestInvalid([canonical.reason], `manifest.json ${canonical.reason}`);
  const checked = validateManifest(canonical.value);
  if (!checked.ok) throw new ManifestInvalid(checked.errors, describeProblems('manifest.json', checked.errors));
  return deepFreeze(checked.manifest);
}

/** Lowercase hex SHA-256 of the exact manifest bytes: the manifest's identity. */
export function manifestSha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
