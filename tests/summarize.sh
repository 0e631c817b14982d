#!/usr/bin/env bash
# Run doctest binaries and/or sum recorded results; print a grand total.
#
#   tests/summarize.sh [-p PREFIX] [-o FILE] [-r FILE]... [BINARY...]
#
#   BINARY     run it (output shown), parse doctest's summary line
#              "[doctest] test cases: T | P passed | F failed | S skipped".
#              No summary (crash, abort, timeout, missing binary) = 1 failed;
#              a summary with 0 failed but a non-zero exit status (e.g. a leak
#              reported by LeakSanitizer at exit) = 1 extra failed.
#   -p PREFIX  prefix for suite names, e.g. "clang-asan/"
#   -o FILE    append one result line per binary run: "NAME PASSED FAILED [NOTE]"
#   -r FILE    also count result lines recorded earlier in FILE (repeatable;
#              missing files are ignored) -- this is how `make check` sums
#              all its variants
#
# Prints one line per suite, then a last line exactly "N passed, M failed".
# Exit status: 1 if M > 0, else 0.
#
# Env: TEST_TIMEOUT (seconds per binary, default 300).
set -uo pipefail

prefix='' out='' results=()
while getopts 'p:o:r:' opt; do
    case $opt in
        p) prefix=$OPTARG ;;
        o) out=$OPTARG ;;
        r) results+=("$OPTARG") ;;
        *) sed -n '2,20s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

lines=()   # "NAME PASSED FAILED [NOTE]" for every suite counted
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for bin in "$@"; do
    name=$prefix$(basename "$bin")
    note=
    if [ ! -x "$bin" ]; then
        passed=0 failed=1 note="(not built)"
        echo "summarize: $bin: not built" >&2
    else
        echo "---- $name"
        # stdin from /dev/null: a test must never wait for input.
        timeout -k 10 "${TEST_TIMEOUT:-300}" "$bin" </dev/null 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        # Strip colour codes in case doctest was told to force colours.
        summary=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
            sed -n 's/^\[doctest\] test cases: *[0-9]* | *\([0-9]*\) passed | *\([0-9]*\) failed.*/\1 \2/p' |
            tail -n 1)
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            passed=0 failed=1 note="(timed out after ${TEST_TIMEOUT:-300}s)"
        elif [ -z "$summary" ]; then
            passed=0 failed=1 note="(no doctest summary, exit status $rc)"
        else
            read -r passed failed <<<"$summary"
            if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
                failed=1 note="(exit status $rc after summary)"
            fi
        fi
    fi
    line="$name $passed $failed${note:+ $note}"
    lines+=("$line")
    # One small write per line: safe even when meson runs wrappers in parallel.
    [ -z "$out" ] || printf '%s\n' "$line" >>"$out"
done

for f in ${results[@]+"${results[@]}"}; do
    [ -f "$f" ] || continue
    while IFS= read -r line; do
        [ -n "$line" ] && lines+=("$line")
    done <"$f"
done

[ ${#lines[@]} -gt 0 ] || echo "summarize: no test results (no tests/test_*.cpp?)" >&2
total_p=0 total_f=0
echo "==== results"
for line in ${lines[@]+"${lines[@]}"}; do
    read -r name passed failed note <<<"$line"
    if [ "$failed" -eq 0 ]; then tag=PASS; else tag=FAIL; fi
    printf '%s %-44s %4d passed, %d failed%s\n' "$tag" "$name" "$passed" "$failed" "${note:+ $note}"
    total_p=$((total_p + passed)) total_f=$((total_f + failed))
done
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
