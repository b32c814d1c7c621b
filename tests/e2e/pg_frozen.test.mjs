// tests/e2e/pg_frozen.test.mjs: streamhubd on a PostgreSQL that hangs.
// The whole cluster is stopped with SIGSTOP: its sockets stay open and
// fall silent, which no TCP timeout notices on loopback.  While it is
// frozen every request still gets an answer (never a hang): /healthz
// answers, requests that touch the store fail with the contract's
// INTERNAL once store.statement-timeout-ms passes (a chat message too,
// though it stays queued and may be stored later), /readyz says 503.
// After SIGCONT the same requests succeed without restarting streamhubd,
// and a chat message acknowledged before the freeze is still there.
// A statement whose work grows with the data (going live's fan-out) is
// not held to that short deadline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, register, api as harnessApi } from './harness.mjs';
import { startPg } from './svc_pg.mjs';

let pg;
before(async () => { pg = await startPg(); });
after(async () => { await pg?.stop(); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// JSON over HTTP with a deadline: a store that hangs fails the test.
const api = (base, method, p, opts = {}) =>
  harnessApi(base, method, p, { ...opts, timeoutMs: 30000 });

const gql = (srv, query, variables, token) =>
  api(srv.url, 'POST', '/graphql', { body: { query, variables }, token });

async function ok(srv, query, variables, token) {
  const r = await gql(srv, query, variables, token);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  return r.body.data;
}

async function readyEventually(srv, want) {
  const end = Date.now() + 30000;
  for (;;) {
    const r = await api(srv.url, 'GET', '/readyz');
    if (r.status === want) return r;
    assert.ok(Date.now() < end, `/readyz stayed ${r.status}: ${JSON.stringify(r.body)}`);
    await sleep(100);
  }
}

const SEND = 'mutation M($s: ID!, $t: String!) { sendMessage(streamId: $s, text: $t) { id offset } }';
const HISTORY = 'query H($s: ID!) { chatHistory(streamId: $s, last: 50) { edges { node { id } } } }';
const LOOKUP = 'query { user(username: "nobody") { id } }';

test('a frozen PostgreSQL fails requests fast, then they succeed after it thaws',
  { timeout: 120000 }, async () => {
    const srv = await startServer({
      args: ['--store', pg.uri(), '--store.pool-size', '2', '--workers', '2',
        '--store.statement-timeout-ms', '1000'],
    });
    const a = await register(srv.url, 'fa');
    const s = (await ok(srv, 'mutation { startStream(title: "frozen") { id } }', {}, a.token)).startStream;
    const acked = (await ok(srv, SEND, { s: s.id, t: 'before the freeze' }, a.token)).sendMessage;
    await readyEventually(srv, 200);

    pg.freeze();
    try {
      const live = await api(srv.url, 'GET', '/healthz');
      assert.equal(live.status, 200);
      // More requests than workers and store connections at once: each
      // gets its answer, none waits behind the others forever.
      const rs = await Promise.all(Array.from({ length: 8 }, () => gql(srv, LOOKUP)));
      for (const r of rs)
        assert.equal(r.body.errors?.[0]?.extensions?.code, 'INTERNAL', JSON.stringify(r.body));
      // A chat message waits for its batch to be stored (chat.durability
      // commit): its sender gets an error rather than wait for the thaw,
      // and so does history, which first waits for the queued messages.
      const sent = await gql(srv, SEND, { s: s.id, t: 'during the freeze' }, a.token);
      assert.equal(sent.body.errors?.[0]?.extensions?.code, 'INTERNAL', JSON.stringify(sent.body));
      const hist = await gql(srv, HISTORY, { s: s.id });
      assert.equal(hist.body.errors?.[0]?.extensions?.code, 'INTERNAL', JSON.stringify(hist.body));
      await readyEventually(srv, 503);
      assert.equal((await api(srv.url, 'GET', '/healthz')).status, 200);
      assert.match(srv.stderr(), /store\.statement-timeout-ms/);
    } finally {
      pg.thaw();
    }

    await readyEventually(srv, 200);
    // The first statement on each replaced session may still fail while
    // its reconnect backs off; then it succeeds.
    const end = Date.now() + 30000;
    for (;;) {
      const r = await gql(srv, LOOKUP);
      if (r.status === 200 && !r.body.errors) {
        assert.equal(r.body.data.user, null);
        break;
      }
      assert.equal(r.body.errors?.[0]?.extensions?.code, 'INTERNAL', JSON.stringify(r.body));
      assert.ok(Date.now() < end, `the store did not heal: ${JSON.stringify(r.body)}`);
      await sleep(100);
    }
    const after1 = (await ok(srv, SEND, { s: s.id, t: 'after the thaw' }, a.token)).sendMessage;
    assert.ok(after1.offset > acked.offset);
    const ids = (await ok(srv, HISTORY, { s: s.id })).chatHistory.edges.map((e) => e.node.id);
    assert.ok(ids.includes(acked.id), `acknowledged message ${acked.id} lost: ${ids}`);
    assert.ok(ids.includes(after1.id));
    await srv.stop();
  });

test('going live waits for its fan-out past store.statement-timeout-ms',
  { timeout: 120000 }, async () => {
    pg.psql('CREATE DATABASE slow', 'postgres');
    const srv = await startServer({
      args: ['--store', pg.uri('slow'), '--store.statement-timeout-ms', '1000'],
    });
    const a = await register(srv.url, 'la');
    const b = await register(srv.url, 'lb');
    await ok(srv, 'mutation F($u: ID!) { follow(userId: $u) { id } }', { u: a.user.id }, b.token);
    // A session holds a lock the fan-out's INSERT waits for, three times
    // the short deadline: the fan-out, whose work grows with the
    // followers, has store.bulk-statement-timeout-ms instead.
    const holder = pg.psqlAsync('BEGIN; LOCK TABLE notifications IN SHARE MODE; ' +
      'SELECT pg_sleep(3); COMMIT;', 'slow');
    const end = Date.now() + 30000;
    while (pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation " +
      "WHERE c.relname = 'notifications' AND l.mode = 'ShareLock' AND l.granted", 'slow') === '0') {
      assert.ok(Date.now() < end, 'the lock was not taken');
      await sleep(50);
    }
    const s = (await ok(srv, 'mutation { startStream(title: "slow fan-out") { id } }', {}, a.token)).startStream;
    assert.equal(await holder, 0);
    const notes = (await ok(srv, '{ notifications(first: 10) { edges { node { type } } } }', {}, b.token)).notifications;
    assert.deepEqual(notes.edges.map((e) => e.node.type), ['STREAM_LIVE']);
    assert.ok(s.id);
    await srv.stop();
  });
