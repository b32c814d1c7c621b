// Durability across kill -9 (PROTOCOL.md "Channels"; chat.durability):
// streamhubd on a SQLite file, killed with SIGKILL while chat messages and
// app events flow, restarted on the same store.  Acknowledged means
// stored: every acknowledged chat message is in the history under the
// offset it was acknowledged with.  An offset names one event forever: no
// offset handed out before the crash (acknowledged, or seen by a
// subscriber) is handed out again, on the chat channel or on any other,
// and a native subscriber that resumes with its last epoch and offset
// never gets a different event under an offset it already saw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, api, register, Native, API_KEY } from './harness.mjs';

const ARGS = ['--chat.rate-limit', '100000'];

// Every message of the stream's history: id -> offset.
async function history(url, sid) {
  const all = new Map();
  let before = '';
  for (let page = 0; page < 1000; page++) {
    const h = await api(url, 'GET', `/api/v1/streams/${sid}/chat?last=100${before}`);
    assert.equal(h.status, 200, JSON.stringify(h.body));
    for (const m of h.body.items) all.set(m.id, m.offset);
    if (!h.body.nextCursor) break;
    before = `&before=${encodeURIComponent(h.body.nextCursor)}`;
  }
  return all;
}

const chatOf = (e) => e.event?.type === 'chat.message';

test('kill -9 mid-stream: acknowledged is stored, no offset is reused', async () => {
  const a = await startServer({ keepDir: true, args: ARGS });
  const senders = [await register(a.url, 'dk'), await register(a.url, 'dk')];
  const st = await api(a.url, 'POST', '/api/v1/streams',
    { token: senders[0].token, body: { title: 'durability' } });
  assert.equal(st.status, 201, JSON.stringify(st.body));
  const sid = st.body.id;
  const chan = `chat:${sid}`;
  const app = `app:durable${process.pid}`;

  // A subscriber on both channels, remembering each offset's event.
  const watcher = await Native.open(a.wsUrl);
  const subChat = await watcher.send('subscribe', { channel: chan });
  const subApp = await watcher.send('subscribe', { channel: app });
  assert.equal(subChat.ok, true, JSON.stringify(subChat));
  assert.equal(subApp.ok, true, JSON.stringify(subApp));

  const clients = await Promise.all(Array.from({ length: 8 }, () => Native.open(a.wsUrl)));
  await Promise.all(clients.map((c, k) => c.send('auth', { token: senders[k % 2].token })));
  const acked = new Map();              // message id -> offset
  const appAcked = [];
  let stop = false;
  const pump = async (c, k) => {
    for (let i = 0; !stop; i++) {
      const r = await Promise.race([
        c.send('chat.send', { streamId: sid, text: `m${k}-${i}` }),
        c.closed.then(() => null)]);
      if (!r) return;
      if (r.ok) acked.set(r.result.message.id, r.result.message.offset);
    }
  };
  const publish = async () => {
    while (!stop) {
      let r;
      try {
        r = await api(a.url, 'POST', '/api/v1/publish',
          { apiKey: API_KEY, body: { channel: app, data: { n: appAcked.length } } });
      } catch {
        return;                         // the server is gone
      }
      if (r.status === 200) appAcked.push(r.body.offset);
      await new Promise((res) => setTimeout(res, 5));
    }
  };
  const pumps = [...clients.map((c, k) => pump(c, k)), publish()];
  // Until the chat is busy and an app event went out, then the kill.
  while (acked.size < 500 || appAcked.length < 5)
    await new Promise((r) => setTimeout(r, 20));
  a.child.kill('SIGKILL');
  stop = true;
  await Promise.all(pumps);
  await a.exited;
  await watcher.closed;

  // What was handed out before the crash, by offset.
  const seen = new Map();               // channel -> Map(offset -> identity)
  for (const ch of [chan, app]) seen.set(ch, new Map());
  for (const e of watcher.events) {
    if (!e.channel) continue;
    const id = chatOf(e) ? e.event.data.id : JSON.stringify(e.event.data);
    const prev = seen.get(e.channel).get(e.offset);
    assert.ok(prev === undefined || prev === id,
      `${e.channel} offset ${e.offset} named two events before the crash`);
    seen.get(e.channel).set(e.offset, id);
  }
  let topChat = 0;
  for (const off of acked.values()) topChat = Math.max(topChat, off);
  for (const off of seen.get(chan).keys()) topChat = Math.max(topChat, off);
  let topApp = 0;
  for (const off of appAcked) topApp = Math.max(topApp, off);
  for (const off of seen.get(app).keys()) topApp = Math.max(topApp, off);
  const lastChat = [...seen.get(chan).keys()].reduce((m, o) => Math.max(m, o), 0);

  const b = await startServer({ dir: a.dir, args: ARGS });
  try {
    // 1. Every acknowledged message is stored, under its offset.
    const stored = await history(b.url, sid);
    const lost = [...acked.keys()].filter((id) => !stored.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${acked.size} acknowledged messages lost`);
    for (const [id, off] of acked)
      assert.equal(stored.get(id), off, `message ${id} moved from offset ${off}`);

    // 2. A subscriber resuming from its last position: the epoch changed,
    // so it is told it did not recover, and what it gets from now on never
    // reuses an offset it saw.
    const resumed = await Native.open(b.wsUrl);
    const r = await resumed.send('subscribe',
      { channel: chan, since: { epoch: subChat.result.epoch, offset: lastChat } });
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.result.recovered, false);
    assert.notEqual(r.result.epoch, subChat.result.epoch);
    const ra = await resumed.send('subscribe',
      { channel: app, since: { epoch: subApp.result.epoch, offset: topApp } });
    assert.equal(ra.ok, true, JSON.stringify(ra));
    assert.equal(ra.result.recovered, false);

    // 3. New events continue above everything handed out before.
    const n = await Native.open(b.wsUrl);
    await n.send('auth', { token: senders[1].token });
    const sent = [];
    for (let i = 0; i < 20; i++) {
      const s = await n.send('chat.send', { streamId: sid, text: `after-${i}` });
      assert.equal(s.ok, true, JSON.stringify(s));
      sent.push(s.result.message);
    }
    assert.ok(sent[0].offset > topChat,
      `offset ${sent[0].offset} after the crash, ${topChat} handed out before`);
    const p = await api(b.url, 'POST', '/api/v1/publish',
      { apiKey: API_KEY, body: { channel: app, data: { after: true } } });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.ok(p.body.offset > topApp,
      `${app}: offset ${p.body.offset} after the crash, ${topApp} before`);

    const got = await resumed.waitEvents(21, (e) => e.channel === chan && chatOf(e)
      || e.channel === app);
    for (const e of got) {
      const id = chatOf(e) ? e.event.data.id : JSON.stringify(e.event.data);
      const before = seen.get(e.channel).get(e.offset);
      assert.ok(before === undefined || before === id,
        `${e.channel} offset ${e.offset}: ${id} now, ${before} before the crash`);
    }
    await resumed.close();
    await n.close();
  } finally {
    await b.stop();
  }
});
