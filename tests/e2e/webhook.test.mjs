// tests/e2e/webhook.test.mjs: push webhooks (push-webhook) against a
// receiver written here with node's http module: signed notifications for
// users with no open connection, replays refusable by the signed
// timestamp, a stream going live pushed to each offline follower,
// retries with backoff, the give-up rule into webhook_dead, a
// slow receiver for one user never holding up another's, deliveries that
// survive kill -9, and nothing pushed to a user who is online.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { startServer, register, api, Native } from './harness.mjs';

const SECRET = 'webhook-secret-0123456789abcdef';

// A receiver: @answer(req, res, d) answers each delivery d ({ id, headers,
// body, json, at }) or holds it.  Every delivery is kept in order.
const receivers = [];
async function receiver(answer) {
  const got = [];
  const waiters = new Set();
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const d = { id: req.headers['streamhub-event-id'], headers: req.headers,
                  body, json: JSON.parse(body), at: Date.now() };
      got.push(d);
      answer(req, res, d);
      for (const w of [...waiters]) w();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const r = {
    url: `http://127.0.0.1:${server.address().port}/push`,
    got,
    until(pred, ms = 20000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(got)) return false;
          clearTimeout(t);
          waiters.delete(check);
          resolve(got);
          return true;
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver: condition not met; got ${JSON.stringify(got.map((g) => [g.json.userId, g.headers['streamhub-attempt']]))}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    close() {
      receivers.splice(receivers.indexOf(r), 1);
      for (const s of sockets) s.destroy();
      return new Promise((res) => server.close(res));
    },
  };
  receivers.push(r);
  return r;
}

const servers = [];
after(async () => {
  for (const s of [...servers]) await s.stop();
  for (const r of [...receivers]) await r.close();
});

async function serverFor(url, extra = [], opts = {}) {
  const s = await startServer({
    ...opts,
    args: ['--push-webhook', url, '--push-webhook-secret', SECRET,
           '--push-webhook.timeout-ms', '1000',
           '--push-webhook.retry-base-ms', '100',
           '--outbox.poll-interval-ms', '50', ...extra],
  });
  servers.push(s);
  return s;
}

async function stop(s) {
  servers.splice(servers.indexOf(s), 1);
  const r = await s.stop();
  assert.equal(r.code, 0, s.stderr());
}

// @who follows @whom (GraphQL): a user.new_follower for @whom.
async function follow(base, who, whom) {
  const r = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${who.token}` },
    body: JSON.stringify({ query: 'mutation F($id: ID!) { follow(userId: $id) { id } }',
                           variables: { id: whom.user.id } }),
  });
  const j = await r.json();
  assert.equal(j.errors, undefined, JSON.stringify(j));
}

async function metric(base, name, labels = '') {
  const r = await api(base, 'GET', '/metrics');
  let sum;
  for (const line of String(r.body).split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

async function metricUntil(base, name, labels, pred, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await metric(base, name, labels);
    if (pred(v)) return v;
    if (Date.now() > end) throw new Error(`${name}{${labels}} stayed ${v}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sign = (id, ts, body) =>
  'sha256=' + createHmac('sha256', SECRET).update(id + ts + body).digest('hex');
const verifies = (d) => {
  const want = Buffer.from(sign(d.id, d.headers['streamhub-timestamp'], d.body));
  const got = Buffer.from(d.headers['streamhub-signature'] ?? '');
  return want.length === got.length && timingSafeEqual(want, got);
};

test('signed, replay-refusable notifications for offline users only', async () => {
  const rcv = await receiver((req, res) => res.end());
  const srv = await serverFor(rcv.url);
  const alice = await register(srv.url, 'wa');
  const bob = await register(srv.url, 'wb');
  const carol = await register(srv.url, 'wc');

  await follow(srv.url, bob, alice);
  await rcv.until((g) => g.some((d) => d.json.userId === alice.user.id));
  const d = rcv.got.find((x) => x.json.userId === alice.user.id);
  assert.equal(d.headers['content-type'], 'application/json');
  assert.equal(d.json.type, 'user.new_follower');
  assert.equal(d.json.id, d.id);
  assert.match(d.id, /^[0-9a-f-]{36}$/);
  assert.ok(d.json.data && typeof d.json.data === 'object');
  assert.equal(d.headers['streamhub-attempt'], '1');
  // The signature verifies with the shared secret...
  assert.ok(verifies(d), JSON.stringify(d.headers));
  // ...and covers the timestamp: a replay cannot be given a fresh one,
  // so a receiver refusing old timestamps refuses replays.
  const ts = Number(d.headers['streamhub-timestamp']);
  assert.ok(Math.abs(ts - Date.now() / 1000) < 300, `timestamp ${ts}`);
  assert.notEqual(sign(d.id, String(ts + 600), d.body), d.headers['streamhub-signature']);
  assert.notEqual(sign(d.id, String(ts), d.body + ' '), d.headers['streamhub-signature']);

  // Online (an authenticated connection open): no webhook.
  const n = await Native.open(srv.wsUrl);
  assert.equal((await n.send('auth', { token: carol.token })).ok, true);
  const skipped = (await metric(srv.url, 'streamhub_webhook_skipped_online_total')) ?? 0;
  await follow(srv.url, bob, carol);
  await metricUntil(srv.url, 'streamhub_webhook_skipped_online_total', '',
    (v) => v === skipped + 1);
  assert.equal(rcv.got.filter((x) => x.json.userId === carol.user.id).length, 0);
  await n.close();
  assert.equal(await metric(srv.url, 'streamhub_webhook_deliveries_total',
    'outcome="delivered"'), 1);
  await stop(srv);
  await rcv.close();
});

test('a stream going live is pushed to each offline follower, not to one online', async () => {
  const rcv = await receiver((req, res) => res.end());
  const srv = await serverFor(rcv.url);
  const star = await register(srv.url, 'ls');
  const away = [await register(srv.url, 'la'), await register(srv.url, 'lb')];
  const here = await register(srv.url, 'lc');
  for (const f of [...away, here]) await follow(srv.url, f, star);
  // The three new-follower pushes to star (offline) arrive first.
  await rcv.until((g) => g.filter((d) => d.json.userId === star.user.id).length === 3);
  const n = await Native.open(srv.wsUrl);
  assert.equal((await n.send('auth', { token: here.token })).ok, true);
  const skipped = (await metric(srv.url, 'streamhub_webhook_skipped_online_total')) ?? 0;

  const r = await api(srv.url, 'POST', '/api/v1/streams',
    { token: star.token, body: { title: 'pushed' } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  await rcv.until((g) => g.filter((d) => d.json.type === 'stream.live').length === 2);
  await metricUntil(srv.url, 'streamhub_webhook_skipped_online_total', '',
    (v) => v === skipped + 1);
  const live = rcv.got.filter((d) => d.json.type === 'stream.live');
  assert.deepEqual(live.map((d) => d.json.userId).sort(),
    away.map((u) => u.user.id).sort());
  for (const d of live) {
    assert.ok(verifies(d), JSON.stringify(d.headers));
    // One id per follower, the body's id the header's.
    assert.equal(d.json.id, d.id);
    assert.ok(d.id.endsWith(`:${d.json.userId}`), d.id);
    assert.equal(d.json.data.id, r.body.id);
    assert.equal(d.json.data.broadcaster.id, star.user.id);
  }
  assert.equal(new Set(live.map((d) => d.id)).size, 2);
  await n.close();
  await stop(srv);
  await rcv.close();
});

test('500 is retried with backoff until delivered; always failing goes to webhook_dead', async () => {
  let failFor = new Set();
  const tries = new Map();
  const rcv = await receiver((req, res, d) => {
    const n = (tries.get(d.id) ?? 0) + 1;
    tries.set(d.id, n);
    // One user's receiver is broken for good; another's for two tries.
    res.statusCode = failFor.has(d.json.userId) ? 500 : n <= 2 ? 500 : 200;
    res.end();
  });
  const srv = await serverFor(rcv.url, ['--push-webhook.max-attempts', '3']);
  const alice = await register(srv.url, 'wd');
  const bob = await register(srv.url, 'we');
  const dave = await register(srv.url, 'wf');
  failFor = new Set([dave.user.id]);

  await follow(srv.url, bob, alice);
  await rcv.until((g) => g.filter((d) => d.json.userId === alice.user.id).length >= 3);
  await metricUntil(srv.url, 'streamhub_webhook_deliveries_total',
    'outcome="delivered"', (v) => v === 1);
  const mine = rcv.got.filter((d) => d.json.userId === alice.user.id);
  assert.equal(mine.length, 3);
  assert.deepEqual(mine.map((d) => d.headers['streamhub-attempt']), ['1', '2', '3']);
  assert.equal(new Set(mine.map((d) => d.id)).size, 1);
  for (const d of mine) assert.ok(verifies(d));
  // Backoff: 100 ms doubling, at least half of it waited (lower bounds).
  assert.ok(mine[1].at - mine[0].at >= 45, `${mine[1].at - mine[0].at} ms`);
  assert.ok(mine[2].at - mine[1].at >= 95, `${mine[2].at - mine[1].at} ms`);

  // Always failing: after max-attempts, into webhook_dead, not retried.
  await follow(srv.url, bob, dave);
  await metricUntil(srv.url, 'streamhub_webhook_deliveries_total',
    'outcome="dead"', (v) => v === 1);
  const dead = execFileSync('sqlite3', [path.join(srv.dir, 'streamhub.db'),
    'SELECT user_id, attempts, last_status FROM webhook_dead; ' +
    'SELECT count(*) FROM webhook_deliveries;'], { encoding: 'utf8' });
  assert.equal(dead, `${dave.user.id}|3|500\n0\n`);
  assert.equal(rcv.got.filter((d) => d.json.userId === dave.user.id).length, 3);
  await stop(srv);
  await rcv.close();
});

test('a receiver slow for one user does not hold up another user', async () => {
  let held = [];
  let slowUser = '';
  const rcv = await receiver((req, res, d) => {
    if (d.json.userId === slowUser) held.push(res);   // answered later
    else res.end();
  });
  const srv = await serverFor(rcv.url, ['--push-webhook.timeout-ms', '30000']);
  const alice = await register(srv.url, 'wg');
  const bob = await register(srv.url, 'wh');
  const erin = await register(srv.url, 'wi');
  slowUser = alice.user.id;
  await follow(srv.url, bob, alice);
  await rcv.until((g) => g.some((d) => d.json.userId === alice.user.id));
  // Alice's request is still open: Erin's is delivered meanwhile.
  await follow(srv.url, bob, erin);
  await rcv.until((g) => g.some((d) => d.json.userId === erin.user.id));
  assert.equal(held.length, 1);
  assert.equal(await metricUntil(srv.url, 'streamhub_webhook_deliveries_total',
    'outcome="delivered"', (v) => v === 1), 1);
  for (const res of held) res.end();
  await metricUntil(srv.url, 'streamhub_webhook_deliveries_total',
    'outcome="delivered"', (v) => v === 2);
  await stop(srv);
  await rcv.close();
});

test('kill -9 with a delivery in flight: delivered after the restart', async () => {
  let hold = true;
  const rcv = await receiver((req, res) => { if (!hold) res.end(); });
  const srv = await serverFor(rcv.url, [], { keepDir: true });
  const alice = await register(srv.url, 'wj');
  const bob = await register(srv.url, 'wk');
  await follow(srv.url, bob, alice);
  await rcv.until((g) => g.length === 1);
  srv.child.kill('SIGKILL');
  await srv.exited;
  servers.splice(servers.indexOf(srv), 1);
  await srv.stop();
  hold = false;
  const srv2 = await serverFor(rcv.url, [], { dir: srv.dir });
  await metricUntil(srv2.url, 'streamhub_webhook_deliveries_total',
    'outcome="delivered"', (v) => v === 1);
  const mine = rcv.got.filter((d) => d.json.userId === alice.user.id);
  assert.ok(mine.length >= 2);
  assert.equal(new Set(mine.map((d) => d.id)).size, 1);
  assert.ok(verifies(mine[mine.length - 1]));
  await stop(srv2);
  await rcv.close();
  rmSync(srv.dir, { recursive: true, force: true });
});

test('the webhook carries the trace of the request that caused it', async () => {
  const rcv = await receiver((req, res) => res.end());
  const otlp = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('{}')); });
  await new Promise((r) => otlp.listen(0, '127.0.0.1', r));
  const srv = await serverFor(rcv.url, ['--otlp-endpoint',
    `http://127.0.0.1:${otlp.address().port}`]);
  const alice = await register(srv.url, 'wl');
  const bob = await register(srv.url, 'wm');
  const trace = randomBytes(16).toString('hex');
  const r = await fetch(`${srv.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bob.token}`,
               traceparent: `00-${trace}-${randomBytes(8).toString('hex')}-01` },
    body: JSON.stringify({ query: 'mutation F($id: ID!) { follow(userId: $id) { id } }',
                           variables: { id: alice.user.id } }),
  });
  assert.equal(r.status, 200);
  await rcv.until((g) => g.some((d) => d.json.userId === alice.user.id));
  const d = rcv.got.find((x) => x.json.userId === alice.user.id);
  assert.match(d.headers.traceparent ?? JSON.stringify(d), new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
  await stop(srv);
  await rcv.close();
  otlp.closeAllConnections();
  await new Promise((res) => otlp.close(res));
});
