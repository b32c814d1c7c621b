// tests/e2e/bounds.test.mjs: what a hostile or careless client can make
// the server hold, and what it is owed, through a real streamhubd with raw
// sockets and real clients.  Each test pushes past a bound and checks the
// answer PROTOCOL.md names for it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { startServer, api, register, Native, API_KEY } from './harness.mjs';

// Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
// default) and stays resident: RSS could not tell it from growth.  A small
// quarantine keeps the RSS bounds meaningful on the sanitizer build too.
process.env.ASAN_OPTIONS = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1',
  'thread_local_quarantine_size_kb=64'].filter(Boolean).join(':');

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

test('a half-closed client gets every response queued for it', { timeout: 120000 }, async () => {
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

// Resolve once @sock has handed all it can to the server: nothing is left
// to write, or what is left has not moved for a second (the server
// stopped reading).
async function settled(sock) {
  let last = -1, still = 0;
  while (still < 10) {
    const b = sock.writableLength;
    if (b === 0) return 0;
    still = b === last ? still + 1 : 0;
    last = b;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

const PINGS = 200000;

// A client that never reads and keeps sending what is answered (native
// `ping`, graphql-ws `ping`, WebSocket ping frames): the answers must not
// pile up in the server past the send buffer.  The client is a raw socket
// writing prebuilt frames, so that it costs little CPU beside the server.
for (const kind of ['native', 'graphql-ws']) {
  test(`a ${kind} client that never reads cannot grow the server`, { timeout: 120000 }, async () => {
    const before = rssKiB(srv);
    const c = kind === 'native' ? await rawWs(srv, '/ws', 'streamhub.v1')
      : await rawWs(srv, '/graphql', 'graphql-transport-ws');
    c.sock.on('error', () => {});
    if (kind === 'graphql-ws') {
      c.sock.write(frame(JSON.stringify({ type: 'connection_init' })));
      assert.equal((await c.read(1))[0].type, 'connection_ack');
    }
    c.sock.pause();                   // never read again
    // Padding makes the pings outweigh what the kernel's socket buffers
    // can hold, so that only the server's reading decides where they go.
    const pad = 'x'.repeat(200);
    const one = Buffer.concat([
      frame(kind === 'native' ? `{"id":1,"op":"ping","pad":"${pad}"}`
        : `{"type":"ping","payload":{"pad":"${pad}"}}`),
      frame(Buffer.alloc(125, 1), 0x9),
    ]);
    const chunk = Buffer.concat(Array(1000).fill(one));
    for (let i = 0; i < PINGS / 1000; i++) c.sock.write(chunk);
    const unsent = await settled(c.sock);
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
    c.sock.destroy();
  });
}

// The same over HTTP/1.1: requests pipelined by a client that never reads
// are parsed only while their responses fit (MAX_PIPELINED unanswered,
// output under the send buffer).
test('an HTTP client that pipelines and never reads cannot grow the server', { timeout: 120000 }, async () => {
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

// ---- in-flight bounds -------------------------------------------------

// A raw WebSocket on @s: resolves with { sock, read } after the 101;
// read(n) waits for n text messages (unmasked server frames).
function rawWs(s, path, protocol) {
  const [host, port] = hostPort(s);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host }, () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${s.address}\r\nUpgrade: websocket\r\n` +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`);
    });
    let buf = Buffer.alloc(0), open = false;
    const msgs = [], waiters = [];
    const wake = () => {
      for (const w of waiters.splice(0)) if (!w()) waiters.push(w);
    };
    sock.on('error', reject);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        if (!head.startsWith('HTTP/1.1 101')) { reject(new Error(head)); return; }
        buf = buf.subarray(end + 4);
        open = true;
        resolve({ sock, read });
      }
      for (;;) {
        if (buf.length < 2) break;
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) break;
        if ((buf[0] & 0x0f) === 1) msgs.push(JSON.parse(buf.subarray(off, off + len).toString()));
        buf = buf.subarray(off + len);
      }
      wake();
    });
    function read(n) {
      return new Promise((res) => {
        const check = () => { if (msgs.length < n) return false; res(msgs.splice(0, n)); return true; };
        if (!check()) waiters.push(check);
      });
    }
  });
}

// One masked client frame (text unless @opcode says otherwise).
function frame(text, opcode = 0x1) {
  const p = Buffer.from(text);
  const b0 = 0x80 | opcode;
  const head = p.length < 126 ? Buffer.from([b0, 0x80 | p.length])
    : Buffer.from([b0, 0x80 | 126, p.length >> 8, p.length & 0xff]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(p.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

function pipelined(s, text) {
  const [host, port] = hostPort(s);
  return new Promise((resolve, reject) => {
    let out = '';
    const sock = net.connect({ port, host, allowHalfOpen: true }, () => sock.end(text));
    sock.on('data', (d) => { out += d.toString('latin1'); });
    sock.on('error', reject);
    sock.on('close', () => resolve(responses(out)));
  });
}

test('requests past the global in-flight bound are answered rate_limited', { timeout: 120000 }, async () => {
  const s = await startServer({ args: ['--workers', '1', '--workers.max-in-flight', '2'] });
  try {
    // Seven GraphQL queries and seven REST reads in one write reach the
    // loop at once (under the 16 a connection may pipeline): two go to the
    // workers, the rest are refused.
    const out = await pipelined(s, Array.from({ length: 7 }, () => gqlPost('{ __typename }') +
      'GET /api/v1/streams/live HTTP/1.1\r\nHost: x\r\n\r\n').join(''));
    assert.equal(out.length, 14);
    assert.deepEqual(out.map((r) => r.status), [200, 200, ...Array(12).fill(429)]);
    for (const [i, r] of out.entries()) {
      if (i < 2) continue;
      assert.match(r.head, /\r\nRetry-After: 1(\r|$)/i);
      const b = JSON.parse(r.body);
      if (i % 2 === 0) {
        assert.equal(b.errors[0].extensions.code, 'RATE_LIMITED');
        assert.equal(b.errors[0].extensions.retryAfter, 1);
      } else {
        assert.equal(b.error.code, 'rate_limited');
        assert.equal(b.error.retryAfter, 1);
      }
    }
    // Once answered, the bound is free again.
    assert.deepEqual((await pipelined(s, gqlPost('{ __typename }'))).map((r) => r.status), [200]);
  } finally {
    await s.stop();
  }
});

test('requests past the per-connection in-flight bound are answered rate_limited', { timeout: 120000 }, async () => {
  const s = await startServer({ args: ['--workers', '1',
    '--workers.max-in-flight-per-connection', '2'] });
  try {
    // HTTP: ten GraphQL queries in one write reach the loop at once; the
    // connection may have two on the workers, the rest are refused.
    const [host, port] = hostPort(s);
    const raw = await new Promise((resolve, reject) => {
      let out = '';
      const sock = net.connect({ port, host, allowHalfOpen: true }, () => {
        sock.end(Array.from({ length: 10 }, () => gqlPost('{ __typename }')).join(''));
      });
      sock.on('data', (d) => { out += d.toString('latin1'); });
      sock.on('error', reject);
      sock.on('close', () => resolve(out));
    });
    const out = responses(raw);
    assert.equal(out.length, 10);
    assert.deepEqual(out.map((r) => r.status), [200, 200, 429, 429, 429, 429, 429, 429, 429, 429]);
    for (const r of out.slice(2)) {
      assert.match(r.head, /\r\nRetry-After: 1(\r|$)/i);
      const e = JSON.parse(r.body).errors[0];
      assert.equal(e.extensions.code, 'RATE_LIMITED');
      assert.equal(e.extensions.retryAfter, 1);
    }

    // Native: chat.send runs on a worker; ten in one write.
    const u = await register(s.url, 'bf');
    const st = await api(s.url, 'POST', '/api/v1/streams', {
      token: u.token, body: { title: 'bounds' } });
    assert.equal(st.status, 201, JSON.stringify(st.body));
    const n = await rawWs(s, '/ws', 'streamhub.v1');
    const cmds = [frame(JSON.stringify({ id: 1, op: 'auth', token: u.token }))];
    for (let i = 2; i <= 11; i++)
      cmds.push(frame(JSON.stringify({ id: i, op: 'chat.send', streamId: st.body.id, text: `m${i}` })));
    n.sock.write(Buffer.concat(cmds));
    const replies = (await n.read(11)).sort((a, b) => a.id - b.id);
    assert.equal(replies[0].ok, true);
    assert.deepEqual(replies.slice(1, 3).map((r) => r.ok), [true, true]);
    for (const r of replies.slice(3)) {
      assert.equal(r.error?.code, 'rate_limited', JSON.stringify(r));
      assert.equal(r.error.retryAfter, 1);
    }
    n.sock.destroy();

    // graphql-ws: ten operations started in one write.
    const g = await rawWs(s, '/graphql', 'graphql-transport-ws');
    g.sock.write(frame(JSON.stringify({ type: 'connection_init' })));
    assert.equal((await g.read(1))[0].type, 'connection_ack');
    g.sock.write(Buffer.concat(Array.from({ length: 10 }, (_, i) => frame(JSON.stringify({
      id: `q${i}`, type: 'subscribe', payload: { query: '{ __typename }' } })))));
    // Two run (next + complete each), eight are refused (error).
    const msgs = await g.read(2 * 2 + 8);
    const errors = msgs.filter((m) => m.type === 'error');
    assert.equal(errors.length, 8, JSON.stringify(msgs));
    for (const e of errors) {
      assert.equal(e.payload[0].extensions.code, 'RATE_LIMITED');
      assert.equal(e.payload[0].extensions.retryAfter, 1);
    }
    assert.deepEqual(msgs.filter((m) => m.type === 'complete').map((m) => m.id).sort(), ['q0', 'q1']);
    g.sock.destroy();
  } finally {
    await s.stop();
  }
});

// ---- presence -----------------------------------------------------------

async function presenceStreams(s) {
  const r = await fetch(`${s.url}/metrics`);
  const m = /^streamhub_presence_streams (\S+)$/m.exec(await r.text());
  assert.ok(m, 'no streamhub_presence_streams gauge');
  return Number(m[1]);
}

test('presence counts bounded streams, per connection and per node', { timeout: 120000 }, async () => {
  const s = await startServer({ args: ['--presence.max-streams', '50',
    '--presence.max-streams-per-connection', '32'] });
  try {
    const a = await Native.open(s.wsUrl);
    const b = await Native.open(s.wsUrl);
    // Any suffix is a valid channel, but only stream ids (UUIDs) count.
    for (let i = 0; i < 20; i++) {
      const r = await a.send('subscribe', { channel: `chat:junk-${i}` });
      assert.equal(r.ok, true, JSON.stringify(r));
    }
    assert.equal(await presenceStreams(s), 0);
    // One connection counts for at most 32 streams; both of a stream's
    // channels count once.
    for (let i = 0; i < 40; i++) {
      const id = randomUUID();
      for (const ch of [`chat:${id}`, `stream:${id}`]) {
        const r = await a.send('subscribe', { channel: ch });
        assert.equal(r.ok, true, JSON.stringify(r));
      }
    }
    assert.equal(await presenceStreams(s), 32);
    // The node counts at most 50.
    for (let i = 0; i < 40; i++) {
      const r = await b.send('subscribe', { channel: `chat:${randomUUID()}` });
      assert.equal(r.ok, true, JSON.stringify(r));
    }
    assert.equal(await presenceStreams(s), 50);
    await a.close();
    await b.close();
    // Reported as zero at the next tick, then forgotten.
    while (await presenceStreams(s) !== 0)
      await new Promise((r) => setTimeout(r, 200));
  } finally {
    await s.stop();
  }
});

// ---- app: channel rights (app-subscribe) ------------------------------

const APP_RIGHTS = {
  // mode: expected reply for [anonymous, authenticated user, API key,
  // wrong key on an anonymous connection]
  anyone: ['ok', 'ok', 'ok', 'ok'],
  authenticated: ['unauthenticated', 'ok', 'ok', 'unauthenticated'],
  apikey: ['unauthenticated', 'forbidden', 'ok', 'unauthenticated'],
};

for (const [mode, want] of Object.entries(APP_RIGHTS)) {
  test(`app-subscribe = ${mode}`, { timeout: 120000 }, async () => {
    const s = mode === 'anyone' ? srv  // the default
      : await startServer({ args: ['--app-subscribe', mode] });
    try {
      const u = await register(s.url, 'ap');
      const anon = await Native.open(s.wsUrl);
      const user = await Native.open(s.wsUrl);
      assert.equal((await user.send('auth', { token: u.token })).ok, true);
      const keyed = await Native.open(s.wsUrl);
      const wrong = await Native.open(s.wsUrl);
      const ch = `app:rights-${mode}`;
      const got = [
        await anon.send('subscribe', { channel: ch }),
        await user.send('subscribe', { channel: ch }),
        await keyed.send('subscribe', { channel: ch, apiKey: API_KEY }),
        await wrong.send('subscribe', { channel: ch, apiKey: 'not-the-key' }),
      ].map((r) => (r.ok ? 'ok' : r.error.code));
      assert.deepEqual(got, want);
      // Other channels keep their own rules whatever the mode.
      assert.equal((await anon.send('subscribe', { channel: 'live' })).ok, true);
      // The key holder's subscription delivers.
      const pub = await api(s.url, 'POST', '/api/v1/publish', {
        apiKey: API_KEY, body: { channel: ch, data: { mode } } });
      assert.equal(pub.status, 200, JSON.stringify(pub.body));
      const [ev] = await keyed.waitEvents(1, (e) => e.channel === ch);
      assert.deepEqual(ev.event.data, { mode });
      for (const c of [anon, user, keyed, wrong]) await c.close();
    } finally {
      if (s !== srv) await s.stop();
    }
  });
}

test('app-subscribe takes only its three values', { timeout: 120000 }, async () => {
  await assert.rejects(startServer({ args: ['--app-subscribe', 'everyone'] }),
    /app-subscribe/);
});
