// tests/e2e/fanout.test.mjs: the fan-out's write path through real
// WebSocket clients: events that wait for a socket (a burst queued in
// one batch, readers that stop reading so that writes are partial or
// refused) still reach every subscriber exactly once and in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, Native, API_KEY } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ args: ['--ws.send-buffer-bytes', '67108864'] });
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

// Every event of @channel on @c, in arrival order, must be offsets
// first..first+n-1 carrying data.i 0..n-1: none lost, none twice, none
// out of order.
function assertExactlyInOrder(c, channel, n, who) {
  const evs = c.events.filter((e) => e.channel === channel);
  assert.equal(evs.length, n, `${who}: ${evs.length} events of ${n}`);
  const first = evs[0].offset;
  for (let j = 0; j < n; j++) {
    assert.equal(evs[j].offset, first + j, `${who}: event ${j} has offset ${evs[j].offset}`);
    assert.equal(evs[j].event.data.i, j, `${who}: event ${j} carries ${evs[j].event.data.i}`);
  }
}

test('a burst waiting for stalled and live readers arrives once and in order', async () => {
  const channel = 'app:order';
  const n = 1500, readers = 10, stalled = 3;
  const subs = await Promise.all(Array.from({ length: readers }, () => Native.open(srv.wsUrl)));
  for (const c of subs) {
    const r = await c.send('subscribe', { channel });
    assert.equal(r.ok, true, JSON.stringify(r));
  }
  // These stop reading: the kernel's buffers fill, the server's writes to
  // them become partial, then refused, and their frames wait in its
  // output while later events keep coming.
  for (const c of subs.slice(0, stalled)) c.ws._socket.pause();
  const pub = await Native.open(srv.wsUrl);
  const pad = 'p'.repeat(4000);
  // Sent in one go: the server reads many publishes per turn, so the bus
  // hands the loop many events per batch.
  const acks = [];
  for (let i = 0; i < n; i++) {
    acks.push(pub.send('publish', { channel, apiKey: API_KEY, data: { i, pad } }));
  }
  for (const r of await Promise.all(acks)) assert.equal(r.ok, true, JSON.stringify(r));
  for (const c of subs.slice(0, stalled)) c.ws._socket.resume();
  await Promise.all(subs.map((c) => c.waitEvents(n, (e) => e.channel === channel, 60000)));
  // A reply is written behind every event sent before it: once it is
  // here, nothing more of the burst is on its way.
  await Promise.all(subs.map((c) => c.send('ping')));
  subs.forEach((c, k) => assertExactlyInOrder(c, channel, n, `reader ${k}`));
  await Promise.all([...subs, pub].map((c) => c.close()));
});

test('one event at a time to a stalled reader: partial writes keep frames whole', async () => {
  const channel = 'app:partial';
  // More than the kernel's buffers hold: while the reader is stalled,
  // some frame is written in part, and later ones wait behind its rest.
  const n = 800;
  const subs = await Promise.all(Array.from({ length: 3 }, () => Native.open(srv.wsUrl)));
  for (const c of subs) assert.equal((await c.send('subscribe', { channel })).ok, true);
  subs[0].ws._socket.pause();
  const pub = await Native.open(srv.wsUrl);
  const pad = 'q'.repeat(16000);
  // Each publish answered before the next: one event per batch, so each
  // goes out by itself, straight to the socket when nothing waits.
  for (let i = 0; i < n; i++) {
    const r = await pub.send('publish', { channel, apiKey: API_KEY, data: { i, pad } });
    assert.equal(r.ok, true, JSON.stringify(r));
  }
  subs[0].ws._socket.resume();
  await Promise.all(subs.map((c) => c.waitEvents(n, (e) => e.channel === channel, 60000)));
  await Promise.all(subs.map((c) => c.send('ping')));
  subs.forEach((c, k) => assertExactlyInOrder(c, channel, n, `reader ${k}`));
  await Promise.all([...subs, pub].map((c) => c.close()));
});
