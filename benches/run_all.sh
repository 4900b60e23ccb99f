#!/usr/bin/env bash
# Runs every benchmark, then writes the report (target/bench-results/report.md) and the
# chart (docs/tls13-resumed-handshakes.svg). About 12 minutes on 2 cores. Leave the
# machine otherwise idle: the ratios compare figures from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench store_ops
cargo bench --bench handshakes
cargo bench --bench memory
cargo bench --bench hit_ratio
cargo bench --features redis --bench fleet   # needs redis-server (Debian package)
cargo bench --features redis --bench tickets
python3 benches/report.py
python3 benches/plot.py
