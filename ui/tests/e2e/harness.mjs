// Starts a real `faultline serve` on free ports with a temporary data directory, seeds it over
// OTLP/HTTP JSON, and gives the browser tests a base URL. When the server does not mount the UI
// yet, the UI comes from the faultline-ui crate's `serve_ui` example behind a small proxy that
// sends /api to the server, so the browser still sees the crate's real headers.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const uiDir = path.resolve(here, '..', '..');
export const repoDir = path.resolve(uiDir, '..');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function poll(what, fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

const children = [];
export function stopAll() {
  for (const c of children.splice(0)) {
    if (c.exitCode === null) c.kill('SIGTERM');
  }
}
process.on('exit', stopAll);

function start(cmd, args, name, logDir) {
  const log = fs.openSync(path.join(logDir, `${name}.log`), 'w');
  const c = spawn(cmd, args, { stdio: ['ignore', log, log] });
  children.push(c);
  c.on('exit', (code) => code && code !== 143 && console.error(`${name} exited with ${code}; see ${logDir}/${name}.log`));
  return c;
}

export const hex = (bytes) => randomBytes(bytes).toString('hex');

/** Starts the server (and the UI proxy if needed). Returns { base, api, otlp, logDir }. */
export async function startServer(artifacts) {
  const bin = process.env.FAULTLINE_BIN ?? path.join(repoDir, 'target', 'debug', 'faultline');
  if (!fs.existsSync(bin)) throw new Error(`${bin} does not exist: run cargo build -p faultline-cli first (or set FAULTLINE_BIN)`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faultline-e2e-'));
  const [httpPort, otlpHttp, otlpGrpc] = [await freePort(), await freePort(), await freePort()];
  const logDir = artifacts;
  start(
    bin,
    ['serve', '--data-dir', dataDir, '--http', `127.0.0.1:${httpPort}`, '--otlp-http', `127.0.0.1:${otlpHttp}`, '--otlp-grpc', `127.0.0.1:${otlpGrpc}`],
    'faultline',
    logDir,
  );
  const api = `http://127.0.0.1:${httpPort}`;
  await poll('faultline /api/services', async () => (await fetch(`${api}/api/services`)).ok);
  let base = api;
  const root = await fetch(`${api}/`);
  const servesUi = root.ok && (root.headers.get('content-type') ?? '').startsWith('text/html') && root.headers.has('content-security-policy');
  if (process.env.FAULTLINE_UI_DIST) {
    // This tree's ui/dist against another server build (e.g. a release binary whose embedded
    // UI is older): for measurements, not for the CI run.
    base = await startDistProxy(api);
    console.log(`note: serving ${path.join(uiDir, 'dist')} (FAULTLINE_UI_DIST), API from ${bin}`);
  } else if (!servesUi) {
    console.log('note: the server does not mount faultline_ui::router() yet; serving the UI through the serve_ui example and a proxy');
    base = await startUiProxy(api, logDir);
  }
  return { base, api, otlp: `http://127.0.0.1:${otlpHttp}`, dataDir, servesUi };
}

async function startUiProxy(api, logDir) {
  const build = spawnSync('cargo', ['build', '-q', '-p', 'faultline-ui', '--example', 'serve_ui'], { cwd: repoDir, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('cargo build --example serve_ui failed');
  const uiPort = await freePort();
  start(path.join(repoDir, 'target', 'debug', 'examples', 'serve_ui'), [String(uiPort)], 'serve_ui', logDir);
  await poll('serve_ui', async () => (await fetch(`http://127.0.0.1:${uiPort}/`)).ok);
  const proxyPort = await freePort();
  const server = http.createServer((req, res) => {
    const target = req.url.startsWith('/api/') || req.url === '/api' ? new URL(api) : new URL(`http://127.0.0.1:${uiPort}`);
    const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise((r) => server.listen(proxyPort, '127.0.0.1', r));
  server.unref();
  return `http://127.0.0.1:${proxyPort}`;
}

/** Serves ui/dist with the UI crate's own Content-Security-Policy, and /api and /metrics from `api`. */
async function startDistProxy(api) {
  const lib = fs.readFileSync(path.join(repoDir, 'crates', 'faultline-ui', 'src', 'lib.rs'), 'utf8');
  const m = /CONTENT_SECURITY_POLICY: &str = "([^"]*)"/s.exec(lib);
  if (!m) throw new Error('cannot find CONTENT_SECURITY_POLICY in crates/faultline-ui/src/lib.rs');
  const csp = m[1].replace(/\\\n\s*/g, '');
  const dist = path.join(uiDir, 'dist');
  const types = { '.js': 'text/javascript', '.css': 'text/css', '.html': 'text/html; charset=utf-8', '.svg': 'image/svg+xml' };
  const target = new URL(api);
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/api/') || req.url.startsWith('/metrics')) {
      const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(up);
      return;
    }
    const p = decodeURIComponent(req.url.split('?')[0]);
    let file = path.join(dist, p);
    if (!file.startsWith(dist) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(dist, 'index.html');
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'content-security-policy': csp });
    res.end(fs.readFileSync(file));
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  server.unref();
  return `http://127.0.0.1:${port}`;
}

const attr = (key, v) => ({
  key,
  value: typeof v === 'number' ? (Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v }) : typeof v === 'boolean' ? { boolValue: v } : { stringValue: String(v) },
});

/**
 * Sends spans over OTLP/HTTP JSON. `spans` are { service, traceId, spanId, parentSpanId, name,
 * kind, startNs (BigInt), endNs, attrs, error, events, links }.
 */
export async function sendSpans(otlp, spans, resourceAttrs = {}) {
  const byService = new Map();
  for (const s of spans) {
    if (!byService.has(s.service)) byService.set(s.service, []);
    byService.get(s.service).push({
      traceId: s.traceId,
      spanId: s.spanId,
      parentSpanId: s.parentSpanId ?? '',
      name: s.name,
      kind: s.kind ?? 1,
      startTimeUnixNano: String(s.startNs),
      endTimeUnixNano: String(s.endNs),
      attributes: Object.entries(s.attrs ?? {}).map(([k, v]) => attr(k, v)),
      status: s.error ? { code: 2, message: s.errorMessage ?? 'failed' } : { code: 0 },
      events: (s.events ?? []).map((e) => ({ timeUnixNano: String(e.timeNs), name: e.name, attributes: Object.entries(e.attrs ?? {}).map(([k, v]) => attr(k, v)) })),
      links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
    });
  }
  const body = {
    resourceSpans: [...byService].map(([service, ss]) => ({
      resource: { attributes: [attr('service.name', service), ...Object.entries(resourceAttrs).map(([k, v]) => attr(k, v))] },
      scopeSpans: [{ scope: { name: 'faultline-ui-e2e' }, spans: ss }],
    })),
  };
  const res = await fetch(`${otlp}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`OTLP export failed: ${res.status} ${await res.text()}`);
}

/**
 * A checkout trace: frontend → auth, cart → db (n queries), payments (optional, may fail).
 * `scale` stretches durations. Returns { traceId, spans }.
 */
export function checkoutTrace({ startMs, scale = 1, queries = 2, payments = true, paymentFails = false }) {
  const traceId = hex(16);
  const spans = [];
  const ns = (ms) => BigInt(Math.round(ms * 1e6));
  const t0 = startMs;
  const add = (service, name, parent, s, d, extra = {}) => {
    const spanId = hex(8);
    spans.push({ service, traceId, spanId, parentSpanId: parent, name, startNs: ns(t0 + s), endNs: ns(t0 + s + d), ...extra });
    return spanId;
  };
  const total = (queries * 4 + 30) * scale;
  const root = add('frontend', 'GET /checkout', '', 0, total, { kind: 2, attrs: { 'http.request.method': 'GET', 'http.route': '/checkout', 'http.response.status_code': paymentFails ? 500 : 200 }, error: paymentFails });
  add('auth', 'check token', root, 1, 5 * scale, { kind: 2, attrs: { 'user.id': 'u-42' } });
  const cart = add('cart', 'load cart', root, 7 * scale, (queries * 4 + 2) * scale, { kind: 2 });
  for (let q = 0; q < queries; q++) add('db', 'SELECT items', cart, 8 * scale + q * 4 * scale, 3 * scale, { kind: 3, attrs: { 'db.system.name': 'postgresql', 'db.query.text': 'SELECT * FROM items WHERE cart = $1' } });
  if (payments) {
    const p = add('payments', 'charge card', root, (queries * 4 + 12) * scale, 15 * scale, {
      kind: 2,
      error: paymentFails,
      errorMessage: 'card declined',
      events: paymentFails ? [{ timeNs: ns(t0 + (queries * 4 + 20) * scale), name: 'exception', attrs: { 'exception.type': 'CardDeclined', 'exception.message': 'insufficient funds' } }] : [],
    });
    add('bank', 'authorize', p, (queries * 4 + 14) * scale, 10 * scale, { kind: 3 });
  }
  return { traceId, spans };
}

/** A trace of `n` spans: a root with a tree of fan-out `fanout`, over `services` services. */
export function bigJaegerTrace(n, { fanout = 8, services = 12 } = {}) {
  const traceID = hex(16);
  const t0 = Date.now() * 1000 - 60e6;
  const spans = [];
  const processes = {};
  for (let s = 0; s < services; s++) processes[`p${s}`] = { serviceName: `service-${s}`, tags: [{ key: 'host.name', type: 'string', value: `host-${s}` }] };
  // Breadth-first ids: parent of i is floor((i-1)/fanout). Children run inside their parent.
  const start = new Float64Array(n);
  const dur = new Float64Array(n);
  start[0] = t0;
  dur[0] = 5_000_000;
  const ids = Array.from({ length: n }, () => hex(8));
  for (let i = 0; i < n; i++) {
    if (i > 0) {
      const p = Math.floor((i - 1) / fanout);
      const k = (i - 1) % fanout;
      const slot = dur[p] / fanout;
      start[i] = start[p] + k * slot + slot * 0.05;
      dur[i] = Math.max(1, slot * 0.9);
    }
    spans.push({
      traceID,
      spanID: ids[i],
      operationName: `operation-${i % 97}`,
      references: i ? [{ refType: 'CHILD_OF', traceID, spanID: ids[Math.floor((i - 1) / fanout)] }] : [],
      startTime: Math.round(start[i]),
      duration: Math.round(dur[i]),
      tags: [
        { key: 'span.kind', type: 'string', value: 'server' },
        { key: 'http.route', type: 'string', value: `/api/v1/item/${i}` },
        ...(i % 1000 === 7 ? [{ key: 'error', type: 'bool', value: true }] : []),
      ],
      logs: [],
      processID: `p${i % services}`,
      warnings: null,
    });
  }
  return { traceID, spans, processes, warnings: null };
}

/** The same shape as bigJaegerTrace, as OTLP spans for sendSpans (sent in batches). */
export function bigOtlpTrace(n, { fanout = 8, services = 12 } = {}) {
  const traceId = hex(16);
  const t0 = BigInt(Date.now() - 60_000) * 1_000_000n;
  const ids = Array.from({ length: n }, () => hex(8));
  const start = new Float64Array(n); // ns offsets
  const dur = new Float64Array(n);
  dur[0] = 5e9;
  const spans = [];
  for (let i = 0; i < n; i++) {
    const p = Math.floor((i - 1) / fanout);
    if (i > 0) {
      const slot = dur[p] / fanout;
      start[i] = start[p] + ((i - 1) % fanout) * slot + slot * 0.05;
      dur[i] = Math.max(1000, slot * 0.9);
    }
    spans.push({
      service: `service-${i % services}`,
      traceId,
      spanId: ids[i],
      parentSpanId: i ? ids[p] : '',
      name: `operation-${i % 97}`,
      kind: 2,
      startNs: t0 + BigInt(Math.round(start[i])),
      endNs: t0 + BigInt(Math.round(start[i] + dur[i])),
      attrs: { 'http.route': `/api/v1/item/${i}` },
      error: i % 1000 === 7,
    });
  }
  return { traceId, spans };
}

const SEVERITY_NUMBER = { TRACE: 1, DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17, FATAL: 21 };

/**
 * Sends log lines over OTLP/HTTP JSON (`POST /v1/logs`). `lines` are { service, timeNs (BigInt),
 * severity ('INFO', 'WARN', ...), body, traceId, spanId, attrs }.
 */
export async function sendLogs(otlp, lines) {
  const byService = new Map();
  for (const l of lines) {
    if (!byService.has(l.service)) byService.set(l.service, []);
    byService.get(l.service).push({
      timeUnixNano: String(l.timeNs),
      observedTimeUnixNano: String(l.timeNs),
      severityNumber: SEVERITY_NUMBER[l.severity] ?? 0,
      severityText: l.severity ?? '',
      body: { stringValue: l.body },
      attributes: Object.entries(l.attrs ?? {}).map(([k, v]) => attr(k, v)),
      traceId: l.traceId ?? '',
      spanId: l.spanId ?? '',
    });
  }
  const body = {
    resourceLogs: [...byService].map(([service, records]) => ({
      resource: { attributes: [attr('service.name', service)] },
      scopeLogs: [{ scope: { name: 'faultline-ui-e2e' }, logRecords: records }],
    })),
  };
  const res = await fetch(`${otlp}/v1/logs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`OTLP logs export failed: ${res.status} ${await res.text()}`);
}

/**
 * Live traffic for the analysis: every `everyMs` a trace gateway-e2e → ledger-e2e (a CLIENT span
 * and the SERVER span it called). For `normalMs` all calls succeed in ~5 ms; after that every
 * ledger call fails (with app.version=2.0 on the failing spans), which the detector should open
 * an incident for, naming the ledger. Returns { failingFrom (ms), stop() }.
 */
export function startTraffic(otlp, { everyMs = 200, normalMs = 80_000 } = {}) {
  const started = Date.now();
  const failingFrom = started + normalMs;
  let stopped = false;
  let n = 0;
  const tick = async () => {
    if (stopped) return;
    const now = Date.now();
    const failing = now >= failingFrom;
    const traceId = hex(16);
    const ms = (x) => BigInt(Math.round(x * 1e6));
    const t0 = now - 20;
    const root = hex(8);
    const client = hex(8);
    const server = hex(8);
    const jitter = (n++ % 5) * 0.3;
    const ledgerMs = 4 + jitter;
    const version = failing ? '2.0' : '1.0';
    const spans = [
      { service: 'gateway-e2e', traceId, spanId: root, name: 'POST /transfer', kind: 2, startNs: ms(t0), endNs: ms(t0 + ledgerMs + 4), attrs: { 'http.route': '/transfer' }, error: failing, errorMessage: 'ledger failed' },
      { service: 'gateway-e2e', traceId, spanId: client, parentSpanId: root, name: 'ledger.Post', kind: 3, startNs: ms(t0 + 1), endNs: ms(t0 + ledgerMs + 3), attrs: { 'rpc.method': 'Post' }, error: failing, errorMessage: 'ledger failed' },
      { service: 'ledger-e2e', traceId, spanId: server, parentSpanId: client, name: 'Post', kind: 2, startNs: ms(t0 + 1.5), endNs: ms(t0 + ledgerMs + 2.5), attrs: { 'app.version': version }, error: failing, errorMessage: 'balance store unavailable' },
    ];
    try {
      await sendSpans(otlp, spans);
    } catch {
      // The server may be shutting down at the end of the run.
    }
  };
  const timer = setInterval(() => void tick(), everyMs);
  timer.unref();
  return {
    failingFrom,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
