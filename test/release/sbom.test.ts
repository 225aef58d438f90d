import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalBytes, checkCanonical } from '../../src/manifest/canonical.js';
import { ReleaseInputInvalid } from '../../src/manifest/errors.js';
import { buildSbom, contentUuid, type SbomInput } from '../../src/release/sbom.js';

const input = (): SbomInput => ({
  product: 'hss-nvr',
  version: '4.2.0',
  timestamp: '2025-03-01T12:00:00Z',
  artifacts: [
    { name: 'rootfs.squashfs', size: 10, sha256: 'a'.repeat(64), role: 'rootfs' },
    { name: 'app.tar', size: 20, sha256: 'b'.repeat(64), role: 'app' },
    { name: 'sbom.cdx.json', size: 1, sha256: 'c'.repeat(64), role: 'sbom' },
    { name: 'provenance.intoto.json', size: 1, sha256: 'd'.repeat(64), role: 'provenance' },
  ],
  components: [
    { name: 'openssl', version: '3.0.15', purl: 'pkg:deb/debian/openssl@3.0.15', hashes: [{ alg: 'SHA-256', content: 'e'.repeat(64) }] },
    { name: 'busybox', version: '1.36.1' },
  ],
  tool: { name: 'glassbox', version: '0.1.0' },
});

// Rules of the CycloneDX 1.5 JSON schema (bom-1.5.schema.json) that this SBOM relies on.
const SERIAL = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TYPES = ['application', 'framework', 'library', 'container', 'platform', 'operating-system', 'device', 'device-driver', 'firmware', 'file', 'machine-learning-model', 'data'];

describe('buildSbom', () => {
  it('writes a CycloneDX 1.5 BOM: the firmware, one file component per payload artifact, then the extras', () => {
    const { bom } = buildSbom(input());
    expect(bom.bomFormat).toBe('CycloneDX');
    expect(bom.specVersion).toBe('1.5');
    expect(bom.version).toBe(1);
    expect(bom.serialNumber).toMatch(SERIAL);
    expect(bom.metadata.timestamp).toBe('2025-03-01T12:00:00Z');
    expect(bom.metadata.component).toEqual({ type: 'firmware', 'bom-ref': 'firmware:hss-nvr@4.2.0', name: 'hss-nvr', version: '4.2.0' });
    expect(bom.metadata.tools?.components[0]?.name).toBe('glassbox');
    expect(bom.components.map((c) => c.name)).toEqual(['rootfs.squashfs', 'app.tar', 'busybox', 'openssl']);
    expect(bom.components[0]).toEqual({
      type: 'file',
      'bom-ref': 'artifact:rootfs.squashfs',
      name: 'rootfs.squashfs',
      hashes: [{ alg: 'SHA-256', content: 'a'.repeat(64) }],
      properties: [{ name: 'glassbox:role', value: 'rootfs' }, { name: 'glassbox:size', value: '10' }],
    });
    expect(bom.components[3]).toMatchObject({ type: 'library', 'bom-ref': 'pkg:deb/debian/openssl@3.0.15', purl: 'pkg:deb/debian/openssl@3.0.15' });
    for (const c of bom.components) expect(TYPES).toContain(c.type);
    expect(bom.dependencies).toEqual([{ ref: 'firmware:hss-nvr@4.2.0', dependsOn: bom.components.map((c) => c['bom-ref']) }]);
  });

  it('is deterministic: same input, same bytes; bytes are canonical', () => {
    const a = buildSbom(input());
    const b = buildSbom({ ...input(), components: [...(input().components ?? [])].reverse() });
    expect(a.bytes.equals(b.bytes)).toBe(true);
    expect(checkCanonical(a.bytes).ok).toBe(true);
  });

  it('derives the serial number from the content', () => {
    const a = buildSbom(input());
    const b = buildSbom({ ...input(), timestamp: '2025-03-01T12:00:01Z' });
    expect(a.bom.serialNumber).not.toBe(b.bom.serialNumber);
    const { serialNumber, ...rest } = a.bom;
    expect(serialNumber).toBe(`urn:uuid:${contentUuid(canonicalBytes(rest))}`);
  });

  it('makes version-8 RFC 9562 UUIDs from SHA-256', () => {
    const bytes = Buffer.from('x');
    const hex = createHash('sha256').update(bytes).digest('hex');
    const u = contentUuid(bytes);
    expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(u.slice(0, 8)).toBe(hex.slice(0, 8));
  });

  it('refuses bad extra components, naming each', () => {
    try {
      buildSbom({
        ...input(),
        components: [
          { name: '', version: '1' },
          { name: 'x', version: '1', purl: 'npm:x@1' },
          { name: 'y', version: '1', hashes: [{ alg: 'SHA-256', content: 'AB' }] },
          { name: 'z', version: '1', type: 'widget' as never },
          { name: 'busybox', version: '1.36.1' },
          { name: 'busybox', version: '1.36.1' },
        ],
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ReleaseInputInvalid);
      const e = err as ReleaseInputInvalid;
      expect(e.code).toBe('RELEASE_INPUT_INVALID');
      expect(e.exitCode).toBe(1);
      expect(e.problems).toEqual([
        'components[0]: name must be 1 to 256 characters',
        'components[1]: purl must look like pkg:<type>/<name>@<version>',
        'components[2].hashes[0]: SHA-256 content must be 64 lowercase hex',
        expect.stringMatching(/^components\[3\]: type must be one of application/),
        'component component:busybox@1.36.1 is listed twice',
      ]);
    }
  });
});
