#!/usr/bin/env bash
# Scale rows (issue 21), ours and a real etcd in the same run: `bash bench/compare.sh scale`.
# For every row and side a FRESH three-member cluster is started (so memory, CPU and the Raft
# term belong to that row alone), `bench --pids <the members>` runs the row, the cluster stops.
#
#   cargo build --release -p registry-node -p bench && bash bench/compare.sh scale
#   SMOKE=1 bash bench/compare.sh scale          # small counts, about a minute
#
# Rows: expiry (rows 1 and 2: 100,000 leases granted and kept alive, then left to expire at
# once), failover (row 3: the leader killed with SIGKILL under 100,000 live leases), watch (row
# 4: 10,000 watchers on 100 connections, 10,000 puts), micro (row 5: 10,000 go-micro instances,
# 1,000 cache-selector watchers). Environment: ROWS (subset, in order), SIDES ("etcd ours"),
# LEASES, WATCHERS, WATCH_PUTS, INSTANCES, MICRO_WATCHERS (the counts), SMOKE=1 (all small),
# OUT (the Markdown tables, default bench/scale-run.md), BENCH_TMP, NODE_BIN, ETCD, KEEP_TMP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
ETCD="${ETCD:-/usr/bin/etcd}"
NODE_BIN="${NODE_BIN:-$BIN/registry-node}"
BENCH="${BENCH_BIN:-$BIN/bench}"
OUT="${OUT:-$ROOT/bench/scale-run.md}"
ROWS="${ROWS:-expiry failover watch micro}"
SIDES="${SIDES:-etcd ours}"
if [[ "${SMOKE:-0}" == 1 ]]; then
  LEASES="${LEASES:-2000}"; WATCHERS="${WATCHERS:-500}"; WATCH_PUTS="${WATCH_PUTS:-500}"
  INSTANCES="${INSTANCES:-500}"; MICRO_WATCHERS="${MICRO_WATCHERS:-20}"; HOLD=3; MHOLD=5
else
  LEASES="${LEASES:-100000}"; WATCHERS="${WATCHERS:-10000}"; WATCH_PUTS="${WATCH_PUTS:-10000}"
  INSTANCES="${INSTANCES:-10000}"; MICRO_WATCHERS="${MICRO_WATCHERS:-1000}"; HOLD=15; MHOLD=20
fi
declare -A ARGS=(
  [expiry]="--clients 64 --conns 6 scale-expiry --leases $LEASES --ttl 30 --hold $HOLD --streams 12"
  [failover]="--clients 64 --conns 6 scale-failover --leases $LEASES --ttl 30 --hold 5 --streams 12"
  [watch]="--conns 100 scale-watch --watchers $WATCHERS --puts $WATCH_PUTS --prefixes 100 --put-clients 8"
  [micro]="--clients 64 --conns 12 scale-micro --instances $INSTANCES --watchers $MICRO_WATCHERS --ttl 30 --renew 10 --hold $MHOLD"
)
for b in "$NODE_BIN" "$BENCH" "$ETCD"; do
  [[ -x "$b" ]] || { echo "missing $b (cargo build --release -p registry-node -p bench)" >&2; exit 1; }
done

TMP="$(mktemp -d "${BENCH_TMP:-/var/tmp}/scale.XXXXXX")"
PIDS=()
stop_cluster() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do # a leader whose peers are gone may wait long on SIGTERM: 5 s
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
}
cleanup() { stop_cluster; [[ "${KEEP_TMP:-0}" == 1 ]] || rm -rf "$TMP"; }
trap cleanup EXIT

# Fixed loopback ports below the ephemeral range (32768+), apart from compare.sh's.
ETCD_CLIENT=(31379 31479 31579); ETCD_PEER=(31380 31480 31580)
OURS_CLIENT=(21379 21479 21579); OURS_PEER=(21380 21480 21580)
for p in "${ETCD_CLIENT[@]}" "${ETCD_PEER[@]}" "${OURS_CLIENT[@]}" "${OURS_PEER[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is busy" >&2; exit 1; fi
done
eps() { local -n c=$1; echo "127.0.0.1:${c[0]},127.0.0.1:${c[1]},127.0.0.1:${c[2]}"; }

start_etcd() { # data dir
  local init=""
  for i in 0 1 2; do init+="${init:+,}e$i=http://127.0.0.1:${ETCD_PEER[$i]}"; done
  mkdir -p "$1"
  for i in 0 1 2; do
    "$ETCD" --name "e$i" --data-dir "$1/e$i" \
      --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
      --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
      --initial-cluster "$init" --initial-cluster-token scale-etcd --initial-cluster-state new \
      --log-level warn >"$1/e$i.log" 2>&1 &
    PIDS+=($!)
  done
}

start_ours() { # data dir
  mkdir -p "$1"
  {
    echo '[cluster]'; echo 'token = "scale-ours"'; echo 'data_dir = "data"'
    for i in 0 1 2; do
      echo '[[member]]'; echo "name = \"cd$i\""
      echo "client_url = \"http://127.0.0.1:${OURS_CLIENT[$i]}\""
      echo "peer_url = \"http://127.0.0.1:${OURS_PEER[$i]}\""
    done
  } >"$1/cluster.toml"
  for i in 0 1 2; do
    RUST_LOG="${RUST_LOG:-warn}" "$NODE_BIN" --config "$1/cluster.toml" --name "cd$i" \
      >"$1/cd$i.log" 2>&1 &
    PIDS+=($!)
  done
}

wait_healthy() { # endpoints
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints "$1" --command-timeout=2s endpoint health >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.3
  done
  echo "cluster $1 did not become healthy" >&2; return 1
}

RESULTS="$TMP/results.jsonl"; : >"$RESULTS"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
T0=$(date +%s)
for row in $ROWS; do
  [[ -n "${ARGS[$row]:-}" ]] || { echo "unknown row $row" >&2; exit 1; }
  for side in $SIDES; do
    dir="$TMP/$row-$side"
    if [[ $side == etcd ]]; then start_etcd "$dir"; e="$(eps ETCD_CLIENT)"; else start_ours "$dir"; e="$(eps OURS_CLIENT)"; fi
    pids="$(IFS=,; echo "${PIDS[*]}")"
    echo "== $(date +%T) $row $side (pids $pids, load $(cut -d' ' -f1 /proc/loadavg))" >&2
    line='{"failed": true}'
    if wait_healthy "$e"; then
      # shellcheck disable=SC2086
      line="$("$BENCH" --endpoints "$e" --pids "$pids" --label "$side" ${ARGS[$row]} 2>>"$TMP/bench.log")" \
        || { line='{"failed": true}'; tail -3 "$TMP/bench.log" >&2; }
    fi
    echo "$line" | jq -c --arg r "$row" --arg s "$side" --arg l "$(cut -d' ' -f1-3 /proc/loadavg)" \
      '. + {name: $r, side: $s, load: $l}' >>"$RESULTS"
    echo "$line" >&2
    stop_cluster
    [[ "${KEEP_TMP:-0}" == 1 ]] || rm -rf "$dir"
  done
done
ELAPSED=$(( $(date +%s) - T0 ))
cp "$RESULTS" "$ROOT/bench/scale-last-run.jsonl"
{
  echo "Generated by \`bench/compare.sh scale\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED}s"
  echo "($(nproc) cores, load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg);"
  echo "the machine is shared: compare the two sides of the same run). Commands:"
  echo
  for row in $ROWS; do echo "- \`$row\`: \`bench --endpoints <3 members> --pids <their pids> ${ARGS[$row]}\`"; done
  echo
  python3 "$ROOT/bench/scale_report.py" "$RESULTS" || echo "(scale_report.py failed: raw results in bench/scale-last-run.jsonl)"
} >"$OUT"
echo "wrote $OUT" >&2
