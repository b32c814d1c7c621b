// tests/e2e/rules.test.mjs: every moderation rule holds when one user
// comes through several doors at once (several WebSockets, REST, GraphQL
// together), and the connection cap per user counts concurrent handshakes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, api, register, Native } from './harness.mjs';

let srv;
// Four users, each a broadcaster with a live stream in slow mode: a round
// of the slow-mode test needs an author who has not sent in that channel
// yet, and registrations are limited per IP.
const users = [];

// Many blocked terms and long texts make the rules after slow mode take a
// while, so that concurrent sends meet there.
const TERMS = Array.from({ length: 1000 }, (_, i) => `zq${i}x`);
const TEXT = 'abcdefghijklmnopqrstuvwxyz'.repeat(77).slice(0, 1990);

before(async () => {
  srv = await startServer({
    args: ['--chat.rate-limit', '100000', '--workers', '16', '--store.pool-size', '16'],
  });
  for (let i = 0; i < 4; i++) {
    const u = await register(srv.url, 'rules');
    const st = await api(srv.url, 'POST', '/api/v1/streams',
      { token: u.token, body: { title: 'rules' } });
    assert.equal(st.status, 201, JSON.stringify(st.body));
    u.stream = st.body.id;
    const cs = await api(srv.url, 'POST', '/graphql', {
      token: u.token,
      body: {
        query: 'mutation($c: ID!, $t: [String!]) { updateChatSettings(channelId: $c, ' +
          'slowModeSeconds: 60, maxMessageLength: 2000, blockedTerms: $t) { slowModeSeconds } }',
        variables: { c: u.user.id, t: TERMS },
      },
    });
    assert.equal(cs.body.data?.updateChatSettings?.slowModeSeconds, 60, JSON.stringify(cs.body));
    users.push(u);
  }
});

after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
});

test('slow mode: sends at once over several WebSockets and REST, exactly one passes', async () => {
  for (const author of users) {
    for (const bc of users.filter((u) => u !== author)) {
      const socks = await Promise.all(Array.from({ length: 8 }, () => Native.open(srv.wsUrl)));
      for (const s of socks) {
        const a = await s.send('auth', { token: author.token });
        assert.equal(a.ok, true, JSON.stringify(a));
      }
      const sid = bc.stream;
      const ws = socks.map((s, i) => s.send('chat.send', { streamId: sid, text: `${TEXT}${i}` }));
      const rest = Array.from({ length: 8 }, (_, i) => api(srv.url, 'POST',
        `/api/v1/streams/${sid}/chat`, { token: author.token, body: { text: `${TEXT}r${i}` } }));
      const [wr, rr] = await Promise.all([Promise.all(ws), Promise.all(rest)]);
      const okWs = wr.filter((r) => r.ok === true).length;
      const okRest = rr.filter((r) => r.status === 201).length;
      assert.equal(okWs + okRest, 1, `${okWs} over WebSocket and ${okRest} over REST accepted`);
      for (const r of wr.filter((x) => x.ok !== true)) {
        assert.equal(r.error?.code, 'rate_limited', JSON.stringify(r));
        assert.ok(r.error.retryAfter >= 1, JSON.stringify(r));
      }
      for (const r of rr.filter((x) => x.status !== 201)) {
        assert.equal(r.status, 429, JSON.stringify(r.body));
        assert.equal(r.body.error?.code, 'rate_limited');
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
      }
      await Promise.all(socks.map((s) => s.close()));
    }
  }
});

test('12 connections of one user authenticating at once: exactly 10 accepted', async () => {
  const carol = await register(srv.url, 'cap');
  const socks = await Promise.all(Array.from({ length: 12 }, () => Native.open(srv.wsUrl)));
  const replies = await Promise.all(socks.map((s) => s.send('auth', { token: carol.token })));
  const ok = replies.filter((r) => r.ok === true);
  const refused = replies.filter((r) => r.ok !== true);
  assert.equal(ok.length, 10, JSON.stringify(replies));
  assert.equal(refused.length, 2);
  for (const r of refused)
    assert.equal(r.error?.code, 'rate_limited', JSON.stringify(r));
  // A refused handshake holds no slot; a closed connection gives its slot
  // back, and only then may an eleventh connection authenticate.
  const extra = await Native.open(srv.wsUrl);
  assert.equal((await extra.send('auth', { token: carol.token })).error?.code, 'rate_limited');
  const first = socks[replies.findIndex((r) => r.ok === true)];
  await first.close();
  let again;
  for (let i = 0; i < 100; i++) {  // the server sees the close a moment later
    again = await extra.send('auth', { token: carol.token });
    if (again.ok === true) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(again.ok, true, JSON.stringify(again));
  await Promise.all([extra, ...socks.filter((s) => s !== first)].map((s) => s.close()));
});

// ---- the chat caches keep their bounds --------------------------------

async function cacheEntries(url) {
  const r = await api(url, 'GET', '/metrics');
  assert.equal(r.status, 200);
  const out = {};
  for (const m of r.body.matchAll(/^streamhub_chat_cache_entries\{cache="(\w+)"\} (\d+)$/gm))
    out[m[1]] = Number(m[2]);
  return out;
}

test('chat caches stay within chat.cache-*, and slow mode holds at the bound', async () => {
  const small = await startServer({
    args: ['--chat.rate-limit', '100000', '--chat.cache-users', '3', '--chat.cache-streams', '2',
      '--chat.cache-authors', '3', '--chat.cache-followers', '2'],
  });
  try {
    const u = [];
    for (let i = 0; i < 7; i++) u.push(await register(small.url, 'bound'));
    const streams = [];
    for (let i = 0; i < 3; i++) {
      const st = await api(small.url, 'POST', '/api/v1/streams', { token: u[i].token, body: { title: 'b' } });
      assert.equal(st.status, 201, JSON.stringify(st.body));
      streams.push(st.body.id);
    }
    const send = (who, s) => api(small.url, 'POST', `/api/v1/streams/${streams[s]}/chat`,
      { token: u[who].token, body: { text: 'hi' } });
    const settings = (who, args) => api(small.url, 'POST', '/graphql', {
      token: u[who].token,
      body: { query: `mutation($c: ID!) { updateChatSettings(channelId: $c, ${args}) { slowModeSeconds } }`,
        variables: { c: u[who].user.id } },
    });
    // Seven authors in one chat, three streams: users and authors (no slow
    // mode: every last send may go) and streams stay at their bound.
    for (let i = 0; i < 7; i++) assert.equal((await send(i, 0)).status, 201);
    for (let s = 0; s < 3; s++) assert.equal((await send(3, s)).status, 201);
    let c = await cacheEntries(small.url);
    assert.deepEqual(c, { users: 3, streams: 2, authors: 3, followers: 0 });
    // Followers-only: four refused lookups, two remembered.
    assert.ok((await settings(1, 'followersOnly: true')).body.data, 'settings');
    for (let i = 3; i < 7; i++) assert.equal((await send(i, 1)).status, 403);
    c = await cacheEntries(small.url);
    assert.equal(c.followers, 2);
    // Slow mode: three authors within the window (u[3] sent there just
    // before it was turned on) fill the bound; a fourth is refused rather
    // than let one of them be forgotten.
    assert.ok((await settings(2, 'slowModeSeconds: 60')).body.data, 'settings');
    for (let i = 4; i < 6; i++) assert.equal((await send(i, 2)).status, 201);
    const fourth = await send(6, 2);
    assert.equal(fourth.status, 429);
    assert.equal(fourth.body.error?.code, 'rate_limited');
    for (let i = 3; i < 6; i++) {
      const again = await send(i, 2);
      assert.equal(again.status, 429, 'an author in slow mode was forgotten');
      assert.equal(again.body.error?.code, 'rate_limited');
    }
    c = await cacheEntries(small.url);
    assert.deepEqual(c, { users: 3, streams: 2, authors: 3, followers: 2 });
  } finally {
    const r = await small.stop();
    assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${small.stderr()}`);
  }
});
