import type { DaemonConfig } from './types.js';

export const DEFAULT_CONFIG_PATH = '/etc/glassbox/config.json';

export const DEFAULTS: DaemonConfig = {
  deviceId: null,
  hardware: null,
  stateDir: '/var/lib/glassbox',
  mqtt: {
    url: null,
    ca: null,
    cert: null,
    key: null,
    username: null,
    password: null,
    passwordFile: null,
    protocolVersion: 'auto',
    keepaliveSeconds: 30,
    connectTimeoutSeconds: 10,
    reconnectMinSeconds: 1,
    reconnectMaxSeconds: 60,
    maxCommandBytes: 16 * 1024,
    maxPacketBytes: 256 * 1024,
    commandsPerMinute: 60,
    inflightWindow: 16,
  },
  health: {
    intervalSeconds: 30,
    recordingPaths: ['/'],
    interfaces: null,
    smart: true,
    smartIntervalSeconds: 3600,
    eventLoopResolutionMs: 1000,
  },
  queue: { maxBytes: 32 * 1024 * 1024, dir: null },
  api: { listen: '127.0.0.1:8780' },
  log: { level: 'info' },
};
