// ws_echo.js: Node `ws` echo server (a benchmark peer). Node runs JavaScript on one thread.
//
//   node ws_echo.js --port N [--host 127.0.0.1]
//
// No compression; `bufferutil` (installed next to `ws`) does the masking; UTF-8 of text
// messages is validated by ws (with Node's buffer.isUtf8). Each message goes back as it came.
'use strict';
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
let port = -1;
let host = '127.0.0.1';
for (let i = 0; i + 1 < args.length; i += 2) {
  if (args[i] === '--port') port = Number(args[i + 1]);
  else if (args[i] === '--host') host = args[i + 1];
}
if (!(port >= 0)) {
  console.error('usage: node ws_echo.js --port N [--host H]');
  process.exit(2);
}
try {
  require('bufferutil');
} catch (e) {
  console.error('ws_echo: bufferutil is not installed');
  process.exit(1);
}
const wss = new WebSocketServer({ port, host, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, backlog: 4096 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`ws_echo listening on ${host}:${port}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
