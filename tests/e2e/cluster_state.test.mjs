// tests/e2e/cluster_state.test.mjs: streamhubd nodes sharing one redis
// (the `redis` key) and one SQLite file act as one service for the state
// they count: User.online and viewer counts are seen from the other node,
// a node killed with SIGKILL drops out within seconds, the cap of
// connections per user and the chat rate limit hold across the nodes.
// The bus stays local here: no event crosses nodes in these tests.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, api, register, Native } from './harness.mjs';
import { startRedis } from './svc_redis.mjs';

const CAP = 3;          // ws.max-connections-per-user
const CHAT_LIMIT = 3;   // chat.rate-limit per hour

let redis, dir, a, b;

function node() {
  return startServer({
    dir,
    args: [
      '--redis', redis.uri,
      '--redis.node-ttl-ms', '1000',
      '--ws.max-connections-per-user', String(CAP),
      '--chat.rate-limit', String(CHAT_LIMIT),
      '--chat.rate-window-seconds', '3600',
    ],
  });
}

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(path.join(tmpdir(), 'streamhub-cluster-'));
  a = await node();
  b = await node();
});

// Every test registers users, which the shared limit of register/login
// per address (10 a minute) counts: each test starts with a full bucket.
beforeEach(async () => {
  await redis.command(['DEL', 'sh:rl:rest-auth:127.0.0.1']);
});

after(async () => {
  for (const s of [a, b]) {
    const r = await s.stop();
    assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${s.stderr()}`);
  }
  rmSync(dir, { recursive: true, force: true });
});

// Ask @fn until it returns @want (deep equal), for at most @ms.
async function eventually(fn, want, ms = 10000) {
  const until = Date.now() + ms;
  let got;
  for (;;) {
    got = await fn();
    try {
      assert.deepEqual(got, want);
      return got;
    } catch (e) {
      if (Date.now() > until) throw e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function online(srv, userId) {
  const r = await api(srv.url, 'POST', '/graphql', {
    body: { query: 'query($id: ID) { user(id: $id) { online } }', variables: { id: userId } },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  return r.body.data.user.online;
}

async function viewers(srv, streamId) {
  const r = await api(srv.url, 'GET', `/api/v1/streams/${streamId}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.viewerCount;
}

async function liveStream(srv, prefix) {
  const u = await register(srv.url, prefix);
  const st = await api(srv.url, 'POST', '/api/v1/streams', { token: u.token, body: { title: prefix } });
  assert.equal(st.status, 201, JSON.stringify(st.body));
  return { user: u, id: st.body.id };
}

async function authed(srv, user) {
  const n = await Native.open(srv.wsUrl);
  const r = await n.send('auth', { token: user.token });
  return { n, r };
}

test('User.online: a connection on one node is seen from the other', async () => {
  const alice = await register(a.url, 'co');
  assert.equal(await online(b, alice.user.id), false);
  const { n, r } = await authed(a, alice);
  assert.equal(r.ok, true, JSON.stringify(r));
  // Counted in redis before the auth reply: no wait needed.
  assert.equal(await online(b, alice.user.id), true);
  assert.equal(await online(a, alice.user.id), true);
  await n.close();
  await eventually(() => online(b, alice.user.id), false);
});

test('viewer counts add up over the nodes', async () => {
  const s = await liveStream(a, 'cv');
  const x = await Native.open(a.wsUrl);
  const y = await Native.open(b.wsUrl);
  await x.send('subscribe', { channel: `chat:${s.id}` });
  await y.send('subscribe', { channel: `stream:${s.id}` });
  await eventually(() => viewers(b, s.id), 2);
  await eventually(() => viewers(a, s.id), 2);
  await x.close();
  await eventually(() => viewers(b, s.id), 1);
  await y.close();
  await eventually(() => viewers(a, s.id), 0);
});

test('the cap of connections per user holds across the nodes', async () => {
  const dave = await register(a.url, 'cc');
  const held = [];
  for (const srv of [a, a, b]) {
    const { n, r } = await authed(srv, dave);
    assert.equal(r.ok, true, JSON.stringify(r));
    held.push(n);
  }
  for (const srv of [a, b]) {
    const { n, r } = await authed(srv, dave);
    assert.equal(r.ok, undefined, JSON.stringify(r));
    assert.equal(r.error.code, 'rate_limited');
    await n.close();
  }
  // One closed anywhere frees a place anywhere.
  await held.shift().close();
  const after1 = await eventually(async () => {
    const { n, r } = await authed(b, dave);
    if (r.ok) held.push(n); else await n.close();
    return r.ok === true;
  }, true);
  assert.equal(after1, true);
  for (const n of held) await n.close();
});

test('the chat rate limit of an author is shared by the nodes', async () => {
  const s = await liveStream(a, 'cr');
  const erin = await register(a.url, 'ce');
  const chat = `/api/v1/streams/${s.id}/chat`;
  for (const srv of [a, b, a]) {
    const r = await api(srv.url, 'POST', chat, { body: { text: 'hi' }, token: erin.token });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  for (const srv of [b, a]) {
    const r = await api(srv.url, 'POST', chat, { body: { text: 'hi' }, token: erin.token });
    assert.equal(r.status, 429, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'rate_limited');
  }
});

test('a node killed with SIGKILL drops out within seconds', async () => {
  const c = await node();
  const s = await liveStream(a, 'ck');
  const carol = await register(a.url, 'ckc');
  const v = await Native.open(a.wsUrl);
  await v.send('subscribe', { channel: `stream:${s.id}` });
  const { n, r } = await authed(c, carol);
  assert.equal(r.ok, true, JSON.stringify(r));
  const w = await Native.open(c.wsUrl);
  await w.send('subscribe', { channel: `chat:${s.id}` });
  await eventually(() => viewers(b, s.id), 2);
  assert.equal(await online(b, carol.user.id), true);
  await c.stop('SIGKILL');
  // redis.node-ttl-ms is 1000: gone well within the deadline.
  await eventually(() => online(b, carol.user.id), false, 15000);
  await eventually(() => viewers(b, s.id), 1, 15000);
  n.ws.terminate();
  w.ws.terminate();
  await v.close();
});

test('the hot-read cache: a write on one node is read at once on the other', async () => {
  const s = await liveStream(a, 'cx');
  const get = async (srv) => (await api(srv.url, 'GET', `/api/v1/streams/${s.id}`)).body.title;
  assert.equal(await get(b), 'cx');
  assert.equal(await get(b), 'cx');            // from the cache
  const m = await api(b.url, 'GET', '/metrics');
  assert.match(m.body, /streamhub_cache_requests_total\{cache="stream",result="hit"\} [1-9]/);
  const up = await api(a.url, 'POST', '/graphql', {
    token: s.user.token,
    body: {
      query: 'mutation($s: ID!) { updateStream(streamId: $s, title: "renamed") { title } }',
      variables: { s: s.id },
    },
  });
  assert.equal(up.status, 200, JSON.stringify(up.body));
  assert.equal(up.body.data.updateStream.title, 'renamed', JSON.stringify(up.body));
  assert.equal(await get(b), 'renamed');
});

test('redis restarted empty: the nodes write their counts again', async () => {
  const s = await liveStream(a, 'cz');
  const zoe = await register(a.url, 'czu');
  const { n, r } = await authed(a, zoe);
  assert.equal(r.ok, true, JSON.stringify(r));
  const v = await Native.open(a.wsUrl);
  await v.send('subscribe', { channel: `stream:${s.id}` });
  const w = await Native.open(b.wsUrl);
  await w.send('subscribe', { channel: `chat:${s.id}` });
  await eventually(() => viewers(b, s.id), 2);
  assert.equal(await online(b, zoe.user.id), true);
  await redis.restart();        // no persistence: every key is gone
  // Each node finds itself unregistered at its next heartbeat and
  // writes its counts again: b sees a's user and both viewers.
  await eventually(() => online(b, zoe.user.id), true, 15000);
  await w.close();
  await eventually(() => viewers(a, s.id), 1, 15000);
  await n.close();
  await v.close();
  await eventually(() => online(b, zoe.user.id), false);
});

test('redis down: the nodes fail open, then count together again', async () => {
  const s = await liveStream(a, 'cd');
  const yan = await register(a.url, 'cdu');
  await redis.kill();
  // Counted on its node only (that node's own cap still holds).
  const { n, r } = await authed(a, yan);
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(await online(a, yan.user.id), true);
  assert.equal(await online(b, yan.user.id), false);
  // redis.rate-limit-down = local: the node's own bucket.
  const c = await api(b.url, 'POST', `/api/v1/streams/${s.id}/chat`,
    { body: { text: 'while down' }, token: yan.token });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  await redis.start();
  // Once redis answers, the heartbeat writes the counts again.
  await eventually(() => online(b, yan.user.id), true, 15000);
  await n.close();
  await eventually(() => online(b, yan.user.id), false);
});

test('the REST register/login limit per address is shared by the nodes', async () => {
  // 10 a minute per client address, over both nodes: spend what is left
  // of it on node a, then node b has nothing left either (a token takes
  // 6 s to come back).
  const body = { username: 'nobody_here', password: 'wrong-password' };
  let r;
  for (let i = 0; i < 20; i++) {
    r = await api(a.url, 'POST', '/api/v1/auth/login', { body });
    if (r.status === 429) break;
    assert.equal(r.status, 401, JSON.stringify(r.body));
  }
  assert.equal(r.status, 429, JSON.stringify(r.body));
  r = await api(b.url, 'POST', '/api/v1/auth/login', { body });
  assert.equal(r.status, 429, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'rate_limited');
});

test('bus = redis:// alone makes the nodes share their state too', async () => {
  const d = mkdtempSync(path.join(tmpdir(), 'streamhub-cluster-bus-'));
  // A cluster of their own on the same redis (its own key prefix).
  const args = ['--bus', redis.uri, '--redis.node-ttl-ms', '1000',
    '--redis.key-prefix', 'bus-only:'];
  const p = await startServer({ dir: d, args });
  const q = await startServer({ dir: d, args });
  try {
    const u = await register(q.url, 'cb');
    const { n, r } = await authed(p, u);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(await online(q, u.user.id), true);
    await n.close();
    await eventually(() => online(q, u.user.id), false);
  } finally {
    for (const s of [p, q]) {
      const r = await s.stop();
      assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${s.stderr()}`);
    }
    rmSync(d, { recursive: true, force: true });
  }
});
