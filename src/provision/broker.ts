/**
 * The broker check of `provision import` (edge): with the new identity,
 * connect to the broker over mutual TLS, publish the retained status
 * (`glassbox/v1/<id>/status`, online), subscribe and read it back, then
 * leave the retained status `offline`/`shutdown` as the daemon does on a
 * clean stop. Every way this fails becomes one ProvisionError naming what
 * to fix; the whole check is bounded by one timeout.
 *
 * The private key is handed to node's TLS from memory and never logged.
 */
import { randomBytes } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { encode, statusPayload } from '../telemetry/payloads.js';
import { topicOf } from '../telemetry/topics.js';
import { ProvisionError } from './errors.js';

export interface BrokerCheckRequest {
  readonly url: string;
  readonly caPem: Buffer;
  /** Leaf + device CA chain, PEM: what the broker gets to build the path. */
  readonly certChainPem: string;
  readonly keyPem: Buffer;
  readonly deviceId: string;
  readonly hardware: string;
  readonly daemonVersion: string;
  readonly bootId: string | null;
  readonly timeoutMs: number;
  readonly now: () => Date;
  /** Names for messages. */
  readonly caFile: string;
}

export interface BrokerCheckResult {
  readonly url: string;
  readonly topic: string;
  readonly protocolVersion: 4 | 5;
  readonly tlsVersion: string | null;
  /** Subject CN of the broker's certificate. */
  readonly brokerCertificate: string | null;
  /** Milliseconds to CONNACK, and to the retained status read back. */
  readonly connectMs: number;
  readonly roundTripMs: number;
}

/** mqtts://host[:port]: the only URL shapes provisioning accepts (the identity is a TLS client certificate). */
export function parseBrokerUrl(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ProvisionError('BROKER_URL_INVALID', `--broker ${JSON.stringify(url)} is not a URL`, 'give the broker as mqtts://HOST:PORT (usually port 8883)');
  }
  if (u.protocol !== 'mqtts:' && u.protocol !== 'ssl:' && u.protocol !== 'tls:') {
    throw new ProvisionError('BROKER_URL_INVALID', `--broker ${url} is not TLS: the recorder's identity is a client certificate, which needs mqtts://`, 'give the broker as mqtts://HOST:PORT (usually port 8883)');
  }
  if (u.hostname === '' || u.pathname.replace(/^\/$/, '') !== '' || u.username !== '' || u.search !== '') {
    throw new ProvisionError('BROKER_URL_INVALID', `--broker ${url} must be only mqtts://HOST:PORT`, 'drop any path, user or query from the URL');
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port === '' ? 8883 : Number(u.port) };
}

type Stage = 'tcp' | 'tls' | 'connack' | 'publish' | 'readback' | 'done';

const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EADDRNOTAVAIL']);
const BROKER_CA_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

/** TLS alert number from an OpenSSL error text ("SSL alert number 48"), or null. */
function alertNumber(err: Error & { code?: unknown }): number | null {
  const m = /alert number (\d+)/.exec(err.message);
  if (m) return Number(m[1]);
  const code = typeof err.code === 'string' ? err.code : '';
  if (code.endsWith('ALERT_UNKNOWN_CA')) return 48;
  if (code.endsWith('ALERT_BAD_CERTIFICATE')) return 42;
  if (code.endsWith('ALERT_CERTIFICATE_EXPIRED')) return 45;
  if (code.endsWith('ALERT_CERTIFICATE_REVOKED')) return 44;
  if (code.endsWith('ALERT_CERTIFICATE_UNKNOWN')) return 46;
  if (code.endsWith('ALERT_CERTIFICATE_REQUIRED')) return 116;
  if (code.endsWith('ALERT_ACCESS_DENIED')) return 49;
  return null;
}

const OPS_DEVICE_CA = "ops: add this fleet's device CA (device-ca.pem) to the broker's client CA file (mosquitto: cafile with require_certificate true), then run import again";

/** Turns a socket / TLS / MQTT failure into the error a technician can act on (pure). */
export function classifyBrokerFailure(err: Error & { code?: unknown }, stage: Stage, ctx: { url: string; host: string; port: number; caFile: string; deviceId: string }): ProvisionError {
  const code = typeof err.code === 'string' ? err.code : typeof err.code === 'number' ? err.code : null;
  const where = `${ctx.host}:${ctx.port}`;
  if (typeof code === 'string' && UNREACHABLE.has(code)) {
    return new ProvisionError(
      'BROKER_UNREACHABLE',
      `cannot reach the broker at ${where} (${code}${code === 'ECONNREFUSED' ? ': nothing listens there' : ''})`,
      'check the broker URL and port, this recorder\'s network (cable, VLAN, firewall, DNS), and that the broker is running',
      { cause: err },
    );
  }
  if (typeof code === 'string' && BROKER_CA_UNTRUSTED.has(code)) {
    return new ProvisionError(
      'BROKER_TLS_UNTRUSTED',
      `the broker's certificate is not signed by the CA in ${ctx.caFile} (${code})`,
      "bring the CA that signed the broker's certificate (ask ops for broker-ca.pem) and pass it with --broker-ca",
      { cause: err },
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new ProvisionError(
      'BROKER_TLS_UNTRUSTED',
      `the broker's certificate does not name ${ctx.host} (${err.message})`,
      "use the broker's name as its certificate spells it in --broker (ask ops), not another name or address for it",
      { cause: err },
    );
  }
  if (code === 'CERT_NOT_YET_VALID') {
    return new ProvisionError(
      'CLOCK_SKEW',
      "the broker's certificate is not yet valid by this recorder's clock: the clock is behind",
      'set the clock (enable NTP, or `timedatectl set-time "YYYY-MM-DD HH:MM:SS"` in UTC), then run import again',
      { cause: err },
    );
  }
  if (code === 'CERT_HAS_EXPIRED') {
    return new ProvisionError(
      'BROKER_TLS_UNTRUSTED',
      "the broker's certificate has expired by this recorder's clock",
      "ops: renew the broker's certificate; if it should still be valid, this recorder's clock is ahead: fix the clock",
      { cause: err },
    );
  }
  const alert = alertNumber(err);
  if (alert !== null) {
    switch (alert) {
      case 48:
        return new ProvisionError('BROKER_REFUSED', "the broker refused this recorder's certificate: it does not trust the CA that issued it (it trusts another device CA)", OPS_DEVICE_CA, { cause: err });
      case 45:
        return new ProvisionError('BROKER_REFUSED', "the broker refused this recorder's certificate as expired (by the broker's clock)", "check the broker's clock; if the certificate really expired, ask ops for a new one", { cause: err });
      case 44:
        return new ProvisionError('BROKER_REFUSED', "the broker refused this recorder's certificate as revoked", 'ask ops why this device certificate was revoked; a new one needs a new identity (`provision init --force`)', { cause: err });
      case 116:
        return new ProvisionError('BROKER_REFUSED', 'the broker asked for a client certificate and got none', 'report this: glassbox always presents its certificate', { cause: err });
      default:
        return new ProvisionError('BROKER_REFUSED', `the broker refused the TLS connection (alert ${alert}: ${err.message.trim().split('\n')[0] ?? ''})`, OPS_DEVICE_CA, { cause: err });
    }
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return new ProvisionError('BROKER_UNREACHABLE', `${where} does not speak TLS (a plain MQTT port?)`, 'use the broker\'s TLS port in --broker (usually mqtts://HOST:8883)', { cause: err });
  }
  if (stage === 'connack' && typeof code === 'number') {
    return new ProvisionError(
      'BROKER_REFUSED',
      `the broker refused the MQTT connection: ${err.message} (reason ${code})`,
      `ops: let device ${ctx.deviceId} connect (mosquitto: use_identity_as_username true, and an ACL for the certificate CN)`,
      { cause: err },
    );
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || stage === 'tls' || stage === 'connack') {
    return new ProvisionError(
      'BROKER_REFUSED',
      `the broker closed the connection ${stage === 'tls' ? 'during the TLS handshake' : 'before accepting it'}${code ? ` (${String(code)})` : ''}: it probably does not accept this recorder's certificate`,
      OPS_DEVICE_CA,
      { cause: err },
    );
  }
  return new ProvisionError('BROKER_READBACK', `the broker check failed while ${stage === 'publish' ? 'publishing the status' : 'reading the status back'}: ${err.message}`, 'run import again; if it persists, give ops this message', { cause: err });
}

export async function checkBroker(req: BrokerCheckRequest): Promise<BrokerCheckResult> {
  const { host, port } = parseBrokerUrl(req.url);
  try {
    return await attempt(req, host, port, 5);
  } catch (err) {
    // A broker that speaks only MQTT 3.1.1 answers CONNECT v5 with "unsupported protocol version".
    const code = (err as ProvisionError).cause as { code?: unknown } | undefined;
    if (err instanceof ProvisionError && err.code === 'BROKER_REFUSED' && (code?.code === 132 || code?.code === 1)) return attempt(req, host, port, 4);
    throw err;
  }
}

function attempt(req: BrokerCheckRequest, host: string, port: number, protocolVersion: 4 | 5): Promise<BrokerCheckResult> {
  const topic = topicOf(req.deviceId, 'status');
  const started = Date.now();
  const status = (state: 'online' | 'offline', reason: 'connected' | 'shutdown' | 'connection-lost') =>
    encode(statusPayload({ deviceId: req.deviceId, state, reason, at: req.now(), daemonVersion: req.daemonVersion, bootId: req.bootId, hardware: req.hardware }));
  const online = status('online', 'connected');
  const ctx = { url: req.url, host, port, caFile: req.caFile, deviceId: req.deviceId };

  const options: IClientOptions = {
    protocol: 'mqtts',
    host,
    port,
    servername: /^[0-9.]+$|:/.test(host) ? undefined : host,
    protocolVersion,
    clientId: `${req.deviceId}-provision-${randomBytes(4).toString('hex')}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: req.timeoutMs,
    keepalive: 30,
    ca: req.caPem,
    cert: req.certChainPem,
    key: req.keyPem,
    rejectUnauthorized: true,
    will: { topic, payload: status('offline', 'connection-lost'), qos: 1, retain: true },
  };

  return new Promise<BrokerCheckResult>((resolve, reject) => {
    let stage: Stage = 'tcp';
    let settled = false;
    let connectMs = 0;
    let client: MqttClient | null = null;
    const finish = (err: ProvisionError | null, result?: BrokerCheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const c = client;
      const done = () => (err ? reject(err) : resolve(result as BrokerCheckResult));
      if (c === null) return done();
      if (err) c.end(true, {}, done);
      else c.end(false, {}, done);
    };
    const timer = setTimeout(() => {
      const s = Math.round(req.timeoutMs / 1000);
      if (stage === 'tcp') finish(new ProvisionError('BROKER_UNREACHABLE', `no answer from the broker at ${host}:${port} within ${s} s`, "check the broker URL and port, this recorder's network (cable, VLAN, firewall) and that the broker is running"));
      else if (stage === 'tls' || stage === 'connack') finish(new ProvisionError('BROKER_REFUSED', `the broker at ${host}:${port} accepted TCP but did not accept the MQTT connection within ${s} s`, OPS_DEVICE_CA));
      else
        finish(
          new ProvisionError(
            'BROKER_READBACK',
            `connected, but the retained status on ${topic} did not come back within ${s} s`,
            `ops: the broker's ACL must let ${req.deviceId} write and read glassbox/v1/${req.deviceId}/# (mosquitto: use_identity_as_username true; pattern readwrite glassbox/v1/%u/#)`,
          ),
        );
    }, req.timeoutMs);

    try {
      client = mqtt.connect(options);
    } catch (err) {
      finish(classifyBrokerFailure(err as Error, stage, ctx));
      return;
    }
    const c = client;
    const socket = c.stream as TLSSocket | undefined;
    socket?.once?.('connect', () => {
      if (stage === 'tcp') stage = 'tls';
    });
    socket?.once?.('secureConnect', () => {
      if (stage === 'tcp' || stage === 'tls') stage = 'connack';
    });
    c.on('error', (err) => finish(classifyBrokerFailure(err as Error & { code?: unknown }, stage, ctx)));
    c.on('close', () => {
      if (stage !== 'done') finish(classifyBrokerFailure(Object.assign(new Error('connection closed'), { code: 'ECONNRESET' }), stage === 'tcp' ? 'tls' : stage, ctx));
    });
    c.on('message', (t, payload) => {
      if (stage !== 'readback' || t !== topic || !payload.equals(online)) return;
      const roundTripMs = Date.now() - started - connectMs;
      stage = 'done';
      // Leave the status as the daemon leaves it on a clean stop: offline, shutdown.
      c.publish(topic, status('offline', 'shutdown'), { qos: 1, retain: true }, () => {
        const tls = c.stream as TLSSocket | undefined;
        const peer = tls?.getPeerCertificate?.();
        finish(null, {
          url: req.url,
          topic,
          protocolVersion,
          tlsVersion: tls?.getProtocol?.() ?? null,
          brokerCertificate: peer && typeof peer.subject === 'object' ? (peer.subject.CN as string | undefined) ?? null : null,
          connectMs,
          roundTripMs,
        });
      });
    });
    c.on('connect', () => {
      connectMs = Date.now() - started;
      stage = 'publish';
      c.publish(topic, online, { qos: 1, retain: true }, (err) => {
        if (err) {
          finish(
            new ProvisionError(
              'BROKER_READBACK',
              `the broker refused the status publish on ${topic}: ${err.message}`,
              `ops: the broker's ACL must let ${req.deviceId} write glassbox/v1/${req.deviceId}/# (mosquitto: use_identity_as_username true; pattern readwrite glassbox/v1/%u/#)`,
              { cause: err },
            ),
          );
          return;
        }
        stage = 'readback';
        c.subscribe(topic, { qos: 1 }, (subErr, granted) => {
          const denied = subErr !== null && subErr !== undefined ? subErr.message : granted?.some((g) => g.qos === 128) ? 'subscription refused' : null;
          if (denied !== null) {
            finish(
              new ProvisionError(
                'BROKER_READBACK',
                `the broker refused to let ${req.deviceId} read ${topic} back: ${denied}`,
                `ops: the broker's ACL must let ${req.deviceId} read glassbox/v1/${req.deviceId}/# (mosquitto: pattern readwrite glassbox/v1/%u/#)`,
              ),
            );
          }
        });
      });
    });
  });
}
