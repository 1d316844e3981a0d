#!/usr/bin/env bash
# Instructions per request that each hello_world variant executes on its main thread, as
# BENCHMARKS.md reports them: callgrind counts for N=2,000 and N=12,000 in-process requests,
# (I(12,000) - I(2,000)) / 10,000, so start-up cancels out. Each variant is run ROUNDS times
# (default 3) and every round is printed, then the median.
#
#   bash crates/faultline-instrument/benches/callgrind.sh target/release/examples/hello_world \
#       bare faultline faultline-unsampled tower-http axum-tracing
set -euo pipefail
bin=$1
shift
rounds=${ROUNDS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/cg" \
        "$bin" "$1" oneshot "$2" >/dev/null 2>&1
    # Thread 1 is the main thread, which serves the requests; export threads are separate.
    awk '/^(summary|totals):/ {print $2; exit}' "$out/cg-01"
    rm -f "$out"/cg*
}
for variant in "$@"; do
    results=()
    for _ in $(seq "$rounds"); do
        small=$(count "$variant" 2000)
        large=$(count "$variant" 12000)
        results+=($(((large - small) / 10000)))
    done
    median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$variant ${results[*]} median $median"
done
