// Read routing (`store-read`, docs/CONFIG.md): reads that may lag go to
// the read pool, a user's own writes are read back from the primary, and
// a read pool that fails hands its reads to the primary.
//
// On SQLite the read pool is a second pool on a database file.  Pointed
// at the store's own file it is plain plumbing; pointed at a copy taken
// earlier it is a replica whose replay stopped at the copy, which makes
// routing visible: a read answered by the copy shows the past.
//
// On PostgreSQL the replica is a real streaming replica (svc_pg_replica.mjs,
// pg_basebackup -R) whose replay the test pauses with pg_wal_replay_pause():
// a read that it answers shows the past until replay resumes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, api, register } from './harness.mjs';
import { startPgReplicaPair } from './svc_pg_replica.mjs';

async function gql(srv, query, variables, token) {
  const r = await api(srv.url, 'POST', '/graphql', { token, body: { query, variables } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body));
  return r.body.data;
}

const COUNTS = 'query($id: ID!) { user(id: $id) { followerCount followers { edges { node { id } } } } }';
const FOLLOW = 'mutation($id: ID!) { follow(userId: $id) { id followerCount followers { totalCount } } }';

test('store-read on the store\'s own SQLite file serves every read', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-e2e-'));
  const db = path.join(dir, 'streamhub.db');
  // The file must exist before a read-only pool opens it.
  const first = await startServer({ dir });
  await first.stop();
  const srv = await startServer({ dir, args: ['--store-read', `sqlite:${db}`] });
  try {
    const alice = await register(srv.url, 'ra');
    const bob = await register(srv.url, 'rb');
    const me = await gql(srv, '{ me { id username } }', {}, alice.token);
    assert.equal(me.me.id, alice.user.id);
    const f = await gql(srv, FOLLOW, { id: bob.user.id }, alice.token);
    assert.equal(f.follow.followerCount, 1);
    const c = await gql(srv, COUNTS, { id: bob.user.id });
    assert.deepEqual(c.user.followers.edges.map((e) => e.node.id), [alice.user.id]);
    const st = await api(srv.url, 'POST', '/api/v1/streams',
      { token: bob.token, body: { title: 'replica plumbing' } });
    assert.equal(st.status, 201, JSON.stringify(st.body));
    const sent = await api(srv.url, 'POST', `/api/v1/streams/${st.body.id}/chat`,
      { token: alice.token, body: { text: 'hello' } });
    assert.ok(sent.status === 201, JSON.stringify(sent.body));
    const h = await api(srv.url, 'GET', `/api/v1/streams/${st.body.id}/chat?last=10`);
    assert.equal(h.status, 200, JSON.stringify(h.body));
    assert.deepEqual(h.body.items.map((m) => m.text), ['hello']);
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reads go to store-read but for own writes; a failed replica falls back', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-e2e-'));
  const db = path.join(dir, 'streamhub.db');
  const copy = path.join(dir, 'replica.db');
  try {
    // The users exist on both; the copy then stops in time.
    const setup = await startServer({ dir });
    const alice = await register(setup.url, 'ra');
    const bob = await register(setup.url, 'rb');
    await setup.stop();
    assert.equal(existsSync(`${db}-wal`), false, 'a clean stop checkpoints');
    copyFileSync(db, copy);
    const args = ['--store-read', `sqlite:${copy}`];

    // Own writes: the mutation's payload and the reads after it.
    let srv = await startServer({ dir, args });
    const f = await gql(srv, FOLLOW, { id: bob.user.id }, alice.token);
    assert.equal(f.follow.followerCount, 1, 'the payload reads the primary');
    assert.equal(f.follow.followers.totalCount, 1);
    let c = await gql(srv, COUNTS, { id: bob.user.id });
    assert.equal(c.user.followerCount, 1, 'a follow is read back at once');
    assert.deepEqual(c.user.followers.edges.map((e) => e.node.id), [alice.user.id]);
    await srv.stop();

    // A node that wrote nothing about bob reads him from the replica,
    // which has not seen the follow.
    srv = await startServer({ dir, args });
    c = await gql(srv, COUNTS, { id: bob.user.id });
    assert.equal(c.user.followerCount, 0, 'served by the replica (the copy)');
    assert.deepEqual(c.user.followers.edges, []);

    // The replica fails (its file is gone to nothing): the same read is
    // answered by the primary.
    truncateSync(copy, 0);
    c = await gql(srv, COUNTS, { id: bob.user.id });
    assert.equal(c.user.followerCount, 1, 'answered by the primary');
    assert.deepEqual(c.user.followers.edges.map((e) => e.node.id), [alice.user.id]);
    await srv.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Poll @fn until it returns true, or fail after @ms.
async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('PostgreSQL streaming replica: own writes at once, others lag, replica killed', async () => {
  const pair = await startPgReplicaPair();
  try {
    // No memory tier of the hot-read cache: this test is about where each
    // read goes, and a value cached from a primary read (a mutation's
    // payload) would answer a later query before the replica is asked.
    const args = ['--store', pair.primary.uri(), '--store-read', pair.replica.uri(),
      '--store-read.retry-ms', '500', '--cache.memory-entries', '0'];
    const a = await startServer({ args });        // where the users write
    const b = await startServer({ args });        // a node that wrote nothing
    const alice = await register(a.url, 'pa');
    const bob = await register(a.url, 'pb');
    const carol = await register(a.url, 'pc');
    const dave = await register(b.url, 'pd');     // node a never wrote dave
    await pair.caughtUp();
    const followers = async (srv) => (await gql(srv, COUNTS, { id: bob.user.id })).user;
    assert.equal((await followers(b)).followerCount, 0);

    // The replica stops replaying: whatever is written now, it does not see.
    pair.replica.psql('SELECT pg_wal_replay_pause()');

    // Own writes, read back at once on the node that made them.
    const f = await gql(a, FOLLOW, { id: bob.user.id }, alice.token);
    assert.equal(f.follow.followerCount, 1, 'the payload reads the primary');
    let u = await followers(a);
    assert.equal(u.followerCount, 1);
    assert.deepEqual(u.followers.edges.map((e) => e.node.id), [alice.user.id]);
    const st = await api(a.url, 'POST', '/api/v1/streams',
      { token: bob.token, body: { title: 'replica' } });
    assert.equal(st.status, 201, JSON.stringify(st.body));
    const sent = await gql(a, 'mutation($s: ID!) { sendMessage(streamId: $s, text: "hi") { id text } }',
      { s: st.body.id }, alice.token);
    assert.equal(sent.sendMessage.text, 'hi');
    const h = await gql(a, 'query($s: ID!) { chatHistory(streamId: $s) { edges { node { id } } } }',
      { s: st.body.id });
    assert.deepEqual(h.chatHistory.edges.map((e) => e.node.id), [sent.sendMessage.id]);

    // A mutation's payload reads the primary even where its own write did
    // not touch: carol follows dave through the other node, then dave's
    // message on this one shows that follow in its author.
    await gql(b, FOLLOW, { id: dave.user.id }, carol.token);
    const m = await gql(a, 'mutation($s: ID!) { sendMessage(streamId: $s, text: "yo") ' +
      '{ author { id followerCount } } }', { s: st.body.id }, dave.token);
    assert.equal(m.sendMessage.author.followerCount, 1, 'the payload reads the primary');
    assert.equal((await gql(a, COUNTS, { id: dave.user.id })).user.followerCount, 0,
      'a query about dave on this node reads the paused replica');

    // The other node reads from the paused replica: the follow is not there.
    u = await followers(b);
    assert.equal(u.followerCount, 0, 'served by the paused replica');
    assert.deepEqual(u.followers.edges, []);
    assert.equal(pair.primary.psql(
      `SELECT count(*) FROM follows WHERE followed_id = '${bob.user.id}'`), '1');

    // Replay resumes: the other node catches up through the replica.
    pair.replica.psql('SELECT pg_wal_replay_resume()');
    await until('the replica to show the follow',
      async () => (await followers(b)).followerCount === 1);

    // Paused again, a second follow; then the replica is killed and the
    // same read on the other node is answered by the primary.
    pair.replica.psql('SELECT pg_wal_replay_pause()');
    await gql(a, FOLLOW, { id: bob.user.id }, carol.token);
    assert.equal((await followers(b)).followerCount, 1, 'still the paused replica');
    await pair.replica.stop('SIGKILL');
    u = await followers(b);
    assert.equal(u.followerCount, 2, 'answered by the primary');
    assert.deepEqual(u.followers.edges.map((e) => e.node.id).sort(),
      [alice.user.id, carol.user.id].sort());
    await a.stop();
    await b.stop();
  } finally {
    await pair.stop();
  }
});
