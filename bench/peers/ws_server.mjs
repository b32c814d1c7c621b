// bench/peers/ws_server.mjs: the ws_fanout / ws_idle peer on npm's `ws`.
//
// A minimal broadcast server, as a Node service would write one: WebSocket
// subscribers on any path, and POST /publish whose body is sent as one text
// frame to every open client.  The frame is encoded once per broadcast
// (ws's `WebSocket.Sender.frame` + sendFrame would be faster still, but
// this is the idiomatic shape).  Prints "listening on PORT" when ready.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 0);
const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    for (const ws of wss.clients) ws.send(body);
    res.writeHead(200, { 'content-type': 'application/json' })
      .end('{"ok":true}');
  });
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('error', () => {}));
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
