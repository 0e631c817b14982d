#!/usr/bin/env bash
# The interop suite (tests/interop/run.sh) with every binary of ours under valgrind: the
# examples (echo_server, chat, wscat; poll and blocking builds) run as
#   valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
# so a memory error or a leak makes the example exit 1, and run.sh fails that case (a server
# must exit 0 on SIGTERM; wscat must exit 0 for its peer script).
#
#   bash tests/interop/valgrind.sh RESULTS_FILE     (make check: after `make examples`)
#
# Result lines are named "interop-valgrind/CASE". Env: BUILD (default build), VALGRIND
# (default valgrind), CASE_TIMEOUT (default 180: valgrind is ~20x slower).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 RESULTS_FILE" >&2; exit 2; }
results=$1
case $results in /*) ;; *) results=$PWD/$results ;; esac
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
valgrind=${VALGRIND:-valgrind}

if ! command -v "$valgrind" >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
    echo "valgrind.sh: installing valgrind"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind ||
        { $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends valgrind; }
fi
if ! command -v "$valgrind" >/dev/null 2>&1; then
    mkdir -p "$(dirname "$results")"
    echo "interop-valgrind/setup 0 1 (valgrind is not installed)" >"$results"
    exit 1
fi

# A BUILD directory of wrappers: run.sh runs them exactly as it runs the real binaries.
wrap=$(mktemp -d "${TMPDIR:-/tmp}/valgrind-interop.XXXXXX") || exit 2
trap 'rm -rf "$wrap"' EXIT
mkdir -p "$wrap/blocking"
for rel in echo_server chat wscat blocking/echo_server blocking/chat blocking/wscat; do
    [ -x "$build/$rel" ] || continue   # run.sh reports what is not built
    printf '#!/bin/sh\nexec %s -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect --track-fds=no %s "$@"\n' \
        "$valgrind" "$build/$rel" >"$wrap/$rel"
    chmod +x "$wrap/$rel"
done
cd "$root" || exit 2
INTEROP_NAME=interop-valgrind BUILD=$wrap CASE_TIMEOUT=${CASE_TIMEOUT:-180} bash "$here/run.sh" "$results"
