/**
 * Headless Chromium (Debian's package) driven by playwright-core, for the
 * status page tests. Every request the page makes is recorded.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** null when Chromium is installed; otherwise why not (fails under CI like requireSystem). */
export function requireChromium(): string | null {
  if (existsSync(CHROMIUM)) return null;
  const reason = `missing: ${CHROMIUM} (apt-get install -y chromium)`;
  if (process.env['CI'] === 'true') throw new Error(`system test requirement not met under CI: ${reason}`);
  return reason;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
}

export interface RecordedPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Every URL the page asked for (documents, subresources, favicons, prefetches). */
  readonly requests: string[];
  /** Console messages, e.g. CSP violations ("Refused to …"). */
  readonly console: string[];
}

export async function recordedPage(browser: Browser, opts: { viewport: { width: number; height: number }; isMobile?: boolean; httpCredentials?: { username: string; password: string } }): Promise<RecordedPage> {
  const context = await browser.newContext({
    viewport: opts.viewport,
    isMobile: opts.isMobile ?? false,
    hasTouch: opts.isMobile ?? false,
    deviceScaleFactor: opts.isMobile ? 2 : 1,
    ...(opts.httpCredentials ? { httpCredentials: opts.httpCredentials } : {}),
  });
  const page = await context.newPage();
  const requests: string[] = [];
  const consoleLines: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  return { context, page, requests, console: consoleLines };
}
