#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { processIO } from './run.js';
import { readFileSync } from 'node:fs';

// Each command lives in its own file and exports register(program, io).
// Add new commands here, one import and one call each.
const commandModules: Array<() => Promise<{ register: (program: Command, io: typeof processIO) => void }>> = [
  () => import('./device.js'),
  () => import('./install.js'),
  () => import('./status.js'),
  () => import('./boot-check.js'),
  () => import('./rollback.js'),
  () => import('./verify.js'),
  () => import('./release.js'),
  () => import('./demo.js'),
  () => import('./provision.js'),
  () => import('./ca.js'),
  () => import('./daemon.js'),
  () => import('./attest.js'),
  () => import('./verify-attestation.js'),
];

async function main(argv: string[]): Promise<void> {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const program = new Command('glassbox')
    .description('Signed firmware, provenance telemetry and no-hidden-egress attestation for HSS recorders')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  // The long-running daemon loads only its own module: every other command's
  // imports would stay resident (≈55 MiB RSS) for the daemon's whole life.
  // `verify` too: its throughput and peak RSS are measured end to end
  // (bench:verify), and loading every command costs seconds and tens of MiB.
  const standalone: Record<string, (typeof commandModules)[number]> = {
    daemon: () => import('./daemon.js'),
    verify: () => import('./verify.js'),
  };
  const only = argv[2] === undefined ? undefined : standalone[argv[2]];
  const modules = only ? [only] : commandModules;
  for (const load of modules) (await load()).register(program, processIO);
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
