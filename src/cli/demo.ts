/**
 * `glassbox demo [--dir DIR] [--json]` (also `npm start`): builds, signs and
 * verifies a sample firmware bundle with a development PKI in a git-ignored
 * folder, then shows a tampered copy refused. Re-running reuses the PKI and
 * recreates the release. Exit 0 when every verification gave the expected
 * result, 1 when one did not, 2 on usage or I/O errors.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { runDemo } from '../demo/run.js';
import { runCommand, type CliIO } from './run.js';

export const DEFAULT_DEMO_DIR = '.glassbox-dev';

export function register(program: Command, io: CliIO): void {
  program
    .command('demo')
    .description('build, sign and verify a sample firmware bundle with a development PKI (no setup needed), then show a tampered copy refused')
    .option('--dir <dir>', `folder for the development PKI and the sample release (default ${DEFAULT_DEMO_DIR} in the current directory)`)
    .option('--json', 'print the whole result as JSON instead of the guided walk-through')
    .action(async (opts: { dir?: string; json?: boolean }) => {
      await runCommand(io, !!opts.json, async () => {
        const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
        const result = await runDemo({
          dir: resolve(opts.dir ?? DEFAULT_DEMO_DIR),
          now: new Date(),
          version: pkg.version,
          say: opts.json ? () => undefined : (line) => io.out(line),
          relativeTo: process.cwd(),
        });
        if (opts.json) io.out(JSON.stringify(result, null, 2));
        return result.ok ? 0 : 1;
      });
    });
}
