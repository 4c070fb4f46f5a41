#!/usr/bin/env bash
# Side-by-side benchmark: a real three-member etcd (Debian's /usr/bin/etcd, default durability:
# it fsyncs its WAL before acknowledging) and our three registry members (the raft-log WAL is
# fsynced, group-committed, before openraft reports the append), both on loopback, both with
# data on the same disk. Every workload runs against both in alternation, A B A B, and the
# results go to BENCHMARKS.md (plus bench/findings.md, the hand-written profile notes).
#
#   cargo build --release -p registry-node -p bench -p micro-cli && bash bench/compare.sh
#
# Environment: ROUNDS (2), QUICK=1 (smaller totals, for trying the script out),
# UP_ONLY=1 (start both clusters and wait, for profiling by hand),
# OUT (BENCHMARKS.md), BENCH_TMP (parent of the temp data dir, default /var/tmp),
# NODE_BIN (our registry-node binary, default target/release/registry-node: to compare builds),
# OURS_RAFT (extra `key = value` lines for our members' [raft] section, e.g. to compare
# "log_cache_entries = 8192" with the default), WORKLOADS (space-separated subset of: put1 put64 range_l range_s lease watch gateway;
# gateway runs bench/gateway.sh: the demo chain vs a bare hello-world, no etcd involved).
#
# `bash bench/compare.sh scale` runs the scale rows instead (issue 21: 100,000 leases, mass
# expiry, leader killed under them, 10,000 watchers, go-micro-shaped load): see bench/scale.sh.
# `bash bench/compare.sh soak` runs the soak instead (issue 18: an hour of go-micro churn
# compressed, memory over time with auto-compaction on, ours and etcd): see bench/soak.sh.
set -euo pipefail
if [[ "${1:-}" == scale ]]; then
  shift
  exec bash "$(dirname "$0")/scale.sh" "$@"
fi
if [[ "${1:-}" == soak ]]; then
  shift
  exec bash "$(dirname "$0")/soak.sh" "$@"
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
OUT="${OUT:-$ROOT/BENCHMARKS.md}"
ROUNDS="${ROUNDS:-2}"
QUICK="${QUICK:-0}"
WORKLOADS="${WORKLOADS:-put1 put64 range_l range_s lease watch gateway}"
ETCD="${ETCD:-/usr/bin/etcd}"
NODE_BIN="${NODE_BIN:-$BIN/registry-node}"

for b in "$NODE_BIN" "$BIN/bench" "$ETCD"; do
  [[ -x "$b" ]] || { echo "missing $b (cargo build --release -p registry-node -p bench -p micro-cli)" >&2; exit 1; }
done

TMP="$(mktemp -d "${BENCH_TMP:-/var/tmp}/compare.XXXXXX")"
# Fixed loopback ports below the ephemeral range (32768+ here: a port in it can be taken by any
# process's outgoing connection), distinct for the two clusters; cluster.sh refuses busy ones,
# starts and stops the clusters (both run at once here) and removes $TMP on exit.
ETCD_CLIENT=(32379 32479 32579); ETCD_PEER=(32380 32480 32580)
OURS_CLIENT=(22379 22479 22579); OURS_PEER=(22380 22480 22580)
CLUSTER_TAG=bench
# shellcheck source=bench/cluster.sh
source "$ROOT/bench/cluster.sh"
ETCD_EPS="$(eps ETCD_CLIENT)"
OURS_EPS="$(eps OURS_CLIENT)"

start_etcd "$TMP/etcd"
PIDS_ETCD=("${PIDS[@]}")
start_ours "$TMP/ours"
PIDS_OURS=("${PIDS[@]:3}")
wait_healthy "$ETCD_EPS"
wait_healthy "$OURS_EPS"
if [[ "${UP_ONLY:-0}" == 1 ]]; then
  echo "etcd: $ETCD_EPS (pids ${PIDS_ETCD[*]})" >&2
  echo "ours: $OURS_EPS (pids ${PIDS_OURS[*]})" >&2
  echo "data: $TMP; Ctrl-C or SIGTERM to stop" >&2
  trap 'exit 0' TERM INT
  while true; do sleep 1; done
fi

# --- workloads: name | bench arguments
if [[ "$QUICK" == 1 ]]; then S=10; else S=1; fi
declare -A ARGS=(
  [put1]="--clients 1 --conns 1 --target-leader put --total $((2000 / S)) --key-space 100000 --val-size 256"
  [put64]="--clients 64 --conns 4 put --total $((30000 / S)) --key-space 100000 --val-size 256"
  [range_l]="--clients 64 --conns 4 range --consistency l --total $((40000 / S))"
  [range_s]="--clients 64 --conns 4 range --consistency s --total $((60000 / S))"
  [lease]="--clients 64 --conns 4 lease --leases $((10000 / S)) --ttl 10 --duration $((30 / S))"
  [watch]="--conns 4 watch --watchers 200 --puts $((1000 / S))"
)
RESULTS="$TMP/results.jsonl"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
T0=$(date +%s)
for w in $WORKLOADS; do
  if [[ $w == gateway ]]; then
    ROUNDS="$ROUNDS" QUICK="$QUICK" bash "$ROOT/bench/gateway.sh" >>"$RESULTS" \
      || echo '{"failed": true, "name": "gateway", "side": "chain", "round": 0}' >>"$RESULTS"
    continue
  fi
  for r in $(seq 1 "$ROUNDS"); do
    for side in etcd ours; do
      if [[ $side == etcd ]]; then eps="$ETCD_EPS"; else eps="$OURS_EPS"; fi
      echo "== $(date +%T) $w round $r $side" >&2
      # shellcheck disable=SC2086
      line="$("$BIN/bench" --endpoints "$eps" --label "$side" ${ARGS[$w]} 2>>"$TMP/bench.log")" \
        || line='{"failed": true}'
      echo "$line" | jq -c --arg w "$w" --arg s "$side" --argjson r "$r" \
        '. + {name: $w, side: $s, round: $r}' >>"$RESULTS"
      echo "$line" >&2
    done
  done
done
ELAPSED=$(( $(date +%s) - T0 ))
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- resident memory of each member
MEM="$TMP/mem.txt"; : >"$MEM"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
for i in 0 1 2; do echo "etcd e$i $(rss "${PIDS_ETCD[$i]}")" >>"$MEM"; done
for i in 0 1 2; do echo "ours cd$i $(rss "${PIDS_OURS[$i]}")" >>"$MEM"; done

cp "$RESULTS" "$ROOT/bench/last-run.jsonl"

# --- the report
{
  echo "# Benchmarks: our registry vs etcd 3.4.23, side by side"
  echo
  echo "Generated by \`bench/compare.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED}s."
  echo "Reproduce: \`cargo build --release -p registry-node -p bench -p micro-cli && bash bench/compare.sh\`."
  echo
  echo "## Machine"
  echo
  echo "- cores: $(nproc); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "- disk: $(df -T "$TMP" | awk 'NR==2 {print $1" ("$2")"}'), data dirs under \`${BENCH_TMP:-/var/tmp}\`"
  echo "- kernel: $(uname -sr); etcd: $("$ETCD" --version | head -1)"
  echo "- load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END (the machine is shared"
  echo "  with other engineers' builds: figures are noisy, compare the two sides of the same run)"
  echo
  echo "## Setup"
  echo
  echo "- etcd: three members, default settings (WAL fsynced before a write is acknowledged),"
  echo "  clients on ${ETCD_CLIENT[*]}, peers on ${ETCD_PEER[*]}."
  echo "- ours: three \`registry-node\` processes (\`--name cd0..cd2\`, generated cluster file),"
  echo "  clients on ${OURS_CLIENT[*]}, peers on ${OURS_PEER[*]}; the raft-log WAL is fsynced"
  echo "  (group commit) before an append is reported, so an acknowledged write is on disk on a majority."
  echo "- order: for each workload, $ROUNDS rounds of etcd then ours (A B A B); the ratio is"
  echo "  ours / etcd of the mean of the rounds."
  echo
  echo "## Commands (\`bench --endpoints <the cluster's three client addresses>\` + ...)"
  echo
  for w in $WORKLOADS; do
    if [[ $w == gateway ]]; then
      echo "- \`gateway\`: \`bash bench/gateway.sh\`: \`micro up\` (our 3 members, 2 srv, 2 api, the gateway on"
      echo "  free loopback ports) and \`bench hello\`; then, $ROUNDS rounds of bare then chain,"
      echo "  \`bench http --url http://<bare or gateway>/greeter/say/hello?name=John --conns 64 --total $((40000 / S))\`"
    else
      echo "- \`$w\`: \`bench ${ARGS[$w]}\`"
    fi
  done
  echo
  python3 "$ROOT/bench/report.py" "$RESULTS" "$MEM" || echo "(report.py failed: raw results in bench/last-run.jsonl)"
  echo
  if [[ -f "$ROOT/bench/findings.md" ]]; then cat "$ROOT/bench/findings.md"; fi
  # The scale rows (issue 21) come from their own, longer run: `compare.sh scale`.
  if [[ -f "$ROOT/bench/scale.md" ]]; then echo; cat "$ROOT/bench/scale.md"; fi
} >"$OUT"
echo "wrote $OUT" >&2
