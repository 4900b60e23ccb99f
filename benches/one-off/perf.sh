#!/usr/bin/env bash
# One-off: where a TLS 1.2 get's time goes at 200,000 sessions. Records the store_ops
# benchmark of SessionCache on one thread with perf, and prints the symbols with the
# largest share of the samples. Needs `perf` (linux-perf) and permission to use it.
set -euo pipefail
cd "$(dirname "$0")/../.."
filter='tls12-cap200000/SessionCache/threads1$'
# Build first, so that only the benchmark itself is recorded.
cargo bench --bench store_ops --no-run
bench=$(ls -t target/release/deps/store_ops-* | grep -v '\.d$' | head -1)
perf record -F 999 -o target/perf-tls12-200000.data -- "$bench" --bench "$filter" --profile-time 10
perf report -i target/perf-tls12-200000.data --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | head -15
