// tests/e2e/graphql_ws.test.mjs: graphql-transport-ws on /graphql against
// a real streamhubd: the protocol's messages and close codes with a raw ws
// socket, then the graphql-ws client for queries, mutations, the four
// subscriptions, resumption by sinceOffset and token expiry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { startServer, register } from './harness.mjs';

let srv, alice, bob;
before(async () => {
  srv = await startServer();
  alice = await register(srv.url, 'wa');
  bob = await register(srv.url, 'wb');
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

async function gql(query, variables, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${srv.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

// A raw graphql-transport-ws socket: messages in order, the close.
function raw(url = srv.wsUrl) {
  const ws = new WebSocket(`${url}/graphql`, 'graphql-transport-ws');
  const msgs = [];
  let waiters = [];
  ws.on('message', (d) => {
    msgs.push(JSON.parse(d.toString()));
    waiters = waiters.filter((w) => !w());
  });
  ws.on('error', () => {});
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const s = {
    ws, msgs, closed,
    send: (o) => ws.send(typeof o === 'string' ? o : JSON.stringify(o)),
    next(pred, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = msgs.find(pred);
          if (m) { resolve(m); return true; }
          return false;
        };
        if (check()) return;
        const t = setTimeout(() => reject(new Error(`timeout; have ${JSON.stringify(msgs)}`)), ms);
        waiters.push(() => { if (check()) { clearTimeout(t); return true; } return false; });
      });
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(s));
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

async function acked(token) {
  const s = await raw();
  s.send({ type: 'connection_init', payload: token ? { token } : {} });
  await s.next((m) => m.type === 'connection_ack');
  return s;
}

test('protocol: ack, ping/pong, query over the socket, error message', async () => {
  const s = await acked(alice.token);
  s.send({ type: 'ping' });
  await s.next((m) => m.type === 'pong');
  s.send({ type: 'subscribe', id: 'q1', payload: { query: '{ me { id } }' } });
  const n = await s.next((m) => m.id === 'q1' && m.type === 'next');
  assert.deepEqual(n.payload, { data: { me: { id: alice.user.id } } });
  await s.next((m) => m.id === 'q1' && m.type === 'complete');
  s.send({ type: 'subscribe', id: 'q2', payload: { query: '{ nope }' } });
  const e = await s.next((m) => m.id === 'q2');
  assert.equal(e.type, 'error');
  assert.ok(Array.isArray(e.payload) && /nope/.test(e.payload[0].message), JSON.stringify(e));
  s.send({ type: 'subscribe', id: 'q3', payload: { query: 'subscription { notifications { id } } ', variables: null } });
  s.send({ type: 'complete', id: 'q3' });
  // The id is free again once completed.
  s.send({ type: 'subscribe', id: 'q3', payload: { query: '{ __typename }' } });
  const n3 = await s.next((m) => m.id === 'q3' && m.type === 'next');
  assert.deepEqual(n3.payload, { data: { __typename: 'Query' } });
  s.ws.close();
});

test('protocol close codes: 4400 4401 4403 4408 4409 4429', async () => {
  const cases = [
    [async (s) => s.send('not json'), 4400],
    [async (s) => s.send('[]'), 4400],
    [async (s) => s.send({ type: 42 }), 4400],
    [async (s) => s.send({ type: 'what' }), 4400],
    [async (s) => s.send({ type: 'connection_init', payload: 'x' }), 4400],
    [async (s) => s.send({ type: 'subscribe', id: 'a', payload: { query: '{ __typename }' } }), 4401],
    [async (s) => s.send({ type: 'connection_init', payload: { token: 'bad' } }), 4403],
    [async (s) => s.send({ type: 'connection_init', payload: { Authorization: `Bearer ${alice.token}x` } }), 4403],
    [async (s) => {
      s.send({ type: 'connection_init' });
      s.send({ type: 'connection_init' });
    }, 4429],
  ];
  for (const [act, code] of cases) {
    const s = await raw();
    await act(s);
    const c = await s.closed;
    assert.equal(c.code, code, `${act}: ${JSON.stringify(c)}`);
  }
  // Subscribe shapes after the ack.
  for (const bad of [{ type: 'subscribe', payload: { query: '{ a }' } }, { type: 'subscribe', id: 'x' },
    { type: 'subscribe', id: 'x', payload: { query: 1 } }, { type: 'subscribe', id: '', payload: { query: '{ a }' } },
    { type: 'subscribe', id: 'x', payload: { query: '{ a }', variables: [] } }, { type: 'complete' }]) {
    const s = await acked();
    s.send(bad);
    assert.equal((await s.closed).code, 4400, JSON.stringify(bad));
  }
  // Bearer in Authorization is accepted.
  let s = await raw();
  s.send({ type: 'connection_init', payload: { Authorization: `Bearer ${alice.token}` } });
  await s.next((m) => m.type === 'connection_ack');
  // A duplicate id of a running subscription.
  const sid = (await gql('mutation { startStream(title: "dup") { id } }', {}, bob.token)).startStream.id;
  s.send({ type: 'subscribe', id: 'd', payload: { query: `subscription { streamUpdates(streamId: "${sid}") { kind } }` } });
  s.send({ type: 'subscribe', id: 'd', payload: { query: `subscription { streamUpdates(streamId: "${sid}") { kind } }` } });
  const c = await s.closed;
  assert.equal(c.code, 4409);
  assert.equal(c.reason, 'Subscriber for d already exists');
  await gql(`mutation { stopStream(streamId: "${sid}") { id } }`, {}, bob.token);
  // connection_init timeout.
  const strict = await startServer({ args: ['--ws.auth-timeout-ms', '300'] });
  try {
    s = await raw(strict.wsUrl);
    const t = await s.closed;
    assert.equal(t.code, 4408);
    assert.equal(t.reason, 'Connection initialisation timeout');
  } finally {
    await strict.stop();
  }
});

function client(token, url = srv.wsUrl, extra = {}) {
  return createClient({
    url: `${url}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: token ? () => ({ token: typeof token === 'function' ? token() : token }) : undefined,
    retryAttempts: 0,
    lazy: true,
    ...extra,
  });
}

// Subscribe; returns { values, until(n), stop }.
function sub(c, query, variables) {
  const values = [];
  let waiters = [];
  let error = null;
  const stop = c.subscribe({ query, variables }, {
    next: (v) => { values.push(v); waiters = waiters.filter((w) => !w()); },
    error: (e) => { error = e; waiters = waiters.filter((w) => !w()); },
    complete: () => {},
  });
  return {
    values,
    stop,
    get error() { return error; },
    until(n, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (values.length >= n) { resolve(values); return true; }
          if (error) { reject(error instanceof Error ? error : new Error(JSON.stringify(error))); return true; }
          return false;
        };
        if (check()) return;
        const t = setTimeout(() => reject(new Error(`timeout: ${JSON.stringify(values)}`)), ms);
        waiters.push(() => { if (check()) { clearTimeout(t); return true; } return false; });
      });
    },
  };
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

test('graphql-ws client: queries and mutations over the socket', async () => {
  const c = client(alice.token);
  try {
    const me = [];
    for await (const v of c.iterate({ query: '{ me { id username } }' })) me.push(v);
    assert.deepEqual(me, [{ data: { me: { id: alice.user.id, username: alice.user.username } } }]);
    const r = [];
    for await (const v of c.iterate({ query: 'mutation { markNotificationsRead }' })) r.push(v);
    assert.equal(typeof r[0].data.markNotificationsRead, 'number');
  } finally {
    await c.dispose();
  }
});

test('subscriptions: chatMessages with offsets, and resumption by sinceOffset', async () => {
  const sid = (await gql('mutation { startStream(title: "ws chat", category: "Chess") { id } }', {}, alice.token)).startStream.id;
  const c = client(bob.token);
  const q = 'subscription C($s: ID!, $o: Int) { chatMessages(streamId: $s, sinceOffset: $o) { kind offset message { id text offset author { id username } } } }';
  try {
    const s1 = sub(c, q, { s: sid });
    await pause(200);
    const sent = [];
    for (const text of ['one', 'two', 'three']) {
      sent.push((await gql('mutation M($s: ID!, $t: String!) { sendMessage(streamId: $s, text: $t) { id offset } }',
        { s: sid, t: text }, bob.token)).sendMessage);
    }
    const got = await s1.until(3);
    assert.deepEqual(got.map((v) => v.data.chatMessages.message.text), ['one', 'two', 'three']);
    for (let i = 0; i < 3; i++) {
      assert.equal(got[i].data.chatMessages.kind, 'MESSAGE');
      // ChatEvent.offset is the channel offset, as on the native protocol.
      assert.equal(got[i].data.chatMessages.offset, sent[i].offset);
      assert.equal(got[i].data.chatMessages.message.id, sent[i].id);
      assert.equal(got[i].data.chatMessages.message.author.id, bob.user.id);
    }
    // A moderation event on the same channel.
    await gql('mutation D($m: ID!) { deleteMessage(messageId: $m) }', { m: sent[0].id }, alice.token);
    const del = await s1.until(4);
    assert.equal(del[3].data.chatMessages.kind, 'MESSAGE_DELETED');
    assert.ok(del[3].data.chatMessages.offset > sent[2].offset);
    s1.stop();
    // Resume after the first message: the rest, in order, then live.
    const s2 = sub(c, q, { s: sid, o: sent[0].offset });
    const again = await s2.until(3);
    assert.deepEqual(again.slice(0, 2).map((v) => v.data.chatMessages.offset), [sent[1].offset, sent[2].offset]);
    assert.equal(again[2].data.chatMessages.kind, 'MESSAGE_DELETED');
    const four = (await gql('mutation M($s: ID!) { sendMessage(streamId: $s, text: "four") { offset } }', { s: sid }, bob.token)).sendMessage;
    const live = await s2.until(4);
    assert.equal(live[3].data.chatMessages.offset, four.offset);
    await pause(100);
    assert.equal(s2.values.length, 4, 'no duplicate');
    s2.stop();
  } finally {
    await c.dispose();
    await gql(`mutation { stopStream(streamId: "${sid}") { id } }`, {}, alice.token);
  }
});

test('subscriptions: streamUpdates, liveStreams(category), notifications', async () => {
  const anon = client();
  const cb = client(bob.token);
  try {
    const live = sub(anon, 'subscription { liveStreams(category: "Speedrun") { kind stream { id title category broadcaster { id } } } }');
    const liveAll = sub(anon, 'subscription { liveStreams { kind stream { id } } }');
    await gql('mutation F($id: ID!) { follow(userId: $id) { id } }', { id: alice.user.id }, bob.token);
    const notes = sub(cb, 'subscription { notifications { id type data read } }');
    await pause(200);
    const other = (await gql('mutation { startStream(title: "elsewhere", category: "Chess") { id } }', {}, bob.token)).startStream.id;
    const sid = (await gql('mutation { startStream(title: "fast", category: "Speedrun") { id } }', {}, alice.token)).startStream.id;
    const l = await live.until(1);
    assert.equal(l[0].data.liveStreams.kind, 'LIVE');
    assert.equal(l[0].data.liveStreams.stream.id, sid);
    assert.equal(l[0].data.liveStreams.stream.category, 'Speedrun');
    assert.equal(l[0].data.liveStreams.stream.broadcaster.id, alice.user.id);
    const all = await liveAll.until(2);
    assert.deepEqual(all.map((v) => v.data.liveStreams.stream.id).sort(), [other, sid].sort());
    // Bob follows Alice: her going live is a notification for him.
    const n = await notes.until(1);
    assert.equal(n[0].data.notifications.type, 'STREAM_LIVE');
    assert.equal(n[0].data.notifications.read, false);
    const upd = sub(anon, 'subscription S($s: ID!) { streamUpdates(streamId: $s) { kind stream { id title status } } }', { s: sid });
    await pause(200);
    await gql('mutation U($s: ID!) { updateStream(streamId: $s, title: "faster") { id } }', { s: sid }, alice.token);
    // The subscriber is itself a viewer of the stream, so VIEWERS events
    // (presence, at most one a second) may come between the others.
    const notViewers = async (n) => {
      for (let i = 0; i < 200; i++) {
        const v = upd.values.filter((x) => x.data.streamUpdates.kind !== 'VIEWERS');
        if (v.length >= n) return v;
        await pause(25);
      }
      throw new Error(`timeout: ${JSON.stringify(upd.values)}`);
    };
    const u = await notViewers(1);
    assert.equal(u[0].data.streamUpdates.kind, 'UPDATED');
    assert.equal(u[0].data.streamUpdates.stream.title, 'faster');
    await gql(`mutation { stopStream(streamId: "${sid}") { id } }`, {}, alice.token);
    const off = await notViewers(2);
    assert.equal(off[1].data.streamUpdates.kind, 'OFFLINE');
    assert.equal(off[1].data.streamUpdates.stream.status, 'OFFLINE');
    const l2 = await live.until(2);
    assert.equal(l2[1].data.liveStreams.kind, 'OFFLINE');
    await gql(`mutation { stopStream(streamId: "${other}") { id } }`, {}, bob.token);
    await pause(200);
    // Chess never reached the Speedrun subscriber.
    assert.ok(live.values.every((v) => v.data.liveStreams.stream.id === sid));
    for (const s of [live, liveAll, notes, upd]) s.stop();
  } finally {
    await anon.dispose();
    await cb.dispose();
  }
});

test('notifications need a token: an error message, not a close', async () => {
  const s = await acked();
  s.send({ type: 'subscribe', id: 'n', payload: { query: 'subscription { notifications { id } }' } });
  const e = await s.next((m) => m.id === 'n');
  assert.equal(e.type, 'error');
  assert.equal(e.payload[0].extensions.code, 'UNAUTHENTICATED');
  s.send({ type: 'ping' });
  await s.next((m) => m.type === 'pong');
  s.ws.close();
});

test('token expiry closes 4403; the client reconnects with a fresh token and resumes', async () => {
  const short = await startServer({ args: ['--jwt-ttl-seconds', '10'] });
  try {
    const u = await register(short.url, 'we');
    let token = u.token;
    const sid = await (async () => {
      const r = await fetch(`${short.url}/graphql`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: 'mutation { startStream(title: "ttl") { id } }' }),
      });
      return (await r.json()).data.startStream.id;
    })();
    const closes = [];
    const vars = { s: sid };
    let during = null;
    const post = async (query, tok) => {
      const headers = { 'content-type': 'application/json' };
      if (tok) headers.authorization = `Bearer ${tok}`;
      const r = await fetch(`${short.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query }) });
      return (await r.json()).data;
    };
    const c = createClient({
      url: `${short.wsUrl}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: () => ({ token }),
      retryAttempts: 1,
      retryWait: async () => {
        // Fresh connectionParams: log in again; a message sent while
        // disconnected must come back through sinceOffset.
        token = (await post(`mutation { login(username: "${u.user.username}", password: "password-123") { accessToken } }`)).login.accessToken;
        during = (await post(`mutation { sendMessage(streamId: "${sid}", text: "during") { offset } }`, token)).sendMessage.offset;
        vars.o = s.values.at(-1).data.chatMessages.offset;
      },
      shouldRetry: () => true,
      on: { closed: (e) => closes.push(e.code) },
    });
    const s = sub(c, 'subscription S($s: ID!, $o: Int) { chatMessages(streamId: $s, sinceOffset: $o) { offset message { text } } }', vars);
    await pause(200);
    const before = (await post(`mutation { sendMessage(streamId: "${sid}", text: "before") { offset } }`, token)).sendMessage.offset;
    assert.equal((await s.until(1))[0].data.chatMessages.offset, before);
    // The token lives 10 s: the server closes 4403 once it expires.
    const got = await s.until(2, 20000);
    assert.ok(closes.includes(4403), `closes ${JSON.stringify(closes)}`);
    assert.equal(got[1].data.chatMessages.offset, during);
    assert.equal(got[1].data.chatMessages.message.text, 'during');
    await c.dispose();
  } finally {
    await short.stop();
  }
});

test('chatMessages resumption: epoch on every event; HISTORY_LOST ends the operation', async () => {
  // A history of 5 events per channel, so that it is easy to outrun.
  const small = await startServer({ args: ['--bus.history-size', '5'] });
  const post = async (query, variables, token) => {
    const res = await fetch(`${small.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = await res.json();
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    return body.data;
  };
  const say = async (text) => (await post('mutation M($s: ID!, $t: String!) { sendMessage(streamId: $s, text: $t) { offset } }',
    { s: sid, t: text }, u.token)).sendMessage.offset;
  const q = 'subscription C($s: ID!, $o: Int, $e: String) { chatMessages(streamId: $s, sinceOffset: $o, sinceEpoch: $e) { kind epoch offset message { text } } }';
  const u = await register(small.url, 'wh');
  const sid = (await post('mutation { startStream(title: "history") { id } }', {}, u.token)).startStream.id;
  const c = client(u.token, small.wsUrl);
  try {
    // Live: every ChatEvent carries the channel's epoch.
    const live = sub(c, q, { s: sid });
    await pause(200);
    const offs = [await say('a'), await say('b'), await say('c')];
    const seen = await live.until(3);
    const epoch = seen[0].data.chatMessages.epoch;
    assert.equal(typeof epoch, 'string');
    assert.ok(epoch.length > 0);
    for (const v of seen) assert.equal(v.data.chatMessages.epoch, epoch);
    assert.deepEqual(seen.map((v) => v.data.chatMessages.offset), offs);
    live.stop();

    // A good position, with its epoch: what followed it, then live; no
    // gap, no duplicate.
    const good = sub(c, q, { s: sid, o: offs[0], e: epoch });
    const replay = await good.until(2);
    assert.deepEqual(replay.map((v) => v.data.chatMessages.message.text), ['b', 'c']);
    const d = await say('d');
    const after = await good.until(3);
    assert.equal(after[2].data.chatMessages.offset, d);
    assert.equal(after[2].data.chatMessages.epoch, epoch);
    await pause(100);
    assert.equal(good.values.length, 3, 'no duplicate');
    assert.equal(good.error, null);
    good.stop();

    // Another epoch: HISTORY_LOST, and the operation ends.
    for (const e of [`${epoch}x`, '', 'x'.repeat(100)]) {
      const stale = sub(c, q, { s: sid, o: offs[2], e });
      await assert.rejects(stale.until(1), (err) => {
        assert.ok(Array.isArray(stale.error), JSON.stringify(stale.error));
        assert.equal(stale.error[0].extensions.code, 'HISTORY_LOST');
        return true;
      });
      assert.equal(stale.values.length, 0);
    }

    // An offset the bounded history (5 events) no longer reaches, with
    // and without sinceEpoch.
    for (let i = 0; i < 6; i++) await say(`flood ${i}`);
    for (const vars of [{ s: sid, o: offs[0] }, { s: sid, o: offs[0], e: epoch }]) {
      const old = sub(c, q, vars);
      await assert.rejects(old.until(1), () => {
        assert.equal(old.error[0].extensions.code, 'HISTORY_LOST');
        return true;
      });
      assert.equal(old.values.length, 0);
    }
    // Ended: a later message reaches a live subscriber only.
    const again = sub(c, q, { s: sid });
    await pause(200);
    await say('later');
    assert.equal((await again.until(1))[0].data.chatMessages.message.text, 'later');
    again.stop();
  } finally {
    await c.dispose();
    await small.stop();
  }
});
