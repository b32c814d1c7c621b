// tests/e2e/bounds.test.mjs: what a hostile or careless client can make
// the server hold, and what it is owed, through a real streamhubd with raw
// sockets and real clients.  Each test pushes past a bound and checks the
// answer PROTOCOL.md names for it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startServer, api, register, Native, API_KEY } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer();
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
  assert.doesNotMatch(srv.stderr(), /AddressSanitizer|runtime error:|LeakSanitizer/);
});

function hostPort(s) {
  const i = s.address.lastIndexOf(':');
  return [s.address.slice(0, i), Number(s.address.slice(i + 1))];
}

// Send @bytes in one write, then FIN (half-close); resolve with all that
// comes back until the server closes.
function halfClosed(s, bytes) {
  const [host, port] = hostPort(s);
  return new Promise((resolve, reject) => {
    let out = Buffer.alloc(0);
    const sock = net.connect({ port, host, allowHalfOpen: true }, () => {
      sock.end(bytes);
    });
    sock.on('data', (d) => { out = Buffer.concat([out, d]); });
    sock.on('error', reject);
    sock.on('close', () => resolve(out.toString('latin1')));
  });
}

// Split a byte stream of HTTP/1.1 responses (Content-Length framed).
function responses(text) {
  const out = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end);
    const m = /content-length: (\d+)/i.exec(head);
    const len = m ? Number(m[1]) : 0;
    out.push({ status: Number(head.split(' ')[1]), head,
               body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

function gqlPost(query) {
  const body = JSON.stringify({ query });
  return `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

test('a half-closed client gets every response queued for it', async () => {
  const reqs = [];
  for (let i = 0; i < 6; i++) {
    reqs.push(gqlPost('{ __typename }'));
    reqs.push('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    reqs.push('GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n');
  }
  const out = responses(await halfClosed(srv, reqs.join('')));
  assert.equal(out.length, reqs.length, `got ${out.length} of ${reqs.length}`);
  for (let i = 0; i < out.length; i++) {
    assert.equal(out[i].status, 200, out[i].head);
    if (i % 3 === 0)
      assert.deepEqual(JSON.parse(out[i].body), { data: { __typename: 'Query' } });
  }
});

function rssKiB(s) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${s.child.pid}/status`, 'utf8'));
  return Number(m[1]);
}

// Resolve once @ws has handed all it can to the server: its buffered
// amount is 0, or has not moved for a second (the server stopped reading).
async function settled(ws) {
  let last = -1, still = 0;
  while (still < 10) {
    const b = ws.bufferedAmount;
    if (b === 0) return 0;
    still = b === last ? still + 1 : 0;
    last = b;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

const PINGS = 200000;

// A client that never reads and keeps sending commands that are answered
// (native `ping`, graphql-ws `ping`, WebSocket ping frames): the answers
// must not pile up in the server past the send buffer.
for (const kind of ['native', 'graphql-ws']) {
  test(`a ${kind} client that never reads cannot grow the server`, async () => {
    const before = rssKiB(srv);
    const ws = kind === 'native'
      ? new WebSocket(`${srv.wsUrl}/ws`, 'streamhub.v1')
      : new WebSocket(`${srv.wsUrl}/graphql`, 'graphql-transport-ws');
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.on('error', () => {});
    if (kind === 'graphql-ws') {
      const acked = new Promise((r) => ws.once('message', r));
      ws.send(JSON.stringify({ type: 'connection_init' }));
      await acked;
    }
    ws._socket.pause();               // never read again
    // Padding makes the pings outweigh what the kernel's socket buffers
    // can hold, so that only the server's reading decides where they go.
    const pad = 'x'.repeat(200);
    for (let i = 1; i <= PINGS; i++) {
      if (kind === 'native') ws.send(`{"id":${i},"op":"ping","pad":"${pad}"}`);
      else ws.send(`{"type":"ping","payload":{"pad":"${pad}"}}`);
      ws.ping(Buffer.alloc(125, 1));
    }
    const unsent = await settled(ws);
    const grown = rssKiB(srv) - before;
    console.log(`${kind}: RSS grew ${grown} KiB after ${PINGS} unread pings ` +
                `(${unsent} bytes not taken by the server)`);
    // A control client is served meanwhile.
    const ctl = await Native.open(srv.wsUrl);
    const r = await ctl.send('ping');
    assert.equal(r.ok, true);
    await ctl.close();
    assert.ok(unsent > 0, 'the server read every ping: nothing held it back');
    assert.ok(grown < 16 * 1024, `server RSS grew by ${grown} KiB`);
    ws.terminate();
  });
}

// The same over HTTP/1.1: requests pipelined by a client that never reads
// are parsed only while their responses fit (MAX_PIPELINED unanswered,
// output under the send buffer).
test('an HTTP client that pipelines and never reads cannot grow the server', async () => {
  const before = rssKiB(srv);
  const [host, port] = hostPort(srv);
  const sock = net.connect({ port, host });
  await new Promise((r) => sock.once('connect', r));
  sock.on('error', () => {});
  sock.pause();
  const one = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ' + 'x'.repeat(300) + '\r\n\r\n';
  const chunk = one.repeat(1000);
  for (let i = 0; i < 100; i++) sock.write(chunk);
  let last = -1, still = 0;
  while (still < 10 && sock.writableLength > 0) {
    still = sock.writableLength === last ? still + 1 : 0;
    last = sock.writableLength;
    await new Promise((r) => setTimeout(r, 100));
  }
  const grown = rssKiB(srv) - before;
  console.log(`http: RSS grew ${grown} KiB after 100000 unread pipelined requests ` +
              `(${sock.writableLength} bytes not taken by the server)`);
  const h = await api(srv.url, 'GET', '/healthz');
  assert.equal(h.status, 200);
  assert.ok(sock.writableLength > 0, 'the server read every request');
  assert.ok(grown < 16 * 1024, `server RSS grew by ${grown} KiB`);
  sock.destroy();
});
