/** Runs `node dist/cli/main.js daemon …` as a child process and reads its JSON log lines. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export const MAIN = join(process.cwd(), 'dist', 'cli', 'main.js');

export function requireBuilt(): void {
  if (!existsSync(MAIN)) throw new Error('dist/cli/main.js missing: run `npm run build` first (npm test does)');
}

export interface DaemonProcess {
  readonly proc: ChildProcess;
  readonly logs: Array<Record<string, unknown>>;
  readonly stderr: () => string;
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  kill(sig: NodeJS.Signals): number;
}

export function startDaemon(args: string[], env: Record<string, string> = {}): DaemonProcess {
  requireBuilt();
  const proc = spawn(process.execPath, [MAIN, 'daemon', ...args], { env: { ...process.env, GLASSBOX_LOG_LEVEL: 'debug', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  let buf = '';
  let err = '';
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const l = JSON.parse(line) as Record<string, unknown>;
        logs.push(l);
        for (const w of [...waiters]) if (w.pred(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      } catch {
        /* not a log line */
      }
    }
  });
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  let killedAt = 0;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal, ms: killedAt ? Date.now() - killedAt : 0 })),
  );
  return {
    proc,
    logs,
    stderr: () => err,
    exited,
    kill(sig) {
      killedAt = Date.now();
      proc.kill(sig);
      return killedAt;
    },
    waitForLog(pred, timeoutMs = 20_000) {
      const found = logs.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`log line not seen in ${timeoutMs} ms; stderr: ${err.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
      });
    },
  };
}

/** An MQTT client; resolves once connected, rejects on the first error or close before that. */
export function connectClient(url: string, opts: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, rejectUnauthorized: true, ...opts });
    const fail = (e: Error) => {
      c.end(true);
      reject(e);
    };
    const closed = () => fail(new Error('closed before CONNACK'));
    c.once('connect', () => {
      c.off('error', fail);
      c.off('close', closed);
      c.on('error', () => undefined);
      resolve(c);
    });
    c.once('error', fail);
    c.once('close', closed);
  });
}

export function endClient(c: MqttClient): Promise<void> {
  return new Promise((resolve) => c.end(true, {}, () => resolve()));
}

export interface Collected {
  readonly messages: Array<{ topic: string; payload: Buffer; retain: boolean; properties: Record<string, unknown> | undefined }>;
  waitFor(pred: (m: { topic: string; json: any; retain: boolean; properties?: Record<string, unknown> | undefined }) => boolean, timeoutMs?: number, after?: number): Promise<{ topic: string; json: any; retain: boolean; properties?: Record<string, unknown> | undefined }>;
}

/** Records every message a client receives; waitFor finds past and future ones. */
export function collect(c: MqttClient): Collected {
  const messages: Collected['messages'] = [];
  const view = (m: Collected['messages'][number]) => {
    let json: unknown = null;
    try {
      json = JSON.parse(m.payload.toString());
    } catch {
      json = null;
    }
    return { topic: m.topic, json, retain: m.retain, properties: m.properties };
  };
  const waiters: Array<{ pred: (m: ReturnType<typeof view>) => boolean; resolve: (m: ReturnType<typeof view>) => void }> = [];
  c.on('message', (topic, payload, packet) => {
    const m = { topic, payload, retain: packet.retain, properties: packet.properties as Record<string, unknown> | undefined };
    messages.push(m);
    const v = view(m);
    for (const w of [...waiters]) if (w.pred(v)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(v);
    }
  });
  return {
    messages,
    waitFor(pred, timeoutMs = 20_000, after = 0) {
      for (const m of messages.slice(after)) {
        const v = view(m);
        if (pred(v)) return Promise.resolve(v);
      }
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`message not received in ${timeoutMs} ms (got ${messages.length}: ${messages.slice(-3).map((m) => m.topic).join(', ')})`)), timeoutMs);
        waiters.push({ pred, resolve: (m) => (clearTimeout(t), resolve(m)) });
      });
    },
  };
}
