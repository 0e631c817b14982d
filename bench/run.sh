#!/bin/bash
# bench/run.sh: the echo benchmark, websocket.hpp's echo_server side by side with raw TCP,
# Boost.Beast, websocketpp, libwebsockets and Node ws (a benchmark, never a test).
#
#   bash bench/run.sh              # full: 3 interleaved repetitions, 5 s per run (~15 min)
#   BENCH_QUICK=1 bash bench/run.sh   # smoke check: 1 repetition, 1 s per run (~2 min)
#   make bench-peers               # the same as the first line; `make bench` runs bench_core too
#
# Knobs (environment): BENCH_SECONDS (5), BENCH_WARMUP (1), BENCH_REPS (3),
#   BENCH_PEERS ("raw echo_poll echo_blocking beast websocketpp lws node"),
#   BENCH_SCENARIOS ("a b c d e f"), BENCH_IDLE_CONNS (1000), BENCH_PORT (first port, 19300),
#   BENCH_SERVER_CPU (1), BENCH_GEN_CPU (0): the cores for taskset.
#
# Installs what is missing (Debian packages, `npm ci` for the Node peer), builds everything
# with -O2 into build/bench/, then for each repetition and each peer (the peer order rotates
# from one repetition to the next): starts the server pinned to one core, probes the resident
# memory of BENCH_IDLE_CONNS idle connections on the fresh server, runs every scenario with
# bench/loadgen pinned to the other core, stops the server. Writes build/bench/runs.jsonl (one
# line per run), build/bench/results.md (medians) and build/bench/results.png (gnuplot).
#
# Scenarios (C connections x S bytes, D messages in flight per connection):
#   a 100 x 32 B, D 1   b 100 x 32 B, D 16   c 1 x 1 MiB, D 2   d 1000 x 512 B, D 1
#   e = b, text frames (UTF-8 validated)     f = c, text frames
# The raw TCP row runs a-d (e and f are the same bytes as b and c).
set -u
cd "$(dirname "$0")/.."
B=build/bench
mkdir -p "$B"

if [ -n "${BENCH_QUICK:-}" ]; then
  : "${BENCH_SECONDS:=1}" "${BENCH_WARMUP:=0.5}" "${BENCH_REPS:=1}"
fi
SECS=${BENCH_SECONDS:-5}
WARMUP=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
PEERS=${BENCH_PEERS:-"raw echo_poll echo_blocking beast websocketpp lws node"}
SCENARIOS=${BENCH_SCENARIOS:-"a b c d e f"}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
PORT=${BENCH_PORT:-19300}
SCPU=${BENCH_SERVER_CPU:-1}
GCPU=${BENCH_GEN_CPU:-0}

log() { echo "bench: $*" >&2; }

# ---- dependencies ------------------------------------------------------------------------
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
missing=
for p in g++ pkg-config libboost-dev libwebsocketpp-dev libwebsockets-dev gnuplot-nox python3; do
  case $p in
    g++) command -v g++ >/dev/null && continue ;;
    python3) command -v python3 >/dev/null && continue ;;
    gnuplot-nox) command -v gnuplot >/dev/null && continue ;;
  esac
  have_pkg "$p" || missing="$missing $p"
done
command -v node >/dev/null || missing="$missing nodejs"
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
  log "installing:$missing"
  if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $missing ||
    { $sudo apt-get -o DPkg::Lock::Timeout=600 update &&
      $sudo apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends $missing; } || exit 1
fi

# ---- build -------------------------------------------------------------------------------
CXX=${CXX:-g++}
# build OUT SRC FLAGS...: compile when OUT is missing or older than SRC or websocket.hpp.
build() {
  local out=$1 src=$2
  shift 2
  if [ -x "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt websocket.hpp ]; then return 0; fi
  log "building $out"
  "$CXX" -std=c++17 -O2 "$src" "$@" -o "$out.tmp" && mv "$out.tmp" "$out"  # libraries after the source
}
W="-Wall -Wextra"
build $B/loadgen bench/loadgen.cpp $W &
build $B/raw_echo bench/raw_echo.cpp $W &
wait
build $B/echo_server_poll examples/echo_server.cpp $W -pthread &
build $B/echo_server_blocking examples/echo_server.cpp $W -pthread -DWEBSOCKET_USE_BLOCKING &
wait
# The peers' own headers warn a lot under -Wextra: their warnings are not ours.
build $B/beast_echo bench/peers/beast_echo.cpp -w -pthread &
build $B/websocketpp_echo bench/peers/websocketpp_echo.cpp -w -pthread &
wait
# shellcheck disable=SC2046
build $B/lws_echo bench/peers/lws_echo.cpp $W $(pkg-config --cflags libwebsockets) $(pkg-config --libs libwebsockets) || exit 1
for b in loadgen raw_echo echo_server_poll echo_server_blocking beast_echo websocketpp_echo lws_echo; do
  [ -x $B/$b ] || { log "FAILED to build $B/$b"; exit 1; }
done
# The header the echo_server binaries were built from (others may be editing it meanwhile).
hdr="websocket.hpp $(sha1sum websocket.hpp | cut -c1-10) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- websocket.hpp 2>/dev/null || echo ', modified in the work tree'))"
mkdir -p $B/node
cp bench/peers/package.json bench/peers/package-lock.json bench/peers/ws_echo.js $B/node/
if ! (cd $B/node && node -e "require('ws'); require('bufferutil')" 2>/dev/null); then
  log "npm ci (ws, bufferutil)"
  (cd $B/node && npm ci --no-audit --no-fund >/dev/null) || { log "npm ci failed"; exit 1; }
fi

# ---- run -----------------------------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null  # 1000 connections need more than 1024 descriptors

server_cmd() {  # server_cmd PEER PORT
  case $1 in
    raw) echo "$B/raw_echo --port $2" ;;
    echo_poll) echo "$B/echo_server_poll --port $2 --host 127.0.0.1" ;;
    echo_blocking) echo "$B/echo_server_blocking --port $2 --host 127.0.0.1" ;;
    beast) echo "$B/beast_echo --port $2" ;;
    websocketpp) echo "$B/websocketpp_echo --port $2" ;;
    lws) echo "$B/lws_echo --port $2" ;;
    node) echo "node $B/node/ws_echo.js --port $2" ;;
    *) log "unknown peer $1"; return 1 ;;
  esac
}
scenario_args() {
  case $1 in
    a) echo "--conns 100 --size 32 --depth 1" ;;
    b) echo "--conns 100 --size 32 --depth 16" ;;
    c) echo "--conns 1 --size 1048576 --depth 2" ;;
    d) echo "--conns 1000 --size 512 --depth 1" ;;
    e) echo "--conns 100 --size 32 --depth 16 --text" ;;
    f) echo "--conns 1 --size 1048576 --depth 2 --text" ;;
  esac
}

SERVER_PID=
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
}
trap 'stop_server; exit 130' INT TERM

RUNS=$B/runs.jsonl
: > "$RUNS"
# record REP PEER SCENARIO RC JSON: one line of runs.jsonl.
record() {
  local json=$5
  [ -n "$json" ] || json='{"errors":1,"missing":true}'
  echo "{\"rep\":$1,\"peer\":\"$2\",\"scenario\":\"$3\",\"rc\":$4,${json#\{}" >> "$RUNS"
}

start_date=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
read -ra peer_list <<< "$PEERS"
n=${#peer_list[@]}
port=$PORT
log "$REPS repetitions x ${n} peers, scenarios $SCENARIOS, ${SECS} s per run (+${WARMUP} s warm-up)"
for rep in $(seq 1 "$REPS"); do
  for k in $(seq 0 $((n - 1))); do
    peer=${peer_list[$(((k + rep - 1) % n))]}
    # Start the server (a fresh port each time); wait up to 20 s for its "listening" line,
    # and try once more on another port if it does not come (a busy machine starts slowly).
    started=
    for attempt in 1 2; do
      port=$((port + 1))
      cmd=$(server_cmd "$peer" "$port") || exit 1
      # shellcheck disable=SC2086
      taskset -c "$SCPU" $cmd > "$B/server-$peer.log" 2>&1 &
      SERVER_PID=$!
      for _ in $(seq 400); do
        grep -q listening "$B/server-$peer.log" && { started=1; break; }
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
      done
      [ -n "$started" ] && break
      log "rep $rep: $peer did not start on port $port (attempt $attempt): $(head -c 300 "$B/server-$peer.log")"
      stop_server
    done
    if [ -z "$started" ]; then
      echo "{\"rep\":$rep,\"peer\":\"$peer\",\"scenario\":\"start\",\"rc\":1,\"errors\":1}" >> "$RUNS"
      continue
    fi
    raw=; [ "$peer" = raw ] && raw=--raw
    # Idle memory first, on the fresh server (later scenarios leave freed heap behind).
    out=$(taskset -c "$GCPU" $B/loadgen $raw --idle --port "$port" --conns "$IDLE_CONNS" --seconds 0.5 \
          --stat-pid "$SERVER_PID" 2> "$B/loadgen.err"); rc=$?
    record "$rep" "$peer" idle $rc "$out"
    [ $rc -eq 0 ] || { log "rep $rep $peer idle: FAILED (rc $rc)"; cat "$B/loadgen.err" >&2; }
    sleep 0.3
    for sc in $SCENARIOS; do
      if [ "$peer" = raw ] && { [ "$sc" = e ] || [ "$sc" = f ]; }; then continue; fi
      # shellcheck disable=SC2046
      out=$(taskset -c "$GCPU" $B/loadgen $raw --port "$port" $(scenario_args "$sc") --seconds "$SECS" \
            --warmup "$WARMUP" --stat-pid "$SERVER_PID" 2> "$B/loadgen.err"); rc=$?
      record "$rep" "$peer" "$sc" $rc "$out"
      if [ $rc -ne 0 ]; then log "rep $rep $peer $sc: FAILED (rc $rc)"; cat "$B/loadgen.err" >&2; fi
      log "rep $rep $peer $sc: $(echo "$out" | grep -o '"msgs_per_s":[0-9.]*\|"server_cpu_us_per_msg":[-0-9.]*' | tr '\n' ' ')"
    done
    stop_server
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report --------------------------------------------------------------------------------
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
versions="Boost $(dpkg-query -W -f='${Version}' libboost-dev 2>/dev/null | cut -d. -f1-2 | sed 's/^1\./1./'), \
websocketpp $(dpkg-query -W -f='${Version}' libwebsocketpp-dev 2>/dev/null | cut -d- -f1), \
libwebsockets $(dpkg-query -W -f='${Version}' libwebsockets-dev 2>/dev/null | cut -d- -f1), \
Node $(node --version 2>/dev/null) with ws $(node -p "require('./$B/node/node_modules/ws/package.json').version" 2>/dev/null) \
and bufferutil $(node -p "require('./$B/node/node_modules/bufferutil/package.json').version" 2>/dev/null)"
python3 bench/report.py --runs "$RUNS" --out "$B/results.md" --plot "$B/results" \
  --machine "$cpu_model, $(nproc) cores, $(uname -sr)" --date "$start_date" \
  --command "BENCH_SECONDS=$SECS BENCH_REPS=$REPS make bench-peers" \
  --load "load average $load_start at the start, $load_end at the end" --versions "$versions" --header "$hdr" || exit 1
if command -v gnuplot >/dev/null; then
  gnuplot "$B/results.gp" || log "gnuplot failed"
fi
log "wrote $B/results.md, $B/results.png, $B/runs.jsonl"
cat "$B/results.md"
# Any failed run makes the exit status 1 (the table marks it too).
! grep -q '"rc":[1-9]' "$RUNS"
