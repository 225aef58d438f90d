import { spawnSync } from 'node:child_process';

/**
 * Gate for tests that need real system tools (openssl, nft, conntrack,
 * mosquitto, ip …) or root. Returns null when everything is present, or a
 * reason naming what is missing, for `it.skipIf(reason)` / `describe.skipIf`.
 *
 * When `CI=true` a missing tool is not a skip but a failure: this function
 * throws, so the suite cannot go green by not running.
 *
 *   const missing = requireSystem(['openssl']);
 *   describe.skipIf(missing)('when …', () => { … });
 */
export function requireSystem(tools: readonly string[], opts: { root?: boolean } = {}): string | null {
  const missing: string[] = [];
  for (const tool of tools) {
    if (!/^[A-Za-z0-9._+-]+$/.test(tool)) throw new Error(`requireSystem: bad tool name ${JSON.stringify(tool)}`);
    // `command -v` through sh finds builtins and PATH entries alike, without running the tool.
    const probe = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8', timeout: 5_000 });
    if (probe.status !== 0) missing.push(tool);
  }
  if (opts.root && (typeof process.getuid !== 'function' || process.getuid() !== 0)) missing.push('root privileges');
  if (missing.length === 0) return null;
  const reason = `missing: ${missing.join(', ')}`;
  if (process.env['CI'] === 'true') throw new Error(`system test requirement not met under CI: ${reason}`);
  return reason;
}
