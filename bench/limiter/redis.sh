#!/usr/bin/env bash
# bench/limiter, Redis mode: what the shared limiter (limits.backend redis://) costs a
# proxied request, against the in-memory limiter, end to end: throughput and latency
# percentiles of wrk through tollgate (one worker) to an nginx upstream (bench/lib/peers.sh),
# with the tenant under one rate rule (admitted: 10^8 per minute), so every request is
# decided by the limiter, settled at its end, and metered into SQLite.
#
#   bench/limiter/redis.sh            (ROUNDS=3 DUR=5 CONNS=32 CASES="get chat")
#
# Modes, each a fresh tollgate and store: memory (the default backend) and redis (a private
# redis-server on a free loopback port, --save '', its own temp dir, stopped by its PID; one
# EVALSHA round trip a request to admit it, and one settlement sent without waiting). Each
# figure is the best of ROUNDS runs of DUR seconds after a 2 s warm-up, modes interleaved.
# Needs wrk, nginx, redis-server, openssl, sqlite3, curl, python3 (scripts/deps.sh --bench).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
. bench/lib/peers.sh

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5}
CONNS=${CONNS:-32}
CASES=${CASES:-get chat}

bench_require wrk nginx redis-server redis-cli openssl sqlite3 curl python3
make -s all >/dev/null
T=$(mktemp -d)
PIDS=()
redis_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap redis_cleanup EXIT
trap 'exit 130' INT TERM

UP=$(port); UPS=$(port); RP=$(port)
peers_upstream "$T/up" "$UP" "$UPS"
nginx -c "$T/up/nginx.conf" -p "$T/up" &
PIDS+=($!)
mkdir -p "$T/redis"
redis-server --port "$RP" --bind 127.0.0.1 --dir "$T/redis" --save '' --appendonly no \
  --daemonize no >"$T/redis/log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  [ "$(redis-cli -p "$RP" PING 2>/dev/null)" = PONG ] && break
  sleep 0.05
done
write_chat_lua "$T/chat.lua"

# mode_start MODE: a tollgate of that mode on its own ports and store -> $TGPID $TGPORT $KEY
mode_start() {
  local mode=$1 extra=""
  TGPORT=$(port)
  local admin
  admin=$(port)
  [ "$mode" = redis ] && extra="limits: { backend: \"redis://127.0.0.1:$RP/0\", timeout: 20ms }"
  rm -rf "$T/tg-$mode"
  TG_EXTRA_YAML="$extra" peers_tollgate "$T/tg-$mode" "$TGPORT" "$admin" "http://127.0.0.1:$UP" \
    "$T/up/cert.pem"
  build/tollgate -c "$T/tg-$mode/tollgate.yaml" limit set --tenant bench --rpm 100000000 >/dev/null
  build/tollgate -c "$T/tg-$mode/tollgate.yaml" serve >"$T/tg-$mode/out" 2>&1 &
  TGPID=$!
  KEY=$(cat "$T/tg-$mode/key")
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$admin/readyz" 2>/dev/null | grep -q '"ready":true' && break
    sleep 0.05
  done
  if [ "$mode" = redis ]; then
    curl -fs "http://127.0.0.1:$admin/readyz" | grep -q '"status":"up"' ||
      { echo "bench: the redis backend is not up" >&2; exit 1; }
  fi
}

# run CASE: one wrk run against $TGPORT -> "req/s p50 p99" (latencies in microseconds)
run() {
  local args=(-t1 -c"$CONNS" -d"${DUR}s" --latency -H "Authorization: Bearer $KEY")
  [ "$1" = chat ] && args+=(-s "$T/chat.lua")
  wrk "${args[@]}" "http://127.0.0.1:$TGPORT/" 2>/dev/null | python3 -c '
import re, sys
t = sys.stdin.read()
def us(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if not m:
        sys.exit("bench: cannot read the latency %r in:\n%s" % (s, t))
    v, u = m.groups()
    return float(v) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = us(re.search(r"50%\s+(\S+)", t).group(1))
p99 = us(re.search(r"99%\s+(\S+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {p50:.0f} {p99:.0f} {bad.group(1) if bad else 0}")'
}

declare -A best_rps best_p50 best_p99
for c in $CASES; do
  for round in $(seq "$ROUNDS"); do
    for mode in memory redis; do
      mode_start "$mode"
      DUR=2 run "$c" >/dev/null # warm-up
      read -r rps p50 p99 bad < <(run "$c")
      kill -TERM "$TGPID"
      wait "$TGPID" 2>/dev/null || true
      [ "$bad" = 0 ] || { echo "bench: $bad non-2xx answers ($mode $c)" >&2; exit 1; }
      k="$c/$mode"
      if [ -z "${best_rps[$k]:-}" ] || [ "$rps" -gt "${best_rps[$k]}" ]; then
        best_rps[$k]=$rps best_p50[$k]=$p50 best_p99[$k]=$p99
      fi
      echo "round $round $c $mode: $rps req/s, p50 ${p50} us, p99 ${p99} us" >&2
    done
  done
done
echo "limiter backend: tollgate 1 worker, wrk -t1 -c$CONNS, best of $ROUNDS x ${DUR}s, $(nproc) CPUs"
for c in $CASES; do
  for mode in memory redis; do
    k="$c/$mode"
    printf '  %-5s %-7s %7s req/s  p50 %6s us  p99 %6s us\n' "$c" "$mode" "${best_rps[$k]}" \
      "${best_p50[$k]}" "${best_p99[$k]}"
  done
done
echo "  redis: $(redis-cli -p "$RP" INFO commandstats | grep -E '^cmdstat_evalsha' | tr -d '\r')"
