/**
 * The sample firmware of `glassbox demo`: an embedded manifest template and
 * small generated artifacts. Pure: the clock comes in; the bytes are a
 * function of their names only, so every run builds the same payload.
 */
import { createHash } from 'node:crypto';
import type { ManifestTemplate } from '../release/manifest-build.js';

export const DEMO_HARDWARE = 'nvr-8p';
const DAY_MS = 24 * 3600_000;

/** The manifest template (every field but `artifacts`), released at `now`, valid 90 days. */
export function demoTemplate(now: Date): ManifestTemplate {
  const released = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const iso = (d: Date): string => d.toISOString().replace(/\.000Z$/, 'Z');
  return {
    schema: 'glassbox.manifest/v1',
    product: 'hss-nvr',
    hardware: [DEMO_HARDWARE, 'nvr-16p'],
    version: '4.2.0-demo.1',
    securityVersion: 3,
    released: iso(released),
    expires: iso(new Date(released.getTime() + 90 * DAY_MS)),
    egress: [
      { id: 'ntp', purpose: 'Time synchronisation', proto: 'udp', host: 'ntp.hss.example', port: 123 },
      { id: 'ops-mqtt', purpose: 'Health and provenance telemetry to central ops', proto: 'tcp', cidr: '198.51.100.10/32', port: 8883 },
      { id: 'updates', purpose: 'Firmware bundle downloads', proto: 'tcp', host: 'updates.hss.example', port: 443 },
    ],
    provenance: {
      sourceRepository: 'https://git.hss.example/nvr/firmware',
      sourceCommit: '4f6c2b1e0d9a8c7b6a5f4e3d2c1b0a9f8e7d6c5b',
      builder: 'https://ci.hss.example/builders/demo',
      buildFinished: iso(released),
    },
    notes: 'Demo release built by `glassbox demo` on this machine with a development PKI. Not for recorders in service.',
  };
}

/** Deterministic pseudo-random bytes: SHA-256 in counter mode over `label`. */
export function generatedBytes(label: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 32, i += 1) {
    createHash('sha256').update(`${label}/${i}`).digest().copy(out, off, 0, Math.min(32, size - off));
  }
  return out;
}

export interface DemoArtifact {
  readonly name: string;
  readonly role: 'rootfs' | 'config';
  readonly bytes: Buffer;
}

/** The payload artifacts; the build adds the SBOM and the provenance statement. */
export function demoArtifacts(): DemoArtifact[] {
  return [
    { name: 'rootfs.img', role: 'rootfs', bytes: generatedBytes('glassbox demo rootfs', 512 * 1024) },
    {
      name: 'recorder.conf',
      role: 'config',
      bytes: Buffer.from(['# recorder defaults of the demo release', 'retention_days = 30', 'cameras_max = 8', 'telemetry = mqtts://198.51.100.10:8883', ''].join('\n')),
    },
  ];
}
