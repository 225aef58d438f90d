// No Docker engine runs here, so the Dockerfile is checked statically: the
// base image is Node 24 LTS, every build-context path it copies exists, and
// its entry point is the same file package.json ships as the `glassbox` bin.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const lines = dockerfile.split('\n').filter((l) => !l.trimStart().startsWith('#'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; engines: { node: string } };

describe('Dockerfile', () => {
  it('builds on the Node 24 LTS image', () => {
    const arg = lines.find((l) => l.startsWith('ARG NODE_IMAGE='));
    expect(arg).toMatch(/^ARG NODE_IMAGE=node:24-/);
  });

  it('copies only paths that exist in the build context', () => {
    const sources = lines
      .filter((l) => /^COPY\s/.test(l) && !l.includes('--from='))
      .flatMap((l) => l.replace(/^COPY\s+/, '').trim().split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const src of sources) expect(existsSync(join(root, src)), `COPY source ${src}`).toBe(true);
  });

  it('starts the same entry point that package.json ships as the glassbox bin', () => {
    const entry = lines.find((l) => l.startsWith('ENTRYPOINT'));
    expect(entry).toContain(`/opt/glassbox/${pkg.bin['glassbox']}`);
  });

  it('installs the kernel tools the egress observer runs', () => {
    expect(dockerfile).toMatch(/apt-get install[^\n]*nftables[^\n]*conntrack/);
  });
});
