// tests/e2e/svc_pg.mjs: a throwaway PostgreSQL, and pgbouncer in
// transaction pooling mode in front of it, for e2e tests.
//
// startPg() makes a temporary directory, initdb's a cluster there and
// starts it on a free loopback port (pg_ctl -w: it returns once the server
// accepts connections); the server is stopped by the PID in its
// postmaster.pid and the directory removed at stop().  With
// { bouncer: true } it also starts Debian's pgbouncer (pool_mode =
// transaction, trust, every database forwarded) on another free port,
// daemonised with a pidfile, waits until it answers, and stops it by that
// PID.  As root both run as the `postgres` user through runuser
// (PostgreSQL and pgbouncer refuse root).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync,
  rmSync, writeFileSync } from 'node:fs';
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

const PGBOUNCER = process.env.PGBOUNCER ?? '/usr/sbin/pgbouncer';
const asRoot = process.getuid?.() === 0;

// Run @file with @args (as postgres when root); throws with its output.
function runAs(file, args) {
  const [cmd, argv] = asRoot
    ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0)
    throw new Error(`${path.basename(file)} ${args.join(' ')}: ` +
                    `${r.status} ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const pg = (bin, args) => runAs(path.join(pgBin(), bin), args);

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

function pidIn(file) {
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pid, what, ms = 30000) {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) throw new Error(`${what} ${pid} did not exit`);
    await sleep(50);
  }
}

// A PostgreSQL cluster (and optionally pgbouncer); see the file comment.
export async function startPg({ bouncer = false } = {}) {
  const tmp = mkdtempSync(path.join(tmpdir(), 'streamhub-pg-'));
  chmodSync(tmp, 0o755);
  const data = path.join(tmp, 'data');
  const sock = path.join(tmp, 'run');
  const log = path.join(tmp, 'postgres.log');
  execFileSync('mkdir', [sock]);
  if (asRoot) execFileSync('chown', ['postgres:', tmp, sock]);
  const port = await freePort();
  const bport = bouncer ? await freePort() : null;
  const bpid = path.join(tmp, 'pgbouncer.pid');

  const self = {
    port,
    // A URI of database @db on the server itself.
    uri: (db = 'streamhub') => `postgresql://postgres@127.0.0.1:${port}/${db}`,
    // The same through pgbouncer (null without one).
    bouncerUri: (db = 'streamhub') => bport === null ? null
      : `postgresql://postgres@127.0.0.1:${bport}/${db}`,
    start() {
      try {
        pg('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o',
          `-h 127.0.0.1 -p ${port} -k ${sock} -c fsync=off ` +
          '-c full_page_writes=off -c synchronous_commit=off', 'start']);
      } catch (e) {
        // The server's own words say why (the directory goes at stop()).
        e.message += `\npostgres.log: ${self.log().slice(-2000)}`;
        throw e;
      }
    },
    // The server's answer to @sql (one row a line, tab-separated).
    psql(sql, db = 'streamhub') {
      return pg('psql', ['-X', '-At', '-h', '127.0.0.1', '-p', String(port),
        '-U', 'postgres', '-d', db, '-c', sql]).trim();
    },
    // The same without waiting: a promise of psql's exit status.
    psqlAsync(sql, db = 'streamhub') {
      const file = path.join(pgBin(), 'psql');
      const args = ['-X', '-At', '-h', '127.0.0.1', '-p', String(port), '-U',
        'postgres', '-d', db, '-c', sql];
      const child = asRoot ? spawn('runuser', ['-u', 'postgres', '--', file, ...args])
        : spawn(file, args);
      return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    },
    // Stop the server (SIGINT: fast shutdown) by PID, and wait for it.
    async stopServer(signal = 'SIGINT') {
      const pid = pidIn(path.join(data, 'postmaster.pid'));
      if (pid === null || !alive(pid)) return;
      process.kill(pid, signal);
      await waitGone(pid, 'postgres');
    },
    // Freeze (SIGSTOP) or thaw (SIGCONT) the whole cluster: the postmaster
    // and every process it forked (each backend makes its own process
    // group, so signalling one group is not enough).  Sockets stay open
    // and fall silent, as on a server that hangs.
    freeze: () => signalCluster('SIGSTOP'),
    thaw: () => signalCluster('SIGCONT'),
    async restart() {
      await self.stopServer();
      self.start();
    },
    log: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
    async stop() {
      const b = pidIn(bpid);
      if (b !== null && alive(b)) {
        process.kill(b, 'SIGTERM');
        await waitGone(b, 'pgbouncer').catch(() => {});
      }
      try { signalCluster('SIGCONT'); } catch { /* not running */ }
      await self.stopServer().catch(() => {});
      rmSync(tmp, { recursive: true, force: true });
    },
  };

  function signalCluster(signal) {
    const pid = pidIn(path.join(data, 'postmaster.pid'));
    if (pid === null) throw new Error('postgres is not running');
    // The postmaster first: stopped, it forks no new backend meanwhile.
    process.kill(pid, signal);
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      let stat;
      try { stat = readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
      // pid (comm) state ppid ...: comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) {
        try { process.kill(Number(d), signal); } catch { /* exited */ }
      }
    }
  }

  try {
    pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8',
      '-N', '--no-locale']);
    self.start();
    self.psql('CREATE DATABASE streamhub', 'postgres');
    if (bouncer) {
      const ini = path.join(tmp, 'pgbouncer.ini');
      const users = path.join(tmp, 'userlist.txt');
      writeFileSync(users, '"postgres" ""\n');
      writeFileSync(ini, [
        '[databases]',
        `* = host=127.0.0.1 port=${port}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${bport}`,
        'unix_socket_dir =',
        'auth_type = trust',
        `auth_file = ${users}`,
        'pool_mode = transaction',
        'default_pool_size = 4',
        'max_client_conn = 200',
        'server_login_retry = 1',
        `logfile = ${path.join(tmp, 'pgbouncer.log')}`,
        `pidfile = ${bpid}`,
        '',
      ].join('\n'));
      if (asRoot) execFileSync('chown', ['postgres:', ini, users]);
      runAs(PGBOUNCER, ['-d', ini]);
      // Ready when a query goes through it.
      const end = Date.now() + 30000;
      for (;;) {
        const r = spawnSync(asRoot ? 'runuser' : path.join(pgBin(), 'psql'),
          [...(asRoot ? ['-u', 'postgres', '--', path.join(pgBin(), 'psql')] : []),
            '-X', '-At', '-h', '127.0.0.1', '-p', String(bport), '-U',
            'postgres', '-d', 'streamhub', '-c', 'SELECT 1'],
          { encoding: 'utf8', timeout: 10000 });
        if (r.status === 0) break;
        if (Date.now() > end) throw new Error(`pgbouncer not ready: ${r.stderr}`);
        await sleep(100);
      }
    }
  } catch (e) {
    await self.stop();
    throw e;
  }
  return self;
}
