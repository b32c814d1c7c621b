// tests/e2e/svc_rabbitmq.mjs: a throwaway RabbitMQ broker for a test file.
//
// startRabbit() runs Debian's rabbitmq-server (the script under
// /usr/lib/rabbitmq/bin, which needs no init system) on free loopback
// ports: the AMQP port, its distribution port (AMQP + 20000, the broker's
// own rule) and an epmd of its own (ERL_EPMD_PORT), with a unique node
// name and every file (Mnesia, logs, the Erlang cookie through HOME) in a
// temporary directory, and no plugins.  It waits until the AMQP port
// accepts connections (the broker opens it last in its boot).  The handle
// can kill the broker (SIGKILL: a crash), start it again on the same ports
// and data (durable exchanges, queues and persistent messages survive),
// run rabbitmqctl against it, and stop it; stop() also ends the epmd the
// node started (found by its port, killed by PID).  A broker takes about
// 5-10 s to start on a small machine: start one per test file.
import { spawn, execFile } from 'node:child_process';
import { after } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, readFileSync,
  readlinkSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const RMQ_BIN = process.env.RABBITMQ_BIN_DIR ?? '/usr/lib/rabbitmq/bin';
const alive = new Set();

after(async () => {
  for (const r of [...alive]) await r.stop();
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// A free port p whose p + 20000 (the distribution port) is free too.
async function freeAmqpPort() {
  for (let i = 0; i < 50; i++) {
    const p = 20000 + Math.floor(Math.random() * 25000);
    const ok = await new Promise((resolve) => {
      const a = createServer();
      a.once('error', () => resolve(false));
      a.listen(p, '127.0.0.1', () => {
        const b = createServer();
        b.once('error', () => a.close(() => resolve(false)));
        b.listen(p + 20000, () => b.close(() => a.close(() => resolve(true))));
      });
    });
    if (ok) return p;
  }
  throw new Error('no free AMQP port pair');
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => done(true));
  });
}

// The PIDs of processes whose environment holds ERL_EPMD_PORT=@port and
// whose command is epmd: the one our node started.
function epmdPids(port) {
  const pids = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const exe = readlinkSync(`/proc/${d}/exe`);
      if (!exe.endsWith('/epmd')) continue;
      const env = readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (env.includes(`ERL_EPMD_PORT=${port}`)) pids.push(Number(d));
    } catch { /* gone, or not ours to read */ }
  }
  return pids;
}

export async function startRabbit() {
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-rabbit-'));
  const port = await freeAmqpPort();
  const epmdPort = await freePort();
  const node = `shtest${process.pid}x${port}@localhost`;
  writeFileSync(path.join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(path.join(dir, 'rabbitmq.conf'),
    'loopback_users = none\n');
  const env = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODENAME: node,
    ERL_EPMD_PORT: String(epmdPort),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq'),
    RABBITMQ_PID_FILE: path.join(dir, 'pid'),
  };
  let child = null;
  let exited = null;
  let log = '';

  async function start() {
    child = spawn(path.join(RMQ_BIN, 'rabbitmq-server'), [],
      { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout.on('data', (d) => { log += d; });
    child.stderr.on('data', (d) => { log += d; });
    const c = child;
    exited = new Promise((resolve) => c.on('exit', () => resolve()));
    const until = Date.now() + 60000;
    while (Date.now() < until) {
      if (c.exitCode !== null || c.signalCode !== null)
        throw new Error(`rabbitmq-server exited: ${log.slice(-2000)}`);
      if (await portOpen(port)) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`rabbitmq-server did not open ${port}: ${log.slice(-2000)}`);
  }

  // The whole process group: the script, beam.smp and its helpers.
  async function kill() {
    if (child && child.exitCode === null && child.signalCode === null) {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      await exited;
    }
  }

  const handle = {
    port,
    node,
    uri: `amqp://guest:guest@127.0.0.1:${port}/%2f`,
    log: () => log,
    start,
    kill,
    async restart() { await kill(); await start(); },
    // rabbitmqctl @args against this node; resolves with stdout.
    ctl(args, timeoutMs = 30000) {
      return new Promise((resolve, reject) => {
        execFile(path.join(RMQ_BIN, 'rabbitmqctl'), ['-n', node, ...args],
          { env, cwd: dir, timeout: timeoutMs }, (err, stdout, stderr) => {
            if (err) reject(new Error(`rabbitmqctl ${args.join(' ')}: ` +
              `${err.message} ${stderr}`));
            else resolve(stdout);
          });
      });
    },
    async stop() {
      alive.delete(handle);
      await kill();
      for (const pid of epmdPids(epmdPort)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  alive.add(handle);
  await start();
  return handle;
}
