// tests/e2e/loops_attack.test.mjs: a hostile client against streamhubd
// with several event loops (`loops = 4`): viewer counts that must count a
// connection once per stream whatever protocol it speaks and whichever
// loop holds it, and that return to zero after abrupt disconnects; and
// storms of connections that subscribe and vanish (close or reset) while
// events flow: every steady subscriber gets every event once and in
// order, and SIGTERM in the middle of a storm still ends with exit 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startServer, register, api, Native, API_KEY } from './harness.mjs';

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

// Clients that connect, subscribe (native and graphql-ws) and vanish, a
// close or a TCP reset, again and again, until @stop.done.  Resolves the
// number of clients.
function storm(s, sid, stop) {
  let n = 0;
  const native = async () => {
    while (!stop.done) {
      const w = new WebSocket(`${s.wsUrl}/ws`, 'streamhub.v1');
      w.on('error', () => {});
      const k = n++;
      w.on('open', () => {
        for (const [id, channel] of [[1, 'app:storm'], [2, `chat:${sid}`], [3, `stream:${sid}`]])
          w.send(JSON.stringify({ op: 'subscribe', id, channel }));
        if (k % 3 === 0) w.send(JSON.stringify({ op: 'unsubscribe', id: 4, channel: 'app:storm' }));
      });
      await new Promise((r) => setTimeout(r, k % 7));
      if (k % 2) w.terminate(); else w.close();
    }
  };
  const gql = async () => {
    while (!stop.done) {
      const w = new WebSocket(`${s.wsUrl}/graphql`, 'graphql-transport-ws');
      w.on('error', () => {});
      const k = n++;
      const sub = (id, query) => w.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables: { s: sid } } }));
      w.on('open', () => w.send(JSON.stringify({ type: 'connection_init' })));
      w.on('message', (d) => {
        if (JSON.parse(d).type !== 'connection_ack') return;
        sub('1', CHAT);
        sub('2', UPD);
        if (k % 3 === 0) w.send(JSON.stringify({ id: '1', type: 'complete' }));
      });
      await new Promise((r) => setTimeout(r, k % 7));
      if (k % 2) w.terminate(); else w.close();
    }
  };
  return Promise.all([...Array(4)].map(native).concat([...Array(4)].map(gql)))
    .then(() => n);
}

test('a storm of vanishing clients: events once and in order, counts back to 0', async () => {
  const st = await liveStream('gs');
  const steady = [];
  for (let i = 0; i < 2 * LOOPS; i++) {
    const c = await Native.open(srv.wsUrl);
    assert.equal((await c.send('subscribe', { channel: 'app:storm' })).ok, true);
    steady.push(c);
  }
  const stop = { done: false };
  const clients = storm(srv, st.id, stop);
  const N = 150;
  for (let i = 0; i < N; i++) {
    const r = await api(srv.url, 'POST', '/api/v1/publish',
                        { apiKey: API_KEY, body: { channel: 'app:storm', data: { i } } });
    assert.ok(r.status < 300, JSON.stringify(r.body));
  }
  stop.done = true;
  assert.ok(await clients > 0);
  for (const c of steady) {
    const evs = await c.waitEvents(N, (e) => e.channel === 'app:storm', 10000);
    assert.deepEqual(evs.map((e) => e.event.data.i), [...Array(N).keys()]);
    for (let k = 1; k < N; k++) assert.ok(evs[k].offset > evs[k - 1].offset);
    await c.close();
  }
  await eventually(viewersOf(st.id), 0);
});

test('SIGTERM in the middle of a storm: exit 0', async () => {
  const s = await startServer({ args: ['--loops', String(LOOPS)] });
  const u = await register(s.url, 'gt');
  const st = await api(s.url, 'POST', '/api/v1/streams',
                       { token: u.token, body: { title: 'storm' } });
  assert.equal(st.status, 201);
  const stop = { done: false };
  const clients = storm(s, st.body.id, stop);
  // Some hundreds of clients have come and gone, more are on their way.
  for (let i = 0; i < 100; i++)
    await api(s.url, 'POST', '/api/v1/publish',
              { apiKey: API_KEY, body: { channel: 'app:storm', data: { i } } });
  const r = await s.stop();
  stop.done = true;
  await clients;
  assert.deepEqual(r, { code: 0, signal: null });
});
