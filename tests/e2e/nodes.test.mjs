// tests/e2e/nodes.test.mjs: what lets several streamhubd processes act as
// one service on one machine, without Redis or PostgreSQL: two processes
// sharing one port (listen-reuseport), and the client address taken from
// a reverse proxy's headers only when the TCP peer is a trusted proxy
// (trusted-proxies), never from any client's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer, BIN, API_KEY, JWT_SECRET } from './harness.mjs';
import { startNginx } from './svc_nginx.mjs';

// A loopback port nobody listens on now.
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// GET @p on a fresh connection (no keep-alive pool, so each request is a
// new TCP connection the kernel places); resolves { status, headers }.
function freshGet(port, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false,
                           headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode,
                                    headers: res.headers }));
    });
    req.on('error', reject);
  });
}

// POST /api/v1/auth/login with an empty object: the per-IP register/login
// limiter (10 a minute) answers before the body is looked at, so each
// call is 400 (let through) or 429 (limited).  Resolves the status.
function loginAttempt(port, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: '/api/v1/auth/login', method: 'POST',
      agent: false, headers: { 'content-type': 'application/json', ...headers },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

// The node that answered: request ids start with 8 hex digits drawn at
// random when the gateway starts, one prefix per process.
const nodeOf = (res) => res.headers['x-request-id'].slice(0, 8);

test('listen-reuseport: two processes on one port both serve', async () => {
  const port = await freePort();
  const listen = `127.0.0.1:${port}`;
  const a = await startServer({ listen, args: ['--listen-reuseport', 'true'] });
  const b = await startServer({ listen, args: ['--listen-reuseport', 'true'] });
  assert.equal(a.address, listen);
  assert.equal(b.address, listen);

  // Each new connection lands on one of the two listeners (the kernel
  // hashes its address and port); keep connecting until both answered.
  const seen = new Set();
  for (let i = 0; i < 500 && seen.size < 2; i++) {
    const r = await freshGet(port, '/healthz');
    assert.equal(r.status, 200);
    seen.add(nodeOf(r));
  }
  assert.equal(seen.size, 2, 'connections reached only one process');

  // One process stopped, the other takes every connection.
  await a.stop();
  const left = new Set();
  for (let i = 0; i < 20; i++) {
    const r = await freshGet(port, '/healthz');
    assert.equal(r.status, 200);
    left.add(nodeOf(r));
  }
  assert.equal(left.size, 1);
  await b.stop();
});

test('without listen-reuseport a second process cannot take the port', async () => {
  const port = await freePort();
  const a = await startServer({ listen: `127.0.0.1:${port}`,
                                args: ['--listen-reuseport', 'true'] });
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-e2e-'));
  try {
    const child = spawn(BIN, [
      '--listen', `127.0.0.1:${port}`,
      '--store', `sqlite:${path.join(dir, 'b.db')}`,
      '--jwt-secret', JWT_SECRET, '--api-key', API_KEY,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.match(stderr, /cannot bind 127\.0\.0\.1:\d+: Address already in use/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await a.stop();
});

test('trusted-proxies: a malformed list is refused naming the key', async () => {
  const child = spawn(BIN, ['--trusted-proxies', '10.0.0.0/8, 10.1.2.3/33'],
                      { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 2);
  assert.match(stderr, /trusted-proxies: '10\.1\.2\.3\/33' is not an IP address or CIDR block/);
});

test('an untrusted peer\'s forwarding headers are ignored: its own address is limited', async () => {
  // No trusted-proxies: the default.
  const s = await startServer({ logLevel: 'info' });
  const port = Number(s.address.split(':')[1]);
  const statuses = [];
  for (let i = 0; i < 20; i++) {
    statuses.push(await loginAttempt(port, {
      'x-forwarded-for': `198.51.100.${i + 1}`,
      'x-real-ip': `198.51.100.${i + 1}`,
    }));
  }
  // Ten a minute for the one real peer, whatever the headers claim.
  assert.deepEqual(statuses.slice(0, 10), Array(10).fill(400));
  assert.ok(statuses.includes(429), `never limited: ${statuses}`);
  await s.stop();
  assert.doesNotMatch(s.stderr(), /198\.51\.100\./);
  assert.match(s.stderr(), /"peer":"127\.0\.0\.1"/);
});

test('a trusted proxy\'s X-Forwarded-For names the client: limits and logs follow it', async () => {
  const s = await startServer({
    logLevel: 'info', args: ['--trusted-proxies', '10.0.0.0/8, 127.0.0.0/8'],
  });
  const port = Number(s.address.split(':')[1]);

  // Twenty clients behind the proxy, one attempt each: none is limited,
  // though all come over one TCP peer.
  for (let i = 0; i < 20; i++) {
    assert.equal(await loginAttempt(port, {
      'x-forwarded-for': `203.0.113.${i + 1}`,
    }), 400, `client ${i + 1}`);
  }

  // One client, spoofing the left of the list each time: the rightmost
  // hop not trusted (what the proxy itself appended, 192.0.2.77) is the
  // client, past a trusted inner proxy (10.1.1.1), so it is limited.
  const spoofed = [];
  for (let i = 0; i < 20; i++) {
    spoofed.push(await loginAttempt(port, {
      'x-forwarded-for': `198.51.100.${i + 1}, 192.0.2.77, 10.1.1.1`,
    }));
  }
  assert.deepEqual(spoofed.slice(0, 10), Array(10).fill(400));
  assert.ok(spoofed.includes(429), `spoofed hops escaped the limit: ${spoofed}`);

  // Without X-Forwarded-For, X-Real-IP.
  assert.equal(await loginAttempt(port, { 'x-real-ip': '203.0.113.200' }), 400);
  // Several X-Forwarded-For fields are one list: the last one's right end.
  const two = await freshGet(port, '/healthz', {
    'x-forwarded-for': ['192.0.2.1', '2001:db8::5'],
  });
  assert.equal(two.status, 200);
  // A hop that cannot be read: the peer's own address stays.
  await freshGet(port, '/healthz', { 'x-forwarded-for': '203.0.113.9, unknown' });

  await s.stop();
  const log = s.stderr().split('\n').filter((l) => l.includes('"msg":"request"'))
    .map((l) => JSON.parse(l));
  const peers = log.map((e) => e.peer);
  assert.ok(peers.includes('203.0.113.1'));
  assert.ok(peers.includes('192.0.2.77'));
  assert.ok(peers.includes('203.0.113.200'));
  assert.ok(peers.includes('2001:db8::5'));
  assert.ok(!peers.some((p) => p.startsWith('198.51.100.')), 'a spoofed hop was believed');
  const health = log.filter((e) => e.path === '/healthz');
  assert.deepEqual(health.map((e) => e.peer), ['2001:db8::5', '127.0.0.1']);
  assert.ok(log.every((e) => e.proxy === '127.0.0.1'));
});

test('nginx (deploy/nginx/streamhub.conf) in front of two nodes: both serve, the client address crosses it', async () => {
  const trust = ['--trusted-proxies', '127.0.0.1'];
  const a = await startServer({ logLevel: 'info', args: trust });
  const b = await startServer({ logLevel: 'info', args: trust });
  const ngx = await startNginx({ upstreams: [a.address, b.address] });

  // Requests from 127.0.0.5 (not a trusted proxy), each claiming another
  // address: round robin spreads them; the nodes see the real client.
  const seen = new Set();
  for (let i = 0; i < 10; i++) {
    const r = await new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: ngx.port, path: '/healthz',
                             agent: false, localAddress: '127.0.0.5',
                             headers: { 'x-forwarded-for': `198.51.100.${i}` } },
                           (res) => { res.resume(); res.on('end', () => resolve(res)); });
      req.on('error', reject);
    });
    assert.equal(r.statusCode, 200);
    seen.add(nodeOf(r));
  }
  assert.equal(seen.size, 2, 'no sticky sessions: both nodes answer');

  // Both WebSocket doors upgrade through it.
  const first = (url, proto, hello) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, proto, { localAddress: '127.0.0.5' });
    ws.once('open', () => ws.send(JSON.stringify(hello)));
    ws.once('message', (d) => { resolve(JSON.parse(d.toString())); ws.close(); });
    ws.once('error', reject);
  });
  const pong = await first(`${ngx.wsUrl}/ws`, 'streamhub.v1', { id: 1, op: 'ping' });
  assert.equal(pong.ok, true);
  const ack = await first(`${ngx.wsUrl}/graphql`, 'graphql-transport-ws',
                          { type: 'connection_init' });
  assert.equal(ack.type, 'connection_ack');

  await ngx.stop();
  await a.stop();
  await b.stop();
  const log = (a.stderr() + b.stderr()).split('\n')
    .filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l));
  assert.ok(log.length >= 12);
  for (const e of log) {
    assert.equal(e.peer, '127.0.0.5');
    assert.equal(e.proxy, '127.0.0.1');
  }
});
