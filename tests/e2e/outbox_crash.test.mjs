// The outbox across crashes: every chat message StreamHub acknowledged
// reaches a real AMQP consumer, each id at least once, in offset order per
// channel, when the broker is killed mid-stream (and started again) and
// when streamhubd is killed with SIGKILL mid-stream (and started again on
// its store).
import { test, before, after } from 'node:test';
import { startServer, register } from './harness.mjs';
import { startRabbit } from './svc_rabbitmq.mjs';
import { EXCHANGE, sleep, waitFor, serverArgs, consumer, gql, metric,
  assertChatOrder, chatPump, twoStreams, chatIds, allArrive } from './outbox_util.mjs';

let rabbit;

before(async () => { rabbit = await startRabbit(); });
after(async () => { if (rabbit) await rabbit.stop(); });

test('broker killed mid-stream: every acknowledged event arrives, in order', async () => {
  const c = await consumer(rabbit.uri, `kill${process.pid}`, ['chat.message']);
  const a = await startServer({ args: serverArgs(rabbit.uri) });
  const sender = await register(a.url, 'ok');
  const streams = await twoStreams(a.url);
  const p = await chatPump(a, sender.token, streams);
  await waitFor(() => chatIds(c).size >= 100, 20000, 'events flow');
  await rabbit.kill();
  const mark = p.acked.size;
  // The broker is down: chat goes on, the outbox holds the events.
  await waitFor(() => p.acked.size >= mark + 150, 20000, 'chat goes on');
  await waitFor(async () => (await metric(a.url, 'streamhub_outbox_rows')) > 0,
    5000, 'the outbox holds a backlog');
  await rabbit.start();
  await waitFor(() => p.acked.size >= mark + 300, 30000, 'chat after the restart');
  await p.end();
  await allArrive(c, p.acked, 30000, 'after the broker restart');
  await c.close();
  await a.stop();
});

test('streamhubd kill -9 mid-stream: every acknowledged event arrives', async () => {
  const c = await consumer(rabbit.uri, `crash${process.pid}`, ['chat.message']);
  const a = await startServer({ keepDir: true, args: serverArgs(rabbit.uri) });
  const sender = await register(a.url, 'oc');
  const streams = await twoStreams(a.url);
  const p = await chatPump(a, sender.token, streams);
  await waitFor(() => p.acked.size >= 300, 20000, 'chat flows');
  await a.stop('SIGKILL');
  await p.end();
  const b = await startServer({ dir: a.dir, args: serverArgs(rabbit.uri) });
  const q = await chatPump(b, sender.token, streams);
  await waitFor(() => q.acked.size >= 100, 20000, 'chat after the restart');
  await q.end();
  const acked = new Map([...p.acked, ...q.acked]);
  await allArrive(c, acked, 30000, 'after kill -9');
  await c.close();
  await b.stop();
});

