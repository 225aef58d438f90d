/**
 * The technician's status page: one self-contained HTML document, pure
 * (a StatusView in, a string out). Inline CSS only; no script, font, image
 * or any other resource, so the page makes no request of its own: a page
 * that called out would itself be hidden egress. The only links point back
 * at the daemon (the attestation download, a reload).
 */
import { formatBytes } from '../status/checks.js';
import type { EgressFlowFacts, StatusCheck, StatusView } from '../status/types.js';

/** Served with the page; the page needs nothing it forbids. */
export const STATUS_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export interface RenderOptions {
  /** A fresh nonce for the attestation download (16-128 of [A-Za-z0-9_-]). */
  readonly nonce: string;
  /** Path of the attestation route on this daemon. */
  readonly attestationPath?: string;
  /** Seconds between automatic reloads; 0 = none. */
  readonly refreshSeconds?: number;
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** HTML-escapes text for element content and quoted attributes. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESC[c] ?? c);
}

const STATE_WORD: Record<StatusCheck['state'], string> = { ok: 'OK', warn: 'CHECK', fail: 'FAIL' };
const OVERALL_WORD: Record<StatusCheck['state'], string> = { ok: 'All checks pass', warn: 'Needs attention', fail: 'Failing' };

const CSS = `
:root{color-scheme:light dark;--ok:#1b7f3b;--warn:#9a6700;--fail:#c62828;--fg:#1d1d1f;--bg:#fff;--muted:#5f6368;--line:#d9d9de;--card:#f6f7f9}
@media (prefers-color-scheme:dark){:root{--fg:#ececf1;--bg:#16171a;--muted:#a0a4ab;--line:#33353b;--card:#1f2125;--ok:#4cc26e;--warn:#e0a82e;--fail:#ff6b6b}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.2rem 0}
h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.25rem}
.sub{color:var(--muted);font-size:.9rem}
.banner{border-radius:.5rem;padding:.75rem 1rem;margin:.75rem 0;font-weight:600;border:2px solid}
.banner.ok{border-color:var(--ok);color:var(--ok)}.banner.warn{border-color:var(--warn);color:var(--warn)}.banner.fail{border-color:var(--fail);color:var(--fail)}
ul.checks{list-style:none;padding:0;margin:0}
ul.checks li{display:flex;gap:.75rem;align-items:flex-start;padding:.55rem 0;border-bottom:1px solid var(--line)}
.badge{flex:0 0 4.2rem;text-align:center;font-weight:700;font-size:.8rem;border-radius:.3rem;padding:.15rem 0;color:#fff}
.badge.ok{background:var(--ok)}.badge.warn{background:var(--warn)}.badge.fail{background:var(--fail)}
.check b{display:block}
.check>div{min-width:0;overflow-wrap:anywhere}
ul.flows{list-style:none;padding:0;margin:.5rem 0}
ul.flows li{border-left:4px solid var(--fail);background:var(--card);border-radius:.3rem;padding:.5rem .75rem;margin:.4rem 0;overflow-wrap:anywhere}
ul.flows .dst{font-weight:700}
.fix{color:var(--muted);font-size:.9rem}
.fix::before{content:"Fix: ";font-weight:600}
dl{display:grid;grid-template-columns:minmax(5.5rem,max-content) 1fr;gap:.25rem .9rem;margin:0}
dt{color:var(--muted)}dd{margin:0;min-width:0;overflow-wrap:anywhere}
.hash,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem;overflow-wrap:anywhere}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
tr.active td{font-weight:600}
.card{background:var(--card);border-radius:.5rem;padding:.75rem 1rem}
form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
input[type=text]{font:inherit;font-family:ui-monospace,monospace;font-size:.85rem;padding:.45rem;min-width:0;flex:1 1 16rem;border:1px solid var(--line);border-radius:.3rem;background:var(--bg);color:var(--fg)}
button,.button{font:inherit;font-weight:600;padding:.5rem .9rem;border-radius:.3rem;border:0;background:#1a56db;color:#fff;text-decoration:none;cursor:pointer}
footer{margin:2rem 0 1rem;color:var(--muted);font-size:.85rem}
@media (max-width:30rem){dt{max-width:8rem}.badge{flex-basis:3.6rem}}
`;

function check(c: StatusCheck): string {
  return `<li class="check" data-check="${esc(c.id)}" data-state="${esc(c.state)}"><span class="badge ${c.state}">${STATE_WORD[c.state]}</span><div><b>${esc(c.label)}</b><span>${esc(c.detail)}</span>${
    c.state !== 'ok' && c.fix ? `<div class="fix">${esc(c.fix)}</div>` : ''
  }</div></li>`;
}

function dl(rows: ReadonlyArray<readonly [string, string | null | undefined, boolean?]>): string {
  const items = rows.filter(([, v]) => v !== null && v !== undefined && v !== '');
  if (items.length === 0) return '<p class="sub">Nothing known.</p>';
  return `<dl>${items.map(([k, v, mono]) => `<dt>${esc(k)}</dt><dd${mono ? ' class="hash"' : ''}>${esc(v)}</dd>`).join('')}</dl>`;
}

function firmwareSection(v: StatusView): string {
  const f = v.firmware;
  const i = f?.installed ?? null;
  if (i === null) return `<h2 id="firmware">Firmware and provenance</h2><p class="sub">No firmware installed through glassbox yet.</p>`;
  const signers = i.signers.map((s) => `${s.subject ?? '?'} (key ${s.spkiSha256?.slice(0, 16) ?? '?'}…)`).join('; ');
  return `<h2 id="firmware">Firmware and provenance</h2>${dl([
    ['Product', i.product],
    ['Version', i.version],
    ['Security version', String(i.securityVersion)],
    ['Released', i.released],
    ['Expires', i.expires],
    ['Manifest sha256', i.manifestSha256, true],
    ['Signed by', signers],
    ['Verification', f?.verification ? `${f.verification.ok ? 'verifies' : `FAILS: ${f.verification.code ?? ''} ${f.verification.reason}`}${f.verification.deep ? ` (checked ${f.verification.at})` : ` (${f.verification.reason})`}` : null],
    ['Source', i.sourceRepository],
    ['Commit', i.sourceCommit, true],
    ['Builder', i.builder],
    ['SBOM sha256', i.sbomSha256, true],
    ['Provenance sha256', i.provenanceSha256, true],
  ])}`;
}

function slotsSection(v: StatusView): string {
  const f = v.firmware;
  if (f === null || f.slots.length === 0) return `<h2 id="slots">Slots</h2><p class="sub">${esc(f?.error ?? 'Device state not readable.')}</p>`;
  const rows = f.slots
    .map((s) => `<tr${s.name === f.activeSlot ? ' class="active"' : ''}><td>${esc(s.name)}${s.name === f.activeSlot ? ' (active)' : ''}</td><td>${esc(s.state)}</td><td>${esc(s.version ?? '—')}</td><td class="hash">${esc(s.manifestSha256?.slice(0, 16) ?? '—')}</td></tr>`)
    .join('');
  return `<h2 id="slots">Slots</h2><div class="scroll"><table><thead><tr><th>Slot</th><th>State</th><th>Version</th><th>Manifest</th></tr></thead><tbody>${rows}</tbody></table></div>${dl([
    ['Security floor', f.securityFloor === null ? null : String(f.securityFloor)],
    ['Last boot', f.lastBoot ? `${f.lastBoot.outcome} at ${f.lastBoot.at}${f.lastBoot.reason ? ` — ${f.lastBoot.reason}` : ''}` : null],
  ])}`;
}

const bytes = formatBytes;

function healthSection(v: StatusView): string {
  const h = v.health;
  if (h === null) return `<h2 id="health">Health</h2><p class="sub">No health sample yet.</p>`;
  const disks = h.disks
    .map((d) => `<tr><td>${esc(d.path)}</td><td>${esc(d.usedPercent.toFixed(0))}%</td><td>${esc(bytes(d.availableBytes))} free of ${esc(bytes(d.totalBytes))}</td><td>${esc(d.smart?.health ?? '—')}</td></tr>`)
    .join('');
  return `<h2 id="health">Health</h2>${dl([
    ['Sample', h.at],
    ['Uptime', h.uptimeSeconds === null ? null : `${Math.floor(h.uptimeSeconds / 3600)} h ${Math.floor((h.uptimeSeconds % 3600) / 60)} min`],
    ['Load', h.cpu ? `${h.cpu.load1.toFixed(2)} / ${h.cpu.load5.toFixed(2)} / ${h.cpu.load15.toFixed(2)} (${h.cpu.cores} cores)` : null],
    ['Memory', h.memory ? `${h.memory.usedPercent.toFixed(0)}% used, ${bytes(h.memory.availableBytes)} available` : null],
    ['Temperatures', h.temperatures.map((t) => `${t.sensor} ${t.celsius} °C`).join(', ') || null],
    ['Clock', `${h.clock.sync} (${h.clock.source})`],
    ['Queue', `${h.daemon.queue.depth} messages waiting (${bytes(h.daemon.queue.bytes)} of ${bytes(h.daemon.queue.maxBytes)})`],
  ])}${disks ? `<div class="scroll"><table><thead><tr><th>Disk</th><th>Used</th><th>Space</th><th>SMART</th></tr></thead><tbody>${disks}</tbody></table></div>` : ''}`;
}

function brokerSection(v: StatusView): string {
  const b = v.broker;
  return `<h2 id="broker">Broker</h2>${dl([
    ['Broker', b?.url ?? 'not configured'],
    ['Connection', b === null ? null : b.connected === null ? 'unknown (daemon not running)' : b.connected ? `connected${b.since ? ` since ${b.since}` : ''}` : `not connected${b.lastError ? `: ${b.lastError}` : ''}`],
    ['Queue depth', b?.queue ? `${b.queue.depth} messages (${bytes(b.queue.bytes)} of ${bytes(b.queue.maxBytes)})` : null],
    ['Dropped', b?.queue && b.queue.droppedEvents + b.queue.droppedHealth > 0 ? `${b.queue.droppedEvents} events, ${b.queue.droppedHealth} health samples` : null],
  ])}`;
}

function flowItem(f: EgressFlowFacts): string {
  const dst = `${f.dst}${f.dport === null ? '' : `:${f.dport}`}`;
  return `<li><span class="dst hash">${esc(f.proto)} → ${esc(dst)}</span><br><span class="hash">${esc(f.direction === 'forwarded' ? 'forwarded from' : 'from this recorder,')} ${esc(f.src)}</span><br>${esc(f.count)} flow${f.count === 1 ? '' : 's'}, first ${esc(f.firstSeen)}, last ${esc(f.lastSeen)}${
    f.process ? `<br><span class="sub">${esc(f.process)}</span>` : ''
  }</li>`;
}

function egressSection(v: StatusView, o: RenderOptions): string {
  const e = v.egress;
  const path = o.attestationPath ?? '/v1/attestation';
  const download = `<h3>Signed attestation</h3><p class="sub">For a buyer or auditor: a signed statement of this recorder's outbound traffic, checked offline with the device certificate chain. The nonce below was generated for this page; an auditor may type their own.</p>
<form method="get" action="${esc(path)}"><input type="text" name="nonce" value="${esc(o.nonce)}" pattern="[A-Za-z0-9_-]{16,128}" minlength="16" maxlength="128" required aria-label="nonce"><button type="submit">Get signed attestation</button></form>
<p><a class="button" id="attestation-link" href="${esc(path)}?nonce=${esc(o.nonce)}" download="attestation-${esc(v.identity?.deviceId ?? 'recorder')}-${esc(o.nonce)}.json">Download signed attestation</a></p>`;
  if (e === null) return `<h2 id="egress">Egress attestation</h2><p class="sub">No egress verdict: the observer is not running.</p>${download}`;
  const flows = e.undeclaredFlows;
  const listed =
    e.undeclared === 0 && flows.length === 0
      ? '<p>No undeclared flows.</p>'
      : `<h3>Undeclared flows</h3><ul class="flows" id="undeclared">${flows.map(flowItem).join('')}</ul>${
          e.undeclared > flows.length ? `<p class="sub">${esc(e.undeclared - flows.length)} more undeclared flows not listed.</p>` : ''
        }`;
  const tone = e.verdict === 'clean' ? 'ok' : e.verdict === 'incomplete' ? 'warn' : 'fail';
  return `<h2 id="egress">Egress attestation</h2><div class="banner ${tone}" id="egress-verdict">Verdict: ${esc(e.verdict)}</div>${listed}${dl([
    ['Mode', e.mode],
    ['Window', e.windowStart ? `${e.windowStart} to ${e.windowEnd ?? 'now'}` : null],
    ['Flows counted', e.flowsCounted === null ? null : String(e.flowsCounted)],
    ['Undeclared', String(e.undeclared)],
    ['Events lost', e.eventsLost === null ? null : String(e.eventsLost)],
    ['Why not clean', e.reasons.join('; ') || null],
  ])}${download}`;
}

function identitySection(v: StatusView): string {
  const i = v.identity;
  if (i === null) return `<h2 id="identity">Identity</h2><p class="sub">${esc(v.identityError ?? 'Not provisioned.')}</p>`;
  return `<h2 id="identity">Identity</h2>${dl([
    ['Device id', i.deviceId],
    ['Hardware', i.hardware],
    ['Key', `${i.keyAlgorithm}, sha256 ${i.spkiSha256}`, true],
    ['Certificate', i.certificate ? `serial ${i.certificate.serial}` : 'not imported'],
    ['Issued by', i.certificate?.issuer],
    ['Valid', i.certificate ? `${i.certificate.notBefore} to ${i.certificate.notAfter}` : null],
    ['Trust policy', v.trust ? `sha256 ${v.trust.sha256}` : null, true],
  ])}`;
}

/** " — Egress attestation, Broker": the checks that are not ok, worst first. */
function attention(v: StatusView): string {
  const bad = [...v.checks.filter((c) => c.state === 'fail'), ...v.checks.filter((c) => c.state === 'warn')];
  return bad.length === 0 ? '' : `: ${esc(bad.map((c) => c.label).join(', '))}`;
}

/** The whole page. */
export function renderStatusPage(v: StatusView, o: RenderOptions): string {
  const title = v.identity ? `${v.identity.deviceId} — glassbox` : 'glassbox recorder';
  const refresh = o.refreshSeconds && o.refreshSeconds > 0 ? `<meta http-equiv="refresh" content="${Math.floor(o.refreshSeconds)}">` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">${refresh}
<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><main>
<header><h1 id="device">${esc(v.identity?.deviceId ?? 'Unprovisioned recorder')}${v.identity ? ` <span class="sub">${esc(v.identity.hardware)}</span>` : ''}</h1>
<div class="sub">${v.firmware?.installed ? `Firmware ${esc(v.firmware.installed.version)} · ` : ''}glassbox ${esc(v.daemonVersion)} · ${esc(v.generatedAt)}</div></header>
<div class="banner ${v.overall}" id="overall" data-state="${v.overall}">${OVERALL_WORD[v.overall]}${attention(v)}</div>
<section><ul class="checks" id="checks">${v.checks.map(check).join('')}</ul></section>
${egressSection(v, o)}
${firmwareSection(v)}
${slotsSection(v)}
${healthSection(v)}
${brokerSection(v)}
${identitySection(v)}
<footer>Served by the glassbox daemon on this recorder. This page loads nothing from anywhere else. <a href="/">Reload</a> · <a href="/v1/status">JSON</a></footer>
</main></body></html>
`;
}
