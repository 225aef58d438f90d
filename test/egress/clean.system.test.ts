/**
 * glassbox passes its own attestation: the observer runs in the recorder
 * namespace for 60 s, talking MQTT to its broker and resolving the broker's
 * name every TTL, and the signed verdict is `clean` with zero undeclared
 * flows. The envelope is fetched with `glassbox attest`, checked with
 * `glassbox verify-attestation` and with the stock-tools script.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { requireSystem } from '../helpers/system.js';
import { ADDR, createLab, startBroker, type Lab } from '../helpers/netns.js';
import { BROKER_NAME, builtObserverMissing, startObserver, type RunningObserver } from './lab-observer.js';

const missing = requireSystem(['ip', 'nft', 'conntrack', 'dnsmasq', 'mosquitto', 'openssl', 'base64', 'sha256sum'], { root: true }) ?? builtObserverMissing();
const CLI = resolve('dist/cli/main.js');
const RUN_SECONDS = Number(process.env['GLASSBOX_CLEAN_RUN_SECONDS'] ?? 60);

describe.skipIf(missing)(`the observer's own traffic over ${RUN_SECONDS} s${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let lab: Lab;
  let obs: RunningObserver;
  let policyPath: string;

  beforeAll(async () => {
    lab = await createLab({ hosts: { [BROKER_NAME]: ADDR.broker }, dnsTtl: 2 });
    await startBroker(lab);
    obs = await startObserver(lab, { mqtt: true });
    policyPath = join(lab.dir, 'trust-policy.json');
    await writeFile(policyPath, obs.pki.policyBytes);
  }, 60_000);

  afterAll(async () => {
    await obs?.stop();
    await lab?.teardown();
  });

  it('is clean after running, with its broker and DNS flows declared and attributed', async () => {
    await new Promise((r) => setTimeout(r, RUN_SECONDS * 1000));
    const snap = await obs.egress();
    expect(snap.reasons).toEqual([]);
    expect(snap.verdict).toBe('clean');
    expect(snap.undeclared).toBe(0);
    expect(snap.observation.eventsLost).toBe(0);
    expect(snap.observation.gaps).toEqual([]);
    expect(snap.observation.rulesetIntact).toBe(true);
    const rules = new Set(snap.flows.map((f) => f.rule));
    expect(rules).toEqual(new Set(['broker', 'dns']));
    // DNS was asked again and again (TTL 2 s; c-ares reuses its UDP socket, so one flow may carry many queries).
    expect(snap.observation.counters.rules['dns']!.local).toBeGreaterThan(1);
    const mqttFlow = snap.flows.find((f) => f.rule === 'broker')!;
    expect(mqttFlow.dst).toBe(ADDR.broker);
    expect(mqttFlow.uids).toEqual([0]);
    // The long-lived MQTT socket is attributed to the observer's process and executable.
    expect(mqttFlow.process?.exe).toBe(realpathSync(process.execPath));
    expect(mqttFlow.process?.sha256).toBe(createHash('sha256').update(await readFile(process.execPath)).digest('hex'));
  }, (RUN_SECONDS + 60) * 1000);

  it('serves a signed clean attestation that verify-attestation and the stock-tools check accept', async () => {
    const nonce = 'lab-nonce-' + Date.now().toString(36) + 'abcdef';
    const envPath = join(lab.dir, 'envelope.json');
    const attest = spawnSync(process.execPath, [CLI, 'attest', '--socket', obs.socket, '--nonce', nonce, '--out', envPath], { encoding: 'utf8' });
    expect(attest.stderr).toBe('');
    expect(attest.status).toBe(0);

    const verify = spawnSync(process.execPath, [CLI, 'verify-attestation', envPath, '--trust', policyPath, '--nonce', nonce], { encoding: 'utf8' });
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);
    expect(verify.stdout).toContain('authentic and fresh: device nvr-lab-0001');
    expect(verify.stdout).toContain('verdict: clean');

    const stock = spawnSync('sh', [resolve('scripts/check-attestation.sh'), envPath, policyPath, nonce], { encoding: 'utf8' });
    expect(stock.stdout + stock.stderr).toContain('AUTHENTIC AND FRESH: device nvr-lab-0001, verdict clean, undeclared flows 0');
    expect(stock.status).toBe(0);

    // The same envelope with another nonce is refused, by both.
    const other = 'someone-elses-nonce-123';
    expect(spawnSync(process.execPath, [CLI, 'verify-attestation', envPath, '--trust', policyPath, '--nonce', other], { encoding: 'utf8' }).status).toBe(1);
    const stockBad = spawnSync('sh', [resolve('scripts/check-attestation.sh'), envPath, policyPath, other], { encoding: 'utf8' });
    expect(stockBad.status).toBe(1);
    expect(stockBad.stdout).toContain('FAIL: the document\'s nonce');
  }, 60_000);

  it('answers a missing or malformed nonce with HTTP 400 and a JSON error, never a document', async () => {
    for (const q of ['', '?nonce=short', '?nonce=' + 'x'.repeat(129), '?nonce=bad%20nonce%20with%20spaces', '?nonce=aaaaaaaaaaaaaaaa&nonce=bbbbbbbbbbbbbbbb']) {
      const r = await obs.get(`/v1/attestation${q}`);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body.toString()).error).toBe('NONCE_INVALID');
    }
    const h = await obs.get('/healthz');
    expect(h.status).toBe(200);
  });
});
