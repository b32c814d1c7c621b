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
