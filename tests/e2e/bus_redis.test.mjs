// tests/e2e/bus_redis.test.mjs: two streamhubd on one SQLite file and one
// Redis (bus = redis://): one offset sequence per channel across nodes,
// resuming on the other node, and Redis restarted, killed and frozen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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

async function newStream(url) {
  const u = await register(url, 'rb');
  const st = await api(url, 'POST', '/api/v1/streams',
    { token: u.token, body: { title: 'redis bus' } });
  assert.equal(st.status, 201, JSON.stringify(st.body));
  return { user: u, sid: st.body.id };
}

test('chat across two nodes: one offset sequence, in order on both', async () => {
  const redis = await startRedis();
  const n = await twoNodes(redis);
  const { user, sid } = await newStream(n.a.url);
  const chan = `chat:${sid}`;
  const wa = await Native.open(n.a.wsUrl);
  const wb = await Native.open(n.b.wsUrl);
  assert.equal((await wa.send('subscribe', { channel: chan })).ok, true);
  assert.equal((await wb.send('subscribe', { channel: chan })).ok, true);
  const sa = await Native.open(n.a.wsUrl);
  const sb = await Native.open(n.b.wsUrl);
  await sa.send('auth', { token: user.token });
  await sb.send('auth', { token: user.token });
  const acked = [];
  await Promise.all([sa, sb].map(async (c, k) => {
    for (let i = 0; i < 20; i++) {
      const r = await c.send('chat.send', { streamId: sid, text: `n${k}-${i}` });
      assert.equal(r.ok, true, JSON.stringify(r));
      acked.push(r.result.message.offset);
    }
  }));
  // One sequence: 40 distinct offsets, no repeat across nodes.
  assert.equal(new Set(acked).size, 40);
  const ea = await wa.waitEvents(40, chatOf);
  const eb = await wb.waitEvents(40, chatOf);
  const oa = ea.map((e) => e.offset);
  const ob = eb.map((e) => e.offset);
  assert.deepEqual(oa, [...acked].sort((x, y) => x - y));
  assert.deepEqual(ob, oa);
  for (const c of [wa, wb, sa, sb]) await c.close();
  await n.stop();
  await redis.stop();
});

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

  await redis.kill();
  await waitFor('readyz 503 on both nodes',
    async () => (await ready(n.a)) === 503 && (await ready(n.b)) === 503);
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
