// tests/e2e/online.test.mjs: User.online against a real streamhubd.  A
// user is online while at least one of their authenticated real-time
// connections is open (native /ws after `auth`, graphql-transport-ws after
// a connection_init with a token), over GraphQL and REST alike.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startServer, api, register, Native } from './harness.mjs';

let srv, alice, bob, streamId;
before(async () => {
  srv = await startServer();
  alice = await register(srv.url, 'oa');
  bob = await register(srv.url, 'ob');
  const st = await api(srv.url, 'POST', '/api/v1/streams',
    { token: alice.token, body: { title: 'online' } });
  assert.equal(st.status, 201);
  streamId = st.body.id;
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

// Alice's online flag as bob sees it: over GraphQL (user and the stream's
// broadcaster) and over REST (the stream's broadcaster); all must agree.
async function online() {
  const r = await api(srv.url, 'POST', '/graphql', {
    token: bob.token,
    body: {
      query: 'query($id: ID, $s: ID!) { user(id: $id) { online } stream(id: $s) { broadcaster { online } } }',
      variables: { id: alice.user.id, s: streamId },
    },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  const g = r.body.data.user.online;
  assert.equal(r.body.data.stream.broadcaster.online, g);
  const rest = await api(srv.url, 'GET', `/api/v1/streams/${streamId}`);
  assert.equal(rest.status, 200);
  assert.equal(rest.body.broadcaster.online, g, 'REST and GraphQL differ');
  return g;
}

// The server counts a connection off when it has closed it, which the
// client may see first: ask again until it answers @want (or give up).
async function becomes(want) {
  for (let i = 0; i < 100; i++) {
    if (await online() === want) return want;
    await new Promise((r) => setTimeout(r, 20));
  }
  return online();
}

test('User.online is false without a connection', async () => {
  assert.equal(await online(), false);
});

test('a native connection makes its user online once authenticated, until it closes', async () => {
  const n = await Native.open(srv.wsUrl);
  try {
    assert.equal(await online(), false);      // connected, anonymous
    const a = await n.send('auth', { token: alice.token });
    assert.equal(a.ok, true, JSON.stringify(a));
    assert.equal(await online(), true);
    const r = await n.send('auth', { token: alice.token });  // a refresh
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(await online(), true);
  } finally {
    await n.close();
  }
  assert.equal(await becomes(false), false);
});

test('a graphql-ws connection with a token makes its user online until it closes', async () => {
  const c = createClient({
    url: `${srv.wsUrl}/graphql`, webSocketImpl: WebSocket,
    connectionParams: { token: alice.token }, retryAttempts: 0, lazy: false,
  });
  await new Promise((resolve, reject) => {
    c.on('connected', resolve);
    c.on('closed', (e) => reject(new Error(`closed ${e.code}`)));
  });
  assert.equal(await online(), true);
  await c.dispose();
  assert.equal(await becomes(false), false);
});

test('a user stays online while any one of their connections is open', async () => {
  const n1 = await Native.open(srv.wsUrl);
  const n2 = await Native.open(srv.wsUrl);
  assert.equal((await n1.send('auth', { token: alice.token })).ok, true);
  assert.equal((await n2.send('auth', { token: alice.token })).ok, true);
  assert.equal(await online(), true);
  await n1.close();
  assert.equal(await online(), true);        // n2 is still open
  await n2.close();
  assert.equal(await becomes(false), false);
});
