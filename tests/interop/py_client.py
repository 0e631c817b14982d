"""Case 2: the Python `websockets` client (Debian's python3-websockets) against echo_server.

    /usr/bin/python3 py_client.py ws://127.0.0.1:PORT
"""
import asyncio
import sys
import time

import websockets

from interop import check, describe, ok, pattern_bytes, pattern_text, run

T = 20  # seconds for any single step

base = sys.argv[1] if len(sys.argv) == 2 else sys.exit("usage: py_client.py ws://HOST:PORT")
url = base + "/py"


async def main():
    print(f"python websockets {websockets.__version__} client -> {url}", flush=True)
    ws = await asyncio.wait_for(
        websockets.connect(url, subprotocols=["superchat", "chat"], max_size=None, close_timeout=5), T)
    check(ws.subprotocol == "superchat", "offered ['superchat','chat'] -> subprotocol 'superchat'",
          f"got {ws.subprotocol!r}")
    check(ws.extensions == [], "permessage-deflate offered by websockets is declined",
          lambda: f"got {ws.extensions!r}")

    for size in (0, 125, 126, 65535, 65536, 1 << 20):
        text = pattern_text(size)
        await ws.send(text)
        got = await asyncio.wait_for(ws.recv(), T)
        check(got == text, f"text echo {size} bytes", lambda: f"got {describe(got)}")
        data = pattern_bytes(size, size + 1)
        await ws.send(data)
        got = await asyncio.wait_for(ws.recv(), T)
        check(isinstance(got, bytes) and got == data, f"binary echo {size} bytes", lambda: f"got {describe(got)}")

    # A fragmented message: websockets sends an iterable as one message in several frames.
    await ws.send(["frag-one ", "frag-two ✓ ", "frag-three"])
    got = await asyncio.wait_for(ws.recv(), T)
    check(got == "frag-one frag-two ✓ frag-three", "fragmented text (3 frames) echoed whole",
          lambda: f"got {describe(got)}")

    payload = "ping-✓".encode()
    waiter = await ws.ping(payload)
    try:
        await asyncio.wait_for(waiter, T)
        ok(f"ping {payload!r} -> pong with the same payload (pong waiter resolved)")
    except asyncio.TimeoutError:
        check(False, "ping -> pong with the same payload", "no matching pong")

    started = time.monotonic()
    await asyncio.wait_for(ws.close(code=1000, reason="done"), T)
    took = time.monotonic() - started
    check(ws.close_sent is not None and ws.close_sent.code == 1000, "client sent close 1000",
          f"close_sent={ws.close_sent}")
    check(ws.close_rcvd is not None and ws.close_rcvd.code == 1000, "server answered close 1000",
          f"close_rcvd={ws.close_rcvd}")
    check(ws.close_code == 1000, "close_code == 1000 (clean close)", f"close_code={ws.close_code}")
    check(took < 3, f"close handshake and TCP close done promptly ({took:.2f} s)",
          "the server did not close TCP after the close handshake (client waited for close_timeout)")
    try:
        await asyncio.wait_for(ws.recv(), T)
        check(False, "recv() after close raises ConnectionClosedOK", "it returned a message")
    except websockets.ConnectionClosedOK:
        ok("recv() after close raises ConnectionClosedOK (no error)")
    except Exception as e:  # noqa: BLE001 - report whatever it was
        check(False, "recv() after close raises ConnectionClosedOK", repr(e))


run(main)
