import { describe, expect, it } from 'vitest';
import { PROVENANCE_MAX_BYTES, SCHEMA_DIR, validateManifest } from '../../src/manifest/schema.js';
import { validManifest } from './fixtures.js';

type M = ReturnType<typeof validManifest>;

function errorsOf(mutate: (m: M) => void): string[] {
  const m = validManifest();
  mutate(m);
  const r = validateManifest(m);
  return r.ok ? [] : r.errors;
}

/** Expects a rejection with an error at `path` whose text contains `text`. */
function expectRejected(mutate: (m: M) => void, path: string, text: string): void {
  const errors = errorsOf(mutate);
  expect(errors.length, 'expected the manifest to be rejected').toBeGreaterThan(0);
  expect(errors.some((e) => e.startsWith(`${path}: `) && e.includes(text)), `no error "${path}: …${text}…" in:\n${errors.join('\n')}`).toBe(true);
}

function expectAccepted(mutate: (m: M) => void): void {
  expect(errorsOf(mutate)).toEqual([]);
}

const artifact = (i: number, role = 'other') => ({ name: `file-${i}.bin`, size: i, sha256: 'd'.repeat(64), role });
const rule = (i: number) => ({ id: `rule-${i}`, purpose: 'p', proto: 'tcp', cidr: '192.0.2.0/24', port: 1 + i });

describe('manifest schema', () => {
  it('accepts the fixture manifest', () => {
    expect(validateManifest(validManifest())).toEqual({ ok: true, manifest: validManifest() });
    expect(SCHEMA_DIR.endsWith('firmware-manifests/schema')).toBe(true);
  });

  it('accepts a manifest without the optional notes', () => {
    expectAccepted((m) => delete m.notes);
  });

  describe('when a required field is missing', () => {
    for (const field of ['schema', 'product', 'hardware', 'version', 'securityVersion', 'released', 'expires', 'artifacts', 'egress', 'provenance']) {
      it(`rejects a manifest without ${field}`, () => expectRejected((m) => delete m[field], '/', `missing required field "${field}"`));
    }
    for (const field of ['name', 'size', 'sha256', 'role']) {
      it(`rejects an artifact without ${field}`, () => expectRejected((m) => delete m.artifacts[0]![field], '/artifacts/0', `missing required field "${field}"`));
    }
    for (const field of ['id', 'purpose', 'proto']) {
      it(`rejects an egress rule without ${field}`, () => expectRejected((m) => delete m.egress[0]![field], '/egress/0', `missing required field "${field}"`));
    }
    for (const field of ['sourceRepository', 'sourceCommit', 'builder', 'buildFinished']) {
      it(`rejects provenance without ${field}`, () => expectRejected((m) => delete m.provenance[field], '/provenance', `missing required field "${field}"`));
    }
  });

  describe('when an unknown field is present', () => {
    it('at the top level', () => expectRejected((m) => (m.signature = 'x'), '/', 'unknown field "signature"'));
    it('in an artifact', () => expectRejected((m) => (m.artifacts[1]!.url = 'x'), '/artifacts/1', 'unknown field "url"'));
    it('in an egress rule', () => expectRejected((m) => (m.egress[0]!.any = true), '/egress/0', 'unknown field "any"'));
    it('in provenance', () => expectRejected((m) => (m.provenance.branch = 'main'), '/provenance', 'unknown field "branch"'));
  });

  it('rejects another schema version', () => expectRejected((m) => (m.schema = 'glassbox.manifest/v2'), '/schema', 'must be "glassbox.manifest/v1"'));

  describe('product', () => {
    it('rejects uppercase', () => expectRejected((m) => (m.product = 'HSS-NVR'), '/product', 'must match pattern'));
    it('rejects the empty string', () => expectRejected((m) => (m.product = ''), '/product', 'must match pattern'));
    it('accepts 64 chars and rejects 65', () => {
      expectAccepted((m) => (m.product = 'a'.repeat(64)));
      expectRejected((m) => (m.product = 'a'.repeat(65)), '/product', 'must match pattern');
    });
  });

  describe('hardware', () => {
    it('rejects an empty list', () => expectRejected((m) => (m.hardware = []), '/hardware', 'must NOT have fewer than 1 items'));
    it('accepts 32 and rejects 33 ids', () => {
      expectAccepted((m) => (m.hardware = Array.from({ length: 32 }, (_, i) => `hw-${i}`)));
      expectRejected((m) => (m.hardware = Array.from({ length: 33 }, (_, i) => `hw-${i}`)), '/hardware', 'must NOT have more than 32 items');
    });
    it('rejects a repeated id', () => expectRejected((m) => (m.hardware = ['a', 'a']), '/hardware', 'duplicate'));
    it('rejects an id with a space', () => expectRejected((m) => (m.hardware = ['nvr 8']), '/hardware/0', 'must match pattern'));
    it('rejects a non-string id', () => expectRejected((m) => (m.hardware = [8]), '/hardware/0', 'must be string'));
  });

  describe('version (SemVer 2.0)', () => {
    for (const v of ['0.0.0', '1.2.3', '10.20.30', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-0.3.7', '1.0.0-x.7.z.92', '1.0.0+20130313144700', '1.0.0-beta+exp.sha.5114f85', '1.0.0-x-y-z.--']) {
      it(`accepts ${v}`, () => expectAccepted((m) => (m.version = v)));
    }
    for (const v of ['1.2', '1.2.3.4', 'v1.2.3', '01.2.3', '1.02.3', '1.2.3-', '1.2.3-01', '1.2.3+', '1.2.3-a..b', ' 1.2.3', '1.2.3\n']) {
      it(`rejects ${JSON.stringify(v)}`, () => expectRejected((m) => (m.version = v), '/version', 'must match pattern'));
    }
  });

  describe('securityVersion', () => {
    it('accepts 0 and 2^31-1', () => {
      expectAccepted((m) => (m.securityVersion = 0));
      expectAccepted((m) => (m.securityVersion = 2 ** 31 - 1));
    });
    it('rejects 2^31', () => expectRejected((m) => (m.securityVersion = 2 ** 31), '/securityVersion', 'must be <= 2147483647'));
    it('rejects -1', () => expectRejected((m) => (m.securityVersion = -1), '/securityVersion', 'must be >= 0'));
    it('rejects 1.5', () => expectRejected((m) => (m.securityVersion = 1.5), '/securityVersion', 'must be integer'));
    it('rejects a string', () => expectRejected((m) => (m.securityVersion = '3'), '/securityVersion', 'must be integer'));
  });

  describe('timestamps (RFC 3339 UTC)', () => {
    it('accepts up to 3 fraction digits', () => expectAccepted((m) => (m.released = '2025-03-01T12:00:00.123Z')));
    for (const [what, t] of [
      ['an offset instead of Z', '2025-03-01T12:00:00+00:00'],
      ['a lowercase t', '2025-03-01t12:00:00Z'],
      ['a space separator', '2025-03-01 12:00:00Z'],
      ['no seconds', '2025-03-01T12:00Z'],
      ['4 fraction digits', '2025-03-01T12:00:00.1234Z'],
      ['a leap second', '2016-12-31T23:59:60Z'],
      ['a date only', '2025-03-01'],
    ]) {
      it(`rejects ${what}`, () => expectRejected((m) => (m.released = t), '/released', 'must match pattern'));
    }
    it('rejects month 13 (format date-time)', () => expectRejected((m) => (m.released = '2025-13-01T12:00:00Z'), '/released', 'must match format "date-time"'));
    it('rejects February 30', () => expectRejected((m) => (m.expires = '2026-02-30T12:00:00Z'), '/expires', 'must match format "date-time"'));
    it('rejects hour 24', () => expectRejected((m) => (m.provenance.buildFinished = '2025-03-01T24:00:00Z'), '/provenance/buildFinished', 'date-time'));
    it('rejects expires equal to released', () => expectRejected((m) => (m.expires = m.released), '/expires', 'must be after released'));
    it('rejects expires before released', () => expectRejected((m) => (m.expires = '2025-03-01T11:59:59.999Z'), '/expires', 'must be after released'));
    it('accepts expires 1 ms after released', () => expectAccepted((m) => (m.expires = '2025-03-01T12:00:00.001Z')));
  });

  describe('artifacts', () => {
    it('rejects 0 artifacts', () => expectRejected((m) => (m.artifacts = []), '/artifacts', 'must NOT have fewer than 1 items'));
    it('passes the schema with 1 artifact (then fails the role rule)', () => {
      const errors = errorsOf((m) => (m.artifacts = [artifact(0, 'sbom')]));
      expect(errors).toEqual(['/artifacts: must contain exactly one artifact of role "provenance", has none']);
    });
    it('accepts 64 artifacts', () => expectAccepted((m) => (m.artifacts = [...m.artifacts, ...Array.from({ length: 61 }, (_, i) => artifact(i))])));
    it('rejects 65 artifacts', () =>
      expectRejected((m) => (m.artifacts = [...m.artifacts, ...Array.from({ length: 62 }, (_, i) => artifact(i))]), '/artifacts', 'must NOT have more than 64 items'));
    for (const name of ['../etc', '.hidden', 'a/b', 'a\\b', '-x', '', 'a b', 'ä.bin', 'a'.repeat(129)]) {
      it(`rejects the name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}… (${name.length})` : name)}`, () =>
        expectRejected((m) => (m.artifacts[0]!.name = name), '/artifacts/0/name', 'must match pattern'));
    }
    it('accepts a 128-char name with dots, dashes and underscores', () => expectAccepted((m) => (m.artifacts[0]!.name = `A0._-${'x'.repeat(123)}`)));
    it('rejects a duplicate name', () => expectRejected((m) => (m.artifacts[2]!.name = m.artifacts[0]!.name), '/artifacts/2/name', 'duplicate artifact name "rootfs.squashfs" (first at /artifacts/0)'));
    it('rejects a non-integer size', () => expectRejected((m) => (m.artifacts[0]!.size = 10.5), '/artifacts/0/size', 'must be integer'));
    it('rejects a negative size', () => expectRejected((m) => (m.artifacts[0]!.size = -1), '/artifacts/0/size', 'must be >= 0'));
    it('accepts size 0 and 2^53-1, rejects 2^53', () => {
      expectAccepted((m) => (m.artifacts[0]!.size = 0));
      expectAccepted((m) => (m.artifacts[0]!.size = Number.MAX_SAFE_INTEGER));
      expectRejected((m) => (m.artifacts[0]!.size = 2 ** 53), '/artifacts/0/size', 'must be <= 9007199254740991');
    });
    it('rejects an uppercase sha256', () => expectRejected((m) => (m.artifacts[0]!.sha256 = 'A'.repeat(64)), '/artifacts/0/sha256', 'must match pattern "^[0-9a-f]{64}$"'));
    it('rejects a 63-char sha256', () => expectRejected((m) => (m.artifacts[0]!.sha256 = 'a'.repeat(63)), '/artifacts/0/sha256', 'must match pattern'));
    it('rejects an unknown role', () => expectRejected((m) => (m.artifacts[0]!.role = 'bootloader'), '/artifacts/0/role', 'must be one of "rootfs", "kernel"'));
    it('rejects two sbom artifacts', () => expectRejected((m) => (m.artifacts[0]!.role = 'sbom'), '/artifacts', 'exactly one artifact of role "sbom", has 2 (/artifacts/0, /artifacts/1)'));
    it('rejects no sbom artifact', () => expectRejected((m) => (m.artifacts[1]!.role = 'other'), '/artifacts', 'exactly one artifact of role "sbom", has none'));
    it('rejects no provenance artifact', () => expectRejected((m) => (m.artifacts[2]!.role = 'app'), '/artifacts', 'exactly one artifact of role "provenance", has none'));
    it('rejects two provenance artifacts', () => expectRejected((m) => (m.artifacts[0]!.role = 'provenance'), '/artifacts', 'role "provenance", has 2'));
    it('accepts one trust artifact and rejects two', () => {
      expectAccepted((m) => m.artifacts.push(artifact(1, 'trust')));
      expectRejected((m) => m.artifacts.push(artifact(1, 'trust'), artifact(2, 'trust')), '/artifacts', 'at most one artifact of role "trust", has 2');
    });
    it('rejects a provenance artifact over 1 MiB', () => {
      expectAccepted((m) => (m.artifacts[2]!.size = PROVENANCE_MAX_BYTES));
      expectRejected((m) => (m.artifacts[2]!.size = PROVENANCE_MAX_BYTES + 1), '/artifacts/2/size', 'at most 1048576 bytes');
    });
  });

  describe('egress rules', () => {
    it('accepts 0 and 256 rules', () => {
      expectAccepted((m) => (m.egress = []));
      expectAccepted((m) => (m.egress = Array.from({ length: 256 }, (_, i) => rule(i))));
    });
    it('rejects 257 rules', () => expectRejected((m) => (m.egress = Array.from({ length: 257 }, (_, i) => rule(i))), '/egress', 'must NOT have more than 256 items'));
    it('rejects a duplicate id', () => expectRejected((m) => (m.egress[1]!.id = 'ntp'), '/egress/1/id', 'duplicate egress rule id "ntp" (first at /egress/0)'));
    it('rejects an uppercase id', () => expectRejected((m) => (m.egress[0]!.id = 'NTP'), '/egress/0/id', 'must match pattern'));
    it('rejects a 65-char id', () => expectRejected((m) => (m.egress[0]!.id = 'a'.repeat(65)), '/egress/0/id', 'must match pattern'));
    it('accepts a 200-char purpose and rejects 201', () => {
      expectAccepted((m) => (m.egress[0]!.purpose = 'p'.repeat(200)));
      expectRejected((m) => (m.egress[0]!.purpose = 'p'.repeat(201)), '/egress/0/purpose', 'must NOT have more than 200 characters');
    });
    it('rejects an empty purpose', () => expectRejected((m) => (m.egress[0]!.purpose = ''), '/egress/0/purpose', 'must NOT have fewer than 1 characters'));
    it('rejects a purpose with a newline', () => expectRejected((m) => (m.egress[0]!.purpose = 'a\nb'), '/egress/0/purpose', 'must match pattern'));
    it('rejects proto icmp', () => expectRejected((m) => (m.egress[0]!.proto = 'icmp'), '/egress/0/proto', 'must be one of "tcp", "udp"'));
    it('rejects both host and cidr', () => expectRejected((m) => (m.egress[0]!.cidr = '192.0.2.0/24'), '/egress/0', 'exactly one of "host" or "cidr", has both'));
    it('rejects neither host nor cidr', () => expectRejected((m) => delete m.egress[0]!.host, '/egress/0', 'exactly one of "host" or "cidr", has neither'));
    it('rejects both port and ports', () => expectRejected((m) => (m.egress[0]!.ports = [1, 2]), '/egress/0', 'exactly one of "port" or "ports", has both'));
    it('rejects neither port nor ports', () => expectRejected((m) => delete m.egress[0]!.port, '/egress/0', 'exactly one of "port" or "ports", has neither'));
    it('reports "has neither" once, without branch noise', () => {
      expect(errorsOf((m) => delete m.egress[0]!.host)).toEqual(['/egress/0: must have exactly one of "host" or "cidr", has neither']);
    });
    it('rejects port 0 and 65536, accepts 1 and 65535', () => {
      expectRejected((m) => (m.egress[0]!.port = 0), '/egress/0/port', 'must be >= 1');
      expectRejected((m) => (m.egress[0]!.port = 65536), '/egress/0/port', 'must be <= 65535');
      expectAccepted((m) => (m.egress[0]!.port = 1));
      expectAccepted((m) => (m.egress[0]!.port = 65535));
    });
    it('rejects a reversed port range', () => expectRejected((m) => (m.egress[1]!.ports = [9000, 8000]), '/egress/1/ports', 'range [9000, 8000] must have from <= to'));
    it('accepts a one-port range', () => expectAccepted((m) => (m.egress[1]!.ports = [8883, 8883])));
    it('rejects a range of one or three numbers', () => {
      expectRejected((m) => (m.egress[1]!.ports = [1]), '/egress/1/ports', 'must NOT have fewer than 2 items');
      expectRejected((m) => (m.egress[1]!.ports = [1, 2, 3]), '/egress/1/ports', 'must NOT have more than 2 items');
    });
    it('rejects a range bound out of 1-65535', () => expectRejected((m) => (m.egress[1]!.ports = [0, 10]), '/egress/1/ports/0', 'must be >= 1'));
    for (const host of ['pool.ntp.org', 'a.b', 'xn--bcher-kva.example', `${'a'.repeat(63)}.example`, 'a-b.c-d.example']) {
      it(`accepts host ${host.length > 40 ? '63-char label' : host}`, () => expectAccepted((m) => (m.egress[0]!.host = host)));
    }
    for (const host of ['localhost', '192.0.2.1', 'NTP.example', '*.example.com', '-a.example', 'a-.example', 'example.com.', 'a..example', 'a_b.example', `${'a'.repeat(64)}.example`, `${'a.'.repeat(126)}ab`]) {
      it(`rejects host ${JSON.stringify(host.length > 40 ? `${host.slice(0, 10)}… (${host.length})` : host)}`, () => {
        const errors = errorsOf((m) => (m.egress[0]!.host = host));
        expect(errors.some((e) => e.startsWith('/egress/0/host: '))).toBe(true);
      });
    }
    for (const cidr of ['192.0.2.0/24', '192.0.2.1/32', '0.0.0.0/0', '2001:db8::/32', '2001:db8:0:1::/64', '::/0', '::ffff:192.0.2.0/120', 'fe80::1/128']) {
      it(`accepts cidr ${cidr}`, () => expectAccepted((m) => (m.egress[1]!.cidr = cidr)));
    }
    for (const [cidr, text] of [
      ['192.0.2.1/24', 'host bits set beyond /24 (the network address is 192.0.2.0/24)'],
      ['2001:db8::1/32', 'host bits set beyond /32 (the network address is 2001:db8::/32)'],
      ['1:2:3:4:5:6:7:8:9/64', 'is not an IPv4 or lowercase IPv6 address'],
      ['2001:db8:::/48', 'is not an IPv4 or lowercase IPv6 address'],
    ] as const) {
      it(`rejects cidr ${cidr} in code`, () => expectRejected((m) => (m.egress[1]!.cidr = cidr), '/egress/1/cidr', text));
    }
    for (const cidr of ['192.0.2.0', '192.0.2.0/33', '256.0.2.0/24', '192.000.2.0/24', '2001:DB8::/32', '2001:db8::/129', 'fe80::1%eth0/128', 'example.com/24', '']) {
      it(`rejects cidr ${JSON.stringify(cidr)} in the schema`, () => expectRejected((m) => (m.egress[1]!.cidr = cidr), '/egress/1/cidr', 'must be an IPv4 prefix'));
    }
  });

  describe('provenance summary', () => {
    it('accepts a 64-hex (SHA-256) commit', () => expectAccepted((m) => (m.provenance.sourceCommit = 'e'.repeat(64))));
    for (const c of ['e'.repeat(39), 'e'.repeat(41), 'E'.repeat(40), 'g'.repeat(40)]) {
      it(`rejects commit ${c.slice(0, 3)}… (${c.length})`, () => expectRejected((m) => (m.provenance.sourceCommit = c), '/provenance/sourceCommit', 'must match pattern'));
    }
    it('rejects a repository that is not a URI', () => expectRejected((m) => (m.provenance.sourceRepository = 'git.hss.example/nvr'), '/provenance/sourceRepository', 'must match format "uri"'));
    it('rejects a builder that is not a URI', () => expectRejected((m) => (m.provenance.builder = 'ci runner 7'), '/provenance/builder', 'must match format "uri"'));
  });

  it('rejects notes over 4096 characters', () => {
    expectAccepted((m) => (m.notes = 'n'.repeat(4096)));
    expectRejected((m) => (m.notes = 'n'.repeat(4097)), '/notes', 'must NOT have more than 4096 characters');
  });

  it('rejects a non-object manifest', () => {
    for (const v of [null, [], 'x', 1]) {
      const r = validateManifest(v);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]).toBe('/: must be object');
    }
  });

  it('reports every schema error, not only the first', () => {
    const errors = errorsOf((m) => {
      m.product = 'X';
      m.artifacts[0]!.sha256 = 'Z';
      delete m.egress[1]!.proto;
    });
    expect(errors).toHaveLength(3);
  });
});
