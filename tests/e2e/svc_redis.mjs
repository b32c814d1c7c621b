// tests/e2e/svc_redis.mjs: a throwaway redis-server for a test file.
//
// startRedis() runs `redis-server --port N --save '' --appendonly no` on a
// free loopback port in a temporary directory and waits until it answers
// PING.  The returned handle can freeze it (SIGSTOP: its sockets stay open
// and go silent), thaw it (SIGCONT), kill it (SIGKILL), stop it (SIGTERM)
// and start it again on the same port (with no persistence: every key is
// gone, as after a restart of a cache).  Every server still running when
// the file's tests end is stopped and its directory removed.
import { spawn } from 'node:child_process';
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const BIN = process.env.REDIS_SERVER ?? 'redis-server';
const alive = new Set();

after(async () => {
  for (const r of [...alive]) await r.stop();
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// One command in RESP; resolves with the raw reply text, or null when the
// server does not answer within @ms.
export function redisCommand(port, args, ms = 1000) {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    const done = (v) => { clearTimeout(t); sock.destroy(); resolve(v); };
    const t = setTimeout(() => done(null), ms);
    sock.on('error', () => done(null));
    sock.on('connect', () => {
      let cmd = `*${args.length}\r\n`;
      for (const a of args) cmd += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
      sock.write(cmd);
    });
    sock.on('data', (d) => {
      out += d;
      if (out.endsWith('\r\n')) done(out);
    });
  });
}

async function waitPing(port, deadlineMs) {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const r = await redisCommand(port, ['PING'], 500);
    if (r === '+PONG\r\n') return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`redis-server on ${port} did not answer PING`);
}

export async function startRedis() {
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-redis-'));
  const port = await freePort();
  let child = null;
  let exited = null;
  let log = '';

  async function start() {
    child = spawn(BIN, ['--port', String(port), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => { log += d; });
    child.stderr.on('data', (d) => { log += d; });
    const c = child;
    exited = new Promise((resolve) => c.on('exit', () => resolve()));
    await waitPing(port, 10000);
  }

  async function signal(sig) {
    if (child && child.exitCode === null && child.signalCode === null)
      child.kill(sig);
  }

  const handle = {
    port,
    uri: `redis://127.0.0.1:${port}`,
    log: () => log,
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
    async kill() { await signal('SIGCONT'); await signal('SIGKILL'); await exited; },
    async restart() { await handle.kill(); await start(); },
    start,
    command: (args, ms) => redisCommand(port, args, ms),
    async stop() {
      alive.delete(handle);
      await signal('SIGCONT');
      await signal('SIGKILL');
      if (exited) await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  alive.add(handle);
  await start();
  return handle;
}
