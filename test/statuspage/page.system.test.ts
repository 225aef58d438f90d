/**
 * The status page in a real browser (headless Chromium): a technician's
 * phone and a laptop load it from the API on loopback. Checks what they
 * must see, that it fits a phone, that the browser reports no policy
 * violation, and that every request went to the daemon's host:port.
 * Screenshots: test-output/statuspage/ (git-ignored).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { ApiServer } from '../../src/api/server.js';
import { statusPageRoutes } from '../../src/statuspage/routes.js';
import { readPasswordRecord, setPassword } from '../../src/statuspage/password-file.js';
import { STATUS_PAGE_CSP } from '../../src/statuspage/render.js';
import type { PasswordRecord } from '../../src/statuspage/auth.js';
import type { StatusFacts } from '../../src/status/types.js';
import { greenFacts } from '../status/facts.js';
import { launchChromium, recordedPage, requireChromium } from './browser.js';

const missing = requireChromium();
const OUT = join(process.cwd(), 'test-output', 'statuspage');

/** A recorder with one undeclared flow from a camera and one from a local process, observed in observe mode. */
function leakingFacts(): StatusFacts {
  const f = greenFacts();
  return {
    ...f,
    egress: {
      ...f.egress!,
      verdict: 'undeclared-egress',
      undeclared: 2,
      undeclaredFlows: [
        { direction: 'forwarded', proto: 'tcp', src: '10.20.0.31', dst: '203.0.113.77', dport: 443, count: 12, firstSeen: '2026-06-01T09:14:02.000Z', lastSeen: '2026-06-01T11:58:40.000Z', rule: null, process: 'device 3c:ef:8c:01:02:03' },
        { direction: 'local', proto: 'udp', src: '192.0.2.10', dst: '198.51.100.53', dport: 53, count: 3, firstSeen: '2026-06-01T10:00:00.000Z', lastSeen: '2026-06-01T10:00:09.000Z', rule: null, process: '/usr/bin/vendor-agent (pid 4242)' },
      ],
    },
  };
}

describe.skipIf(missing)(`the status page in headless Chromium${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let browser: Browser;
  let api: ApiServer;
  let origin: string;
  let password: PasswordRecord | null = null;

  beforeAll(async () => {
    await mkdir(OUT, { recursive: true });
    api = new ApiServer({ tcp: '127.0.0.1:0', socketPath: null, routes: statusPageRoutes({ facts: async () => leakingFacts(), password: async () => password }) });
    await api.start();
    origin = `http://127.0.0.1:${api.tcpAddress!.port}`;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await api?.stop();
  });

  function onlyTheDaemon(requests: readonly string[]): void {
    expect(requests.length).toBeGreaterThan(0);
    for (const url of requests) expect(new URL(url).host, url).toBe(new URL(origin).host);
  }

  it('on a phone: shows the verdict with the undeclared flows, firmware, slots, health and the attestation download, and calls nowhere else', async () => {
    const r = await recordedPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true });
    const response = await r.page.goto(`${origin}/`, { waitUntil: 'networkidle' });
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toBe(STATUS_PAGE_CSP);
    const page = r.page;
    expect(await page.title()).toBe('rec-0042 — glassbox');
    expect(await page.textContent('#overall')).toBe('Failing: Egress attestation');
    expect(await page.getAttribute('[data-check="egress"]', 'data-state')).toBe('fail');
    expect(await page.getAttribute('[data-check="broker"]', 'data-state')).toBe('ok');
    expect(await page.textContent('#egress-verdict')).toBe('Verdict: undeclared-egress');
    const rows = await page.locator('#undeclared li').allInnerTexts();
    expect(rows).toHaveLength(2);
    expect(rows[0]).toContain('203.0.113.77:443');
    expect(rows[1]).toContain('/usr/bin/vendor-agent');
    const text = await page.innerText('main');
    for (const s of ['4.2.0', 'hss-nvr-firmware', '0123456789abcdef0123456789abcdef01234567', 'CN=release signer 2', 'Security floor', '/srv/recordings', 'mqtts://broker.example:8883']) expect(text).toContain(s);
    const href = await page.getAttribute('#attestation-link', 'href');
    expect(href).toMatch(/^\/v1\/attestation\?nonce=[A-Za-z0-9_-]{32}$/);
    // readable on a phone: nothing wider than the screen (tables scroll inside their box)
    // (compared with the phone's 390 CSS px: a mobile browser zooms out to fit wider content, so innerWidth would follow it)
    // (browser-side code as text: the test program is compiled without the DOM library)
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    const overflowing = await page.evaluate(`(() => {
      const out = new Set();
      const range = document.createRange();
      for (const el of document.querySelectorAll('main *')) {
        if (el.closest('.scroll')) continue;
        range.selectNodeContents(el);
        for (const rect of range.getClientRects()) if (rect.right > 391) out.add(el.tagName + ': ' + (el.textContent || '').slice(0, 40));
      }
      return [...out];
    })()`);
    expect(overflowing).toEqual([]);
    expect(r.console.filter((l) => /Refused|Content Security Policy/i.test(l))).toEqual([]);
    await page.screenshot({ path: join(OUT, 'phone.png'), fullPage: true });
    await page.screenshot({ path: join(OUT, 'phone-first-screen.png') });
    await page.locator('#egress').evaluate('(h) => h.scrollIntoView()');
    await page.screenshot({ path: join(OUT, 'phone-egress.png') });
    onlyTheDaemon(r.requests);
    await r.context.close();
  });

  it('on a laptop: same page; the attestation form submits to this daemon only', async () => {
    const r = await recordedPage(browser, { viewport: { width: 1280, height: 900 } });
    await r.page.goto(`${origin}/`, { waitUntil: 'networkidle' });
    await r.page.screenshot({ path: join(OUT, 'laptop.png'), fullPage: true });
    // The form goes to /v1/attestation on the same origin (not served in this test: 404 is fine, the target is what matters).
    await Promise.all([r.page.waitForNavigation({ waitUntil: 'load' }), r.page.click('form button[type=submit]')]);
    expect(new URL(r.page.url()).pathname).toBe('/v1/attestation');
    expect(new URL(r.page.url()).searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{32}$/);
    onlyTheDaemon(r.requests);
    await r.context.close();
  });

  it('with a password: the browser is asked for it, and the page shows once it is given', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'glassbox-page-pw-'));
    await setPassword(dir, 'site-7-technician', new Date());
    password = await readPasswordRecord(dir);
    try {
      const anon = await recordedPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true });
      // Chromium meets the Basic challenge with no credentials to give: the navigation fails, nothing is shown.
      await expect(anon.page.goto(`${origin}/`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
      onlyTheDaemon(anon.requests);
      const wrong = await recordedPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, httpCredentials: { username: 'technician', password: 'not-the-password' } });
      const refused = await wrong.page.goto(`${origin}/`);
      expect(refused?.status()).toBe(401);
      expect(await wrong.page.innerText('body')).not.toContain('rec-0042');
      onlyTheDaemon(wrong.requests);
      await wrong.context.close();
      await anon.context.close();
      const tech = await recordedPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, httpCredentials: { username: 'technician', password: 'site-7-technician' } });
      const ok = await tech.page.goto(`${origin}/`, { waitUntil: 'networkidle' });
      expect(ok?.status()).toBe(200);
      expect(await tech.page.textContent('#device')).toContain('rec-0042');
      onlyTheDaemon(tech.requests);
      await tech.context.close();
    } finally {
      password = null;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
