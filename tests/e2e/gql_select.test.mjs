// tests/e2e/gql_select.test.mjs: connection fields fetch only what the
// query selects (no count(*) without totalCount, no cursors without
// edges { cursor } or pageInfo), and never leave out what it does select:
// through fragments, inline fragments, merged fields and aliases, and
// after a lean query has filled the live list's cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, register } from './harness.mjs';

let srv;
const streams = [], users = [];
before(async () => {
  srv = await startServer({ args: ['--http.rate-limit-per-ip', '1000000',
    '--cache.memory-ttl-ms', '3600000'] });
  for (const p of ['sa', 'sb', 'sc']) {
    const u = await register(srv.url, p);
    users.push(u);
    const d = await ok(`mutation { startStream(title: "t-${p}") { id } }`,
      { token: u.token });
    streams.push(d.startStream.id);
  }
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

async function ok(query, { variables, token } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${srv.url}/graphql`, {
    method: 'POST', headers, body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const body = JSON.parse(text);
  assert.equal(body.errors, undefined, text);
  return body.data;
}

const LEAN = '{ liveStreams(first: 2) { edges { node { id } } } }';

test('a lean page answers without totalCount, pageInfo or cursors', async () => {
  const d = await ok(LEAN);
  assert.deepEqual(Object.keys(d.liveStreams), ['edges']);
  assert.equal(d.liveStreams.edges.length, 2);
  assert.deepEqual(Object.keys(d.liveStreams.edges[0]), ['node']);
});

test('totalCount and pageInfo asked after a lean page are present and right', async () => {
  await ok(LEAN);                      // the lean page is in the cache now
  const d = await ok(`{ liveStreams(first: 2) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } } } }`);
  const c = d.liveStreams;
  assert.equal(c.totalCount, 3);
  assert.equal(c.pageInfo.hasNextPage, true);
  assert.equal(c.pageInfo.hasPreviousPage, false);
  assert.equal(c.edges.length, 2);
  assert.equal(typeof c.edges[0].cursor, 'string');
  assert.ok(c.edges[0].cursor.length > 0);
  assert.equal(c.pageInfo.startCursor, c.edges[0].cursor);
  assert.equal(c.pageInfo.endCursor, c.edges[1].cursor);
  const n = await ok(`query N($a: String) { liveStreams(first: 2, after: $a) {
    totalCount pageInfo { hasNextPage hasPreviousPage } edges { node { id } } } }`,
  { variables: { a: c.pageInfo.endCursor } });
  assert.equal(n.liveStreams.totalCount, 3);
  assert.equal(n.liveStreams.pageInfo.hasNextPage, false);
  assert.equal(n.liveStreams.pageInfo.hasPreviousPage, true);
  assert.equal(n.liveStreams.edges.length, 1);
  const ids = [...c.edges, ...n.liveStreams.edges].map((e) => e.node.id);
  assert.deepEqual([...ids].sort(), [...streams].sort());
});

test('fields selected through fragments, merges and aliases are present', async () => {
  const d = await ok(`
    fragment T on StreamConnection { totalCount }
    fragment P on StreamConnection { pageInfo { endCursor } }
    fragment C on StreamEdge { cursor }
    {
      a: liveStreams(first: 2) { ...T edges { node { id } } }
      b: liveStreams(first: 2) { ... on StreamConnection { ...P } }
      c: liveStreams(first: 2) { edges { ...C } }
      liveStreams(first: 2) { edges { node { id } } }
      liveStreams(first: 2) { totalCount }
    }`);
  assert.equal(d.a.totalCount, 3);
  assert.equal(typeof d.b.pageInfo.endCursor, 'string');
  assert.equal(d.c.edges.length, 2);
  assert.equal(typeof d.c.edges[1].cursor, 'string');
  assert.equal(d.b.pageInfo.endCursor, d.c.edges[1].cursor);
  assert.equal(d.liveStreams.totalCount, 3);
  assert.equal(d.liveStreams.edges.length, 2);
});

test('searchStreams gives totalCount and pageInfo when asked', async () => {
  const lean = await ok('{ searchStreams(query: "t", first: 1) { edges { node { id } } } }');
  assert.deepEqual(Object.keys(lean.searchStreams), ['edges']);
  const d = await ok(`{ searchStreams(query: "t-sa", first: 1) {
    totalCount pageInfo { hasNextPage } edges { cursor node { id } } } }`);
  assert.equal(d.searchStreams.totalCount, 1);
  assert.equal(d.searchStreams.pageInfo.hasNextPage, false);
  assert.equal(d.searchStreams.edges[0].node.id, streams[0]);
});

test('followers and following give totalCount and pageInfo when asked', async () => {
  const [a, b, c] = users;
  for (const f of [b, c])
    await ok('mutation F($id: ID!) { follow(userId: $id) { id } }',
      { token: f.token, variables: { id: a.user.id } });
  const U = `query U($id: ID!) { user(id: $id) {
    followers(first: 1) { edges { node { id } } }
    f: followers(first: 1) { totalCount pageInfo { hasNextPage endCursor }
      edges { cursor } }
    following(first: 1) { totalCount } } }`;
  const d = (await ok(U, { variables: { id: a.user.id } })).user;
  assert.deepEqual(Object.keys(d.followers), ['edges']);
  assert.equal(d.f.totalCount, 2);
  assert.equal(d.f.pageInfo.hasNextPage, true);
  assert.equal(d.f.pageInfo.endCursor, d.f.edges[0].cursor);
  assert.equal(d.following.totalCount, 0);
  const e = (await ok(U, { variables: { id: b.user.id } })).user;
  assert.equal(e.following.totalCount, 1);
  assert.equal(e.f.totalCount, 0);
});
