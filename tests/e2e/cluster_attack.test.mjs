// tests/e2e/cluster_attack.test.mjs: hostile clients against streamhubd
// nodes sharing one PostgreSQL (svc_pg.mjs) and one Redis (svc_redis.mjs),
// as the README's "Running a cluster" sets them up.  Each test names the
// risk it guards; every bad input gets a clear error and the nodes keep
// serving (their stop() fails the file if one died abnormally).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startServer, api, register, Native, API_KEY } from './harness.mjs';
import { startRedis } from './svc_redis.mjs';
import { startPg } from './svc_pg.mjs';

let pg;
let redis;
let nodes = [];
let dbSeq = 0;
before(async () => {
  pg = await startPg();
  redis = await startRedis();
});
after(async () => {
  for (const n of nodes.splice(0)) await n.stop();
  await redis?.stop();
  await pg?.stop();
});

// @n nodes on a fresh database of the one PostgreSQL, and the one Redis
// under a key prefix of their own.
async function cluster(n, extra = []) {
  const db = `attack${++dbSeq}`;
  pg.psql(`CREATE DATABASE ${db}`, 'postgres');
  const prefix = `a${process.pid}x${dbSeq}:`;
  const started = [];
  for (let i = 0; i < n; i++) {
    started.push(await startServer({
      args: ['--store', pg.uri(db), '--store.pool-size', '2',
             '--bus', redis.uri, '--bus.redis-key-prefix', prefix,
             '--chat.rate-limit', '100000', '--bus.redis-timeout-ms', '1000',
             ...extra],
    }));
  }
  nodes.push(...started);
  return started;
}

async function waitFor(what, fn, ms = 15000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ready = async (n) => (await fetch(`${n.url}/readyz`)).status;

async function newStream(url) {
  const u = await register(url, 'ka');
  const st = await api(url, 'POST', '/api/v1/streams',
    { token: u.token, body: { title: 'attack' } });
  assert.equal(st.status, 201, JSON.stringify(st.body));
  return { user: u, sid: st.body.id };
}

// Risk: a NUL in a native command's string cut it short in C, so that
// "live\u0000junk" subscribed to "live" (REST already refuses NUL).
test('a U+0000 in a native command string is a bad_request, not a shorter name', async () => {
  const [a, b] = await cluster(2);
  const c = await Native.open(b.wsUrl);
  const nul = 'strings must not contain U+0000';
  for (const [op, fields, message] of [
    ['subscribe', { channel: 'live\u0000junk' }, nul],
    ['subscribe', { channel: 'app:x\u0000y' }, nul],
    ['unsubscribe', { channel: 'live\u0000' }, nul],
    ['ping\u0000x', {}, nul],
    ['subscribe', { channel: 'live', since: { epoch: 'ab\u0000cd', offset: 0 } },
     'since must be {"epoch": string, "offset": integer >= 0}'],
  ]) {
    const r = await c.send(op, fields);
    assert.deepEqual(r.error, { code: 'bad_request', message },
                     JSON.stringify([op, fields]));
  }
  // Nothing was subscribed (so "live" is not taken yet) and the
  // connection still serves.
  const again = await c.send('subscribe', { channel: 'live' });
  assert.equal(again.ok, true, JSON.stringify(again));
  assert.equal((await c.send('ping')).ok, true);
  const rest = await api(a.url, 'POST', '/api/v1/publish',
    { apiKey: API_KEY, body: { channel: 'app:x\u0000y', data: {} } });
  assert.equal(rest.status, 400);
  await c.close();
});

// The errors of a graphql-ws subscription, or 'complete' if it ended
// without one (each case below is refused, so one of them comes).
function subscribeOnce(client, query, variables) {
  return new Promise((resolve) => {
    client.subscribe({ query, variables }, {
      next: () => {},
      error: (e) => resolve(e),
      complete: () => resolve('complete'),
    });
  });
}

// Risk: GraphQL ids were used as C strings, so "<id>\u0000junk" named
// <id>, and a chatMessages streamId too long for the channel buffer was
// cut to a shorter, valid channel and subscribed without a word.
test('GraphQL: an ID holding U+0000 or too long for a channel is refused', async () => {
  const [a, b] = await cluster(2);
  const { sid } = await newStream(a.url);
  const gql = async (query, variables) => {
    const r = await fetch(`${b.url}/graphql`, { method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }) });
    return { status: r.status, body: await r.json() };
  };
  const byVar = await gql('query($id: ID!) { stream(id: $id) { id } }',
                          { id: `${sid}\u0000junk` });
  assert.equal(byVar.status, 400, JSON.stringify(byVar.body));
  assert.match(byVar.body.errors[0].message,
               /ID cannot represent a value holding U\+0000/);
  assert.equal(byVar.body.data, undefined);
  const byLiteral = await gql(
    `{ chatHistory(streamId: "${sid}\\u0000junk") { edges { node { id } } } }`);
  assert.equal(byLiteral.status, 400, JSON.stringify(byLiteral.body));
  assert.match(byLiteral.body.errors[0].message,
               /ID cannot represent a value holding U\+0000/);

  const client = createClient({ url: `${b.wsUrl}/graphql`,
    webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
  const q = 'subscription($id: ID!) { chatMessages(streamId: $id) { offset } }';
  const long = await subscribeOnce(client, q, { id: 'z'.repeat(10000) });
  assert.deepEqual(long.map((e) => [e.message, e.extensions?.code]),
    [['streamId must be at most 120 bytes.', 'BAD_USER_INPUT']]);
  const nul = await subscribeOnce(client, q, { id: `${sid}\u0000junk` });
  assert.match(nul[0].message, /ID cannot represent a value holding U\+0000/);
  await client.dispose();
});

// Risk: chat.send refused while Redis was frozen may still have claimed
// offsets once Redis ran again; those claims, never released, must not
// lose or reorder the messages acknowledged after it (they wait for the
// claims' deadline, then go out), nor let a refused one appear.
test('Redis frozen under chat: refused sends never appear, acknowledged ones all arrive once, in order, on the other node', async () => {
  const [a, b] = await cluster(2, ['--bus.redis-claim-timeout-ms', '1500']);
  const { user, sid } = await newStream(a.url);
  const chan = `chat:${sid}`;
  const sender = await Native.open(a.wsUrl);
  assert.equal((await sender.send('auth', { token: user.token })).ok, true);
  const first = await sender.send('chat.send', { streamId: sid, text: 'before' });
  assert.equal(first.ok, true, JSON.stringify(first));
  const w = await Native.open(b.wsUrl);
  const sub = await w.send('subscribe', { channel: chan });
  assert.equal(sub.ok, true);

  // A subscribe while Redis is frozen is bus_redis.test.mjs's: answered
  // from what the node holds, or refused once the deadline passes.
  await redis.freeze();
  try {
    const frozen = await Promise.all(Array.from({ length: 5 }, (_, i) =>
      sender.send('chat.send', { streamId: sid, text: `refused${i}` })));
    for (const r of frozen) {
      assert.equal(r.ok, undefined, JSON.stringify(r));
      assert.equal(r.error.code, 'internal');
      assert.match(r.error.message, /^bus: redis/);
    }
  } finally {
    await redis.thaw();   // never leave the next test a frozen Redis
  }
  await waitFor('both nodes ready',
    async () => (await ready(a)) === 200 && (await ready(b)) === 200);
  const acked = [];
  for (let i = 0; i < 3; i++) {
    const r = await sender.send('chat.send', { streamId: sid, text: `after${i}` });
    assert.equal(r.ok, true, JSON.stringify(r));
    acked.push(r.result.message.offset);
  }
  for (let i = 1; i < acked.length; i++) assert.ok(acked[i] > acked[i - 1]);
  const isChat = (e) => e.event?.type === 'chat.message';
  // A subscriber resuming on the other node from before the freeze.
  const r = await Native.open(b.wsUrl);
  const res = await r.send('subscribe', { channel: chan,
    since: { epoch: sub.result.epoch, offset: first.result.message.offset } });
  assert.equal(res.result.recovered, true, JSON.stringify(res));
  const evs = await r.waitEvents(3, isChat, 15000);
  assert.deepEqual(evs.map((e) => [e.offset, e.event.data.text]),
    acked.map((o, i) => [o, `after${i}`]));
  const h = await api(b.url, 'GET', `/api/v1/streams/${sid}/chat?last=50`);
  assert.deepEqual(h.body.items.map((m) => m.text),
                   ['before', 'after0', 'after1', 'after2']);
  for (const c of [sender, w, r]) await c.close();
});

// Risk: Redis losing its data (FLUSHALL) while chat claims are out on
// both nodes; the new epoch's numbering must start above every offset
// handed out, so that no two messages ever share one, and nothing
// acknowledged may go missing from the history.
test('FLUSHALL again and again under chat from two nodes: every acknowledged message kept, no offset twice', async () => {
  const [a, b] = await cluster(2);
  const { sid } = await newStream(a.url);
  const senders = [];
  for (const n of [a, b, a, b]) {
    const u = await register(n.url, 'kf');
    const c = await Native.open(n.wsUrl);
    assert.equal((await c.send('auth', { token: u.token })).ok, true);
    senders.push(c);
  }
  // The first sender flushes Redis before each of its sends while the
  // others keep sending, so that flushes meet claims in flight.
  const acked = new Map();            // text -> offset
  await Promise.all(senders.map(async (c, j) => {
    for (let i = 0; i < 25; i++) {    /* 100 in all: one history page */
      if (j === 0) {
        assert.match(await redis.command(['FLUSHALL']), /^\+OK/);
      }
      const text = `f${j}_${i}`;
      const r = await c.send('chat.send', { streamId: sid, text });
      assert.equal(r.ok, true, JSON.stringify(r));
      acked.set(text, r.result.message.offset);
    }
  }));
  const offsets = [...acked.values()];
  assert.equal(new Set(offsets).size, offsets.length,
               `an offset was handed out twice: ${offsets}`);
  const h = await api(b.url, 'GET', `/api/v1/streams/${sid}/chat?last=100`);
  assert.equal(h.status, 200);
  assert.deepEqual(new Map(h.body.items.map((m) => [m.text, m.offset])), acked);
  for (const c of senders) await c.close();
});

// Defect: with PostgreSQL down, a read whose caller wanted no error text
// logged "store reconnect failed" with "error": null, so the operator
// saw no reason.  Last in the file: it stops the shared PostgreSQL.
test('PostgreSQL stopped: requests fail with a clear error, the log says why, and the nodes heal', async () => {
  const [a, b] = await cluster(2);
  const { user, sid } = await newStream(a.url);
  const sender = await Native.open(a.wsUrl);
  assert.equal((await sender.send('auth', { token: user.token })).ok, true);
  const one = await sender.send('chat.send', { streamId: sid, text: 'one' });
  assert.equal(one.ok, true, JSON.stringify(one));

  await pg.stopServer();
  const refused = await sender.send('chat.send', { streamId: sid, text: 'lost' });
  assert.equal(refused.error?.code, 'internal', JSON.stringify(refused));
  const h = await api(b.url, 'GET', `/api/v1/streams/${sid}/chat?last=5`);
  assert.equal(h.status, 500);
  assert.equal(h.body.error.code, 'internal');
  const lines = () => [a, b].flatMap((n) => n.stderr().split('\n'))
    .filter((l) => l.includes('"store reconnect failed"'))
    .map((l) => JSON.parse(l));
  await waitFor('a reconnect failure logged', () => lines().length > 0);
  for (const l of lines())
    assert.ok(typeof l.error === 'string' && l.error.length > 0,
              `no reason logged: ${JSON.stringify(l)}`);

  await pg.start();
  await waitFor('chat served again', async () =>
    (await sender.send('chat.send', { streamId: sid, text: 'back' })).ok);
  const after = await api(b.url, 'GET', `/api/v1/streams/${sid}/chat?last=5`);
  assert.deepEqual(after.body.items.map((m) => m.text), ['one', 'back']);
  await sender.close();
});
