// Case 1: the Node `ws` client (and raw TCP frames) against our echo_server.
//
//   node node_client.js ws://127.0.0.1:PORT
'use strict';
const crypto = require('crypto');
const net = require('net');
const WebSocket = require('ws');
const { ok, fail, check, run, within, describe, firstDifference, patternBytes, patternText } = require('./lib');

const base = process.argv[2];
if (!base) {
  console.error('usage: node node_client.js ws://HOST:PORT');
  process.exit(2);
}
const url = `${base}/chat`;
const T = 20000;  // ms for any single step (16 MiB each way on a slow machine)

// Opens a ws client; `next()` resolves with the next message {data: Buffer, isBinary}.
function connect(protocols) {
  const ws = new WebSocket(url, protocols, { maxPayload: 64 * 1024 * 1024 });
  const queue = [];
  const waiters = [];
  let closed = null;
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiters.length) waiters.shift().resolve(m);
    else queue.push(m);
  });
  const closedPromise = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      closed = { code, reason: reason.toString() };
      for (const w of waiters.splice(0)) w.reject(new Error(`connection closed (${code} ${closed.reason})`));
      resolve(closed);
    });
  });
  ws.on('error', (e) => console.log(`  (ws client error: ${e.message})`));
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode} instead of 101`)));
  });
  const next = () =>
    within(T, 'a message', new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      if (closed) return reject(new Error(`connection closed (${closed.code})`));
      waiters.push({ resolve, reject });
    }));
  return { ws, opened: within(T, 'the handshake', opened), next, closedPromise };
}

// ---- raw TCP: our own handshake and hand-made frames, to see the server reject bad ones.
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame({ fin = true, rsv = 0, opcode, payload, masked = true }) {
  payload = Buffer.from(payload);
  const n = payload.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode) & 0xff];
  const m = masked ? 0x80 : 0;
  if (n < 126) head.push(m | n);
  else if (n < 65536) head.push(m | 126, n >> 8, n & 0xff);
  else throw new Error('raw frames here are small');
  if (!masked) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i & 3]));
  return Buffer.concat([Buffer.from(head), key, body]);
}

// Parses the server's frames out of `buf`: [{fin, rsv, opcode, masked, payload}].
function parseFrames(buf) {
  const frames = [];
  let p = 0;
  while (p + 2 <= buf.length) {
    const b0 = buf[p], b1 = buf[p + 1];
    let len = b1 & 0x7f, q = p + 2;
    if (len === 126) { if (q + 2 > buf.length) break; len = buf.readUInt16BE(q); q += 2; }
    else if (len === 127) { if (q + 8 > buf.length) break; len = Number(buf.readBigUInt64BE(q)); q += 8; }
    const masked = (b1 & 0x80) !== 0;
    if (masked) q += 4;
    if (q + len > buf.length) break;
    frames.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0xf, masked, payload: buf.subarray(q, q + len) });
    p = q + len;
  }
  return { frames, rest: buf.length - p };
}

// Handshakes by hand; resolves {sock, data()} once the 101 is in. `data()` is every byte
// received after the response head; `ended` resolves when the server closes TCP.
function rawConnect() {
  const { hostname, port } = new URL(url);
  return within(T, 'a raw handshake', new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    const sock = net.connect(Number(port), hostname);
    let buf = Buffer.alloc(0);
    let head = null;
    let endResolve;
    const ended = new Promise((r) => (endResolve = r));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (head !== null) return;
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      head = buf.subarray(0, i).toString('latin1');
      buf = buf.subarray(i + 4);
      const accept = crypto.createHash('sha1').update(key + GUID).digest('base64');
      const status = head.split('\r\n')[0];
      const got = /^sec-websocket-accept:\s*(\S+)/im.exec(head);
      if (!/^HTTP\/1\.1 101/.test(status)) return reject(new Error(`raw handshake: ${status}`));
      if (!got || got[1] !== accept) return reject(new Error(`raw handshake: bad Sec-WebSocket-Accept in\n${head}`));
      resolve({ sock, data: () => buf, ended });
    });
    sock.on('error', (e) => { reject(e); endResolve('error ' + e.code); });
    sock.on('close', () => endResolve('closed'));
    sock.write(
      `GET /chat HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  }));
}

// Sends `bytes` on a fresh raw connection; expects a close frame with `code`, then TCP close.
async function expectRejected(what, bytes, code) {
  const c = await rawConnect();
  c.sock.write(bytes);
  const how = await within(5000, 'the server to close TCP', c.ended).catch((e) => e.message);
  const { frames } = parseFrames(c.data());
  const close = frames.find((f) => f.opcode === 8);
  const got = close && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : null;
  check(got === code, `${what} -> server sends close ${code}`,
    () => `got ${close ? `close frame ${describe(close.payload)}` : 'no close frame'}; frames ${JSON.stringify(frames.map((f) => f.opcode))}; all bytes ${describe(c.data())}`);
  check(!close || !close.masked, `${what} -> server's close frame is unmasked`);
  check(how === 'closed', `${what} -> server then closes the TCP connection`, how);
  c.sock.destroy();
}

run(async () => {
  console.log(`node ws ${require('ws/package.json').version} client -> ${url}`);

  // Subprotocols: the first one we list that the server supports.
  const a = connect(['chat', 'superchat']);
  await a.opened;
  check(a.ws.protocol === 'chat', "offered ['chat','superchat'] -> subprotocol 'chat'", `got '${a.ws.protocol}'`);
  check(a.ws.extensions === '', 'permessage-deflate offered by ws is declined (no extension)', `got '${a.ws.extensions}'`);

  // Echo at the interesting length boundaries: 7-bit, 16-bit and 64-bit lengths, 1 MiB, the 16 MiB limit.
  const sizes = [0, 125, 126, 65535, 65536, 1 << 20, 16 << 20];
  for (const size of sizes) {
    const text = patternText(size);
    a.ws.send(text);
    const m = await a.next();
    const want = Buffer.from(text);
    check(!m.isBinary && m.data.equals(want), `text echo ${size} bytes`,
      () => `got ${m.isBinary ? 'binary' : 'text'} ${describe(m.data)}, ${firstDifference(m.data, want)}`);
    const bin = patternBytes(size, size + 1);
    a.ws.send(bin);
    const b = await a.next();
    check(b.isBinary && b.data.equals(bin), `binary echo ${size} bytes`,
      () => `got ${b.isBinary ? 'binary' : 'text'} ${describe(b.data)}, ${firstDifference(b.data, bin)}`);
  }

  // A text message sent in three fragments comes back whole.
  a.ws.send('frag-one ', { fin: false });
  a.ws.send('frag-two ✓ ', { fin: false });
  a.ws.send('frag-three', { fin: true });
  const f = await a.next();
  check(!f.isBinary && f.data.toString() === 'frag-one frag-two ✓ frag-three', 'fragmented text (3 frames) echoed whole',
    () => describe(f.data));

  // Ping -> pong with the same payload.
  const pingPayload = Buffer.from('ping-payload-✓-123');
  const pong = within(T, 'a pong', new Promise((resolve) => a.ws.once('pong', resolve)));
  a.ws.ping(pingPayload);
  const pongData = await pong;
  check(pongData.equals(pingPayload), 'ping -> pong with the same payload', () => describe(pongData));

  // Close 4000 'bye': the server's close frame echoes the code.
  a.ws.close(4000, 'bye');
  const closed = await within(T, 'the close handshake', a.closedPromise);
  check(closed.code === 4000, `close(4000, 'bye') -> close event code 4000 (reason '${closed.reason}')`, `got ${closed.code}`);

  const b = connect(['superchat']);
  await b.opened;
  check(b.ws.protocol === 'superchat', "offered ['superchat'] -> subprotocol 'superchat'", `got '${b.ws.protocol}'`);
  b.ws.close(1000);
  const bc = await within(T, 'the close handshake', b.closedPromise);
  check(bc.code === 1000, 'close(1000) -> close event code 1000', `got ${bc.code}`);

  const none = connect([]);
  await none.opened;
  check(none.ws.protocol === '', 'no subprotocol offered -> none chosen', `got '${none.ws.protocol}'`);
  none.ws.terminate();

  // Raw frames: a valid one first (proves the raw path works), then three the server must reject.
  const c = await rawConnect();
  c.sock.write(frame({ opcode: 1, payload: 'raw hello' }));
  await within(5000, 'the raw echo', new Promise((resolve) => {
    const poll = () => (parseFrames(c.data()).frames.length ? resolve() : setTimeout(poll, 10));
    poll();
  })).catch(() => {});
  const echoed = parseFrames(c.data()).frames[0];
  check(echoed && echoed.opcode === 1 && !echoed.masked && echoed.payload.toString() === 'raw hello',
    'raw masked text frame -> unmasked text echo', () => (echoed ? JSON.stringify({ ...echoed, payload: describe(echoed.payload) }) : 'nothing'));
  c.sock.destroy();

  await expectRejected('text frame with RSV1 set', frame({ rsv: 4, opcode: 1, payload: 'hello' }), 1002);
  await expectRejected('unmasked text frame', frame({ opcode: 1, payload: 'hello', masked: false }), 1002);
  await expectRejected('text frame with invalid UTF-8', frame({ opcode: 1, payload: Buffer.from([0x48, 0x69, 0xff, 0xfe]) }), 1007);
});
