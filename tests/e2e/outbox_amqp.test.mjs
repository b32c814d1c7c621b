// The transactional outbox to RabbitMQ (events-amqp), against a real
// broker (svc_rabbitmq.mjs) and a real AMQP consumer (amqplib).
//
// Every event StreamHub acknowledged reaches the broker's consumers, each
// id at least once, in order per channel, across a broker killed
// mid-stream and a streamhubd killed with SIGKILL mid-stream; an event no
// queue takes is returned and dead-lettered, never dropped; an exchange
// declared with other arguments is an error in the log and /readyz, not a
// crash loop; a broker that blocks publishers (memory alarm) stalls no
// request of StreamHub's; two nodes on one PostgreSQL share the outbox
// and a dead node's rows are relayed by the other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { startServer, api, register, Native } from './harness.mjs';
import { startRabbit } from './svc_rabbitmq.mjs';

const EXCHANGE = 'streamhub.events';
let rabbit;

before(async () => { rabbit = await startRabbit(); });
after(async () => { if (rabbit) await rabbit.stop(); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, ms, what) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timeout: ${what}`);
    await sleep(50);
  }
}

function serverArgs(uri, extra = []) {
  return ['--events-amqp', uri, '--chat.rate-limit', '100000',
    '--outbox.retry-max-ms', '500', '--outbox.poll-interval-ms', '50',
    ...extra];
}

// A consumer of a durable queue bound to the exchange by @keys, that
// reconnects (with the broker killed, its connection dies) until closed.
// got: every message in arrival order, repeats included.
async function consumer(uri, queue, keys = ['#']) {
  const c = { got: [], closed: false, conn: null };
  const connect = async () => {
    const conn = await amqp.connect(uri);
    conn.on('error', () => {});
    const ch = await conn.createChannel();
    await ch.assertExchange(EXCHANGE, 'topic', { durable: true });
    await ch.assertQueue(queue, { durable: true });
    for (const k of keys) await ch.bindQueue(queue, EXCHANGE, k);
    await ch.consume(queue, (m) => {
      if (m === null) return;
      c.got.push({
        id: m.properties.messageId,
        type: m.properties.type,
        key: m.fields.routingKey,
        persistent: m.properties.deliveryMode === 2,
        headers: m.properties.headers ?? {},
        body: JSON.parse(m.content.toString()),
      });
      ch.ack(m);
    });
    c.conn = conn;
    conn.on('close', () => { if (!c.closed) reconnect(); });
  };
  const reconnect = async () => {
    while (!c.closed) {
      try { await connect(); return; } catch { await sleep(200); }
    }
  };
  await connect();
  c.close = async () => {
    c.closed = true;
    try { await c.conn.close(); } catch { /* broker gone */ }
  };
  c.ids = () => new Set(c.got.map((m) => m.id));
  return c;
}

async function gql(url, token, query, variables = {}) {
  const r = await api(url, 'POST', '/graphql', { token, body: { query, variables } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  return r.body.data;
}

async function metric(url, name, label = 'amqp') {
  const r = await api(url, 'GET', '/metrics');
  const re = new RegExp(`^${name}\\{sink="${label}"\\} (\\S+)$`, 'm');
  const m = re.exec(r.body);
  return m ? Number(m[1]) : null;
}

// The chat.message events of @got in arrival order, first arrivals only:
// per channel their offsets must increase.
function assertChatOrder(got) {
  const seen = new Set();
  const last = new Map();
  for (const m of got) {
    if (m.type !== 'chat.message' || seen.has(m.id)) continue;
    seen.add(m.id);
    const ch = m.body.channel;
    const off = m.body.data.offset;
    assert.ok(!(last.get(ch) >= off),
      `chat order on ${ch}: offset ${off} after ${last.get(ch)}`);
    last.set(ch, off);
  }
}

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
