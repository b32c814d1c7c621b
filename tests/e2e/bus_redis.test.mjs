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
