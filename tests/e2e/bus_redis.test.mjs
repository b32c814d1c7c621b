// tests/e2e/bus_redis.test.mjs: two streamhubd on one SQLite file and one
// Redis (bus = redis://): one offset sequence per channel across nodes,
// resuming on the other node, and Redis restarted, killed and frozen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startServer, api, register, Native } from './harness.mjs';
import { startRedis } from './svc_redis.mjs';

const chatOf = (e) => e.event?.type === 'chat.message';

// Two nodes on one store directory and one Redis (a key prefix of their
// own, so that tests do not see each other's channels).
async function twoNodes(redis, extra = []) {
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-bus-'));
  const args = ['--bus', redis.uri, '--bus.redis-key-prefix',
    `t${process.pid}${Math.random().toString(36).slice(2, 8)}:`,
    '--chat.rate-limit', '100000', '--bus.redis-timeout-ms', '1500',
    ...extra];
  const a = await startServer({ dir, args });
  const b = await startServer({ dir, args });
  return {
    a, b,
    async stop() {
      await a.stop();
      await b.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
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

// The close of @c's connection, or a failure past a deadline.
function closedWithin(c, ms = 15000) {
  let t;
  return Promise.race([
    c.closed.finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error('the connection was not closed')), ms);
    }),
  ]);
}

async function newStream(url) {
  const u = await register(url, 'rb');
  const st = await api(url, 'POST', '/api/v1/streams',
    { token: u.token, body: { title: 'redis bus' } });
  assert.equal(st.status, 201, JSON.stringify(st.body));
  return { user: u, sid: st.body.id };
}

for (const durability of ['commit', 'async']) {
  test(`chat across two nodes (chat.durability ${durability}): one offset sequence, in order on both`, async () => {
    const redis = await startRedis();
    const n = await twoNodes(redis, ['--chat.durability', durability]);
    const { user, sid } = await newStream(n.a.url);
    const chan = `chat:${sid}`;
    const wa = await Native.open(n.a.wsUrl);
    const wb = await Native.open(n.b.wsUrl);
    assert.equal((await wa.send('subscribe', { channel: chan })).ok, true);
    assert.equal((await wb.send('subscribe', { channel: chan })).ok, true);
    // Four senders per node at once: claims from both nodes interleave.
    const senders = [];
    for (let k = 0; k < 8; k++) {
      const c = await Native.open((k % 2 ? n.b : n.a).wsUrl);
      await c.send('auth', { token: user.token });
      senders.push(c);
    }
    const acked = [];
    await Promise.all(senders.map(async (c, k) => {
      for (let i = 0; i < 10; i++) {
        const r = await c.send('chat.send', { streamId: sid, text: `n${k}-${i}` });
        assert.equal(r.ok, true, JSON.stringify(r));
        acked.push(r.result.message.offset);
      }
    }));
    // One sequence: 80 distinct offsets, no repeat across nodes.
    assert.equal(new Set(acked).size, 80);
    const ea = await wa.waitEvents(80, chatOf);
    const eb = await wb.waitEvents(80, chatOf);
    const oa = ea.map((e) => e.offset);
    const ob = eb.map((e) => e.offset);
    assert.deepEqual(oa, [...acked].sort((x, y) => x - y));
    assert.deepEqual(ob, oa);
    for (const c of [wa, wb, ...senders]) await c.close();
    await n.stop();
    await redis.stop();
  });
}

// Subscribe on @url's node from @since; returns { client, reply }.
async function subscribeAt(wsUrl, chan, since) {
  const c = await Native.open(wsUrl);
  const reply = await c.send('subscribe', since ? { channel: chan, since } : { channel: chan });
  assert.equal(reply.ok, true, JSON.stringify(reply));
  return { c, reply: reply.result };
}

async function send(c, sid, text) {
  const r = await c.send('chat.send', { streamId: sid, text });
  assert.equal(r.ok, true, JSON.stringify(r));
  return r.result.message.offset;
}

test('resume on the other node: exactly the missed events, then live; twice the same', async () => {
  const redis = await startRedis();
  const n = await twoNodes(redis);
  const { user, sid } = await newStream(n.a.url);
  const chan = `chat:${sid}`;
  const sender = await Native.open(n.a.wsUrl);
  await sender.send('auth', { token: user.token });
  const first = await subscribeAt(n.a.wsUrl, chan);
  const seen = [];
  for (let i = 0; i < 5; i++) seen.push(await send(sender, sid, `before-${i}`));
  const got = await first.c.waitEvents(5, chatOf);
  const since = { epoch: first.reply.epoch, offset: got[4].offset };
  await first.c.close();
  const missed = [];
  for (let i = 0; i < 7; i++) missed.push(await send(sender, sid, `missed-${i}`));

  const replays = [];
  const lives = [];
  for (const node of [n.b, n.a, n.b]) {
    const r = await subscribeAt(node.wsUrl, chan, since);
    assert.equal(r.reply.recovered, true);
    assert.equal(r.reply.epoch, since.epoch);
    const ev = await r.c.waitEvents(7, chatOf);
    replays.push(ev.slice(0, 7).map((e) => [e.offset, e.event.data.text]));
    // Then live events, after the replay and without a duplicate.
    lives.push(await send(sender, sid, `live-${lives.length}`));
    const want = [...missed, ...lives];
    const all = await r.c.waitEvents(want.length, chatOf);
    assert.deepEqual(all.map((e) => e.offset), want,
      'missed then live, in order, once each');
    await r.c.close();
  }
  assert.deepEqual(replays[0], replays[1]);
  assert.deepEqual(replays[1], replays[2]);
  assert.deepEqual(replays[0].map((x) => x[1]),
    missed.map((_, i) => `missed-${i}`));
  await sender.close();
  await n.stop();
  await redis.stop();
});

const ready = async (node) => (await api(node.url, 'GET', '/readyz')).status;
const publish = (node, chan, data) => api(node.url, 'POST', '/api/v1/publish',
  { apiKey: 'e2e-api-key-0123456789', body: { channel: chan, data } });

test('Redis frozen (SIGSTOP): readyz 503, publish refused, then back with nothing lost', async () => {
  const redis = await startRedis();
  const n = await twoNodes(redis);
  const chan = `app:frozen${process.pid}`;
  const w = await subscribeAt(n.b.wsUrl, chan);
  const ok = await publish(n.a, chan, { k: 1 });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const ev = await w.c.waitEvents(1, (e) => e.channel === chan);
  const since = { epoch: w.reply.epoch, offset: ev[0].offset };

  await redis.freeze();
  await waitFor('readyz 503 on both nodes',
    async () => (await ready(n.a)) === 503 && (await ready(n.b)) === 503);
  // The subscriber may have missed events: told to resume (1001).
  assert.equal((await closedWithin(w.c)).code, 1001);
  const refused = await publish(n.a, chan, { k: 2 });
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, 'internal');

  await redis.thaw();
  await waitFor('readyz 200 on both nodes',
    async () => (await ready(n.a)) === 200 && (await ready(n.b)) === 200);
  const again = await publish(n.a, chan, { k: 3 });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  // The history survived the freeze: resuming is recovered and gives the
  // one event published since, not the refused one.
  const r = await subscribeAt(n.b.wsUrl, chan, since);
  assert.equal(r.reply.recovered, true);
  const evs = await r.c.waitEvents(1, (e) => e.channel === chan);
  assert.deepEqual(evs.map((e) => e.event.data), [{ k: 3 }]);
  await r.c.close();
  await w.c.close();
  await n.stop();
  await redis.stop();
});

test('Redis frozen (SIGSTOP): a subscribe waiting on Redis stalls no other client of the node', async () => {
  const redis = await startRedis();
  const n = await twoNodes(redis);
  const chan = `app:stall${process.pid}`;
  const other = await Native.open(n.a.wsUrl);
  const sub = await Native.open(n.a.wsUrl);
  assert.equal((await other.send('ping')).ok, true);

  await redis.freeze();
  let answer = null;
  const subscribing = sub.send('subscribe', { channel: chan })
    .then((r) => { answer = r; return r; });
  // The node answers others while the subscribe waits on the frozen Redis:
  // both complete before the subscriber has its answer.
  const h = await api(n.a.url, 'GET', '/healthz');
  assert.equal(h.status, 200);
  assert.equal((await other.send('ping')).ok, true);
  assert.equal(answer, null, 'the subscribe was answered before the others');
  // Unsubscribing before the subscription was made answers both commands.
  const quitter = await Native.open(n.a.wsUrl);
  const early = quitter.send('subscribe', { channel: chan });
  assert.equal((await quitter.send('unsubscribe', { channel: chan })).ok, true);
  assert.equal((await early).error.code, 'conflict');
  await quitter.close();
  // Past bus.redis-timeout-ms the subscriber is told: an error, not a
  // subscription that would never see an event.
  const r = await subscribing;
  assert.equal(r.ok, undefined, JSON.stringify(r));
  assert.equal(r.error.code, 'internal');

  await redis.thaw();
  await waitFor('readyz 200', async () => (await ready(n.a)) === 200);
  const again = await sub.send('subscribe', { channel: chan });
  assert.equal(again.ok, true, JSON.stringify(again));
  await other.close();
  await sub.close();
  await n.stop();
  await redis.stop();
});

test('Redis killed then started empty: 503 meanwhile, recovered false after, chat offsets never repeat', async () => {
  const redis = await startRedis();
  const n = await twoNodes(redis);
  const { user, sid } = await newStream(n.a.url);
  const chan = `chat:${sid}`;
  const sender = await Native.open(n.a.wsUrl);
  await sender.send('auth', { token: user.token });
  const w = await subscribeAt(n.b.wsUrl, chan);
  const before = [];
  for (let i = 0; i < 3; i++) before.push(await send(sender, sid, `b${i}`));
  await w.c.waitEvents(3, chatOf);
  const since = { epoch: w.reply.epoch, offset: before[2] };
  // A client with several subscriptions, one of them resumed (its own bus
  // subscription): it is closed once, whichever ends first.
  const many = await subscribeAt(n.b.wsUrl, chan, { epoch: since.epoch, offset: before[0] });
  assert.equal(many.reply.recovered, true);
  assert.equal((await many.c.send('subscribe', { channel: `app:k${process.pid}` })).ok, true);
  assert.equal((await many.c.send('subscribe', { channel: 'live' })).ok, true);

  await redis.kill();
  await waitFor('readyz 503 on both nodes',
    async () => (await ready(n.a)) === 503 && (await ready(n.b)) === 503);
  assert.deepEqual(await closedWithin(w.c), { code: 1001, reason: 'bus lost: resume' });
  assert.equal((await closedWithin(many.c)).code, 1001);
  const refused = await sender.send('chat.send', { streamId: sid, text: 'lost' });
  assert.equal(refused.ok, undefined, JSON.stringify(refused));
  assert.equal(refused.error.code, 'internal');

  await redis.start();                  // no persistence: every key gone
  await waitFor('readyz 200 on both nodes',
    async () => (await ready(n.a)) === 200 && (await ready(n.b)) === 200);
  const r = await subscribeAt(n.b.wsUrl, chan, since);
  assert.equal(r.reply.recovered, false, 'the history is gone: not recovered');
  assert.notEqual(r.reply.epoch, since.epoch);
  const after = await send(sender, sid, 'after');
  assert.ok(after > before[2], `offset ${after} repeats one of ${before}`);
  const evs = await r.c.waitEvents(1, chatOf);
  assert.equal(evs[0].offset, after);
  await r.c.close();
  await w.c.close();
  await sender.close();
  await n.stop();
  await redis.stop();
});

test('FLUSHALL renews the epoch: a resume from the old one is not recovered', async () => {
  const redis = await startRedis();
  const n = await twoNodes(redis);
  const chan = `app:flush${process.pid}`;
  assert.equal((await publish(n.a, chan, { k: 1 })).status, 200);
  const w = await subscribeAt(n.b.wsUrl, chan);
  const since = { epoch: w.reply.epoch, offset: w.reply.offset };
  assert.match(await redis.command(['FLUSHALL']), /^\+OK/);
  assert.equal((await publish(n.a, chan, { k: 2 })).status, 200);
  const r = await subscribeAt(n.a.wsUrl, chan, since);
  assert.equal(r.reply.recovered, false);
  assert.notEqual(r.reply.epoch, since.epoch);
  await r.c.close();
  await w.c.close();
  await n.stop();
  await redis.stop();
});

test('GraphQL on the other node: sinceEpoch resumes, HISTORY_LOST once Redis lost it', async () => {
  const redis = await startRedis();
  const n = await twoNodes(redis);
  const { user, sid } = await newStream(n.a.url);
  const say = async (text) => {
    const r = await api(n.a.url, 'POST', '/graphql', {
      token: user.token,
      body: { query: 'mutation M($s: ID!, $t: String!) { sendMessage(streamId: $s, text: $t) { offset } }',
        variables: { s: sid, t: text } },
    });
    assert.equal(r.body.errors, undefined, JSON.stringify(r.body));
    return r.body.data.sendMessage.offset;
  };
  const q = 'subscription C($s: ID!, $o: Int, $e: String) { chatMessages(streamId: $s, sinceOffset: $o, sinceEpoch: $e) { epoch offset message { text } } }';
  const c = createClient({ url: `${n.b.wsUrl}/graphql`, webSocketImpl: WebSocket,
    connectionParams: { token: user.token }, retryAttempts: 0, lazy: true });
  // Subscribe on node B; resolves with the first @count values, or rejects
  // with the operation's error.
  const take = (variables, count) => new Promise((resolve, reject) => {
    const values = [];
    const stop = c.subscribe({ query: q, variables }, {
      next: (v) => {
        values.push(v.data.chatMessages);
        if (values.length === count) { stop(); resolve(values); }
      },
      error: (e) => reject(e),
      complete: () => {},
    });
  });
  const offs = [await say('a'), await say('b'), await say('c')];
  // The epoch comes with the events: replay from the first on node B.
  const first = await take({ s: sid, o: offs[0] - 1 }, 3);
  assert.deepEqual(first.map((e) => e.message.text), ['a', 'b', 'c']);
  const ep = first[0].epoch;
  const replay = await take({ s: sid, o: offs[0], e: ep }, 2);
  assert.deepEqual(replay.map((e) => [e.offset, e.message.text]),
    [[offs[1], 'b'], [offs[2], 'c']]);
  assert.match(await redis.command(['FLUSHALL']), /^\+OK/);
  await assert.rejects(take({ s: sid, o: offs[2], e: ep }, 1), (err) => {
    assert.ok(Array.isArray(err), JSON.stringify(err));
    assert.equal(err[0].extensions.code, 'HISTORY_LOST');
    return true;
  });
  await c.dispose();
  await n.stop();
  await redis.stop();
});

test('a password and a database in the URI; a wrong password is not ready', async () => {
  const redis = await startRedis({ password: 's3cret' });
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-bus-'));
  const good = await startServer({ dir, args: ['--bus', `${redis.uri}/3`] });
  const chan = `app:auth${process.pid}`;
  const w = await subscribeAt(good.wsUrl, chan);
  assert.equal((await publish(good, chan, { k: 1 })).status, 200);
  const ev = await w.c.waitEvents(1, (e) => e.channel === chan);
  assert.deepEqual(ev[0].event.data, { k: 1 });
  assert.equal(await ready(good), 200);
  const bad = await startServer({ dir,
    args: ['--bus', `redis://:wrong@127.0.0.1:${redis.port}`] });
  assert.equal(await ready(bad), 503);
  const refused = await publish(bad, chan, { k: 2 });
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  await w.c.close();
  await bad.stop();
  await good.stop();
  rmSync(dir, { recursive: true, force: true });
  await redis.stop();
});

test('a node started before Redis becomes ready once Redis is up', async () => {
  const redis = await startRedis();
  await redis.kill();
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-bus-'));
  const node = await startServer({ dir,
    args: ['--bus', redis.uri, '--bus.redis-timeout-ms', '500'] });
  assert.equal(await ready(node), 503);
  const chan = `app:late${process.pid}`;
  assert.equal((await publish(node, chan, { k: 0 })).status, 503);
  await redis.start();
  await waitFor('readyz 200', async () => (await ready(node)) === 200);
  const w = await subscribeAt(node.wsUrl, chan);
  assert.equal((await publish(node, chan, { k: 1 })).status, 200);
  const ev = await w.c.waitEvents(1, (e) => e.channel === chan);
  assert.deepEqual(ev[0].event.data, { k: 1 });
  await w.c.close();
  await node.stop();
  rmSync(dir, { recursive: true, force: true });
  await redis.stop();
});
