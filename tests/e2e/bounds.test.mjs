// tests/e2e/bounds.test.mjs: what a hostile or careless client can make
// the server hold, and what it is owed, through a real streamhubd with raw
// sockets and real clients.  Each test pushes past a bound and checks the
// answer PROTOCOL.md names for it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startServer, api, register, Native, API_KEY } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer();
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `exit ${JSON.stringify(r)}: ${srv.stderr()}`);
  assert.doesNotMatch(srv.stderr(), /AddressSanitizer|runtime error:|LeakSanitizer/);
});

function hostPort(s) {
  const i = s.address.lastIndexOf(':');
  return [s.address.slice(0, i), Number(s.address.slice(i + 1))];
}

// Send @bytes in one write, then FIN (half-close); resolve with all that
// comes back until the server closes.
function halfClosed(s, bytes) {
  const [host, port] = hostPort(s);
  return new Promise((resolve, reject) => {
    let out = Buffer.alloc(0);
    const sock = net.connect({ port, host, allowHalfOpen: true }, () => {
      sock.end(bytes);
    });
    sock.on('data', (d) => { out = Buffer.concat([out, d]); });
    sock.on('error', reject);
    sock.on('close', () => resolve(out.toString('latin1')));
  });
}

// Split a byte stream of HTTP/1.1 responses (Content-Length framed).
function responses(text) {
  const out = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end);
    const m = /content-length: (\d+)/i.exec(head);
    const len = m ? Number(m[1]) : 0;
    out.push({ status: Number(head.split(' ')[1]), head,
               body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

function gqlPost(query) {
  const body = JSON.stringify({ query });
  return `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

test('a half-closed client gets every response queued for it', async () => {
  const reqs = [];
  for (let i = 0; i < 6; i++) {
    reqs.push(gqlPost('{ __typename }'));
    reqs.push('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    reqs.push('GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n');
  }
  const out = responses(await halfClosed(srv, reqs.join('')));
  assert.equal(out.length, reqs.length, `got ${out.length} of ${reqs.length}`);
  for (let i = 0; i < out.length; i++) {
    assert.equal(out[i].status, 200, out[i].head);
    if (i % 3 === 0)
      assert.deepEqual(JSON.parse(out[i].body), { data: { __typename: 'Query' } });
  }
});
