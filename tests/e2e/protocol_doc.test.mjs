// tests/e2e/protocol_doc.test.mjs: the worked session of docs/protocol.md,
// replayed against a fresh server, so that the document shows the frames
// the server really sends.
//
// Each ```text session block of the document is one WebSocket connection
// to /ws (subprotocol streamhub.v1), in order.  A line `→ TEXT` is sent as
// one text frame; the run of `← TEXT` lines after it is what the server
// must send next, in any order (a reply and an event race), and nothing
// else; `← close CODE REASON` is the server's close frame.
//
// A placeholder `<name>` stands for one run of characters other than
// blanks and double quotes.  Its first match binds the name, and every
// later use of the name, received or sent, is that value.  Before the
// first block the test signs alice up and starts her stream, as the
// README's tour does, and binds <token> (her access token), <alice> (her
// id), <stream> (the stream's id) and <api key> (the server's api-key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { API_KEY, startServer } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const DOC = path.resolve(here, '../../docs/protocol.md');
const WAIT_MS = 10000;

function sessions(markdown) {
  const lines = markdown.split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```text\s+session\s*$/.test(lines[i])) continue;
    const steps = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) {
      const m = /^([→←]) (.*)$/.exec(lines[i]);
      if (!m) continue;
      if (m[1] === '→') steps.push({ send: m[2], expect: [], line: i + 1 });
      else {
        assert.ok(steps.length, `protocol.md:${i + 1}: ← before any →`);
        steps[steps.length - 1].expect.push(m[2]);
      }
    }
    out.push(steps);
  }
  return out;
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// The bindings that make @text match @tpl given @bound, or null.
function match(tpl, text, bound) {
  const names = [];
  let re = '^';
  let last = 0;
  for (const m of tpl.matchAll(/<([^<>]+)>/g)) {
    re += escapeRe(tpl.slice(last, m.index));
    last = m.index + m[0].length;
    if (bound.has(m[1])) {
      re += escapeRe(bound.get(m[1]));
    } else if (names.includes(m[1])) {
      re += `\\k<g${names.indexOf(m[1])}>`;
    } else {
      re += `(?<g${names.length}>[^"\\s]+?)`;
      names.push(m[1]);
    }
  }
  re += escapeRe(tpl.slice(last)) + '$';
  const r = new RegExp(re).exec(text);
  if (!r) return null;
  return new Map(names.map((n, k) => [n, r.groups[`g${k}`]]));
}

function fill(tpl, bound) {
  return tpl.replace(/<([^<>]+)>/g, (all, name) => {
    assert.ok(bound.has(name), `${all} is sent before it is known`);
    return bound.get(name);
  });
}

// A connection whose frames (and close, as "close CODE REASON") queue up.
async function connect(wsUrl) {
  const ws = new WebSocket(`${wsUrl}/ws`, 'streamhub.v1');
  const got = [];
  let wake = null;
  ws.on('message', (d) => { got.push(d.toString()); wake?.(); });
  ws.on('close', (code, reason) => {
    got.push(`close ${code} ${reason.toString()}`.trimEnd());
    wake?.();
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const take = (n, where) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(
      `${where}: ${got.length} of ${n} frames within ${WAIT_MS} ms:\n` +
      got.join('\n'))), WAIT_MS);
    wake = () => {
      if (got.length < n) return;
      clearTimeout(timer);
      wake = null;
      resolve(got.splice(0, n));
    };
    wake();
  });
  return { ws, got, take };
}

test('the worked session of docs/protocol.md is what the server sends',
  async () => {
    const blocks = sessions(readFileSync(DOC, 'utf8'));
    assert.ok(blocks.length >= 1, 'docs/protocol.md has a session');
    const srv = await startServer();
    try {
      const post = async (p, body, token) => {
        const r = await fetch(`${srv.url}${p}`, {
          method: 'POST', body: JSON.stringify(body),
          headers: { 'Content-Type': 'application/json',
                     ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        });
        assert.ok(r.ok, `${p}: ${r.status}`);
        return r.json();
      };
      const auth = await post('/api/v1/auth/register', {
        username: 'alice', email: 'alice@example.com',
        password: 'correct horse battery staple' });
      const stream = await post('/api/v1/streams',
        { title: 'Hello, StreamHub', category: 'talk' }, auth.accessToken);
      const bound = new Map([['token', auth.accessToken],
                             ['alice', auth.user.id], ['stream', stream.id],
                             ['api key', API_KEY]]);
      for (const steps of blocks) {
        const conn = await connect(srv.wsUrl);
        for (const step of steps) {
          const where = `protocol.md:${step.line}`;
          conn.ws.send(fill(step.send, bound));
          const frames = await conn.take(step.expect.length, where);
          for (const tpl of step.expect) {
            let k = -1, b = null;
            for (k = 0; k < frames.length; k++) {
              b = match(tpl, frames[k], bound);
              if (b) break;
            }
            assert.ok(b, `${where}: no frame matches\n  document: ${tpl}` +
                         `\n  server:\n    ${frames.join('\n    ')}`);
            for (const [n, v] of b) bound.set(n, v);
            frames.splice(k, 1);
          }
        }
        // Nothing more than the document shows (a ping proves it).
        if (conn.ws.readyState === WebSocket.OPEN) {
          conn.ws.send('{"id":999999,"op":"ping"}');
          const [last] = await conn.take(1, 'end of the session');
          assert.equal(last, '{"id":999999,"ok":true,"result":{}}',
                       'a frame the document does not show');
          conn.ws.close();
        } else {
          assert.deepEqual(conn.got, [], 'frames after the close');
        }
      }
    } finally {
      await srv.stop();
    }
  });
