"""Case 4: a Python `websockets` server (Debian's python3-websockets) talking to our wscat.

    /usr/bin/python3 py_server.py WSCAT_BINARY

(a) lines: wscat --protocol chat, a stdin line in, its echo awaited on stdout, ...; then EOF:
    wscat's stdout must be the same lines, it must exit 0, the server must see close 1000.
(b) the same lines all at once: the server must receive them all, then close 1000.
(c) echo:  wscat --echo; the server sends messages on connect, checks each comes back
    (same type and bytes), then closes with 1000; wscat must exit 0.
"""
import asyncio
import sys

import websockets

from interop import check, describe, ok, pattern_bytes, run

T = 20
wscat = sys.argv[1] if len(sys.argv) == 2 else sys.exit("usage: py_server.py WSCAT_BINARY")


async def serve(handler):
    server = await websockets.serve(handler, "127.0.0.1", 0, subprotocols=["chat"], max_size=None)
    return server, server.sockets[0].getsockname()[1]


async def start_wscat(args):
    return await asyncio.create_subprocess_exec(
        wscat, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def finish_wscat(proc, data=None):
    """Writes data (if any), closes stdin; returns (exit status, rest of stdout, stderr)."""
    if data is None:  # communicate(None) would leave stdin open
        proc.stdin.close()
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), T)
    except asyncio.TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        err += b" (killed: did not exit within %d s)" % T
    return proc.returncode, out, err.decode(errors="replace").strip()


LINES = ["hello from wscat", "ünïcödé ✓ 🚀", "", "x" * 70000, "last line"]


async def lines_case(mode):
    """(a) interactive: a line on stdin, its echo awaited on stdout, and so on; then EOF.
    (b) bulk: all lines at once, then EOF at once. wscat then sends its close right behind
        the lines, and websockets refuses to send once it has the peer's close (legal: RFC
        6455 5.5.1 lets an endpoint stop sending data), so here the server only records what
        arrives, and wscat must print nothing."""
    echo = mode == "interactive"
    seen = {"received": [], "protocol": None}
    closed = asyncio.get_running_loop().create_future()

    async def handler(ws):
        seen["protocol"] = ws.subprotocol
        try:
            async for msg in ws:
                seen["received"].append(msg)
                if echo:
                    await ws.send(msg)
        except websockets.ConnectionClosed as e:
            seen["error"] = repr(e)
        if not closed.done():
            closed.set_result(ws.close_code)

    server, port = await serve(handler)
    url = f"ws://127.0.0.1:{port}/lines"
    want = ("\n".join(LINES) + "\n").encode()
    proc = await start_wscat([url, "--protocol", "chat"])
    if echo:
        print(f"(a) {wscat} {url} --protocol chat: a line on stdin, its echo awaited on stdout, "
              f"x{len(LINES)}, then EOF", flush=True)
        got = b""
        try:
            for line in LINES:
                data = (line + "\n").encode()
                proc.stdin.write(data)
                await proc.stdin.drain()
                got += await asyncio.wait_for(proc.stdout.readexactly(len(data)), 5)
            ok("each line is echoed back on stdout before the next is typed")
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError) as e:
            check(False, "each line is echoed back on stdout before the next is typed",
                  f"{e!r}; stdout so far {describe(got)}")
        rc, out, err = await finish_wscat(proc)
        out = got + out
    else:
        print(f"(b) printf lines | {wscat} {url} --protocol chat: all {len(LINES)} lines at once, "
              "then EOF; the server only records them", flush=True)
        rc, out, err = await finish_wscat(proc, want)
        want = b""
    check(rc == 0, "wscat exits 0", f"exit {rc}, stderr: {err}")
    check(seen["protocol"] == "chat", "the server negotiated subprotocol 'chat'", f"got {seen['protocol']!r}")
    got = seen["received"]
    check(got == LINES, f"the server received the {len(LINES)} lines (UTF-8, empty, 70000 bytes) as text messages",
          lambda: [describe(m) for m in got])
    check(out == want, "wscat's stdout equals the input lines" if echo else "wscat's stdout is empty (nothing echoed)",
          lambda: f"stdout {describe(out)}")
    try:
        code = await asyncio.wait_for(closed, 5)
    except asyncio.TimeoutError:
        code = "no close within 5 s"
    check(code == 1000, "the server saw close code 1000", f"got {code} {seen.get('error', '')}")
    server.close()
    await server.wait_closed()


async def echo_case():
    messages = ["first ✓ 🚀", "", b"", pattern_bytes(300, 3), "y" * 65536, pattern_bytes(1 << 20, 4), "last"]
    result = asyncio.get_running_loop().create_future()

    async def handler(ws):
        got, early = [], None
        try:
            for m in messages:
                await ws.send(m)
            for _ in messages:
                got.append(await asyncio.wait_for(ws.recv(), T))
            await ws.close(1000, "enough")
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            early = repr(e)
        result.set_result((got, early, ws.close_rcvd.code if ws.close_rcvd else None))

    server, port = await serve(handler)
    url = f"ws://127.0.0.1:{port}/echo"
    print(f"(c) {wscat} --echo {url}: the server sends {len(messages)} messages, then closes with 1000", flush=True)
    rc, out, err = await finish_wscat(await start_wscat(["--echo", url]), b"")
    try:
        got, early, reply = await asyncio.wait_for(result, 5)
    except asyncio.TimeoutError:
        got, early, reply = [], "handler did not finish", None
    check(early is None, "the connection stayed open until all messages came back", early)
    for i, m in enumerate(messages):
        g = got[i] if i < len(got) else None
        kind = "text" if isinstance(m, str) else "binary"
        size = len(m.encode() if isinstance(m, str) else m)
        check(type(g) is type(m) and g == m, f"message {i} ({kind}, {size} bytes) echoed back",
              lambda: f"got {describe(g)}")
    check(rc == 0, "wscat --echo exits 0 after the server closes with 1000", f"exit {rc}, stderr: {err}")
    check(reply == 1000, "wscat answered the close handshake with 1000", f"got {reply}")
    server.close()
    await server.wait_closed()


async def main():
    print(f"python websockets {websockets.__version__} server <- {wscat}", flush=True)
    await lines_case("interactive")
    await lines_case("bulk")
    await echo_case()


run(main)
