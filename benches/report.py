#!/usr/bin/env python3
"""Turns the benchmark results into the README's tables: medians, hit shares, ratios.

Reads what the benchmarks wrote (run benches/run_all.sh first):
  target/criterion/<workload>-cap<N>/<store>/threads<T>/new/estimates.json   (store_ops)
  target/bench-results/store_ops_hits.jsonl, handshakes.json, memory.json, hit_ratio.json,
  fleet.json
Prints Markdown, and writes it to target/bench-results/report.md. Every ratio compares
figures from the same run of the same benchmark binary.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "target" / "bench-results"
CRITERION = ROOT / "target" / "criterion"

OURS, BUILTIN, MOKA, SHARDED = "SessionCache", "rustls-builtin", "moka", "SessionCache-4shards"
STORES = [OURS, SHARDED, BUILTIN, MOKA]
CAPACITIES = [256, 20480, 200000]


def load_json(name):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def ops_per_second(workload, capacity, store, threads):
    """Median throughput from criterion: one element per iteration, so 1e9 / ns."""
    path = CRITERION / f"{workload}-cap{capacity}" / store / f"threads{threads}" / "new" / "estimates.json"
    if not path.exists():
        return None
    return 1e9 / json.loads(path.read_text())["median"]["point_estimate"]


def hit_shares():
    shares = {}
    path = RESULTS / "store_ops_hits.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            key = (r["workload"], r["capacity"], r["store"], r["threads"])
            shares[key] = r["hits"] / max(r["lookups"], 1)
    return shares


def fmt_rate(x):
    if x is None:
        return "n/a"
    return f"{x / 1e6:.2f} M/s" if x >= 1e6 else f"{x / 1e3:.0f} k/s" if x >= 1e4 else f"{x / 1e3:.1f} k/s"


def ratio(a, b):
    return a / b if a and b else None


def check(value, goal, text):
    if value is None:
        return "not measured"
    return ("met" if goal(value) else "**missed**") + f" ({text})"


def main():
    out = []
    shares = hit_shares()
    hs = load_json("handshakes.json")
    mem = load_json("memory.json")
    hr = load_json("hit_ratio.json")
    if hs:
        out.append(f"Machine: {hs['machine']}.\n")

    def handshake(store, size, version="1.3", kind="resumed", field="median"):
        """Median handshakes/s: field "median" for the whole loop (client and server on
        one thread), "server_median" for the server's own time alone."""
        if not hs:
            return None
        for r in hs["results"]:
            if (r["store"], r["size"], r["version"], r["kind"]) == (store, size, version, kind):
                return r[field]
        return None

    # The targets, each as measured.
    rows = []
    for field, what in (("server_median", "server time"), ("median", "whole loop, client crypto included")):
        ours_200k, ours_256 = handshake(OURS, 200000, field=field), handshake(OURS, 256, field=field)
        flat = ratio(ours_200k, ours_256)
        rows.append((f"TLS 1.3 resumed handshakes/s, SessionCache, 200,000 vs 256 entries ({what})", "within 10%",
                     flat, check(flat, lambda v: v >= 0.9, f"{flat:.2f}x" if flat else "")))
        vs_builtin = ratio(ours_200k, handshake(BUILTIN, 200000, field=field))
        rows.append((f"the same, vs built-in at 200,000 ({what})", ">= 10x", vs_builtin,
                     check(vs_builtin, lambda v: v >= 10, f"{vs_builtin:.1f}x" if vs_builtin else "")))
    for threads in (1, 2):
        r = ratio(ops_per_second("tls13", 256, OURS, threads), ops_per_second("tls13", 256, BUILTIN, threads))
        rows.append((f"TLS 1.3 ops vs built-in at 256, {threads} thread(s)", ">= 1.0x", r,
                     check(r, lambda v: v >= 1.0, f"{r:.2f}x" if r else "")))
        r = ratio(ops_per_second("tls13", 20480, OURS, threads), ops_per_second("tls13", 20480, BUILTIN, threads))
        rows.append((f"TLS 1.3 ops vs built-in at 20,480, {threads} thread(s)", ">= 30x", r,
                     check(r, lambda v: v >= 30, f"{r:.1f}x" if r else "")))
        for other, name, goal in ((BUILTIN, "built-in", 0.8), (MOKA, "moka", 1.5)):
            worst = min((ratio(ops_per_second("tls12", c, OURS, threads), ops_per_second("tls12", c, other, threads)) or 0)
                        for c in CAPACITIES) or None
            rows.append((f"TLS 1.2 ops vs {name}, worst capacity, {threads} thread(s)", f">= {goal}x", worst,
                         check(worst, lambda v, goal=goal: v >= goal, f"{worst:.2f}x" if worst else "")))
    ours_hr = next((r["hit_ratio"] for r in hr["results"] if r["store"] == OURS), None) if hr else None
    rows.append(("hit ratio, Zipf(0.9) simulation", ">= 60%", ours_hr,
                 check(ours_hr, lambda v: v >= 0.60, f"{ours_hr * 100:.2f}%" if ours_hr else "")))
    ours_mem = next((r for r in mem["results"] if r["store"] == OURS), None) if mem else None
    per = ours_mem["heap_per_session"] if ours_mem else None
    rows.append(("memory per 83-byte session at 200,000 (counting allocator)", "<= 200 bytes", per,
                 check(per, lambda v: v <= 200, f"{per:.1f} bytes; RSS {ours_mem['rss_per_session']:.1f}" if ours_mem else "")))
    out.append("| target | goal | measured |\n|---|---|---|")
    for name, goal, _, verdict in rows:
        out.append(f"| {name} | {goal} | {verdict} |")
    out.append("")

    # Operations, store by store.
    for workload, title in (("tls13", "TLS 1.3 step: take + 2 puts"), ("tls12", "TLS 1.2 mix: 90% get, 10% put")):
        out.append(f"**{title}** (median throughput; share of lookups that found a live session)\n")
        out.append("| capacity | threads | " + " | ".join(STORES) + " |")
        out.append("|---|---|" + "---|" * len(STORES))
        for capacity in CAPACITIES:
            for threads in (1, 2):
                cells = []
                for store in STORES:
                    rate = ops_per_second(workload, capacity, store, threads)
                    share = shares.get((workload, capacity, store, threads))
                    cells.append(f"{fmt_rate(rate)} ({share * 100:.1f}%)" if rate and share is not None else fmt_rate(rate))
                out.append(f"| {capacity:,} | {threads} | " + " | ".join(cells) + " |")
        out.append("")

    if hs:
        out.append("**In-memory rustls handshakes** (median handshakes/s; every resumed one checked). "
                   "*Loop*: client and server on one thread, the client's crypto included. "
                   "*Server*: the server's own calls alone, what a server's capacity is.\n")
        out.append("| TLS | kind | prefilled | loop: SessionCache | loop: built-in | ratio | server: SessionCache | server: built-in | ratio |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        keys = sorted({(r["version"], r["kind"], r["size"]) for r in hs["results"]}, key=lambda k: (k[0], k[1] != "resumed", k[2]))
        for version, kind, size in keys:
            a, b = handshake(OURS, size, version, kind), handshake(BUILTIN, size, version, kind)
            sa = handshake(OURS, size, version, kind, "server_median")
            sb = handshake(BUILTIN, size, version, kind, "server_median")
            out.append(f"| {version} | {kind} | {size:,} | {a:,.0f} | {b:,.0f} | {a / b:.2f}x | {sa:,.0f} | {sb:,.0f} | {sa / sb:.2f}x |")
        out.append("")
    if mem:
        out.append("**Memory, 200,000 sessions of 32 + 83 bytes**\n")
        out.append("| store | heap bytes/session | RSS bytes/session |\n|---|---|---|")
        for r in mem["results"]:
            out.append(f"| {r['store']} | {r['heap_per_session']:.1f} | {r['rss_per_session']:.1f} |")
        out.append("")
    fleet = load_json("fleet.json")
    if fleet:
        out.append("**Fleet tier: 3 instances behind a round-robin balancer, 300 clients**\n")
        out.append("| Redis | TLS | resumption rate without the fleet tier | with it | resumed handshake: local | cross-instance | ratio |")
        out.append("|---|---|---|---|---|---|---|")
        for r in fleet["results"]:
            out.append(f"| {r.get('topology', 'redis')} | {r['version']} | {r['rate_without'] * 100:.1f}% | {r['rate_with'] * 100:.1f}% | "
                       f"{r['local_ms']:.3f} ms | {r['cross_ms']:.3f} ms | {r['ratio']:.2f}x |")
        out.append("")
    if hr:
        out.append("**Hit ratio, Zipf(0.9), 100,000 clients, capacity 10,000, 1,000,000 attempts**\n")
        out.append("| cache | hit ratio |\n|---|---|")
        for r in hr["results"]:
            out.append(f"| {r['store']} | {r['hit_ratio'] * 100:.2f}% |")
        out.append("")

    text = "\n".join(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
