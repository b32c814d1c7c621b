// tests/e2e/outbox_util.mjs: what the outbox tests share: a real AMQP
// consumer (amqplib) that survives broker restarts, chat senders, and
// checks of arrival and order.
import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { api, register, Native } from './harness.mjs';

export const EXCHANGE = 'streamhub.events';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(pred, ms, what) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timeout: ${what}`);
    await sleep(50);
  }
}

export function serverArgs(uri, extra = []) {
  return ['--events-amqp', uri, '--chat.rate-limit', '100000',
    '--outbox.retry-max-ms', '500', '--outbox.poll-interval-ms', '50',
    ...extra];
}

// A consumer of a durable queue bound to the exchange by @keys, that
// reconnects (with the broker killed, its connection dies) until closed.
// got: every message in arrival order, repeats included.
export async function consumer(uri, queue, keys = ['#']) {
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
  // Stop consuming and delete the queue: no later test's event routes
  // to it.
  c.close = async () => {
    c.closed = true;
    try {
      const ch = await c.conn.createChannel();
      await ch.deleteQueue(queue);
      await c.conn.close();
    } catch { /* broker gone */ }
  };
  c.ids = () => new Set(c.got.map((m) => m.id));
  return c;
}

export async function gql(url, token, query, variables = {}) {
  const r = await api(url, 'POST', '/graphql', { token, body: { query, variables } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  return r.body.data;
}

export async function metric(url, name, label = 'amqp') {
  const r = await api(url, 'GET', '/metrics');
  const re = new RegExp(`^${name}\\{sink="${label}"\\} (\\S+)$`, 'm');
  const m = re.exec(r.body);
  return m ? Number(m[1]) : null;
}

// The chat.message events of @got in arrival order, first arrivals only:
// per channel their offsets must increase.
export function assertChatOrder(got) {
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

// Chat senders on @n native connections spread over @streams, until
// stop(): acked maps each acknowledged message id to its offset.
export async function chatPump(srv, token, streams, n = 4) {
  const clients = await Promise.all(Array.from({ length: n }, () => Native.open(srv.wsUrl)));
  await Promise.all(clients.map((c) => c.send('auth', { token })));
  const p = { acked: new Map(), stop: false };
  const one = async (c, k) => {
    for (let i = 0; !p.stop; i++) {
      const r = await Promise.race([
        c.send('chat.send', { streamId: streams[k % streams.length], text: `m${k}-${i}` }),
        c.closed.then(() => null)]);
      if (!r) return;
      if (r.ok) p.acked.set(r.result.message.id, r.result.message.offset);
    }
  };
  const all = clients.map((c, k) => one(c, k));
  p.end = async () => {
    p.stop = true;
    await Promise.race([Promise.all(all), sleep(5000)]);
    for (const c of clients) c.ws.terminate();
  };
  return p;
}

export async function twoStreams(url) {
  const ids = [];
  for (let i = 0; i < 2; i++) {
    const u = await register(url, 'os');
    const r = await api(url, 'POST', '/api/v1/streams', { token: u.token, body: { title: `s${i}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ids.push(r.body.id);
  }
  return ids;
}

// Every acknowledged id arrived, at least once: the chat ids of @c.
export function chatIds(c) {
  return new Set(c.got.filter((m) => m.type === 'chat.message').map((m) => m.body.data.id));
}

export async function allArrive(c, acked, ms, what) {
  await waitFor(() => {
    const have = chatIds(c);
    for (const id of acked.keys()) if (!have.has(id)) return false;
    return true;
  }, ms, `${what}: ${acked.size} acknowledged, ${chatIds(c).size} arrived`);
  assertChatOrder(c.got);
}
