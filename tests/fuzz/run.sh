#!/usr/bin/env bash
# Builds each fuzz target with libFuzzer (clang, ASan+UBSan) and runs it for FUZZ_SECONDS
# (default 60) over its seed corpus. A crash fails; its input is saved in
# tests/fuzz/regressions/TARGET/ (commit it: the replay runner then guards it for good).
# Then every target is replayed with g++ over corpus + regressions (no libFuzzer needed).
#
#   tests/fuzz/run.sh [RESULTS_FILE]      one result line per target and mode
set -uo pipefail
cd "$(dirname "$0")/../.."
results=${1:-/dev/null}
seconds=${FUZZ_SECONDS:-60}
out=build/fuzz
mkdir -p "$out"
targets=(http frame connection utf8)
status=0

record() {  # NAME OK NOTE
    if [ "$2" -eq 0 ]; then echo "$1 1 0" >>"$results"; echo "PASS $1 $3"
    else echo "$1 0 1 $3" >>"$results"; echo "FAIL $1 $3"; status=1; fi
}

for t in "${targets[@]}"; do
    src=tests/fuzz/fuzz_$t.cpp
    mkdir -p "tests/fuzz/regressions/$t" "$out/corpus-$t"
    # g++ replay: the committed seeds and every saved crash input.
    if g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
        tests/fuzz/replay.cpp "$src" -o "$out/replay-$t" &&
        "$out/replay-$t" "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" >"$out/replay-$t.log" 2>&1; then
        record "fuzz/replay-$t" 0 "($(tail -n 1 "$out/replay-$t.log"))"
    else
        record "fuzz/replay-$t" 1 "(replay failed: $(tail -n 3 "$out/replay-$t.log" | tr '\n' ' '))"
    fi
    # libFuzzer run: new inputs go to build/, the committed corpus is only read.
    if ! clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        "$src" -o "$out/fuzz-$t"; then
        record "fuzz/libfuzzer-$t" 1 "(build failed)"
        continue
    fi
    log=$out/fuzz-$t.log
    "$out/fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="tests/fuzz/regressions/$t/" "$out/corpus-$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    if [ "$rc" -eq 0 ]; then
        record "fuzz/libfuzzer-$t" 0 "($runs executions in ${seconds}s)"
    else
        record "fuzz/libfuzzer-$t" 1 "(crash after $runs executions; input saved in tests/fuzz/regressions/$t/)"
        grep -A 15 -m 1 'ERROR\|==ERROR\|deadly signal' "$log" | head -30
    fi
done
exit "$status"
