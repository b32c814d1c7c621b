// tests/e2e/loops.test.mjs: streamhubd with several event loops
// (`loops = 4`).  One acceptor hands new connections to the loops in turn,
// so clients that connect one after another land on different loops (the
// per-loop gauge streamhub_loop_connections shows it).  Whatever loop holds
// a client: every event reaches it once and in order (native /ws and
// graphql-ws), a chat keeps one offset sequence, viewer counts, the per-user
// connection cap and the per-address rate limit count across loops, and
// SIGTERM drains every loop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startServer, register, api, Native, API_KEY } from './harness.mjs';

const LOOPS = 4;
const CAP = 2;            // ws.max-connections-per-user

let srv;
before(async () => {
  srv = await startServer({
    args: ['--loops', String(LOOPS), '--chat.rate-limit', '100000',
           '--ws.max-connections-per-user', String(CAP)],
  });
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

// Open connections per loop, from the metrics: { '0': n, ... }.
async function perLoop(s = srv) {
  const r = await api(s.url, 'GET', '/metrics');
  assert.equal(r.status, 200);
  const out = {};
  for (const m of r.body.matchAll(/^streamhub_loop_connections\{loop="(\d+)"\} (\S+)$/gm))
    out[m[1]] = Number(m[2]);
  return out;
}

// Ask @fn until it returns @want (deep equal), for at most @ms.
async function eventually(fn, want, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const got = await fn();
    try {
      assert.deepEqual(got, want);
      return got;
    } catch (e) {
      if (Date.now() > end) throw e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// @n native clients opened one after another: with one acceptor handing
// connections out in turn, consecutive ones sit on consecutive loops.
async function natives(n, s = srv) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await Native.open(s.wsUrl));
  return out;
}

function gqlClient(token, s = srv) {
  return createClient({
    url: `${s.wsUrl}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: token ? { token } : undefined,
    retryAttempts: 0,
    lazy: true,
  });
}

// A graphql-ws subscription; returns { values, until(n) }.
function gqlSub(c, query, variables) {
  const values = [];
  let waiters = [];
  let error = null;
  const poke = () => { waiters = waiters.filter((w) => !w()); };
  c.subscribe({ query, variables }, {
    next: (v) => { values.push(v); poke(); },
    error: (e) => { error = e; poke(); },
    complete: () => {},
  });
  return {
    values,
    until(n, ms = 10000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (values.length >= n) { resolve(values); return true; }
          if (error) { reject(new Error(JSON.stringify(error))); return true; }
          return false;
        };
        if (check()) return;
        const t = setTimeout(() => reject(new Error(`timeout: ${values.length} of ${n}`)), ms);
        waiters.push(() => { if (check()) { clearTimeout(t); return true; } return false; });
      });
    },
  };
}

async function liveStream(prefix) {
  const u = await register(srv.url, prefix);
  const st = await api(srv.url, 'POST', '/api/v1/streams', { token: u.token, body: { title: prefix } });
  assert.equal(st.status, 201, JSON.stringify(st.body));
  return { user: u, id: st.body.id };
}

test('connections are handed to the loops in turn', async () => {
  const before = await perLoop();
  assert.deepEqual(Object.keys(before).sort(), ['0', '1', '2', '3']);
  const cs = await natives(2 * LOOPS);
  const now = await perLoop();
  for (const k of Object.keys(now))
    assert.ok(now[k] - before[k] >= 2, `loop ${k}: ${JSON.stringify({ before, now })}`);
  for (const c of cs) await c.close();
});

test('every subscriber on every loop gets every event once, in order', async () => {
  const ch = `app:loops${process.pid}`;
  const subs = await natives(3 * LOOPS);
  for (const s of subs)
    assert.equal((await s.send('subscribe', { channel: ch })).ok, true);
  const N = 60;
  const sent = [];
  for (let i = 0; i < N; i++) {
    const r = await api(srv.url, 'POST', '/api/v1/publish', { apiKey: API_KEY, body: { channel: ch, data: { i } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    sent.push(r.body.offset);
  }
  for (const s of subs) {
    const evs = await s.waitEvents(N, (e) => e.channel === ch, 10000);
    assert.deepEqual(evs.map((e) => e.event.data.i), [...Array(N).keys()]);
    assert.deepEqual(evs.map((e) => e.offset), sent);
  }
  // Nothing more came after the last one (no duplicate from another
  // loop's queue): a marker published last is the next event of each.
  const m = await api(srv.url, 'POST', '/api/v1/publish', { apiKey: API_KEY, body: { channel: ch, data: { i: 'end' } } });
  for (const s of subs) {
    const evs = await s.waitEvents(N + 1, (e) => e.channel === ch, 10000);
    assert.equal(evs.length, N + 1);
    assert.equal(evs[N].offset, m.body.offset);
  }
  for (const s of subs) await s.close();
});

test('a chat across loops: one offset sequence, every reader gets it all (native and graphql-ws)', async () => {
  const st = await liveStream('lc');
  const chan = `chat:${st.id}`;
  // Senders on consecutive loops, each authenticated as its own user.
  const senders = await natives(LOOPS);
  for (const s of senders) {
    const u = await register(srv.url, 'ls');
    assert.equal((await s.send('auth', { token: u.token })).ok, true);
  }
  const readers = await natives(LOOPS);
  for (const r of readers)
    assert.equal((await r.send('subscribe', { channel: chan })).ok, true);
  // graphql-ws readers on other loops, resuming after a first message so
  // that none depends on when its subscription started.
  const first = await senders[0].send('chat.send', { streamId: st.id, text: 'first' });
  assert.equal(first.ok, true, JSON.stringify(first));
  const q = 'subscription C($s: ID!, $o: Int) { chatMessages(streamId: $s, sinceOffset: $o) { kind offset message { text } } }';
  const gcs = [gqlClient(), gqlClient(), gqlClient(), gqlClient()];
  const gsubs = gcs.map((c) => gqlSub(c, q, { s: st.id, o: first.result.message.offset }));

  const texts = Array.from({ length: 40 }, (_, i) => `m${i}`);
  const acked = [];
  for (let i = 0; i < texts.length; i++) {
    const r = await senders[i % LOOPS].send('chat.send', { streamId: st.id, text: texts[i] });
    assert.equal(r.ok, true, JSON.stringify(r));
    acked.push(r.result.message.offset);
  }
  for (let i = 1; i < acked.length; i++)
    assert.equal(acked[i], acked[i - 1] + 1, `not one sequence: ${acked}`);
  assert.equal(acked[0], first.result.message.offset + 1);
  const isMsg = (e) => e.channel === chan && e.event?.type === 'chat.message';
  for (const r of [...readers]) {
    const evs = await r.waitEvents(41, isMsg, 10000);
    assert.deepEqual(evs.map((e) => e.event.data.text), ['first', ...texts]);
    assert.deepEqual(evs.slice(1).map((e) => e.offset), acked);
  }
  for (const g of gsubs) {
    const vals = await g.until(40);
    assert.deepEqual(vals.map((v) => v.data.chatMessages.message.text), texts);
    assert.deepEqual(vals.map((v) => v.data.chatMessages.offset), acked);
  }
  // A marker: the next value of each, so nothing was delivered twice.
  const end = await senders[1].send('chat.send', { streamId: st.id, text: 'end' });
  for (const g of gsubs) {
    const vals = await g.until(41);
    assert.equal(vals.length, 41);
    assert.equal(vals[40].data.chatMessages.offset, end.result.message.offset);
  }
  for (const r of readers) {
    const evs = await r.waitEvents(42, isMsg, 10000);
    assert.equal(evs.length, 42);
  }
  for (const c of gcs) await c.dispose();
  for (const c of [...senders, ...readers]) await c.close();
});

test('viewer counts add up over the loops', async () => {
  const st = await liveStream('lv');
  const viewers = async () =>
    (await api(srv.url, 'GET', `/api/v1/streams/${st.id}`)).body.viewerCount;
  const vs = await natives(LOOPS);
  for (const [i, v] of vs.entries()) {
    const chan = i % 2 === 0 ? `chat:${st.id}` : `stream:${st.id}`;
    assert.equal((await v.send('subscribe', { channel: chan })).ok, true);
  }
  await eventually(viewers, LOOPS);
  await vs[0].close();
  await vs[1].close();
  await eventually(viewers, LOOPS - 2);
  await vs[2].close();
  await vs[3].close();
  await eventually(viewers, 0);
});

test('the per-user connection cap counts across loops', async () => {
  const dave = await register(srv.url, 'lu');
  // CAP + 2 connections of one user, one after another: on as many loops.
  const cs = await natives(CAP + 2);
  const replies = [];
  for (const c of cs) replies.push(await c.send('auth', { token: dave.token }));
  assert.deepEqual(replies.map((r) => r.ok === true),
                   [...Array(CAP).fill(true), false, false], JSON.stringify(replies));
  for (const r of replies.slice(CAP))
    assert.equal(r.error.code, 'rate_limited', JSON.stringify(r));
  // One closed frees a place, on whichever loop the next one lands.
  await cs[0].close();
  const again = await Native.open(srv.wsUrl);
  await eventually(async () => (await again.send('auth', { token: dave.token })).ok === true, true);
  for (const c of [...cs, again]) await c.close();
});

// @n pipelined GET /healthz on a new connection; resolves the statuses.
function pipelined(address, n) {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), host);
    let text = '';
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`closed after: ${text}`)));
    sock.on('data', (d) => {
      text += d;
      // Responses follow each other with no separator: a status line
      // starts right after the previous body (no body holds one).
      const st = [...text.matchAll(/HTTP\/1\.1 (\d+) /g)].map((m) => Number(m[1]));
      if (st.length === n) { sock.destroy(); resolve(st); }
    });
    sock.on('connect', () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(n)));
  });
}

test('the per-address rate limit counts across loops', async () => {
  const RATE = 5;           // http.rate-limit-per-ip: 5 a second, burst 5
  const s = await startServer({ args: ['--loops', String(LOOPS), '--http.rate-limit-per-ip', String(RATE)] });
  try {
    const t0 = Date.now();
    // One connection per loop (handed out in turn), 2 * RATE requests each.
    const all = await Promise.all(Array.from({ length: LOOPS }, () => pipelined(s.address, 2 * RATE)));
    const secs = (Date.now() - t0) / 1000;
    const ok = all.flat().filter((x) => x === 200).length;
    const limited = all.flat().filter((x) => x === 429).length;
    assert.equal(ok + limited, LOOPS * 2 * RATE);
    // One bucket for the address, whichever loop: the burst plus what it
    // refilled meanwhile, not a burst per loop.
    assert.ok(ok <= RATE + Math.ceil(RATE * secs),
              `${ok} answered in ${secs} s: more than one bucket allows`);
  } finally {
    await s.stop();
  }
});

test('SIGTERM drains every loop: 1001 to every WebSocket, exit 0', async () => {
  const s = await startServer({ args: ['--loops', String(LOOPS)] });
  const u = await register(s.url, 'lt');
  const cs = await natives(2 * LOOPS, s);
  for (const c of cs)
    assert.equal((await c.send('subscribe', { channel: 'live' })).ok, true);
  const g = new WebSocket(`${s.wsUrl}/graphql`, 'graphql-transport-ws');
  g.on('error', () => {});
  const gClosed = new Promise((r) => g.on('close', (code) => r(code)));
  await new Promise((r) => g.once('open', r));
  const acked = new Promise((r) => g.once('message', r));
  g.send(JSON.stringify({ type: 'connection_init', payload: { token: u.token } }));
  await acked;
  const spread = await perLoop(s);
  for (const k of ['0', '1', '2', '3'])
    assert.ok(spread[k] >= 2, JSON.stringify(spread));
  s.child.kill('SIGTERM');
  const exit = await s.exited;
  assert.equal(exit.code, 0, `${JSON.stringify(exit)} ${s.stderr()}`);
  for (const c of cs) assert.equal((await c.closed).code, 1001);
  assert.equal(await gClosed, 1001);
  await s.stop();
});
