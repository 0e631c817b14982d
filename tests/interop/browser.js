// Case 5: headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core).
//
//   node browser.js echo ws://127.0.0.1:ECHOPORT   a page served from http://127.0.0.1 (a node
//                                                  http server here) talks to echo_server
//   node browser.js chat http://127.0.0.1:CHATPORT/  two tabs of the chat example's own page
//
// Chromium refuses loopback WebSockets from a data: page, hence the real http origins.
'use strict';
const http = require('http');
const { chromium } = require('playwright-core');
const { check, run, within } = require('./lib');

const [mode, target] = process.argv.slice(2);
if (!['echo', 'chat'].includes(mode) || !target) {
  console.error('usage: node browser.js echo ws://HOST:PORT | chat http://HOST:PORT/');
  process.exit(2);
}
const T = 20000;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

async function launch() {
  const browser = await within(T, 'chromium to start', chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  }));
  console.log(`chromium ${browser.version()} (playwright-core ${require('playwright-core/package.json').version})`);
  return browser;
}

// Page console errors and crashes go to our output: they are the diagnostics on failure.
function watch(page, name) {
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    if (/\/favicon\.ico$/.test(m.location().url || '')) return;  // the chat example has none: 404
    console.log(`  (${name} console ${m.type()}: ${m.text()} ${m.location().url || ''})`);
  });
  page.on('pageerror', (e) => console.log(`  (${name} page error: ${e.message})`));
  page.on('crash', () => console.log(`  (${name} crashed)`));
}

// Runs inside the page: the whole echo conversation; returns [{what, ok, detail}].
async function echoInPage(url) {
  const results = [];
  const note = (ok, what, detail) => results.push({ ok: !!ok, what, detail: ok ? undefined : String(detail) });
  const ws = new WebSocket(url, ['chat', 'superchat']);
  ws.binaryType = 'arraybuffer';
  const inbox = [];
  let waiter = null;
  ws.onmessage = (e) => { if (waiter) { const w = waiter; waiter = null; w(e.data); } else inbox.push(e.data); };
  const closed = new Promise((resolve) => { ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean }); });
  const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms));
  const next = () => Promise.race([
    new Promise((resolve) => { if (inbox.length) resolve(inbox.shift()); else waiter = resolve; }),
    timeout(15000, 'an echo'), closed.then((c) => { throw new Error(`closed ${c.code}`); })]);
  try {
    await Promise.race([new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('error event before open')); }), timeout(15000, 'open')]);
    note(ws.protocol === 'chat', "offered ['chat','superchat'] -> ws.protocol === 'chat'", `got '${ws.protocol}'`);
    note(ws.extensions === '', 'permessage-deflate offered by Chromium is declined', `got '${ws.extensions}'`);

    // Exactly 1 MiB of UTF-8 with 1-, 2-, 3- and 4-byte characters.
    const unit = 'websocket.hpp ünïcödé ✓ 🚀 ';
    const unitBytes = new TextEncoder().encode(unit).length;
    let big = unit.repeat(Math.floor((1 << 20) / unitBytes));
    big += 'x'.repeat((1 << 20) - new TextEncoder().encode(big).length);
    const texts = [['ASCII', 'hello from chromium'], ['UTF-8', 'ünïcödé ✓ 🚀 – 日本語'], ['empty', ''],
      [`1 MiB (${new TextEncoder().encode(big).length} bytes of mixed UTF-8)`, big]];
    for (const [what, t] of texts) {
      ws.send(t);
      const got = await next();
      note(got === t, `text echo: ${what}`, typeof got === 'string' ? `got ${got.length} chars, first 40: ${JSON.stringify(got.slice(0, 40))}` : `got ${Object.prototype.toString.call(got)}`);
    }

    const bytes = new Uint8Array(70000);
    let x = 12345;
    for (let i = 0; i < bytes.length; i++) { x = (x * 1103515245 + 12345) >>> 0; bytes[i] = x >>> 24; }
    ws.send(bytes.buffer);
    const got = await next();
    let detail = null;
    if (!(got instanceof ArrayBuffer)) detail = `got ${Object.prototype.toString.call(got)}`;
    else if (got.byteLength !== bytes.length) detail = `got ${got.byteLength} bytes`;
    else {
      const g = new Uint8Array(got);
      for (let i = 0; i < g.length && !detail; i++) if (g[i] !== bytes[i]) detail = `first difference at byte ${i}`;
    }
    note(!detail, 'binary echo: ArrayBuffer of 70000 bytes, byte for byte', detail);

    ws.close(1000, 'done');
    const c = await Promise.race([closed, timeout(15000, 'the close event')]);
    note(c.wasClean === true && c.code === 1000, `close(1000) -> close event wasClean ${c.wasClean}, code ${c.code}`, JSON.stringify(c));
  } catch (e) {
    note(false, 'the conversation finished', e.message);
  }
  return results;
}

async function echoCase() {
  // A tiny page on a real http://127.0.0.1 origin.
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><meta charset="utf-8"><title>interop</title><p>interop page</p>');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}/`;
  const url = `${target}/chat`;
  console.log(`page ${origin} -> new WebSocket('${url}', ['chat','superchat'])`);
  const browser = await launch();
  try {
    const page = await browser.newPage();
    watch(page, 'page');
    await page.goto(origin);
    const results = await within(60000, 'the page', page.evaluate(echoInPage, url));
    for (const r of results) check(r.ok, r.what, r.detail);
  } finally {
    await browser.close();
    server.close();
  }
}

async function chatCase() {
  console.log(`two tabs of ${target} (the chat example's own page)`);
  const browser = await launch();
  try {
    const ctx = await browser.newContext();
    const open = async (name) => {
      const page = await ctx.newPage();
      watch(page, name);
      const resp = await page.goto(target);
      check(resp && resp.status() === 200, `${name}: GET / -> 200 (${resp && resp.headers()['content-type']})`, resp && resp.status());
      return page;
    };
    // Waits until the page's #log has an entry containing `text`; returns the whole log.
    const logHas = async (page, text) => {
      try {
        await page.locator('#log li', { hasText: text }).first().waitFor({ timeout: 10000 });
      } catch (e) { /* reported by the caller's check */ }
      return page.locator('#log li').allTextContents();
    };
    const hasLine = (log, pred) => log.some(pred);

    const a = await open('tab A');
    let logA = await logHas(a, '* connected');
    check(hasLine(logA, (l) => l === '* connected'), 'tab A: the page connected its WebSocket to /ws', JSON.stringify(logA));
    const b = await open('tab B');
    const logB = await logHas(b, '* connected');
    check(hasLine(logB, (l) => l === '* connected'), 'tab B: the page connected its WebSocket to /ws', JSON.stringify(logB));
    // B's join, as A sees it: A's log then has two "joined" lines (its own, then B's).
    await a.waitForFunction(() => [...document.querySelectorAll('#log li')].filter((li) => / joined$/.test(li.textContent)).length >= 2, null, { timeout: 10000 }).catch(() => {});
    logA = await a.locator('#log li').allTextContents();
    const joins = logA.filter((l) => /^\* user \d+ joined$/.test(l));
    check(joins.length >= 2, "tab A sees tab B's '* user N joined'", JSON.stringify(logA));
    const userB = joins.length >= 2 ? joins[joins.length - 1].split(' ')[2] : '?';

    const msgA = `hello from tab A ünïcödé ✓ 🚀 ${process.pid}`;
    await a.fill('#text', msgA);
    await a.press('#text', 'Enter');
    const logB2 = await logHas(b, msgA);
    check(hasLine(logB2, (l) => /^user \d+: /.test(l) && l.endsWith(`: ${msgA}`)), "tab A types + Enter -> tab B's log shows 'user N: <message>'", JSON.stringify(logB2));
    check(await a.inputValue('#text') === '', "tab A's input is cleared after sending");

    const msgB = `reply from tab B ${Date.now()}`;
    await b.fill('#text', msgB);
    await b.click('button');
    const logA2 = await logHas(a, msgB);
    check(hasLine(logA2, (l) => l === `user ${userB}: ${msgB}`), `tab B clicks send -> tab A's log shows 'user ${userB}: <message>'`, JSON.stringify(logA2));
    const logA3 = await logHas(a, msgA);
    check(hasLine(logA3, (l) => l.endsWith(`: ${msgA}`)), 'tab A also gets its own message back (broadcast to all)', JSON.stringify(logA3));

    await b.close();
    const logA4 = await logHas(a, `* user ${userB} left`);
    check(hasLine(logA4, (l) => l === `* user ${userB} left`), `closing tab B -> tab A sees '* user ${userB} left'`, JSON.stringify(logA4));
  } finally {
    await browser.close();
  }
}

run(mode === 'echo' ? echoCase : chatCase);
