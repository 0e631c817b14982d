#!/usr/bin/env python3
"""Summarize bench/run.sh's runs.jsonl: medians per peer and scenario, a markdown table, and a
gnuplot script for the PNG (server CPU per message per peer). Standard library only."""
import argparse
import json
import statistics

PEERS = ["raw", "echo_poll", "echo_blocking", "beast", "websocketpp", "lws", "node"]
LABEL = {
    "raw": "raw TCP (limit)",
    "echo_poll": "**echo_server, poll**",
    "echo_blocking": "**echo_server, blocking**",
    "beast": "Boost.Beast",
    "websocketpp": "websocketpp",
    "lws": "libwebsockets",
    "node": "Node ws + bufferutil",
}
PLOT_LABEL = {
    "raw": "raw TCP", "echo_poll": "echo_server poll", "echo_blocking": "echo_server blocking",
    "beast": "Beast", "websocketpp": "websocketpp", "lws": "libwebsockets", "node": "Node ws",
}
SCEN = {
    "a": "a 100x32B d1", "b": "b 100x32B d16", "c": "c 1x1MiB d2 (per MiB)",
    "d": "d 1000x512B d1", "e": "e = b, text", "f": "f = c, text (per MiB)",
}
XTIC = {"a": "a: 32 B d1", "b": "b: 32 B d16", "c": "c: 1 MiB", "d": "d: 512 B x1000",
        "e": "e: b, text", "f": "f: c, text"}
RAW_REF = {"a": "a", "b": "b", "c": "c", "d": "d", "e": "b", "f": "c"}
# Issue targets for echo_server: server CPU us per message (c, f: per MiB), idle KiB/conn.
TARGET = {"a": 4.9, "b": 0.37, "c": 700, "d": 5.5, "e": 0.42, "f": 800, "idle": 0.3}
ISSUE_RAW = {"a": 4.5, "b": 0.31, "c": 529, "d": 4.7}


def fmt(x, digits=3):
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def main():
    ap = argparse.ArgumentParser()
    for a in ["runs", "out", "plot", "machine", "date", "command", "load", "versions", "header"]:
        ap.add_argument("--" + a, default="")
    args = ap.parse_args()
    runs = [json.loads(line) for line in open(args.runs) if line.strip()]
    peers = [p for p in PEERS if any(r["peer"] == p for r in runs)]
    scen = [s for s in "abcdef" if any(r["scenario"] == s for r in runs)]
    reps = sorted({r["rep"] for r in runs})

    def rows(p, s):
        return [r for r in runs if r["peer"] == p and r["scenario"] == s]

    def med(p, s, key):
        v = [r[key] for r in rows(p, s) if r.get(key) is not None and r.get(key, -1) >= 0 and r.get("rc", 1) == 0]
        return statistics.median(v) if v else None

    def errors(p, s):
        return sum(int(r.get("errors", 0)) + (1 if r.get("rc", 0) != 0 else 0) for r in rows(p, s))

    def ratio(p, s):  # median over repetitions of msgs/s / raw msgs/s in the same repetition
        v = []
        for rep in reps:
            mine = [r for r in rows(p, s) if r["rep"] == rep and r.get("rc") == 0]
            ref = [r for r in rows("raw", RAW_REF[s]) if r["rep"] == rep and r.get("rc") == 0]
            if mine and ref and ref[0]["msgs_per_s"] > 0:
                v.append(mine[0]["msgs_per_s"] / ref[0]["msgs_per_s"])
        return statistics.median(v) if v else None

    def mark(p, s):
        e = errors(p, s)
        return f" ⚠{e} err" if e else ""

    out = []
    w = out.append
    n = len(reps)
    w(f"Machine: {args.machine}. Date: {args.date}. Command: `{args.command}`.  ")
    w(f"Built from {args.header}. Peers: {args.versions}. Each server pinned to core 1 (`taskset -c 1`), the load generator "
      f"(`bench/loadgen`, one thread, epoll) to core 0. Median of {n} interleaved run(s) per cell; "
      f"{args.load} (other jobs shared the machine, so msgs/s is noisy: server CPU per message is "
      f"the headline).")
    w("")
    w("**Server CPU time per message, µs** (user+sys of the server process over the measured "
      "window / messages echoed; c and f: µs per MiB; lower is better). Idle: resident memory "
      "per idle connection, KiB, with 1000 idle connections.")
    w("")
    w("| peer | " + " | ".join(SCEN[s] for s in scen) + " | idle KiB/conn |")
    w("| --- |" + " ---: |" * (len(scen) + 1))
    for p in peers:
        cells = []
        for s in scen:
            if p == "raw" and s in "ef":
                cells.append(f"(= {RAW_REF[s]})")
            else:
                cells.append(fmt(med(p, s, "server_cpu_us_per_msg")) + mark(p, s))
        cells.append(fmt(med(p, "idle", "server_kib_per_conn")) + mark(p, "idle"))
        w(f"| {LABEL[p]} | " + " | ".join(cells) + " |")
    w("| *target for echo_server* | " + " | ".join(f"≤ {TARGET[s]:g}" for s in scen) + f" | ≤ {TARGET['idle']:g} |")
    w("")
    w("**Throughput, messages/s** (all connections; in parentheses: the ratio to raw TCP in the same "
      "repetition, e and f against raw b and c).")
    w("")
    w("| peer | " + " | ".join(SCEN[s].replace(" (per MiB)", "") for s in scen) + " |")
    w("| --- |" + " ---: |" * len(scen))
    for p in peers:
        cells = []
        for s in scen:
            if p == "raw" and s in "ef":
                cells.append(f"(= {RAW_REF[s]})")
                continue
            m, r = med(p, s, "msgs_per_s"), ratio(p, s)
            cells.append(("-" if m is None else f"{m:,.0f}") + ("" if r is None or p == "raw" else f" ({r:.2f})"))
        w(f"| {LABEL[p]} | " + " | ".join(cells) + " |")
    w("")
    w("**Round trip, p50 / p99, µs** (from sending a message to its last echoed byte; includes "
      "queueing behind the other messages in flight).")
    w("")
    w("| peer | " + " | ".join(SCEN[s].replace(" (per MiB)", "") for s in scen) + " |")
    w("| --- |" + " ---: |" * len(scen))
    for p in peers:
        cells = []
        for s in scen:
            if p == "raw" and s in "ef":
                cells.append(f"(= {RAW_REF[s]})")
                continue
            a, b = med(p, s, "p50_us"), med(p, s, "p99_us")
            cells.append(f"{fmt(a)} / {fmt(b)}")
        w(f"| {LABEL[p]} | " + " | ".join(cells) + " |")
    w("")
    w("**echo_server against the targets** (server CPU µs per message; c, f per MiB; idle KiB per "
      "connection). The issue's raw TCP reference figures are beside this run's.")
    w("")
    w("| scenario | raw (issue) | raw (this run) | target | poll | | blocking | |")
    w("| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    for s in scen + ["idle"]:
        t = TARGET[s]
        cells = []
        for p in ["echo_poll", "echo_blocking"]:
            v = med(p, s, "server_kib_per_conn" if s == "idle" else "server_cpu_us_per_msg")
            if v is None:
                cells += ["-", ""]
            else:
                verdict = "meets" if v <= t else f"misses by {100 * (v - t) / t:.0f}%"
                cells += [fmt(v), verdict]
        raw_now = med("raw", RAW_REF.get(s, "idle"), "server_kib_per_conn" if s == "idle" else "server_cpu_us_per_msg")
        name = "idle (1000 conns)" if s == "idle" else SCEN[s]
        w(f"| {name} | {fmt(ISSUE_RAW.get(s))} | {fmt(raw_now)} | ≤ {t:g} | " + " | ".join(cells) + " |")
    total_err = sum(errors(p, s) for p in peers for s in scen + ["idle"])
    w("")
    w(f"Errors (failed connections, mismatched bytes, failed runs) over all runs: {total_err}.")
    open(args.out, "w").write("\n".join(out) + "\n")

    if args.plot:
        # Two panels: small messages (µs per message, log scale) and 1 MiB messages (µs per MiB).
        head = "scenario " + " ".join(f'"{PLOT_LABEL[p]}"' for p in peers)

        def data(path, which):
            with open(path, "w") as f:
                f.write(head + "\n")
                for s in which:
                    vals = []
                    for p in peers:
                        v = med(p, RAW_REF[s] if p == "raw" else s, "server_cpu_us_per_msg")
                        vals.append("NaN" if v is None else f"{v:.4f}")
                    f.write(f'"{XTIC[s]}" ' + " ".join(vals) + "\n")

        small = [s for s in scen if s in "abde"]
        bulk = [s for s in scen if s in "cf"]
        data(args.plot + "-small.dat", small)
        data(args.plot + "-bulk.dat", bulk)

        def plot(path):
            return "plot " + ", ".join(
                f"'{path}' using {c + 2}:xtic(1) title columnheader({c + 2}) ls {c + 1}" for c in range(len(peers)))

        colors = {"raw": "#888888", "echo_poll": "#d62728", "echo_blocking": "#ff9896", "beast": "#1f77b4",
                  "websocketpp": "#2ca02c", "lws": "#9467bd", "node": "#ff7f0e"}
        vals = [v for s in small for p in peers
                for v in [med(p, RAW_REF[s] if p == "raw" else s, "server_cpu_us_per_msg")] if v]
        lo, hi = (min(vals), max(vals)) if vals else (0.1, 10)
        gp = [
            "set terminal pngcairo noenhanced size 1100,440 font 'sans,9'",
            "set xtics font 'sans,8'",
            f"set output '{args.plot}.png'",
            "set style data histograms",
            "set style histogram clustered gap 1",
            "set style fill solid 0.9 border -1",
            "set grid ytics",
            "set datafile missing 'NaN'",
        ]
        gp += [f"set style line {i + 1} lc rgb '{colors[p]}'" for i, p in enumerate(peers)]
        gp.append(f"set multiplot layout 1,2 title 'Server CPU time per message, median ({args.date}; lower is better)'")
        if small:
            gp += ["set logscale y", "set ylabel 'µs per message (log scale)'",
                   "set title 'small messages'",
                   "set key inside top left vertical maxrows 4 font 'sans,8'",
                   f"set yrange [{lo / 2:.4g}:{hi * 60:.4g}]", plot(args.plot + "-small.dat"), "unset logscale y"]
        if bulk:
            gp += ["set ylabel 'µs per MiB'", "set title '1 MiB messages'", "set key off",
                   "set autoscale y", "set yrange [0:*]", plot(args.plot + "-bulk.dat")]
        gp.append("unset multiplot")
        open(args.plot + ".gp", "w").write("\n".join(gp) + "\n")


if __name__ == "__main__":
    main()
