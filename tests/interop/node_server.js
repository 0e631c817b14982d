// Case 3: a Node `ws` server talking to our wscat client.
//
//   node node_server.js WSCAT_BINARY
//
// (a), (b) lines: wscat --protocol chat, stdin lines in (one at a time, then all at once);
//     the server echoes; wscat's stdout must be the same lines, it must exit 0, and the
//     server must see close 1000.
// (c) echo:  wscat --echo; the server sends messages on connect, checks each comes back
//     (same type and bytes), then closes with 1000; wscat must exit 0.
'use strict';
const { spawn } = require('child_process');
const { WebSocketServer } = require('ws');
const { check, run, within, describe, firstDifference, patternBytes } = require('./lib');

const wscat = process.argv[2];
if (!wscat) {
  console.error('usage: node node_server.js WSCAT_BINARY');
  process.exit(2);
}
const T = 20000;
const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

// Starts a ws server on a free loopback port; calls onConnection(ws, req) per client.
async function startServer(onConnection) {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
  });
  wss.on('connection', (ws, req) => {
    ws.on('error', (e) => console.log(`  (ws server: ${e.message})`));  // then 'close' follows
    onConnection(ws, req);
  });
  await within(T, 'the ws server to listen', new Promise((r) => wss.once('listening', r)));
  return wss;
}

// Starts wscat with args; `input` (if not null) is written to its stdin, which is then closed.
// Returns {child, stdout() (the bytes so far), done: Promise<{code, signal, stdout, stderr}>}.
function startWscat(args, input) {
  const child = spawn(wscat, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  const out = [], err = [];
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => err.push(d));
  child.stdin.on('error', () => {});  // EPIPE if it died: reported by its exit status
  const done = new Promise((resolve) => {
    child.on('error', (e) => err.push(Buffer.from(String(e))));
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
  });
  if (input !== null) child.stdin.end(input);
  return { child, stdout: () => Buffer.concat(out), done };
}

const exited = (r) => `exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}${r.stderr ? `, stderr: ${r.stderr.trim()}` : ''}`;

// (a) interactive: one line at a time, each echo awaited on wscat's stdout before the next;
// (b) bulk: all lines at once and stdin closed at once (ws echoes each message synchronously
//     as it parses it, so every echo is out before ws answers wscat's close frame).
async function linesCase(mode) {
  const lines = ['hello from wscat', 'ünïcödé ✓ 🚀', '', 'x'.repeat(70000), 'last line'];
  const received = [];
  let protocol = null;
  let closeResolve;
  const closed = new Promise((r) => (closeResolve = r));
  const wss = await startServer((ws) => {
    protocol = ws.protocol;
    ws.on('message', (data, isBinary) => {
      received.push({ data: data.toString(), isBinary });
      ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code, reason) => closeResolve({ code, reason: reason.toString() }));
  });
  const url = `ws://127.0.0.1:${wss.address().port}/lines`;
  const want = Buffer.from(lines.join('\n') + '\n');
  let r;
  if (mode === 'interactive') {
    console.log(`(a) ${wscat} ${url} --protocol chat: a line on stdin, its echo awaited on stdout, x${lines.length}, then EOF`);
    const w = startWscat([url, '--protocol', 'chat'], null);
    let expect = '';
    let inOrder = true;
    for (const line of lines) {
      expect += line + '\n';
      w.child.stdin.write(line + '\n');
      const target = Buffer.from(expect);
      const echoed = await within(5000, `the echo of line ${JSON.stringify(line.slice(0, 20))}`, new Promise((resolve) => {
        const poll = () => (w.stdout().length >= target.length ? resolve() : setTimeout(poll, 5));
        poll();
      })).then(() => true, (e) => { console.log(`  (${e.message}; stdout so far ${describe(w.stdout())})`); return false; });
      if (!echoed) { inOrder = false; break; }
    }
    check(inOrder, 'each line is echoed back on stdout before the next is typed');
    w.child.stdin.end();
    r = await within(T, 'wscat to exit after EOF', w.done);
  } else {
    console.log(`(b) printf lines | ${wscat} ${url} --protocol chat: all ${lines.length} lines at once, then EOF`);
    r = await within(T, 'wscat to exit', startWscat([url, '--protocol', 'chat'], want).done);
  }
  check(r.code === 0, 'wscat exits 0', exited(r));
  check(protocol === 'chat', "the server negotiated subprotocol 'chat'", `got '${protocol}'`);
  check(received.length === lines.length && received.every((m, i) => !m.isBinary && m.data === lines[i]),
    `the server received the ${lines.length} lines (UTF-8, empty, 70000 bytes) as text messages`,
    () => JSON.stringify(received.map((m) => `${m.isBinary ? 'binary' : 'text'} ${m.data.length}: ${m.data.slice(0, 30)}`)));
  check(r.stdout.equals(want), "wscat's stdout equals the input lines", () => `stdout ${describe(r.stdout)}, ${firstDifference(r.stdout, want)}`);
  const c = await within(5000, "the server's close event", closed).catch((e) => ({ code: e.message }));
  check(c.code === 1000, `the server saw close code 1000 (reason '${c.reason}')`, `got ${c.code}`);
  wss.close();
}

async function echoCase() {
  const messages = [
    { data: 'first ✓ 🚀', binary: false },
    { data: '', binary: false },
    { data: Buffer.alloc(0), binary: true },
    { data: patternBytes(300, 3), binary: true },
    { data: 'y'.repeat(65536), binary: false },
    { data: patternBytes(1 << 20, 4), binary: true },
    { data: 'last', binary: false },
  ];
  let done, closeResolve;
  const finished = new Promise((r) => (done = r));
  const closed = new Promise((r) => (closeResolve = r));
  const wss = await startServer((ws) => {
    const got = [];
    let closing = false;
    ws.on('message', (data, isBinary) => {
      got.push({ data, isBinary });
      if (got.length === messages.length) {
        done({ got });
        closing = true;
        ws.close(1000, 'enough');
      }
    });
    ws.on('close', (code) => {
      if (!closing) done({ got, earlyClose: code });
      closeResolve(code);
    });
    for (const m of messages) ws.send(m.data, { binary: m.binary });
  });
  const url = `ws://127.0.0.1:${wss.address().port}/echo`;
  console.log(`(c) ${wscat} --echo ${url}: the server sends ${messages.length} messages, then closes with 1000`);
  const r = await within(T, 'wscat --echo to exit', startWscat(['--echo', url], '').done);
  const f = await within(5000, 'the echoes', finished).catch((e) => ({ got: [], earlyClose: e.message }));
  check(f.earlyClose === undefined, 'the connection stayed open until all messages came back', `closed early: ${f.earlyClose}`);
  messages.forEach((m, i) => {
    const g = f.got[i];
    const want = Buffer.from(m.data);
    const size = want.length;
    check(g && g.isBinary === m.binary && g.data.equals(want),
      `message ${i} (${m.binary ? 'binary' : 'text'}, ${size} bytes) echoed back`,
      () => (g ? `got ${g.isBinary ? 'binary' : 'text'} ${describe(g.data)}, ${firstDifference(g.data, want)}` : 'nothing'));
  });
  check(r.code === 0, 'wscat --echo exits 0 after the server closes with 1000', exited(r));
  const code = await within(5000, "the server's close event", closed).catch((e) => e.message);
  check(code === 1000, 'wscat answered the close handshake with 1000', `got ${code}`);
  wss.close();
}

run(async () => {
  console.log(`node ws ${require('ws/package.json').version} server <- ${wscat}`);
  await linesCase('interactive');
  await linesCase('bulk');
  await echoCase();
});
