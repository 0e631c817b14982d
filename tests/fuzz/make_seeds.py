#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ (run once; the output is committed)."""
import os, struct

here = os.path.dirname(os.path.abspath(__file__))

def write(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def frame(opcode, payload, fin=True, mask=None, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + payload

request = (b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
           b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
           b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
           b"Sec-WebSocket-Version: 13\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n")
write("http", "request", b"\x00" + request)
write("http", "request-lf", b"\x00" + request.replace(b"\r\n", b"\n"))
write("http", "request-post", b"\x00POST / HTTP/1.0\r\nHost: x\r\n\r\n")
write("http", "response", b"\x01" + response)
write("http", "response-404", b"\x01HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
write("http", "url", b"\x02ws://[::1]:9001/p?q=1")

key = b"\x37\xfa\x21\x3d"
write("frame", "small-masked", frame(1, b"Hello", mask=key))
write("frame", "len16", frame(2, b"x" * 300, mask=key)[:20])
write("frame", "len64", frame(2, b"x" * 70000)[:20])
write("frame", "close", frame(8, b"\x03\xe8bye"))

masked = lambda op, p, fin=True: frame(op, p, fin=fin, mask=key)
server_in = (masked(1, b"hello") + masked(1, b"frag", False) + masked(9, b"ping") + masked(0, b"ment")
             + masked(2, bytes(range(256))) + masked(8, b"\x03\xe8done"))
write("connection", "server-session", b"\x00" + server_in)
write("connection", "server-streaming", b"\x02" + server_in)
write("connection", "server-bad-utf8", b"\x00" + masked(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80"))
write("connection", "server-rsv", b"\x00" + frame(1, b"x", mask=key, rsv=4))
client_in = frame(1, "ünïcödé ✓".encode()) + frame(10, b"pong") + frame(1, b"a", fin=False) + frame(0, b"b") + frame(8, b"")
write("connection", "client-session", b"\x01" + client_in)
write("connection", "client-masked", b"\x01" + masked(1, b"nope"))

write("utf8", "ascii", b"\x05plain ascii text that is long enough for the fast path")
write("utf8", "mixed", b"\x07" + "κόσμε ✓ 🚀 é".encode())
write("utf8", "surrogate", b"\x03ab\xed\xa0\x80")
write("utf8", "overlong", b"\x02\xc0\xaf\xe0\x80\xaf")
write("utf8", "max", b"\x01\xf4\x8f\xbf\xbf\xf4\x90\x80\x80")
