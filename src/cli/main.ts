#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { processIO } from './run.js';
import { readFileSync } from 'node:fs';

type CommandModule = { register: (program: Command, io: typeof processIO) => void };

// Each top-level command lives in its own file and exports register(program, io).
// Add a new command here: its name and its loader.
const commands: Record<string, () => Promise<CommandModule>> = {
  device: () => import('./device.js'),
  install: () => import('./install.js'),
  status: () => import('./status.js'),
  'boot-check': () => import('./boot-check.js'),
  rollback: () => import('./rollback.js'),
  verify: () => import('./verify.js'),
  release: () => import('./release.js'),
  demo: () => import('./demo.js'),
  provision: () => import('./provision.js'),
  ca: () => import('./ca.js'),
  daemon: () => import('./daemon.js'),
  attest: () => import('./attest.js'),
  'verify-attestation': () => import('./verify-attestation.js'),
};

async function main(argv: string[]): Promise<void> {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const program = new Command('glassbox')
    .description('Signed firmware, provenance telemetry and no-hidden-egress attestation for HSS recorders')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  // Only the invoked command's module is loaded: every other command's imports
  // would cost start-up time, and for the daemon they would stay resident for
  // its whole life. Help, version and unknown names load them all.
  const named = argv[2] === undefined ? undefined : commands[argv[2]];
  const loaders = named ? [named] : Object.values(commands);
  for (const load of loaders) (await load()).register(program, processIO);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; usage errors with 2.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    throw err;
  }
}

await main(process.argv);
