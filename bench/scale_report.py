#!/usr/bin/env python3
"""Turns bench/scale.sh's results (one JSON line per row and side) into the Markdown tables of
the scale section: each figure for etcd and ours, the ratio ours / etcd, the goal and whether
ours meets it. Usage: scale_report.py results.jsonl"""

import json
import sys

results = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]


def run(name, side):
    for r in results:
        if r.get("name") == name and r.get("side") == side:
            return r
    return None


def get(r, field):
    if r is None or r.get("failed"):
        return None
    v = r.get(field)
    if field.endswith("_max") and isinstance(r.get(field[:-4]), list):
        vals = [x for x in r[field[:-4]] if isinstance(x, (int, float))]
        return max(vals) if vals else None
    return v


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and abs(v) >= 100:
        return f"{round(v):,}"
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# (row, label, field, goal text, check on ours' value or None)
ROWS = [
    ("expiry", "1: grant N leases, s", "grant_s", "", None),
    ("expiry", "1: put N keys on them, s", "put_s", "", None),
    ("expiry", "1: keep-alive p99, ms", "keepalive_p99_ms", "", None),
    ("expiry", "1: keys lost", "lost", "0", lambda v: v == 0),
    ("expiry", "1: keys on a wrong lease", "wrong_lease", "0", lambda v: v == 0),
    ("expiry", "1: RSS of the largest member, MiB", "rss_mib_max", "", None),
    ("expiry", "1: members' CPU while keeping alive, % of a core", "hold_cpu_pct_sum", "", None),
    ("expiry", "2: all keys gone, s after the first lease fell due", "all_gone_after_first_due_s", "<= 10",
     lambda v: v <= 10),
    ("expiry", "2: all keys gone, s after the last lease fell due", "all_gone_after_last_due_s", "", None),
    ("expiry", "2: write p99 during the expiry, ms", "write_p99_ms", "", None),
    ("expiry", "2: write max during the expiry, ms", "write_max_ms", "", None),
    ("expiry", "2: elections caused", "elections", "0", lambda v: v == 0),
    ("failover", "3: writes accepted again, s after the kill", "writes_back_s", "< 2", lambda v: v < 2),
    ("failover", "3: new leader agreed, s after the kill", "new_leader_s", "", None),
    ("failover", "3: keys lost", "lost", "0", lambda v: v == 0),
    ("failover", "3: keys on a wrong lease", "wrong_lease", "0", lambda v: v == 0),
    ("failover", "3: leases renewed after the kill (of N)", "renewed_after_kill", "all", None),
    ("failover", "3: keep-alive answers TTL 0 after the kill", "keepalives_expired_after_kill", "0",
     lambda v: v == 0),
    ("failover", "3: keep-alive wait p99 after the kill, ms", "failover_keepalive_p99_ms", "", None),
    ("failover", "3: keep-alive wait max after the kill, ms", "failover_keepalive_max_ms", "", None),
    ("failover", "3: keep-alive wait max once writes were accepted again, ms",
     "failover_keepalive_after_writes_max_ms", "<= 1,000 (one election timeout)",
     lambda v: v <= 1000),
    ("watch", "4: all delivered", "all_delivered", "yes", lambda v: v is True),
    ("watch", "4: delivery p99, ms", "p99_ms", "", None),
    ("watch", "4: member memory per watcher, bytes", "bytes_per_watcher", "", None),
    ("watch", "4: watcher set-up, s", "setup_s", "", None),
    ("micro", "5: registrations/s", "registrations_per_s", "", None),
    ("micro", "5: registry CPU while registering, % of a core (3 members)", "register_cpu_pct_sum", "", None),
    ("micro", "5: registry CPU while renewing, % of a core (3 members)", "renew_cpu_pct_sum", "", None),
    ("micro", "5: watch fan-out p99, ms", "fanout_p99_ms", "", None),
    ("micro", "5: registrations that failed", "register_errors", "", None),
    ("micro", "5: all delivered", "all_delivered", "yes", lambda v: v is True),
    ("micro", "5: events delivered (of registrations x watchers)", "delivered", "", None),
    ("micro", "5: every event in, s from the first registration", "all_delivered_after_s", "", None),
    ("micro", "5: renewals answered TTL 0 (lease lost)", "renew_ttl_zero", "0", lambda v: v == 0),
    ("micro", "5: renewal (KeepAliveOnce) p99, ms", "renew_p99_ms", "", None),
]

print("| row: figure | etcd | ours | ours / etcd | goal | ours meets it |")
print("| --- | --- | --- | --- | --- | --- |")
for name, label, field, goal, check in ROWS:
    e, o = get(run(name, "etcd"), field), get(run(name, "ours"), field)
    if field == "renewed_after_kill":
        o_run = run(name, "ours")
        check = (lambda v, n=(o_run or {}).get("leases"): v == n)
    ratio = "n/a"
    if is_num(e) and is_num(o) and e:
        r = o / e
        ratio = f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x"
    met = "" if check is None else ("n/a" if o is None else ("yes" if check(o) else "**no**"))
    print(f"| {label} | {fmt(e)} | {fmt(o)} | {ratio} | {goal} | {met} |")
print()
print("Failed runs: " + (", ".join(f"{r['name']} {r['side']}" for r in results if r.get("failed")) or "none") + ".")
print()
print("### Every figure of the run")
print()
for name in dict.fromkeys(r.get("name") for r in results):
    e, o = run(name, "etcd") or {}, run(name, "ours") or {}
    keys = [k for k in dict.fromkeys(list(e) + list(o)) if k not in ("name", "side", "label", "endpoints")]
    print(f"<details><summary>{name}</summary>")
    print()
    print("| field | etcd | ours |")
    print("| --- | --- | --- |")
    for k in keys:
        print(f"| {k} | {fmt(e.get(k))} | {fmt(o.get(k))} |")
    print()
    print("</details>")
    print()
