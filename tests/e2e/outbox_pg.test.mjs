// Two streamhubd nodes on one PostgreSQL share the outbox: each row is
// relayed by one node at a time (lanes claimed FOR UPDATE SKIP LOCKED), so
// with both relays at work every event arrives exactly once; and when a
// node dies holding lanes (killed with SIGKILL while the broker blocks its
// publishes), the other takes them over once their lease lapses and every
// acknowledged event still arrives, in order per channel.  One node
// reaches PostgreSQL directly, the other through pgbouncer in transaction
// pooling mode (store.prepared-statements = false).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, register } from './harness.mjs';
import { startRabbit } from './svc_rabbitmq.mjs';
import { startPg } from './svc_pg.mjs';
import { waitFor, serverArgs, consumer, metric, chatPump, twoStreams,
  chatIds, allArrive } from './outbox_util.mjs';

let rabbit;
let pg;

before(async () => {
  rabbit = await startRabbit();
  pg = await startPg({ bouncer: true });
});
after(async () => {
  if (rabbit) await rabbit.stop();
  if (pg) await pg.stop();
});

const EXTRA = ['--outbox.delivery-timeout-ms', '2000', '--outbox.lease-ms', '5000'];

test('two nodes share the outbox: one relay per row, a dead node taken over', async () => {
  const c = await consumer(rabbit.uri, `pg${process.pid}`);
  const a = await startServer({ args: [...serverArgs(rabbit.uri, EXTRA),
    '--store', pg.uri()] });
  const b = await startServer({ args: [...serverArgs(rabbit.uri, EXTRA),
    '--store', pg.bouncerUri(), '--store.prepared-statements', 'false'] });
  const sender = await register(a.url, 'op');
  // One stream per node: a channel's offsets come from the node that
  // sends on it (the local bus), so each channel's order is checkable.
  const [sa, sb] = await twoStreams(a.url);
  let pa = await chatPump(a, sender.token, [sa], 2);
  let pb = await chatPump(b, sender.token, [sb], 2);
  await waitFor(async () => (await metric(a.url, 'streamhub_outbox_relayed_total')) > 50 &&
    (await metric(b.url, 'streamhub_outbox_relayed_total')) > 50, 20000,
    'both nodes relay');
  await pa.end();
  await pb.end();
  let acked = new Map([...pa.acked, ...pb.acked]);
  await allArrive(c, acked, 20000, 'both nodes');
  // No crash, no broker failure: no row was relayed twice.
  await waitFor(async () => (await metric(a.url, 'streamhub_outbox_rows')) === 0,
    5000, 'the outbox drains');
  // (A send cut short by the pump's end may be stored unacknowledged: the
  // count is of what arrived.)
  const ids = new Set(c.got.map((m) => m.id));
  assert.equal(c.got.length, ids.size, 'each event exactly once');
  const relayed = async () => (await metric(a.url, 'streamhub_outbox_relayed_total')) +
    (await metric(b.url, 'streamhub_outbox_relayed_total'));
  // A relay counts its rows once their deletion committed, just after
  // the broker confirmed them: wait for the last settle.
  await waitFor(async () => (await relayed()) >= ids.size, 5000, 'settled');
  assert.equal(await relayed(), ids.size);
  assert.equal(c.got.length, ids.size, 'still each event exactly once');

  const bBefore = await metric(b.url, 'streamhub_outbox_relayed_total');
  // The broker blocks publishers: both relays wait on it, holding lanes.
  await rabbit.ctl(['set_vm_memory_high_watermark', 'absolute', '1']);
  try {
    pa = await chatPump(a, sender.token, [sa], 2);
    pb = await chatPump(b, sender.token, [sb], 2);
    await waitFor(async () => (await metric(a.url, 'streamhub_outbox_sink_blocked')) === 1,
      20000, 'node a blocked mid-delivery');
    await a.stop('SIGKILL');
    await pa.end();
    await waitFor(() => pb.acked.size >= 50, 20000, 'node b goes on');
    await pb.end();
    await rabbit.ctl(['set_vm_memory_high_watermark', '0.4']);
    acked = new Map([...pa.acked, ...pb.acked]);
    assert.ok(pa.acked.size > 0);
    // Node a's rows, in lanes it held when it died, go out through b.
    await allArrive(c, acked, 30000, 'node a taken over by node b');
  } finally {
    await rabbit.ctl(['set_vm_memory_high_watermark', '0.4']);
  }
  assert.ok(chatIds(c).size >= acked.size);
  // Node b relayed them all, node a's included.
  await waitFor(async () => (await metric(b.url, 'streamhub_outbox_relayed_total')) -
    bBefore >= acked.size, 5000, 'node b settled them');
  await c.close();
  await b.stop();
});
