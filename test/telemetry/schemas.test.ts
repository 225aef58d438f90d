import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { MQTT_SCHEMAS, type MqttSchemaName } from '../../src/telemetry/schemas.js';
import { CONFIG_SCHEMA } from '../../src/config/schema.js';
import { cmdResponse, eventPayload, provenancePayload, statusPayload } from '../../src/telemetry/payloads.js';
import { testCollector } from '../helpers/health.js';
import { EMPTY_PROVENANCE } from '../../src/daemon/provenance.js';

const FILES: Array<[string, object]> = [
  ...Object.entries(MQTT_SCHEMAS).map(([name, s]) => [join('schemas', 'mqtt', `${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}.schema.json`), s] as [string, object]),
  [join('schemas', 'config.schema.json'), CONFIG_SCHEMA],
];

describe('published JSON Schemas', () => {
  it('schemas/ holds exactly the schemas the code uses (UPDATE_SCHEMAS=1 rewrites them)', async () => {
    for (const [path, schema] of FILES) {
      const text = JSON.stringify(schema, null, 2) + '\n';
      if (process.env['UPDATE_SCHEMAS'] === '1') {
        await mkdir(join('schemas', 'mqtt'), { recursive: true });
        await writeFile(path, text);
      }
      expect(await readFile(path, 'utf8'), path).toBe(text);
    }
  });

  const ajv = new Ajv2020({ allErrors: true, strict: false });
  const check = (name: MqttSchemaName, value: unknown) => {
    const v = ajv.getSchema(MQTT_SCHEMAS[name].$id) ?? ajv.compile(MQTT_SCHEMAS[name]);
    expect(v(value), JSON.stringify(v.errors)).toBe(true);
  };
  const at = new Date('2026-01-02T03:04:05.678Z');

  it('every payload the daemon builds matches its schema', async () => {
    check('status', statusPayload({ deviceId: 'nvr-1', state: 'offline', reason: 'connection-lost', at, daemonVersion: '0.1.0', bootId: null, hardware: null }));
    check('provenance', provenancePayload('nvr-1', EMPTY_PROVENANCE, at));
    check('event', eventPayload('nvr-1', '0f8fad5b-d9cb-469f-a165-70867728950e', 7, 'trust.rotation', { previousPolicySha256: null, policySha256: 'a'.repeat(64) }, at));
    check('cmdResponse', cmdResponse('nvr-1', 'health', at, 'abc', { ok: false, code: 'BAD_REQUEST', message: 'x' }));
    check('cmdResponse', cmdResponse('nvr-1', 'health', at, null, { ok: true, result: {} }));
    const collector = testCollector({ recordingPaths: ['/', '/definitely/not/there'], at });
    const sample = await collector.sample();
    check('health', sample);
    // This machine's /proc is read directly; a missing recording path is reported, not hidden.
    expect(sample.memory?.totalBytes).toBeGreaterThan(0);
    expect(sample.cpu?.cores).toBeGreaterThan(0);
    expect(sample.disks[0]?.totalBytes).toBeGreaterThan(0);
    expect(sample.disks[1]?.error).toMatch(/ENOENT/);
    expect(sample.errors.some((e) => e.includes('/definitely/not/there'))).toBe(true);
  });
});
