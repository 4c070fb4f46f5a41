#!/usr/bin/env bash
# Gateway chain benchmark (issue 6): requests/s and p99 of GET /greeter/say/hello?name=John
# through gateway -> api -> srv (started by `micro up` with our three-member registry, on free
# high loopback ports), against a bare HTTP hello-world (`bench hello`) on the same machine as
# the ceiling. Same client (`bench http`, hyper-util, 64 keep-alive connections), alternating
# bare / chain, A B A B. Prints one JSON line per run on stdout (name "gateway", side
# "bare"|"chain", round); progress on stderr. compare.sh appends these to its results.
#
#   cargo build --release -p micro-cli -p bench && bash bench/gateway.sh
#
# Environment: ROUNDS (2), CONNS (64), TOTAL (40000; QUICK=1: 4000), BENCH_TMP (/var/tmp).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"
ROUNDS="${ROUNDS:-2}"
CONNS="${CONNS:-64}"
if [[ "${QUICK:-0}" == 1 ]]; then TOTAL="${TOTAL:-4000}"; else TOTAL="${TOTAL:-40000}"; fi
PATH_Q="/greeter/say/hello?name=John"

for b in "$BIN/micro" "$BIN/bench"; do
  [[ -x "$b" ]] || { echo "missing $b (cargo build --release -p micro-cli -p bench)" >&2; exit 1; }
done

TMP="$(mktemp -d "${BENCH_TMP:-/var/tmp}/gateway.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [[ "${KEEP_TMP:-0}" == 1 ]] || rm -rf "$TMP"
}
trap cleanup EXIT

# Eight free loopback ports (the kernel's choice, in the ephemeral range).
read -r -a P < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
GW="127.0.0.1:${P[6]}"; HELLO="127.0.0.1:${P[7]}"
{
  echo '[cluster]'; echo 'token = "bench-gateway"'; echo 'data_dir = "data"'
  for i in 0 1 2; do
    echo '[[member]]'; echo "name = \"cd$i\""
    echo "client_url = \"http://127.0.0.1:${P[$((2 * i))]}\""
    echo "peer_url = \"http://127.0.0.1:${P[$((2 * i + 1))]}\""
  done
  echo '[registry]'; echo 'backend = "embedded"'
  echo '[gateway]'; echo "address = \"$GW\""; echo 'handler = "api"'
} >"$TMP/cluster.toml"

RUST_LOG="${RUST_LOG:-warn}" "$BIN/micro" up --config "$TMP/cluster.toml" >"$TMP/up.log" 2>&1 &
PIDS+=($!)
"$BIN/bench" hello --address "$HELLO" >"$TMP/hello.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do
  grep -q '^\[up\] ready' "$TMP/up.log" && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { echo "micro up exited:" >&2; tail -20 "$TMP/up.log" >&2; exit 1; }
  sleep 0.2
done
grep -q '^\[up\] ready' "$TMP/up.log" || { echo "micro up not ready in 120 s" >&2; tail -20 "$TMP/up.log" >&2; exit 1; }
echo "== gateway: chain at http://$GW, bare at http://$HELLO" >&2

for r in $(seq 1 "$ROUNDS"); do
  for side in bare chain; do
    if [[ $side == bare ]]; then url="http://$HELLO$PATH_Q"; else url="http://$GW$PATH_Q"; fi
    echo "== $(date +%T) gateway round $r $side" >&2
    line="$("$BIN/bench" --label "$side" http --url "$url" --conns "$CONNS" --total "$TOTAL" \
      2>>"$TMP/bench.log")" || line='{"failed": true}'
    echo "$line" | jq -c --arg s "$side" --argjson r "$r" '. + {name: "gateway", side: $s, round: $r}'
    echo "$line" >&2
  done
done
