#!/usr/bin/env bash
# One-off: how much of the TLS 1.2 gap to rustls's built-in cache is LRU promotion.
# Runs the TLS 1.2 mix at 256 and 200,000 sessions on one thread, SessionCache against
# the built-in cache, twice back to back: as is, then with get-without-promotion.patch
# applied (a Shard::get that peeks instead of promoting). Prints the ratios of each
# pass and reverts the patch. It overwrites those four store_ops results, so run it
# before benches/run_all.sh, not after.
set -euo pipefail
cd "$(dirname "$0")/../.."
patch=benches/one-off/get-without-promotion.patch
filter='tls12-cap(256|200000)/(SessionCache|rustls-builtin)/threads1$'
ratios() {
    python3 - "$1" <<'PY'
import json, pathlib, sys
root = pathlib.Path("target/criterion")
def rate(cap, store):
    path = root / f"tls12-cap{cap}" / store / "threads1" / "new" / "estimates.json"
    return 1e9 / json.loads(path.read_text())["median"]["point_estimate"]
for cap in (256, 200000):
    ours, builtin = rate(cap, "SessionCache"), rate(cap, "rustls-builtin")
    print(f"{sys.argv[1]}, TLS 1.2 mix, {cap:,} sessions, 1 thread: SessionCache "
          f"{ours / 1e6:.2f} M ops/s, built-in {builtin / 1e6:.2f} M ops/s, {ours / builtin:.2f}x")
PY
}
cargo bench --bench store_ops -- "$filter"
with_get=$(ratios "get (promotes)")
git apply "$patch"
trap 'git apply -R "$patch"' EXIT
cargo bench --bench store_ops -- "$filter"
echo "$with_get"
ratios "peek (no promotion)"
