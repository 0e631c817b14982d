#!/usr/bin/env bash
# Compiler x standard library x standard x flags: compile checks, one result line each
# ("matrix/NAME 1 0" or "matrix/NAME 0 1") in RESULTS, for tests/summarize.sh -r.
#
#   tests/matrix.sh RESULTS            (make matrix; make check)
#
# Every combination compiles with -Werror and -Wall -Wextra -Wpedantic -Wshadow -Wconversion
# -Wsign-conversion:
#   - websocket.hpp alone, first in its TU, under each driver and with WEBSOCKET_NO_THREADS;
#   - a program of two TUs that both include the header, linked (no ODR or multiple-definition
#     errors: tests/size/odr_a.cpp + odr_b.cpp);
#   - the examples, which instantiate Server, Client and Connection;
#   - "full" combinations: every tests/test_*.cpp as well (-fsyntax-only).
# The suite itself runs for libc++ and for -Os in the Makefile (matrix-run).
# Env: JOBS (parallel combinations, default 2), BUILD, MATRIX_FULL=0: the "full" combinations
# skip the suites too (make portability PORT_QUICK=1: other runs compile them).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 RESULTS" >&2; exit 2; }
results=$1
case $results in /*) ;; *) results=$PWD/$results ;; esac
mkdir -p "$(dirname "$results")" && : >"$results"
cd "$root" || exit 2
build=${BUILD:-build}
work=$(cd "$build" 2>/dev/null && pwd)/matrix
mkdir -p "$work/include" && ln -sfn /usr/include/doctest "$work/include/doctest"
WARN='-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror'
started=$SECONDS

# clang 14 knows C++23 as c++2b.
clang23=c++23
clang++ -std=c++23 -x c++ -fsyntax-only /dev/null 2>/dev/null || clang23=c++2b

# NAME|CXX|STD|FLAGS|LINK FLAGS|full?   (C++17/20 suites already compile and run in make check's
# gcc/clang variants; here the other standards, libc++, -Os and the cross compilers.)
combos=(
    "gcc-c++17|g++|c++17|||"
    "gcc-c++20|g++|c++20|||"
    "gcc-c++23|g++|c++23|||full"
    "clang-libstdc++-c++17|clang++|c++17|||"
    "clang-libstdc++-c++23|clang++|$clang23|||"
    "clang-libc++-c++17|clang++|c++17|-stdlib=libc++||"
    "clang-libc++-c++20|clang++|c++20|-stdlib=libc++||"
    "clang-libc++-c++23|clang++|$clang23|-stdlib=libc++||full"
    "gcc-c++17-noexcept-nortti|g++|c++17|-fno-exceptions -fno-rtti||"
    "clang-libc++-c++20-noexcept-nortti|clang++|c++20|-stdlib=libc++ -fno-exceptions -fno-rtti||"
    "gcc-c++17-Os|g++|c++17|-Os||"
    "clang-libc++-c++17-Os|clang++|c++17|-Os -stdlib=libc++||"
    "mingw-w64-c++17|x86_64-w64-mingw32-g++-posix|c++17||-static -lws2_32 -lbcrypt|"
    "armhf-c++17|arm-linux-gnueabihf-g++|c++17|-Wno-psabi||"
    "s390x-c++17|s390x-linux-gnu-g++|c++17|||"
)

# one NAME CXX STD FLAGS LINK FULL: all the checks of one combination; prints its log.
one() {
    local name=$1 cxx=$2 std=$3 flags=$4 link=$5 full=$6
    local dir=$work/$name log=$work/$name.log ok=1 t0=$SECONDS
    mkdir -p "$dir"
    : >"$log"
    run() {  # run DESCRIPTION COMMAND...: log it, keep going
        if ! "${@:2}" >>"$log" 2>&1; then
            echo "  FAILED: $1: ${*:2}" >>"$log"
            ok=0
        fi
    }
    command -v "$cxx" >/dev/null || { echo "  $cxx: not installed" >>"$log"; ok=0; }
    # The two-TU program links at -O1, or at the combination's -Os.
    local opt=-O1
    case " $flags " in *" -Os "*) opt= ;; esac
    if [ $ok -eq 1 ]; then
        printf '#include "websocket.hpp"  // first, alone\nint main() { return 0; }\n' >"$dir/alone.cpp"
        for macros in "" "-DWEBSOCKET_USE_BLOCKING" "-DWEBSOCKET_NO_THREADS" \
                      "-DWEBSOCKET_NO_THREADS -DWEBSOCKET_USE_BLOCKING"; do
            # shellcheck disable=SC2086
            run "header alone ${macros:-(poll)}" "$cxx" -std="$std" $WARN $flags $macros -I"$root" \
                -fsyntax-only "$dir/alone.cpp"
        done
        # shellcheck disable=SC2086
        run "two TUs, one program" "$cxx" -std="$std" $opt $WARN $flags -pthread -o "$dir/odr" \
            tests/size/odr_a.cpp tests/size/odr_b.cpp $link
        # Object code only where the optimizer is the point (-Os): its warnings need it.
        local codegen=(-fsyntax-only)
        [ -n "$opt" ] || codegen=(-c -o "$dir/example.o")
        for ex in examples/*.cpp; do
            # shellcheck disable=SC2086
            run "$ex" "$cxx" -std="$std" $WARN $flags "${codegen[@]}" "$ex"
        done
        if [ -n "$full" ] && [ "${MATRIX_FULL:-1}" != 0 ]; then
            for t in tests/test_*.cpp; do
                # shellcheck disable=SC2086
                run "$t" "$cxx" -std="$std" $WARN $flags -I"$work/include" -fsyntax-only "$t"
            done
        fi
    fi
    {
        echo "---- matrix/$name: $cxx -std=$std $flags ($((SECONDS - t0)) s)"
        grep -E 'FAILED|error|not installed' "$log" | head -20
    }
    if [ $ok -eq 1 ]; then echo "matrix/$name 1 0" >>"$results"
    else echo "matrix/$name 0 1 (compile check failed: $log)" >>"$results"; fi
}
export -f one
export work root results WARN

echo "==== matrix: ${#combos[@]} combinations, ${JOBS:-2} at a time$([ "${MATRIX_FULL:-1}" != 0 ] || echo ', suites not compiled (MATRIX_FULL=0)')"
printf '%s\n' "${combos[@]}" |
    tr '|' '\037' |
    xargs -d '\n' -P "${JOBS:-2}" -I{} bash -c 'IFS=$'"'"'\037'"'"' read -r n c s f l u <<<"$1"; one "$n" "$c" "$s" "$f" "$l" "$u"' _ {}
echo "==== matrix: done in $((SECONDS - started)) s"
! grep -q ' 0 1' "$results"
