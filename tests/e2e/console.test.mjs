// The console in a real browser: Debian's chromium, headless, driven by
// playwright-core.  A broadcaster and a viewer, each in a browser context
// of their own, use the pages as a person would; every page must load
// with no console error and no request to another origin.  A screenshot
// of each view is kept in <build>/meson-logs/console-screenshots/.
//
// Also, without a browser: content types, caching (ETag, 304, immutable
// vendor files), the Content-Security-Policy, methods, and paths that try
// to leave the console's directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import {
  mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';
import { startServer, BIN, api, register, Native } from './harness.mjs';

const SHOTS = path.join(path.dirname(path.dirname(path.resolve(BIN))),
  'meson-logs', 'console-screenshots');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const WAIT = { timeout: 15000 };
// axe-core, evaluated through the DevTools protocol (which the pages' CSP
// does not govern: the pages themselves never load it).
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let srv;
let browser;
const pages = [];   // { page, errors, foreign } of every page opened

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  console.log(`# screenshots in ${SHOTS}`);
  srv = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

// A page in a fresh context (its own storage: one person), watched for
// console errors, page errors, failed requests and other origins.
async function openPage() {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await ctx.newPage();
  const rec = { page, errors: [], foreign: [] };
  const origin = new URL(srv.url).origin;
  page.on('console', (m) => {
    if (m.type() === 'error') rec.errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => rec.errors.push(`page: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith('data:') && new URL(u).origin !== origin)
      rec.foreign.push(u);
  });
  page.on('websocket', (w) => {
    const u = new URL(w.url());
    if (u.host !== new URL(origin).host) rec.foreign.push(w.url());
  });
  page.on('requestfailed', (r) =>
    rec.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) rec.errors.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  pages.push(rec);
  return rec;
}

function clean(rec) {
  assert.deepEqual(rec.errors, [], 'no console error, failed request');
  assert.deepEqual(rec.foreign, [], 'no request to another origin');
}

// Each view is screenshotted and checked against WCAG 2 A and AA.
async function shot(page, name, { a11y = true } = {}) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  if (!a11y) return;
  if (!await page.evaluate(() => typeof window.axe === 'object'))
    await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return r.violations.map((v) =>
      `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(found, [], `${name}: accessibility`);
}

let seq = 0;
async function signUp(page) {
  const name = `c${process.pid % 10000}_${++seq}`;
  await page.goto(srv.url + '/#/account');
  await page.fill('#signup-user', name);
  await page.fill('#signup-email', `${name}@example.com`);
  await page.fill('#signup-pass', 'password-123');
  await page.click('#signup-form button[type=submit]');
  await page.waitForFunction((n) =>
    document.getElementById('whoami').textContent === 'Signed in as ' + n,
  name, WAIT);
  return name;
}

// Chromium, its pages and the server share this state across the tests
// of the room, in order.
const room = {};

test('a broadcaster goes live; a viewer sees the stream and its chat', async () => {
  const b = await openPage();
  room.b = b;
  room.bName = await signUp(b.page);
  await shot(b.page, 'live-empty');

  const v = await openPage();
  room.v = v;
  await v.page.goto(srv.url + '/');
  await v.page.waitForSelector('body[data-ready=live]', WAIT);

  await b.page.click('#nav-golive');
  await b.page.fill('#golive-title', 'Console test stream');
  await b.page.fill('#golive-category', 'Testing');
  await shot(b.page, 'golive');
  await b.page.click('#golive-form button[type=submit]');
  await b.page.waitForSelector('body[data-ready=room]', WAIT);
  room.url = b.page.url();

  // The viewer's list shows it without a reload (liveStreams subscription).
  const item = v.page.locator('#live-list li a', { hasText: 'Console test stream' });
  await item.waitFor(WAIT);
  await shot(v.page, 'live');
  await item.click();
  await v.page.waitForSelector('body[data-ready=room]', WAIT);
  // The viewer is counted (presence of the room's subscriptions).
  await v.page.waitForFunction(() =>
    Number(document.getElementById('room-viewers').textContent) >= 1,
  null, WAIT);

  await b.page.fill('#chat-text', 'hello from the broadcaster');
  await b.page.click('#chat-form button[type=submit]');
  await v.page.locator('#chat-list li', { hasText: 'hello from the broadcaster' })
    .waitFor(WAIT);
  await shot(v.page, 'room-viewer');
  clean(b);
  clean(v);
});

test('a moderator deletes a message and it leaves the viewer\'s page', async () => {
  const { b, v } = room;
  room.vName = await signUp(v.page);
  await v.page.goto(room.url);
  await v.page.waitForSelector('body[data-ready=room]', WAIT);
  await v.page.fill('#chat-text', 'a message to delete');
  await v.page.click('#chat-form button[type=submit]');
  const mine = v.page.locator('#chat-list li', { hasText: 'a message to delete' });
  await mine.waitFor(WAIT);

  // The broadcaster moderates their channel.
  const theirs = b.page.locator('#chat-list li', { hasText: 'a message to delete' });
  await theirs.waitFor(WAIT);
  await shot(b.page, 'room-moderator');
  await theirs.getByRole('button', { name: /^Delete/ }).click();

  await v.page.locator('#chat-list li .deleted').first().waitFor(WAIT);
  assert.equal(await mine.count(), 0, 'the text is gone from the viewer\'s page');
  await shot(v.page, 'room-deleted');

  // Slow mode, from the moderator panel, reaches the viewer live; a
  // viewer count that changes while the moderator chooses (one more
  // viewer here) leaves the choice alone.
  await b.page.selectOption('#slow-select', '5');
  const viewers = Number(await b.page.textContent('#room-viewers'));
  const extra = await Native.open(srv.wsUrl);
  const x = await register(srv.url, 'cx');
  assert.equal((await extra.send('auth', { token: x.token })).ok, true);
  const streamId = decodeURIComponent(room.url.split('/').pop());
  assert.equal((await extra.send('subscribe', { channel: `stream:${streamId}` })).ok, true);
  await b.page.waitForFunction((n) =>
    Number(document.getElementById('room-viewers').textContent) > n,
  viewers, WAIT);
  await b.page.click('#slow-apply');
  await v.page.waitForFunction(() =>
    document.getElementById('room-slow').textContent === '5 s', null, WAIT);
  await extra.close();
  clean(b);
  clean(v);
});

test('the notification of a follow arrives live, with the unread count', async () => {
  const { b, v } = room;
  await b.page.goto(srv.url + '/#/');
  await b.page.waitForSelector('body[data-ready=live]', WAIT);
  assert.equal(await b.page.textContent('#unread'), '0');

  await v.page.click('#follow');
  await v.page.waitForFunction(() =>
    document.getElementById('follow').textContent === 'Unfollow', null, WAIT);

  await b.page.waitForFunction(() =>
    document.getElementById('unread').textContent === '1', null, WAIT);
  await b.page.click('#nav-notes');
  await b.page.locator('#notes-list li', { hasText: `${room.vName} followed you` })
    .waitFor(WAIT);
  await shot(b.page, 'notifications');
  clean(b);
  clean(v);
});

test('a raid: the raided channel is notified live', async () => {
  const { b, v } = room;
  await b.page.click('#nav-golive');
  await b.page.waitForSelector('body[data-ready=golive]', WAIT);
  await b.page.fill('#raid-to', room.vName);
  await b.page.click('#raid-form button[type=submit]');
  await b.page.waitForFunction(() =>
    /^Raid started/.test(document.getElementById('golive-error').textContent),
  null, WAIT);
  await shot(b.page, 'golive-raid');
  await v.page.waitForFunction(() =>
    document.getElementById('unread').textContent === '1', null, WAIT);
  await v.page.click('#nav-notes');
  await v.page.locator('#notes-list li',
    { hasText: `Incoming raid from ${room.bName}` }).waitFor(WAIT);
  clean(b);
  clean(v);
});

test('the room pages back through the chat history', async () => {
  const { b, v } = room;
  const token = await b.page.evaluate(() =>
    JSON.parse(localStorage.getItem('streamhub.auth')).accessToken);
  const id = decodeURIComponent(room.url.split('#/stream/')[1]);
  // More than a page (50) of messages, from a script, over REST.
  for (let i = 0; i < 55; i++) {
    const r = await api(srv.url, 'POST', `/api/v1/streams/${id}/chat`,
      { token, body: { text: `scripted ${i}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  await v.page.goto(room.url);
  await v.page.waitForSelector('body[data-ready=room]', WAIT);
  await v.page.locator('#chat-list li', { hasText: 'scripted 54' }).waitFor(WAIT);
  assert.equal(await v.page.locator('#chat-list li').count(), 50);
  assert.equal(await v.page.locator('#chat-list li', { hasText: 'hello from the broadcaster' }).count(), 0);
  await v.page.click('#older');
  await v.page.locator('#chat-list li', { hasText: 'hello from the broadcaster' }).waitFor(WAIT);
  // Oldest first, every message once.
  const texts = await v.page.locator('#chat-list li').allTextContents();
  assert.ok(texts[0].includes('hello from the broadcaster'), texts[0]);
  assert.equal(new Set(texts).size, texts.length);
  assert.ok(await v.page.locator('#older').isHidden());
  clean(b);
  clean(v);
});

test('sign out, then log in again', async () => {
  const { b } = room;
  await b.page.click('#logout');
  await b.page.waitForFunction(() =>
    document.getElementById('whoami').textContent === 'Not signed in', null, WAIT);
  assert.equal(await b.page.evaluate(() => localStorage.getItem('streamhub.auth')), null);
  await b.page.click('#nav-account');
  await b.page.fill('#login-user', room.bName);
  await b.page.fill('#login-pass', 'wrong-password');
  await b.page.click('#login-form button[type=submit]');
  await b.page.waitForFunction(() =>
    document.getElementById('account-error').textContent !== '', null, WAIT);
  await shot(b.page, 'account');
  await b.page.fill('#login-pass', 'password-123');
  await b.page.click('#login-form button[type=submit]');
  await b.page.waitForFunction((n) =>
    document.getElementById('whoami').textContent === 'Signed in as ' + n,
  room.bName, WAIT);
  // Signed in again, the broadcaster is still live with the same stream.
  await b.page.click('#nav-golive');
  await b.page.waitForSelector('#golive-on:not([hidden])', WAIT);
  // The wrong password was a 200 with a GraphQL error: nothing failed.
  clean(b);
});

test('operations: figures and readiness from /metrics and /readyz', async () => {
  const o = await openPage();
  await o.page.goto(srv.url + '/#/ops');
  await o.page.waitForFunction(() =>
    document.getElementById('ready-store').textContent === 'ready' &&
    document.getElementById('ready-bus').textContent === 'ready', null, WAIT);
  // The rates need two scrapes; then every figure shows a number.
  await o.page.waitForFunction(() =>
    [...document.querySelectorAll('#ops-grid .value')]
      .every((e) => /^[0-9.]+$/.test(e.textContent)), null, WAIT);
  const conns = Number(await o.page.textContent('#ops-conns .value'));
  assert.ok(conns >= 1, `connections shown: ${conns}`);
  await shot(o.page, 'operations');
  clean(o);
});

// Set the text of GraphiQL's query editor (CodeMirror 5 keeps its
// instance on its element) and run it.
// A person types, then clicks in the text: GraphiQL takes the operation
// to run from the cursor, so the cursor is put inside the new text.
async function setEditor(page, selector, text) {
  await page.evaluate(([sel, t]) => {
    const cm = document.querySelector(sel).CodeMirror;
    cm.setValue(t);
    cm.focus();
    cm.setCursor({ line: 0, ch: 1 });
  }, [selector, text]);
}

// GraphiQL reads the new document's operation shortly after an edit; the
// tab's title (the operation's name) shows when it has.
async function runInGraphiQL(page, query, title) {
  await setEditor(page, '.graphiql-query-editor .CodeMirror', query);
  await page.waitForFunction((t) => {
    const tab = document.querySelector('.graphiql-tab-active, .graphiql-tab');
    return tab && tab.textContent.trim() === t;
  }, title, WAIT);
  await page.click('.graphiql-execute-button');
}

function responseText(page) {
  return page.evaluate(() =>
    document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue());
}

test('GraphiQL: schema by introspection, a query with variables, a subscription', async () => {
  const g = await openPage();
  const introspected = g.page.waitForResponse((r) =>
    r.url().endsWith('/graphql') && r.request().method() === 'POST' &&
    (r.request().postData() ?? '').includes('__schema') && r.status() === 200,
  WAIT);
  await g.page.goto(srv.url + '/graphql');
  await g.page.waitForSelector('.graphiql-container', WAIT);
  await introspected;

  // The schema came from introspection: the docs explorer shows it.
  await g.page.getByRole('button', { name: /Documentation Explorer/ }).first().click();
  await g.page.locator('.graphiql-doc-explorer', { hasText: 'ChatMessage' }).waitFor(WAIT);
  await shot(g.page, 'graphiql-docs', { a11y: false });

  // A query with variables, from the variables editor.
  await setEditor(g.page, 'section[aria-label=Variables] .graphiql-editor:not(.hidden) .CodeMirror',
    JSON.stringify({ name: room.bName }));
  await runInGraphiQL(g.page,
    'query Who($name: String!) { user(username: $name) { username currentStream { title } } }', 'Who');
  await g.page.waitForFunction(() => {
    const cm = document.querySelector('.graphiql-response .CodeMirror');
    return cm && cm.CodeMirror.getValue().includes('Console test stream');
  }, null, WAIT);
  assert.match(await responseText(g.page), new RegExp(`"username": "${room.bName}"`));
  await shot(g.page, 'graphiql-query', { a11y: false });

  await runInGraphiQL(g.page,
    'subscription Live { liveStreams { kind stream { title } } }', 'Live');
  // Wait for the operation to be running (graphql-ws subscribe sent).
  await g.page.waitForSelector('.graphiql-execute-button[aria-label*="Stop"]', WAIT);
  const u = await register(srv.url, 'gq');
  const r = await api(srv.url, 'POST', '/api/v1/streams', {
    token: u.token, body: { title: 'Seen in GraphiQL' },
  });
  assert.ok(r.status === 201, `start stream: ${r.status}`);
  await g.page.waitForFunction(() => {
    const cm = document.querySelector('.graphiql-response .CodeMirror');
    return cm && cm.CodeMirror.getValue().includes('Seen in GraphiQL');
  }, null, WAIT);
  assert.match(await responseText(g.page), /"kind": "LIVE"/);
  await shot(g.page, 'graphiql-subscription', { a11y: false });
  clean(g);
});

// ---- without a browser ----------------------------------------------

// One raw request (the path as given, no client normalization).
function raw(address, request) {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), host);
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.write(request);
  });
}

async function rawStatus(address, target) {
  const out = await raw(address,
    `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  return Number(out.split(' ')[1]);
}

test('content types, CSP, and caching of the console\'s files', async () => {
  const types = {
    '/': 'text/html; charset=utf-8',
    '/console/app.js': 'text/javascript; charset=utf-8',
    '/console/style.css': 'text/css; charset=utf-8',
    '/console/icon.svg': 'image/svg+xml',
    '/console/vendor/graphiql@4.1.2/graphiql.min.js': 'text/javascript; charset=utf-8',
    '/console/vendor/graphiql@4.1.2/graphiql.min.css': 'text/css; charset=utf-8',
  };
  for (const [p, type] of Object.entries(types)) {
    const r = await fetch(srv.url + p);
    assert.equal(r.status, 200, p);
    assert.equal(r.headers.get('content-type'), type, p);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /default-src 'self'/, p);
    assert.match(csp, /script-src 'self';/, p);
    assert.match(csp, /style-src 'self';/, p);
    assert.match(csp, /connect-src 'self';/, p);
    assert.doesNotMatch(csp, /https?:|\*/, `${p}: no other origin`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
    const etag = r.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]{32}"$/, p);
    if (p.includes('/vendor/'))
      assert.equal(r.headers.get('cache-control'), 'public, max-age=31536000, immutable', p);
    else
      assert.equal(r.headers.get('cache-control'), 'no-cache', p);
    const again = await fetch(srv.url + p, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304, `${p} revalidated`);
    assert.equal(again.statusText, 'Not Modified');
    assert.equal(again.headers.get('etag'), etag);
    // RFC 9110 15.4.5: no Content-Length but the 200's; none at all here.
    assert.equal(again.headers.get('content-length'), null, `${p} 304`);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
  }
  // A vendor file only at the version installed.
  assert.equal((await fetch(srv.url +
    '/console/vendor/graphiql@4.1.1/graphiql.min.js')).status, 404);
  // A browser's page at /graphql; graphql-http's GET is unchanged.
  const page = await fetch(srv.url + '/graphql', { headers: { Accept: 'text/html' } });
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(await page.text(), /graphiql-boot\.js/);
  const json = await fetch(srv.url + '/graphql?query=%7B__typename%7D',
    { headers: { Accept: 'application/graphql-response+json' } });
  assert.deepEqual(await json.json(), { data: { __typename: 'Query' } });
  // HEAD has the headers and no body; other methods are refused.
  const head = await fetch(srv.url + '/console/app.js', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-type'), 'text/javascript; charset=utf-8');
  const post = await fetch(srv.url + '/', { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
});

test('no path leads out of the console\'s directory', async () => {
  // A console directory of our own, with links in and out of it.
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-console-'));
  const outside = mkdtempSync(path.join(tmpdir(), 'streamhub-outside-'));
  try {
    mkdirSync(path.join(dir, 'static'));
    writeFileSync(path.join(dir, 'static', 'index.html'), '<!doctype html><title>x</title>');
    writeFileSync(path.join(dir, 'static', 'a.txt'), 'inside');
    writeFileSync(path.join(dir, 'secret.txt'), 'not served');
    writeFileSync(path.join(outside, 'secret.txt'), 'outside');
    symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'static', 'out.txt'));
    symlinkSync(outside, path.join(dir, 'static', 'outdir'));
    symlinkSync(path.join(dir, 'static', 'a.txt'), path.join(dir, 'static', 'in.txt'));
    const s = await startServer({ args: ['--console-dir', dir] });
    try {
      assert.equal(await rawStatus(s.address, '/console/a.txt'), 200);
      assert.equal(await rawStatus(s.address, '/console/in.txt'), 200,
        'a link that stays inside is followed');
      // 404: no such file here.  400: the gateway refuses a NUL.
      const refused = {
        '/console/../secret.txt': 404,
        '/console/%2e%2e/secret.txt': 404,
        '/console/%2E%2E/secret.txt': 404,
        '/console/.%2e/secret.txt': 404,
        '/console/static/../../secret.txt': 404,
        '/console/..%2fsecret.txt': 404,
        '/console/%2e%2e%2fsecret.txt': 404,
        '/console/%252e%252e/secret.txt': 404,
        '/console/a%5c..%5csecret.txt': 404,
        '/console/a\\..\\secret.txt': 404,
        '/console//etc/passwd': 404,
        '/console/a.txt/': 404,
        '/console/out.txt': 404,
        '/console/outdir/secret.txt': 404,
        '/console/.hidden.txt': 404,
        '/console/vendor/graphiql@4.1.2/../../secret.txt': 404,
        '/console/vendor/graphiql@4.1.2/package.json': 404,
        '/console/a.txt%00.html': 400,
        '/console/a.txt%00': 400,
      };
      for (const [t, want] of Object.entries(refused))
        assert.equal(await rawStatus(s.address, t), want, t);
    } finally {
      await s.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});

test('console = false: no console, /graphql only GraphQL', async () => {
  const s = await startServer({ args: ['--console', 'false'] });
  try {
    assert.equal((await fetch(s.url + '/')).status, 404);
    assert.equal((await fetch(s.url + '/console/app.js')).status, 404);
    const r = await fetch(s.url + '/graphql', { headers: { Accept: 'text/html' } });
    assert.notEqual(r.headers.get('content-type'), 'text/html; charset=utf-8');
  } finally {
    await s.stop();
  }
});

// streamhubd's first lines, up to the one that says it is listening and
// the next one (or its exit); then it is stopped.
async function firstLines(args) {
  const child = spawn(BIN, ['--listen', '127.0.0.1:0', '--store', 'sqlite::memory:',
    '--log-level', 'error', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start: ${out}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      // The ready lines are written together, in one flush.
      if (/listening on \S+\n/.test(out)) { clearTimeout(timer); resolve(); }
    });
  });
  child.kill('SIGTERM');
  await exited;
  return out;
}

test('streamhubd says where the console is, unless it is off', async () => {
  const on = await firstLines([]);
  const addr = /listening on (\S+)/.exec(on)[1];
  assert.match(on, new RegExp(`^streamhubd console at http://${addr}/ \\(GraphiQL at /graphql\\)$`, 'm'));
  const off = await firstLines(['--console', 'off']);
  assert.doesNotMatch(off, /console at/);
});
