/**
 * The namespace lab of the egress tests: three network namespaces made and
 * torn down by the test itself, documentation addresses only.
 *
 *   WAN ns  ──veth──  recorder ns  ──veth──  camera ns
 *   192.0.2.2/24      192.0.2.1/24 | 198.51.100.1/24   198.51.100.2/24
 *   + 192.0.2.10, 192.0.2.11 (declared broker, two addresses)
 *   + 192.0.2.53 (DNS: dnsmasq, addn-hosts, short TTL, authoritative for .example)
 *   + 203.0.113.66 (the undeclared host: TCP 7000 and UDP 9999 listeners)
 *
 * The recorder routes for the camera (ip_forward=1 in its namespace; no
 * NAT, the WAN side routes 198.51.100.0/24 back). IPv6 is off in all three
 * so that no router solicitation or DAD packet becomes a flow. The
 * recorder's resolv.conf (bind-mounted by `ip netns exec` from
 * /etc/netns/<name>/) points at the lab's DNS server.
 *
 *   const lab = await createLab({ hosts: { 'broker.lab.example': '192.0.2.10' } });
 *   await lab.run(lab.rec, ['nft', 'list', 'ruleset']);
 *   await lab.teardown();   // also on process exit
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ADDR = {
  recWan: '192.0.2.1',
  wan: '192.0.2.2',
  broker: '192.0.2.10',
  broker2: '192.0.2.11',
  dns: '192.0.2.53',
  undeclared: '203.0.113.66',
  recLan: '198.51.100.1',
  cam: '198.51.100.2',
} as const;

/** A name the lab resolver always answers (readiness probe). */
export const READY_NAME = 'ready.lab.example';
export const UNDECLARED_TCP_PORT = 7000;
export const UNDECLARED_UDP_PORT = 9999;
export const BROKER_PORT = 1883;

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Lab {
  readonly rec: string;
  readonly wan: string;
  readonly cam: string;
  readonly dir: string;
  /** Runs a command inside a namespace and waits for it. */
  run(ns: string, argv: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** Starts a long-running command inside a namespace (killed at teardown). */
  spawn(ns: string, argv: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Points a DNS name at another address (dnsmasq re-reads its hosts file on SIGHUP). */
  setHost(name: string, address: string): Promise<void>;
  readonly dnsTtl: number;
  teardown(): Promise<void>;
}

let labCount = 0;
const live = new Set<Lab>();
let exitHookInstalled = false;

function sh(argv: readonly string[]): void {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) throw new Error(`lab setup: ${argv.join(' ')} failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
}

function runIn(ns: string, argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.stdout.on('data', (c: Buffer) => { if (stdout.length < 16 * 1024 * 1024) stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { if (stderr.length < 1024 * 1024) stderr += c.toString('utf8'); });
    child.on('error', (e) => { clearTimeout(t); reject(e); });
    child.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
    child.stdin.end(opts.input ?? '');
  });
}

export interface LabOptions {
  /** DNS names served by the lab resolver. */
  readonly hosts?: Readonly<Record<string, string>>;
  /** TTL of every answer, seconds. */
  readonly dnsTtl?: number;
}

export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const n = labCount++;
  const tag = `${process.pid % 1_000_000}${n}`;
  const rec = `gbx-${tag}-rec`;
  const wan = `gbx-${tag}-wan`;
  const cam = `gbx-${tag}-cam`;
  const dir = await mkdtemp(join(tmpdir(), 'glassbox-lab-'));
  await chmod(dir, 0o755);
  const hostsFile = join(dir, 'hosts');
  const hosts = new Map<string, string>(Object.entries({ ...(opts.hosts ?? {}), [READY_NAME]: ADDR.wan }));
  const writeHosts = () => writeFile(hostsFile, [...hosts].map(([name, a]) => `${a} ${name}\n`).join(''), { mode: 0o644 });
  await writeHosts();
  const children = new Set<ChildProcess>();
  const dnsTtl = opts.dnsTtl ?? 2;
  let dnsmasq: ChildProcess | null = null;
  let torn = false;

  const teardown = async (): Promise<void> => {
    if (torn) return;
    torn = true;
    live.delete(lab);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    // Killing every process left in the namespaces makes the deletes reliable.
    for (const ns of [rec, wan, cam]) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter((p) => /^\d+$/.test(p));
      for (const p of pids) try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
      spawnSync('ip', ['netns', 'del', ns]);
    }
    await rm(join('/etc/netns', rec), { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  };

  const lab: Lab = {
    rec,
    wan,
    cam,
    dir,
    dnsTtl,
    run: runIn,
    spawn(ns, argv, spawnOpts = {}) {
      const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
      children.add(child);
      child.on('close', () => children.delete(child));
      return child;
    },
    async setHost(name, address) {
      hosts.set(name, address);
      await writeHosts();
      dnsmasq?.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 200));
    },
    teardown,
  };
  live.add(lab);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const l of live) {
        for (const ns of [l.rec, l.wan, l.cam]) spawnSync('ip', ['netns', 'del', ns]);
        spawnSync('rm', ['-rf', join('/etc/netns', l.rec), l.dir]);
      }
    });
  }

  try {
    for (const ns of [rec, wan, cam]) {
      sh(['ip', 'netns', 'add', ns]);
      sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    const [rw, ww, rc, cc] = [`g${tag}rw`, `g${tag}ww`, `g${tag}rc`, `g${tag}cc`];
    sh(['ip', 'link', 'add', rw, 'netns', rec, 'type', 'veth', 'peer', 'name', ww, 'netns', wan]);
    sh(['ip', 'link', 'add', rc, 'netns', rec, 'type', 'veth', 'peer', 'name', cc, 'netns', cam]);
    sh(['ip', '-n', rec, 'addr', 'add', `${ADDR.recWan}/24`, 'dev', rw]);
    sh(['ip', '-n', rec, 'addr', 'add', `${ADDR.recLan}/24`, 'dev', rc]);
    sh(['ip', '-n', wan, 'addr', 'add', `${ADDR.wan}/24`, 'dev', ww]);
    for (const a of [ADDR.broker, ADDR.broker2, ADDR.dns, ADDR.undeclared]) sh(['ip', '-n', wan, 'addr', 'add', `${a}/32`, 'dev', ww]);
    sh(['ip', '-n', cam, 'addr', 'add', `${ADDR.cam}/24`, 'dev', cc]);
    for (const [ns, dev] of [[rec, rw], [rec, rc], [wan, ww], [cam, cc]] as const) sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    sh(['ip', '-n', rec, 'route', 'add', 'default', 'via', ADDR.wan]);
    sh(['ip', '-n', cam, 'route', 'add', 'default', 'via', ADDR.recLan]);
    sh(['ip', '-n', wan, 'route', 'add', '198.51.100.0/24', 'via', ADDR.recWan]);
    sh(['ip', 'netns', 'exec', rec, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await mkdir(join('/etc/netns', rec), { recursive: true });
    await writeFile(join('/etc/netns', rec, 'resolv.conf'), `nameserver ${ADDR.dns}\noptions timeout:1 attempts:2\n`);
    await writeFile(join('/etc/netns', rec, 'hosts'), '127.0.0.1 localhost\n');

    dnsmasq = lab.spawn(wan, [
      'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`,
      `--local-ttl=${dnsTtl}`, `--listen-address=${ADDR.dns}`, '--bind-interfaces', '--port=53', '--pid-file=', '--user=root', '--no-negcache',
      // Authoritative for the reserved .example names the lab uses: a name with only an A record gets
      // "no data" for AAAA, as from a real resolver, not REFUSED (which the observer rightly retries).
      '--local=/example/',
    ]);
    // The undeclared host: accept-and-close TCP, and a UDP sink.
    const sinkJs = join(dir, 'sink.cjs');
    await writeFile(sinkJs, `
const net = require('net'), dgram = require('dgram');
net.createServer((s) => { s.on('error', () => {}); s.end(); }).listen(${UNDECLARED_TCP_PORT}, '${ADDR.undeclared}', () => process.stdout.write('tcp\\n'));
dgram.createSocket('udp4').on('error', () => {}).bind(${UNDECLARED_UDP_PORT}, '${ADDR.undeclared}', () => process.stdout.write('udp\\n'));
`);
    const sink = lab.spawn(wan, [process.execPath, sinkJs]);
    await waitForOutput(sink, (s) => s.includes('tcp') && s.includes('udp'), 5000, 'undeclared-host listeners');
    const probe = `require('dns').promises.resolve4('${READY_NAME}').then(() => process.exit(0), () => process.exit(1))`;
    await waitFor(async () => (await runIn(wan, [process.execPath, '-e', probe.replace("require('dns').promises", `(() => { const r = new (require('dns').promises.Resolver)(); r.setServers(['${ADDR.dns}']); return r; })()`)])).code === 0, 10_000, 'dnsmasq');
  } catch (e) {
    await teardown();
    throw e;
  }
  return lab;
}

/** A mosquitto broker in the WAN namespace on every broker address (port 1883, anonymous: lab only). */
export async function startBroker(lab: Lab): Promise<ChildProcess> {
  const conf = join(lab.dir, 'mosquitto.conf');
  await writeFile(conf, `listener ${BROKER_PORT} ${ADDR.broker}\nlistener ${BROKER_PORT} ${ADDR.broker2}\nallow_anonymous true\npersistence false\nlog_dest stdout\n`);
  const child = lab.spawn(lab.wan, ['mosquitto', '-c', conf]);
  await waitFor(async () => (await lab.run(lab.wan, ['mosquitto_pub', '-h', ADDR.broker, '-t', 'lab/ping', '-m', 'x'])).code === 0, 10_000, 'mosquitto');
  return child;
}

export const BROKER_TLS_PORT = 8883;

export interface TlsBrokerFiles {
  /** PEM of the CA that signed the broker's certificate (clients verify the broker with it). */
  readonly serverCa: string;
  /** PEM of the broker's certificate (SANs: the broker's name and addresses) and its key. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** PEM of the CA whose client certificates the broker accepts (CN = username). */
  readonly clientCa: string;
}

export interface TlsBroker {
  readonly serverCaFile: string;
  /** Stops mosquitto (the lab's clients see the connection drop) and starts it again on the same port. */
  restart(): Promise<void>;
}

/**
 * mosquitto in the WAN namespace with TLS on 192.0.2.10:8883 and client
 * certificates (use_identity_as_username): each device reads and writes
 * only glassbox/v1/<CN>/#; the identity `ops` reads everything and writes commands.
 */
export async function startTlsBroker(lab: Lab, files: TlsBrokerFiles): Promise<TlsBroker> {
  const dir = join(lab.dir, 'tls-broker');
  await mkdir(dir, { recursive: true });
  const f = { serverCaFile: join(dir, 'server-ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), clientCa: join(dir, 'client-ca.pem'), acl: join(dir, 'acl'), conf: join(dir, 'mosquitto.conf') };
  await writeFile(f.serverCaFile, files.serverCa);
  await writeFile(f.cert, files.serverCert);
  await writeFile(f.key, files.serverKey, { mode: 0o600 });
  await writeFile(f.clientCa, files.clientCa);
  await writeFile(f.acl, 'pattern readwrite glassbox/v1/%u/#\n\nuser ops\ntopic read glassbox/#\ntopic write glassbox/v1/+/cmd/#\n');
  await writeFile(
    f.conf,
    [
      'user root', 'per_listener_settings false', 'allow_anonymous false', `acl_file ${f.acl}`, 'persistence false', 'log_dest stdout',
      `listener ${BROKER_TLS_PORT} ${ADDR.broker}`, `cafile ${f.clientCa}`, `certfile ${f.cert}`, `keyfile ${f.key}`, 'require_certificate true', 'use_identity_as_username true', '',
    ].join('\n'),
  );
  let child: ChildProcess | null = null;
  const start = async () => {
    child = lab.spawn(lab.wan, ['mosquitto', '-c', f.conf]);
    const probe = `require('net').connect(${BROKER_TLS_PORT}, '${ADDR.broker}').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`;
    await waitFor(async () => (await lab.run(lab.wan, [process.execPath, '-e', probe])).code === 0, 10_000, 'mosquitto (TLS)');
  };
  await start();
  return {
    serverCaFile: f.serverCaFile,
    async restart() {
      const c = child as ChildProcess | null;
      if (c !== null && c.exitCode === null) {
        await new Promise<void>((r) => {
          c.once('close', () => r());
          c.kill('SIGTERM');
        });
      }
      await start();
    },
  };
}

export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function waitForOutput(child: ChildProcess, test: (all: string) => boolean, timeoutMs: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let all = '';
    let err = '';
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; output: ${all.slice(-2000)} ${err.slice(-2000)}`)), timeoutMs);
    child.stderr?.on('data', (c: Buffer) => { err += c.toString('utf8'); });
    child.stdout?.on('data', (c: Buffer) => {
      all += c.toString('utf8');
      if (test(all)) {
        clearTimeout(t);
        resolve(all);
      }
    });
    child.on('close', (code) => {
      clearTimeout(t);
      reject(new Error(`${what} exited (${code}) early: ${all.slice(-2000)} ${err.slice(-2000)}`));
    });
  });
}
