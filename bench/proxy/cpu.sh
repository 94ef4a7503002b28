#!/usr/bin/env bash
# bench/proxy/cpu.sh: CPU time tollgate spends per chat request on a route of kind openai
# against the same request on a route of kind http, from /proc/PID/stat (utime + stime of
# all its threads) over a wrk load. Less noisy than req/s on a shared VM, because it does
# not depend on how much CPU the machine gave the run, only on what tollgate did with it.
#
#   bench/proxy/cpu.sh [DURATION_S] [ROUNDS]
#
# The two kinds alternate, ROUNDS times each; wrk on CPU 0, tollgate and the mock upstream
# on CPU 1, one worker, 50 connections, the chat case of bench/proxy/run.sh (a 100-byte
# request, a 526-byte chat.completion answer with usage).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
DUR=${1:-6}
ROUNDS=${2:-3}

bench_setup
UP=$(port)
taskset -c 1 build/mock-upstream --listen 127.0.0.1:$UP --threads 1 >"$T/mock.log" 2>&1 &
PIDS+=($!)

write_chat_lua "$T/chat.lua"

# one KIND ROUND: prints "µs-per-request requests"
one() {
  local kind=$1 d="$T/$1.$2" tg tga
  mkdir -p "$d"
  tg=$(port); tga=$(port)
  cat >"$d/t.yaml" <<YAML
server: { listen: 127.0.0.1:$tg, admin_listen: 127.0.0.1:$tga, workers: 1 }
store: sqlite:$d/t.db
log: { access: $d/access.log, level: warn }
upstreams: [ { name: mock, targets: [http://127.0.0.1:$UP] } ]
routes: [ { name: chat, path_prefix: /v1/chat/, upstream: mock, kind: $kind } ]
prices:
  models:
    bench: { input: 0.15, output: 0.60 }
YAML
  build/tollgate -c "$d/t.yaml" tenant add bench >/dev/null
  local key
  key=$(build/tollgate -c "$d/t.yaml" key create --tenant bench 2>/dev/null | sed -n 's/^secret: //p')
  taskset -c 1 build/tollgate -c "$d/t.yaml" serve 2>"$d/err" &
  local pid=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$tga/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  local c0 c1 n
  c0=$(cpu_ticks $pid)
  n=$(taskset -c 0 wrk -t1 -c50 -d"${DUR}s" -s "$T/chat.lua" -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$tg/" | awk '/requests in/ { print $1 }')
  c1=$(cpu_ticks $pid)
  kill -TERM $pid
  wait $pid || true
  awk -v c=$((c1 - c0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.1f %d\n", c / hz * 1e6 / n, n }'
}

printf '%-6s %-7s %12s %10s\n' round kind us/request requests
for r in $(seq 1 "$ROUNDS"); do
  for kind in openai http; do
    read -r us n < <(one $kind $r)
    printf '%-6s %-7s %12s %10s\n' "$r" "$kind" "$us" "$n"
    echo "$kind $us" >>"$T/all"
  done
done
awk '{ s[$1] += $2; c[$1]++ } END { o = s["openai"] / c["openai"]; h = s["http"] / c["http"];
  printf "mean: openai %.1f us, http %.1f us per request: openai costs %.2fx (+%.1f us)\n", o, h, o / h, o - h }' "$T/all"
