// tests/e2e/concurrency.test.mjs: many clients reading what the server
// shares between its threads, at once.  json-c counts references without
// atomics, so any json-c object that two worker threads (or a worker and
// the loop) reach together corrupts the heap sooner or later: the
// introspection result, a channel's blocked terms, a bus event's data.
// Each test drives one such object from several threads at once and then
// checks that every answer is whole and that the server is still up; the
// sanitizer build (STREAMHUB_BIN=build-asan/server/streamhubd) reports
// the race itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { getIntrospectionQuery } from 'graphql';
import { startServer, register } from './harness.mjs';

const INTROSPECTION = getIntrospectionQuery();
const PARALLEL = 16;

let srv, owner;
before(async () => {
  // More workers than cores: more threads inside the engine at once.
  srv = await startServer({ args: ['--workers', '8'] });
  owner = await register(srv.url, 'cc');
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

async function post(query, variables, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${srv.url}/graphql`, {
    method: 'POST', headers, body: JSON.stringify({ query, variables }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

async function ok(query, variables, token) {
  const body = await post(query, variables, token);
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

test('16 parallel anonymous introspection queries over HTTP, repeated', async () => {
  const first = await ok(INTROSPECTION);
  const typeQ = '{ __type(name: "ChatEvent") { name fields(includeDeprecated: true) { name type { kind name ofType { name } } } } }';
  const firstType = await ok(typeQ);
  for (let round = 0; round < 25; round++) {
    const all = await Promise.all(Array.from({ length: PARALLEL }, (_, i) =>
      (i % 4 === 3 ? post(typeQ) : post(INTROSPECTION))));
    all.forEach((body, i) => {
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      assert.deepEqual(body.data, i % 4 === 3 ? firstType : first);
    });
  }
  assert.equal(srv.child.exitCode, null, srv.stderr());
});

// A raw graphql-transport-ws connection: every message, in order.
function raw() {
  const ws = new WebSocket(`${srv.wsUrl}/graphql`, 'graphql-transport-ws');
  const handlers = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    for (const h of handlers) h(m);
  });
  ws.on('error', () => {});
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, handlers, closed }));
    ws.once('error', reject);
  });
}

test('hundreds of introspection queries over one graphql-transport-ws connection', async () => {
  const expected = await ok(INTROSPECTION);
  const s = await raw();
  const acked = new Promise((resolve) => s.handlers.push((m) => { if (m.type === 'connection_ack') resolve(); }));
  s.ws.send(JSON.stringify({ type: 'connection_init' }));
  await acked;
  const TOTAL = 400, WINDOW = 32;
  const results = new Map();
  let done = 0, sent = 0, finish;
  const all = new Promise((resolve) => { finish = resolve; });
  const send = () => {
    const id = `q${sent++}`;
    s.ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query: INTROSPECTION } }));
  };
  s.handlers.push((m) => {
    if (m.type === 'next') {
      results.set(m.id, m.payload);
    } else if (m.type === 'complete' || m.type === 'error') {
      if (m.type === 'error') results.set(m.id, { errors: m.payload });
      done++;
      if (sent < TOTAL) send();
      if (done === TOTAL) finish();
    }
  });
  const gone = s.closed.then((code) => { throw new Error(`closed ${code}: ${srv.stderr()}`); });
  for (let i = 0; i < WINDOW; i++) send();
  await Promise.race([all, gone]);
  assert.equal(results.size, TOTAL);
  for (const [id, payload] of results) {
    assert.equal(payload.errors, undefined, `${id}: ${JSON.stringify(payload.errors)}`);
    assert.deepEqual(payload.data, expected, id);
  }
  s.ws.close();
  await s.closed;
  assert.equal(srv.child.exitCode, null, srv.stderr());
});

test('chatSettings read from many threads while its blocked terms change', async () => {
  const sid = (await ok('mutation { startStream(title: "races", category: "Chess") { id } }', {}, owner.token)).startStream.id;
  const channelId = owner.user.id;
  const sets = Array.from({ length: 30 }, (_, i) => [`bad${i}`, `worse${i}`, `worst${i}`]);
  const valid = new Set([JSON.stringify([]), ...sets.map((t) => JSON.stringify(t))]);
  // A subscriber: each change reaches it as a bus event, formatted on a
  // worker while other threads read the same settings.
  const c = createClient({ url: `${srv.wsUrl}/graphql`, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
  const events = [];
  let wake = () => {};
  const stop = c.subscribe({
    query: 'subscription S($s: ID!) { chatMessages(streamId: $s) { kind settings { blockedTerms slowModeSeconds } } }',
    variables: { s: sid },
  }, {
    next: (v) => { events.push(v); wake(); },
    error: (e) => { events.push({ error: e }); wake(); },
    complete: () => {},
  });
  try {
    await new Promise((r) => setTimeout(r, 200));
    let writing = true;
    const readQ = 'query R($s: ID!) { stream(id: $s) { chatSettings { blockedTerms maxMessageLength } } }';
    const readers = Array.from({ length: PARALLEL }, async () => {
      let reads = 0;
      while (writing || reads < 5) {
        const d = await ok(readQ, { s: sid });
        const terms = JSON.stringify(d.stream.chatSettings.blockedTerms);
        assert.ok(valid.has(terms), `torn blockedTerms ${terms}`);
        reads++;
      }
      return reads;
    });
    const upd = 'mutation U($c: ID!, $t: [String!]) { updateChatSettings(channelId: $c, blockedTerms: $t) { blockedTerms } }';
    for (const terms of sets) {
      const d = await ok(upd, { c: channelId, t: terms }, owner.token);
      assert.deepEqual(d.updateChatSettings.blockedTerms, terms);
    }
    writing = false;
    await Promise.all(readers);
    while (events.length < sets.length) {
      await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`have ${events.length} events`)), 10000);
        wake = () => { clearTimeout(t); resolve(); };
      });
    }
    assert.deepEqual(events.map((e) => e.data?.chatMessages?.settings?.blockedTerms), sets);
    for (const e of events) assert.equal(e.data.chatMessages.kind, 'SETTINGS_CHANGED');
  } finally {
    stop();
    await c.dispose();
    await ok(`mutation { stopStream(streamId: "${sid}") { id } }`, {}, owner.token);
  }
  assert.equal(srv.child.exitCode, null, srv.stderr());
});
