#!/usr/bin/env bash
# Instructions per operation, bare cache against a resumption-context view, under
# callgrind (Debian package valgrind), counting only the measured steps. Deterministic:
# the same binary counts the same instructions whatever else the machine does.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench context_cost --no-run 2>/dev/null
bin=$(ls -t target/release/deps/context_cost-* | grep -v '\.d$' | head -1)
ops=4000
count() { # store workload
    valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='*run_steps*' \
        "$bin" "$1" "$2" "$ops" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for workload in tls13 tls12; do
    bare=$(count bare "$workload")
    view=$(count view "$workload")
    python3 -c "print('$workload: %d instructions per step bare, %d through a view: %.3fx' % ($bare / $ops, $view / $ops, $view / $bare))"
done
