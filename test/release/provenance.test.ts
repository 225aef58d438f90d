import { describe, expect, it } from 'vitest';
import { checkCanonical } from '../../src/manifest/canonical.js';
import { PROVENANCE_MAX_BYTES } from '../../src/manifest/schema.js';
import type { Manifest } from '../../src/manifest/types.js';
import { buildProvenance, checkProvenance, GLASSBOX_BUILD_TYPE, SLSA_PROVENANCE_V1, STATEMENT_TYPE } from '../../src/release/provenance.js';
import { validManifest } from '../manifest/fixtures.js';

const manifest = (): Manifest => validManifest() as unknown as Manifest;

function statementFor(m: Manifest) {
  return buildProvenance({
    product: m.product,
    version: m.version,
    provenance: m.provenance,
    subjects: m.artifacts.filter((a) => a.role !== 'provenance').map((a) => ({ name: a.name, sha256: a.sha256 })),
  });
}

function mutated(edit: (s: Record<string, any>) => void): Buffer {
  const s = JSON.parse(statementFor(manifest()).bytes.toString()) as Record<string, any>;
  edit(s);
  return Buffer.from(JSON.stringify(s));
}

function errorsOf(bytes: Buffer, m: Manifest = manifest()): string[] {
  const r = checkProvenance(bytes, m);
  return r.ok ? [] : r.errors;
}

describe('buildProvenance', () => {
  it('writes an in-toto Statement v1 with a SLSA Provenance v1 predicate', () => {
    const { statement } = statementFor(manifest());
    expect(statement._type).toBe(STATEMENT_TYPE);
    expect(statement.predicateType).toBe(SLSA_PROVENANCE_V1);
    expect(statement.predicate.buildDefinition.buildType).toBe(GLASSBOX_BUILD_TYPE);
    expect(statement.predicate.buildDefinition.externalParameters).toEqual({
      source: { repository: 'https://git.hss.example/nvr/firmware', commit: '0123456789abcdef0123456789abcdef01234567' },
      product: 'hss-nvr',
      version: '4.2.0-rc.1+build.7',
    });
    expect(statement.predicate.buildDefinition.resolvedDependencies).toEqual([
      { uri: 'https://git.hss.example/nvr/firmware', digest: { gitCommit: '0123456789abcdef0123456789abcdef01234567' } },
    ]);
    expect(statement.predicate.runDetails).toEqual({ builder: { id: 'https://ci.hss.example/builders/release' }, metadata: { finishedOn: '2025-03-01T11:00:00Z' } });
  });

  it('names every artifact but the provenance itself, by sha256, the sbom included', () => {
    const { statement } = statementFor(manifest());
    expect(statement.subject).toEqual([
      { name: 'rootfs.squashfs', digest: { sha256: 'a'.repeat(64) } },
      { name: 'sbom.cdx.json', digest: { sha256: 'b'.repeat(64) } },
    ]);
  });

  it('is deterministic and canonical', () => {
    const a = statementFor(manifest()).bytes;
    expect(a.equals(statementFor(manifest()).bytes)).toBe(true);
    expect(checkCanonical(a).ok).toBe(true);
  });
});

describe('checkProvenance', () => {
  it('accepts the statement built for the manifest', () => {
    const r = checkProvenance(statementFor(manifest()).bytes, manifest());
    expect(r.ok).toBe(true);
  });

  it('accepts a non-canonical but equivalent statement (other SLSA generators)', () => {
    const pretty = Buffer.from(JSON.stringify(statementFor(manifest()).statement, null, 2));
    expect(errorsOf(pretty)).toEqual([]);
  });

  describe('when the subjects do not match the manifest', () => {
    it('rejects a subject digest that differs', () => {
      expect(errorsOf(mutated((s) => (s.subject[0].digest.sha256 = 'f'.repeat(64))))).toEqual([
        `/subject/0: "rootfs.squashfs" has sha256 ${'f'.repeat(64)}, the manifest says ${'a'.repeat(64)}`,
      ]);
    });
    it('rejects a missing artifact', () => {
      expect(errorsOf(mutated((s) => s.subject.pop()))).toEqual(['/subject: artifact "sbom.cdx.json" (role sbom) is not named by any subject']);
    });
    it('rejects a subject that is not in the manifest', () => {
      expect(errorsOf(mutated((s) => s.subject.push({ name: 'backdoor.bin', digest: { sha256: 'e'.repeat(64) } })))).toEqual([
        '/subject/2: "backdoor.bin" is not an artifact of the manifest',
      ]);
    });
    it('rejects the provenance artifact naming itself', () => {
      expect(errorsOf(mutated((s) => s.subject.push({ name: 'provenance.intoto.json', digest: { sha256: 'c'.repeat(64) } })))).toEqual([
        '/subject/2: "provenance.intoto.json" is the provenance artifact itself',
      ]);
    });
    it('rejects a subject named twice', () => {
      expect(errorsOf(mutated((s) => s.subject.push(s.subject[0])))).toEqual(['/subject/2: "rootfs.squashfs" is named twice (first at /subject/0)']);
    });
    it('rejects a subject without a sha256 digest', () => {
      expect(errorsOf(mutated((s) => (s.subject[1].digest = { sha512: 'a'.repeat(128) })))).toEqual(['/subject/1/digest: missing required field "sha256"']);
    });
  });

  it('rejects another builder', () => {
    expect(errorsOf(mutated((s) => (s.predicate.runDetails.builder.id = 'https://laptop.example/me')))).toEqual([
      '/predicate/runDetails/builder/id: "https://laptop.example/me" differs from the manifest\'s builder "https://ci.hss.example/builders/release"',
    ]);
  });

  it('rejects another source commit', () => {
    expect(errorsOf(mutated((s) => (s.predicate.buildDefinition.resolvedDependencies[0].digest.gitCommit = 'f'.repeat(40))))[0]).toContain(
      'no entry has digest.gitCommit 0123456789abcdef0123456789abcdef01234567',
    );
  });

  it('rejects another build finish time, but accepts the same instant written differently', () => {
    expect(errorsOf(mutated((s) => (s.predicate.runDetails.metadata.finishedOn = '2025-03-01T11:00:01Z')))[0]).toContain('differs from the manifest\'s buildFinished');
    expect(errorsOf(mutated((s) => (s.predicate.runDetails.metadata.finishedOn = '2025-03-01T11:00:00.000Z')))).toEqual([]);
  });

  it('rejects the wrong statement or predicate type', () => {
    expect(errorsOf(mutated((s) => (s._type = 'https://in-toto.io/Statement/v0.1')))).toEqual(['/_type: must be "https://in-toto.io/Statement/v1"']);
    expect(errorsOf(mutated((s) => (s.predicateType = 'https://slsa.dev/provenance/v0.2')))).toEqual(['/predicateType: must be "https://slsa.dev/provenance/v1"']);
  });

  it('rejects bytes that are not UTF-8 JSON, a BOM, or too many bytes', () => {
    expect(errorsOf(Buffer.from('not json'))[0]).toMatch(/^statement is not UTF-8 JSON/);
    expect(errorsOf(Buffer.from([0xff, 0x7b, 0x7d]))[0]).toMatch(/^statement is not UTF-8 JSON/);
    expect(errorsOf(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), statementFor(manifest()).bytes]))).toEqual(['statement starts with a UTF-8 byte-order mark']);
    expect(errorsOf(Buffer.alloc(PROVENANCE_MAX_BYTES + 1, 0x20))).toEqual([`statement is ${PROVENANCE_MAX_BYTES + 1} bytes, over the limit of ${PROVENANCE_MAX_BYTES}`]);
  });

  it('reports every problem at once', () => {
    const bytes = mutated((s) => {
      s.subject[0].digest.sha256 = 'f'.repeat(64);
      s.predicate.runDetails.builder.id = 'https://other.example/';
    });
    expect(errorsOf(bytes)).toHaveLength(2);
  });
});
