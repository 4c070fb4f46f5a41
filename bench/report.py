#!/usr/bin/env python3
"""Turns compare.sh's results (one JSON line per bench run) and member memory into the
Markdown tables of BENCHMARKS.md: per-run figures, then ours/etcd ratios against issue 6's
targets. Usage: report.py results.jsonl mem.txt"""

import json
import sys
from statistics import mean

results = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mem = [l.split() for l in open(sys.argv[2]) if l.strip()]


def runs(name, side):
    return [r for r in results if r.get("name") == name and r.get("side") == side and not r.get("failed")]


def avg(name, side, field):
    vals = [r[field] for r in runs(name, side) if isinstance(r.get(field), (int, float))]
    return mean(vals) if vals else None


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and abs(v) >= 100:
        return f"{round(v):,}"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.{digits}f}"
    return f"{int(v):,}"


def ratio(name, field):
    a, b = avg(name, "ours", field), avg(name, "etcd", field)
    if a is None or not b:
        return None
    return a / b


# --- per-run table (printed last)
COLS = {
    "put1": ["ops_per_s", "p50_ms", "p99_ms", "max_ms", "errors"],
    "put64": ["ops_per_s", "p50_ms", "p99_ms", "max_ms", "errors"],
    "range_l": ["ops_per_s", "p50_ms", "p99_ms", "max_ms", "errors"],
    "range_s": ["ops_per_s", "p50_ms", "p99_ms", "max_ms", "errors"],
    "lease": ["grant_s", "grant_per_s", "p99_ms", "put_s", "lost", "keepalives_expired", "grant_errors"],
    "watch": ["delivered", "all_delivered", "p50_ms", "p99_ms", "max_ms", "put_p50_ms"],
    "gateway": ["ops_per_s", "p50_ms", "p99_ms", "max_ms", "errors"],
}
LINES = []


def out(*a):
    LINES.append(" ".join(str(x) for x in a))


out("## Results, every run")
out()
for name, cols in COLS.items():
    rs = [r for r in results if r.get("name") == name]
    if not rs:
        continue
    out(f"### {name}")
    out()
    out("| round | side | " + " | ".join(cols) + " |")
    out("| --- | --- | " + " | ".join("---" for _ in cols) + " |")
    for r in rs:
        if r.get("failed"):
            out(f"| {r['round']} | {r['side']} | failed |" + " |" * (len(cols) - 1))
            continue
        out(f"| {r['round']} | {r['side']} | " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    out()


# --- summary against the targets
rows = []


def check(label, target, ours, etcd, r, ok):
    rows.append((label, target, ours, etcd, "n/a" if r is None else f"{r:.2f}x", ok))


def met(cond):
    return "**met**" if cond else "not met"


if runs("put1", "ours"):
    r = ratio("put1", "p50_ms")
    check("put, 1 client (leader): p50", "<= 1.0x", fmt(avg("put1", "ours", "p50_ms")) + " ms",
          fmt(avg("put1", "etcd", "p50_ms")) + " ms", r, met(r is not None and r <= 1.0))
if runs("put64", "ours"):
    r = ratio("put64", "ops_per_s")
    check("put, 64 clients / 4 conns: throughput", ">= 1.5x", fmt(avg("put64", "ours", "ops_per_s")) + "/s",
          fmt(avg("put64", "etcd", "ops_per_s")) + "/s", r, met(r is not None and r >= 1.5))
    r = ratio("put64", "p99_ms")
    check("put, 64 clients / 4 conns: p99", "<= 1.0x", fmt(avg("put64", "ours", "p99_ms")) + " ms",
          fmt(avg("put64", "etcd", "p99_ms")) + " ms", r, met(r is not None and r <= 1.0))
for name, label in (("range_l", "range linearizable, 64 clients"), ("range_s", "range serializable, 64 clients")):
    if runs(name, "ours"):
        r = ratio(name, "ops_per_s")
        check(label + ": throughput", ">= 1.5x", fmt(avg(name, "ours", "ops_per_s")) + "/s",
              fmt(avg(name, "etcd", "ops_per_s")) + "/s", r, met(r is not None and r >= 1.5))
if runs("lease", "ours"):
    r = ratio("lease", "grant_s")
    check("10,000 leases: grant time", "<= 1.0x", fmt(avg("lease", "ours", "grant_s")) + " s",
          fmt(avg("lease", "etcd", "grant_s")) + " s", r, met(r is not None and r <= 1.0))
    lost_ours = sum(x.get("lost", 0) for x in runs("lease", "ours"))
    lost_etcd = sum(x.get("lost", 0) for x in runs("lease", "etcd"))
    check("10,000 leases kept alive: lost keys (all rounds)", "0", fmt(lost_ours), fmt(lost_etcd), None,
          met(lost_ours == 0))
if runs("watch", "ours"):
    all_ours = all(x.get("all_delivered") for x in runs("watch", "ours"))
    all_etcd = all(x.get("all_delivered") for x in runs("watch", "etcd"))
    r = ratio("watch", "p99_ms")
    check("200 watchers x 1,000 puts: delivery p99", "all delivered, <= 1.0x",
          fmt(avg("watch", "ours", "p99_ms")) + " ms" + ("" if all_ours else " (NOT all delivered)"),
          fmt(avg("watch", "etcd", "p99_ms")) + " ms" + ("" if all_etcd else " (NOT all delivered)"),
          r, met(all_ours and r is not None and r <= 1.0))
rss = {s: [int(m[2]) for m in mem if m[0] == s and int(m[2]) > 0] for s in ("etcd", "ours")}
if rss["ours"] and rss["etcd"]:
    r = max(rss["ours"]) / max(rss["etcd"])
    check("resident memory per member (largest)", "<= 0.5x", f"{max(rss['ours']) / 1024:.1f} MiB",
          f"{max(rss['etcd']) / 1024:.1f} MiB", r, met(r <= 0.5))
if runs("gateway", "chain") and runs("gateway", "bare"):
    # Not against etcd: the chain (gateway -> api -> srv) against a bare hello-world handler.
    c, b = avg("gateway", "chain", "ops_per_s"), avg("gateway", "bare", "ops_per_s")
    r = c / b if b else None
    check("gateway chain, 64 connections: req/s (etcd column: bare hello-world)", ">= 40% of bare",
          f"{fmt(c)}/s, p99 {fmt(avg('gateway', 'chain', 'p99_ms'))} ms",
          f"{fmt(b)}/s, p99 {fmt(avg('gateway', 'bare', 'p99_ms'))} ms", r, met(r is not None and r >= 0.4))
else:
    rows.append(("gateway chain, 64 connections", ">= 40% of bare", "not run", "-", "-", "not measured"))

print("## Summary: ours / etcd against issue 6's targets")
print()
print("| workload | target | ours | etcd | ours/etcd | |")
print("| --- | --- | --- | --- | --- | --- |")
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
print("## Resident memory at the end (VmRSS)")
print()
print("| member | VmRSS |")
print("| --- | --- |")
for m in mem:
    print(f"| {m[0]} {m[1]} | {int(m[2]) / 1024:.1f} MiB |")

print()
for l in LINES:
    print(l)
