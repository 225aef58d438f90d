/**
 * JSON Schemas (2020-12) of every MQTT payload. These constants are the
 * source; schemas/mqtt/<name>.schema.json are the same documents for ops
 * (test/telemetry/schemas.test.ts keeps them equal and validates real
 * payloads against them).
 */
const iso = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' } as const;
const sha = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const nsha = { type: ['string', 'null'], pattern: '^[0-9a-f]{64}$' } as const;
const nstr = { type: ['string', 'null'] } as const;
const count = { type: 'integer', minimum: 0 } as const;
const deviceId = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' } as const;
const envelope = (schema: string) => ({ schema: { const: schema }, deviceId });
const base = (id: string, title: string) => ({ $schema: 'https://json-schema.org/draft/2020-12/schema', $id: `urn:glassbox:schema:mqtt:${id}`, title, type: 'object' });

export const MQTT_SCHEMAS = {
  status: {
    ...base('status:v1', 'glassbox/v1/<deviceId>/status (retained; also the last will)'),
    required: ['schema', 'deviceId', 'state', 'reason', 'at', 'daemonVersion', 'bootId', 'hardware'],
    additionalProperties: false,
    properties: {
      ...envelope('glassbox.status/v1'),
      state: { enum: ['online', 'offline'] },
      reason: { enum: ['connected', 'shutdown', 'connection-lost'] },
      at: iso,
      daemonVersion: { type: 'string' },
      bootId: nstr,
      hardware: nstr,
    },
  },
  health: {
    ...base('health:v1', 'glassbox/v1/<deviceId>/health'),
    required: ['schema', 'deviceId', 'at', 'bootId', 'uptimeSeconds', 'cpu', 'memory', 'temperatures', 'disks', 'network', 'clock', 'daemon', 'errors'],
    additionalProperties: false,
    properties: {
      ...envelope('glassbox.health/v1'),
      at: iso,
      bootId: nstr,
      uptimeSeconds: { type: ['integer', 'null'], minimum: 0 },
      cpu: { type: ['object', 'null'], required: ['load1', 'load5', 'load15', 'cores'], properties: { load1: { type: 'number' }, load5: { type: 'number' }, load15: { type: 'number' }, cores: count } },
      memory: {
        type: ['object', 'null'],
        required: ['totalBytes', 'availableBytes', 'usedPercent', 'swapTotalBytes', 'swapFreeBytes'],
        properties: { totalBytes: count, availableBytes: count, usedPercent: { type: 'number' }, swapTotalBytes: count, swapFreeBytes: count },
      },
      temperatures: { type: 'array', maxItems: 32, items: { type: 'object', required: ['sensor', 'celsius'], properties: { sensor: { type: 'string' }, celsius: { type: 'number' } } } },
      disks: {
        type: 'array',
        items: {
          type: 'object',
          required: ['path', 'device', 'totalBytes', 'availableBytes', 'usedPercent', 'io', 'smart', 'error'],
          properties: {
            path: { type: 'string' },
            device: nstr,
            totalBytes: count,
            availableBytes: count,
            usedPercent: { type: 'number' },
            io: { type: ['object', 'null'], required: ['readsCompleted', 'writesCompleted', 'sectorsRead', 'sectorsWritten', 'ioMillis'] },
            smart: { type: ['object', 'null'], required: ['health', 'checkedAt'], properties: { health: { enum: ['passed', 'failed', 'unknown'] }, checkedAt: iso } },
            error: nstr,
          },
        },
      },
      network: {
        type: 'array',
        maxItems: 32,
        items: {
          type: 'object',
          required: ['name', 'operstate', 'speedMbps', 'rxBytes', 'txBytes', 'rxErrors', 'txErrors', 'rxDropped', 'txDropped'],
          properties: { name: { type: 'string' }, operstate: { type: 'string' }, speedMbps: { type: ['number', 'null'] }, rxBytes: count, txBytes: count, rxErrors: count, txErrors: count, rxDropped: count, txDropped: count },
        },
      },
      clock: { type: 'object', required: ['sync', 'source'], properties: { sync: { enum: ['synchronized', 'unsynchronized', 'unknown'] }, source: { type: 'string' } } },
      daemon: {
        type: 'object',
        required: ['rssBytes', 'heapUsedBytes', 'uptimeSeconds', 'eventLoop', 'queue'],
        properties: {
          rssBytes: count,
          heapUsedBytes: count,
          uptimeSeconds: count,
          eventLoop: { type: 'object', required: ['utilization', 'delayP50Ms', 'delayP99Ms', 'delayMaxMs'] },
          queue: { type: 'object', required: ['depth', 'bytes', 'maxBytes', 'droppedEvents', 'droppedHealth'] },
        },
      },
      errors: { type: 'array', items: { type: 'string' } },
    },
  },
  provenance: {
    ...base('provenance:v1', 'glassbox/v1/<deviceId>/provenance (retained)'),
    required: ['schema', 'deviceId', 'at', 'installed', 'activeSlot', 'slots', 'securityFloor', 'trustPolicySha256'],
    additionalProperties: false,
    properties: {
      ...envelope('glassbox.provenance/v1'),
      at: iso,
      installed: {
        type: ['object', 'null'],
        required: ['product', 'version', 'manifestSha256', 'securityVersion', 'released', 'expires', 'signers', 'sbomSha256', 'provenanceSha256', 'sourceRepository', 'sourceCommit', 'builder'],
        additionalProperties: false,
        properties: {
          product: nstr,
          version: { type: 'string' },
          manifestSha256: sha,
          securityVersion: count,
          released: nstr,
          expires: nstr,
          signers: { type: 'array', items: { type: 'object', required: ['subject', 'spkiSha256'], properties: { subject: nstr, spkiSha256: nsha } } },
          sbomSha256: nsha,
          provenanceSha256: nsha,
          sourceRepository: nstr,
          sourceCommit: nstr,
          builder: nstr,
        },
      },
      activeSlot: nstr,
      slots: { type: 'array', items: { type: 'object', required: ['name', 'state', 'version', 'manifestSha256'], properties: { name: { type: 'string' }, state: { type: 'string' }, version: nstr, manifestSha256: nsha } } },
      securityFloor: { type: ['integer', 'null'], minimum: 0 },
      trustPolicySha256: nsha,
    },
  },
  event: {
    ...base('event:v1', 'glassbox/v1/<deviceId>/events (QoS 1, at least once: de-duplicate by id)'),
    required: ['schema', 'deviceId', 'id', 'seq', 'type', 'at', 'data'],
    additionalProperties: false,
    properties: {
      ...envelope('glassbox.event/v1'),
      id: { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' },
      seq: { type: 'integer', minimum: 0, description: '0 for the out-of-band queue.dropped report' },
      type: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,31}(\\.[a-z][a-z0-9-]{0,31}){1,3}$' },
      at: iso,
      data: { type: 'object' },
    },
  },
  cmdResponse: {
    ...base('cmd-response:v1', 'reply to glassbox/v1/<deviceId>/cmd/<name>'),
    required: ['schema', 'deviceId', 'command', 'at', 'ok', 'correlation'],
    additionalProperties: false,
    properties: {
      ...envelope('glassbox.cmd-response/v1'),
      command: { type: 'string' },
      at: iso,
      ok: { type: 'boolean' },
      result: {},
      error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
      correlation: nstr,
    },
    oneOf: [
      { properties: { ok: { const: true } }, required: ['result'] },
      { properties: { ok: { const: false } }, required: ['error'] },
    ],
  },
  cmdRequest: {
    ...base('cmd-request:v1', 'glassbox/v1/<deviceId>/cmd/<name> (an empty payload is also accepted)'),
    additionalProperties: false,
    properties: { correlationId: { type: 'string', minLength: 1, maxLength: 128 }, args: { type: 'object' } },
  },
} as const;

export type MqttSchemaName = keyof typeof MQTT_SCHEMAS;
