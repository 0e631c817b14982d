#!/usr/bin/env bash
# Interop suite: our examples against WebSocket peers we did not write.
#
#   bash tests/interop/run.sh RESULTS_FILE      (make check: after `make examples`)
#
# Peers, installed here when missing (apt-get as root, sudo otherwise; npm ci):
#   Node `ws` (client and server)           npm, pinned in tests/interop/package-lock.json
#   Python `websockets` (client and server) Debian python3-websockets, run by /usr/bin/python3
#   headless Chromium                       Debian chromium, driven by npm playwright-core
#
# Every server-side case runs against both build/echo_server (poll driver) and
# build/blocking/echo_server, every client-side case with both wscat builds. Each case
# prints what it checked; RESULTS_FILE gets one line per case in tests/summarize.sh's
# format, "interop/NAME PASSED FAILED [NOTE]" (1 0 or 0 1). A missing tool or binary is a
# failed case, never a skip. Exit status 1 if any case failed.
#
# Env: INTEROP_NAME (prefix of the result names, default interop; valgrind.sh sets its own),
# BUILD (directory of the example binaries, default build), CASE_TIMEOUT (seconds per
# case, default 60), INTEROP_PYTHON (default /usr/bin/python3), INTEROP_CHROMIUM (default
# /usr/bin/chromium).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 RESULTS_FILE" >&2; exit 2; }
results=$1
case $results in /*) ;; *) results=$PWD/$results ;; esac
mkdir -p "$(dirname "$results")" && : >"$results" || exit 2
cd "$root" || exit 2
build=${BUILD:-build}
case_timeout=${CASE_TIMEOUT:-60}
python=${INTEROP_PYTHON:-/usr/bin/python3}     # Debian's: it sees python3-websockets
chromium=${INTEROP_CHROMIUM:-/usr/bin/chromium}
export CHROMIUM=$chromium                        # read by browser.js
started=$SECONDS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/interop.XXXXXX") || exit 2
# The background processes running now (a server, a case's `timeout`), by pid: stopped on
# exit. `timeout` passes SIGTERM on to its whole process group (node, wscat, chromium...).
srv_pid= case_pid=
cleanup() {
    local p
    for p in $case_pid $srv_pid; do kill -TERM "$p" 2>/dev/null; done
    for p in $case_pid $srv_pid; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

## ---------------------------------------------------------------- dependencies
missing_pkgs=()
command -v node >/dev/null 2>&1 || missing_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || missing_pkgs+=(npm)
[ -x "$python" ] && "$python" -c 'import websockets' >/dev/null 2>&1 || missing_pkgs+=(python3-websockets)
[ -x "$chromium" ] || missing_pkgs+=(chromium)
if [ ${#missing_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
    echo "interop: installing ${missing_pkgs[*]}"
    # A fresh machine may have no (or stale) package lists: update only on failure.
    apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get)
    "${apt[@]}" install -y --no-install-recommends "${missing_pkgs[@]}" ||
        { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${missing_pkgs[@]}"; } ||
        echo "interop: apt-get install ${missing_pkgs[*]} FAILED; the cases needing them fail" >&2
fi

# npm ci when node_modules is missing or was installed from another lock file.
stamp=$here/node_modules/.interop-package-lock.json
npm_failed=
if command -v npm >/dev/null 2>&1 && ! cmp -s "$here/package-lock.json" "$stamp"; then
    echo "interop: npm ci (tests/interop/node_modules)"
    if (cd "$here" && npm ci --no-audit --no-fund) >"$tmp/npm.log" 2>&1; then
        cp "$here/package-lock.json" "$stamp"
    else
        npm_failed='npm ci failed'
        echo "interop: npm ci FAILED; the Node and Chromium cases fail:" >&2
        tail -n 30 "$tmp/npm.log" >&2
    fi
fi

# What is missing now, per tool; a case needing a missing one fails with that note.
missing_node= missing_python= missing_chromium=
command -v node >/dev/null 2>&1 || missing_node='node'
[ -f "$here/node_modules/ws/package.json" ] || missing_node="${missing_node:+$missing_node, }npm ws"
[ -z "$npm_failed" ] || missing_node="${missing_node:+$missing_node, }$npm_failed"
[ -x "$python" ] || missing_python="$python"
[ -z "$missing_python" ] && ! "$python" -c 'import websockets' >/dev/null 2>&1 && missing_python='python3-websockets'
[ -x "$chromium" ] || missing_chromium="$chromium"
[ -f "$here/node_modules/playwright-core/package.json" ] ||
    missing_chromium="${missing_chromium:+$missing_chromium, }npm playwright-core"
[ -z "$missing_node" ] || missing_chromium="${missing_chromium:+$missing_chromium, }$missing_node"

# The Python peers must see Debian's packages, not a pyenv build's environment.
py=(env -u PYTHONPATH -u PYTHONHOME PYTHONDONTWRITEBYTECODE=1 "$python")

## ---------------------------------------------------------------- one case
total_pass=0 total_fail=0 case_started=$SECONDS

# record NAME OK NOTE: the result line, and the PASS/FAIL line on stdout.
record() {
    local name=${INTEROP_NAME:-interop}/$1 good=$2 note=$3 took=" [$((SECONDS - case_started)) s]"
    if [ "$good" = 1 ]; then
        printf '%s 1 0%s\n' "$name" "${note:+ $note}" >>"$results"
        echo "PASS $name${note:+ $note}$took"
        total_pass=$((total_pass + 1))
    else
        printf '%s 0 1%s\n' "$name" "${note:+ $note}" >>"$results"
        echo "FAIL $name${note:+ $note}$took"
        total_fail=$((total_fail + 1))
    fi
}

srv_port= srv_log= srv_count=0
# start_server BINARY ARGS...: runs it with --port 0, waits for its "listening ... :PORT" line.
start_server() {
    local bin=$1
    shift
    srv_count=$((srv_count + 1))
    srv_log=$tmp/server.$srv_count.log
    srv_port=
    "$bin" --port 0 "$@" </dev/null >"$srv_log" 2>&1 &
    srv_pid=$!
    for _ in $(seq 100); do
        srv_port=$(sed -n 's|.*listening.*:\([0-9][0-9]*\)/\{0,1\}$|\1|p' "$srv_log" | head -n 1)
        [ -n "$srv_port" ] && return 0
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# stop_server: SIGTERM; it must still be running and exit 0 within 5 s. Sets srv_problem.
stop_server() {
    local rc
    srv_problem=
    if ! kill -0 "$srv_pid" 2>/dev/null; then
        wait "$srv_pid"
        srv_problem="(server died during the case, exit status $?)"
        srv_pid=
        return
    fi
    kill -TERM "$srv_pid"
    for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$srv_pid" 2>/dev/null; then
        kill -KILL "$srv_pid"
        wait "$srv_pid" 2>/dev/null
        srv_problem="(server did not stop within 5 s of SIGTERM)"
        srv_pid=
        return
    fi
    wait "$srv_pid"
    rc=$?
    srv_pid=
    [ "$rc" -eq 0 ] || srv_problem="(server exited with status $rc on SIGTERM)"
}

# run_case NAME NEEDS SERVER|- DESCRIPTION -- CMD...
#   NEEDS: node python chromium none. SERVER: a binary started first (--port 0; the case's
#   command gets ws://127.0.0.1:PORT, or http://127.0.0.1:PORT/ for chat, appended);
#   "-": CMD is the whole command. The case passes if CMD exits 0 with "CHECKS P 0",
#   P > 0, and the server (if any) survived and stops cleanly on SIGTERM.
run_case() {
    local name=$1 needs=$2 server=$3 what=$4 missing= log rc checks p f note= good=1
    shift 5
    log=$tmp/$name.log
    case_started=$SECONDS
    echo "---- interop/$name: $what"
    case $needs in
        node) missing=$missing_node ;;
        python) missing=$missing_python ;;
        chromium) missing=$missing_chromium ;;
    esac
    if [ -n "$missing" ]; then
        echo "  missing: $missing"
        record "$name" 0 "(missing: $missing)"
        return
    fi
    local bin
    for bin in "$server" "$@"; do
        case $bin in "$build"/*)
            if [ ! -x "$bin" ]; then
                echo "  $bin is not built (make examples)"
                record "$name" 0 "(not built: $bin)"
                return
            fi ;;
        esac
    done
    local extra=()
    if [ "$server" != - ]; then
        if [ "$(basename "$server")" = chat ]; then start_server "$server"; else start_server "$server" --host 127.0.0.1; fi || {
            echo "  $server did not print its listening line within 10 s; its output:"
            sed 's/^/    /' "$srv_log"
            kill -KILL "$srv_pid" 2>/dev/null
            wait "$srv_pid" 2>/dev/null
            srv_pid=
            record "$name" 0 "(server did not start)"
            return
        }
        echo "  server: $(head -n 1 "$srv_log")"
        if [ "$(basename "$server")" = chat ]; then extra=("http://127.0.0.1:$srv_port/"); else extra=("ws://127.0.0.1:$srv_port"); fi
    fi
    # In the background + wait, so that a signal to this script acts at once (see cleanup).
    timeout -k 5 "$case_timeout" "$@" ${extra[@]+"${extra[@]}"} </dev/null >"$log" 2>&1 &
    case_pid=$!
    wait "$case_pid"
    rc=$?
    case_pid=
    cat "$log"
    checks=$(sed -n 's/^CHECKS \([0-9][0-9]*\) \([0-9][0-9]*\)$/\1 \2/p' "$log" | tail -n 1)
    read -r p f <<<"${checks:-0 0}"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        good=0 note="(timed out after ${case_timeout}s)"
    elif [ -z "$checks" ]; then
        good=0 note="(no CHECKS line, exit status $rc)"
    elif [ "$f" -gt 0 ]; then
        good=0 note="($f of $((p + f)) checks failed)"
    elif [ "$rc" -ne 0 ] || [ "$p" -eq 0 ]; then
        good=0 note="(exit status $rc, $p checks passed)"
    else
        note="($p checks)"
    fi
    if [ "$server" != - ]; then
        stop_server
        if [ -n "$srv_problem" ]; then
            echo "  $srv_problem"
            good=0 note="${note%)}; ${srv_problem#(}"
        fi
        if [ "$good" = 0 ]; then
            echo "  server output ($server):"
            sed 's/^/    /' "$srv_log"
        fi
    fi
    record "$name" "$good" "$note"
}

## ---------------------------------------------------------------- the cases
for driver in poll blocking; do
    if [ $driver = poll ]; then dir=$build; else dir=$build/blocking; fi
    run_case "node-client-vs-echo_server-$driver" node "$dir/echo_server" \
        "Node ws client -> $dir/echo_server: echo 0..16 MiB, subprotocols, ping, close 4000, bad frames" \
        -- node "$here/node_client.js"
    run_case "python-client-vs-echo_server-$driver" python "$dir/echo_server" \
        "Python websockets client -> $dir/echo_server: echo 0..1 MiB, subprotocol, ping, clean close" \
        -- "${py[@]}" "$here/py_client.py"
done
for driver in poll blocking; do
    if [ $driver = poll ]; then dir=$build; else dir=$build/blocking; fi
    run_case "wscat-$driver-vs-node-server" node - \
        "$dir/wscat -> Node ws server: stdin lines echoed, --echo mode, close 1000" \
        -- node "$here/node_server.js" "$dir/wscat"
    run_case "wscat-$driver-vs-python-server" python - \
        "$dir/wscat -> Python websockets server: stdin lines echoed, --echo mode, close 1000" \
        -- "${py[@]}" "$here/py_server.py" "$dir/wscat"
done
for driver in poll blocking; do
    if [ $driver = poll ]; then dir=$build; else dir=$build/blocking; fi
    run_case "chromium-vs-echo_server-$driver" chromium "$dir/echo_server" \
        "Chromium page on http://127.0.0.1 -> $dir/echo_server: subprotocol, UTF-8/1 MiB text, 70000-byte binary, clean close" \
        -- node "$here/browser.js" echo
    run_case "chromium-vs-chat-$driver" chromium "$dir/chat" \
        "two Chromium tabs of $dir/chat's own page: join, type + send, broadcast, leave" \
        -- node "$here/browser.js" chat
done

echo "interop: $total_pass passed, $total_fail failed ($((SECONDS - started)) s)"
[ "$total_fail" -eq 0 ]
