"""Shared helpers of the Python interop scripts (run with Debian's /usr/bin/python3).

Every script prints one line per check ("  ok   ..." or "  FAIL ..."), then a last line
"CHECKS PASSED FAILED" that run.sh reads, and exits 0 only if nothing failed.
"""
import asyncio
import sys
import traceback

_passed = 0
_failed = 0


def ok(what):
    global _passed
    _passed += 1
    print(f"  ok   {what}", flush=True)


def fail(what, detail=None):
    global _failed
    _failed += 1
    print(f"  FAIL {what}" + ("" if detail is None else f": {detail}"), flush=True)


def check(cond, what, detail=None):
    """Records one check; `detail` may be a callable, evaluated only on failure."""
    if cond:
        ok(what)
    else:
        fail(what, detail() if callable(detail) else detail)
    return bool(cond)


def describe(data):
    """A short, printable description of a message (for failure messages)."""
    if data is None:
        return "None"
    b = data.encode() if isinstance(data, str) else bytes(data)
    kind = "text" if isinstance(data, str) else "binary"
    return f"{kind} {len(b)} bytes [{b[:24].hex()}{'...' if len(b) > 24 else ''}]"


def pattern_bytes(size, seed):
    """Deterministic pseudo-random bytes (the same on every run)."""
    x = (seed * 2654435761) & 0xFFFFFFFF or 1
    out = bytearray(size)
    for i in range(min(size, 4096)):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x & 0xFF
    block = bytes(out[:4096])
    if size > 4096:  # repeat the block, shifted by a byte each time, so offsets still differ
        parts, n = [], 0
        while n < size:
            k = (n // 4096) % 4096
            parts.append(block[k:] + block[:k])
            n += 4096
        return b"".join(parts)[:size]
    return bytes(out)


def pattern_text(size):
    """A str of exactly `size` UTF-8 bytes, with 1-, 2-, 3- and 4-byte characters."""
    unit = "websocket.hpp ünïcödé ✓ 🚀 "
    unit_bytes = len(unit.encode())
    s = unit * (size // unit_bytes)
    return s + "x" * (size - len(s.encode()))


def run(main):
    """Runs the coroutine function main(); an exception is one more failed check."""
    try:
        asyncio.run(main())
    except Exception:
        fail("unexpected exception", traceback.format_exc())
    print(f"CHECKS {_passed} {_failed}", flush=True)
    sys.exit(0 if _failed == 0 and _passed > 0 else 1)
