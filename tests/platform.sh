#!/usr/bin/env bash
# Cross-platform runs: Windows (MinGW-w64) binaries under Wine, 32-bit ARM and big-endian s390x
# binaries under qemu-user. Used by `make test-windows`, `make test-arm`, `make test-be` and the
# meson cross file; result lines go where tests/summarize.sh -r reads them.
#
#   tests/platform.sh run PLATFORM PROGRAM [ARG...]   run one program under the emulator
#   tests/platform.sh suite PLATFORM PREFIX RESULTS BINARY...
#                       run doctest binaries through summarize.sh (a missing one = not built)
#   tests/platform.sh loopback PLATFORM DIR RESULTS   DIR/echo_server and DIR/wscat (built for
#                       PLATFORM) against the native build/ ones over 127.0.0.1, both ways
#   tests/platform.sh meson PLATFORM BUILDDIR RESULTS meson cross build (tests/cross/PLATFORM.ini)
#                       and meson test, each test under the emulator, counted by summarize.sh
#                       (env MESON_TESTS="test_a test_b": only those, built and run)
#   tests/platform.sh wrap PREFIX RESULTS COMMAND...  meson test --wrapper: summarize COMMAND
#   tests/platform.sh stop PLATFORM                   end the Wine server of our prefix
#
# PLATFORM: windows (wine64), arm (qemu-arm), be (qemu-s390x). Wine runs in a scratch prefix,
# $BUILD/wine (WINEPREFIX, HOME), created on first use (~10 s), with no display.
# Each run sets WS_EXPECT_SIZE_T_BITS / WS_EXPECT_BYTE_ORDER for tests/test_platform.cpp.
# Env: BUILD (default build), WINE (default: wine64 on PATH, else /usr/lib/wine/wine64, else wine).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
self=$root/tests/platform.sh
export BUILD=$build  # absolute, for the commands this script starts (meson's exe_wrapper)

# emulator PLATFORM: sets $emu (command prefix array) and the environment for it.
emulator() {
    case $1 in
    windows)
        local wine=${WINE:-}
        if [ -z "$wine" ]; then
            wine=$(command -v wine64 || true)
            [ -n "$wine" ] || { [ -x /usr/lib/wine/wine64 ] && wine=/usr/lib/wine/wine64; }
            [ -n "$wine" ] || wine=wine
        fi
        export WINEPREFIX=${WINEPREFIX:-$build/wine/prefix} WINEARCH=win64
        export HOME=$build/wine/home WINEDEBUG=-all
        export WINEDLLOVERRIDES='winemenubuilder.exe=d;mscoree,mshtml=;winedbg.exe=d'
        unset DISPLAY WAYLAND_DISPLAY
        mkdir -p "$HOME" "$(dirname "$WINEPREFIX")"
        emu=("$wine")
        export WS_EXPECT_SIZE_T_BITS=64 WS_EXPECT_BYTE_ORDER=little ;;
    arm)
        emu=(qemu-arm -L /usr/arm-linux-gnueabihf)
        export WS_EXPECT_SIZE_T_BITS=32 WS_EXPECT_BYTE_ORDER=little ;;
    be)
        emu=(qemu-s390x -L /usr/s390x-linux-gnu)
        export WS_EXPECT_SIZE_T_BITS=64 WS_EXPECT_BYTE_ORDER=big ;;
    *) echo "platform.sh: unknown platform '$1' (windows arm be)" >&2; exit 2 ;;
    esac
}

# A new Wine prefix takes a while to create: do it once, outside any test's timeout.
wine_ready() {
    [ -f "$WINEPREFIX/system.reg" ] && return 0
    echo "platform.sh: creating the Wine prefix $WINEPREFIX"
    "${emu[@]}" wineboot --init </dev/null >/dev/null 2>&1
    "$(wineserver_cmd)" -w 2>/dev/null || true
}

wineserver_cmd() { command -v wineserver || echo /usr/lib/wine/wineserver; }

case ${1:-} in
run)
    platform=$2; shift 2
    emulator "$platform"
    exec "${emu[@]}" "$@"
    ;;
suite)
    platform=$2 prefix=$3 results=$4; shift 4
    emulator "$platform"
    [ "$platform" = windows ] && wine_ready
    tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
    # summarize.sh runs each binary itself: give it a script per test, named like the test,
    # that runs the real binary under the emulator. No binary: no script, "not built".
    # Emulator limitations (tests/cross/exclusions.txt) become doctest exclusions, printed.
    wrappers=()
    for bin in "$@"; do
        name=$(basename "$bin" .exe)
        exclude=
        while IFS='|' read -r x_variant x_suite x_case x_reason; do
            [ "$x_variant/" = "$prefix" ] && [ "$x_suite" = "$name" ] || continue
            echo "platform.sh: EXCLUDED on $prefix$name: \"$x_case\": $x_reason"
            exclude=${exclude:+$exclude,}$x_case
        done < <(grep -v '^#' "$root/tests/cross/exclusions.txt" 2>/dev/null | grep .)
        if [ -x "$bin" ]; then
            printf '#!/bin/sh\nexec %s "%s" %s"$@"\n' "$(printf '%q ' "${emu[@]}")" \
                "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" \
                "${exclude:+$(printf '%q ' "--test-case-exclude=$exclude")}" >"$tmp/$name"
            chmod +x "$tmp/$name"
        fi
        wrappers+=("$tmp/$name")
    done
    bash "$root/tests/summarize.sh" -p "$prefix" -o "$results" "${wrappers[@]}"
    ;;
wrap)
    prefix=$2 results=$3; shift 3
    tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
    name=$(basename "${!#}" .exe)
    printf '#!/bin/sh\nexec %s\n' "$(printf '%q ' "$@")" >"$tmp/$name"
    chmod +x "$tmp/$name"
    bash "$root/tests/summarize.sh" -p "$prefix" -o "$results" "$tmp/$name"
    ;;
loopback)
    # A server built for PLATFORM serves the native wscat; the native echo_server serves a
    # wscat built for PLATFORM. Each direction sends text with multi-byte UTF-8 and lines long
    # enough for the 16-bit and 64-bit length forms, and expects every line echoed back.
    platform=$2 dir=$3 results=$4
    emulator "$platform"
    [ "$platform" = windows ] && wine_ready
    ext=; [ "$platform" = windows ] && ext=.exe
    name=$(basename "$dir")
    tmp=$(mktemp -d)
    srv=
    cleanup() { [ -z "$srv" ] || kill "$srv" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
    trap cleanup EXIT
    {
        echo "hello from $(uname -m) to $platform"
        echo "ünïcödé ✓ 🚀"
        head -c 300 /dev/zero | tr '\0' a; echo          # 16-bit length
        head -c 70000 /dev/zero | tr '\0' b; echo        # 64-bit length
        echo "bye"
    } >"$tmp/in"
    # case NAME SERVER_CMD... -- CLIENT_CMD...: one result line.
    one_case() {
        local case_name=$1; shift
        local server=() client=()
        while [ "$1" != -- ]; do server+=("$1"); shift; done; shift
        client=("$@")
        local ok=1 port
        port=$((20000 + RANDOM % 20000))
        : >"$tmp/srv.log"
        "${server[@]}" --port "$port" --host 127.0.0.1 >"$tmp/srv.log" 2>&1 </dev/null &
        srv=$!
        for _ in $(seq 300); do grep -q listening "$tmp/srv.log" && break; kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
        if ! grep -q listening "$tmp/srv.log"; then
            echo "loopback: $case_name: the server did not start:"; cat "$tmp/srv.log"; ok=0
        else
            # End wscat's input only once every echo is back: wscat closes at end of input,
            # and echoes still in flight then would race its close. A Windows wscat.exe
            # writes its stdout in text mode (CRLF): compare without the CRs.
            local want rc
            want=$(wc -l <"$tmp/in")
            : >"$tmp/out"
            { cat "$tmp/in"
              for _ in $(seq 300); do [ "$(wc -l <"$tmp/out")" -ge "$want" ] && break; sleep 0.1; done
            } | timeout 60 "${client[@]}" "ws://127.0.0.1:$port/loopback" --protocol chat >"$tmp/out" 2>"$tmp/err"
            rc=${PIPESTATUS[1]}
            tr -d '\r' <"$tmp/out" >"$tmp/out.lf"
            if [ "$rc" -ne 0 ] || ! cmp -s "$tmp/in" "$tmp/out.lf"; then
                echo "loopback: $case_name: client exit status $rc, echo $(cmp -s "$tmp/in" "$tmp/out.lf" && echo matches || echo differs)"
                head -c 300 "$tmp/err"; ok=0
            fi
        fi
        kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; srv=
        if [ $ok -eq 1 ]; then
            echo "PASS loopback $name/$case_name ($(wc -l <"$tmp/in") lines, $(wc -c <"$tmp/in") bytes echoed)"
            echo "$name/loopback-$case_name 1 0" >>"$results"
        else
            echo "FAIL loopback $name/$case_name"
            echo "$name/loopback-$case_name 0 1" >>"$results"
        fi
    }
    for f in "$dir/echo_server$ext" "$dir/wscat$ext" "$build/echo_server" "$build/wscat"; do
        [ -x "$f" ] && continue
        echo "loopback: $f: not built"
        echo "$name/loopback 0 1 (not built: $f)" >>"$results"
        exit 1
    done
    one_case "$platform-server-linux-client" "${emu[@]}" "$dir/echo_server$ext" -- "$build/wscat"
    one_case "linux-server-$platform-client" "$build/echo_server" -- "${emu[@]}" "$dir/wscat$ext"
    ;;
meson)
    # meson setup with tests/cross/PLATFORM.ini, compile, meson test: the exe_wrapper runs
    # each test under the emulator, `wrap` records its doctest counts.
    platform=$2 builddir=$3 results=$4
    case $builddir in /*) ;; *) builddir=$PWD/$builddir ;; esac
    case $results in /*) ;; *) results=$PWD/$results ;; esac
    emulator "$platform"
    [ "$platform" = windows ] && wine_ready
    record() { echo "meson-$platform/$1 0 1 $2" >>"$results"; echo "FAIL meson-$platform/$1 $2"; }
    rm -rf "$builddir" "$builddir-include" && mkdir -p "$builddir-include"
    ln -sfn /usr/include/doctest "$builddir-include/doctest"
    echo "==== meson-$platform: setup + test with tests/cross/$platform.ini"
    # Meson 1.0 does not expand @DIRNAME@ in exe_wrapper: do it here.
    sed "s|@DIRNAME@|$root/tests/cross|g" "$root/tests/cross/$platform.ini" >"$builddir-include/cross.ini"
    meson setup --cross-file "$builddir-include/cross.ini" -Dcpp_args="-I$builddir-include" \
        "$builddir" "$root" || { record setup "(meson setup failed)"; exit 1; }
    # MESON_TESTS: build and run only these tests (make check's portability step), else all.
    read -ra want <<<"${MESON_TESTS:-}"
    only=("${want[@]}")
    if ! meson compile -C "$builddir" --ninja-args=-k0 "${want[@]}"; then
        only=() list=("${want[@]}")
        [ ${#list[@]} -gt 0 ] || mapfile -t list < <(meson test -C "$builddir" --no-rebuild --list 2>/dev/null)
        for t in "${list[@]}"; do
            if [ -f "$builddir/$t.exe" ] || [ -f "$builddir/$t" ]; then only+=("$t"); else record "$t" "(not built)"; fi
        done
        [ ${#only[@]} -gt 0 ] || exit 1
    fi
    meson test -C "$builddir" --no-rebuild --print-errorlogs \
        --wrapper "bash $self wrap meson-$platform/ $results" ${only[@]+"${only[@]}"}
    rc=$?
    if [ "$rc" -ne 0 ] && ! awk '$3 > 0 { bad = 1 } END { exit !bad }' "$results" 2>/dev/null; then
        record test "(meson test exit status $rc)"
    fi
    exit "$rc"
    ;;
stop)
    emulator "$2"
    [ "$2" != windows ] || "$(wineserver_cmd)" -k 2>/dev/null || true
    ;;
*)
    sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
