// tests/e2e/graphql_http.test.mjs: GraphQL over HTTP on /graphql against a
// real streamhubd: graphql-http's server audits, graphql-js introspection
// compared with the contract, every field of the contract with its error
// codes, both media types, persisted queries and the transport's refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverAudits } from 'graphql-http';
import {
  buildClientSchema, buildSchema, getIntrospectionQuery,
} from 'graphql';
import { startServer, register } from './harness.mjs';
import { contractProblems, introspectionQuery } from './introspection_check.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CONTRACT = path.resolve(here, '../../libstreamhub/graphql/schema.graphql');

let srv, alice, bob, carol;
before(async () => {
  srv = await startServer();
  alice = await register(srv.url, 'ga');
  bob = await register(srv.url, 'gb');
  carol = await register(srv.url, 'gc');
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

// One POST; returns { status, ctype, body }.
async function gql(query, { variables, token, accept, operationName, extensions, base } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (accept) headers.accept = accept;
  const res = await fetch(`${base ?? srv.url}/graphql`, {
    method: 'POST', headers,
    body: JSON.stringify({ query, variables, operationName, extensions }),
  });
  const text = await res.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* kept as text */ }
  return { status: res.status, ctype: res.headers.get('content-type'), headers: res.headers, body };
}

// The data of a successful operation (no errors allowed).
async function ok(query, opts) {
  const r = await gql(query, opts);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  return r.body.data;
}

// The first error of a field that failed, with its code checked.
async function fails(query, code, opts) {
  const r = await gql(query, opts);
  assert.ok(Array.isArray(r.body.errors), `no errors: ${JSON.stringify(r.body)}`);
  const e = r.body.errors[0];
  assert.equal(e.extensions?.code, code, JSON.stringify(r.body));
  assert.equal(typeof e.message, 'string');
  return { ...r, error: e };
}

test('graphql-http audits: every MUST passes; failing SHOULDs are listed', async () => {
  const audits = serverAudits({ url: `${srv.url}/graphql` });
  const failedMust = [];
  const failedShould = [];
  for (const audit of audits) {
    const r = await audit.fn();
    if (r.status === 'ok') continue;
    const line = `${audit.id} ${audit.name}: ${r.reason}`;
    if (audit.name.startsWith('MUST')) failedMust.push(line);
    else if (r.status === 'warn' || audit.name.startsWith('SHOULD')) failedShould.push(line);
  }
  for (const l of failedShould) console.log(`# SHOULD not met: ${l}`);
  assert.deepEqual(failedMust, []);
});

test('introspection matches the contract: only additions, both ways', async () => {
  // The richest query a graphql-js 16 client sends.
  const data = await ok(introspectionQuery());
  const problems = contractProblems(data, readFileSync(CONTRACT, 'utf8'));
  assert.deepEqual(problems.map((p) => `${p.type}: ${p.description}`), []);
  // The standard query too (what most tools send).
  assert.deepEqual(contractProblems(await ok(getIntrospectionQuery()),
    readFileSync(CONTRACT, 'utf8')), []);
  const client = buildClientSchema(data);
  const contract = buildSchema(readFileSync(CONTRACT, 'utf8'));
  // Every root field of the contract is served, and nothing else.
  for (const t of ['Query', 'Mutation', 'Subscription'])
    assert.deepEqual(Object.keys(client.getType(t).getFields()).sort(),
      Object.keys(contract.getType(t).getFields()).sort());
  // The built-in directives of graphql-js 16.15, as it defines them.
  for (const d of contract.getDirectives()) {
    const s = client.getDirective(d.name);
    assert.ok(s, `@${d.name} is not served`);
    assert.deepEqual([...s.locations].sort(), [...d.locations].sort(), `@${d.name}`);
  }
});

test('media types: graphql-response+json when asked, else application/json', async () => {
  let r = await gql('{ __typename }', { accept: 'application/graphql-response+json' });
  assert.equal(r.status, 200);
  assert.match(r.ctype, /^application\/graphql-response\+json/);
  r = await gql('{ __typename }', { accept: 'application/json' });
  assert.match(r.ctype, /^application\/json/);
  r = await gql('{ __typename }');
  assert.match(r.ctype, /^application\/json/);
  assert.deepEqual(r.body, { data: { __typename: 'Query' } });
  // Documents that do not parse or validate: 400 and no data, either way.
  for (const accept of ['application/json', 'application/graphql-response+json']) {
    r = await gql('{', { accept });
    assert.equal(r.status, 400);
    assert.equal(r.body.data, undefined);
    r = await gql('{ nope }', { accept });
    assert.equal(r.status, 400);
    assert.equal(r.body.data, undefined);
    assert.match(r.body.errors[0].message, /nope/);
  }
  // A field error is a 200 with data.
  r = await gql('{ notifications { unreadCount } }');
  assert.equal(r.status, 200);
  assert.ok('data' in r.body);
  assert.equal(r.body.errors[0].extensions.code, 'UNAUTHENTICATED');
});

test('transport refusals: content type, body, parameters, GET mutations, size', async () => {
  const url = `${srv.url}/graphql`;
  let res = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"query":"{__typename}"}' });
  assert.equal(res.status, 415);
  res = await fetch(url, { method: 'POST', body: '{"query":"{__typename}"}' });
  assert.equal(res.status, 415);
  for (const body of ['', '{', '[]', '"x"', '{"query":1}', '{"query":"{__typename}","variables":"x"}',
    '{"query":"{__typename}","operationName":3}', '{"query":"{__typename}","extensions":[]}',
    '{"query":"{__typename}"} trailing', '{"variables":{}}', '{"query":"{__typename}\u0000"}'.replace('\\u0000', '\u0000')]) {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.status, 400, `body ${JSON.stringify(body)}: ${res.status}`);
    const j = await res.json();
    assert.ok(Array.isArray(j.errors));
  }
  // Bad UTF-8 in the document is a request error, not a crash.
  res = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: Buffer.concat([Buffer.from('{"query":"{ __typename #'), Buffer.from([0xc3, 0x28]), Buffer.from('\\n}"}')]),
  });
  assert.ok(res.status === 400 || res.status === 200, `status ${res.status}`);
  // GET: queries only.
  res = await fetch(`${url}?query=${encodeURIComponent('{ __typename }')}`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { data: { __typename: 'Query' } });
  res = await fetch(`${url}?query=${encodeURIComponent('query Q($n: String!) { user(username: $n) { id } }')}` +
    `&variables=${encodeURIComponent(JSON.stringify({ n: alice.user.username }))}&operationName=Q`);
  assert.equal((await res.json()).data.user.id, alice.user.id);
  res = await fetch(`${url}?query=${encodeURIComponent('mutation { __typename }')}`);
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'POST');
  res = await fetch(`${url}?query=${encodeURIComponent('query A { __typename } mutation B { __typename }')}&operationName=B`);
  assert.equal(res.status, 405);
  res = await fetch(`${url}?query=${encodeURIComponent('query A { __typename } mutation B { __typename }')}&operationName=A`);
  assert.equal(res.status, 200);
  res = await fetch(`${url}?variables=%7B`);
  assert.equal(res.status, 400);
  res = await fetch(url, { method: 'PUT' });
  assert.equal(res.status, 405);
  // graphql.max-document-bytes (64 KiB by default): at the limit the
  // document is parsed; one byte more is 413.
  const pad = (n) => `{ __typename }${' '.repeat(n - 14)}`;
  let r = await gql(pad(65536));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await gql(pad(65537));
  assert.equal(r.status, 413);
  assert.ok(Array.isArray(r.body.errors));
});

test('bearer tokens: a bad one is 401 UNAUTHENTICATED; none is anonymous', async () => {
  for (const token of ['x', `${alice.token}x`, alice.token.split('.').slice(0, 2).join('.') + '.']) {
    const r = await gql('{ me { id } }', { token });
    assert.equal(r.status, 401);
    assert.equal(r.body.errors[0].extensions.code, 'UNAUTHENTICATED');
    assert.match(r.headers.get('www-authenticate'), /Bearer/);
  }
  assert.equal((await ok('{ me { id } }')).me, null);
  assert.equal((await ok('{ me { id username } }', { token: alice.token })).me.id, alice.user.id);
});

test('persisted queries as Apollo sends them', async () => {
  const query = '{ __typename }';
  const sha256Hash = createHash('sha256').update(query).digest('hex');
  const ext = { persistedQuery: { version: 1, sha256Hash } };
  let r = await gql(undefined, { extensions: ext });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { errors: [{ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }] });
  r = await gql(query, { extensions: ext });
  assert.deepEqual(r.body, { data: { __typename: 'Query' } });
  r = await gql(undefined, { extensions: ext });
  assert.deepEqual(r.body, { data: { __typename: 'Query' } });
  // Upper-case hex is the same hash; GET works too.
  r = await gql(undefined, { extensions: { persistedQuery: { version: 1, sha256Hash: sha256Hash.toUpperCase() } } });
  assert.deepEqual(r.body, { data: { __typename: 'Query' } });
  const res = await fetch(`${srv.url}/graphql?extensions=${encodeURIComponent(JSON.stringify(ext))}`);
  assert.deepEqual(await res.json(), { data: { __typename: 'Query' } });
  // A hash that is not the query's is refused, and not stored.
  const other = createHash('sha256').update('{ me { id } }').digest('hex');
  r = await gql(query, { extensions: { persistedQuery: { version: 1, sha256Hash: other } } });
  assert.equal(r.status, 400);
  r = await gql(undefined, { extensions: { persistedQuery: { version: 1, sha256Hash: other } } });
  assert.equal(r.body.errors[0].message, 'PersistedQueryNotFound');
  for (const pq of [{ version: 2, sha256Hash }, { version: 1 }, { version: 1, sha256Hash: 'abc' },
    { version: 1, sha256Hash: 'g'.repeat(64) }, { version: 1, sha256Hash: sha256Hash + '0' }, 'x']) {
    r = await gql(query, { extensions: { persistedQuery: pq } });
    assert.equal(r.status, 400, JSON.stringify(pq));
  }
});

test('queries and mutations: every field of the contract', async () => {
  const A = { token: alice.token }, B = { token: bob.token }, C = { token: carol.token };
  // register, login, refreshToken.
  const name = `gq${process.pid % 100000}`;
  const reg = (await ok(`mutation { register(username: "${name}", email: "${name}@example.com", password: "password-123")
    { accessToken refreshToken expiresIn user { id username email } } }`)).register;
  assert.equal(reg.user.username, name);
  assert.ok(reg.expiresIn > 0);
  const log = (await ok(`mutation { login(username: "${name}", password: "password-123") { accessToken user { id } } }`)).login;
  assert.equal(log.user.id, reg.user.id);
  const ref = (await ok('mutation R($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }',
    { variables: { t: reg.refreshToken } })).refreshToken;
  assert.ok(ref.accessToken.length > 20);
  // follow / unfollow, user fields.
  let u = (await ok('mutation F($id: ID!) { follow(userId: $id) { id followerCount followedByMe } }',
    { ...B, variables: { id: alice.user.id } })).follow;
  assert.equal(u.id, alice.user.id);
  assert.equal(u.followedByMe, true);
  await ok('mutation F($id: ID!) { follow(userId: $id) { id } }', { ...C, variables: { id: alice.user.id } });
  const q = await ok(`query U($id: ID, $n: String) { user(id: $id) { id username email createdAt followerCount followingCount online
      currentStream { id } followers(first: 10) { edges { cursor node { id username } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount }
      following { totalCount } followedByMe }
    byName: user(username: $n) { id email } me { id email } }`, { ...B, variables: { id: alice.user.id, n: alice.user.username } });
  assert.equal(q.user.followerCount, 2);
  assert.equal(q.user.online, false);    // no real-time connection here
  assert.equal(q.user.followers.totalCount, 2);
  assert.equal(q.user.email, null);                   // someone else's
  assert.equal(q.byName.id, alice.user.id);
  assert.equal(q.me.id, bob.user.id);
  assert.match(q.me.email, /@example\.com$/);
  u = (await ok('mutation F($id: ID!) { unfollow(userId: $id) { id followedByMe } }', { ...C, variables: { id: alice.user.id } })).unfollow;
  assert.equal(u.followedByMe, false);
  // Streams.
  const st = (await ok('mutation { startStream(title: "graphql e2e", category: "Chess") { id title category status viewerCount startedAt endedAt broadcaster { id } } }', A)).startStream;
  assert.equal(st.status, 'LIVE');
  assert.equal(st.broadcaster.id, alice.user.id);
  const sid = st.id;
  const up = (await ok('mutation U($s: ID!) { updateStream(streamId: $s, title: "renamed", category: "Go") { title category } }', { ...A, variables: { s: sid } })).updateStream;
  assert.deepEqual(up, { title: 'renamed', category: 'Go' });
  const one = (await ok(`query S($s: ID!) { stream(id: $s) { id title stats { peakViewers chatMessages uniqueChatters newFollowers messagesPerMinute }
    chatSettings { slowModeSeconds followersOnly maxMessageLength blockedTerms } } }`, { variables: { s: sid } })).stream;
  assert.equal(one.title, 'renamed');
  assert.equal(one.chatSettings.maxMessageLength, 500);
  const live = (await ok('{ liveStreams(first: 5) { edges { cursor node { id } } pageInfo { hasNextPage } totalCount } }')).liveStreams;
  assert.ok(live.edges.some((e) => e.node.id === sid));
  const cat = (await ok('{ liveStreams(category: "Nope") { totalCount edges { node { id } } } }')).liveStreams;
  assert.equal(cat.edges.length, 0);
  const found = (await ok('{ searchStreams(query: "renamed") { edges { node { id } } totalCount } }')).searchStreams;
  assert.ok(found.edges.some((e) => e.node.id === sid), JSON.stringify(found));
  // Chat and moderation.
  const msg = (await ok('mutation M($s: ID!) { sendMessage(streamId: $s, text: "hello graphql") { id streamId author { id } text offset createdAt deleted } }',
    { ...B, variables: { s: sid } })).sendMessage;
  assert.equal(msg.text, 'hello graphql');
  assert.ok(msg.offset >= 1);
  const hist = (await ok('query H($s: ID!) { chatHistory(streamId: $s, last: 10) { edges { cursor node { id text offset } } pageInfo { hasPreviousPage } } }',
    { variables: { s: sid } })).chatHistory;
  assert.equal(hist.edges.at(-1).node.id, msg.id);
  assert.equal((await ok('mutation D($m: ID!) { deleteMessage(messageId: $m) }', { ...A, variables: { m: msg.id } })).deleteMessage, true);
  const vars = { ch: alice.user.id, u: carol.user.id };
  assert.equal((await ok('mutation X($ch: ID!, $u: ID!) { addModerator(channelId: $ch, userId: $u) }', { ...A, variables: vars })).addModerator, true);
  assert.equal((await ok('mutation X($ch: ID!, $u: ID!) { removeModerator(channelId: $ch, userId: $u) }', { ...A, variables: vars })).removeModerator, true);
  assert.equal((await ok('mutation X($ch: ID!, $u: ID!) { timeoutUser(channelId: $ch, userId: $u, seconds: 30, reason: "calm") }', { ...A, variables: vars })).timeoutUser, true);
  assert.equal((await ok('mutation X($ch: ID!, $u: ID!) { banUser(channelId: $ch, userId: $u, reason: "spam") }', { ...A, variables: vars })).banUser, true);
  await fails('mutation M($s: ID!) { sendMessage(streamId: $s, text: "let me in") { id } }', 'FORBIDDEN', { ...C, variables: { s: sid } });
  assert.equal((await ok('mutation X($ch: ID!, $u: ID!) { unbanUser(channelId: $ch, userId: $u) }', { ...A, variables: vars })).unbanUser, true);
  const cs = (await ok('mutation S($ch: ID!) { updateChatSettings(channelId: $ch, slowModeSeconds: 0, followersOnly: false, maxMessageLength: 200, blockedTerms: ["badword"]) { slowModeSeconds followersOnly maxMessageLength blockedTerms } }',
    { ...A, variables: { ch: alice.user.id } })).updateChatSettings;
  assert.deepEqual(cs, { slowModeSeconds: 0, followersOnly: false, maxMessageLength: 200, blockedTerms: ['badword'] });
  // Raids, channel subscriptions, notifications.
  const raid = (await ok('mutation R($s: ID!, $to: ID!) { startRaid(fromStreamId: $s, toUserId: $to) { id from { id } to { id } viewerCount createdAt } }',
    { ...A, variables: { s: sid, to: bob.user.id } })).startRaid;
  assert.equal(raid.to.id, bob.user.id);
  const sub = (await ok('mutation S($ch: ID!) { subscribeToChannel(channelId: $ch, tier: 2) { id tier subscriber { id } channel { id } createdAt } }',
    { ...B, variables: { ch: alice.user.id } })).subscribeToChannel;
  assert.equal(sub.tier, 2);
  const notes = (await ok('{ notifications(first: 50) { edges { cursor node { id type data read createdAt } } pageInfo { hasNextPage } unreadCount } }', A)).notifications;
  assert.ok(notes.edges.some((e) => e.node.type === 'NEW_FOLLOWER'), JSON.stringify(notes));
  assert.ok(notes.edges.some((e) => e.node.type === 'SUBSCRIPTION_NEW'), JSON.stringify(notes));
  const unread = (await ok('{ notifications(unreadOnly: true) { unreadCount } }', A)).notifications.unreadCount;
  assert.ok(unread >= 2);
  const marked = (await ok('mutation { markNotificationsRead }', A)).markNotificationsRead;
  assert.equal(marked, unread);
  assert.equal((await ok('{ notifications { unreadCount } }', A)).notifications.unreadCount, 0);
  // Stop.
  const stopped = (await ok('mutation S($s: ID!) { stopStream(streamId: $s) { id status endedAt } }', { ...A, variables: { s: sid } })).stopStream;
  assert.equal(stopped.status, 'OFFLINE');
  assert.ok(stopped.endedAt);
});

test('error codes: UNAUTHENTICATED FORBIDDEN NOT_FOUND CONFLICT BAD_USER_INPUT QUERY_TOO_COMPLEX', async () => {
  const A = { token: alice.token }, B = { token: bob.token };
  let r = await fails('{ notifications { unreadCount } }', 'UNAUTHENTICATED');
  assert.deepEqual(r.error.path, ['notifications']);
  assert.equal(r.body.data, null);
  await fails('mutation { startStream(title: "x") { id } }', 'UNAUTHENTICATED');
  const sid = (await ok('mutation { startStream(title: "codes") { id } }', A)).startStream.id;
  await fails('mutation { startStream(title: "again") { id } }', 'CONFLICT', A);
  await fails('mutation S($s: ID!) { stopStream(streamId: $s) { id } }', 'FORBIDDEN', { ...B, variables: { s: sid } });
  await fails('mutation { stopStream(streamId: "00000000-0000-0000-0000-000000000000") { id } }', 'NOT_FOUND', A);
  await fails('mutation { follow(userId: "00000000-0000-0000-0000-000000000000") { id } }', 'NOT_FOUND', B);
  await fails('mutation M($s: ID!) { sendMessage(streamId: $s, text: "") { id } }', 'BAD_USER_INPUT', { ...B, variables: { s: sid } });
  await fails('mutation M($s: ID!) { sendMessage(streamId: $s, text: "x".repeat(3000)) { id } }'.replace('"x".repeat(3000)', `"${'x'.repeat(3000)}"`),
    'BAD_USER_INPUT', { ...B, variables: { s: sid } });
  await fails('mutation { register(username: "", email: "nope", password: "x") { accessToken } }', 'BAD_USER_INPUT');
  // Variables that do not coerce: a request error.
  r = await gql('query U($id: ID!) { user(id: $id) { id } }', { variables: { id: { no: 1 } } });
  assert.equal(r.status, 400);
  // Depth over graphql.max-depth (12).
  let deep = 'id';
  for (let i = 0; i < 14; i++) deep = `followers { edges { node { ${deep} } } }`;
  r = await gql(`{ me { ${deep} } }`, A);
  assert.equal(r.status, 400);
  assert.equal(r.body.errors[0].extensions.code, 'QUERY_TOO_COMPLEX');
  assert.equal(r.body.data, undefined);
  await ok('mutation S($s: ID!) { stopStream(streamId: $s) { id } }', { ...A, variables: { s: sid } });
});

test('RATE_LIMITED carries retryAfter (login: 10 per 60 s)', async () => {
  const s2 = await startServer();
  try {
    let last;
    for (let i = 0; i < 12; i++) {
      last = await gql('mutation { login(username: "nobody_here", password: "wrong-password") { accessToken } }', { base: s2.url });
      if (last.body.errors?.[0]?.extensions?.code === 'RATE_LIMITED') break;
    }
    const e = last.body.errors[0];
    assert.equal(e.extensions.code, 'RATE_LIMITED', JSON.stringify(last.body));
    assert.ok(Number.isInteger(e.extensions.retryAfter) && e.extensions.retryAfter > 0, JSON.stringify(e));
    assert.equal(last.status, 200);
  } finally {
    const r = await s2.stop();
    assert.equal(r.code, 0);
  }
});

// Resolvers read strings as C strings: a U+0000 cut an argument short
// silently (a password checked as its prefix, a title stored as "ti").
test('a U+0000 in a String argument is refused, but in a search or a chat text', async () => {
  const srv = await startServer();
  try {
    const u = await register(srv.url, 'gn');
    const gql = async (query, variables, token) => {
      const headers = { 'content-type': 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      const r = await fetch(`${srv.url}/graphql`, {
        method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      return r.json();
    };
    const login = 'mutation($u: String!, $p: String!) ' +
      '{ login(username: $u, password: $p) { accessToken } }';
    for (const v of [{ u: u.user.username, p: 'password-123\u0000junk' },
                     { u: `${u.user.username}\u0000x`, p: 'password-123' }]) {
      const r = await gql(login, v);
      assert.equal(r.data, null, JSON.stringify(r));
      assert.equal(r.errors[0].extensions.code, 'BAD_USER_INPUT');
    }
    const lit = await gql('mutation { startStream(title: "ti\\u0000tle") { title } }',
                          {}, u.token);
    assert.equal(lit.data, null, JSON.stringify(lit));
    assert.equal(lit.errors[0].extensions.code, 'BAD_USER_INPUT');
    assert.match(lit.errors[0].message, /"title" cannot hold U\+0000/);
    const st = await gql('mutation($t: String!) { startStream(title: $t) { id title } }',
                         { t: 'title' }, u.token);
    assert.equal(st.data.startStream.title, 'title', JSON.stringify(st));
    const sid = st.data.startStream.id;
    // The chat text loses its U+0000, as over REST and /ws.
    const sent = await gql('mutation($s: ID!, $t: String!) { sendMessage(streamId: $s, text: $t) { text } }',
                           { s: sid, t: 'a\u0000b' }, u.token);
    assert.equal(sent.data?.sendMessage?.text, 'ab', JSON.stringify(sent));
    // A search is data, never an error.
    const found = await gql('query($q: String!) { searchStreams(query: $q) { totalCount } }',
                            { q: 'title\u0000x' });
    assert.equal(found.errors, undefined, JSON.stringify(found));
  } finally {
    await srv.stop();
  }
});
