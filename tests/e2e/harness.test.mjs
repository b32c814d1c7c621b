// The harness itself: a server that dies of itself fails the test that
// stops it (a sanitizer build aborts with SIGABRT on a report; a plain one
// may die of SIGSEGV), while the ends a test asks for pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';

test('a server that died of a signal nobody sent fails stop()', async () => {
  for (const sig of ['SIGSEGV', 'SIGABRT']) {
    const s = await startServer();
    s.child.kill(sig);   // as a crash or a sanitizer's abort would
    await s.exited;
    // Under ASan the signal comes with its report (and SIGABRT).
    await assert.rejects(s.stop(), /died abnormally: (signal SIG|a sanitizer report)/);
  }
});

test('SIGTERM (exit 0) and SIGKILL are ends a test asks for', async () => {
  const a = await startServer();
  assert.deepEqual(await a.stop(), { code: 0, signal: null });
  const b = await startServer();
  assert.equal((await b.stop('SIGKILL')).signal, 'SIGKILL');
});
