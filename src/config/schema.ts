/**
 * JSON Schema (2020-12) of the daemon's config file. This constant is the
 * source; `schemas/config.schema.json` is the same document published for
 * operators and is checked against it by test/config/schema-files.test.ts.
 * Every property is optional in the file: defaults fill the rest.
 */
const path = { type: 'string', minLength: 1, maxLength: 4096 } as const;
const nullablePath = { type: ['string', 'null'], minLength: 1, maxLength: 4096 } as const;

export const DEVICE_ID_REGEX = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const HOST_PORT_REGEX = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]{1,253}):[0-9]{1,5}$';

export const CONFIG_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'urn:glassbox:schema:daemon-config:v1',
  title: 'glassbox daemon configuration',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    deviceId: { type: ['string', 'null'], pattern: DEVICE_ID_REGEX, description: 'null: the CN of the client certificate' },
    hardware: { type: ['string', 'null'], minLength: 1, maxLength: 64 },
    stateDir: path,
    mqtt: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: ['string', 'null'], pattern: '^(mqtts?|tls|ssl|tcp)://[^\\s]+$', maxLength: 2048 },
        ca: nullablePath,
        cert: nullablePath,
        key: nullablePath,
        username: { type: ['string', 'null'], minLength: 1, maxLength: 256 },
        password: { type: ['string', 'null'], maxLength: 1024 },
        passwordFile: nullablePath,
        protocolVersion: { enum: ['auto', 5, 4] },
        keepaliveSeconds: { type: 'integer', minimum: 5, maximum: 3600 },
        connectTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 300 },
        reconnectMinSeconds: { type: 'number', minimum: 0.1, maximum: 3600 },
        reconnectMaxSeconds: { type: 'number', minimum: 1, maximum: 86400 },
        maxCommandBytes: { type: 'integer', minimum: 256, maximum: 1048576 },
        maxPacketBytes: { type: 'integer', minimum: 1024, maximum: 16777216 },
        commandsPerMinute: { type: 'integer', minimum: 1, maximum: 6000 },
        inflightWindow: { type: 'integer', minimum: 1, maximum: 1000 },
      },
    },
    health: {
      type: 'object',
      additionalProperties: false,
      properties: {
        intervalSeconds: { type: 'number', minimum: 1, maximum: 86400 },
        recordingPaths: { type: 'array', items: path, maxItems: 32, uniqueItems: true },
        interfaces: { type: ['array', 'null'], items: { type: 'string', pattern: '^[^/\\s]{1,15}$' }, maxItems: 32, uniqueItems: true },
        smart: { type: 'boolean' },
        smartIntervalSeconds: { type: 'integer', minimum: 60, maximum: 604800 },
        eventLoopResolutionMs: { type: 'integer', minimum: 10, maximum: 60000 },
      },
    },
    queue: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxBytes: { type: 'integer', minimum: 65536, maximum: 17179869184 },
        dir: nullablePath,
      },
    },
    api: {
      type: 'object',
      additionalProperties: false,
      properties: { listen: { type: 'string', pattern: HOST_PORT_REGEX } },
    },
    egress: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { enum: [true, false, 'auto'], description: '"auto": on for a recorder with an installed release (docs/config.md)' },
        mode: { enum: ['observe', 'enforce'] },
        socket: nullablePath,
        allowWildcard: { type: 'boolean' },
        runtimeDir: path,
        conntrackBufferBytes: { type: 'integer', minimum: 65536, maximum: 1073741824 },
        conntrackRealtimePriority: { type: ['integer', 'null'], minimum: 1, maximum: 99 },
        pollMs: { type: 'integer', minimum: 100, maximum: 60000 },
        dnsServers: { type: ['array', 'null'], items: { type: 'string', pattern: '^(\\[[0-9A-Fa-f:.]+\\](:[0-9]{1,5})?|[0-9A-Fa-f:.]+|[0-9.]+:[0-9]{1,5})$' }, minItems: 1, maxItems: 8 },
        flowsCap: { type: 'integer', minimum: 10, maximum: 100000 },
        keepTableOnStop: { type: 'boolean' },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: { level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] } },
    },
  },
} as const;
