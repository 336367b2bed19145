#!/usr/bin/env python3
"""Condenses bench-results/report.md into the README's benchmark table (stdout, Markdown)."""
import json
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "bench-results/report.md"
rows = {}
col = None  # header name -> index, from the table's own header row
for line in open(path):
    if not line.startswith("|"):
        continue
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if cells[0] == "workload":
        col = {name: i for i, name in enumerate(cells)}
        continue
    if col is None or len(cells) != len(col) or cells[0].startswith("---"):
        continue
    rows.setdefault((cells[0], cells[1]), {})[cells[2]] = cells

print("| workload | size B | server | msgs/s | best reference msgs/s | x msgs/s | p99 µs | x p99 | x CPU |")
print("|---|---|---|---|---|---|---|---|---|")


def rate(c):
    v = c[col["msgs/s"]]
    mult = {"M": 1e6, "k": 1e3}.get(v[-1], 1)
    return float(v.rstrip("Mk")) * mult


for (workload, size), by_server in rows.items():
    # Every "tachyon..." server is under test (e.g. default shards and --shards 1).
    mine = [(n, c) for n, c in by_server.items() if n.startswith("tachyon")]
    m = col["msgs/s"]
    refs = [c for n, c in by_server.items() if not n.startswith("tachyon") and c[m] != "-"]
    best = max(refs, key=rate) if refs else None
    best_txt = f"{best[m]} ({best[col['server']]})" if best else "-"
    for name, t in mine:
        cells = [t[m], best_txt, t[col["x msgs/s"]], t[col["p99 us"]], t[col["x p99"]], t[col["x CPU"]]]
        print(f"| {workload} | {size} | {name} | " + " | ".join(cells) + " |")
