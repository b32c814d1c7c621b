// tests/e2e/otel.test.mjs: OpenTelemetry spans exported over OTLP/HTTP
// JSON to a small collector written here with node's http module: one
// trace from an HTTP request (W3C traceparent) through its GraphQL
// operation, store queries and bus publish to the delivery of the event
// it published; a collector that hangs or is down never slows requests
// nor grows the queue past its bound (drops are counted); only 429, 502,
// 503 and 504 are retried.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { startServer, register, api, Native } from './harness.mjs';
import { startRabbit } from './svc_rabbitmq.mjs';
import { consumer, serverArgs, waitFor } from './outbox_util.mjs';
import { startRedis } from './svc_redis.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

const hex = (n) => randomBytes(n).toString('hex');

// A collector: @answer(req, res, n) answers the n-th export (1-based) or
// leaves it hanging.  Every export's body is kept, in arrival order.
const collectors = [];
async function collector(answer) {
  const exports = [];
  const waiters = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const e = { at: Date.now(), path: req.url, ctype: req.headers['content-type'], body };
      e.json = JSON.parse(body);
      exports.push(e);
      answer(req, res, exports.length);
      for (const w of [...waiters]) w();
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const c = {
    url,
    exports,
    // Resolve once @pred(exports) holds (checked at each export).
    until(pred, ms = 15000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(exports)) return false;
          clearTimeout(t);
          waiters.splice(waiters.indexOf(check), 1);
          resolve(exports);
          return true;
        };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1);
          reject(new Error(`collector: condition not met; ${exports.length} exports`));
        }, ms);
        waiters.push(check);
        check();
      });
    },
    close() {
      for (const s of sockets) s.destroy();
      collectors.splice(collectors.indexOf(c), 1);
      return new Promise((r) => server.close(r));
    },
  };
  collectors.push(c);
  return c;
}

// Every span of the exports accepted (or all, with @all).
function spansOf(exports) {
  const out = [];
  for (const e of exports)
    for (const rs of e.json.resourceSpans ?? [])
      for (const ss of rs.scopeSpans ?? [])
        for (const s of ss.spans ?? []) out.push({ ...s, resource: rs.resource });
  return out;
}

const attr = (s, k) => {
  const a = (s.attributes ?? []).find((x) => x.key === k);
  return a === undefined ? undefined : a.value.stringValue ?? a.value.intValue;
};

// A metric's value from /metrics text: the sum of the series of @name
// whose labels contain @labels.
async function metric(base, name, labels = '') {
  const r = await api(base, 'GET', '/metrics');
  let sum = 0;
  let seen = false;
  for (const line of String(r.body).split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name || !(m[2] ?? '').includes(labels)) continue;
    sum += Number(m[3]);
    seen = true;
  }
  return seen ? sum : undefined;
}

const servers = [];
after(async () => {
  for (const s of [...servers]) await s.stop();
  for (const c of [...collectors]) await c.close();
});

async function serverFor(endpoint, extra = []) {
  const s = await startServer({
    args: ['--otlp-endpoint', endpoint, '--otlp.batch-delay-ms', '20', ...extra],
  });
  servers.push(s);
  return s;
}

async function stop(s) {
  servers.splice(servers.indexOf(s), 1);
  const r = await s.stop();
  assert.equal(r.code, 0, s.stderr());
}

test('one trace: HTTP request, GraphQL operation, store queries, bus publish, delivery', async () => {
  const coll = await collector((req, res) => res.end('{}'));
  const srv = await serverFor(coll.url);
  const alice = await register(srv.url, 'oa');
  const bob = await register(srv.url, 'ob');
  const n = await Native.open(srv.wsUrl);
  assert.equal((await n.send('auth', { token: alice.token })).ok, true);
  const sub = await n.send('subscribe', { channel: `user:${alice.user.id}` });
  assert.equal(sub.ok, true, JSON.stringify(sub));

  const trace = hex(16);
  const parent = hex(8);
  const r = await fetch(`${srv.url}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${bob.token}`,
      traceparent: `00-${trace}-${parent}-01`,
    },
    body: JSON.stringify({
      query: 'mutation FollowAlice($id: ID!) { follow(userId: $id) { id } }',
      operationName: 'FollowAlice',
      variables: { id: alice.user.id },
    }),
  });
  assert.equal(r.status, 200, await r.text());
  await n.waitEvents(1, (e) => e.event?.type === 'notification');

  const has = (pred) => (ex) => spansOf(ex).some(pred);
  await coll.until(has((s) => s.traceId === trace && s.kind === 5));
  const spans = spansOf(coll.exports).filter((s) => s.traceId === trace);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const under = (s, anc) => {
    for (let p = s; p !== undefined; p = byId.get(p.parentSpanId))
      if (p.spanId === anc.spanId) return true;
    return false;
  };

  // The encoding of OTLP/HTTP JSON.
  assert.equal(coll.exports[0].path, '/v1/traces');
  assert.equal(coll.exports[0].ctype, 'application/json');
  const svc = spans[0].resource.attributes.find((a) => a.key === 'service.name');
  assert.equal(svc.value.stringValue, 'streamhubd');
  for (const s of spans) {
    assert.match(s.spanId, /^[0-9a-f]{16}$/);
    assert.match(s.startTimeUnixNano, /^[0-9]{19}$/);
    assert.match(s.endTimeUnixNano, /^[0-9]{19}$/);
    assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
  }

  const httpSpan = spans.find((s) => s.kind === 2);
  assert.ok(httpSpan, JSON.stringify(spans));
  assert.equal(httpSpan.name, 'POST /graphql');
  assert.equal(httpSpan.parentSpanId, parent);
  assert.equal(attr(httpSpan, 'http.response.status_code'), '200');

  const gql = spans.find((s) => s.name === 'mutation FollowAlice');
  assert.ok(gql, JSON.stringify(spans.map((s) => s.name)));
  assert.equal(gql.parentSpanId, httpSpan.spanId);
  assert.equal(attr(gql, 'graphql.operation.name'), 'FollowAlice');
  assert.equal(attr(gql, 'graphql.operation.type'), 'mutation');

  const queries = spans.filter((s) => s.name === 'store.query');
  assert.ok(queries.length > 0, JSON.stringify(spans.map((s) => s.name)));
  for (const q of queries) {
    assert.ok(under(q, gql));
    assert.equal(attr(q, 'db.system'), 'sqlite');
    assert.ok(attr(q, 'db.statement').length > 0);
  }

  const pub = spans.find((s) => s.kind === 4 &&
    attr(s, 'messaging.destination.name') === `user:${alice.user.id}`);
  assert.ok(pub, JSON.stringify(spans.map((s) => s.name)));
  assert.ok(under(pub, gql));
  assert.equal(attr(pub, 'streamhub.event.type'), 'notification');

  // The consumer's span joins the producer's trace through the event.
  const deliver = spans.find((s) => s.kind === 5 &&
    attr(s, 'messaging.destination.name') === `user:${alice.user.id}`);
  assert.ok(deliver);
  assert.equal(deliver.parentSpanId, pub.spanId);

  // A request without traceparent starts a trace of its own.
  const before = coll.exports.length;
  assert.equal((await api(srv.url, 'GET', '/healthz')).status, 200);
  await coll.until((ex) => ex.length > before);
  const own = spansOf(coll.exports.slice(before)).find((s) => s.kind === 2);
  assert.match(own.traceId, /^[0-9a-f]{32}$/);
  assert.notEqual(own.traceId, trace);
  assert.equal(own.parentSpanId ?? '', '');
  await n.close();
  await stop(srv);
  await coll.close();
});

// 200 requests against a collector that accepts and never answers, then
// against one that is down: every request completes within its budget,
// the queue stays at its bound and the drops are counted.
test('a collector that hangs or is down neither slows requests nor grows the queue', async () => {
  const hang = await collector(() => { /* never answers */ });
  const srv = await serverFor(hang.url, [
    '--otlp.queue-spans', '16', '--otlp.batch-spans', '4',
    '--otlp.timeout-ms', '600000',
  ]);
  const burst = async (base) => {
    for (let i = 0; i < 200; i += 20) {
      const rs = await Promise.all(Array.from({ length: 20 }, () =>
        api(base, 'GET', '/healthz', { timeoutMs: 5000 })));
      for (const r of rs) assert.equal(r.status, 200);
    }
  };
  await burst(srv.url);
  await hang.until((ex) => ex.length >= 1);
  assert.equal(await metric(srv.url, 'streamhub_otel_queue_capacity_spans'), 16);
  assert.equal(await metric(srv.url, 'streamhub_otel_queue_spans'), 16);
  const dropped = await metric(srv.url, 'streamhub_otel_spans_dropped_total',
    'reason="queue_full"');
  assert.ok(dropped >= 200 - 16 - 4, `dropped ${dropped}`);
  // The one export in flight hangs; nothing was sent after it.
  assert.equal(hang.exports.length, 1);
  await burst(srv.url);
  assert.ok(await metric(srv.url, 'streamhub_otel_spans_dropped_total',
    'reason="queue_full"') > dropped);
  // Stopping is not held up by the hanging export.
  await stop(srv);
  await hang.close();

  // Down: nothing listens on the port any more.
  const gone = await collector(() => {});
  const url = gone.url;
  await gone.close();
  const srv2 = await serverFor(url, ['--otlp.queue-spans', '16', '--otlp.batch-spans', '4']);
  await burst(srv2.url);
  const d2 = await metric(srv2.url, 'streamhub_otel_spans_dropped_total');
  assert.ok(d2 > 0, `dropped ${d2}`);
  assert.ok(await metric(srv2.url, 'streamhub_otel_export_requests_total',
    'outcome="error"') > 0);
  assert.ok(await metric(srv2.url, 'streamhub_otel_queue_spans') <= 16);
  await stop(srv2);
});

// One traced request; resolves to its trace id.
async function traced(base) {
  const trace = hex(16);
  const r = await api(base, 'GET', '/healthz', {
    headers: { traceparent: `00-${trace}-${hex(8)}-01` },
  });
  assert.equal(r.status, 200);
  return trace;
}
const carries = (e, trace) => e.body.includes(trace);

test('a 400 from the collector is not retried', async () => {
  const coll = await collector((req, res, n) => {
    res.statusCode = n === 1 ? 400 : 200;
    res.end('{}');
  });
  const srv = await serverFor(coll.url);
  const a = await traced(srv.url);
  await coll.until((ex) => ex.length >= 1);
  assert.ok(carries(coll.exports[0], a));
  // The exporter sends one batch at a time: a retry of the first would
  // arrive before the batch of a later request.
  const b = await traced(srv.url);
  await coll.until((ex) => ex.some((e) => carries(e, b)));
  assert.equal(coll.exports.filter((e) => carries(e, a)).length, 1);
  assert.equal(await metric(srv.url, 'streamhub_otel_export_requests_total',
    'outcome="rejected"'), 1);
  assert.ok(await metric(srv.url, 'streamhub_otel_spans_dropped_total',
    'reason="rejected"') >= 1);
  await stop(srv);
  await coll.close();
});

test('503 and 429 are retried (429 after its Retry-After), then delivered', async () => {
  const coll = await collector((req, res, n) => {
    if (n === 1) res.statusCode = 503;
    if (n === 3) {
      res.statusCode = 429;
      res.setHeader('Retry-After', '1');
    }
    res.end('{}');
  });
  const srv = await serverFor(coll.url);
  const a = await traced(srv.url);
  await coll.until((ex) => ex.length >= 2);
  assert.ok(carries(coll.exports[0], a));
  assert.equal(coll.exports[1].body, coll.exports[0].body);

  const b = await traced(srv.url);
  // Spans that arrive during the wait do not cut it short.
  await coll.until((ex) => ex.length >= 3);
  await traced(srv.url);
  await coll.until((ex) => ex.length >= 4);
  assert.ok(carries(coll.exports[2], b));
  assert.equal(coll.exports[3].body, coll.exports[2].body);
  // Retry-After: 1 was honoured (a lower bound, not a timing race).
  assert.ok(coll.exports[3].at - coll.exports[2].at >= 900,
    `retried after ${coll.exports[3].at - coll.exports[2].at} ms`);
  assert.equal(await metric(srv.url, 'streamhub_otel_export_requests_total',
    'outcome="retryable"'), 2);
  assert.ok(await metric(srv.url, 'streamhub_otel_spans_exported_total') >= 2);
  await stop(srv);
  await coll.close();
});

// A chat message is stored (with its outbox row) by the write-behind
// thread: the row, hence the broker's message, still carries the
// sender's trace, and so does the event the subscribers get.
test('a chat message carries its sender\'s trace to the outbox and the event', async () => {
  const rabbit = await startRabbit();
  try {
    const coll = await collector((req, res) => res.end('{}'));
    const c = await consumer(rabbit.uri, `otel${process.pid}`, ['chat.message']);
    const srv = await serverFor(coll.url, serverArgs(rabbit.uri));
    const caster = await register(srv.url, 'oc');
    const fan = await register(srv.url, 'od');
    const live = await api(srv.url, 'POST', '/graphql', {
      token: caster.token,
      body: { query: 'mutation { startStream(title: "t") { id } }' },
    });
    const sid = live.body.data.startStream.id;
    const n = await Native.open(srv.wsUrl);
    assert.equal((await n.send('subscribe', { channel: `chat:${sid}` })).ok, true);

    const trace = hex(16);
    const r = await api(srv.url, 'POST', `/api/v1/streams/${sid}/chat`, {
      token: fan.token, body: { text: 'traced' },
      headers: { traceparent: `00-${trace}-${hex(8)}-01` },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await waitFor(() => c.got.length >= 1, 15000, 'the chat message');
    assert.match(String(c.got[0].headers.traceparent),
      new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
    await n.waitEvents(1, (e) => e.event?.type === 'chat.message');
    await coll.until((ex) => spansOf(ex).some((s) => s.kind === 5 &&
      s.traceId === trace && attr(s, 'messaging.destination.name') === `chat:${sid}`));
    await n.close();
    await c.close();
    await stop(srv);
    await coll.close();
  } finally {
    await rabbit.stop();
  }
});

// Two nodes on one Redis bus: an event published on one node and
// delivered on the other keeps its trace (the Redis record carries it).
test('a delivery on another node joins the producer\'s trace', async () => {
  const redis = await startRedis();
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-otel-'));
  try {
    const coll = await collector((req, res) => res.end('{}'));
    const bus = ['--bus', redis.uri, '--bus.redis-key-prefix', `o${process.pid}:`];
    const a = await startServer({ dir, args: ['--otlp-endpoint', coll.url,
      '--otlp.batch-delay-ms', '20', ...bus] });
    servers.push(a);
    const b = await startServer({ dir, args: ['--otlp-endpoint', coll.url,
      '--otlp.batch-delay-ms', '20', ...bus] });
    servers.push(b);
    const alice = await register(a.url, 'oe');
    const bob = await register(a.url, 'of');
    const n = await Native.open(b.wsUrl);
    assert.equal((await n.send('auth', { token: alice.token })).ok, true);
    assert.equal((await n.send('subscribe', { channel: `user:${alice.user.id}` })).ok, true);

    const trace = hex(16);
    const r = await api(a.url, 'POST', '/graphql', {
      token: bob.token,
      headers: { traceparent: `00-${trace}-${hex(8)}-01` },
      body: { query: 'mutation($id: ID!) { follow(userId: $id) { id } }',
        variables: { id: alice.user.id } },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await n.waitEvents(1, (e) => e.event?.type === 'notification');
    const dest = (s) => attr(s, 'messaging.destination.name') === `user:${alice.user.id}`;
    // Each node exports on its own: wait for both sides.
    const side = (kind) => (s) => s.kind === kind && s.traceId === trace && dest(s);
    await coll.until((ex) => spansOf(ex).some(side(5)) && spansOf(ex).some(side(4)));
    const spans = spansOf(coll.exports).filter((s) => s.traceId === trace);
    const pub = spans.find((s) => s.kind === 4 && dest(s));
    const deliver = spans.find((s) => s.kind === 5 && dest(s));
    assert.ok(pub, JSON.stringify(spans.map((s) => s.name)));
    assert.equal(deliver.parentSpanId, pub.spanId);
    await n.close();
    await stop(b);
    await stop(a);
    await coll.close();
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// graphql-transport-ws: each subscribe message's operation has a span,
// in the trace of the upgrade request's traceparent, or of the message's
// extensions.traceparent when it has one.
test('GraphQL over WebSocket: a span per operation, in the caller\'s trace', async () => {
  const coll = await collector((req, res) => res.end('{}'));
  const srv = await serverFor(coll.url);
  const trace = hex(16);
  const parent = hex(8);
  const ws = new WebSocket(`${srv.wsUrl.replace(/\/ws$/, '')}/graphql`,
    'graphql-transport-ws', { headers: { traceparent: `00-${trace}-${parent}-01` } });
  const msgs = [];
  const waiters = [];
  ws.on('message', (d) => {
    msgs.push(JSON.parse(d.toString()));
    for (const w of [...waiters]) w();
  });
  const next = (pred) => new Promise((resolve) => {
    const check = () => {
      const m = msgs.find(pred);
      if (m === undefined) return;
      waiters.splice(waiters.indexOf(check), 1);
      resolve(m);
    };
    waiters.push(check);
    check();
  });
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  ws.send(JSON.stringify({ type: 'connection_init', payload: {} }));
  await next((m) => m.type === 'connection_ack');
  ws.send(JSON.stringify({ id: '1', type: 'subscribe',
    payload: { query: 'query Ping { __typename }', operationName: 'Ping' } }));
  await next((m) => m.id === '1' && m.type === 'complete');
  const own = hex(16);
  const ownParent = hex(8);
  ws.send(JSON.stringify({ id: '2', type: 'subscribe', payload: {
    query: 'subscription Live { liveStreams { __typename } }',
    operationName: 'Live',
    extensions: { traceparent: `00-${own}-${ownParent}-01` } } }));
  // (The upgrade request's own span is in @trace too.)
  const op = (t) => (s) => s.traceId === t && attr(s, 'graphql.operation.name');
  await coll.until((ex) => spansOf(ex).some(op(trace)) &&
    spansOf(ex).some(op(own)));

  const ping = spansOf(coll.exports).find(op(trace));
  assert.equal(ping.name, 'query Ping');
  assert.equal(ping.parentSpanId, parent);
  assert.equal(attr(ping, 'graphql.operation.name'), 'Ping');
  assert.equal(attr(ping, 'graphql.operation.type'), 'query');
  const live = spansOf(coll.exports).find(op(own));
  assert.equal(live.name, 'subscription Live');
  assert.equal(live.parentSpanId, ownParent);
  assert.equal(attr(live, 'graphql.operation.name'), 'Live');
  assert.equal(attr(live, 'graphql.operation.type'), 'subscription');
  ws.close();
  await stop(srv);
  await coll.close();
});
