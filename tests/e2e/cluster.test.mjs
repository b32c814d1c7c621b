// tests/e2e/cluster.test.mjs: two and three streamhubd nodes acting as one
// service: one Redis bus (svc_redis.mjs: redis-server on a free loopback
// port), one PostgreSQL store (svc_pg.mjs: one server for the file, a
// fresh database for each cluster), Debian's nginx in front (svc_nginx.mjs, the site of
// deploy/nginx/streamhub.conf).  Clients are pinned to a node where the
// test needs to know which node serves them (its own address), and go
// through nginx when they reconnect after a node went away, as real
// clients do.
//
// The contract (PROTOCOL.md, Channels): one offset sequence per channel
// across all nodes, increasing by one per event; a subscriber resuming on
// any node with the epoch and offset it last saw gets exactly what it
// missed, in order, then live events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';
import { startServer, api, register, Native } from './harness.mjs';
import { startNginx } from './svc_nginx.mjs';
import { startRedis } from './svc_redis.mjs';
import { startPg } from './svc_pg.mjs';

let pg;
before(async () => { pg = await startPg(); });
const clusters = [];
after(async () => {
  for (const c of clusters.splice(0)) await c.stop();
  await pg?.stop();
});

// @n nodes on one Redis and one store, nginx in front of them all.
async function startCluster(n) {
  const redis = await startRedis();
  const db = `cluster${clusters.length + 1}`;
  pg.psql(`CREATE DATABASE ${db}`, 'postgres');
  const nodes = [];
  const c = {
    redis, nodes, ngx: null,
    async stop() {
      if (c.ngx) await c.ngx.stop();
      const errors = [];
      for (const node of nodes) {
        try { await node.stop(); } catch (e) { errors.push(e.message); }
      }
      await redis.stop();
      if (errors.length) throw new Error(errors.join('\n'));
    },
  };
  clusters.push(c);
  for (let i = 0; i < n; i++) {
    nodes.push(await startServer({
      args: ['--store', pg.uri(db), '--store.pool-size', '2',
             '--bus', redis.uri, '--trusted-proxies', '127.0.0.1'],
    }));
  }
  c.ngx = await startNginx({ upstreams: nodes.map((x) => x.address) });
  return c;
}

async function gql(base, query, variables, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}/graphql`, {
    method: 'POST', headers, body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

async function startStream(base, token, title) {
  const r = await api(base, 'POST', '/api/v1/streams', { token, body: { title } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

// An authenticated native client of @wsUrl subscribed to @channel;
// resolves { c, sub } (sub: the subscribe reply's result).
async function viewer(wsUrl, token, channel, since) {
  const c = await Native.open(wsUrl);
  if (token) {
    const a = await c.send('auth', { token });
    assert.equal(a.ok, true, JSON.stringify(a));
  }
  const s = await c.send('subscribe', since ? { channel, since } : { channel });
  assert.equal(s.ok, true, JSON.stringify(s));
  return { c, sub: s.result };
}

const chatOf = (c) => c.events.filter((e) => e.event?.type === 'chat.message');

// Send @texts one after another, each through the sender at the same
// index modulo senders.length; resolves the acknowledged offsets.
async function sendAll(streamId, senders, texts) {
  const offsets = [];
  for (let i = 0; i < texts.length; i++) {
    const r = await senders[i % senders.length].send('chat.send',
                                                     { streamId, text: texts[i] });
    assert.equal(r.ok, true, JSON.stringify(r));
    offsets.push(r.result.message.offset);
  }
  return offsets;
}

function assertOneSequence(offsets) {
  for (let i = 1; i < offsets.length; i++)
    assert.equal(offsets[i], offsets[i - 1] + 1,
                 `offsets not one sequence: ${offsets}`);
}

// Wait until @fn resolves truthy, polling, up to @ms.
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timeout: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('two nodes: chat across nodes in order with one offset sequence', async () => {
  const { nodes: [n1, n2] } = await startCluster(2);
  const streamer = await register(n1.url, 'cs');
  const sid = await startStream(n1.url, streamer.token, 'cluster chat');
  const u1 = await register(n1.url, 'ca');
  const u2 = await register(n2.url, 'cb');
  const { c: v1 } = await viewer(n1.wsUrl, null, `chat:${sid}`);
  const { c: v2 } = await viewer(n2.wsUrl, null, `chat:${sid}`);
  const { c: s1 } = await viewer(n1.wsUrl, u1.token, `chat:${sid}`);
  const { c: s2 } = await viewer(n2.wsUrl, u2.token, `chat:${sid}`);

  const texts = Array.from({ length: 30 }, (_, i) => `m${i}`);
  const acked = await sendAll(sid, [s1, s2], texts);
  assertOneSequence(acked);
  for (const v of [v1, v2, s1, s2]) {
    const evs = await v.waitEvents(30, (e) => e.event?.type === 'chat.message');
    assert.deepEqual(evs.map((e) => e.event.data.text), texts);
    assert.deepEqual(evs.map((e) => e.offset), acked);
  }
  // History read on either node holds them all, in that order.
  for (const n of [n1, n2]) {
    const h = await api(n.url, 'GET', `/api/v1/streams/${sid}/chat?last=30`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.body.items.map((m) => m.text), texts);
  }
  for (const v of [v1, v2, s1, s2]) await v.close();
});

test('two nodes: viewer counts across nodes', async () => {
  const { nodes: [n1, n2] } = await startCluster(2);
  const streamer = await register(n1.url, 'vs');
  const sid = await startStream(n1.url, streamer.token, 'cluster viewers');
  const { c: a } = await viewer(n1.wsUrl, null, `chat:${sid}`);
  const { c: b } = await viewer(n1.wsUrl, null, `chat:${sid}`);
  const { c: w } = await viewer(n2.wsUrl, null, `stream:${sid}`);
  const count = async (n) =>
    (await api(n.url, 'GET', `/api/v1/streams/${sid}`)).body.viewerCount;

  // Three viewers on two nodes: every node says three.
  await w.waitEvents(1, (e) => e.event?.type === 'stream.viewers' &&
                     e.event.data.viewerCount === 3, 10000);
  await until(async () => (await count(n1)) === 3 && (await count(n2)) === 3,
              10000, 'viewerCount 3 on both nodes');
  const q = await gql(n2.url, 'query($id: ID!) { stream(id: $id) { viewerCount } }',
                      { id: sid });
  assert.equal(q.stream.viewerCount, 3);

  // One leaves node 1: both nodes follow.
  await a.close();
  await w.waitEvents(1, (e) => e.event?.type === 'stream.viewers' &&
                     e.event.data.viewerCount === 2, 10000);
  await until(async () => (await count(n1)) === 2 && (await count(n2)) === 2,
              10000, 'viewerCount 2 on both nodes');
  await b.close();
  await w.close();
});

test('two nodes: a notification reaches a follower connected to the other node', async () => {
  const { nodes: [n1, n2] } = await startCluster(2);
  const streamer = await register(n1.url, 'ns');
  const fan = await register(n2.url, 'nf');
  const { c: f } = await viewer(n2.wsUrl, fan.token, `user:${fan.user.id}`);
  await gql(n2.url, 'mutation($u: ID!) { follow(userId: $u) { id } }',
            { u: streamer.user.id }, fan.token);
  // The streamer, on node 1, sees the new follower live there too.
  const { c: s } = await viewer(n1.wsUrl, streamer.token, `user:${streamer.user.id}`);
  const sid = await startStream(n1.url, streamer.token, 'for my followers');
  const [ev] = await f.waitEvents(1, (e) => e.event?.type === 'notification' &&
                                  e.event.data.type === 'STREAM_LIVE', 10000);
  assert.equal(ev.channel, `user:${fan.user.id}`);
  assert.equal(JSON.stringify(ev.event.data.data).includes(sid), true,
               JSON.stringify(ev.event.data));
  await gql(n1.url, 'mutation($u: ID!) { unfollow(userId: $u) { id } }',
            { u: streamer.user.id }, fan.token);
  await gql(n2.url, 'mutation($u: ID!) { follow(userId: $u) { id } }',
            { u: streamer.user.id }, fan.token);
  const nf = await s.waitEvents(1, (e) => e.event?.type === 'notification' &&
                                e.event.data.type === 'NEW_FOLLOWER', 10000);
  assert.equal(nf[0].channel, `user:${streamer.user.id}`);
  await f.close();
  await s.close();
});

// A login with a wrong password through nginx from @localAddress (a
// loopback address of its own: another client).  Resolves the status:
// 401 when let through, 429 when the per-address limit refused it.
function loginFrom(port, localAddress) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: '/api/v1/auth/login', method: 'POST',
      agent: false, localAddress, headers: { 'content-type': 'application/json' },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(JSON.stringify({ username: 'nobody_here', password: 'wrong-password' }));
  });
}

test('two nodes behind nginx: the per-address login limit counts each client across nodes, not the proxy', async () => {
  const cl = await startCluster(2);
  // Ten a minute per client address over the whole cluster: the first
  // client's attempts, spread over both nodes by nginx, run out...
  const a = [];
  for (let i = 0; i < 12; i++) a.push(await loginFrom(cl.ngx.port, '127.0.0.21'));
  assert.deepEqual(a.slice(0, 10), Array(10).fill(401), `client a: ${a}`);
  assert.ok(a.slice(10).includes(429), `client a never limited: ${a}`);
  // ...while another client behind the same proxy is still let in.
  assert.equal(await loginFrom(cl.ngx.port, '127.0.0.22'), 401);
});

// The last chat offset a client saw, and the epoch of its subscription.
function position(c, sub) {
  const evs = chatOf(c);
  return { epoch: sub.epoch, offset: evs.length ? evs.at(-1).offset : sub.offset };
}

test('three nodes: a node killed with SIGKILL, its clients resume on another through nginx with nothing missed', async () => {
  const cl = await startCluster(3);
  const [n1, n2, n3] = cl.nodes;
  const streamer = await register(n2.url, 'ks');
  const sid = await startStream(n2.url, streamer.token, 'kill one');
  const sender = await register(n2.url, 'kx');
  const { c: tx } = await viewer(n2.wsUrl, sender.token, `chat:${sid}`);
  // The victims: three viewers on node 1.
  const victims = [];
  for (let i = 0; i < 3; i++) victims.push(await viewer(n1.wsUrl, null, `chat:${sid}`));
  const { c: witness } = await viewer(n3.wsUrl, null, `chat:${sid}`);

  const texts = Array.from({ length: 45 }, (_, i) => `k${i}`);
  const before = await sendAll(sid, [tx], texts.slice(0, 15));
  for (const v of victims) await v.c.waitEvents(15, (e) => e.event?.type === 'chat.message');
  const positions = victims.map((v) => position(v.c, v.sub));
  const closed = victims.map((v) => v.c.closed);

  await n1.stop('SIGKILL');
  for (const p of closed) assert.notEqual((await p).code, 1000);
  // Sent while the victims are away.
  const during = await sendAll(sid, [tx], texts.slice(15, 30));

  // Back through nginx, with where they were: what they missed, in order.
  const back = [];
  for (const p of positions) {
    const r = await viewer(cl.ngx.wsUrl, null, `chat:${sid}`, p);
    assert.equal(r.sub.recovered, true, JSON.stringify(r.sub));
    assert.equal(r.sub.epoch, p.epoch);
    back.push(r);
  }
  const after = await sendAll(sid, [tx], texts.slice(30));
  const all = [...before, ...during, ...after];
  assertOneSequence(all);
  for (let i = 0; i < victims.length; i++) {
    const evs = await back[i].c.waitEvents(30, (e) => e.event?.type === 'chat.message');
    const seen = [...chatOf(victims[i].c), ...evs];
    assert.deepEqual(seen.map((e) => e.offset), all, `victim ${i}`);
    assert.deepEqual(seen.map((e) => e.event.data.text), texts, `victim ${i}`);
  }
  const w = await witness.waitEvents(45, (e) => e.event?.type === 'chat.message');
  assert.deepEqual(w.map((e) => e.offset), all);
  for (const r of back) await r.c.close();
  await tx.close();
  await witness.close();
});

// A graphql-transport-ws client of chatMessages; events and close.
function gqlChat(wsUrl, streamId, since) {
  const ws = new WebSocket(`${wsUrl}/graphql`, 'graphql-transport-ws');
  const s = { ws, events: [], errors: [], waiters: [] };
  s.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', () => {});
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'connection_ack') {
      ws.send(JSON.stringify({
        id: '1', type: 'subscribe',
        payload: {
          query: 'subscription($s: ID!, $o: Int, $e: String) { chatMessages(streamId: $s, sinceOffset: $o, sinceEpoch: $e) { kind epoch offset message { text } } }',
          variables: { s: streamId, o: since?.offset ?? null, e: since?.epoch ?? null },
        },
      }));
      s.resolveAck();
    } else if (m.type === 'next') {
      s.events.push(m.payload.data.chatMessages);
    } else if (m.type === 'error') {
      s.errors.push(m.payload);
    }
    s.waiters = s.waiters.filter((w) => !w());
  });
  s.acked = new Promise((resolve, reject) => {
    s.resolveAck = resolve;
    ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  s.wait = (n, ms = 10000, what = '') => new Promise((resolve, reject) => {
    const check = () => {
      const msgs = s.events.filter((e) => e.kind === 'MESSAGE');
      if (msgs.length >= n) { resolve(msgs); return true; }
      if (s.errors.length) { reject(new Error(JSON.stringify(s.errors))); return true; }
      return false;
    };
    if (check()) return;
    const t = setTimeout(() => reject(new Error(
      `timeout waiting for ${n} messages ${what}: ${JSON.stringify(s.events)}`)), ms);
    s.waiters.push(() => { if (check()) { clearTimeout(t); return true; } return false; });
  });
  return s;
}

// Open WebSockets per node (each node's /metrics, asked directly).
async function wsCounts(nodes) {
  return Promise.all(nodes.map(async (n) => {
    const t = await (await fetch(`${n.url}/metrics`)).text();
    const m = /^streamhub_websocket_connections (\d+)/m.exec(t);
    return m ? Number(m[1]) : 0;
  }));
}

// The node a WebSocket just opened through nginx landed on: the one whose
// count rose over @before.  Resolves { index, counts }.
function landed(nodes, before) {
  return until(async () => {
    const counts = await wsCounts(nodes);
    const index = counts.findIndex((v, k) => v > before[k]);
    return index >= 0 ? { index, counts } : null;
  }, 10000, 'a new WebSocket on some node');
}

test('three nodes behind nginx: SIGTERM drains a node with 1001 through the proxy, its clients resume elsewhere with nothing missed', async () => {
  const cl = await startCluster(3);
  const streamer = await register(cl.ngx.url, 'ds');
  const sid = await startStream(cl.ngx.url, streamer.token, 'drain one');

  // Viewers through nginx, native and graphql-ws in turn, until the node
  // of the first one holds one of each kind (round robin: by the fourth).
  const clients = [];
  let counts = await wsCounts(cl.nodes);
  let victim = null;
  for (let i = 0; i < 12; i++) {
    const kind = i % 2 === 0 ? 'native' : 'graphql';
    let h;
    if (kind === 'native') {
      h = await viewer(cl.ngx.wsUrl, null, `chat:${sid}`);
    } else {
      // graphql-ws confirms no subscription: resuming from offset 0 makes
      // the server replay what it published before the subscription took.
      h = gqlChat(cl.ngx.wsUrl, sid, { offset: 0 });
      await h.acked;
    }
    const r = await landed(cl.nodes, counts);
    counts = r.counts;
    clients.push({ kind, node: r.index, h });
    victim ??= r.index;
    const on = clients.filter((c) => c.node === victim);
    if (on.some((c) => c.kind === 'native') && on.some((c) => c.kind === 'graphql'))
      break;
  }
  const drained = clients.filter((c) => c.node === victim);
  const staying = clients.filter((c) => c.node !== victim);
  assert.ok(drained.some((c) => c.kind === 'native') &&
            drained.some((c) => c.kind === 'graphql'),
            `nginx never put both kinds on one node: ${JSON.stringify(clients.map((c) => [c.kind, c.node]))}`);
  assert.ok(staying.length > 0);

  // The sender sits on another node, directly.
  const home = cl.nodes[(victim + 1) % 3];
  const sender = await register(home.url, 'dx');
  const { c: tx } = await viewer(home.wsUrl, sender.token, `chat:${sid}`);
  const texts = Array.from({ length: 30 }, (_, i) => `d${i}`);
  const messagesOf = async (c, n, what) => (c.kind === 'native'
    ? c.h.c.waitEvents(n, (e) => e.event?.type === 'chat.message', 10000)
    : c.h.wait(n, 10000, what));
  const before = await sendAll(sid, [tx], texts.slice(0, 10));
  const seenBefore = [];
  for (const c of drained) seenBefore.push(await messagesOf(c, 10, 'before the drain'));
  const positions = drained.map((c, i) => (c.kind === 'native'
    ? position(c.h.c, c.h.sub)
    : { epoch: seenBefore[i].at(-1).epoch, offset: seenBefore[i].at(-1).offset }));

  // SIGTERM: 1001 reaches the clients through nginx; the node exits 0.
  const stopped = cl.nodes[victim].stop('SIGTERM');
  for (const c of drained) {
    const code = c.kind === 'native' ? (await c.h.c.closed).code : await c.h.closed;
    assert.equal(code, 1001, `${c.kind} client`);
  }
  assert.equal((await stopped).code, 0);
  const during = await sendAll(sid, [tx], texts.slice(10, 20));

  // Back through nginx with their positions: the drained node refuses
  // connections, so nginx takes them to the others.
  const back = [];
  for (let i = 0; i < drained.length; i++) {
    const c = drained[i];
    if (c.kind === 'native') {
      const r = await viewer(cl.ngx.wsUrl, null, `chat:${sid}`, positions[i]);
      assert.equal(r.sub.recovered, true, JSON.stringify(r.sub));
      back.push({ kind: 'native', h: r });
    } else {
      const g = gqlChat(cl.ngx.wsUrl, sid, positions[i]);
      await g.acked;
      back.push({ kind: 'graphql', h: g });
    }
  }
  // Each has the missed ones first, so the live ones below follow them.
  for (const b of back) await messagesOf(b, 10, 'resumed');
  const after = await sendAll(sid, [tx], texts.slice(20));
  const all = [...before, ...during, ...after];
  assertOneSequence(all);

  const offsetsAndTexts = (evs, kind) => (kind === 'native'
    ? evs.map((e) => [e.offset, e.event.data.text])
    : evs.map((e) => [e.offset, e.message.text]));
  const want = all.map((o, i) => [o, texts[i]]);
  for (let i = 0; i < drained.length; i++) {
    const seen = [...seenBefore[i], ...await messagesOf(back[i], 20, 'resumed and live')];
    assert.deepEqual(offsetsAndTexts(seen, drained[i].kind), want, `drained ${drained[i].kind}`);
  }
  // The others never noticed.
  for (const c of staying) {
    const seen = await messagesOf(c, 30, 'on a node that stayed');
    assert.deepEqual(offsetsAndTexts(seen, c.kind), want, `staying ${c.kind}`);
    const open = c.kind === 'native' ? c.h.c.ws.readyState : c.h.ws.readyState;
    assert.equal(open, WebSocket.OPEN);
  }
  for (const b of back) (b.kind === 'native' ? b.h.c.ws : b.h.ws).close();
  for (const c of staying) (c.kind === 'native' ? c.h.c.ws : c.h.ws).close();
  await tx.close();
});
