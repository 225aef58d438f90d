import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/config/resolve.js';
import { DEFAULTS } from '../../src/config/defaults.js';

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('config layering', () => {
  it('gives the defaults when nothing is set, frozen', () => {
    const { config } = resolveConfig({ env: {}, flags: {} });
    expect(config).toEqual(DEFAULTS);
    expect(Object.isFrozen(config.mqtt)).toBe(true);
  });

  it('takes flags over environment over file over defaults', () => {
    const file = { value: { stateDir: '/file', health: { intervalSeconds: 10 }, mqtt: { url: 'mqtts://file:8883', keepaliveSeconds: 20 } }, name: 'c.json' };
    const env = { GLASSBOX_STATE_DIR: '/env', GLASSBOX_BROKER: 'mqtts://env:8883', GLASSBOX_HEALTH_INTERVAL: '15' };
    const { config } = resolveConfig({ file, env, flags: { stateDir: '/flag' } });
    expect(config.stateDir).toBe('/flag');
    expect(config.mqtt.url).toBe('mqtts://env:8883');
    expect(config.mqtt.keepaliveSeconds).toBe(20);
    expect(config.health.intervalSeconds).toBe(15);
    expect(config.health.recordingPaths).toEqual(['/']);
  });

  it('reads the password from the environment only', () => {
    const { config } = resolveConfig({ env: { GLASSBOX_MQTT_USERNAME: 'u', GLASSBOX_MQTT_PASSWORD: 'p' }, flags: {} });
    expect(config.mqtt.password).toBe('p');
  });
});

describe('when the config is wrong', () => {
  it('names the file and the JSON path of every fault', () => {
    const p = problems(() =>
      resolveConfig({
        file: { name: '/etc/glassbox/config.json', value: { mqtt: { keepaliveSeconds: 'x', bogus: 1 }, health: { intervalSeconds: 0 }, log: { level: 'loud' } } },
        env: {},
        flags: {},
      }),
    );
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/etc\/glassbox\/config.json: \/mqtt\/keepaliveSeconds: must be integer/),
        '/etc/glassbox/config.json: /mqtt/bogus: unknown setting',
        expect.stringMatching(/\/health\/intervalSeconds: must be >= 1/),
        expect.stringMatching(/\/log\/level: must be one of/),
      ]),
    );
  });

  it('names the environment variable and the flag', () => {
    const p = problems(() => resolveConfig({ env: { GLASSBOX_HEALTH_INTERVAL: 'soon' }, flags: { queueMaxBytes: '-1', deviceId: '../x' } }));
    expect(p).toEqual(
      expect.arrayContaining([
        'environment GLASSBOX_HEALTH_INTERVAL: expected a number, got "soon"',
        'flag --queue-max-bytes: expected a whole number, got "-1"',
        expect.stringMatching(/^flags: \/deviceId: must match pattern/),
      ]),
    );
  });

  it('refuses a certificate without its key, a password without a username, and a password over plain TCP', () => {
    expect(problems(() => resolveConfig({ env: {}, flags: { cert: '/c.pem' } }))).toEqual([expect.stringMatching(/mqtt.cert and mqtt.key/)]);
    expect(problems(() => resolveConfig({ env: { GLASSBOX_MQTT_PASSWORD: 'p' }, flags: {} }))).toEqual([expect.stringMatching(/needs mqtt.username/)]);
    expect(
      problems(() => resolveConfig({ env: { GLASSBOX_MQTT_PASSWORD: 'p', GLASSBOX_MQTT_USERNAME: 'u' }, flags: { broker: 'mqtt://broker.example:1883' } })),
    ).toEqual([expect.stringMatching(/in clear/)]);
  });

  it('refuses a file that is not an object', () => {
    expect(problems(() => resolveConfig({ file: { name: 'c.json', value: [1] }, env: {}, flags: {} }))).toEqual(['c.json: /: must be a JSON object']);
  });
});
