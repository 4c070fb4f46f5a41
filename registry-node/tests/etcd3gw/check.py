"""The etcd3gw Python client (etcd's grpc-gateway JSON API) against one endpoint.

Usage: check.py HOST PORT. Prints one JSON line per step with what the client returned, with
ids and revisions left out, so the output of ours and of a real etcd compare equal.
Run by registry-node/tests/it/http_api.rs with PYTHONPATH at the etcd3gw install
(registry-node/tests/etcd3gw/install.sh).
"""
import json
import sys

import etcd3gw


def show(step, value):
    print(json.dumps({"step": step, "value": value}, sort_keys=True), flush=True)


def text(b):
    return b.decode() if isinstance(b, bytes) else b


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = etcd3gw.client(host=host, port=port, timeout=10)
    show("api_path", c.api_path)
    show("status_version", c.status()["version"])
    show("members", len(c.members()) > 0)
    show("put", c.put("gw/k1", "v1"))
    show("put", c.put("gw/k2", "v2"))
    show("get", [text(v) for v in c.get("gw/k1")])
    show("get_missing", c.get("gw/none"))
    meta = c.get("gw/k1", metadata=True)
    show("get_meta", [(text(v), text(m["key"]), m["version"]) for v, m in meta])
    show("get_prefix", sorted((text(v), text(m["key"])) for v, m in c.get_prefix("gw/")))
    show("get_range_limit", len(c.get("gw/", range_end="gw0", limit=1)))
    show("create_exists", c.create("gw/k1", "x"))
    show("create_new", c.create("gw/k3", "v3"))
    show("replace_ok", c.replace("gw/k1", "v1", "v1b"))
    show("replace_stale", c.replace("gw/k1", "v1", "v1c"))
    show("get_after_replace", [text(v) for v in c.get("gw/k1")])
    show("delete", c.delete("gw/k2"))
    show("delete_missing", c.delete("gw/k2"))
    lease = c.lease(30)
    show("lease_put", c.put("gw/leased", "lv", lease=lease))
    ttl = lease.ttl()
    show("lease_ttl_in_range", 0 < ttl <= 30)
    show("lease_keys", [text(k) for k in lease.keys()])
    show("lease_refresh", lease.refresh())
    show("lease_revoke", lease.revoke())
    show("leased_gone", c.get("gw/leased"))
    show("lease_ttl_after_revoke", lease.ttl())
    txn = c.transaction({
        "compare": [{"key": "Z3cvazE=", "result": "EQUAL", "target": "VALUE",
                     "value": "djFi"}],
        "success": [{"request_put": {"key": "Z3cvdHhu", "value": "eWVz"}}],
        "failure": [{"request_range": {"key": "Z3cvazE="}}],
    })
    show("txn", [txn["succeeded"], [list(r.keys()) for r in txn["responses"]]])
    show("get_txn", [text(v) for v in c.get("gw/txn")])
    events, cancel = c.watch("gw/watched", prev_kv=True)
    c.put("gw/watched", "w1")
    c.put("gw/watched", "w2")
    c.delete("gw/watched")
    seen = []
    for event in events:
        kv = event["kv"]
        prev = event.get("prev_kv", {})
        seen.append([event.get("type", "PUT"), text(kv["key"]), text(kv.get("value", b"")),
                     text(prev.get("value", b""))])
        if len(seen) == 3:
            break
    cancel()
    show("watch", seen)
    lock = c.lock("gw-lock", ttl=10)
    show("lock_acquire", lock.acquire())
    other = c.lock("gw-lock", ttl=10)
    show("lock_contended", other.acquire())
    show("lock_release", lock.release())
    show("lock_after_release", other.acquire())
    other.release()
    show("delete_prefix", c.delete_prefix("gw/"))
    show("get_prefix_empty", c.get_prefix("gw/"))


if __name__ == "__main__":
    main()
