import { describe, expect, it } from 'vitest';
import { composeStatus } from '../../src/status/checks.js';
import { esc, renderStatusPage, STATUS_PAGE_CSP } from '../../src/statuspage/render.js';
import { greenFacts } from '../status/facts.js';

const NONCE = 'n0nce-for-the-test-1234';

describe('the status page', () => {
  const html = renderStatusPage(composeStatus(greenFacts()), { nonce: NONCE });

  it('shows what a technician must see: device, firmware and provenance, slots, health, broker, egress verdict, checks', () => {
    for (const text of [
      'rec-0042',
      'HSS-NVR-8',
      '4.2.0',
      '0123456789abcdef0123456789abcdef01234567',
      'https://git.example/hss/nvr-firmware',
      'CN=release signer 1',
      'committed',
      '/srv/recordings',
      'mqtts://broker.example:8883',
      'Verdict: clean',
      'All checks pass',
      'No undeclared flows.',
    ]) {
      expect(html, text).toContain(esc(text));
    }
    expect(html.match(/data-check="/g)).toHaveLength(8);
  });

  it('links the signed attestation on this daemon with the nonce, and a form for an auditor nonce', () => {
    expect(html).toContain(`href="/v1/attestation?nonce=${NONCE}"`);
    expect(html).toContain('<form method="get" action="/v1/attestation">');
    expect(html).toContain(`value="${NONCE}"`);
  });

  it('loads nothing: no script, no external reference of any kind', () => {
    expect(html).not.toMatch(/<script|<img|<iframe|<object|<embed|@import|url\(/i);
    expect(html).not.toMatch(/\ssrc=/i);
    // every href / action points at this daemon (a path), a fragment, or an empty data: icon
    for (const m of html.matchAll(/\s(href|action)="([^"]*)"/g)) expect(m[2], m[0]).toMatch(/^(\/|#|data:,$)/);
    expect(STATUS_PAGE_CSP).toContain("default-src 'none'");
  });

  it('lists undeclared flows and escapes everything that came from outside', () => {
    const facts = greenFacts();
    const hostile = '<script>alert(1)</script>';
    const view = composeStatus({
      ...facts,
      egress: {
        ...facts.egress!,
        verdict: 'undeclared-egress',
        undeclared: 2,
        undeclaredFlows: [
          { direction: 'forwarded', proto: 'tcp', src: '10.0.0.21', dst: '203.0.113.9', dport: 443, count: 3, firstSeen: 'x', lastSeen: 'y', rule: null, process: `device ${hostile}` },
        ],
      },
    });
    const page = renderStatusPage(view, { nonce: NONCE });
    expect(page).toContain('id="undeclared"');
    expect(page).toContain('203.0.113.9:443');
    expect(page).toContain('1 more undeclared flows not listed.');
    expect(page).toContain('Verdict: undeclared-egress');
    expect(page).not.toContain(hostile);
    expect(page).toContain(esc(hostile));
    expect(page).toContain('class="banner fail" id="overall" data-state="fail">Failing: Egress attestation<');
  });

  it('renders an unprovisioned recorder without failing', () => {
    const facts = greenFacts();
    const page = renderStatusPage(composeStatus({ ...facts, identity: null, firmware: null, health: null, egress: null, broker: null, trust: null }), { nonce: NONCE });
    expect(page).toContain('Unprovisioned recorder');
    expect(page).toContain('Failing');
  });
});
