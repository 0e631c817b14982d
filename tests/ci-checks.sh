#!/usr/bin/env bash
# The non-compiler checks of `make check`. Each records result lines
# ("NAME PASSED FAILED [NOTE]") in RESULTS for tests/summarize.sh -r.
#
#   tests/ci-checks.sh meson BUILDDIR RESULTS  meson setup + meson test; every
#                                              test runs through summarize.sh, so
#                                              doctest test cases are counted
#   tests/ci-checks.sh install RESULTS         make install into a temp prefix and
#                                              compile against `pkg-config --cflags
#                                              websocket` (+ DESTDIR staging): 1 case
#   tests/ci-checks.sh subproject RESULTS      a meson project using this repo as
#                                              subprojects/websocket: 1 case
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CXX=${CXX:-g++}

# record NAME OK(0=passed) [NOTE]: one result line for a single-case check.
record() {
    if [ "$2" -eq 0 ]; then echo "$1 1 0" >>"$results"; else echo "$1 0 1 $3" >>"$results"; fi
    return "$2"
}

case ${1:-} in
meson)
    builddir=$(mkdir -p "$2" && cd "$2" && pwd) results=$(mkdir -p "$(dirname "$3")" && cd "$(dirname "$3")" && pwd)/$(basename "$3")
    echo "==== meson: setup + test in $2"
    rm -rf "$builddir"
    meson setup "$builddir" "$root" || { record meson/setup 1 "(meson setup failed)"; exit; }
    # -k0: build every test that compiles. meson test refuses to run when any
    # test binary is missing, so then count those as failed and run the rest.
    only=()
    if ! meson compile -C "$builddir" --ninja-args=-k0; then
        for t in $(meson test -C "$builddir" --no-rebuild --list 2>/dev/null); do
            if [ -x "$builddir/$t" ]; then only+=("$t"); else record "meson/$t" 1 "(not built)"; fi
        done
        [ ${#only[@]} -gt 0 ] || exit 1
    fi
    # The wrapper runs each test binary under summarize.sh, which appends its
    # doctest counts to $results (and fails the test if the binary fails).
    meson test -C "$builddir" --no-rebuild --print-errorlogs \
        --wrapper "bash $root/tests/summarize.sh -p meson/ -o $results" ${only[@]+"${only[@]}"}
    rc=$?
    # A test meson itself killed (e.g. its timeout) recorded nothing: count it.
    if [ "$rc" -ne 0 ] && ! awk '$3 > 0 { bad = 1 } END { exit !bad }' "$results" 2>/dev/null; then
        record meson/test 1 "(meson test exit status $rc)"
    fi
    exit "$rc"
    ;;
install)
    results=$2
    tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
    echo "==== install: make install + pkg-config --cflags websocket"
    printf '#include <websocket.hpp>\nint main() { return 0; }\n' >"$tmp/main.cpp"
    (
        set -e
        make --no-print-directory -C "$root" install PREFIX="$tmp/prefix"
        export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
        pkg-config --print-errors --modversion websocket
        # shellcheck disable=SC2046  # pkg-config output is a list of flags
        "$CXX" -std=c++17 $(pkg-config --cflags websocket) -o "$tmp/main" "$tmp/main.cpp" \
            $(pkg-config --libs websocket) -pthread
        "$tmp/main"
        # DESTDIR staging must land under DESTDIR with the final PREFIX baked in.
        make --no-print-directory -C "$root" install PREFIX=/opt/ws DESTDIR="$tmp/stage"
        test -f "$tmp/stage/opt/ws/include/websocket.hpp"
        grep -qx 'prefix=/opt/ws' "$tmp/stage/opt/ws/lib/pkgconfig/websocket.pc"
    )
    record install/pkg-config $? "(install or pkg-config compile failed)"
    ;;
subproject)
    results=$2
    tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
    echo "==== subproject: dependency('websocket') from subprojects/websocket"
    mkdir -p "$tmp/subprojects"
    ln -s "$root" "$tmp/subprojects/websocket"
    cat >"$tmp/meson.build" <<'EOF'
project('consumer', 'cpp', default_options: ['cpp_std=c++17'])
executable('consumer', 'main.cpp', dependencies: dependency('websocket'))
EOF
    printf '#include <websocket.hpp>\nint main() { return 0; }\n' >"$tmp/main.cpp"
    # --force-fallback-for: use the subproject even if a websocket.pc is installed.
    (
        set -e
        meson setup --force-fallback-for=websocket "$tmp/build" "$tmp"
        meson compile -C "$tmp/build"
        "$tmp/build/consumer"
    )
    record meson/subproject $? "(meson subproject build failed)"
    ;;
*)
    sed -n '2,13s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
