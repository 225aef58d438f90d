/**
 * Config layering, pure: flags > environment (GLASSBOX_…) > file > defaults.
 * Each layer is checked on its own against the JSON Schema, so every
 * problem names where it came from and its path; then cross-field rules run
 * on the merged result. Nothing here reads a file or the real environment.
 */
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { GlassboxError } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { CONFIG_SCHEMA } from './schema.js';
import type { DaemonConfig } from './types.js';

/** The config could not be accepted. `problems` lists every fault, each naming its source and path. */
export class ConfigError extends GlassboxError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`, { exitCode: 2 });
    this.problems = problems;
  }
}

type Kind = 'string' | 'integer' | 'number' | 'list' | 'protocol' | 'tristate';

/** One setting reachable from the command line and the environment. */
export interface LayeredOption {
  /** commander attribute name of the flag (camelCase of --kebab-case). */
  readonly flag: string;
  readonly flagSpelling: string;
  readonly env: string;
  readonly path: readonly [string] | readonly [string, string];
  readonly kind: Kind;
  readonly help: string;
}

export const LAYERED_OPTIONS: readonly LayeredOption[] = [
  { flag: 'stateDir', flagSpelling: '--state-dir <dir>', env: 'GLASSBOX_STATE_DIR', path: ['stateDir'], kind: 'string', help: 'device state directory (slots, state.json, queue)' },
  { flag: 'deviceId', flagSpelling: '--device-id <id>', env: 'GLASSBOX_DEVICE_ID', path: ['deviceId'], kind: 'string', help: 'device id (default: CN of the client certificate)' },
  { flag: 'hardware', flagSpelling: '--hardware <model>', env: 'GLASSBOX_HARDWARE', path: ['hardware'], kind: 'string', help: 'hardware model id' },
  { flag: 'broker', flagSpelling: '--broker <url>', env: 'GLASSBOX_BROKER', path: ['mqtt', 'url'], kind: 'string', help: 'MQTT broker URL, e.g. mqtts://broker.example:8883' },
  { flag: 'brokerCa', flagSpelling: '--broker-ca <file>', env: 'GLASSBOX_BROKER_CA', path: ['mqtt', 'ca'], kind: 'string', help: "PEM file of the CA that signed the broker's certificate" },
  { flag: 'cert', flagSpelling: '--cert <file>', env: 'GLASSBOX_CERT', path: ['mqtt', 'cert'], kind: 'string', help: 'PEM file of the device client certificate' },
  { flag: 'key', flagSpelling: '--key <file>', env: 'GLASSBOX_KEY', path: ['mqtt', 'key'], kind: 'string', help: 'PEM file of the device private key' },
  { flag: 'username', flagSpelling: '--username <name>', env: 'GLASSBOX_MQTT_USERNAME', path: ['mqtt', 'username'], kind: 'string', help: 'MQTT username (sites without client certificates)' },
  { flag: 'passwordFile', flagSpelling: '--password-file <file>', env: 'GLASSBOX_MQTT_PASSWORD_FILE', path: ['mqtt', 'passwordFile'], kind: 'string', help: 'file holding the MQTT password' },
  { flag: 'mqttProtocol', flagSpelling: '--mqtt-protocol <v>', env: 'GLASSBOX_MQTT_PROTOCOL', path: ['mqtt', 'protocolVersion'], kind: 'protocol', help: 'auto | 5 | 4 (3.1.1)' },
  { flag: 'apiListen', flagSpelling: '--api-listen <host:port>', env: 'GLASSBOX_API_LISTEN', path: ['api', 'listen'], kind: 'string', help: 'local HTTP API address' },
  { flag: 'healthInterval', flagSpelling: '--health-interval <seconds>', env: 'GLASSBOX_HEALTH_INTERVAL', path: ['health', 'intervalSeconds'], kind: 'number', help: 'seconds between health samples' },
  { flag: 'recordingPaths', flagSpelling: '--recording-paths <a,b>', env: 'GLASSBOX_RECORDING_PATHS', path: ['health', 'recordingPaths'], kind: 'list', help: 'comma-separated mount points of recording disks' },
  { flag: 'queueMaxBytes', flagSpelling: '--queue-max-bytes <n>', env: 'GLASSBOX_QUEUE_MAX_BYTES', path: ['queue', 'maxBytes'], kind: 'integer', help: 'upper bound of the on-disk offline queue' },
  { flag: 'logLevel', flagSpelling: '--log-level <level>', env: 'GLASSBOX_LOG_LEVEL', path: ['log', 'level'], kind: 'string', help: 'fatal|error|warn|info|debug|trace|silent' },
  { flag: 'egress', flagSpelling: '--egress <auto|on|off>', env: 'GLASSBOX_EGRESS', path: ['egress', 'enabled'], kind: 'tristate', help: 'egress observer and local API (auto: on for a recorder with an installed release)' },
  { flag: 'egressMode', flagSpelling: '--egress-mode <mode>', env: 'GLASSBOX_EGRESS_MODE', path: ['egress', 'mode'], kind: 'string', help: 'observe (count, alert) | enforce (also reject undeclared flows)' },
  { flag: 'apiSocket', flagSpelling: '--api-socket <path>', env: 'GLASSBOX_API_SOCKET', path: ['egress', 'socket'], kind: 'string', help: 'Unix socket of the local API' },
];

/** The password may come from the environment only (never a flag: it would show in `ps`). */
export const PASSWORD_ENV = 'GLASSBOX_MQTT_PASSWORD';

export interface ConfigLayers {
  /** Parsed config file, with the name to report it by; undefined = no file. */
  readonly file?: { readonly name: string; readonly value: unknown } | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** commander's option values (strings), keyed by LayeredOption.flag. */
  readonly flags: Readonly<Record<string, unknown>>;
}

export interface ResolvedConfig {
  readonly config: DaemonConfig;
  /** Accepted but worth a log line (e.g. a password over plain TCP). */
  readonly warnings: readonly string[];
}

const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
const validateLayer = ajv.compile(CONFIG_SCHEMA);

function describeAjvError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '/' : e.instancePath;
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty?: string }).additionalProperty ?? '?';
    return `${where === '/' ? '' : where}/${extra}: unknown setting`;
  }
  if (e.keyword === 'enum') {
    const allowed = (e.params as { allowedValues?: unknown[] }).allowedValues ?? [];
    return `${where}: must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return `${where}: ${e.message ?? e.keyword}`;
}

function checkLayer(name: string, value: unknown, problems: string[]): void {
  if (!validateLayer(value)) {
    for (const e of validateLayer.errors ?? []) problems.push(`${name}: ${describeAjvError(e)}`);
  }
}

function coerce(opt: LayeredOption, raw: string, source: string, problems: string[]): unknown {
  switch (opt.kind) {
    case 'string':
      return raw;
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    case 'integer':
      if (/^[0-9]{1,16}$/.test(raw)) return Number(raw);
      problems.push(`${source}: expected a whole number, got ${JSON.stringify(raw)}`);
      return undefined;
    case 'number':
      if (/^[0-9]{1,9}(\.[0-9]{1,6})?$/.test(raw)) return Number(raw);
      problems.push(`${source}: expected a number, got ${JSON.stringify(raw)}`);
      return undefined;
    case 'tristate':
      if (raw === 'auto') return 'auto';
      if (raw === 'on' || raw === 'true') return true;
      if (raw === 'off' || raw === 'false') return false;
      problems.push(`${source}: expected auto, on or off, got ${JSON.stringify(raw)}`);
      return undefined;
    case 'protocol':
      if (raw === 'auto') return 'auto';
      if (raw === '5') return 5;
      if (raw === '4' || raw === '3.1.1') return 4;
      problems.push(`${source}: expected auto, 5 or 4, got ${JSON.stringify(raw)}`);
      return undefined;
  }
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  if (rest.length === 0) {
    target[head] = value;
    return;
  }
  const inner = (target[head] ??= {}) as Record<string, unknown>;
  setPath(inner, rest, value);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (k === '$schema') continue;
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? merge(b, v) : v;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
  } catch {
    return false;
  }
}

/** Merges and checks the layers. Throws ConfigError listing every problem. */
export function resolveConfig(layers: ConfigLayers): ResolvedConfig {
  const problems: string[] = [];
  const warnings: string[] = [];

  let fileLayer: Record<string, unknown> = {};
  if (layers.file !== undefined) {
    const { name, value } = layers.file;
    if (!isPlainObject(value)) problems.push(`${name}: /: must be a JSON object`);
    else {
      checkLayer(name, value, problems);
      fileLayer = value;
    }
  }

  const envLayer: Record<string, unknown> = {};
  const flagLayer: Record<string, unknown> = {};
  for (const opt of LAYERED_OPTIONS) {
    const envRaw = layers.env[opt.env];
    if (envRaw !== undefined && envRaw !== '') {
      const v = coerce(opt, envRaw, `environment ${opt.env}`, problems);
      if (v !== undefined) setPath(envLayer, opt.path, v);
    }
    const flagRaw = layers.flags[opt.flag];
    if (flagRaw !== undefined) {
      const v = coerce(opt, String(flagRaw), `flag ${opt.flagSpelling.split(' ')[0]}`, problems);
      if (v !== undefined) setPath(flagLayer, opt.path, v);
    }
  }
  const password = layers.env[PASSWORD_ENV];
  if (password !== undefined && password !== '') setPath(envLayer, ['mqtt', 'password'], password);
  checkLayer('environment', envLayer, problems);
  checkLayer('flags', flagLayer, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const merged = merge(merge(merge(structuredClone(DEFAULTS) as unknown as Record<string, unknown>, fileLayer), envLayer), flagLayer);
  const config = merged as unknown as DaemonConfig;

  const m = config.mqtt;
  if ((m.cert === null) !== (m.key === null)) problems.push('mqtt.cert and mqtt.key must be given together (the client certificate and its private key)');
  if (m.password !== null && m.passwordFile !== null) problems.push('mqtt.password and mqtt.passwordFile are both set; set one');
  if ((m.password !== null || m.passwordFile !== null) && m.username === null) problems.push('mqtt.password needs mqtt.username');
  if (m.reconnectMinSeconds > m.reconnectMaxSeconds) problems.push(`mqtt.reconnectMinSeconds (${m.reconnectMinSeconds}) is above mqtt.reconnectMaxSeconds (${m.reconnectMaxSeconds})`);
  if (m.maxCommandBytes > m.maxPacketBytes) problems.push(`mqtt.maxCommandBytes (${m.maxCommandBytes}) is above mqtt.maxPacketBytes (${m.maxPacketBytes})`);
  if (m.url !== null && /^(mqtt|tcp):/.test(m.url) && !isLoopbackUrl(m.url)) {
    if (m.password !== null || m.passwordFile !== null) problems.push(`mqtt.url ${m.url} is plain TCP to a non-loopback host: a password would cross the network in clear; use mqtts://`);
    else warnings.push(`mqtt.url ${m.url} is plain TCP to a non-loopback host: telemetry is neither encrypted nor is the broker authenticated`);
  }
  if (config.egress.mode === 'enforce' && config.egress.enabled === false) warnings.push('egress.mode is enforce but egress.enabled is false: nothing is enforced');
  if (m.url !== null && /^(mqtt|tcp):/.test(m.url) && m.cert !== null) warnings.push('mqtt.cert is set but mqtt.url is not TLS (mqtts://): the certificate is not used');
  if (problems.length > 0) throw new ConfigError(problems);

  return { config: deepFreeze(config), warnings };
}
