#!/usr/bin/env bash
# Gateway chain benchmark (issue 6): requests/s and p99 of GET /greeter/say/hello?name=John
# through gateway -> api -> srv (started by `micro up` with our three-member registry, on free
# high loopback ports), against a bare HTTP hello-world (`bench hello`) on the same machine as
# the ceiling. Same client (`bench http`, hyper-util, 64 keep-alive connections), alternating
# bare / chain, A B A B. Prints one JSON line per run on stdout (name "gateway", side
# "bare"|"chain", round); progress on stderr. compare.sh appends these to its results.
# Each line also carries the CPU time per request (utime+stime from /proc/<pid>/stat) of the
# serving side (bare: the hello-world; chain: gateway, both api and both srv processes) and of
# the bench client: on a shared 2-core machine req/s is noisy, CPU per request much less so.
#
#   cargo build --release -p micro-cli -p bench && bash bench/gateway.sh
#
# Environment: ROUNDS (2), CONNS (64), TOTAL (40000; QUICK=1: 4000), BENCH_TMP (/var/tmp),
# MICRO_WORKER_THREADS (services' and gateway's tokio workers; see micro-cli; default here 1).
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

# Eight free loopback ports below the ephemeral range: a port the kernel hands out for bind(:0)
# can be taken again by any other process's bind(:0) (the services' own, or other programs on a
# shared machine) before our servers bind it.
read -r -a P < <(python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
while len(ports) < 8:
    port = random.randrange(20000, low)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        if port not in ports:
            ports.append(port)
    except OSError:
        pass
    finally:
        s.close()
print(" ".join(map(str, ports)))
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

# Six processes of the chain and the client share the cores: single-threaded service runtimes
# avoid cross-thread wake-ups (the registry members keep their multi-threaded runtime).
export MICRO_WORKER_THREADS="${MICRO_WORKER_THREADS:-1}"
# The hello-world binds first: the services bind ephemeral ports and could take its port.
"$BIN/bench" hello --address "$HELLO" >"$TMP/hello.log" 2>&1 &
HELLO_PID=$!
PIDS+=("$HELLO_PID")
RUST_LOG="${RUST_LOG:-warn}" "$BIN/micro" up --config "$TMP/cluster.toml" >"$TMP/up.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
for _ in $(seq 1 600); do
  grep -q '^\[up\] ready' "$TMP/up.log" && break
  kill -0 "$UP_PID" 2>/dev/null || { echo "micro up exited:" >&2; tail -20 "$TMP/up.log" >&2; exit 1; }
  sleep 0.2
done
grep -q '^\[up\] ready' "$TMP/up.log" || { echo "micro up not ready in 120 s" >&2; tail -20 "$TMP/up.log" >&2; exit 1; }
kill -0 "$HELLO_PID" 2>/dev/null || { echo "bench hello exited:" >&2; cat "$TMP/hello.log" >&2; exit 1; }
echo "== gateway: chain at http://$GW, bare at http://$HELLO" >&2

# The chain's processes: children of `micro up` running a greeter role or the gateway.
CHAIN=()
for c in $(pgrep -P "$UP_PID"); do
  case " $(tr '\0' ' ' <"/proc/$c/cmdline") " in *" greeter "* | *" api "*) CHAIN+=("$c") ;; esac
done
[[ ${#CHAIN[@]} == 5 ]] || echo "warning: found ${#CHAIN[@]} chain processes, expected 5" >&2
# Clock ticks (utime + stime) used so far by the given processes.
ticks() {
  local sum=0 f
  for p in "$@"; do
    read -r -a f <"/proc/$p/stat"
    sum=$((sum + f[13] + f[14]))
  done
  echo "$sum"
}
TCK="$(getconf CLK_TCK)"
TIMEFORMAT='%U %S'

for r in $(seq 1 "$ROUNDS"); do
  for side in bare chain; do
    if [[ $side == bare ]]; then
      url="http://$HELLO$PATH_Q"; servers=("$HELLO_PID")
    else
      url="http://$GW$PATH_Q"; servers=("${CHAIN[@]}")
    fi
    echo "== $(date +%T) gateway round $r $side" >&2
    # The CPU counted covers bench's 1,000 untimed warm-up requests too.
    before="$(ticks "${servers[@]}")"
    each_before=(); for p in "${servers[@]}"; do each_before+=("$(ticks "$p")"); done
    { time "$BIN/bench" --label "$side" http --url "$url" --conns "$CONNS" --total "$TOTAL" \
      --warmup 1000 >"$TMP/line.json" 2>>"$TMP/bench.log"; } 2>"$TMP/time.txt" \
      || echo '{"failed": true}' >"$TMP/line.json"
    after="$(ticks "${servers[@]}")"
    # Per process on stderr: which hop of the chain the CPU goes to.
    for i in "${!servers[@]}"; do
      p="${servers[$i]}"; d=$(($(ticks "$p") - each_before[i]))
      role="$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{print $2, $3, $4}')"
      echo "   cpu $(awk -v d="$d" -v t="$TCK" -v n="$((TOTAL + 1000))" 'BEGIN{printf "%.1f", d/t/n*1e6}') us/req  pid $p  $role" >&2
    done
    line="$(cat "$TMP/line.json")"
    read -r cu cs <"$TMP/time.txt"
    echo "$line" | jq -c --arg s "$side" --argjson r "$r" --argjson total "$((TOTAL + 1000))" \
      --argjson sticks "$((after - before))" --argjson tck "$TCK" --argjson cu "$cu" --argjson cs "$cs" \
      '. + {name: "gateway", side: $s, round: $r,
            server_cpu_us_per_req: (($sticks / $tck / $total * 1e7 | round) / 10),
            client_cpu_us_per_req: ((($cu + $cs) / $total * 1e7 | round) / 10)}'
    echo "$line" >&2
  done
done
