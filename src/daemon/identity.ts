/** The device id: from the config, or the CN of the client certificate; both must agree. */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../config/resolve.js';
import { IoError } from '../errors.js';
import type { DaemonConfig } from '../config/types.js';

const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** First CN of a certificate subject as node prints it ("CN=x\nO=y"), or null. */
export function commonNameOf(cert: X509Certificate): string | null {
  for (const line of cert.subject.split('\n')) {
    if (line.startsWith('CN=')) return line.slice(3);
  }
  return null;
}

export async function resolveDeviceId(config: DaemonConfig): Promise<string> {
  let cn: string | null = null;
  if (config.mqtt.cert !== null) {
    let pem: Buffer;
    try {
      pem = await readFile(config.mqtt.cert);
    } catch (err) {
      throw new IoError(`cannot read client certificate ${config.mqtt.cert}: ${(err as Error).message}`, { cause: err });
    }
    try {
      cn = commonNameOf(new X509Certificate(pem));
    } catch (err) {
      throw new ConfigError([`mqtt.cert ${config.mqtt.cert}: not a PEM certificate (${(err as Error).message})`]);
    }
  }
  if (config.deviceId !== null) {
    if (cn !== null && cn !== config.deviceId) {
      throw new ConfigError([`deviceId ${JSON.stringify(config.deviceId)} differs from the client certificate's CN ${JSON.stringify(cn)}: the broker ACL would refuse every publish`]);
    }
    return config.deviceId;
  }
  if (cn === null) throw new ConfigError(['no device id: set deviceId (--device-id) or a client certificate whose CN is the device id']);
  if (!DEVICE_ID.test(cn)) throw new ConfigError([`the client certificate's CN ${JSON.stringify(cn)} is not a valid device id`]);
  return cn;
}
