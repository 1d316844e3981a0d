#!/usr/bin/env bash
# End-to-end cost per request of hello_world variants served over TCP and loaded with wrk, as
# BENCHMARKS.md reports it: ROUNDS (default 3) interleaved rounds over all variants, each
# `wrk -t1 -c16 -d8s` with a sampled W3C traceparent; the server's CPU time per request is its
# utime+stime (/proc/PID/stat) over the run divided by the requests wrk completed.
#
#   bash crates/faultline-instrument/benches/wrk_rounds.sh \
#       target/release/examples/hello_world:bare target/release/examples/hello_world:faultline ...
#
# Prints one line per run: round, binary:variant, requests/s, server CPU µs per request, load.
set -euo pipefail
rounds=${ROUNDS:-3}
duration=${DURATION:-8s}
port=${PORT:-39417}
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
    for spec in "$@"; do
        bin=${spec%%:*}
        variant=${spec#*:}
        "$bin" "$variant" serve "127.0.0.1:$port" 2>/dev/null &
        server=$!
        for _ in $(seq 100); do
            if curl -s -o /dev/null "http://127.0.0.1:$port/orders/42"; then break; fi
            sleep 0.05
        done
        before=$(cpu_ticks "$server")
        report=$(wrk -t1 -c16 -d"$duration" \
            -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
            "http://127.0.0.1:$port/orders/42")
        after=$(cpu_ticks "$server")
        load=$(cut -d' ' -f1 /proc/loadavg)
        kill "$server"
        wait "$server" 2>/dev/null || true
        requests=$(echo "$report" | awk '/requests in/ {print $1}')
        rps=$(echo "$report" | awk '/Requests\/sec/ {print $2}')
        cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks" -v n="$requests" \
            'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
        echo "$round $spec rps=$rps cpu_us_per_req=$cpu_us load=$load"
    done
done
