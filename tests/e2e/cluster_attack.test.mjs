// tests/e2e/cluster_attack.test.mjs: hostile clients against streamhubd
// nodes sharing one PostgreSQL (svc_pg.mjs) and one Redis (svc_redis.mjs),
// as the README's "Running a cluster" sets them up.  Each test names the
// risk it guards; every bad input gets a clear error and the nodes keep
// serving (their stop() fails the file if one died abnormally).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
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
