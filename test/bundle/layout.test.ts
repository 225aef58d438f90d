import { describe, expect, test } from 'vitest';
import { BundleLayout, pathProblem, type EntryHeader, type EntryStep } from '../../src/bundle/layout.js';
import type { ManifestArtifact } from '../../src/manifest/types.js';

const artifacts: ManifestArtifact[] = [
  { name: 'rootfs.img', size: 100, sha256: 'a'.repeat(64), role: 'rootfs' },
  { name: 'sbom.json', size: 10, sha256: 'b'.repeat(64), role: 'sbom' },
  { name: 'prov.json', size: 0, sha256: 'c'.repeat(64), role: 'provenance' },
];

let offset = 0;
function h(path: string, extra: Partial<EntryHeader> = {}): EntryHeader {
  offset += 512;
  return { path, type: '0', size: 1, offset, ...extra };
}

/** Feeds paths in order; returns the first rejection or the last step. */
function feed(paths: Array<string | EntryHeader>, layout = new BundleLayout()): EntryStep {
  let last: EntryStep = { kind: 'manifest' };
  for (const p of paths) {
    last = layout.entry(typeof p === 'string' ? h(p) : p);
    if (last.kind === 'reject') return last;
  }
  return last;
}

const codeOf = (s: { kind: string; code?: string }): string | undefined => (s.kind === 'reject' ? s.code : s.kind);

describe('entry types', () => {
  test.each([
    ['1', 'hard link'],
    ['2', 'symbolic link'],
    ['3', 'character device'],
    ['4', 'block device'],
    ['5', 'directory'],
    ['6', 'FIFO'],
    ['7', 'contiguous file'],
    ['S', 'GNU sparse'],
    ['L', 'GNU long path'],
    ['K', 'GNU long link'],
    ['g', 'pax global'],
    ['Unsupported', 'unsupported type'],
  ])('typeflag %s (%s) is BUNDLE_FORMAT, also as the first entry', (type, words) => {
    for (const path of ['manifest.json', 'artifacts/rootfs.img']) {
      const step = new BundleLayout().entry(h(path, { type }));
      expect(step).toMatchObject({ kind: 'reject', code: 'BUNDLE_FORMAT' });
      expect((step as { reason: string }).reason).toContain(words);
    }
  });

  test('a regular file with a link name is BUNDLE_FORMAT', () => {
    expect(codeOf(feed([h('manifest.json', { linkpath: 'x' })]))).toBe('BUNDLE_FORMAT');
  });
});

describe('path forms', () => {
  test.each([
    ['../manifest.json', '".."'],
    ['artifacts/../manifest.json', '".."'],
    ['/manifest.json', 'absolute'],
    ['./manifest.json', '"."'],
    ['artifacts\\rootfs.img', 'backslash'],
    ['artifacts/root\0fs.img', 'NUL'],
    ['artifacts/', 'trailing slash'],
    ['artifacts//rootfs.img', 'empty path segment'],
    ['artifacts/sub/rootfs.img', 'artifact name'],
    ['artifacts/.hidden', 'artifact name'],
    ['artifacts/-x', 'artifact name'],
    ['artifacts/' + 'a'.repeat(129), 'artifact name'],
    ['signatures/1.der', 'outside'],
    ['signatures/01.sig', 'outside'],
    ['signatures/0.sig', 'outside'],
    ['Manifest.json', 'outside'],
    ['notes.txt', 'outside'],
    ['', 'empty path'],
  ])('%j is refused (%s)', (path, words) => {
    expect(pathProblem(path)).toContain(words);
    const step = feed(['manifest.json', h(path)]);
    expect(step).toMatchObject({ kind: 'reject', code: 'BUNDLE_FORMAT' });
  });

  test.each(['manifest.json', 'signatures/1.sig', 'signatures/16.pem', 'artifacts/a', 'artifacts/' + 'A'.repeat(128), 'artifacts/x.y_z-1'])(
    '%j is an allowed form',
    (path) => expect(pathProblem(path)).toBeNull(),
  );
});

describe('entry order', () => {
  test('manifest.json must be first', () => {
    expect(feed(['signatures/1.sig'])).toMatchObject({ code: 'BUNDLE_FORMAT', reason: expect.stringContaining('first entry') });
    expect(feed(['artifacts/rootfs.img'])).toMatchObject({ code: 'BUNDLE_FORMAT' });
  });

  test('a second manifest.json is refused, wherever it is', () => {
    expect(feed(['manifest.json', 'manifest.json'])).toMatchObject({ code: 'BUNDLE_FORMAT', reason: expect.stringContaining('second') });
    expect(feed(['manifest.json', 'signatures/1.sig', 'signatures/1.pem', 'artifacts/rootfs.img', 'manifest.json'])).toMatchObject({
      code: 'BUNDLE_FORMAT',
    });
  });

  test('a manifest over 1 MiB is MANIFEST_INVALID at its header', () => {
    expect(feed([h('manifest.json', { size: 1024 * 1024 + 1 })])).toMatchObject({ code: 'MANIFEST_INVALID' });
    expect(feed([h('manifest.json', { size: 1024 * 1024 })])).toEqual({ kind: 'manifest' });
  });

  test('signature pairs in order are accepted, up to 16', () => {
    const paths = ['manifest.json'];
    for (let k = 1; k <= 16; k++) paths.push(`signatures/${k}.sig`, `signatures/${k}.pem`);
    const layout = new BundleLayout();
    expect(feed([...paths, 'artifacts/rootfs.img'], layout)).toEqual({ kind: 'artifact', name: 'rootfs.img', first: true });
    expect(layout.signerCount).toBe(16);
  });

  test('a 17th signer is refused', () => {
    const paths = ['manifest.json'];
    for (let k = 1; k <= 16; k++) paths.push(`signatures/${k}.sig`, `signatures/${k}.pem`);
    expect(feed([...paths, 'signatures/17.sig'])).toMatchObject({ code: 'BUNDLE_FORMAT', reason: expect.stringContaining('16 signers') });
  });

  test.each([
    [['signatures/1.pem'], 'without a preceding'],
    [['signatures/1.sig', 'signatures/2.sig'], 'has no signatures/1.pem'],
    [['signatures/1.sig', 'artifacts/rootfs.img'], 'has no signatures/1.pem'],
    [['signatures/2.sig', 'signatures/2.pem'], 'expected signatures/1.sig'],
    [['signatures/1.sig', 'signatures/1.pem', 'signatures/3.sig'], 'expected signatures/2.sig'],
    [['signatures/1.sig', 'signatures/1.pem', 'signatures/1.sig'], 'expected signatures/2.sig'],
    [['signatures/1.sig', 'signatures/1.pem', 'signatures/1.pem'], 'without a preceding'],
    [['signatures/1.sig', 'signatures/1.sig'], 'has no signatures/1.pem'],
    [['signatures/1.sig', 'signatures/1.pem', 'artifacts/rootfs.img', 'signatures/2.sig'], 'after the first artifact'],
  ])('%j is BUNDLE_FORMAT (%s)', (paths, words) => {
    expect(feed(['manifest.json', ...paths])).toMatchObject({ code: 'BUNDLE_FORMAT', reason: expect.stringContaining(words) });
  });

  test('a .sig without its .pem at the end of the archive is BUNDLE_FORMAT', () => {
    const layout = new BundleLayout();
    feed(['manifest.json', 'signatures/1.sig'], layout);
    layout.setManifestArtifacts(artifacts);
    expect(layout.end()).toMatchObject({ code: 'BUNDLE_FORMAT' });
  });

  test('an empty archive is BUNDLE_FORMAT', () => {
    expect(new BundleLayout().end()).toMatchObject({ code: 'BUNDLE_FORMAT' });
  });

  test('size limits of signature entries', () => {
    expect(feed(['manifest.json', h('signatures/1.sig', { size: 4097 })])).toMatchObject({ code: 'BUNDLE_FORMAT' });
    expect(feed(['manifest.json', h('signatures/1.sig', { size: 4096 }), h('signatures/1.pem', { size: 65537 })])).toMatchObject({
      code: 'BUNDLE_FORMAT',
    });
    expect(feed(['manifest.json', h('signatures/1.sig', { size: 4096 }), h('signatures/1.pem', { size: 65536 })])).toMatchObject({
      kind: 'signature',
    });
  });
});

describe('artifacts against the manifest', () => {
  function started(): BundleLayout {
    const layout = new BundleLayout();
    feed(['manifest.json', 'signatures/1.sig', 'signatures/1.pem'], layout);
    layout.setManifestArtifacts(artifacts);
    return layout;
  }

  test('all in order, then complete', () => {
    const layout = started();
    expect(layout.entry(h('artifacts/rootfs.img'))).toEqual({ kind: 'artifact', name: 'rootfs.img', first: true });
    expect(layout.artifact('rootfs.img', 100)).toMatchObject({ kind: 'artifact', position: 0, artifact: artifacts[0] });
    expect(layout.entry(h('artifacts/sbom.json'))).toEqual({ kind: 'artifact', name: 'sbom.json', first: false });
    expect(layout.artifact('sbom.json', 10)).toMatchObject({ kind: 'artifact', position: 1 });
    expect(layout.artifact('prov.json', 0)).toMatchObject({ kind: 'artifact', position: 2 });
    expect(layout.end()).toEqual({ kind: 'complete' });
  });

  test('not listed', () => {
    expect(started().artifact('extra.bin', 1)).toMatchObject({ code: 'ARTIFACT_UNEXPECTED', reason: expect.stringContaining('not listed') });
  });

  test('listed twice', () => {
    const layout = started();
    layout.artifact('rootfs.img', 100);
    expect(layout.artifact('rootfs.img', 100)).toMatchObject({ code: 'ARTIFACT_UNEXPECTED', reason: expect.stringContaining('twice') });
  });

  test('twice after all were seen', () => {
    const layout = started();
    layout.artifact('rootfs.img', 100);
    layout.artifact('sbom.json', 10);
    layout.artifact('prov.json', 0);
    expect(layout.artifact('prov.json', 0)).toMatchObject({ code: 'ARTIFACT_UNEXPECTED' });
  });

  test('out of order', () => {
    expect(started().artifact('sbom.json', 10)).toMatchObject({
      code: 'ARTIFACT_UNEXPECTED',
      reason: expect.stringContaining('expected artifacts/rootfs.img'),
    });
  });

  test('size differs from the manifest at the header', () => {
    expect(started().artifact('rootfs.img', 99)).toMatchObject({ code: 'ARTIFACT_SIZE' });
    expect(started().artifact('rootfs.img', 101)).toMatchObject({ code: 'ARTIFACT_SIZE' });
  });

  test('missing at the end names the first missing artifact', () => {
    const layout = started();
    layout.artifact('rootfs.img', 100);
    expect(layout.end()).toMatchObject({ code: 'ARTIFACT_MISSING', reason: expect.stringContaining('sbom.json') });
    const none = started();
    expect(none.end()).toMatchObject({ code: 'ARTIFACT_MISSING', reason: expect.stringContaining('2 more') });
  });
});
