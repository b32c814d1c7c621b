// tests/e2e/gql_cache.test.mjs: the GraphQL read path's caches against a
// real streamhubd: the in-memory tier of the hot-read cache (live list,
// stream by id, user by id, follower counts) never answers with a value
// older than a write's own response, its counters move in /metrics, and
// the cache of parsed documents answers repeated documents with other
// variables correctly, stays bounded, and errs the same way each time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { parse, print } from 'graphql';
import { startServer, register } from './harness.mjs';

let srv, alice, bob;
before(async () => {
  // An hour's lifetime: no entry expires while the counters are read.
  srv = await startServer({ args: ['--http.rate-limit-per-ip', '1000000',
    '--cache.memory-ttl-ms', '3600000'] });
  alice = await register(srv.url, 'ca');
  bob = await register(srv.url, 'cb');
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

async function gql(query, { variables, token } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${srv.url}/graphql`, {
    method: 'POST', headers, body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, text: await res.text() };
}

async function ok(query, opts) {
  const r = await gql(query, opts);
  const body = JSON.parse(r.text);
  assert.equal(r.status, 200, r.text);
  assert.equal(body.errors, undefined, r.text);
  return body.data;
}

// One series of /metrics by its exact name and labels; 0 when absent.
async function metric(series) {
  const t = await (await fetch(`${srv.url}/metrics`)).text();
  for (const line of t.split('\n'))
    if (line.startsWith(series + ' '))
      return Number(line.slice(series.length + 1));
  return 0;
}

const LIVE = print(parse(`{ liveStreams(first: 20) { edges { node {
  id title viewerCount broadcaster { id username followerCount } } } } }`));
const live = async () => (await ok(LIVE)).liveStreams.edges.map((e) => e.node);
const STREAM = 'query S($id: ID!) { stream(id: $id) { id title status } }';
const USER = 'query U($id: ID!) { user(id: $id) { id username followerCount } }';

test('a write\'s own response is never followed by an older read', async () => {
  const A = { token: alice.token };
  // Warm every cache with the state before each write.
  assert.deepEqual(await live(), []);
  assert.deepEqual(await live(), []);
  const st = (await ok('mutation { startStream(title: "first") { id } }', A)).startStream;
  let l = await live();
  assert.deepEqual(l.map((s) => s.id), [st.id], 'go-live shows at once');
  assert.equal(l[0].title, 'first');
  assert.equal(l[0].broadcaster.followerCount, 0);
  const one = async () => (await ok(STREAM, { variables: { id: st.id } })).stream;
  assert.equal((await one()).title, 'first');
  assert.equal((await one()).title, 'first');
  await ok('mutation U($id: ID!) { updateStream(streamId: $id, title: "second") { id } }',
    { ...A, variables: { id: st.id } });
  assert.equal((await one()).title, 'second', 'stream by id after a title update');
  assert.equal((await live())[0].title, 'second', 'live list after a title update');
  // Follow: the broadcaster's count, by id and in the live list (two
  // broadcasters: their counts are fetched together).
  const sb = (await ok('mutation { startStream(title: "bee") { id } }',
    { token: bob.token })).startStream;
  const count = async () => (await live()).find(
    (s) => s.id === st.id).broadcaster.followerCount;
  const u = async () => (await ok(USER, { variables: { id: alice.user.id } })).user;
  assert.equal((await u()).followerCount, 0);
  assert.equal(await count(), 0);
  assert.equal(await count(), 0);
  await ok('mutation F($id: ID!) { follow(userId: $id) { id } }',
    { token: bob.token, variables: { id: alice.user.id } });
  assert.equal((await u()).followerCount, 1, 'followerCount after a follow');
  assert.equal(await count(), 1, 'the live list\'s followerCount after a follow');
  await ok('mutation F($id: ID!) { unfollow(userId: $id) { id } }',
    { token: bob.token, variables: { id: alice.user.id } });
  assert.equal((await u()).followerCount, 0, 'followerCount after an unfollow');
  assert.equal(await count(), 0, 'the live list\'s followerCount after an unfollow');
  for (const [s, t] of [[st, alice], [sb, bob]])
    await ok('mutation S($id: ID!) { stopStream(streamId: $id) { id } }',
      { token: t.token, variables: { id: s.id } });
  assert.deepEqual(await live(), [], 'a stopped stream leaves the list at once');
  assert.equal((await one()).status, 'OFFLINE');
});

test('the memory tier counts its hits and misses in /metrics', async () => {
  const hit = 'streamhub_cache_memory_requests_total{cache="live",result="hit"}';
  const miss = 'streamhub_cache_memory_requests_total{cache="live",result="miss"}';
  const Q = '{ liveStreams(first: 7) { edges { node { id } } } }';
  const h0 = await metric(hit), m0 = await metric(miss);
  await ok(Q);
  assert.equal(await metric(miss), m0 + 1);
  await ok(Q);
  await ok(Q);
  assert.equal(await metric(hit), h0 + 2);
  assert.equal(await metric(miss), m0 + 1);
});

test('a repeated document with other variables answers for them', async () => {
  const docHit = 'streamhub_graphql_document_cache_total{result="hit"}';
  const h0 = await metric(docHit);
  const a = (await ok(USER, { variables: { id: alice.user.id } })).user;
  const b = (await ok(USER, { variables: { id: bob.user.id } })).user;
  assert.equal(a.username, alice.user.username);
  assert.equal(b.username, bob.user.username);
  const Q = 'query L($n: Int) { liveStreams(first: $n) { edges { node { id } } } }';
  const s1 = (await ok('mutation { startStream(title: "one") { id } }', { token: alice.token })).startStream;
  const s2 = (await ok('mutation { startStream(title: "two") { id } }', { token: bob.token })).startStream;
  assert.equal((await ok(Q, { variables: { n: 1 } })).liveStreams.edges.length, 1);
  assert.equal((await ok(Q, { variables: { n: 2 } })).liveStreams.edges.length, 2);
  // A variable of the wrong type is still refused with a kept document.
  const r = await gql(Q, { variables: { n: 'x' } });
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.text).errors[0].extensions.code, 'BAD_USER_INPUT');
  assert.ok(await metric(docHit) >= h0 + 3);
  for (const [s, t] of [[s1, alice], [s2, bob]])
    await ok('mutation S($id: ID!) { stopStream(streamId: $id) { id } }',
      { token: t.token, variables: { id: s.id } });
});

test('an invalid document errs the same way every time', async () => {
  const bad = [
    '{ liveStreams(first: 1) { edges { node { nope } } } }',   // validation
    '{ liveStreams(first: 1) { edges { node { id } }',         // syntax
  ];
  for (const q of bad) {
    const first = await gql(q);
    assert.equal(first.status, 400);
    assert.ok(Array.isArray(JSON.parse(first.text).errors));
    for (let i = 0; i < 3; i++)
      assert.deepEqual(await gql(q), first);
  }
});

test('the document cache stays bounded under 10,000 distinct documents', async () => {
  const entries = 'streamhub_graphql_document_cache_entries';
  const N = 10000, width = 32;
  let next = 0;
  async function lane() {
    while (next < N) {
      const i = next++;
      const d = await ok(`{ a${i}: liveStreams(first: 1) { edges { node { id } } } }`);
      assert.ok(Array.isArray(d[`a${i}`].edges));
    }
  }
  await Promise.all(Array.from({ length: width }, lane));
  const n = await metric(entries);
  assert.equal(n, 1000, 'graphql.document-cache-size (1000 by default)');
  // The most recent documents are kept, the oldest are not.
  const docHit = 'streamhub_graphql_document_cache_total{result="hit"}';
  const h0 = await metric(docHit);
  await ok(`{ a${N - 1}: liveStreams(first: 1) { edges { node { id } } } }`);
  assert.equal(await metric(docHit), h0 + 1);
  await ok('{ a0: liveStreams(first: 1) { edges { node { id } } } }');
  assert.equal(await metric(docHit), h0 + 1);
});
