/**
 * Fixtures for provisioning tests, all generated at test time: the fleet's
 * PKI (createDevPki) and a broker with mutual TLS that trusts the fleet
 * root for client certificates (the shared mosquitto helper).
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { createDevPki, type DevPki } from '../../src/pki/devpki.js';
import { freePort, makeBrokerPki, startMosquitto, type BrokerPki, type Mosquitto } from '../helpers/mosquitto.js';

export interface Site {
  readonly dir: string;
  /** The fleet: root, release CA, device CA, trust policy (createDevPki). */
  readonly pki: DevPki;
  /** The broker's server CA and certificate (test/helpers/mosquitto.ts; its own device CA is not used). */
  readonly broker: BrokerPki;
}

export async function makeSite(dir: string, name = 'fleet'): Promise<Site> {
  const pki = await createDevPki(join(dir, `${name}-pki`), { signers: 2, threshold: 1 });
  const broker = await makeBrokerPki(join(dir, `${name}-broker`));
  return { dir, pki, broker };
}

/** The shared test mosquitto (mutual TLS, ACL glassbox/v1/%u/#), trusting `clientCaFile` for client certificates. */
export function startFleetBroker(dir: string, site: Site, clientCaFile: string = site.pki.root.cert): Promise<Mosquitto> {
  return startMosquitto({ dir, pki: { ...site.broker, deviceCaFile: clientCaFile } });
}

export { freePort, makeBrokerPki, type BrokerPki, type Mosquitto };

/** Every file under `root` (relative path → sha256 and mode), to prove a refusal changed nothing. */
export async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        out[relative(root, p) + '/'] = ((await stat(p)).mode & 0o7777).toString(8);
        await walk(p);
      } else {
        const h = createHash('sha256');
        await new Promise<void>((resolve, reject) => createReadStream(p).on('data', (d) => h.update(d)).on('end', () => resolve()).on('error', reject));
        out[relative(root, p)] = `${h.digest('hex')} ${((await stat(p)).mode & 0o7777).toString(8)}`;
      }
    }
  };
  await walk(root);
  return out;
}

/** The base64 body lines of a PEM private key: what must never appear in any output. */
export function pemBodyLines(pem: string): string[] {
  return pem
    .split('\n')
    .filter((l) => l.length > 0 && !l.startsWith('-----'))
    .filter((l) => l.length >= 16);
}
