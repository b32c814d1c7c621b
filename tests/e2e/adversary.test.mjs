// tests/e2e/adversary.test.mjs: inputs a hostile client sends at the edges
// of the contract, each answered as the contract says while the server
// keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer, Native, api } from './harness.mjs';

// Open a raw /ws socket that records every text frame unparsed, so that
// the exact digits of an echoed id can be compared.
async function rawNative(wsUrl) {
  const ws = new WebSocket(`${wsUrl}/ws`, 'streamhub.v1');
  const frames = [];
  const waiters = [];
  ws.on('message', (d) => {
    frames.push(d.toString());
    for (const w of waiters.splice(0)) w();
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const next = async (n) => {
    while (frames.length < n)
      await new Promise((resolve) => waiters.push(resolve));
    return frames.slice(0, n);
  };
  return { ws, frames, next };
}

test('native: an id beyond 64 bits is refused, never answered as another id',
     async () => {
  const s = await startServer();
  const c = await rawNative(s.wsUrl);
  const sent = [
    '{"id":18446744073709551616,"op":"ping"}',
    '{"id":-9223372036854775809,"op":"ping"}',
    '{"id":3,"op":"subscribe","channel":"live",' +
      '"since":{"epoch":"e","offset":18446744073709551616}}',
    '{"id":9223372036854775808,"op":"ping"}',
    '{"id":-9223372036854775807,"op":"ping"}',
  ];
  for (const f of sent) c.ws.send(f);
  const got = await c.next(sent.length);
  assert.match(got[0], /^\{"id":null,"error":\{"code":"bad_request"/);
  assert.match(got[1], /^\{"id":null,"error":\{"code":"bad_request"/);
  assert.match(got[2], /^\{"id":3,"error":\{"code":"bad_request"/);
  // In range ids come back digit for digit.
  assert.match(got[3], /^\{"id":9223372036854775808,"ok":true/);
  assert.match(got[4], /^\{"id":-9223372036854775807,"ok":true/);
  c.ws.close();
  await s.stop();
});

test('native: one connection cannot hold unbounded subscriptions, and ' +
     'stays usable at the bound', async () => {
  const s = await startServer();
  const n = await Native.open(s.wsUrl);
  const names = [...Array(400)].map((_, i) => `app:adv${i}`);
  const rs = await Promise.all(names.map((channel) =>
    n.send('subscribe', { channel })));
  const accepted = rs.filter((r) => r.ok).length;
  assert.ok(accepted > 0 && accepted < names.length, `accepted ${accepted}`);
  for (const r of rs.filter((r) => !r.ok))
    assert.equal(r.error.code, 'too_large');
  // At the bound: other commands still answer, and leaving one channel
  // makes room for another.
  assert.equal((await n.send('ping')).ok, true);
  const again = await n.send('subscribe', { channel: 'app:advnew' });
  assert.equal(again.error?.code, 'too_large');
  const first = names[rs.findIndex((r) => r.ok)];
  assert.equal((await n.send('unsubscribe', { channel: first })).ok, true);
  assert.equal((await n.send('subscribe', { channel: 'app:advnew' })).ok, true);
  n.close();
  await s.stop();
});

test('GraphQL: an Int literal given for an ID is that ID, as a variable is',
     async () => {
  const s = await startServer();
  const q = (query, variables) =>
    api(s.url, 'POST', '/graphql', { body: { query, variables } });
  // No user has id "5": each form answers null, none claims the argument
  // is missing.
  const forms = [
    await q('{ user(id: 5) { id } }'),
    await q('{ user(id: "5") { id } }'),
    await q('query($i: ID) { user(id: $i) { id } }', { i: 5 }),
    await q('query($i: ID = 5) { user(id: $i) { id } }'),
  ];
  for (const r of forms) {
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { data: { user: null } });
  }
  await s.stop();
});
