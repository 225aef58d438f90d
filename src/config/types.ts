/** The daemon's configuration after layering and validation (frozen, passed down; never a global). */

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface MqttConfig {
  /** mqtts://host:8883 (TLS), mqtt://host:1883 (plain; loopback or lab only); null = no broker configured. */
  readonly url: string | null;
  /** PEM file of the CA that signed the broker's certificate. */
  readonly ca: string | null;
  /** PEM file of the device's client certificate (CN = device id). */
  readonly cert: string | null;
  /** PEM file of the device's private key. */
  readonly key: string | null;
  readonly username: string | null;
  /** Password, or null; prefer passwordFile so it is not in the config file. */
  readonly password: string | null;
  readonly passwordFile: string | null;
  /** 'auto' = MQTT 5, falling back to 3.1.1 when the broker refuses 5. */
  readonly protocolVersion: 'auto' | 5 | 4;
  readonly keepaliveSeconds: number;
  readonly connectTimeoutSeconds: number;
  readonly reconnectMinSeconds: number;
  readonly reconnectMaxSeconds: number;
  /** Largest command payload handled; larger ones get a PAYLOAD_TOO_LARGE response. */
  readonly maxCommandBytes: number;
  /** Largest MQTT packet accepted at all (MQTT 5 maximumPacketSize; the broker drops larger ones). */
  readonly maxPacketBytes: number;
  /** Commands handled per minute (token bucket, burst = this / 6, at least 5); excess dropped with a log line. */
  readonly commandsPerMinute: number;
  /** QoS 1 messages in flight at once while draining the queue. */
  readonly inflightWindow: number;
}

export interface HealthConfig {
  readonly intervalSeconds: number;
  /** Mount points of recording disks: each gets statfs use, its block device's I/O counters and SMART. */
  readonly recordingPaths: readonly string[];
  /** Interface names to report; null = every interface but loopback (at most 32). */
  readonly interfaces: readonly string[] | null;
  /** Run `smartctl -H` (when installed) at most every smartIntervalSeconds per disk. */
  readonly smart: boolean;
  readonly smartIntervalSeconds: number;
  /** Event-loop delay sampling resolution (ms); lower is more precise and costs more wake-ups. */
  readonly eventLoopResolutionMs: number;
}

export interface QueueConfig {
  /** Upper bound of the on-disk queue (bytes of message files). */
  readonly maxBytes: number;
  /** Queue directory; null = <stateDir>/queue. */
  readonly dir: string | null;
}

/** The egress observer and the local API it serves (docs/egress.md, docs/config.md). */
export interface EgressConfig {
  /**
   * true: run it (when it cannot, attestations say `incomplete` and why);
   * false: never load it; "auto": decided at start by `glassbox daemon`
   * (src/egress/enablement.ts): on for a recorder with an installed release,
   * in --dev only when the network may be administered (CAP_NET_ADMIN held by the daemon, or
   * by nft and conntrack themselves as in the container image) and nft and conntrack are there.
   */
  readonly enabled: boolean | 'auto';
  /** observe: count and alert; enforce: undeclared flows are also rejected. */
  readonly mode: 'observe' | 'enforce';
  /** Unix socket of the local API; null = none. */
  readonly socket: string | null;
  /** Let api.listen be a wildcard address (0.0.0.0, ::): serve beyond this host. */
  readonly allowWildcard: boolean;
  /** Runtime files (tmpfs): the detail reader's conntrack spool. */
  readonly runtimeDir: string;
  /** Netlink receive buffer asked for with conntrack --buffer-size. */
  readonly conntrackBufferBytes: number;
  /** SCHED_FIFO priority of the conntrack detail reader (chrt); null = normal scheduler. */
  readonly conntrackRealtimePriority: number | null;
  /** Counter poll and integrity check interval. */
  readonly pollMs: number;
  /** Resolvers for host rules ("ip" or "ip:port"); null = the system's (resolv.conf). */
  readonly dnsServers: readonly string[] | null;
  /** Distinct flows listed in the ledger and the attestation (counts are never capped). */
  readonly flowsCap: number;
  /** Leave the nftables table loaded at stop, so counting (and enforcing) goes on across a restart. --dev: false. */
  readonly keepTableOnStop: boolean;
}

export interface DaemonConfig {
  /** null = taken from the client certificate's CN. */
  readonly deviceId: string | null;
  /** Hardware model id reported in status; null = unknown. */
  readonly hardware: string | null;
  readonly stateDir: string;
  readonly mqtt: MqttConfig;
  readonly health: HealthConfig;
  readonly queue: QueueConfig;
  readonly api: { readonly listen: string };
  readonly egress: EgressConfig;
  readonly log: { readonly level: LogLevel };
}
