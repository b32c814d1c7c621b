// tests/e2e/svc_pg_replica.mjs: a throwaway PostgreSQL primary and its
// streaming replica for e2e tests.
//
// startPgReplicaPair() starts a primary with svc_pg.mjs (its initdb
// defaults allow streaming replication from loopback: wal_level=replica,
// trust for replication), then makes the replica with `pg_basebackup -R`
// (which writes standby.signal and primary_conninfo) in a temporary
// directory of its own and starts it on another free port as a hot
// standby, with pg_ctl -w (it waits until the server accepts connections).  Each server is stopped by the PID in its postmaster.pid;
// the directories go at stop().  As root the servers run as the
// `postgres` user (PostgreSQL refuses root), through runuser.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, pgBin, startPg } from './svc_pg.mjs';

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
  const primary = await startPg();
  const tmp = mkdtempSync(path.join(tmpdir(), 'streamhub-pg-replica-'));
  chmodSync(tmp, 0o755);
  const sock = path.join(tmp, 'run');
  const rdir = path.join(tmp, 'data');
  execFileSync('mkdir', [sock]);
  if (asRoot) execFileSync('chown', ['postgres:', tmp, sock]);
  const replica = server(rdir, await freePort(), sock, path.join(tmp, 'replica.log'));
  const stopAll = async () => {
    await replica.stop().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
    await primary.stop();
  };
  try {
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
