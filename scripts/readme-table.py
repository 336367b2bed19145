#!/usr/bin/env python3
"""Condenses bench-results/report.md into the README's benchmark table (stdout, Markdown)."""
import json
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "bench-results/report.md"
rows = {}
for line in open(path):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 16 or cells[0] in ("workload", "---"):
        continue
    rows.setdefault((cells[0], cells[1]), {})[cells[2]] = cells

print("| workload | size B | server | msgs/s | best reference msgs/s | x msgs/s | p99 µs | x p99 | x CPU |")
print("|---|---|---|---|---|---|---|---|---|")


def rate(c):
    v = c[3]
    mult = {"M": 1e6, "k": 1e3}.get(v[-1], 1)
    return float(v.rstrip("Mk")) * mult


for (workload, size), by_server in rows.items():
    # Every "tachyon..." server is under test (e.g. default shards and --shards 1).
    mine = [(n, c) for n, c in by_server.items() if n.startswith("tachyon")]
    refs = [c for n, c in by_server.items() if not n.startswith("tachyon") and c[3] != "-"]
    best = max(refs, key=rate) if refs else None
    best_txt = f"{best[3]} ({best[2]})" if best else "-"
    for name, t in mine:
        print(f"| {workload} | {size} | {name} | {t[3]} | {best_txt} | {t[12]} | {t[6]} | {t[13]} | {t[14]} |")
