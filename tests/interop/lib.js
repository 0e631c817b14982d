// Shared helpers of the Node interop scripts: check bookkeeping and small utilities.
//
// Every script prints one line per check ("  ok   ..." or "  FAIL ..."), then a last line
// "CHECKS PASSED FAILED" that run.sh reads, and exits 0 only if nothing failed.
'use strict';

let passed = 0;
let failed = 0;

function ok(what) {
  passed++;
  console.log(`  ok   ${what}`);
}

function fail(what, detail) {
  failed++;
  console.log(`  FAIL ${what}${detail === undefined ? '' : `: ${detail}`}`);
}

// check(cond, what, detail): records one check; returns cond.
function check(cond, what, detail) {
  if (cond) ok(what);
  else fail(what, typeof detail === 'function' ? detail() : detail);
  return !!cond;
}

// Runs main(); any exception is one more failed check. Then prints the tally and exits.
function run(main) {
  const done = () => {
    console.log(`CHECKS ${passed} ${failed}`);
    process.exit(failed === 0 && passed > 0 ? 0 : 1);
  };
  Promise.resolve()
    .then(main)
    .catch((e) => fail('unexpected exception', e && e.stack ? e.stack : String(e)))
    .then(done);
}

// Rejects after ms with a message naming what was awaited.
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A short, printable description of some bytes (for failure messages).
function describe(buf) {
  if (buf === undefined || buf === null) return String(buf);
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf);
  const head = b.subarray(0, 24).toString('hex');
  return `${b.length} bytes [${head}${b.length > 24 ? '...' : ''}]`;
}

// Where two buffers first differ, for failure messages.
function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `first difference at byte ${i}`;
  return a.length === b.length ? 'equal' : `lengths ${a.length} vs ${b.length}`;
}

// Deterministic pseudo-random bytes (the same on every run, so failures reproduce).
function patternBytes(size, seed) {
  const b = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

// A string of exactly `size` UTF-8 bytes, with 1-, 2-, 3- and 4-byte characters.
function patternText(size) {
  const unit = 'websocket.hpp ünïcödé ✓ 🚀 ';  // 1+2+3+4-byte characters
  const unitBytes = Buffer.byteLength(unit);
  let s = unit.repeat(Math.floor(size / unitBytes));
  s += 'x'.repeat(size - Buffer.byteLength(s));
  return s;
}

module.exports = { ok, fail, check, run, within, describe, firstDifference, patternBytes, patternText };
