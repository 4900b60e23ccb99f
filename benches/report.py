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
CONTEXT = "SessionCache-context"
STORES = [OURS, CONTEXT, SHARDED, BUILTIN, MOKA]
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

    # The targets, each as measured: the README's table, row for row.
    def x(v, digits=2):
        return f"{v:.{digits}f}x" if v else "n/a"

    def ops(workload, capacity, store, threads):
        return ops_per_second(workload, capacity, store, threads)

    def vs(workload, capacity, store, other, threads):
        return ratio(ops(workload, capacity, store, threads), ops(workload, capacity, other, threads))

    def row(name, goal, values, minimum, digits=2, where=None):
        """values: one ratio or a list, each to be at least `minimum` (one for all, or one
        each); met only if every one is. `where` names each value, so a partial miss says
        where it missed."""
        values = values if isinstance(values, list) else [values]
        minimums = minimum if isinstance(minimum, list) else [minimum] * len(values)
        text = " / ".join(x(v, digits) for v in values)
        ok = [v is not None and v >= m for v, m in zip(values, minimums)]
        if any(v is None for v in values):
            verdict = "not measured"
        elif all(ok):
            verdict = "met"
        elif where and any(ok):
            verdict = "missed at " + " and ".join(w for w, good in zip(where, ok) if not good)
        else:
            verdict = "missed"
        rows.append((name, goal, text, verdict))

    rows = []
    caps = [f"{c:,}" for c in CAPACITIES]
    for field, what in (("server_median", "server time"), ("median", "whole in-memory loop, client crypto included")):
        row(f"TLS 1.3 resumed handshakes/s, 200,000 entries vs 256 ({what})", "within 10%",
            ratio(handshake(OURS, 200000, field=field), handshake(OURS, 256, field=field)), 0.9)
        row(f"the same, vs rustls's built-in cache at 200,000 ({what})", ">= 10x",
            ratio(handshake(OURS, 200000, field=field), handshake(BUILTIN, 200000, field=field)),
            10, digits=1)
    row("TLS 1.3 ops (take + 2 puts) vs built-in, 256, 1 thread", ">= 1.0x",
        vs("tls13", 256, OURS, BUILTIN, 1), 1.0)
    row("the same, 20,480, 1 thread", ">= 30x", vs("tls13", 20480, OURS, BUILTIN, 1), 30, digits=1)
    for store, shards in ((OURS, "1 shard"), (SHARDED, "4 shards")):
        values = [vs("tls13", 256, store, BUILTIN, 2), vs("tls13", 20480, store, BUILTIN, 2)]
        row(f"the same, 256 / 20,480, 2 threads, {shards}", ">= 1.0x / >= 30x", values,
            [1.0, 30], where=["256", "20,480"])
    for threads in (1, 2):
        row(f"TLS 1.2 ops (90% get) vs built-in, {threads} thread{'s' if threads > 1 else ''}: 256 / 20,480 / 200,000", ">= 0.8x",
            [vs("tls12", c, OURS, BUILTIN, threads) for c in CAPACITIES], 0.8, where=caps)
    for threads in (1, 2):
        row(f"TLS 1.2 ops vs moka, {threads} thread{'s' if threads > 1 else ''}: 256 / 20,480 / 200,000", ">= 1.5x",
            [vs("tls12", c, OURS, MOKA, threads) for c in CAPACITIES], 1.5, where=caps)
    for workload, name in (("tls13", "TLS 1.3 ops"), ("tls12", "TLS 1.2 ops")):
        row(f"{name} through a context view vs the bare cache, 1 thread: 256 / 20,480 / 200,000", ">= 0.95x",
            [vs(workload, c, CONTEXT, OURS, 1) for c in CAPACITIES], 0.95, where=caps)
    out.append("| target | goal | measured | |\n|---|---|---|---|")
    for name, goal, text, verdict in rows:
        out.append(f"| {name} | {goal} | {text} | {verdict} |")
    hit = {r["store"]: r["hit_ratio"] for r in hr["results"]} if hr else {}
    if OURS in hit:
        others = ", ".join(f"{name} {hit[key] * 100:.2f}%" for key, name in
                           ((BUILTIN, "FIFO"), (MOKA, "moka"), ("busiest-10k-bound", "best possible")) if key in hit)
        out.append(f"| hit ratio, Zipf(0.9), 100k clients, capacity 10k, 1M attempts | >= 60% | "
                   f"{hit[OURS] * 100:.2f}% ({others}) | {'met' if hit[OURS] >= 0.6 else 'missed'} |")
    ours_mem = next((r for r in mem["results"] if r["store"] == OURS), None) if mem else None
    if ours_mem:
        for key, when in (("", "after filling"), ("_after_turnover", "after five turnovers")):
            heap, rss = ours_mem.get("heap_per_session" + key), ours_mem.get("rss_per_session" + key)
            if heap is not None:
                out.append(f"| memory per cached 83-byte session at 200,000, {when} | <= 200 bytes | "
                           f"{heap:.1f} bytes of heap (counting allocator); {rss:.1f} bytes of RSS | "
                           f"{'met' if heap <= 200 else 'missed'} |")
    out.append("")

    # The other figures the README's notes quote, each from the same run.
    notes = []
    if hs:
        builtin_server = handshake(BUILTIN, 200000, field="server_median")
        ours_server = handshake(OURS, 200000, field="server_median")
        ours_loop = handshake(OURS, 200000)
        if builtin_server and ours_loop:
            notes.append(f"- at 200,000 entries, the built-in cache's server time per TLS 1.3 resumption: "
                         f"{1e3 / builtin_server:.2f} ms; our whole in-memory loop per resumption: {1e3 / ours_loop:.2f} ms")
        if builtin_server and ours_server:
            notes.append(f"- TLS 1.3 resumed handshakes per second of server time at 200,000: built-in "
                         f"{builtin_server:,.0f}, SessionCache {ours_server:,.0f}")
    four = ops("tls12", 200000, SHARDED, 2)
    if four:
        notes.append(f"- TLS 1.2 ops at 200,000 on 2 threads with 4 shards: {four / 1e6:.2f} M ops/s, "
                     f"{x(vs('tls12', 200000, SHARDED, BUILTIN, 2))} the built-in, "
                     f"{x(vs('tls12', 200000, SHARDED, MOKA, 2))} moka")
    for store in (OURS, MOKA):
        found = [shares[k] for k in shares if k[0] == "tls12" and k[2] == store]
        if found:
            notes.append(f"- TLS 1.2 lookups that found a live session, {store}: "
                         f"{min(found) * 100:.0f}% to {max(found) * 100:.0f}%")
    if mem:
        for r in mem["results"]:
            after = r.get("heap_per_session_after_turnover")
            notes.append(f"- heap per session at 200,000, {r['store']}: {r['heap_per_session']:.1f} bytes after filling"
                         + (f", {after:.1f} after five turnovers" if after is not None else ""))
    if notes:
        out.append("Figures the README's notes quote, from the same run:\n")
        out.extend(notes)
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
