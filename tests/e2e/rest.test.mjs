// tests/e2e/rest.test.mjs: the operations doors and the REST API
// (PROTOCOL.md, REST and Operations) against a real streamhubd, with plain
// fetch and raw sockets where fetch would tidy the request up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, api, register, Native, API_KEY } from './harness.mjs';

// Register and login share a limit of 10 calls per 60 s per IP, so this
// file's main server spends at most 4 of them (3 users, 1 login that
// hangs up); the
// attacks on those routes run on a server of their own.
let srv, alice, bob, carol;
before(async () => {
  srv = await startServer({ args: ['--chat.rate-limit', '4', '--chat.rate-window-seconds', '60'] });
  alice = await register(srv.url, 'ra');
  bob = await register(srv.url, 'rb');
  carol = await register(srv.url, 'rc');
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

function assertError(r, status, code, re) {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(typeof r.body, 'object', `not JSON: ${r.body}`);
  assert.equal(r.body.error?.code, code, JSON.stringify(r.body));
  assert.equal(typeof r.body.error.message, 'string');
  if (re) assert.match(r.body.error.message, re);
}

// Raw HTTP/1.1 bytes as given (the last request must ask for Connection:
// close); resolves with the first response head and the rest as text once
// the server closes.  The socket is not half-closed: the server treats a
// client's EOF as the client leaving, answers in flight dropped.
function raw(address, bytes) {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), host, () => s.write(bytes));
    const chunks = [];
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      resolve({ head: text.slice(0, end), body: text.slice(end + 4) });
    });
  });
}

// A POST with a Content-Type of our choosing (the harness's api() always
// sends application/json with a body).
async function postAs(base, p, text, ctype, token) {
  const headers = { 'content-type': ctype };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + p, { method: 'POST', headers, body: text });
  return { status: res.status, body: await res.json() };
}

function rawPost(address, path, body, { token, ctype = 'application/json' } = {}) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const head = `POST ${path} HTTP/1.1\r\nHost: ${address}\r\nConnection: close\r\n` +
    `Content-Type: ${ctype}\r\nContent-Length: ${b.length}\r\n` +
    (token ? `Authorization: Bearer ${token}\r\n` : '') + '\r\n';
  return raw(address, Buffer.concat([Buffer.from(head), b]));
}

// ---- operations -------------------------------------------------------

test('healthz, readyz, metrics and the OpenAPI document', async () => {
  let r = await api(srv.url, 'GET', '/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ok' });
  r = await api(srv.url, 'HEAD', '/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body, '');
  r = await api(srv.url, 'POST', '/healthz');
  assertError(r, 405, 'bad_request');
  assert.equal(r.headers.get('allow'), 'GET, HEAD');

  r = await api(srv.url, 'GET', '/readyz');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { status: 'ready', store: 'ok', bus: 'ok' });
  assertError(await api(srv.url, 'DELETE', '/readyz'), 405, 'bad_request');

  r = await api(srv.url, 'GET', '/metrics');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  assert.match(r.body, /^# (HELP|TYPE) /m);
  assert.match(r.body, /streamhub_http_requests_total\{route="\/healthz",status="200"\} \d+/);
  assert.match(r.body, /streamhub_http_requests_total\{route="\/readyz",status="200"\} \d+/);
  assert.match(r.body, /^streamhub_chat_write_behind_depth \d+/m);
  // Route labels are the table's, never a client's raw path.
  await api(srv.url, 'GET', '/api/v1/streams/not-a-stream-' + 'x'.repeat(20));
  r = await api(srv.url, 'GET', '/metrics');
  assert.doesNotMatch(r.body, /not-a-stream/);
  assert.match(r.body, /route="\/api\/v1\/streams\/\{id\}"/);

  r = await api(srv.url, 'GET', '/api/v1/openapi.json');
  assert.equal(r.status, 200);
  assert.equal(r.body.openapi, '3.1.0');
  for (const p of ['/api/v1/auth/register', '/api/v1/auth/login', '/api/v1/streams/live',
    '/api/v1/streams/{id}', '/api/v1/streams', '/api/v1/streams/{id}/stop',
    '/api/v1/streams/{id}/chat', '/api/v1/notifications', '/api/v1/notifications/read',
    '/api/v1/publish'])
    assert.ok(r.body.paths[p], `OpenAPI lacks ${p}`);
  assert.ok(r.body.paths['/api/v1/streams/{id}/chat'].get);
  assert.ok(r.body.paths['/api/v1/streams/{id}/chat'].post);
  assertError(await api(srv.url, 'POST', '/api/v1/openapi.json', { body: {} }), 405, 'bad_request');
});

test('unknown paths are 404, wrong methods 405 with Allow, /ws needs an upgrade', async () => {
  // (/ is the console's page: console.test.mjs.)
  for (const p of ['/nope', '/console', '/api/v1', '/api/v1/', '/api/v1/nope', '/api/v2/streams',
    '/api/v1/streams/x/nope', '/api/v1/streams/x/stop/more', '/healthz/', '/HEALTHZ'])
    assertError(await api(srv.url, 'GET', p), 404, 'not_found');
  // A bad bearer on an unknown path is still not found.
  assertError(await api(srv.url, 'GET', '/api/v1/nope', { token: 'garbage' }), 404, 'not_found');
  const cases = [
    ['GET', '/api/v1/auth/register', 'POST'], ['PUT', '/api/v1/auth/login', 'POST'],
    ['POST', '/api/v1/streams/live', 'GET, HEAD'], ['GET', '/api/v1/streams', 'POST'],
    ['DELETE', '/api/v1/streams/abc', 'GET, HEAD'], ['GET', '/api/v1/streams/abc/stop', 'POST'],
    ['PUT', '/api/v1/streams/abc/chat', 'GET, HEAD, POST'],
    ['POST', '/api/v1/notifications', 'GET, HEAD'], ['GET', '/api/v1/notifications/read', 'POST'],
    ['GET', '/api/v1/publish', 'POST'], ['PUT', '/graphql', 'GET, POST, OPTIONS'],
  ];
  for (const [m, p, allow] of cases) {
    const r = await api(srv.url, m, p);
    assertError(r, 405, 'bad_request');
    assert.equal(r.headers.get('allow'), allow, `${m} ${p}`);
  }
  const r = await api(srv.url, 'GET', '/ws');
  assert.equal(r.status, 426);
  assert.equal(r.headers.get('upgrade'), 'websocket');
  // GraphQL over HTTP answers beside the REST routes.
  const g = await api(srv.url, 'POST', '/graphql', { body: { query: '{ __typename }' } });
  assert.equal(g.status, 200, JSON.stringify(g.body));
  assert.deepEqual(g.body, { data: { __typename: 'Query' } });
});

test('CORS preflight: allowed origin 204 with the headers, another 403', async () => {
  let r = await fetch(srv.url + '/api/v1/streams', {
    method: 'OPTIONS',
    headers: { origin: srv.url, 'access-control-request-method': 'POST' },
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('access-control-allow-methods'), 'GET, POST, OPTIONS');
  assert.equal(r.headers.get('access-control-allow-headers'), 'Authorization, Content-Type, traceparent');
  assert.equal(r.headers.get('access-control-max-age'), '600');
  assert.equal(r.headers.get('access-control-allow-origin'), srv.url);
  r = await fetch(srv.url + '/api/v1/streams', {
    method: 'OPTIONS',
    headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
  });
  assert.equal(r.status, 403);
  assert.equal(r.headers.get('access-control-allow-origin'), null);
  assert.equal((await r.json()).error.code, 'forbidden');
});

// ---- streams ----------------------------------------------------------

test('streams: start, read, list, stop, with every refusal', async () => {
  const base = srv.url;
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: 't' } }), 401, 'unauthenticated');
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: 't' }, token: 'not.a.jwt' }),
    401, 'unauthenticated');
  // alg none with alice's claims: refused like any bad token.
  const [, payload] = alice.token.split('.');
  const none = Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url') + '.' + payload + '.';
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: 't' }, token: none }),
    401, 'unauthenticated');
  // A bad token is refused even where none is needed.
  assertError(await api(base, 'GET', '/api/v1/streams/live', { token: 'x' }), 401, 'unauthenticated');

  const tok = alice.token;
  let r = await postAs(base, '/api/v1/streams', '{"title":"t"}', 'text/plain', tok);
  assertError(r, 415, 'bad_request');
  r = await postAs(base, '/api/v1/streams', '{"title":"t"}', 'application/x-www-form-urlencoded', tok);
  assertError(r, 415, 'bad_request');
  r = await postAs(base, '/api/v1/streams', '{"title":"ct"}', 'Application/JSON; charset=utf-8', tok);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal((await api(base, 'POST', `/api/v1/streams/${r.body.id}/stop`, { token: tok })).status, 200);
  r = await rawPost(srv.address, '/api/v1/streams', '{"title":"t"}', { token: tok, ctype: 'application/jsonx' });
  assert.match(r.head, /^HTTP\/1.1 415 /);
  r = await rawPost(srv.address, '/api/v1/streams', '', { token: tok });
  assert.match(r.head, /^HTTP\/1.1 400 /);
  assertError(await api(base, 'POST', '/api/v1/streams', { body: '{"title":', token: tok }), 400, 'bad_request');
  assertError(await api(base, 'POST', '/api/v1/streams', { body: '{"title":"a"} x', token: tok }), 400, 'bad_request');
  assertError(await api(base, 'POST', '/api/v1/streams', { body: '["title"]', token: tok }), 400, 'bad_request');
  assertError(await api(base, 'POST', '/api/v1/streams', { body: {}, token: tok }), 400, 'bad_request', /title/);
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: 5 }, token: tok }),
    400, 'bad_request', /title/);
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: 'a', category: [] }, token: tok }),
    400, 'bad_request', /category/);
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: 'a\u0000b' }, token: tok }),
    400, 'bad_request', /title/);
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: '' }, token: tok }), 400, 'bad_request');
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: 'x'.repeat(141) }, token: tok }),
    400, 'bad_request');
  r = await rawPost(srv.address, '/api/v1/streams',
    Buffer.concat([Buffer.from('{"title":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), { token: tok });
  assert.match(r.head, /^HTTP\/1.1 400 /);

  r = await api(base, 'POST', '/api/v1/streams', { body: { title: 'x'.repeat(140), category: 'rest-e2e' }, token: tok });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const s = r.body;
  assert.equal(s.status, 'LIVE');
  assert.equal(s.title, 'x'.repeat(140));
  assert.equal(s.category, 'rest-e2e');
  assert.equal(s.broadcaster.id, alice.user.id);
  assert.equal(s.broadcaster.username, alice.user.username);
  assert.equal(s.endedAt, null);
  assert.match(s.startedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assertError(await api(base, 'POST', '/api/v1/streams', { body: { title: 'again' }, token: tok }), 409, 'conflict');

  // A body is the GraphQL Stream as the caller sees it: the same for the
  // same caller; the broadcaster's email only for the broadcaster.
  r = await api(base, 'GET', `/api/v1/streams/${s.id}`, { token: tok });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, s);
  assert.match(s.broadcaster.email, /@example\.com$/);
  r = await api(base, 'GET', `/api/v1/streams/${s.id}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { ...s, broadcaster: { ...s.broadcaster, email: null } });
  assertError(await api(base, 'GET', '/api/v1/streams/00000000-0000-4000-8000-000000000000'), 404, 'not_found');
  for (const bad of ['a%2Fb', 'a.b', '%C3%A9', 'x'.repeat(65), '%20', 'a%27--'])
    assertError(await api(base, 'GET', `/api/v1/streams/${bad}`), 404, 'not_found');

  r = await api(base, 'GET', '/api/v1/streams/live?category=rest-e2e');
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.body.items));
  assert.ok('nextCursor' in r.body);
  assert.deepEqual(r.body.items.map((x) => x.id), [s.id]);
  r = await api(base, 'GET', '/api/v1/streams/live?category=none-such');
  assert.deepEqual(r.body.items, []);
  assert.equal(r.body.nextCursor, null);
  r = await api(base, 'GET', '/api/v1/streams/live?first=1');
  assert.equal(r.status, 200);
  assert.ok(r.body.items.length <= 1);
  r = await api(base, 'GET', '/api/v1/streams/live?first=100000');
  assert.equal(r.status, 200);   // clamped
  for (const q of ['first=abc', 'first=', 'first=1x', 'first=0', 'first=-1', 'first=99999999999',
    'first=%201', 'first=1.5', 'after=garbage', 'first=%zz', 'category=%00', 'category=%e', 'after=%'])
    assertError(await api(base, 'GET', `/api/v1/streams/live?${q}`), 400, 'bad_request');

  // A second live stream pages after the first.
  const c = await api(base, 'POST', '/api/v1/streams', { body: { title: 'two', category: 'rest-e2e' }, token: carol.token });
  assert.equal(c.status, 201);
  const p1 = await api(base, 'GET', '/api/v1/streams/live?first=1&category=rest-e2e');
  assert.equal(p1.body.items.length, 1);
  assert.equal(typeof p1.body.nextCursor, 'string');
  const p2 = await api(base, 'GET', `/api/v1/streams/live?first=1&category=rest-e2e&after=${encodeURIComponent(p1.body.nextCursor)}`);
  assert.equal(p2.status, 200);
  assert.equal(p2.body.items.length, 1);
  assert.notEqual(p2.body.items[0].id, p1.body.items[0].id);

  assertError(await api(base, 'POST', `/api/v1/streams/${s.id}/stop`), 401, 'unauthenticated');
  assertError(await api(base, 'POST', `/api/v1/streams/${s.id}/stop`, { token: bob.token }), 403, 'forbidden');
  assertError(await api(base, 'POST', '/api/v1/streams/00000000-0000-4000-8000-000000000000/stop', { token: tok }),
    404, 'not_found');
  r = await api(base, 'POST', `/api/v1/streams/${s.id}/stop`, { token: tok });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.status, 'OFFLINE');
  assert.equal(typeof r.body.endedAt, 'string');
  assertError(await api(base, 'POST', `/api/v1/streams/${s.id}/stop`, { token: tok }), 409, 'conflict');
  r = await api(base, 'GET', '/api/v1/streams/live?category=rest-e2e');
  assert.deepEqual(r.body.items.map((x) => x.id), [c.body.id]);
  assert.equal((await api(base, 'POST', `/api/v1/streams/${c.body.id}/stop`, { token: carol.token })).status, 200);
});

// ---- chat -------------------------------------------------------------

test('chat: send, refusals, rate limit, history pages', async () => {
  const base = srv.url;
  const live = await api(base, 'POST', '/api/v1/streams', { body: { title: 'chat' }, token: bob.token });
  assert.equal(live.status, 201);
  const id = live.body.id;
  const chat = `/api/v1/streams/${id}/chat`;

  assertError(await api(base, 'POST', chat, { body: { text: 'hi' } }), 401, 'unauthenticated');
  assertError(await api(base, 'POST', chat, { body: { text: 7 }, token: alice.token }), 400, 'bad_request', /text/);
  assertError(await api(base, 'POST', chat, { body: {}, token: alice.token }), 400, 'bad_request', /text/);
  assertError(await api(base, 'POST', chat, { body: '{"text":"a"', token: alice.token }), 400, 'bad_request');
  assertError(await api(base, 'POST', '/api/v1/streams/00000000-0000-4000-8000-000000000000/chat',
    { body: { text: 'hi' }, token: alice.token }), 404, 'not_found');

  // Refusals of the chat rules: none of these spends the rate limit.
  assertError(await api(base, 'POST', chat, { body: { text: '' }, token: alice.token }), 400, 'bad_request');
  assertError(await api(base, 'POST', chat, { body: { text: '\u0000\u0001\n' }, token: alice.token }),
    400, 'bad_request');
  assertError(await api(base, 'POST', chat, { body: { text: 'é'.repeat(501) }, token: alice.token }),
    400, 'bad_request');
  const bad = await rawPost(srv.address, chat,
    Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
    { token: alice.token });
  assert.match(bad.head, /^HTTP\/1.1 400 /);

  // 500 code points (1000 bytes) is the edge that passes.
  let r = await api(base, 'POST', chat, { body: { text: 'é'.repeat(500) }, token: alice.token });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const m1 = r.body;
  assert.equal(m1.streamId, id);
  assert.equal(m1.author.id, alice.user.id);
  assert.equal(m1.deleted, false);
  assert.equal(typeof m1.offset, 'number');
  // Control characters (an embedded NUL too) are removed.
  r = await api(base, 'POST', chat, { body: { text: 'a\u0000b\nc' }, token: alice.token });
  assert.equal(r.status, 201);
  assert.equal(r.body.text, 'abc');
  assert.equal(r.body.offset, m1.offset + 1);
  r = await api(base, 'POST', chat, { body: { text: `hello @${carol.user.username}` }, token: alice.token });
  assert.equal(r.status, 201);
  r = await api(base, 'POST', chat, { body: { text: 'four' }, token: alice.token });
  assert.equal(r.status, 201);
  // --chat.rate-limit 4: the fifth within the window is 429 + Retry-After.
  r = await api(base, 'POST', chat, { body: { text: 'five' }, token: alice.token });
  assertError(r, 429, 'rate_limited');
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `Retry-After ${r.headers.get('retry-after')}`);
  assert.equal(r.body.error.retryAfter, ra);

  r = await api(base, 'GET', chat);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.items.map((x) => x.offset), [m1.offset, m1.offset + 1, m1.offset + 2, m1.offset + 3]);
  assert.equal(r.body.nextCursor, null);
  r = await api(base, 'GET', `${chat}?last=2`);
  assert.deepEqual(r.body.items.map((x) => x.text), [`hello @${carol.user.username}`, 'four']);
  assert.equal(typeof r.body.nextCursor, 'string');
  r = await api(base, 'GET', `${chat}?last=2&before=${encodeURIComponent(r.body.nextCursor)}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.items.map((x) => x.offset), [m1.offset, m1.offset + 1]);
  assert.equal(r.body.nextCursor, null);
  r = await api(base, 'GET', `${chat}?last=101`);
  assert.equal(r.status, 200);   // clamped to 100
  assert.equal(r.body.items.length, 4);
  for (const q of ['last=x', 'last=', 'last=-1', 'last=2e1', 'last=0x10', 'before=nope', 'last=%31%zz',
    'before=%00'])
    assertError(await api(base, 'GET', `${chat}?${q}`), 400, 'bad_request');
  assertError(await api(base, 'GET', '/api/v1/streams/00000000-0000-4000-8000-000000000000/chat'),
    404, 'not_found');

  // An offline stream takes no message.
  assert.equal((await api(base, 'POST', `/api/v1/streams/${id}/stop`, { token: bob.token })).status, 200);
  assertError(await api(base, 'POST', chat, { body: { text: 'late' }, token: carol.token }), 409, 'conflict');
});

// ---- notifications ----------------------------------------------------

test('notifications: list, unreadOnly, mark read', async () => {
  const base = srv.url;
  assertError(await api(base, 'GET', '/api/v1/notifications'), 401, 'unauthenticated');
  assertError(await api(base, 'POST', '/api/v1/notifications/read', { body: {} }), 401, 'unauthenticated');
  // carol was mentioned in the chat test.
  let r = await api(base, 'GET', '/api/v1/notifications', { token: carol.token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(Array.isArray(r.body.items));
  assert.ok('nextCursor' in r.body);
  const mention = r.body.items.find((n) => n.type === 'MENTION');
  assert.ok(mention, JSON.stringify(r.body));
  assert.equal(mention.read, false);
  for (const q of ['first=x', 'first=0', 'unreadOnly=maybe', 'unreadOnly=', 'after=zzz', 'unreadOnly=%74rue%',
    'after=%00'])
    assertError(await api(base, 'GET', `/api/v1/notifications?${q}`, { token: carol.token }), 400, 'bad_request');
  r = await api(base, 'GET', '/api/v1/notifications?unreadOnly=true&first=1', { token: carol.token });
  assert.equal(r.status, 200);
  assert.equal(r.body.items.length, 1);

  const read = '/api/v1/notifications/read';
  for (const body of ['{"ids":"x"}', '{"ids":[1]}', '{"ids":[null]}', '{"ids":["a\\u0000"]}', '[]', '{'])
    assertError(await api(base, 'POST', read, { body, token: carol.token }), 400, 'bad_request');
  assertError(await api(base, 'POST', read,
    { body: { ids: Array.from({ length: 1001 }, (_, i) => `id${i}`) }, token: carol.token }), 400, 'bad_request');
  r = await postAs(base, read, '{}', 'text/plain', carol.token);
  assertError(r, 415, 'bad_request');
  // Someone else's notification is not changed.
  r = await api(base, 'POST', read, { body: { ids: [mention.id] }, token: alice.token });
  assert.deepEqual(r.body, { changed: 0 });
  r = await api(base, 'POST', read, { body: { ids: [mention.id, 'unknown'] }, token: carol.token });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { changed: 1 });
  r = await api(base, 'POST', read, { body: { ids: [mention.id] }, token: carol.token });
  assert.deepEqual(r.body, { changed: 0 });
  r = await api(base, 'POST', read, { body: { ids: [] }, token: carol.token });
  assert.deepEqual(r.body, { changed: 0 });
  // No body at all: every notification.
  r = await api(base, 'POST', read, { token: carol.token });
  assert.equal(r.status, 200);
  assert.equal(typeof r.body.changed, 'number');
  r = await api(base, 'GET', '/api/v1/notifications?unreadOnly=1', { token: carol.token });
  assert.deepEqual(r.body.items, []);
});

// ---- publish ----------------------------------------------------------

test('publish: API key, app: channels only, delivered to subscribers', async () => {
  const base = srv.url;
  const pub = '/api/v1/publish';
  const body = { channel: 'app:rest', data: { n: 1 } };
  assertError(await api(base, 'POST', pub, { body }), 401, 'unauthenticated');
  assertError(await api(base, 'POST', pub, { body, apiKey: 'wrong' }), 401, 'unauthenticated');
  assertError(await api(base, 'POST', pub, { body, apiKey: API_KEY + 'x' }), 401, 'unauthenticated');
  assertError(await api(base, 'POST', pub, { body, apiKey: API_KEY.slice(0, -1) }), 401, 'unauthenticated');
  assertError(await api(base, 'POST', pub, { body, apiKey: '' }), 401, 'unauthenticated');
  assertError(await api(base, 'POST', pub, { body, token: alice.token }), 401, 'unauthenticated');
  for (const channel of ['chat:x', 'live', 'user:' + alice.user.id, 'App:x', ''])
    assertError(await api(base, 'POST', pub, { body: { channel, data: 1 }, apiKey: API_KEY }), 403, 'forbidden');
  assertError(await api(base, 'POST', pub, { body: { channel: 'app:rest' }, apiKey: API_KEY }), 400, 'bad_request', /data/);
  assertError(await api(base, 'POST', pub, { body: { data: 1 }, apiKey: API_KEY }), 400, 'bad_request', /channel/);
  assertError(await api(base, 'POST', pub, { body: { channel: 5, data: 1 }, apiKey: API_KEY }), 400, 'bad_request', /channel/);
  assertError(await api(base, 'POST', pub, { body: { channel: 'app:', data: 1 }, apiKey: API_KEY }), 400, 'bad_request');
  assertError(await api(base, 'POST', pub, { body: { channel: 'app:a b', data: 1 }, apiKey: API_KEY }), 400, 'bad_request');
  assertError(await api(base, 'POST', pub, { body: { channel: 'app:rest', type: 'bad type', data: 1 }, apiKey: API_KEY }),
    400, 'bad_request');
  assertError(await api(base, 'POST', pub, { body: { channel: 'app:rest', type: 7, data: 1 }, apiKey: API_KEY }),
    400, 'bad_request', /type/);
  const big = await api(base, 'POST', pub, { body: { channel: 'app:rest', data: 'x'.repeat(70000) }, apiKey: API_KEY });
  // Data over ws.max-message-bytes (64 KiB), in a body well under
  // http.max-body-bytes: the publish is refused as too large.
  assertError(big, 413, 'too_large');

  const ws = await Native.open(srv.wsUrl);
  const sub = await ws.send('subscribe', { channel: 'app:rest' });
  assert.equal(sub.ok, true, JSON.stringify(sub));
  let r = await api(base, 'POST', pub, { body, apiKey: API_KEY });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.channel, 'app:rest');
  const first = r.body.offset;
  assert.ok(Number.isInteger(first) && first >= 1);
  r = await api(base, 'POST', pub, { body: { channel: 'app:rest', type: 'app.score', data: null }, apiKey: API_KEY });
  assert.equal(r.status, 200);
  assert.equal(r.body.offset, first + 1);
  const evs = await ws.waitEvents(2, (e) => e.channel === 'app:rest');
  assert.deepEqual(evs.map((e) => [e.offset, e.event.type, e.event.data]),
    [[first, 'app.message', { n: 1 }], [first + 1, 'app.score', null]]);
  await ws.close();
});

// ---- the worker hand-off -----------------------------------------------

test('pipelined requests answered in order across workers and the loop', async () => {
  const get = (p) => `GET ${p} HTTP/1.1\r\nHost: ${srv.address}\r\n\r\n`;
  const r = await raw(srv.address,
    get('/readyz') + get('/healthz') + get('/api/v1/streams/live?first=1') + get('/nope') +
    `GET /api/v1/streams/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: ${srv.address}\r\n` +
    'Connection: close\r\n\r\n');
  const parts = (r.head + '\r\n\r\n' + r.body).split(/(?=HTTP\/1\.1 \d{3} )/);
  assert.deepEqual(parts.map((x) => Number(x.slice(9, 12))), [200, 200, 200, 404, 404]);
  const needles = ['"status":"ready"', '{"status":"ok"}', '"items"', 'no such route', '"not_found"'];
  needles.forEach((n, i) => assert.ok(parts[i].includes(n), `response ${i}: ${parts[i]}`));
  assert.ok(!parts[4].includes('no such route'));
});

test('a peer gone while its call runs on a worker does not hurt the server', async () => {
  const [host, port] = srv.address.split(':');
  const body = JSON.stringify({ username: alice.user.username, password: 'wrong-password' });
  await new Promise((resolve) => {
    const s = net.connect(Number(port), host, () => {
      s.write(`POST /api/v1/auth/login HTTP/1.1\r\nHost: ${srv.address}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      setTimeout(() => { s.destroy(); resolve(); }, 5);
    });
  });
  // A half-sent body, then gone.
  await new Promise((resolve) => {
    const s = net.connect(Number(port), host, () => {
      s.write(`POST /api/v1/streams HTTP/1.1\r\nHost: ${srv.address}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"title":');
      setTimeout(() => { s.destroy(); resolve(); }, 5);
    });
  });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await api(srv.url, 'GET', '/readyz')).status, 200);
  assert.equal((await api(srv.url, 'GET', '/api/v1/streams/live')).status, 200);
});

// ---- register and login, on a server of their own ---------------------

test('register and login: bodies, refusals, per-IP limit with Retry-After', async () => {
  const s2 = await startServer();
  try {
    const base = s2.url;
    let calls = 0;
    const call = async (p, body, opts = {}) => { calls++; return api(base, 'POST', p, { body, ...opts }); };
    const reg = '/api/v1/auth/register';
    const login = '/api/v1/auth/login';

    const t0 = Date.now();
    let r = await call(reg, { username: 'dora_1', email: 'Dora@Example.com', password: 'password-123' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(typeof r.body.accessToken, 'string');
    assert.equal(typeof r.body.refreshToken, 'string');
    assert.ok(r.body.expiresIn > 0);
    assert.equal(r.body.user.username, 'dora_1');
    assert.equal(r.body.user.email, 'dora@example.com');
    assertError(await call(reg, { username: 'DORA_1', email: 'd2@example.com', password: 'password-123' }),
      409, 'conflict');
    assertError(await call(reg, { username: 'dora_2', email: 'd3@example.com', password: 5 }),
      400, 'bad_request', /password/);
    assertError(await call(reg, { username: 'dora_2', password: 'password-123' }), 400, 'bad_request', /email/);
    assertError(await call(reg, { username: 'dora_2', email: 'd3@example.com', password: 'pass\u0000word-123' }),
      400, 'bad_request', /password/);
    assertError(await call(reg, '{"username":"dora_2","email":"d3@example.com","password":"password-1'),
      400, 'bad_request');
    calls++;
    assertError(await postAs(base, reg, '{}', 'text/plain'), 415, 'bad_request');

    r = await call(login, { username: 'Dora_1', password: 'password-123' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user.username, 'dora_1');
    const me = await api(base, 'GET', '/api/v1/notifications', { token: r.body.accessToken });
    assert.equal(me.status, 200);
    assertError(await call(login, { username: 'dora_1', password: 'wrong-password' }), 401, 'unauthenticated');
    assertError(await call(login, { username: 'nobody_here', password: 'password-123' }), 401, 'unauthenticated');
    assert.equal(calls, 10);

    // Method refusals come before the limit and do not spend it.
    assertError(await api(base, 'GET', login), 405, 'bad_request');
    // The bucket refills one call every 6 s and the password hashes above
    // took a while: spend what came back with cheap malformed bodies (the
    // limit is taken before the body is read), then the next is 429.
    const refilled = Math.floor((Date.now() - t0) / 6000) + 1;
    let extra = 0;
    for (;;) {
      r = await call(login, '{');
      if (r.status === 429) break;
      assertError(r, 400, 'bad_request');
      extra++;
      assert.ok(extra <= refilled, `${extra} calls past 10 in ${Date.now() - t0} ms`);
    }
    assertError(r, 429, 'rate_limited');
    const ra = Number(r.headers.get('retry-after'));
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `Retry-After ${r.headers.get('retry-after')}`);
    assertError(await call(reg, { username: 'eve_1', email: 'e@example.com', password: 'password-123' }),
      429, 'rate_limited');
    // Other routes are not limited by it.
    assert.equal((await api(base, 'GET', '/api/v1/streams/live')).status, 200);
  } finally {
    const r = await s2.stop();
    assert.equal(r.code, 0);
  }
});

test('publish API off without an api-key: 404', async () => {
  const s3 = await startServer({ args: ['--api-key', ''] });
  try {
    const r = await api(s3.url, 'POST', '/api/v1/publish',
      { body: { channel: 'app:x', data: 1 }, apiKey: 'anything' });
    assertError(r, 404, 'not_found');
  } finally {
    await s3.stop();
  }
});
