#!/usr/bin/env bash
# Footprint (make size): what websocket.hpp costs in a program and in a build.
#
#   - stripped -Os size of tests/size/min_client.cpp (connect, send, receive, close) and
#     tests/size/min_server.cpp (echo server), x86_64 and armhf, each driver, against an empty
#     `int main() {}` built the same way (the part the library adds is the difference): the
#     file size, and what size(1) counts (text + data, the bytes that are loaded). The file
#     also holds the zeros that page-align its segments: on x86_64, where ld defaults to
#     -z separate-code, up to 4 KiB before the code, after it and before the data (an empty
#     program is 14 KB, 10 KB of it zeros), so its size moves in 4 KiB steps, whereas
#     size(1) moves with the code;
#   - the biggest functions of the x86_64 client and server (what costs the most);
#   - compile time at -O0 of a TU that only includes the header, against a TU that includes
#     only the standard and OS headers the header itself includes (best of 5 each).
# Libraries are linked dynamically (libstdc++, libc): the sizes are our code, not theirs.
# Env: BUILD (default build).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
out=${BUILD:-build}/size
mkdir -p "$out"
echo "==== make size: $(date -u +%Y-%m-%d), $(uname -m), $(nproc) cores, $(g++ --version | head -n 1)"

printf 'int main() { return 0; }\n' >"$out/empty.cpp"
sz() { stat -c %s "$1"; }
loaded() { "$size" "$1" | awk 'NR == 2 { print $1 + $2 }'; }  # size(1) text + data

printf '\n%-8s %-9s %8s %8s %8s   %8s %8s %8s\n' '' '' '' file '' '' 'size(1)' ''
printf '%-8s %-9s %8s %8s %8s   %8s %8s %8s   %s\n' target driver empty client server empty client server \
    "(bytes, -Os, stripped)"
for target in x86_64 armhf; do
    case $target in
    x86_64) cxx=g++ strip=strip size=size ;;
    armhf) cxx=arm-linux-gnueabihf-g++ strip=arm-linux-gnueabihf-strip size=arm-linux-gnueabihf-size ;;
    esac
    command -v "$cxx" >/dev/null || { echo "$target: $cxx not installed"; continue; }
    for driver in poll blocking; do
        flags=(-std=c++17 -Os -pthread)
        [ $driver = blocking ] && flags+=(-DWEBSOCKET_USE_BLOCKING)
        for p in empty min_client min_server; do
            src=tests/size/$p.cpp
            [ $p = empty ] && src=$out/empty.cpp
            "$cxx" "${flags[@]}" -o "$out/$p-$target-$driver" "$src" || continue
            "$strip" -o "$out/$p-$target-$driver.stripped" "$out/$p-$target-$driver"
        done
        files=() loads=()
        for p in empty min_client min_server; do
            files+=("$(sz "$out/$p-$target-$driver.stripped")")
            loads+=("$(loaded "$out/$p-$target-$driver.stripped")")
        done
        printf '%-8s %-9s %8s %8s %8s   %8s %8s %8s\n' "$target" "$driver" "${files[@]}" "${loads[@]}"
    done
done

# What costs the most: the biggest symbols of the x86_64 -Os builds (not stripped).
for p in min_client min_server; do
    echo
    echo "---- biggest functions in $p (x86_64, poll, -Os): bytes, symbol"
    nm -t d --size-sort --reverse-sort -C "$out/$p-x86_64-poll" | awk '$2 ~ /[tTwW]/' | head -n 12 |
        while read -r size _ name; do printf "%8d  %.110s\n" "$((10#$size))" "$name"; done
    # Grouped by the header's layers, by symbol name.
    nm -t d --size-sort -C "$out/$p-x86_64-poll" | awk '$2 ~ /[tTwWrRuV]/ {  # u: unique globals (kUtf8Dfa)
        n = $1 + 0; $1 = $2 = ""; s = $0
        # By the function itself, not its template arguments: Connection::take_data<lambda in
        # Client::pump> is Connection code; its receive_request/receive_response are sec. 1.
        if (s ~ /^ *([a-z ]+ )?ws::Connection::receive_(request|response)/) g = "HTTP upgrade (sec. 1)"
        else if (s ~ /^ *([a-z ]+ )?ws::Connection::/) g = "Connection (sec. 3)"
        else if (s ~ /ws::Server|ws::Session|Dispatch/) g = "Server, Session (sec. 6)"
        else if (s ~ /ws::Client/) g = "Client (sec. 6)"
        else if (s ~ /ws::net::/) g = "sockets (sec. 4)"
        else if (s ~ /Http|http|parse_url|handshake|serialize|Url|Extension|extensions/) g = "HTTP upgrade (sec. 1)"
        else if (s ~ /ws::Connection/) g = "Connection (sec. 3)"
        else if (s ~ /Sha1|sha1|base64|Utf8|accept_key|random_bytes/) g = "primitives (sec. 0)"
        else if (s ~ /ws::/) g = "other ws::"
        else if (s ~ /^ *main$/) g = "main (and what -Os inlined into it)"
        else g = "std:: and runtime"
        t[g] += n } END { for (g in t) printf "%8d  %s\n", t[g], g }' | sort -rn
done

# Compile time: the header alone vs the system headers it includes.
hdrs=$(sed -n 's/^#include <\([^>]*\)>.*/\1/p' websocket.hpp | sort -u | grep -v -e '^windows' -e '^winsock' -e '^ws2tcpip' -e '^bcrypt' -e '^stdlib.h$' -e '^sys/random.h$')
{ for h in $hdrs; do echo "#include <$h>"; done; echo 'int main() { return 0; }'; } >"$out/std_only.cpp"
printf '#include "../../websocket.hpp"\nint main() { return 0; }\n' >"$out/header.cpp"
best() {  # best of 5 wall-clock seconds of a compile
    local b=999 t
    for _ in 1 2 3 4 5; do
        local s=$(date +%s.%N)
        "$@" || return 1
        t=$(echo "$(date +%s.%N) - $s" | bc)
        b=$(echo "if ($t < $b) $t else $b" | bc)
    done
    printf '%.3f' "$b"
}
echo
echo "---- compile time, g++ -std=c++17 -O0 -c (best of 5)"
for cxx in g++ clang++; do
    command -v $cxx >/dev/null || continue
    s=$(best $cxx -std=c++17 -O0 -c -o /dev/null "$out/std_only.cpp")
    h=$(best $cxx -std=c++17 -O0 -c -o /dev/null "$out/header.cpp")
    c=$(best $cxx -std=c++17 -O0 -c -o /dev/null tests/size/min_client.cpp)
    v=$(best $cxx -std=c++17 -O0 -c -o /dev/null tests/size/min_server.cpp)
    printf '%-8s std+OS headers only %6ss   + websocket.hpp %6ss (header: +%.3fs)   min_client %6ss   min_server %6ss\n' \
        "$cxx" "$s" "$h" "$(echo "$h - $s" | bc)" "$c" "$v"
done
