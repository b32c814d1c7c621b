// tests/e2e/readme_tour.test.mjs: the README's "A first tour", run as a
// newcomer runs it, so that the README cannot drift from the server.
//
// The blocks are taken from README.md itself: each ```sh tour block is
// pasted, in order, into one bash (so variables carry over, as in one
// terminal), against a fresh server on a free port; the ```… tour-output
// block after it is what it must print.  A ```sh tour block with no
// output block before the next command block must print nothing.
//
// Matching, line by line: the text must be equal, except that a
// placeholder `<…>` of the README stands for one run of characters other
// than blanks and double quotes (ids, tokens, times, epochs vary).  An
// output block marked `any-order` may come in any order (two processes
// print it).  What the README changes to run here: the address
// 127.0.0.1:8080 becomes the test server's, and the build directory
// `build` becomes the one of the server under test.
//
// A command in the background (`&`) prints after bash has moved on: the
// lines of a block are those printed from its start until its output is
// complete (a deadline bounds the wait), and the next block is pasted
// only then, as the README tells a reader to wait for them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, startServer } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '../..');
const BUILD = path.dirname(path.dirname(path.resolve(BIN)));
const WAIT_MS = 20000;

// The tour's steps: [{ cmd, expect: [lines] | [], anyOrder, line }].
function tourSteps(markdown) {
  const lines = markdown.split('\n');
  const steps = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^```(\S+)\s*(.*)$/.exec(lines[i]);
    if (!m) continue;
    const attrs = m[2].split(/\s+/).filter(Boolean);
    const start = i + 1;
    let j = start;
    while (j < lines.length && lines[j] !== '```') j++;
    const body = lines.slice(start, j);
    i = j;
    if (attrs.includes('tour')) {
      steps.push({ cmd: body.join('\n'), expect: [], anyOrder: false,
                   line: start });
    } else if (attrs.includes('tour-output')) {
      const last = steps[steps.length - 1];
      assert.ok(last && last.expect.length === 0,
                `README.md:${start}: a tour-output block with no command`);
      last.expect = body;
      last.anyOrder = attrs.includes('any-order');
    }
  }
  return steps;
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// The README line @tpl as a whole-line pattern.
function linePattern(tpl) {
  const parts = tpl.split(/<[^<>]+>/);
  return new RegExp('^' + parts.map(escapeRe).join('[^"\\s]+') + '$');
}

// Why @got does not match @step's output, or null.
function mismatch(step, got) {
  const want = step.expect;
  if (got.length !== want.length)
    return `${got.length} lines printed, the README shows ${want.length}`;
  if (!step.anyOrder) {
    for (let k = 0; k < want.length; k++) {
      if (!linePattern(want[k]).test(got[k]))
        return `line ${k + 1}:\n  README: ${want[k]}\n  printed: ${got[k]}`;
    }
    return null;
  }
  const left = [...got];
  for (const w of want) {
    const k = left.findIndex((g) => linePattern(w).test(g));
    if (k < 0) return `no printed line matches:\n  README: ${w}\n` +
                      `  printed:\n    ${got.join('\n    ')}`;
    left.splice(k, 1);
  }
  return null;
}

// A bash whose stdout lines are read as they come.
function shell() {
  const sh = spawn('bash', ['--noprofile', '--norc'], {
    cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, LC_ALL: 'C.UTF-8' },
  });
  const out = [];
  let partial = '', stderr = '', waiter = null;
  sh.stdout.setEncoding('utf8');
  sh.stdout.on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    out.push(...parts);
    if (waiter) waiter();
  });
  sh.stderr.setEncoding('utf8');
  sh.stderr.on('data', (d) => { stderr += d; });
  // Resolves once @cond() holds, checked whenever a line arrives.
  const until = (cond, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      waiter = null;
      reject(new Error(`no ${what} within ${WAIT_MS} ms; printed so far:\n` +
                       out.join('\n') + '\nstderr:\n' + stderr));
    }, WAIT_MS);
    const check = () => {
      if (!cond()) return;
      clearTimeout(timer);
      waiter = null;
      resolve();
    };
    waiter = check;
    check();
  });
  return { sh, out, until, stderr: () => stderr };
}

test('the README tour prints what the README shows', async () => {
  const steps = tourSteps(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  assert.ok(steps.length >= 5, 'README.md has a tour');
  const srv = await startServer();
  const { sh, out, until, stderr } = shell();
  try {
    for (const [n, step] of steps.entries()) {
      const cmd = step.cmd
        .replaceAll('127.0.0.1:8080', srv.address)
        .replace(/(^|[\s"'])build(?=\/)/gm, `$1${BUILD}`)
        .replace(/-C build(?=\s)/g, `-C ${BUILD}`);
      const mark = `@@tour step ${n} status `;
      const from = out.length;
      sh.stdin.write(`${cmd}\necho "${mark}$?"\n`);
      await until(() => out.slice(from).some((l) => l.startsWith(mark)),
                  `end of the step at README.md:${step.line}`);
      const at = out.findIndex((l, k) => k >= from && l.startsWith(mark));
      assert.equal(out[at], `${mark}0`,
                   `README.md:${step.line}: the step failed\n${stderr()}`);
      // Lines of a background command may follow the end mark.
      await until(() => out.length - from - 1 >= step.expect.length,
                  `output of the step at README.md:${step.line}`);
      const got = out.slice(from).filter((l) => !l.startsWith(mark));
      const why = mismatch(step, got);
      assert.equal(why, null, `README.md:${step.line}: ${why}`);
    }
    sh.stdin.end();
    await new Promise((resolve) => sh.on('close', resolve));
    assert.equal(stderr(), '', 'the tour wrote to stderr');
  } finally {
    sh.kill();
    await srv.stop();
  }
});
