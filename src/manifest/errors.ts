import { BundleRejected } from '../bundle/codes.js';
import { GlassboxError } from '../errors.js';

/** MANIFEST_INVALID with every problem found, not only the first. Exit 1. */
export class ManifestInvalid extends BundleRejected {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], message: string) {
    super('MANIFEST_INVALID', message);
    this.problems = problems;
  }
}

/**
 * A release engineer's input (manifest template, artifact list, SBOM
 * components) was judged and refused while building a release. Exit 1.
 */
export class ReleaseInputInvalid extends GlassboxError {
  declare readonly code: 'RELEASE_INPUT_INVALID';
  readonly problems: readonly string[];
  constructor(problems: readonly string[], message: string) {
    super('RELEASE_INPUT_INVALID', message, { exitCode: 1 });
    this.problems = problems;
  }
}

/** How many problems a message lists (the error's `problems` holds them all). */
export const MESSAGE_MAX_PROBLEMS = 10;

/** "<what>: <first>" plus, when there are more, "(N problems: a; b; …)", bounded. */
export function describeProblems(what: string, problems: readonly string[]): string {
  const first = problems[0] ?? 'invalid';
  if (problems.length <= 1) return `${what}: ${first}`;
  const listed = problems.slice(0, MESSAGE_MAX_PROBLEMS).join('; ');
  const more = problems.length > MESSAGE_MAX_PROBLEMS ? `; and ${problems.length - MESSAGE_MAX_PROBLEMS} more` : '';
  return `${what}: ${first} (${problems.length} problems: ${listed}${more})`;
}
