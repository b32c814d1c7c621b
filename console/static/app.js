// The StreamHub console: a reference browser client of the public doors.
// Queries and mutations go to POST /graphql; live events come over
// graphql-ws (graphql-transport-ws) on /graphql, with the graphql-ws
// library's own client (window.graphqlWs, its UMD build); operations read
// /metrics and /readyz.  Every text that comes from the server is put in
// the page with textContent, never as HTML.

const $ = (id) => document.getElementById(id);
const AUTH_KEY = 'streamhub.auth';

// ---- GraphQL over HTTP and over graphql-ws ---------------------------

let auth = null;            // AuthPayload from register/login/refresh
try { auth = JSON.parse(localStorage.getItem(AUTH_KEY) || 'null'); }
catch (e) { auth = null; }

async function gql(query, variables = {}) {
  const headers = {
    'Content-Type': 'application/json',
    Accept: 'application/graphql-response+json, application/json',
  };
  if (auth) headers.Authorization = 'Bearer ' + auth.accessToken;
  const res = await fetch('/graphql', {
    method: 'POST', headers, body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors && body.errors.length) {
    const err = new Error(body.errors[0].message);
    err.code = body.errors[0].extensions && body.errors[0].extensions.code;
    throw err;
  }
  return body.data;
}

let ws = null;              // the graphql-ws client, remade at sign-in/out
function wsClient() {
  if (!ws) {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') +
      location.host + '/graphql';
    ws = graphqlWs.createClient({
      url,
      lazy: true,
      retryAttempts: Infinity,
      shouldRetry: () => true,
      connectionParams: () => (auth ? { token: auth.accessToken } : {}),
    });
  }
  return ws;
}

// Subscribe; returns the function that ends it.  @onError is told of
// errors that end the subscription (e.g. HISTORY_LOST).
function subscribe(query, variables, onData, onError) {
  return wsClient().subscribe({ query, variables }, {
    next: (r) => { if (r.data) onData(r.data); },
    error: (e) => { if (onError) onError(e); else console.warn(e); },
    complete: () => {},
  });
}

// Say @text to screen readers (one polite status region for the page),
// rather than making whole lists live regions that re-read themselves.
function announce(text) {
  $('announce').textContent = text;
}

// ---- sign-in state ---------------------------------------------------

let me = null;              // { id, username, currentStream }
let refreshTimer = null;

function saveAuth(a) {
  auth = a;
  if (a) localStorage.setItem(AUTH_KEY, JSON.stringify(a));
  else localStorage.removeItem(AUTH_KEY);
  if (ws) { ws.dispose(); ws = null; }   // new identity, new connection
  clearTimeout(refreshTimer);
  if (a) {
    // Refresh at 80% of the token's life, before it expires.
    refreshTimer = setTimeout(refresh, Math.max(5, a.expiresIn * 0.8) * 1000);
  }
}

async function refresh() {
  if (!auth) return;
  try {
    const d = await gql(`mutation ($t: String!) { refreshToken(refreshToken: $t)
      { accessToken refreshToken expiresIn user { id username } } }`,
    { t: auth.refreshToken });
    auth = d.refreshToken;
    localStorage.setItem(AUTH_KEY, JSON.stringify(auth));
    refreshTimer = setTimeout(refresh,
      Math.max(5, auth.expiresIn * 0.8) * 1000);
  } catch (e) {
    signOut();
  }
}

const AUTH_FIELDS = 'accessToken refreshToken expiresIn user { id username }';

async function loadMe() {
  me = null;
  if (auth) {
    try {
      const d = await gql('{ me { id username currentStream { id title } } }');
      me = d.me;
    } catch (e) {
      me = null;
    }
    if (!me) saveAuth(null);
  }
  $('whoami').textContent = me ? 'Signed in as ' + me.username
    : 'Not signed in';
  $('nav-account').hidden = !!me;
  $('logout').hidden = !me;
  $('nav-notes').hidden = !me;
  $('nav-golive').hidden = !me;
  startNotifications();
}

function signOut() {
  saveAuth(null);
  loadMe().then(() => route());
}

// ---- notifications ---------------------------------------------------

let notes = [];
let unread = 0;
let endNotes = null;

function describe(n) {
  const d = n.data || {};
  switch (n.type) {
    case 'NEW_FOLLOWER':
      return (d.follower ? d.follower.username : 'Someone') +
        ' followed you';
    case 'STREAM_LIVE':
      return (d.broadcaster ? d.broadcaster.username : 'A channel') +
        ' went live' + (d.title ? ': ' + d.title : '');
    case 'RAID_INCOMING':
      return 'Incoming raid' + (d.from && d.from.broadcaster
        ? ' from ' + d.from.broadcaster.username : '') +
        (d.viewerCount != null ? ' with ' + d.viewerCount + ' viewers' : '');
    case 'SUBSCRIPTION_NEW': return 'New channel subscription';
    case 'MENTION': return 'You were mentioned';
    default: return n.type;
  }
}

function renderNotes() {
  $('unread').textContent = String(unread);
  const list = $('notes-list');
  list.replaceChildren(...notes.map((n) => {
    const li = document.createElement('li');
    li.className = n.read ? '' : 'unread';
    li.textContent = describe(n) + ' · ' +
      new Date(n.createdAt).toLocaleString();
    return li;
  }));
}

async function startNotifications() {
  if (endNotes) { endNotes(); endNotes = null; }
  notes = []; unread = 0; renderNotes();
  if (!me) return;
  endNotes = subscribe(
    'subscription { notifications { id type data read createdAt } }',
    {}, (d) => {
      const n = d.notifications;
      if (notes.some((x) => x.id === n.id)) return;
      notes.unshift(n);
      if (!n.read) unread++;
      renderNotes();
      announce('New notification: ' + describe(n));
    });
  const d = await gql(`{ notifications(first: 20) { unreadCount
    edges { node { id type data read createdAt } } } }`);
  const seen = new Set(notes.map((x) => x.id));
  for (const e of d.notifications.edges)
    if (!seen.has(e.node.id)) notes.push(e.node);
  notes.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  // What arrived live before the page loaded is in unreadCount already.
  unread = Math.max(d.notifications.unreadCount,
    notes.filter((n) => !n.read).length);
  renderNotes();
}

$('notes-read').addEventListener('click', async () => {
  await gql('mutation { markNotificationsRead }');
  notes.forEach((n) => { n.read = true; });
  unread = 0;
  renderNotes();
});

// ---- live streams ----------------------------------------------------

const STREAM_FIELDS = 'id title category status viewerCount ' +
  'broadcaster { id username }';
let live = new Map();       // id -> Stream
let liveSubs = [];          // functions that end the view's subscriptions
let liveTimer = null;
// Viewer counts of the list are read again every few seconds rather than
// followed over streamUpdates: a subscription to a stream's channel
// counts its connection as one of the stream's viewers, and looking at
// the list is not watching 50 streams.  Streams going live or offline
// arrive at once (the liveStreams subscription).
const LIST_REFRESH_MS = 5000;

function renderLive() {
  const items = [...live.values()]
    .sort((a, b) => b.viewerCount - a.viewerCount ||
      a.title.localeCompare(b.title));
  $('live-empty').hidden = items.length > 0;
  $('live-list').replaceChildren(...items.map((s) => {
    const li = document.createElement('li');
    li.dataset.streamId = s.id;
    const a = document.createElement('a');
    a.href = '#/stream/' + encodeURIComponent(s.id);
    a.textContent = s.title;
    const by = document.createElement('div');
    by.textContent = s.broadcaster.username +
      (s.category ? ' · ' + s.category : '');
    const v = document.createElement('div');
    v.className = 'viewers';
    v.textContent = s.viewerCount + ' viewers';
    li.append(a, by, v);
    return li;
  }));
}

async function loadLive() {
  const d = await gql(`{ liveStreams(first: 50) { edges { node {
    ${STREAM_FIELDS} } } } }`);
  // The list is the server's; a stream that went live while it was read
  // stays until the next one.
  const fresh = new Map(d.liveStreams.edges.map((e) => [e.node.id, e.node]));
  for (const [id, s] of live) {
    if (!fresh.has(id) && s.justLive) {
      s.justLive = false;
      fresh.set(id, s);
    }
  }
  live = fresh;
  renderLive();
}

async function showLive() {
  live = new Map();
  liveSubs.push(subscribe(`subscription { liveStreams { kind
      stream { ${STREAM_FIELDS} } } }`, {}, (d) => {
    const ev = d.liveStreams;
    if (ev.kind === 'LIVE') {
      live.set(ev.stream.id, Object.assign(ev.stream, { justLive: true }));
      announce(ev.stream.broadcaster.username + ' went live: ' +
        ev.stream.title);
    } else if (ev.kind === 'OFFLINE') {
      live.delete(ev.stream.id);
    }
    renderLive();
  }));
  await loadLive();
  liveTimer = setInterval(() => loadLive().catch(console.warn),
    LIST_REFRESH_MS);
}

function leaveLive() {
  clearInterval(liveTimer);
  liveTimer = null;
}

// ---- a stream's room ---------------------------------------------------

const MSG_FIELDS = 'id offset text deleted createdAt author { id username }';
let room = null;            // { stream, messages: Map id -> msg, older }

function isModerator() {
  if (!me || !room) return false;
  return me.id === room.stream.broadcaster.id || $('modtools').checked;
}

function msgItem(m) {
  const li = document.createElement('li');
  li.dataset.messageId = m.id;
  const who = document.createElement('span');
  who.className = 'author';
  who.textContent = m.author.username;
  const text = document.createElement('span');
  if (m.deleted) {
    text.className = 'deleted';
    text.textContent = 'message deleted';
  } else {
    text.className = 'text';
    text.textContent = m.text;
  }
  li.append(who, text);
  if (isModerator() && !m.deleted && m.author.id !== me.id) {
    const mk = (label, fn) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.setAttribute('aria-label', label + ' (' + m.author.username + ')');
      b.addEventListener('click', () => fn().catch(showChatError));
      return b;
    };
    const ch = room.stream.broadcaster.id;
    li.append(
      mk('Delete', () => gql(
        'mutation ($id: ID!) { deleteMessage(messageId: $id) }',
        { id: m.id })),
      mk('Timeout', () => gql(`mutation ($c: ID!, $u: ID!) {
        timeoutUser(channelId: $c, userId: $u, seconds: 600) }`,
      { c: ch, u: m.author.id })),
      mk('Ban', () => gql(`mutation ($c: ID!, $u: ID!) {
        banUser(channelId: $c, userId: $u) }`, { c: ch, u: m.author.id })));
  } else if (isModerator() && !m.deleted) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Delete';
    b.setAttribute('aria-label', 'Delete your message');
    b.addEventListener('click', () =>
      gql('mutation ($id: ID!) { deleteMessage(messageId: $id) }', { id: m.id })
        .catch(showChatError));
    li.append(b);
  }
  return li;
}

// The chat list changes in place: new messages are inserted, changed
// ones replaced, the rest left alone, so that the log (a live region)
// announces only what is new and the reader keeps their place.
function renderChat() {
  const list = $('chat-list');
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  const msgs = [...room.messages.values()].sort((a, b) => a.offset - b.offset);
  const state = (m) => (m.deleted ? 'd' : 'm') + (isModerator() ? '1' : '0');
  let prev = null;
  for (const m of msgs) {
    let li = room.nodes.get(m.id);
    if (li && li.dataset.state !== state(m)) {
      const fresh = msgItem(m);
      li.replaceWith(fresh);
      li = fresh;
    } else if (!li) {
      li = msgItem(m);
    }
    li.dataset.state = state(m);
    room.nodes.set(m.id, li);
    const at = prev ? prev.nextSibling : list.firstChild;
    if (at !== li) list.insertBefore(li, at);
    prev = li;
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
  $('older').hidden = !room.older;
}

function renderRoom() {
  const s = room.stream;
  $('room-title').textContent = s.title;
  $('room-broadcaster').textContent = s.broadcaster.username +
    (s.category ? ' · ' + s.category : '');
  $('room-status').textContent = s.status === 'LIVE' ? 'live' : 'offline';
  $('room-viewers').textContent = String(s.viewerCount);
  $('room-slow').textContent = s.chatSettings.slowModeSeconds
    ? s.chatSettings.slowModeSeconds + ' s' : 'off';
  // Only when the setting changed: a re-render for a viewer count must not
  // undo a choice the moderator has made but not applied yet.
  const slow = String(s.chatSettings.slowModeSeconds);
  if (room.renderedSlow !== slow) {
    room.renderedSlow = slow;
    $('slow-select').value = slow;
  }
  const mine = me && me.id === s.broadcaster.id;
  $('follow').hidden = !me || mine;
  $('follow').textContent = s.broadcaster.followedByMe ? 'Unfollow' : 'Follow';
  $('modtools').parentElement.hidden = !me || mine;
  $('mod-panel').hidden = !isModerator();
  $('chat-form').hidden = !me;
  $('chat-signin').hidden = !!me;
}

function showChatError(e) {
  $('chat-error').textContent = e.message;
}

function onChatEvent(ev) {
  const msgs = room.messages;
  switch (ev.kind) {
    case 'MESSAGE':
      msgs.set(ev.message.id, ev.message);
      break;
    case 'MESSAGE_DELETED': {
      const m = msgs.get(ev.messageId);
      if (m) { m.deleted = true; m.text = ''; }
      break;
    }
    case 'USER_BANNED':
    case 'USER_TIMED_OUT':
      // The server redacts their messages: so does the page.
      for (const m of msgs.values())
        if (m.author.id === ev.userId) { m.deleted = true; m.text = ''; }
      break;
    case 'SETTINGS_CHANGED':
      room.stream.chatSettings = Object.assign(room.stream.chatSettings,
        ev.settings);
      renderRoom();
      break;
    default:
      break;
  }
  room.lastOffset = Math.max(room.lastOffset || 0, ev.offset);
  renderChat();
}

function subscribeChat(id, since) {
  const vars = { id };
  if (since != null) vars.since = since;
  liveSubs.push(subscribe(`subscription ($id: ID!, $since: Int) {
    chatMessages(streamId: $id, sinceOffset: $since) { kind offset
      message { ${MSG_FIELDS} } messageId userId
      settings { slowModeSeconds followersOnly maxMessageLength
        blockedTerms } } }`, vars,
  (d) => onChatEvent(d.chatMessages),
  (e) => {
    // HISTORY_LOST: what we missed is gone from the history; reload the
    // room (its history, then a new subscription).
    console.warn(e);
    if (room && room.stream.id === id) route();
  }));
}

async function openRoom(id) {
  const d = await gql(`query ($id: ID!) { stream(id: $id) {
      ${STREAM_FIELDS} broadcaster { id username followedByMe }
      chatSettings { slowModeSeconds followersOnly maxMessageLength
        blockedTerms } }
    chatHistory(streamId: $id, last: 50) { edges { node { ${MSG_FIELDS} } }
      pageInfo { hasPreviousPage startCursor } } }`, { id });
  if (!d.stream) {
    $('room-title').textContent = 'No such stream';
    return;
  }
  $('chat-list').replaceChildren();
  room = { stream: d.stream, messages: new Map(), nodes: new Map(),
    lastOffset: null,
    older: d.chatHistory.pageInfo.hasPreviousPage
      ? d.chatHistory.pageInfo.startCursor : null };
  for (const e of d.chatHistory.edges) room.messages.set(e.node.id, e.node);
  for (const m of room.messages.values())
    room.lastOffset = Math.max(room.lastOffset || 0, m.offset);
  renderRoom();
  renderChat();
  // Resume right after the history's last message: no gap between them.
  subscribeChat(id, room.lastOffset);
  liveSubs.push(subscribe(`subscription ($id: ID!) {
    streamUpdates(streamId: $id)
    { kind stream { viewerCount status title category } raid {
      viewerCount from { broadcaster { username } } } } }`, { id }, (x) => {
    const ev = x.streamUpdates;
    Object.assign(room.stream, ev.stream);
    if (ev.kind === 'RAID' && ev.raid) {
      // raid.incoming reaches the room of the channel being raided.
      $('raid-note').textContent = 'Incoming raid from ' +
        ev.raid.from.broadcaster.username + ' with ' +
        ev.raid.viewerCount + ' viewers';
      announce($('raid-note').textContent);
    }
    renderRoom();
  }));
}

$('older').addEventListener('click', async () => {
  const d = await gql(`query ($id: ID!, $b: String) {
    chatHistory(streamId: $id, last: 50, before: $b) {
      edges { node { ${MSG_FIELDS} } }
      pageInfo { hasPreviousPage startCursor } } }`,
  { id: room.stream.id, b: room.older });
  for (const e of d.chatHistory.edges)
    if (!room.messages.has(e.node.id)) room.messages.set(e.node.id, e.node);
  const p = d.chatHistory.pageInfo;
  room.older = p.hasPreviousPage ? p.startCursor : null;
  renderChat();
});

$('chat-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('chat-error').textContent = '';
  const text = $('chat-text').value;
  try {
    const d = await gql(`mutation ($id: ID!, $t: String!) {
      sendMessage(streamId: $id, text: $t) { ${MSG_FIELDS} } }`,
    { id: room.stream.id, t: text });
    room.messages.set(d.sendMessage.id, d.sendMessage);
    $('chat-text').value = '';
    renderChat();
  } catch (e) {
    showChatError(e);
  }
});

$('follow').addEventListener('click', async () => {
  const b = room.stream.broadcaster;
  const op = b.followedByMe ? 'unfollow' : 'follow';
  try {
    const d = await gql(`mutation ($u: ID!) { ${op}(userId: $u)
      { followedByMe } }`, { u: b.id });
    b.followedByMe = d[op].followedByMe;
    renderRoom();
  } catch (e) { showChatError(e); }
});

$('modtools').addEventListener('change', () => { renderRoom(); renderChat(); });

$('slow-apply').addEventListener('click', async () => {
  try {
    await gql(`mutation ($c: ID!, $s: Int) { updateChatSettings(channelId: $c,
      slowModeSeconds: $s) { slowModeSeconds } }`,
    { c: room.stream.broadcaster.id, s: Number($('slow-select').value) });
  } catch (e) { showChatError(e); }
});

// ---- go live, raid -----------------------------------------------------

function renderGoLive() {
  const s = me && me.currentStream;
  $('golive-off').hidden = !!s;
  $('golive-on').hidden = !s;
  if (s) {
    $('golive-link').textContent = s.title;
    $('golive-link').href = '#/stream/' + encodeURIComponent(s.id);
  }
}

$('golive-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('golive-error').textContent = '';
  try {
    const d = await gql(`mutation ($t: String!, $c: String) {
      startStream(title: $t, category: $c) { id title } }`,
    { t: $('golive-title').value, c: $('golive-category').value || null });
    me.currentStream = d.startStream;
    location.hash = '#/stream/' + encodeURIComponent(d.startStream.id);
  } catch (e) { $('golive-error').textContent = e.message; }
});

$('golive-stop').addEventListener('click', async () => {
  try {
    await gql('mutation ($id: ID!) { stopStream(streamId: $id) { id } }',
      { id: me.currentStream.id });
    me.currentStream = null;
    renderGoLive();
  } catch (e) { $('golive-error').textContent = e.message; }
});

$('raid-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('golive-error').textContent = '';
  try {
    const u = await gql('query ($n: String!) { user(username: $n) { id } }',
      { n: $('raid-to').value });
    if (!u.user) throw new Error('no such user');
    const d = await gql(`mutation ($f: ID!, $t: ID!) {
      startRaid(fromStreamId: $f, toUserId: $t) { viewerCount } }`,
    { f: me.currentStream.id, t: u.user.id });
    $('golive-error').textContent = 'Raid started with ' +
      d.startRaid.viewerCount + ' viewers';
  } catch (e) { $('golive-error').textContent = e.message; }
});

// ---- sign up, log in ---------------------------------------------------

async function signIn(promise) {
  $('account-error').textContent = '';
  try {
    const d = await promise;
    saveAuth(Object.values(d)[0]);
    await loadMe();
    location.hash = '#/';
  } catch (e) {
    $('account-error').textContent = e.message;
  }
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  signIn(gql(`mutation ($u: String!, $p: String!) { login(username: $u,
    password: $p) { ${AUTH_FIELDS} } }`,
  { u: $('login-user').value, p: $('login-pass').value }));
});

$('signup-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  signIn(gql(`mutation ($u: String!, $e: String!, $p: String!) {
    register(username: $u, email: $e, password: $p) { ${AUTH_FIELDS} } }`,
  { u: $('signup-user').value, e: $('signup-email').value,
    p: $('signup-pass').value }));
});

$('logout').addEventListener('click', signOut);

// ---- operations ----------------------------------------------------------

// Each figure: a value from /metrics (a gauge as is, a counter as a rate
// per second between two scrapes) and its last 60 values as a line.
const OPS = [
  { id: 'conns', label: 'Connections', metric: 'streamhub_connections' },
  { id: 'ws', label: 'WebSocket connections',
    metric: 'streamhub_websocket_connections' },
  { id: 'deliveries', label: 'Deliveries per second',
    metric: 'streamhub_fanout_deliveries_total', rate: true },
  { id: 'chat', label: 'Chat messages per second',
    metric: 'streamhub_chat_messages_total', rate: true },
  { id: 'queue', label: 'Write queue depth',
    metric: 'streamhub_chat_write_behind_depth' },
];
const HISTORY = 60;
let opsTimer = null;
let opsPrev = null;         // { t, values }
const opsSeries = new Map(OPS.map((o) => [o.id, []]));

function parseMetrics(text) {
  // Sum every series of a name (labels aside): enough for these figures.
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) out.set(m[1], (out.get(m[1]) || 0) + v);
  }
  return out;
}

function buildOps() {
  const grid = $('ops-grid');
  if (grid.childElementCount) return;
  const NS = 'http://www.w3.org/2000/svg';
  for (const o of OPS) {
    const fig = document.createElement('figure');
    fig.id = 'ops-' + o.id;
    const cap = document.createElement('figcaption');
    cap.textContent = o.label;
    const val = document.createElement('div');
    val.className = 'value';
    val.setAttribute('aria-live', 'off');
    val.textContent = '…';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + (HISTORY - 1) + ' 40');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', o.label + ', last two minutes');
    svg.append(document.createElementNS(NS, 'polyline'));
    fig.append(cap, val, svg);
    grid.append(fig);
  }
}

async function pollOps() {
  try {
    const [mres, rres] = await Promise.all([fetch('/metrics'),
      fetch('/readyz')]);
    const metrics = parseMetrics(await mres.text());
    const ready = await rres.json();
    for (const k of ['store', 'bus']) {
      const el = $('ready-' + k);
      el.textContent = ready[k] === 'ok' ? 'ready' : 'not ready';
      el.className = ready[k] === 'ok' ? 'ok' : 'bad';
    }
    const now = performance.now();
    for (const o of OPS) {
      const raw = metrics.get(o.metric) || 0;
      let v = raw;
      if (o.rate) {
        if (!opsPrev) continue;
        const dt = (now - opsPrev.t) / 1000;
        const before = opsPrev.values.get(o.metric) || 0;
        v = dt > 0 ? Math.max(0, (raw - before) / dt) : 0;
      }
      const s = opsSeries.get(o.id);
      s.push(v);
      if (s.length > HISTORY) s.shift();
      const fig = $('ops-' + o.id);
      fig.querySelector('.value').textContent =
        o.rate ? v.toFixed(1) : String(Math.round(v));
      const max = Math.max(1, ...s);
      fig.querySelector('polyline').setAttribute('points', s.map((y, i) =>
        (HISTORY - s.length + i) + ',' + (38 - (y / max) * 36).toFixed(2))
        .join(' '));
    }
    opsPrev = { t: now, values: metrics };
  } catch (e) {
    $('ready-store').textContent = $('ready-bus').textContent = 'unreachable';
  }
}

// ---- views ---------------------------------------------------------------

function leaveView() {
  for (const end of liveSubs) end();
  liveSubs = [];
  leaveLive();
  room = null;
  clearInterval(opsTimer);
  opsTimer = null;
}

async function route(ev) {
  leaveView();
  const h = location.hash || '#/';
  let view = 'live';
  const m = /^#\/stream\/(.+)$/.exec(h);
  if (m) view = 'room';
  else if (h === '#/ops') view = 'ops';
  else if (h === '#/account') view = 'account';
  else if (h === '#/golive' && me) view = 'golive';
  else if (h === '#/notifications' && me) view = 'notifications';
  for (const s of document.querySelectorAll('[data-view]'))
    s.hidden = s.id !== 'view-' + view;
  document.body.dataset.page = view;
  try {
    if (view === 'live') await showLive();
    else if (view === 'room') await openRoom(decodeURIComponent(m[1]));
    else if (view === 'golive') renderGoLive();
    else if (view === 'ops') {
      buildOps();
      opsPrev = null;
      await pollOps();
      opsTimer = setInterval(pollOps, 2000);
    }
  } catch (e) {
    console.warn(e);
  }
  // After a link was followed, reading starts at the new view.
  if (ev && ev.type === 'hashchange') $('main').focus();
  document.body.dataset.ready = view;
}

window.addEventListener('hashchange', route);
loadMe().then(() => route());
