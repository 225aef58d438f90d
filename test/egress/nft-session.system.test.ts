/**
 * The long-lived `nft -j -i` that the counter poll lists the table through
 * (src/egress/nft.ts), against the real nft in a namespace of the test's
 * own: answers match one-shot `nft -j list`, a missing table is null, one
 * process serves many listings, and every fault (killed, hung, too much
 * output, recycled) ends in a clear error or a fresh session, never in an
 * answer to the wrong question.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Nft, NftSession } from '../../src/egress/nft.js';
import { requireSystem } from '../helpers/system.js';

const missing = requireSystem(['ip', 'nft'], { root: true });
const NS = `gb-nftsess-${process.pid}`;
const IN_NS = ['ip', 'netns', 'exec', NS, 'nft'];

describe.skipIf(missing)(`the nft listing session${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let nft: Nft;

  beforeAll(async () => {
    const r = spawnSync('ip', ['netns', 'add', NS], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip netns add: ${r.stderr}`);
    nft = new Nft({ command: IN_NS });
    await nft.load('table inet gbsess {\n  counter c1 {}\n  set s4 { type ipv4_addr; flags interval; elements = { 192.0.2.0/24 } }\n}\n');
  });
  afterAll(async () => {
    await nft?.close();
    spawnSync('ip', ['netns', 'del', NS]);
  });

  it('answers as one-shot nft does, and null for a table that does not exist', async () => {
    const viaSession = await nft.listTable('gbsess');
    const oneShot = await new Nft({ command: IN_NS, session: false }).listTable('gbsess');
    expect(viaSession).toEqual(oneShot);
    expect(JSON.stringify(viaSession)).toContain('"name":"c1"');
    expect(await nft.listTable('nosuchtable')).toBeNull();
    // The session is still in step after an error: the next answer is the right table's.
    expect(JSON.stringify(await nft.listTable('gbsess'))).toContain('"name":"s4"');
  });

  it('serves many listings from one process, in order, also when asked concurrently', async () => {
    await nft.listTable('gbsess');
    const pid = nft.sessionPid;
    expect(pid).not.toBeNull();
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => nft.listTable(i % 2 === 0 ? 'gbsess' : 'nosuchtable')));
    answers.forEach((a, i) => (i % 2 === 0 ? expect(JSON.stringify(a)).toContain('gbsess') : expect(a).toBeNull()));
    expect(nft.sessionPid).toBe(pid);
  });

  it('starts a fresh nft after the session is killed', async () => {
    await nft.listTable('gbsess');
    const pid = nft.sessionPid as number;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && nft.sessionPid !== null; i++) await new Promise((r) => setTimeout(r, 20));
    expect(nft.sessionPid).toBeNull();
    const t0 = Date.now();
    expect(JSON.stringify(await nft.listTable('gbsess'))).toContain('gbsess');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(nft.sessionPid).not.toBe(pid);
  });

  it('replaces its nft after RECYCLE_AFTER listings', async () => {
    const fresh = new Nft({ command: IN_NS });
    try {
      await fresh.listTable('gbsess');
      const first = fresh.sessionPid;
      for (let i = 1; i < NftSession.RECYCLE_AFTER; i++) await fresh.listTable('gbsess');
      expect(fresh.sessionPid).toBe(first);
      await fresh.listTable('gbsess');
      expect(fresh.sessionPid).not.toBe(first);
    } finally {
      await fresh.close();
    }
  }, 60_000);

  it('fails with NftError on a hung nft (timeout), on too much output, and on a bad table name', async () => {
    // A stand-in that reads its input and never answers.
    const hung = new Nft({ command: ['sh', '-c', 'exec cat >/dev/null', 'nft'], timeoutMs: 300 });
    await expect(hung.listTable('gbsess')).rejects.toThrow(/did not answer .* within 300 ms/);
    await hung.close();

    const small = new Nft({ command: IN_NS, maxOutputBytes: 64 });
    await expect(small.listTable('gbsess')).rejects.toThrow(/more than 64 bytes/);
    await small.close();

    await expect(nft.listTable('gbsess\nflush ruleset')).rejects.toThrow(/not a table name/);
    expect(JSON.stringify(await nft.listTable('gbsess'))).toContain('gbsess');
  });

  it('refuses requests after close()', async () => {
    const closing = new Nft({ command: IN_NS });
    await closing.listTable('gbsess');
    await closing.close();
    await expect(closing.listTable('gbsess')).rejects.toThrow(/closed/);
  });
});
