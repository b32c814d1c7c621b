// bench/peers/graphql_peer.mjs: the graphql_http peer on graphql-js.
//
// A minimal GraphQL-over-HTTP server as a Node service would write one:
// graphql-js (npm `graphql`) executing the project's own schema
// (libstreamhub/graphql/schema.graphql, the API contract, so validation
// sees the same types), served by graphql-http's Node handler on
// node:http, with the data in SQLite through better-sqlite3.  Resolvers
// exist for Query.liveStreams and what it reaches (Stream, its
// broadcaster User with followerCount/followingCount, the connection's
// edges, pageInfo and totalCount); the other root fields answer an error.
//
// The resolver is written to be quick, not naive: one prepared statement
// per page joins each stream with its broadcaster and the broadcaster's
// follower count (no query per row), better-sqlite3 is synchronous, and
// totalCount runs only when asked.  One process, one thread by default
// (Node's way; streamhubd runs one loop and a pool of store workers);
// --workers N forks N processes (node:cluster) sharing the port, each
// with its own connection to the file.
//
// usage:
//   node graphql_peer.mjs --seed DUMP.json --db FILE   fill FILE (must not
//        exist) with the users, follows and streams of DUMP.json, written
//        by bench/graphql_http_seed; then exit
//   node graphql_peer.mjs --db FILE [--port N] [--workers N]
//        serve POST /graphql and GET /healthz on 127.0.0.1:N (0: any);
//        prints "listening on PORT" when ready (every worker listening)
import cluster from 'node:cluster';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { buildSchema, GraphQLError } from 'graphql';
import { createHandler } from 'graphql-http/lib/use/http';

const here = path.dirname(fileURLToPath(import.meta.url));
const schemaFile = path.join(here, '..', '..', 'libstreamhub', 'graphql',
  'schema.graphql');

function usage() {
  console.error('usage: graphql_peer.mjs --seed DUMP.json --db FILE\n' +
    '       graphql_peer.mjs --db FILE [--port N] [--workers N]');
  process.exit(2);
}

const args = { port: '0', workers: '1' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i];
  const v = process.argv[i + 1];
  if (v === undefined || !['--seed', '--db', '--port', '--workers'].includes(k)) usage();
  args[k.slice(2)] = v;
}
if (!args.db) usage();
const nworkers = Number(args.workers);
if (!Number.isInteger(nworkers) || nworkers < 1 || nworkers > 64) usage();

// The schema subset of the store (libstreamhub/store/migrations): the
// same columns, types and indexes for what liveStreams reads.
const DDL = `
CREATE TABLE users (
    id TEXT PRIMARY KEY, username TEXT NOT NULL,
    username_lc TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE follows (
    follower_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    followed_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followed_id), CHECK (follower_id <> followed_id));
CREATE INDEX follows_followed ON follows (followed_id, created_at);
CREATE INDEX follows_follower ON follows (follower_id, created_at);
CREATE TABLE streams (
    id TEXT PRIMARY KEY,
    broadcaster_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title TEXT NOT NULL, category TEXT,
    status TEXT NOT NULL DEFAULT 'LIVE' CHECK (status IN ('LIVE', 'OFFLINE')),
    viewer_count INTEGER NOT NULL DEFAULT 0, started_at TEXT, ended_at TEXT);
CREATE INDEX streams_live ON streams (viewer_count DESC, started_at DESC)
    WHERE status = 'LIVE';
CREATE INDEX streams_live_category ON streams
    (category, viewer_count DESC, started_at DESC) WHERE status = 'LIVE';
`;

function seed(dumpFile, dbFile) {
  if (fs.existsSync(dbFile)) {
    console.error(`graphql_peer: ${dbFile} exists already`);
    process.exit(1);
  }
  const dump = JSON.parse(fs.readFileSync(dumpFile, 'utf8'));
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  db.exec(DDL);
  const u = db.prepare('INSERT INTO users VALUES (?, ?, ?, ?)');
  const f = db.prepare('INSERT INTO follows VALUES (?, ?, ?)');
  const s = db.prepare('INSERT INTO streams (id, broadcaster_id, title, ' +
    'category, status, viewer_count, started_at) VALUES (?, ?, ?, ?, ' +
    "'LIVE', ?, ?)");
  db.transaction(() => {
    for (const r of dump.users)
      u.run(r.id, r.username, r.username.toLowerCase(), r.createdAt);
    dump.follows.forEach((r, i) => f.run(r.followerId, r.followedId, i));
    for (const r of dump.streams)
      s.run(r.id, r.broadcasterId, r.title, r.category ?? null,
        r.viewerCount, r.startedAt ?? null);
  })();
  db.close();
  console.error(`graphql_peer: ${dump.users.length} users, ` +
    `${dump.follows.length} follows, ${dump.streams.length} streams`);
}

if (args.seed) {
  seed(args.seed, args.db);
  process.exit(0);
}

if (nworkers > 1 && cluster.isPrimary) {
  // Workers listen on one port (port 0: the primary picks it once).
  let ready = 0;
  cluster.on('message', (w, m) => {
    if (m?.listening !== undefined && ++ready === nworkers)
      console.log(`listening on ${m.listening}`);
  });
  cluster.on('exit', () => process.exit(1));
  for (let i = 0; i < nworkers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.process.kill();
    process.exit(0);
  });
} else {
  serve();
}

function serve() {
  const db = new Database(args.db, { fileMustExist: true });
  db.pragma('journal_mode = WAL');

  // One page, keyset on (viewer_count DESC, started_at DESC, id ASC); the
  // cursor is base64url of that key.  ? = 0 means "no cursor".
  const PAGE_SQL = `
  SELECT s.id, s.title, s.category, s.status, s.viewer_count, s.started_at,
         s.ended_at, u.id AS b_id, u.username AS b_username,
         u.created_at AS b_created_at,
         (SELECT count(*) FROM follows WHERE followed_id = u.id) AS b_followers
  FROM streams s JOIN users u ON u.id = s.broadcaster_id
  WHERE s.status = 'LIVE' AND (@category IS NULL OR s.category = @category)
    AND (@has = 0 OR s.viewer_count < @v OR (s.viewer_count = @v AND
         (s.started_at < @t OR (s.started_at = @t AND s.id > @id))))
  ORDER BY s.viewer_count DESC, s.started_at DESC, s.id ASC LIMIT @lim`;
  const pageStmt = db.prepare(PAGE_SQL);
  const countStmt = db.prepare("SELECT count(*) AS n FROM streams WHERE " +
    "status = 'LIVE' AND (@category IS NULL OR category = @category)");
  const followingStmt = db.prepare(
    'SELECT count(*) AS n FROM follows WHERE follower_id = ?');

  const encodeCursor = (r) => Buffer.from(JSON.stringify(
    [r.viewer_count, r.started_at, r.id])).toString('base64url');
  function decodeCursor(c) {
    try {
      const k = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
      if (Array.isArray(k) && k.length === 3 && Number.isInteger(k[0]) &&
          typeof k[1] === 'string' && typeof k[2] === 'string')
        return k;
    } catch { /* below */ }
    throw new GraphQLError('invalid cursor',
      { extensions: { code: 'BAD_USER_INPUT' } });
  }

  function user(r) {
    return {
      id: r.b_id,
      username: r.b_username,
      email: null,
      createdAt: new Date(r.b_created_at).toISOString(),
      followerCount: r.b_followers,
      followingCount: () => followingStmt.get(r.b_id).n,
      online: false,
      followedByMe: false,
    };
  }

  function stream(r) {
    return {
      id: r.id,
      title: r.title,
      category: r.category,
      status: r.status,
      viewerCount: r.viewer_count,
      startedAt: r.started_at,
      endedAt: r.ended_at,
      broadcaster: user(r),
    };
  }

  const notHere = () => {
    throw new GraphQLError('not served by this peer',
      { extensions: { code: 'INTERNAL' } });
  };

  const rootValue = {
    liveStreams({ first, after, category }) {
      if (first < 1)
        throw new GraphQLError('first must be at least 1',
          { extensions: { code: 'BAD_USER_INPUT' } });
      const lim = Math.min(first, 100);
      const key = after ? decodeCursor(after) : [0, '', ''];
      const rows = pageStmt.all({
        category: category ?? null, has: after ? 1 : 0,
        v: key[0], t: key[1], id: key[2], lim: lim + 1,
      });
      const more = rows.length > lim;
      if (more) rows.pop();
      const edges = rows.map((r) => ({ cursor: encodeCursor(r), node: stream(r) }));
      return {
        edges,
        pageInfo: {
          hasNextPage: more,
          hasPreviousPage: Boolean(after),
          startCursor: edges.length ? edges[0].cursor : null,
          endCursor: edges.length ? edges[edges.length - 1].cursor : null,
        },
        totalCount: () => countStmt.get({ category: category ?? null }).n,
      };
    },
    me: () => null,
    user: notHere,
    stream: notHere,
    searchStreams: notHere,
    chatHistory: notHere,
    notifications: notHere,
  };

  const schema = buildSchema(fs.readFileSync(schemaFile, 'utf8'));
  const graphql = createHandler({ schema, rootValue });

  const server = http.createServer((req, res) => {
    if (req.url === '/graphql') {
      graphql(req, res).catch((err) => {
        console.error(err);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
      return;
    }
    if (req.url === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' })
        .end('{"status":"ok"}');
      return;
    }
    res.writeHead(404).end();
  });
  server.keepAliveTimeout = 60000;
  server.listen(Number(args.port), '127.0.0.1', () => {
    if (cluster.isWorker)
      process.send({ listening: server.address().port });
    else
      console.log(`listening on ${server.address().port}`);
  });
}
