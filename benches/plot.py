#!/usr/bin/env python3
"""Draws TLS 1.3 resumed handshakes per second against prefilled entries, SessionCache
and rustls's built-in cache, from target/bench-results/handshakes.json (written by
`cargo bench --bench handshakes`). Writes docs/tls13-resumed-handshakes.svg.

Plain SVG, standard library only: log-scale axes, one colour per cache; solid lines
for the server's own time, dashed for the whole in-memory loop (client crypto too).
Each point is labelled with its value.
"""

import json
import math
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "target" / "bench-results" / "handshakes.json"
TARGET = ROOT / "docs" / "tls13-resumed-handshakes.svg"
SERIES = [("SessionCache", "SessionCache", "#1f77b4"), ("rustls-builtin", "rustls-builtin", "#d62728")]

W, H = 760, 440
LEFT, RIGHT, TOP, BOTTOM = 80, 230, 40, 60


def main():
    data = json.loads(SOURCE.read_text())
    points = {}
    for r in data["results"]:
        if r["version"] == "1.3" and r["kind"] == "resumed":
            points.setdefault((r["store"], "server_median"), []).append((r["size"], r["server_median"]))
            points.setdefault((r["store"], "median"), []).append((r["size"], r["median"]))
    sizes = sorted({s for series in points.values() for s, _ in series})
    values = [v for series in points.values() for _, v in series]
    x_lo, x_hi = math.log10(min(sizes)), math.log10(max(sizes))
    y_lo = 10 ** math.floor(math.log10(min(values)))
    y_hi = 10 ** math.ceil(math.log10(max(values)))

    def x(size):
        return LEFT + (math.log10(size) - x_lo) / (x_hi - x_lo) * (W - LEFT - RIGHT)

    def y(value):
        return TOP + (math.log10(y_hi) - math.log10(value)) / (math.log10(y_hi) - math.log10(y_lo)) * (H - TOP - BOTTOM)

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2 - 60}" y="22" text-anchor="middle" font-size="15">TLS 1.3 resumed handshakes per second (log scale)</text>',
    ]
    decade = y_lo
    while decade <= y_hi:
        svg.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{LEFT - 8}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:,.0f}</text>')
        decade *= 10
    for size in sizes:
        svg.append(f'<line x1="{x(size):.1f}" x2="{x(size):.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#eee"/>')
        svg.append(f'<text x="{x(size):.1f}" y="{H - BOTTOM + 18}" text-anchor="middle">{size:,}</text>')
    svg.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 15}" text-anchor="middle">sessions prefilled in the cache (log scale)</text>')
    svg.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="black"/>')
    svg.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="black"/>')
    legend = 0
    for store, label, colour in SERIES:
        for field, kind, dash in (("server_median", "server", ""), ("median", "loop", ' stroke-dasharray="6,4"')):
            series = sorted(points.get((store, field), []))
            path = " ".join(f"{'M' if j == 0 else 'L'}{x(s):.1f},{y(v):.1f}" for j, (s, v) in enumerate(series))
            svg.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2.5"{dash}/>')
            for s, v in series:
                svg.append(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="4" fill="{colour}"/>')
            # Only the last point is labelled (the lines overlap elsewhere): the server
            # figure above its point, the loop figure below.
            if series:
                s, v = series[-1]
                dy = -8 if kind == "server" else 16
                svg.append(f'<text x="{x(s) - 6:.1f}" y="{y(v) + dy:.1f}" fill="{colour}" text-anchor="end">{v:,.0f}</text>')
            ly = TOP + 20 + legend * 22
            legend += 1
            svg.append(f'<line x1="{W - RIGHT + 15}" x2="{W - RIGHT + 40}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2.5"{dash}/>')
            svg.append(f'<text x="{W - RIGHT + 46}" y="{ly + 4}">{label.split()[0]}, {kind}</text>')
    cpu, _, cores = data["machine"].partition(", ")
    notes = [cpu.replace("(R)", "")[:28], cores, "ring, ECDSA P-256, 1 thread", "medians of 5 runs",
             "server: the server's own time", "loop: client crypto too"]
    for i, note in enumerate(notes):
        svg.append(f'<text x="{W - RIGHT + 15}" y="{TOP + 120 + i * 16}" fill="#555">{note}</text>')
    svg.append("</svg>")
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text("\n".join(svg) + "\n")
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
