// tests/e2e/svc_pg_replica.mjs: a throwaway PostgreSQL primary and its
// streaming replica for e2e tests.
//
// startPgReplicaPair() makes a temporary directory, initdb's a primary
// (wal_level=replica) on a free loopback port, creates the database
// `streamhub`, then makes the replica with `pg_basebackup -R` (which writes
// standby.signal and primary_conninfo) and starts it on another free port
// as a hot standby.  Each server is started with pg_ctl -w (it waits until
// the server accepts connections) and stopped by the PID in its
// postmaster.pid; the directory goes at stop().  As root the servers run as
// the `postgres` user (PostgreSQL refuses root), through runuser.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync,
  readFileSync, appendFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

// The newest installed server binaries (Debian's layout), or PG_BIN.
export function pgBin() {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const v = existsSync(root) ? readdirSync(root)
    .filter((d) => existsSync(path.join(root, d, 'bin', 'initdb')))
    .sort((a, b) => Number(a) - Number(b)) : [];
  if (!v.length) throw new Error('PostgreSQL server binaries not found');
  return path.join(root, v[v.length - 1], 'bin');
}

const asRoot = process.getuid?.() === 0;

// Run a PostgreSQL program (as postgres when root); throws with its output.
function run(bin, args) {
  const file = path.join(pgBin(), bin);
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]]
    : [file, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0)
    throw new Error(`${bin} ${args.join(' ')}: ${r.status} ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function pidOf(dir) {
  const f = path.join(dir, 'postmaster.pid');
  if (!existsSync(f)) return null;
  return Number(readFileSync(f, 'utf8').split('\n')[0]);
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

async function waitGone(pid, ms = 30000) {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) throw new Error(`postgres ${pid} did not exit`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// One server: data directory @dir, listening on @port.
function server(dir, port, sock, log) {
  const uri = (db = 'streamhub') => `postgresql://postgres@127.0.0.1:${port}/${db}`;
  const self = {
    dir, port, uri,
    start() {
      run('pg_ctl', ['-D', dir, '-l', log, '-w', '-t', '60', '-o',
        `-h 127.0.0.1 -p ${port} -k ${sock} -c fsync=off ` +
        '-c full_page_writes=off -c synchronous_commit=off', 'start']);
    },
    // The server's answer to @sql (one value per line, tab-separated).
    psql(sql, db = 'streamhub') {
      return run('psql', ['-X', '-At', '-h', '127.0.0.1', '-p', String(port),
        '-U', 'postgres', '-d', db, '-c', sql]).trim();
    },
    // Stop (SIGINT: fast shutdown) or kill (SIGKILL) by PID and wait.
    async stop(signal = 'SIGINT') {
      const pid = pidOf(dir);
      if (pid === null || !alive(pid)) return;
      process.kill(pid, signal);
      await waitGone(pid);
    },
  };
  return self;
}

export async function startPgReplicaPair() {
  const tmp = mkdtempSync(path.join(tmpdir(), 'streamhub-pg-'));
  chmodSync(tmp, 0o755);
  const sock = path.join(tmp, 'run');
  const pdir = path.join(tmp, 'primary');
  const rdir = path.join(tmp, 'replica');
  execFileSync('mkdir', [sock]);
  if (asRoot) {
    execFileSync('chown', ['postgres:', tmp, sock]);
  }
  const primary = server(pdir, await freePort(), sock, path.join(tmp, 'primary.log'));
  const replica = server(rdir, await freePort(), sock, path.join(tmp, 'replica.log'));
  const stopAll = async () => {
    await replica.stop().catch(() => {});
    await primary.stop().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    run('initdb', ['-D', pdir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '-N',
      '--no-locale']);
    // initdb's trust lines cover replication from loopback already.
    appendFileSync(path.join(pdir, 'postgresql.conf'),
      '\nwal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n');
    primary.start();
    primary.psql('CREATE DATABASE streamhub', 'postgres');
    run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port),
      '-U', 'postgres', '-D', rdir, '-R', '-X', 'stream', '-c', 'fast',
      '--no-sync']);
    replica.start();
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    primary,
    replica,
    // Wait until the replica has replayed everything the primary wrote.
    async caughtUp(ms = 30000) {
      const lsn = primary.psql('SELECT pg_current_wal_insert_lsn()');
      const end = Date.now() + ms;
      for (;;) {
        const done = replica.psql(
          `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`);
        if (done === 't') return;
        if (Date.now() > end) throw new Error('the replica did not catch up');
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: stopAll,
  };
}
