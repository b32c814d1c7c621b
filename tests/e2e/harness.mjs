// tests/e2e/harness.mjs: start a real streamhubd for a test file.
//
// startServer() spawns the built server (STREAMHUB_BIN, default
// build/server/streamhubd) on a free loopback port with a fresh SQLite
// store in a temporary directory, waits for its "streamhubd listening on
// HOST:PORT" line, and returns helpers to reach it.  stop() sends SIGTERM
// and resolves with the exit code; the temporary directory goes with it
// unless keepDir is set (restart tests reuse the store).
//
// A server that died of itself fails the test: stop() throws when its
// stderr holds a sanitizer report (ASan, LSan, UBSan), when it exited with
// a non-zero code, or when a signal other than the one a test sent
// (SIGTERM, SIGINT, SIGKILL) ended it, e.g. SIGSEGV or the SIGABRT of
// ASAN_OPTIONS=abort_on_error=1.  Every server still running when the
// file's tests end is stopped and checked the same way.
import { spawn } from 'node:child_process';
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.STREAMHUB_BIN ??
  path.resolve(here, '../../build/server/streamhubd');
export const JWT_SECRET = 'e2e-secret-0123456789abcdef0123456789';
export const API_KEY = 'e2e-api-key-0123456789';

// What ends a server on purpose; any other signal is a crash.
const SENT_SIGNALS = new Set(['SIGTERM', 'SIGINT', 'SIGKILL']);
const SANITIZER_REPORT =
  /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

// Why the exit @r with @stderr is abnormal, or null.
function abnormalExit(r, stderr) {
  if (SANITIZER_REPORT.test(stderr)) return 'a sanitizer report';
  if (r.signal && !SENT_SIGNALS.has(r.signal)) return `signal ${r.signal}`;
  if (r.code !== null && r.code !== 0) return `exit code ${r.code}`;
  return null;
}

const running = new Set();   // the stop() of every server not yet stopped
after(async () => {
  const errors = [];
  for (const stop of [...running]) {
    try { await stop(); } catch (e) { errors.push(e.message); }
  }
  if (errors.length) throw new Error(errors.join('\n'));
});

export async function startServer(opts = {}) {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'streamhub-e2e-'));
  const args = [
    '--listen', opts.listen ?? '127.0.0.1:0',
    '--store', `sqlite:${path.join(dir, 'streamhub.db')}`,
    '--jwt-secret', JWT_SECRET,
    '--api-key', API_KEY,
    '--log-level', opts.logLevel ?? 'warn',
    ...(opts.args ?? []),
  ];
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const address = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(
      `streamhubd did not start in 15 s: ${stderr}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /streamhubd listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`streamhubd exited ${code}: ${stderr}`));
    });
  });
  const url = `http://${address}`;
  running.add(stop);
  return {
    dir,
    address,
    url,
    wsUrl: `ws://${address}`,
    child,
    stderr: () => stderr,
    exited,
    stop,
  };

  async function stop(signal = 'SIGTERM') {
    running.delete(stop);
    if (child.exitCode === null && child.signalCode === null)
      child.kill(signal);
    const r = await exited;
    if (!opts.keepDir && !opts.dir)
      rmSync(dir, { recursive: true, force: true });
    const why = abnormalExit(r, stderr);
    if (why)
      throw new Error(`streamhubd (${address}) died abnormally: ${why} ` +
                      `(${JSON.stringify(r)}); stderr:\n${stderr.slice(-6000)}`);
    return r;
  }
}

// JSON over HTTP: returns { status, headers, body (parsed or text) }.
// @timeoutMs (optional): fail instead of waiting on a server that hangs.
export async function api(base, method, p, { body, token, apiKey, headers, timeoutMs } = {}) {
  const h = { ...(headers ?? {}) };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (token) h.authorization = `Bearer ${token}`;
  if (apiKey) h.authorization = `Apikey ${apiKey}`;
  const res = await fetch(base + p, {
    method,
    headers: h,
    signal: timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
    body: body === undefined ? undefined
      : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, body: parsed };
}

let userSeq = 0;
// Register a fresh user; returns { token, refreshToken, user }.
export async function register(base, prefix = 'u') {
  const name = `${prefix}${process.pid % 10000}_${++userSeq}`.slice(0, 25);
  const r = await api(base, 'POST', '/api/v1/auth/register', {
    body: { username: name, email: `${name}@example.com`, password: 'password-123' },
  });
  if (r.status !== 201 && r.status !== 200)
    throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return { token: r.body.accessToken, refreshToken: r.body.refreshToken, user: r.body.user };
}

// A native-protocol client: commands with ids, replies matched by id,
// events collected in order.
export class Native {
  static open(wsUrl, { protocol = 'streamhub.v1', headers } = {}) {
    const c = new Native();
    c.ws = new WebSocket(`${wsUrl}/ws`, protocol, { headers });
    c.events = [];
    c.pending = new Map();
    c.waiters = [];
    c.nextId = 1;
    c.closed = new Promise((resolve) => {
      c.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    c.ws.on('error', () => {});
    c.ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.id !== undefined && msg.id !== null && c.pending.has(msg.id)) {
        c.pending.get(msg.id)(msg);
        c.pending.delete(msg.id);
        return;
      }
      c.events.push(msg);
      c.waiters = c.waiters.filter((w) => !w());
    });
    return new Promise((resolve, reject) => {
      c.ws.once('open', () => resolve(c));
      c.ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      c.ws.once('error', reject);
    });
  }

  send(op, fields = {}) {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, op, ...fields }));
    });
  }

  // Resolve once `n` events (matching `pred`) have arrived.
  waitEvents(n, pred = () => true, ms = 5000) {
    const matching = () => this.events.filter(pred);
    return new Promise((resolve, reject) => {
      const check = () => {
        if (matching().length >= n) { resolve(matching()); return true; }
        return false;
      };
      if (check()) return;
      const t = setTimeout(() => reject(new Error(
        `timeout waiting for ${n} events, have ${JSON.stringify(matching())}`)), ms);
      this.waiters.push(() => { if (check()) { clearTimeout(t); return true; } return false; });
    });
  }

  close() { this.ws.close(); return this.closed; }
}
