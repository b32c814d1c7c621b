// tests/e2e/loops_attack.test.mjs: a hostile client against streamhubd
// with several event loops (`loops = 4`): viewer counts that must count a
// connection once per stream whatever protocol it speaks and whichever
// loop holds it, and that return to zero after abrupt disconnects.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startServer, register, api } from './harness.mjs';

const LOOPS = 4;

let srv;
before(async () => {
  srv = await startServer({
    args: ['--loops', String(LOOPS), '--chat.rate-limit', '100000'],
  });
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

// Ask @fn until it returns @want (deep equal), for at most @ms.
async function eventually(fn, want, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const got = await fn();
    try {
      assert.deepEqual(got, want);
      return got;
    } catch (e) {
      if (Date.now() > end) throw e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function liveStream(prefix) {
  const u = await register(srv.url, prefix);
  const st = await api(srv.url, 'POST', '/api/v1/streams',
                       { token: u.token, body: { title: prefix } });
  assert.equal(st.status, 201, JSON.stringify(st.body));
  return { user: u, id: st.body.id };
}

const viewersOf = (id) => async () =>
  (await api(srv.url, 'GET', `/api/v1/streams/${id}`)).body.viewerCount;

// A graphql-ws client whose socket the test can cut (no close frame).
function gqlClient() {
  let sock = null;
  class Kept extends WebSocket {
    constructor(...a) { super(...a); sock = this; }
  }
  const c = createClient({
    url: `${srv.wsUrl}/graphql`,
    webSocketImpl: Kept,
    retryAttempts: 0,
    lazy: true,
  });
  c.cut = () => sock._socket.destroy();
  return c;
}

// A subscription whose values the test reads.
function sub(c, query, variables) {
  const values = [];
  c.subscribe({ query, variables }, {
    next: (v) => values.push(v),
    error: (e) => values.push({ error: e }),
    complete: () => {},
  });
  return values;
}

async function gql(query, variables, token) {
  const r = await api(srv.url, 'POST', '/graphql',
                      { token, body: { query, variables } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body));
  return r.body.data;
}

// Do @act until @ok() holds (a subscription is registered once it sees
// what @act causes), for at most 10 s.
async function until(act, ok) {
  const end = Date.now() + 10000;
  while (!ok()) {
    assert.ok(Date.now() < end, 'condition not reached in 10 s');
    await act();
    await new Promise((r) => setTimeout(r, 100));
  }
}

const CHAT = 'subscription C($s: ID!) { chatMessages(streamId: $s) { offset } }';
const UPD = 'subscription U($s: ID!) { streamUpdates(streamId: $s) { kind stream { viewerCount } } }';
const RENAME = 'mutation R($s: ID!, $t: String) { updateStream(streamId: $s, title: $t) { id } }';
const kinds = (vs, k) => vs.filter((v) => v.data?.streamUpdates?.kind === k);

test('one graphql-ws connection watching chat and updates counts once', async () => {
  const st = await liveStream('gv');
  let n = 0;
  const rename = () => gql(RENAME, { s: st.id, t: `t${n++}` }, st.user.token);
  const c = gqlClient();
  const cu = sub(c, UPD, { s: st.id });
  const cc = sub(c, CHAT, { s: st.id });
  await until(rename, () => kinds(cu, 'UPDATED').length > 0);
  await until(() => api(srv.url, 'POST', `/api/v1/streams/${st.id}/chat`,
                        { token: st.user.token, body: { text: 'hi' } }),
              () => cc.length > 0);
  // c watches the stream twice; d once: two viewers (a connection counts
  // once per stream, PROTOCOL.md), never three.
  const d = gqlClient();
  const du = sub(d, UPD, { s: st.id });
  await until(rename, () => kinds(du, 'UPDATED').length > 0);
  const counts = () => kinds(du, 'VIEWERS').map((v) => v.data.streamUpdates.stream.viewerCount);
  await until(async () => {}, () => counts().some((x) => x >= 2));
  assert.equal(counts().find((x) => x >= 2), 2, JSON.stringify(counts()));
  await eventually(viewersOf(st.id), 2);
  await c.dispose();
  await d.dispose();
  await eventually(viewersOf(st.id), 0);
});

test('abrupt disconnects across loops bring the count back to 0', async () => {
  const st = await liveStream('gx');
  const viewers = viewersOf(st.id);
  // 2 * LOOPS clients, one after another: spread over every loop; each
  // watches the stream twice.
  const cs = [];
  for (let i = 0; i < 2 * LOOPS; i++) {
    const c = gqlClient();
    sub(c, CHAT, { s: st.id });
    sub(c, UPD, { s: st.id });
    cs.push(c);
  }
  await eventually(viewers, 2 * LOOPS);
  for (const c of cs) c.cut();
  await eventually(viewers, 0);
  for (const c of cs) await c.dispose();
});
