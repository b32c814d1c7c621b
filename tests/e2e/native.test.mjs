// tests/e2e/native.test.mjs: the native protocol on /ws (PROTOCOL.md),
// with npm's ws as the client and raw sockets for malformed frames.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, api, register, Native, API_KEY } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ args: ['--chat.rate-limit', '5', '--chat.rate-window-seconds', '60'] });
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

// A raw WebSocket: handshake by hand, then arbitrary bytes.
function rawSocket(address, path = '/ws', protocol = 'streamhub.v1') {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), host, () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${address}\r\nUpgrade: websocket\r\n` +
        'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`);
    });
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      const head = buf.subarray(0, end).toString();
      if (!head.startsWith('HTTP/1.1 101')) { reject(new Error(head)); return; }
      s.rest = buf.subarray(end + 4);
      resolve(s);
    };
    s.on('data', onData);
    s.on('error', reject);
  });
}

function frame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
  const p = Buffer.from(payload);
  const head = [((fin ? 0x80 : 0) | rsv | opcode), (mask ? 0x80 : 0)];
  let ext = Buffer.alloc(0);
  if (p.length < 126) head[1] |= p.length;
  else if (p.length < 65536) { head[1] |= 126; ext = Buffer.alloc(2); ext.writeUInt16BE(p.length); }
  else { head[1] |= 127; ext = Buffer.alloc(8); ext.writeBigUInt64BE(BigInt(p.length)); }
  const key = mask ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0);
  const body = Buffer.from(p);
  if (mask) for (let i = 0; i < body.length; i++) body[i] ^= key[i % 4];
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

// Read server frames until a close frame; resolve with its code.
function closeCode(s) {
  return new Promise((resolve) => {
    let buf = s.rest ?? Buffer.alloc(0);
    const parse = () => {
      while (buf.length >= 2) {
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const op = buf[0] & 0x0f;
        const payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (op === 8) { resolve(payload.length >= 2 ? payload.readUInt16BE(0) : 1005); return; }
      }
    };
    s.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
    s.on('close', () => resolve(-1));
    parse();
  });
}

test('auth, subscribe, publish, unsubscribe and errors that keep the socket', async () => {
  const alice = await register(srv.url, 'na');
  const c = await Native.open(srv.wsUrl);
  const bad = await c.send('auth', { token: 'not.a.jwt' });
  assert.equal(bad.error.code, 'unauthenticated');
  const ok = await c.send('auth', { token: alice.token });
  assert.equal(ok.ok, true);
  assert.equal(ok.result.user.id, alice.user.id);
  assert.equal(ok.result.user.username, alice.user.username);
  assert.ok(ok.result.client);

  const sub = await c.send('subscribe', { channel: 'app:e2e' });
  assert.equal(sub.ok, true);
  assert.equal(typeof sub.result.epoch, 'string');
  assert.equal(sub.result.recovered, false);
  const dup = await c.send('subscribe', { channel: 'app:e2e' });
  assert.equal(dup.error.code, 'conflict');

  const pub = await api(srv.url, 'POST', '/api/v1/publish', {
    apiKey: API_KEY, body: { channel: 'app:e2e', data: { n: 1 } },
  });
  assert.equal(pub.status, 200, JSON.stringify(pub.body));
  const [ev] = await c.waitEvents(1);
  assert.equal(ev.channel, 'app:e2e');
  assert.equal(ev.offset, sub.result.offset + 1);
  assert.deepEqual(ev.event.data, { n: 1 });
  assert.equal(ev.id, undefined);

  // Publishing over the socket needs the API key (or an admin).
  const denied = await c.send('publish', { channel: 'app:e2e', data: 1 });
  assert.equal(denied.error.code, 'forbidden');
  const viaKey = await c.send('publish', { channel: 'app:e2e', data: { n: 2 }, apiKey: API_KEY });
  assert.equal(viaKey.ok, true);
  await c.waitEvents(2);

  for (const [op, fields, code] of [
    ['nope', {}, 'bad_request'],
    ['subscribe', {}, 'bad_request'],
    ['subscribe', { channel: 'chat:bad channel' }, 'bad_request'],
    ['subscribe', { channel: 'user:someone-else' }, 'forbidden'],
    ['unsubscribe', { channel: 'app:never' }, 'not_found'],
    ['chat.send', { streamId: 'x' }, 'bad_request'],
  ]) {
    const r = await c.send(op, fields);
    assert.equal(r.error?.code, code, `${op} ${JSON.stringify(fields)} -> ${JSON.stringify(r)}`);
  }
  const ping = await c.send('ping');
  assert.equal(ping.ok, true);
  const un = await c.send('unsubscribe', { channel: 'app:e2e' });
  assert.equal(un.ok, true);
  await c.close();
});

test('recovery with since: exactly the missed events, then live ones', async () => {
  const c = await Native.open(srv.wsUrl);
  const first = await c.send('subscribe', { channel: 'app:rec' });
  for (let i = 0; i < 3; i++)
    await api(srv.url, 'POST', '/api/v1/publish', { apiKey: API_KEY, body: { channel: 'app:rec', data: { i } } });
  const got = await c.waitEvents(3);
  const last = got[2];
  await c.close();

  for (let i = 3; i < 6; i++)
    await api(srv.url, 'POST', '/api/v1/publish', { apiKey: API_KEY, body: { channel: 'app:rec', data: { i } } });
  const d = await Native.open(srv.wsUrl);
  const r = await d.send('subscribe', { channel: 'app:rec', since: { epoch: first.result.epoch, offset: last.offset } });
  assert.equal(r.result.recovered, true);
  assert.equal(r.result.epoch, first.result.epoch);
  const missed = await d.waitEvents(3);
  assert.deepEqual(missed.map((e) => e.event.data.i), [3, 4, 5]);
  assert.deepEqual(missed.map((e) => e.offset), [last.offset + 1, last.offset + 2, last.offset + 3]);
  await api(srv.url, 'POST', '/api/v1/publish', { apiKey: API_KEY, body: { channel: 'app:rec', data: { i: 6 } } });
  const all = await d.waitEvents(4);
  assert.equal(all[3].event.data.i, 6);
  assert.equal(all.length, 4, 'no duplicate');

  const wrongEpoch = await d.send('subscribe', { channel: 'app:rec2', since: { epoch: 'nope', offset: 1 } });
  assert.equal(wrongEpoch.result.recovered, false);
  await d.close();
});

test('chat.send through the socket, rate limited per user', async () => {
  const bob = await register(srv.url, 'nb');
  const start = await api(srv.url, 'POST', '/api/v1/streams', { token: bob.token, body: { title: 'native chat' } });
  assert.equal(start.status, 201, JSON.stringify(start.body));
  const streamId = start.body.id;
  const c = await Native.open(srv.wsUrl);
  await c.send('auth', { token: bob.token });
  const sub = await c.send('subscribe', { channel: `chat:${streamId}` });
  assert.equal(sub.ok, true);
  const sent = await c.send('chat.send', { streamId, text: 'hello\nworld' });
  assert.equal(sent.ok, true, JSON.stringify(sent));
  assert.equal(sent.result.message.text, 'helloworld');
  assert.equal(sent.result.message.offset, sub.result.offset + 1);
  const [ev] = await c.waitEvents(1, (e) => e.event?.type === 'chat.message');
  assert.equal(ev.event.data.id, sent.result.message.id);
  let limited;
  for (let i = 0; i < 10 && !limited; i++) {
    const r = await c.send('chat.send', { streamId, text: `m${i}` });
    if (r.error) limited = r.error;
  }
  assert.equal(limited?.code, 'rate_limited');
  assert.ok(limited.retryAfter >= 1);
  await c.close();
});

test('close codes for broken framing', async () => {
  const cases = [
    ['unmasked client frame', frame(1, '{}', { mask: false }), 1002],
    ['reserved bits', frame(1, '{}', { rsv: 0x40 }), 1002],
    ['unknown opcode', frame(3, 'x'), 1002],
    ['fragmented ping', frame(9, 'x', { fin: false }), 1002],
    ['binary frame', frame(2, 'abc'), 1003],
    ['invalid UTF-8', frame(1, Buffer.from([0x7b, 0xc3, 0x28, 0x7d])), 1007],
    ['too big', frame(1, 'x'.repeat(70000)), 1009],
    ['not a JSON object', frame(1, '[1,2]'), 4400],
    ['not JSON', frame(1, '{"id":1,'), 4400],
  ];
  for (const [name, bytes, code] of cases) {
    const s = await rawSocket(srv.address);
    const got = closeCode(s);
    s.write(bytes);
    assert.equal(await got, code, name);
    s.destroy();
  }
  // The server kept serving.
  const h = await api(srv.url, 'GET', '/healthz');
  assert.equal(h.status, 200);
});

test('handshake refusals', async () => {
  const [host, port] = srv.address.split(':');
  const ask = (hdrs) => new Promise((resolve) => {
    const s = net.connect(Number(port), host, () => s.write(`GET /ws HTTP/1.1\r\nHost: x\r\n${hdrs}\r\n`));
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('close', () => resolve(out));
    setTimeout(() => s.destroy(), 2000);
  });
  const v12 = await ask('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n');
  assert.match(v12, /^HTTP\/1.1 426/);
  assert.match(v12, /Sec-WebSocket-Version: 13/i);
  const noKey = await ask('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n');
  assert.match(noKey, /^HTTP\/1.1 400/);
  const evil = await ask('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n');
  assert.match(evil, /^HTTP\/1.1 403/);
});

test('a slow consumer is closed with 4408 and others keep receiving', async () => {
  const slowSrv = await startServer({ args: ['--ws.send-buffer-bytes', '65536'] });
  try {
    const s = await rawSocket(slowSrv.address);
    s.write(frame(1, JSON.stringify({ id: 1, op: 'subscribe', channel: 'app:flood' })));
    s.pause();                        // never read: the server's buffer grows
    const fast = await Native.open(slowSrv.wsUrl);
    await fast.send('subscribe', { channel: 'app:flood' });
    const big = 'y'.repeat(60000);
    const publish = (i) => api(slowSrv.url, 'POST', '/api/v1/publish', { apiKey: API_KEY, body: { channel: 'app:flood', data: { i, big } } });
    const dropped = async () => Number(/^streamhub_slow_clients_dropped_total (\d+)/m
      .exec((await api(slowSrv.url, 'GET', '/metrics')).body)?.[1] ?? 0);
    // Publish until the server drops the slow client, then read again at
    // once: the close grace period runs from the drop, so the client finds
    // the 4408 close right after the frame it was in the middle of, on a
    // fast machine or a loaded sanitizer build alike.
    let i = 0;
    while (i < 400 && await dropped() === 0) await publish(i++);
    assert.equal(await dropped(), 1, `not dropped after ${i} events`);
    s.resume();
    const code = await closeCode(s);
    assert.equal(code, 4408);
    while (i < 400) await publish(i++);
    await fast.waitEvents(400, () => true, 30000);
    await fast.close();
  } finally {
    await slowSrv.stop();
  }
});

test('anonymous access off: no auth within the timeout is 4401', async () => {
  const strict = await startServer({ args: ['--allow-anonymous', 'false', '--ws.auth-timeout-ms', '300'] });
  try {
    const c = await Native.open(strict.wsUrl);
    const r = await c.send('subscribe', { channel: 'live' });
    assert.equal(r.error.code, 'unauthenticated');
    const closed = await c.closed;
    assert.equal(closed.code, 4401);
  } finally {
    await strict.stop();
  }
});

test('500 concurrent connections all receive a broadcast', async () => {
  const clients = await Promise.all(Array.from({ length: 500 }, () => Native.open(srv.wsUrl)));
  await Promise.all(clients.map((c) => c.send('subscribe', { channel: 'app:many' })));
  await api(srv.url, 'POST', '/api/v1/publish', { apiKey: API_KEY, body: { channel: 'app:many', data: 'hi' } });
  await Promise.all(clients.map((c) => c.waitEvents(1)));
  await Promise.all(clients.map((c) => c.close()));
});

test('graceful shutdown: 1001 to sockets, acknowledged chat survives a restart', async () => {
  const a = await startServer({ keepDir: true });
  const u = await register(a.url, 'gs');
  const st = await api(a.url, 'POST', '/api/v1/streams', { token: u.token, body: { title: 'restart' } });
  const streamId = st.body.id;
  const c = await Native.open(a.wsUrl);
  await c.send('auth', { token: u.token });
  await c.send('subscribe', { channel: `chat:${streamId}` });
  const acked = [];
  for (let i = 0; i < 50; i++) {
    const r = await c.send('chat.send', { streamId, text: `keep ${i}` });
    if (r.ok) acked.push(r.result.message.id);
  }
  assert.ok(acked.length > 0);
  const closed = c.closed;
  const exit = await a.stop();
  assert.equal(exit.code, 0);
  assert.equal((await closed).code, 1001);
  const b = await startServer({ dir: a.dir });
  try {
    const h = await api(b.url, 'GET', `/api/v1/streams/${streamId}/chat?last=100`);
    assert.equal(h.status, 200, JSON.stringify(h.body));
    const ids = new Set(h.body.items.map((m) => m.id));
    for (const id of acked) assert.ok(ids.has(id), `message ${id} lost`);
  } finally {
    await b.stop();
  }
});

test('presence: a count held back by the once-a-second coalescing still goes out', async () => {
  // stream.viewers leaves at most once a second per stream; a change that
  // comes sooner is held back and must go out at a later tick even when
  // nothing else changes.  Each round changes the count right after a
  // report, which is when it is held back.
  const u = await register(srv.url, 'pvc');
  const st = await api(srv.url, 'POST', '/api/v1/streams', { token: u.token, body: { title: 'coalesced' } });
  const id = st.body.id;
  const b = await Native.open(srv.wsUrl);
  await b.send('subscribe', { channel: `stream:${id}` });
  for (let round = 0; round < 3; round++) {
    b.events.length = 0;
    const a = await Native.open(srv.wsUrl);
    await a.send('subscribe', { channel: `chat:${id}` });
    await b.waitEvents(1, (e) => e.event?.type === 'stream.viewers' && e.event.data.viewerCount === 2, 5000);
    await a.close();
    await b.waitEvents(1, (e) => e.event?.type === 'stream.viewers' && e.event.data.viewerCount === 1, 5000);
  }
  await b.close();
});

test('presence: viewers of chat: and stream: counted once per connection', async () => {
  const u = await register(srv.url, 'pv');
  const st = await api(srv.url, 'POST', '/api/v1/streams', { token: u.token, body: { title: 'presence' } });
  const id = st.body.id;
  const a = await Native.open(srv.wsUrl);
  const b = await Native.open(srv.wsUrl);
  await a.send('subscribe', { channel: `chat:${id}` });
  await a.send('subscribe', { channel: `stream:${id}` });   // same viewer
  await b.send('subscribe', { channel: `stream:${id}` });
  const [ev] = await b.waitEvents(1, (e) => e.event?.type === 'stream.viewers', 5000);
  assert.equal(ev.event.data.viewerCount, 2);
  assert.equal((await api(srv.url, 'GET', `/api/v1/streams/${id}`)).body.viewerCount, 2);
  await a.close();
  await b.waitEvents(1, (e) => e.event?.type === 'stream.viewers' && e.event.data.viewerCount === 1, 5000);
  await b.close();
});
