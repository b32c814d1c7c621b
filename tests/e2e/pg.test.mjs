// tests/e2e/pg.test.mjs: streamhubd on PostgreSQL (svc_pg.mjs), directly
// and through pgbouncer in transaction pooling mode: the contract's basic
// flows, and a store that heals by itself.  After pg_terminate_backend of
// every one of its sessions, an idle-session timeout, or a restart of the
// server, requests get an answer (never a hang): a clear store error while
// the server is away, then success again, without restarting streamhubd;
// a chat message acknowledged before the fault is still there after.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, register, api as harnessApi } from './harness.mjs';
import { startPg } from './svc_pg.mjs';

let pg;
before(async () => { pg = await startPg({ bouncer: true }); });
after(async () => { await pg?.stop(); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// JSON over HTTP with a deadline: a store that hangs fails the test.
const api = (base, method, p, opts = {}) =>
  harnessApi(base, method, p, { ...opts, timeoutMs: 20000 });

async function gql(srv, query, variables, token) {
  return api(srv.url, 'POST', '/graphql', { body: { query, variables }, token });
}

async function ok(srv, query, variables, token) {
  const r = await gql(srv, query, variables, token);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  return r.body.data;
}

// The flows every store serves: accounts, streams, search, follows and the
// notification they make, chat and its history, a malformed id.
async function basicFlows(srv) {
  const a = await register(srv.url, 'pa');
  const b = await register(srv.url, 'pb');
  const s = (await ok(srv, 'mutation { startStream(title: "Speed chess & go", category: "Games") { id status } }',
    {}, a.token)).startStream;
  assert.equal(s.status, "LIVE");
  await ok(srv, 'mutation F($u: ID!) { follow(userId: $u) { id } }', { u: a.user.id }, b.token);
  const m = (await ok(srv, 'mutation M($s: ID!) { sendMessage(streamId: $s, text: "hi from pg") { id offset } }',
    { s: s.id }, b.token)).sendMessage;
  assert.equal(m.offset, 1);
  const h = (await ok(srv, 'query H($s: ID!) { chatHistory(streamId: $s, last: 10) { edges { node { id text } } } }',
    { s: s.id })).chatHistory;
  assert.deepEqual(h.edges.map((e) => e.node.text), ['hi from pg']);
  // tsquery syntax and U+0000 are searched for, never a store error.
  for (const q of ['chess', 'chess&go', '!(:*', 'go|chess', 'chess\u0000go']) {
    const r = await ok(srv, 'query S($q: String!) { searchStreams(query: $q) { totalCount } }', { q });
    assert.ok(r.searchStreams.totalCount >= 0, q);
  }
  const nul = await gql(srv, 'query S($q: String!) { searchStreams(query: $q) { totalCount } }', { q: '\u0000' });
  assert.equal(nul.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(nul.body));
  const found = await ok(srv, 'query { searchStreams(query: "speed chess") { edges { node { id } } } }');
  assert.ok(found.searchStreams.edges.some((e) => e.node.id === s.id));
  const u = await ok(srv, 'query { user(id: "nope") { id } }');
  assert.equal(u.user, null);
  const n = await ok(srv, 'query { user(id: "00000000-0000-4000-8000-000000000000") { id } }');
  assert.equal(n.user, null);
  // startStream notified the follower?  The follow came after: the second
  // stream does.
  await ok(srv, 'mutation S($s: ID!) { stopStream(streamId: $s) { id } }', { s: s.id }, a.token);
  const s2 = (await ok(srv, 'mutation { startStream(title: "again") { id } }', {}, a.token)).startStream;
  const notes = (await ok(srv, '{ notifications(first: 10) { edges { node { id type } } } }', {}, b.token)).notifications;
  assert.ok(notes.edges.some((e) => e.node.type === 'STREAM_LIVE'), JSON.stringify(notes));
  const ids = notes.edges.map((e) => e.node.id);
  const marked = await ok(srv, 'mutation R($ids: [ID!]) { markNotificationsRead(ids: $ids) }',
    { ids: [...ids, 'nope'] }, b.token);
  assert.equal(marked.markNotificationsRead, ids.length);
  const m2 = (await ok(srv, 'mutation M($s: ID!) { sendMessage(streamId: $s, text: "on the second") { id } }',
    { s: s2.id }, b.token)).sendMessage;
  return { a, b, stream: s2.id, message: m2.id };
}

// Send until one is acknowledged; every refusal meanwhile must be the
// contract's INTERNAL (store errors are not told to clients; the server's
// log says what happened).  Returns the message.
async function sendUntilOk(srv, token, stream, text) {
  const end = Date.now() + 30000;
  for (;;) {
    const r = await gql(srv, 'mutation M($s: ID!, $t: String!) { sendMessage(streamId: $s, text: $t) { id offset } }',
      { s: stream, t: text }, token);
    if (r.status === 200 && !r.body.errors) return r.body.data.sendMessage;
    const why = JSON.stringify(r.body);
    assert.equal(r.body.errors?.[0]?.extensions?.code, 'INTERNAL', why);
    assert.ok(Date.now() < end, `the store did not heal: ${why}`);
    await sleep(100);
  }
}

async function sendOnce(srv, token, stream, text) {
  return (await ok(srv, 'mutation M($s: ID!, $t: String!) { sendMessage(streamId: $s, text: $t) { id offset } }',
    { s: stream, t: text }, token)).sendMessage;
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

async function history(srv, stream) {
  const h = (await ok(srv, 'query H($s: ID!) { chatHistory(streamId: $s, last: 50) { edges { node { id text } } } }',
    { s: stream })).chatHistory;
  return h.edges.map((e) => e.node.id);
}

const backends = (db) =>
  `SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity ` +
  `WHERE datname = '${db}' AND application_name = 'streamhub'`;

test('streamhubd on PostgreSQL serves the basic flows and heals after faults',
  { timeout: 180000 }, async () => {
    const srv = await startServer({ args: ['--store', pg.uri(), '--store.pool-size', '2'] });
    const f = await basicFlows(srv);
    await readyEventually(srv, 200);

    // Every session terminated by the server; the sessions opened after it
    // get an idle-session timeout (a setting reaches a session when it
    // starts).
    pg.psql("ALTER DATABASE streamhub SET idle_session_timeout = '300ms'");
    const before1 = await sendUntilOk(srv, f.b.token, f.stream, 'before terminate');
    assert.ok(Number(pg.psql(backends('streamhub'))) >= 1);
    // The sessions are gone (the terminate waited for them): the store
    // sees them closed before it sends anything, and the very next write
    // succeeds on a new session.
    const after1 = await sendOnce(srv, f.b.token, f.stream, 'after terminate');
    assert.ok(after1.offset > before1.offset);
    let ids = await history(srv, f.stream);
    assert.ok(ids.includes(before1.id) && ids.includes(after1.id));

    // Idle sessions closed by the server.
    const end = Date.now() + 30000;
    while (pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'streamhub'") !== '0') {
      assert.ok(Date.now() < end, 'idle sessions were not closed');
      await sleep(100);
    }
    pg.psql('ALTER DATABASE streamhub RESET idle_session_timeout');
    const after2 = await sendOnce(srv, f.b.token, f.stream, 'after idle timeout');
    await readyEventually(srv, 200);

    // The server restarted: answers while it is down, then heals.
    await pg.stopServer();
    const down = await gql(srv, 'query { user(username: "nobody") { id } }');
    assert.equal(down.body.errors?.[0]?.extensions?.code, 'INTERNAL');
    assert.match(srv.stderr(), /cannot connect to PostgreSQL|PostgreSQL is unreachable/);
    const nr = await api(srv.url, 'GET', '/readyz');
    assert.equal(nr.status, 503);
    pg.start();
    await readyEventually(srv, 200);
    const after3 = await sendUntilOk(srv, f.b.token, f.stream, 'after restart');
    ids = await history(srv, f.stream);
    for (const m of [f.message, before1.id, after1.id, after2.id, after3.id])
      assert.ok(ids.includes(m), `message ${m} lost: ${ids}`);
    await srv.stop();
  });

test('streamhubd through pgbouncer in transaction mode serves the same flows',
  { timeout: 120000 }, async () => {
    pg.psql('CREATE DATABASE bounced', 'postgres');
    const srv = await startServer({
      args: ['--store', pg.bouncerUri('bounced'), '--store.prepared-statements', 'false',
        '--store.pool-size', '4'],
    });
    const f = await basicFlows(srv);
    // The sessions behind the pooler die: it opens new ones.
    pg.psql(backends('bounced'));
    const m = await sendUntilOk(srv, f.b.token, f.stream, 'through the pooler');
    const ids = await history(srv, f.stream);
    assert.ok(ids.includes(f.message) && ids.includes(m.id));
    await srv.stop();
  });

test('nodes starting at once migrate once; notification months are kept ahead and dropped past the retention',
  { timeout: 120000 }, async () => {
    pg.psql('CREATE DATABASE parts', 'postgres');
    const args = ['--store', pg.uri('parts'), '--store.notifications-retention-months', '2'];
    const [n1, n2, n3] = await Promise.all([startServer({ args }), startServer({ args }),
      startServer({ args })]);
    assert.equal(pg.psql('SELECT count(*), count(DISTINCT version) FROM schema_migrations', 'parts'),
      pg.psql('SELECT max(version), max(version) FROM schema_migrations', 'parts'));
    const parts = () => pg.psql(
      "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i " +
      "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'notifications'::regclass",
      'parts').split(',');
    const month = (d, k) => {
      const x = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + k, 1));
      return `notifications_${x.getUTCFullYear()}_${String(x.getUTCMonth() + 1).padStart(2, '0')}`;
    };
    const now = new Date();
    const ahead = [0, 1, 2, 3].map((k) => month(now, k));
    assert.deepEqual(parts(), ahead);
    await Promise.all([n1.stop(), n2.stop(), n3.stop()]);

    // A long downtime: months missing ahead, an old month past retention.
    pg.psql(`DROP TABLE ${ahead[2]}, ${ahead[3]}`, 'parts');
    pg.psql('CREATE TABLE notifications_2001_01 PARTITION OF notifications ' +
            'FOR VALUES FROM (978307200000) TO (980985600000)', 'parts');
    pg.psql(`CREATE TABLE ${month(now, -2)} PARTITION OF notifications FOR VALUES ` +
            `FROM (${Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 2, 1)}) ` +
            `TO (${Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)})`, 'parts');
    const srv = await startServer({ args });
    assert.deepEqual(parts(), [month(now, -2), ...ahead]);
    // A notification lands in the current month's partition, as jsonb.
    const a = await register(srv.url, 'na');
    const b = await register(srv.url, 'nb');
    await ok(srv, 'mutation F($u: ID!) { follow(userId: $u) { id } }', { u: b.user.id }, a.token);
    assert.equal(pg.psql(`SELECT count(*), min(pg_typeof(data)::text) FROM ${ahead[0]} ` +
      `WHERE user_id = '${b.user.id}'`, 'parts'), '1|jsonb');
    await srv.stop();
  });
