# Sourced by bench/scale.sh and bench/soak.sh: a fresh three-member cluster, etcd's or ours, on
# fixed loopback ports, started and stopped once per row and side.
#
# The caller sets: ETCD, NODE_BIN, TMP (removed on exit unless KEEP_TMP=1), CLUSTER_TAG (names
# the clusters' tokens), ETCD_CLIENT/ETCD_PEER/OURS_CLIENT/OURS_PEER (three ports each, below the
# ephemeral range and apart from the other scripts'), and optionally MEMBER_FLAGS (an array of
# flags both sides' members get, e.g. the soak's auto-compaction) and OURS_RAFT (extra
# `key = value` lines for our members' [raft] section). Used by compare.sh too.

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
      --initial-cluster "$init" --initial-cluster-token "$CLUSTER_TAG-etcd" \
      --initial-cluster-state new ${MEMBER_FLAGS[@]+"${MEMBER_FLAGS[@]}"} \
      --log-level warn >"$1/e$i.log" 2>&1 &
    PIDS+=($!)
  done
}

start_ours() { # data dir
  mkdir -p "$1"
  {
    echo '[cluster]'; echo "token = \"$CLUSTER_TAG-ours\""; echo 'data_dir = "data"'
    if [[ -n "${OURS_RAFT:-}" ]]; then echo '[raft]'; printf '%b\n' "$OURS_RAFT"; fi
    for i in 0 1 2; do
      echo '[[member]]'; echo "name = \"cd$i\""
      echo "client_url = \"http://127.0.0.1:${OURS_CLIENT[$i]}\""
      echo "peer_url = \"http://127.0.0.1:${OURS_PEER[$i]}\""
    done
  } >"$1/cluster.toml"
  for i in 0 1 2; do
    RUST_LOG="${RUST_LOG:-warn}" "$NODE_BIN" --config "$1/cluster.toml" --name "cd$i" \
      ${MEMBER_FLAGS[@]+"${MEMBER_FLAGS[@]}"} >"$1/cd$i.log" 2>&1 &
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
