#!/usr/bin/env bash
# Instructions per store operation under callgrind (Debian package valgrind), counting
# only the measured steps. Deterministic: the same binary counts the same instructions
# whatever else the machine does. Two comparisons:
# - a bare cache against a resumption-context view, in one build;
# - a bare cache built without and with the `metrics` feature (which must cost the
#   store nothing: it publishes from the existing counters, off the handshake path).
set -euo pipefail
cd "$(dirname "$0")/.."
binary() { # cargo flags...
    cargo bench --bench context_cost --no-run --message-format=json "$@" 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "context_cost":
        print(m["executable"])'
}
plain=$(binary)
metrics=$(binary --features metrics)
ops=4000
count() { # binary store workload
    valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='*run_steps*' \
        "$1" "$2" "$3" "$ops" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for workload in tls13 tls12; do
    bare=$(count "$plain" bare "$workload")
    view=$(count "$plain" view "$workload")
    with=$(count "$metrics" bare "$workload")
    python3 -c "print('$workload: %d instructions per step bare, %d through a view: %.3fx' % ($bare / $ops, $view / $ops, $view / $bare))"
    python3 -c "print('$workload: %d instructions per step without metrics, %d with: %.3fx' % ($bare / $ops, $with / $ops, $with / $bare))"
done
