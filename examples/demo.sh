#!/usr/bin/env bash
# The main job: start echo_server, let wscat talk to it, show the conversation, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-9001}
build/echo_server --port "$port" --host 127.0.0.1 > build/demo-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening build/demo-server.log 2>/dev/null && break; sleep 0.05; done
echo "server: $(cat build/demo-server.log)"
lines=("hello, websocket.hpp" "RFC 6455 in one header" "ünïcödé ✓ 🚀" "bye")
echo "client -> ws://127.0.0.1:$port/demo (subprotocol chat):"
for l in "${lines[@]}"; do echo "  sent:     $l"; done
printf '%s\n' "${lines[@]}" | build/wscat "ws://127.0.0.1:$port/demo" --protocol chat |
  while IFS= read -r reply; do echo "  received: $reply"; done
echo "client closed with 1000 after the close handshake; stopping the server (SIGTERM -> close 1001 to all)"
kill -TERM "$server"
wait "$server" && echo "server exited cleanly"
trap - EXIT
