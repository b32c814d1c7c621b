// tests/e2e/svc_nginx.mjs: Debian's nginx in front of streamhubd nodes,
// for the cluster tests.
//
// startNginx({ upstreams }) renders deploy/nginx/streamhub.conf (the site
// operators install) with the given node addresses as its upstream
// servers and a free loopback port as its listen address, wraps it in a
// main configuration whose pid, logs and temporary paths are all in a
// fresh temporary directory, runs /usr/sbin/nginx in the foreground
// (`daemon off`; as root its workers run as root too, since the temporary
// directory is root's), waits until the port answers, and returns
// { port, url, wsUrl, pid, stop }.  stop() sends SIGTERM to the master by
// PID, waits for it to exit and removes the directory; every nginx still
// running when the test file ends is stopped the same way.
import { spawn } from 'node:child_process';
import { after } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync }
  from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const NGINX = process.env.STREAMHUB_NGINX ?? '/usr/sbin/nginx';
export const SITE = path.resolve(here, '../../deploy/nginx/streamhub.conf');

const running = new Set();
after(async () => {
  for (const stop of [...running]) await stop();
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The site with @upstreams ("HOST:PORT"...) and listening on @port.
export function renderSite(upstreams, port, site = readFileSync(SITE, 'utf8')) {
  const lines = site.split('\n');
  const out = [];
  let inUpstream = false;
  let placed = false;
  for (const line of lines) {
    if (/^\s*upstream\s+streamhub\s*\{/.test(line)) inUpstream = true;
    else if (inUpstream && /^\s*\}/.test(line)) inUpstream = false;
    if (inUpstream && /^\s*server\s/.test(line)) {
      // The first server line gives the parameters every node gets.
      if (!placed) {
        const params = /^\s*server\s+\S+?(\s[^;]*)?;/.exec(line)?.[1] ?? '';
        for (const u of upstreams) out.push(`    server ${u}${params};`);
        placed = true;
      }
      continue;
    }
    const listen = /^(\s*)listen\s+([^;]+);/.exec(line);
    if (listen) {
      if (!listen[2].startsWith('['))
        out.push(`${listen[1]}listen 127.0.0.1:${port};`);
      continue;
    }
    out.push(line);
  }
  if (!placed) throw new Error(`${SITE}: no server line in upstream streamhub`);
  return out.join('\n');
}

export async function startNginx({ upstreams }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'streamhub-nginx-'));
  let lastErr = '';
  // A port found free may be taken before nginx binds it: try again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    writeFileSync(path.join(dir, 'streamhub.conf'), renderSite(upstreams, port));
    const isRoot = process.getuid?.() === 0;
    writeFileSync(path.join(dir, 'nginx.conf'), [
      'daemon off;',
      'master_process on;',
      'worker_processes 1;',
      isRoot ? 'user root;' : '',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      'events { worker_connections 4096; }',
      'http {',
      `  access_log ${dir}/access.log;`,
      `  client_body_temp_path ${dir}/body;`,
      `  proxy_temp_path ${dir}/proxy;`,
      `  fastcgi_temp_path ${dir}/fastcgi;`,
      `  uwsgi_temp_path ${dir}/uwsgi;`,
      `  scgi_temp_path ${dir}/scgi;`,
      `  include ${dir}/streamhub.conf;`,
      '}',
      '',
    ].join('\n'));
    const child = spawn(NGINX, ['-p', dir, '-c', `${dir}/nginx.conf`,
                                '-e', `${dir}/error.log`],
                        { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    const up = await waitListening(port, exited, 10000);
    if (up !== true) {
      lastErr = `${stderr}${readLog(dir)}`;
      if (/Address already in use/.test(lastErr)) continue;
      if (up === 'timeout') { child.kill('SIGKILL'); await exited; }
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`nginx did not start: ${lastErr}`);
    }
    const stop = async () => {
      running.delete(stop);
      if (child.exitCode === null && child.signalCode === null)
        process.kill(child.pid, 'SIGTERM');
      const r = await exited;
      rmSync(dir, { recursive: true, force: true });
      return r;
    };
    running.add(stop);
    return {
      port, pid: child.pid, dir,
      url: `http://127.0.0.1:${port}`,
      wsUrl: `ws://127.0.0.1:${port}`,
      errorLog: () => readLog(dir),
      stop,
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`nginx did not start: ${lastErr}`);
}

function readLog(dir) {
  const f = path.join(dir, 'error.log');
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
}

// Resolve true once @port accepts a connection, 'exited' if nginx exited,
// 'timeout' after @ms.
function waitListening(port, exited, ms) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v) => { if (!done) { done = true; clearTimeout(t); resolve(v); } };
    const t = setTimeout(() => finish('timeout'), ms);
    exited.then(() => finish('exited'));
    const tryOnce = () => {
      if (done) return;
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); finish(true); });
      s.once('error', () => { s.destroy(); setTimeout(tryOnce, 50); });
    };
    tryOnce();
  });
}
