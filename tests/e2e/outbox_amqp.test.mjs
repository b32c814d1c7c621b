// The transactional outbox to RabbitMQ (events-amqp), against a real
// broker (svc_rabbitmq.mjs) and a real AMQP consumer (amqplib): every
// event type arrives with its id and data; an event no queue takes is
// returned and dead-lettered, never dropped; an exchange declared with
// other arguments is an error in the log and /readyz, not a crash loop; a
// broker that blocks publishers (memory alarm) stalls no request of
// StreamHub's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startServer, api, register } from './harness.mjs';
import { startRabbit } from './svc_rabbitmq.mjs';
import { EXCHANGE, sleep, waitFor, serverArgs, consumer, gql, metric,
  assertChatOrder, chatPump, twoStreams, chatIds, allArrive } from './outbox_util.mjs';

let rabbit;

before(async () => { rabbit = await startRabbit(); });
after(async () => { if (rabbit) await rabbit.stop(); });

test('every stored event reaches the broker once, with its id and data', async () => {
  const q = `all${process.pid}`;
  const c = await consumer(rabbit.uri, q);
  const a = await startServer({ args: serverArgs(rabbit.uri) });
  const caster = await register(a.url, 'ob');
  const fan = await register(a.url, 'ob');
  const other = await register(a.url, 'ob');

  await gql(a.url, fan.token, 'mutation($u: ID!) { follow(userId: $u) { id } }',
    { u: caster.user.id });
  const live = await gql(a.url, caster.token,
    'mutation { startStream(title: "outbox") { id } }');
  const sid = live.startStream.id;
  await gql(a.url, other.token, 'mutation { startStream(title: "target") { id } }');
  const sent = [];
  for (let i = 0; i < 5; i++) {
    const r = await api(a.url, 'POST', `/api/v1/streams/${sid}/chat`,
      { token: fan.token, body: { text: `hello ${i}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    sent.push(r.body.id ?? r.body.message?.id);
  }
  await gql(a.url, fan.token,
    'mutation($c: ID!) { subscribeToChannel(channelId: $c, tier: 2) { id } }',
    { c: caster.user.id });
  await gql(a.url, caster.token,
    'mutation($s: ID!, $u: ID!) { startRaid(fromStreamId: $s, toUserId: $u) { id } }',
    { s: sid, u: other.user.id });
  await gql(a.url, caster.token,
    'mutation($s: ID!) { stopStream(streamId: $s) { id } }', { s: sid });

  const want = { 'user.new_follower': 1, 'stream.live': 2, 'chat.message': 5,
    'subscription.new': 1, 'raid.incoming': 1, 'stream.offline': 1 };
  const total = Object.values(want).reduce((x, y) => x + y, 0);
  await waitFor(() => c.got.length >= total, 15000,
    `${total} events, have ${JSON.stringify(c.got.map((m) => m.type))}`);
  await sleep(300);                    // nothing more comes
  assert.equal(c.got.length, total);
  const count = {};
  for (const m of c.got) count[m.type] = (count[m.type] ?? 0) + 1;
  assert.deepEqual(count, want);
  for (const m of c.got) {
    assert.equal(m.id, m.body.id);
    assert.equal(m.key, m.type);
    assert.equal(m.body.type, m.type);
    assert.equal(m.persistent, true);
    assert.equal(m.headers.channel, m.body.channel);
  }
  assert.equal(c.ids().size, total, 'every event has its own id');
  const chat = c.got.filter((m) => m.type === 'chat.message');
  assert.deepEqual(chat.map((m) => m.body.data.text),
    ['hello 0', 'hello 1', 'hello 2', 'hello 3', 'hello 4']);
  for (const m of chat) assert.equal(m.body.channel, `chat:${sid}`);
  const off = c.got.find((m) => m.type === 'stream.offline');
  assert.equal(off.body.data.id, sid);
  assert.equal(off.body.channel, `stream:${sid}`);
  const follow = c.got.find((m) => m.type === 'user.new_follower');
  assert.equal(follow.body.channel, `user:${caster.user.id}`);
  assert.equal(follow.body.data.data.follower.id, fan.user.id);
  const raid = c.got.find((m) => m.type === 'raid.incoming');
  assert.equal(raid.body.data.to.id, other.user.id);
  const sub = c.got.find((m) => m.type === 'subscription.new');
  assert.equal(sub.body.data.tier, 2);
  await waitFor(async () => (await metric(a.url, 'streamhub_outbox_rows')) === 0,
    5000, 'the outbox drains');
  assert.equal(await metric(a.url, 'streamhub_outbox_relayed_total'), total);
  await c.close();
  await a.stop();
});

test('an event no queue takes is returned and dead-lettered', async () => {
  const c = await consumer(rabbit.uri, `route${process.pid}`, ['chat.message']);
  const a = await startServer({ args: serverArgs(rabbit.uri) });
  const u = await register(a.url, 'od');
  const r = await api(a.url, 'POST', '/api/v1/streams', { token: u.token, body: { title: 'nobody' } });
  assert.equal(r.status, 201);
  const chat = await api(a.url, 'POST', `/api/v1/streams/${r.body.id}/chat`,
    { token: u.token, body: { text: 'routed' } });
  assert.equal(chat.status, 201);
  // stream.live has no queue: it must show up in the dead-letter queue.
  const conn = await amqp.connect(rabbit.uri);
  const ch = await conn.createChannel();
  const dead = [];
  await ch.consume('streamhub.events.dead', (m) => {
    dead.push({ id: m.properties.messageId, type: m.properties.type,
      headers: m.properties.headers, body: JSON.parse(m.content.toString()) });
    ch.ack(m);
  });
  const live = await waitFor(() => dead.find((m) => m.body.data?.id === r.body.id),
    15000, 'stream.live dead-lettered');
  assert.equal(live.type, 'stream.live');
  assert.equal(live.headers['x-streamhub-returned'], 'NO_ROUTE');
  await waitFor(() => chatIds(c).size === 1, 15000, 'the chat message routed');
  assert.equal(dead.filter((m) => m.type === 'chat.message').length, 0);
  await waitFor(async () => (await metric(a.url, 'streamhub_outbox_rows')) === 0,
    5000, 'the outbox drains');
  assert.equal(await metric(a.url, 'streamhub_outbox_dead_lettered_total'), 1);
  await conn.close();
  await c.close();
  await a.stop();
});

test('an exchange declared with other arguments: error and /readyz, no crash', async () => {
  await rabbit.ctl(['add_vhost', 'clash']);
  await rabbit.ctl(['set_permissions', '-p', 'clash', 'guest', '.*', '.*', '.*']);
  const uri = rabbit.uri.replace(/\/%2f$/, '/clash');
  const conn = await amqp.connect(uri);
  let ch = await conn.createChannel();
  await ch.assertExchange(EXCHANGE, 'fanout', { durable: true });
  const a = await startServer({ args: serverArgs(uri) });
  const ready = await waitFor(async () => {
    const r = await api(a.url, 'GET', '/readyz');
    return r.status === 503 ? r : null;
  }, 15000, '/readyz says unavailable');
  assert.equal(ready.body.outbox, 'error');
  assert.equal(ready.body.store, 'ok');
  assert.match(a.stderr(), /PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'streamhub.events'/);
  // StreamHub itself works; the event waits in the outbox.
  const u = await register(a.url, 'ox');
  const r = await api(a.url, 'POST', '/api/v1/streams', { token: u.token, body: { title: 'waits' } });
  assert.equal(r.status, 201);
  await waitFor(async () => (await metric(a.url, 'streamhub_outbox_rows')) === 1,
    5000, 'one row waits');
  // Retried at the backoff, logged once: not a crash loop, not a flood.
  await sleep(1500);
  assert.equal(a.child.exitCode, null);
  assert.equal(a.stderr().match(/outbox sink failed/g).length, 1);
  // Fixed by the operator: the event goes out, /readyz is 200 again.
  await ch.deleteExchange(EXCHANGE);
  ch = await conn.createChannel();
  await ch.assertExchange(EXCHANGE, 'topic', { durable: true });
  const q = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(q.queue, EXCHANGE, '#');
  const got = [];
  await ch.consume(q.queue, (m) => { got.push(JSON.parse(m.content.toString())); ch.ack(m); });
  await waitFor(() => got.length === 1, 15000, 'the waiting event delivered');
  assert.equal(got[0].data.id, r.body.id);
  await waitFor(async () => (await api(a.url, 'GET', '/readyz')).status === 200,
    5000, '/readyz ready again');
  await conn.close();
  await a.stop();
});

test('a memory alarm blocks the broker, not StreamHub', async () => {
  const c = await consumer(rabbit.uri, `alarm${process.pid}`, ['chat.message']);
  // A delivery waits up to 10 s: a request that waited on it would miss
  // the deadline of its own below.
  const a = await startServer({ args: serverArgs(rabbit.uri,
    ['--outbox.delivery-timeout-ms', '10000', '--outbox.lease-ms', '30000']) });
  const u = await register(a.url, 'oa');
  const [sid] = await twoStreams(a.url);
  await rabbit.ctl(['set_vm_memory_high_watermark', 'absolute', '1']);
  try {
    const acked = new Map();
    const send = async (i) => {
      const r = await api(a.url, 'POST', `/api/v1/streams/${sid}/chat`,
        { token: u.token, body: { text: `alarm ${i}` }, timeoutMs: 3000 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      acked.set(r.body.id, r.body.offset);
    };
    for (let i = 0; i < 20; i++) await send(i);
    await waitFor(async () => (await metric(a.url, 'streamhub_outbox_sink_blocked')) === 1,
      20000, 'the broker blocks our publishes');
    // Blocked: every other request still answers within its deadline.
    for (let i = 20; i < 60; i++) {
      await send(i);
      const g = await api(a.url, 'GET', `/api/v1/streams/${sid}`, { timeoutMs: 3000 });
      assert.equal(g.status, 200);
    }
    await waitFor(async () => (await metric(a.url, 'streamhub_outbox_rows')) > 0,
      5000, 'the events wait in the outbox');
    await rabbit.ctl(['set_vm_memory_high_watermark', '0.4']);
    await allArrive(c, acked, 30000, 'after the alarm cleared');
  } finally {
    await rabbit.ctl(['set_vm_memory_high_watermark', '0.4']);
  }
  await c.close();
  await a.stop();
});
