#!/usr/bin/env bash
# The soak (issue 18 part 1), ours and a real etcd 3.4 in the same run: `bash bench/compare.sh soak`.
# An hour of the seed's go-micro churn (4 instances, TTL 30 s, renewed every 10 s, restarting
# every minute, plus plain puts) compressed SPEED times, against a fresh three-member cluster
# per side, one side after the other, both with the same periodic auto-compaction: a
# retention of the seed's 5 minutes, compressed by the same factor (15 s at SPEED=20), as an
# operator would keep 5 minutes of history. `bench soak` samples each member's VmRSS, the
# revision, the compacted revision and /metrics' db sizes; `bench soak-report` writes the
# table and the verdict ("memory flat once compaction runs": the summed RSS's last third vs
# its second third).
#
#   cargo build --release -p registry-node -p bench && bash bench/compare.sh soak
#   SMOKE=1 bash bench/compare.sh soak        # 20 seed minutes at 60x per side: under a minute
#
# Environment: SIM_SECS (3600), SPEED (20), INSTANCES (4), PUTS (plain puts per seed second,
# 50; SMOKE: 25), SAMPLE (real seconds between samples, 5), SIDES ("ours etcd"), SMOKE=1, OUT (the
# Markdown, default bench/soak.md; with SMOKE=1 $BENCH_TMP/soak-smoke.md), BENCH_TMP, NODE_BIN,
# ETCD, KEEP_TMP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
ETCD="${ETCD:-/usr/bin/etcd}"
NODE_BIN="${NODE_BIN:-$BIN/registry-node}"
BENCH="${BENCH_BIN:-$BIN/bench}"
SIDES="${SIDES:-ours etcd}"
if [[ "${SMOKE:-0}" == 1 ]]; then
  SIM_SECS="${SIM_SECS:-1200}"; SPEED="${SPEED:-60}"; SAMPLE="${SAMPLE:-1}"; PUTS="${PUTS:-25}"
  OUT="${OUT:-${BENCH_TMP:-/var/tmp}/soak-smoke.md}"; RAW=""
else
  SIM_SECS="${SIM_SECS:-3600}"; SPEED="${SPEED:-20}"; SAMPLE="${SAMPLE:-5}"
  OUT="${OUT:-$ROOT/bench/soak.md}"; RAW="$ROOT/bench/soak-run.jsonl"
fi
INSTANCES="${INSTANCES:-4}"; PUTS="${PUTS:-50}"
RETENTION="$(( 300000 / SPEED ))ms"
ARGS="--conns 6 soak --sim-secs $SIM_SECS --speed $SPEED --instances $INSTANCES --ttl 30 --renew 10 --restart 60 --puts $PUTS --keys 1000 --val-size 256 --sample $SAMPLE"
COMPACTION=(--auto-compaction-mode periodic --auto-compaction-retention "$RETENTION")
for b in "$NODE_BIN" "$BENCH" "$ETCD"; do
  [[ -x "$b" ]] || { echo "missing $b (cargo build --release -p registry-node -p bench)" >&2; exit 1; }
done

TMP="$(mktemp -d "${BENCH_TMP:-/var/tmp}/soak.XXXXXX")"
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

# Fixed loopback ports below the ephemeral range (32768+), apart from compare.sh's and scale.sh's.
ETCD_CLIENT=(30379 30479 30579); ETCD_PEER=(30380 30480 30580)
OURS_CLIENT=(23379 23479 23579); OURS_PEER=(23380 23480 23580)
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
      --initial-cluster "$init" --initial-cluster-token soak-etcd --initial-cluster-state new \
      "${COMPACTION[@]}" --log-level warn >"$1/e$i.log" 2>&1 &
    PIDS+=($!)
  done
}

start_ours() { # data dir
  mkdir -p "$1"
  {
    echo '[cluster]'; echo 'token = "soak-ours"'; echo 'data_dir = "data"'
    for i in 0 1 2; do
      echo '[[member]]'; echo "name = \"cd$i\""
      echo "client_url = \"http://127.0.0.1:${OURS_CLIENT[$i]}\""
      echo "peer_url = \"http://127.0.0.1:${OURS_PEER[$i]}\""
    done
  } >"$1/cluster.toml"
  for i in 0 1 2; do
    RUST_LOG="${RUST_LOG:-warn}" "$NODE_BIN" --config "$1/cluster.toml" --name "cd$i" \
      "${COMPACTION[@]}" >"$1/cd$i.log" 2>&1 &
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
for side in $SIDES; do
  dir="$TMP/$side"
  if [[ $side == etcd ]]; then start_etcd "$dir"; e="$(eps ETCD_CLIENT)"; else start_ours "$dir"; e="$(eps OURS_CLIENT)"; fi
  pids="$(IFS=,; echo "${PIDS[*]}")"
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "== $(date +%T) soak $side (pids $pids, load $load)" >&2
  line='{"failed": true}'
  if wait_healthy "$e"; then
    # shellcheck disable=SC2086
    line="$("$BENCH" --endpoints "$e" --pids "$pids" --label "$side" $ARGS 2>>"$TMP/bench.log")" \
      || { line='{"failed": true}'; tail -3 "$TMP/bench.log" >&2; }
  fi
  echo "$line" | jq -c --arg s "$side" --arg l "$load -> $(cut -d' ' -f1-3 /proc/loadavg)" \
    '. + {side: $s, load: $l}' >>"$RESULTS"
  echo "$line" | jq -c 'del(.samples)' >&2 || echo "$line" >&2
  stop_cluster
  [[ "${KEEP_TMP:-0}" == 1 ]] || rm -rf "$dir"
done
ELAPSED=$(( $(date +%s) - T0 ))
[[ -n "$RAW" ]] && cp "$RESULTS" "$RAW"
{
  echo "## Soak: an hour of go-micro churn, memory over time (issue 18)"
  echo
  echo "Generated by \`bench/compare.sh soak\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED}s"
  echo "($(nproc) cores, load average (1/5/15 min) at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg);"
  echo "the machine is shared with other builds: compare the two sides of the same run)."
  echo "$SIM_SECS seed seconds at ${SPEED}x per side, one side after the other, each on a fresh"
  echo "three-member cluster started with \`--auto-compaction-mode periodic --auto-compaction-retention $RETENTION\`"
  echo "(the seed's 5 minutes of history, compressed ${SPEED}x). Churn: $INSTANCES go-micro instances"
  echo "(lease TTL 30 s, a keep-alive every 10 seed seconds, a restart every 60: revoke, grant, put under a new"
  echo "node id, a selector read) and $PUTS plain puts of 256 B per seed second over 1,000 keys."
  echo "Command: \`bench --endpoints <3 members> --pids <their pids> $ARGS\`. RSS is each member's"
  echo "VmRSS; \"in use\" is \`etcd_mvcc_db_total_size_in_use_in_bytes\` of the first member (ours: the"
  echo "store's size estimate); \"compacted\" is HashKV's compact revision."
  echo
  "$BENCH" soak-report --input "$RESULTS" || echo "(soak-report failed: raw results in $RESULTS)"
} >"$OUT"
echo "wrote $OUT" >&2
