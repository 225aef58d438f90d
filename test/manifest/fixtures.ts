/** A valid manifest, rebuilt fresh for every call so tests can mutate it. */
export function validManifest(): Record<string, unknown> & {
  artifacts: Array<Record<string, unknown>>;
  egress: Array<Record<string, unknown>>;
  provenance: Record<string, unknown>;
  hardware: unknown[];
} {
  return {
    schema: 'glassbox.manifest/v1',
    product: 'hss-nvr',
    hardware: ['nvr-8p', 'nvr-16p'],
    version: '4.2.0-rc.1+build.7',
    securityVersion: 3,
    released: '2025-03-01T12:00:00Z',
    expires: '2026-03-01T12:00:00Z',
    artifacts: [
      { name: 'rootfs.squashfs', size: 1048576, sha256: 'a'.repeat(64), role: 'rootfs' },
      { name: 'sbom.cdx.json', size: 2048, sha256: 'b'.repeat(64), role: 'sbom' },
      { name: 'provenance.intoto.json', size: 1024, sha256: 'c'.repeat(64), role: 'provenance' },
    ],
    egress: [
      { id: 'ntp', purpose: 'time sync', proto: 'udp', host: 'ntp.hss.example', port: 123 },
      { id: 'ops-mqtt', purpose: 'central ops telemetry', proto: 'tcp', cidr: '198.51.100.0/24', ports: [8883, 8884] },
    ],
    provenance: {
      sourceRepository: 'https://git.hss.example/nvr/firmware',
      sourceCommit: '0123456789abcdef0123456789abcdef01234567',
      builder: 'https://ci.hss.example/builders/release',
      buildFinished: '2025-03-01T11:00:00Z',
    },
    notes: 'Fixes camera reconnect.',
  };
}
