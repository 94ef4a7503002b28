#!/usr/bin/env bash
# bench/proxy/metrics-cost.sh: what per-tenant metrics and alarms cost a proxied request,
# side by side in one run (issue 11: "no more than 3% of bench/proxy throughput").
#
#   bench/proxy/metrics-cost.sh [DURATION_S] [ROUNDS]
#
# Two variants of the same gateway alternate, ROUNDS times each, for each case (get: GET on
# a route of kind http; chat: the chat POST of bench/lib/setup.sh on a route of kind openai,
# priced):
#   off  TOLLGATE_BENCH_NO_REQUEST_METRICS=1 (requests not counted on /metrics), no alarms,
#        nobody scraping
#   on   requests counted (as shipped), the five alarm rules of examples/tollgate.yaml
#        evaluated every 1 s (ten times the default rate), the tenant under a rate rule (so
#        the quota alarm has a rule to read), and /metrics scraped every second
# The tenant has the same rate rule in both. wrk on CPU 0, tollgate and the mock upstream
# on CPU 1, one worker, 50 connections. Printed per round: req/s and the CPU tollgate spent
# per request (utime + stime of all its threads, /proc/PID/stat), then the medians and on/off
# ratios. CPU per request is the steadier figure on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
DUR=${1:-6}
ROUNDS=${2:-5}
CASES=${CASES:-get chat}
TOKEN=bench-metrics-cost-token-0123456789

bench_require wrk
bench_setup
UP=$(port)
taskset -c 1 build/mock-upstream --listen 127.0.0.1:$UP --threads 1 >"$T/mock.log" 2>&1 &
PIDS+=($!)
write_chat_lua "$T/chat.lua"

# one VARIANT CASE ROUND: prints "req/s us-per-request"
one() {
  local variant=$1 case=$2 d="$T/$1.$2.$3" tg tga
  mkdir -p "$d"
  tg=$(port)
  tga=$(port)
  cat >"$d/t.yaml" <<YAML
server: { listen: 127.0.0.1:$tg, admin_listen: 127.0.0.1:$tga, workers: 1, admin_token: $TOKEN }
store: sqlite:$d/t.db
log: { access: $d/access.log, level: warn }
upstreams: [ { name: mock, targets: [http://127.0.0.1:$UP] } ]
routes:
  - { name: chat, path_prefix: /v1/chat/, upstream: mock, kind: openai }
  - { name: web, path_prefix: /, upstream: mock, kind: http }
prices:
  models:
    bench: { input: 0.15, output: 0.60 }
defaults:
  limits: { rpm: 1000000 }
YAML
  if [ "$variant" = on ]; then
    cat >>"$d/t.yaml" <<YAML
alarms_interval: 1s
alarms:
  - { name: quota, kind: quota, threshold: 0.8 }
  - { name: errors, kind: error_rate, window: 5m, threshold: 0.05, min_requests: 20, baseline_factor: 3 }
  - { name: slow, kind: latency, window: 5m, quantile: 0.95, baseline_factor: 2, min_ms: 200 }
  - { name: spend, kind: spend_rate, window: 1h, baseline_factor: 4 }
  - { name: backlog, kind: queue, threshold: 0.8 }
YAML
  fi
  build/tollgate -c "$d/t.yaml" tenant add bench >/dev/null
  local key
  key=$(build/tollgate -c "$d/t.yaml" key create --tenant bench 2>/dev/null | sed -n 's/^secret: //p')
  if [ "$variant" = off ]; then
    TOLLGATE_BENCH_NO_REQUEST_METRICS=1 taskset -c 1 build/tollgate -c "$d/t.yaml" serve 2>"$d/err" &
  else
    taskset -c 1 build/tollgate -c "$d/t.yaml" serve 2>"$d/err" &
  fi
  local pid=$! scraper=
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$tga/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "$variant" = on ]; then
    (while sleep 1; do
      curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$tga/metrics" >"$d/m.tmp" &&
        mv "$d/m.tmp" "$d/metrics.txt"
    done) &
    scraper=$!
  fi
  local script=() url="http://127.0.0.1:$tg/"
  [ "$case" = chat ] && script=(-s "$T/chat.lua")
  local c0 c1 out
  c0=$(cpu_ticks $pid)
  out=$(taskset -c 0 wrk -t1 -c50 -d"${DUR}s" "${script[@]}" -H "Authorization: Bearer $key" "$url")
  c1=$(cpu_ticks $pid)
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null && wait "$scraper" 2>/dev/null || true
  kill -TERM $pid
  wait $pid || true
  if [ "$variant" = on ] && ! grep -q '^tollgate_requests_total{.*tenant="bench"' "$d/metrics.txt" 2>/dev/null; then
    echo "metrics-cost: the on gateway counted no request on /metrics ($d)" >&2; cat "$d/err" >&2; ls "$d" >&2
    exit 1
  fi
  local n rps
  n=$(awk '/requests in/ { print $1 }' <<<"$out")
  rps=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
  awk -v c=$((c1 - c0)) -v hz="$HZ" -v n="$n" -v r="$rps" 'BEGIN { printf "%.0f %.1f\n", r, c / hz * 1e6 / n }'
}

printf '%-5s %-5s %-4s %10s %12s\n' case round var req/s us/request
for c in $CASES; do
  for r in $(seq 1 "$ROUNDS"); do
    for v in off on; do
      read -r rps us < <(one $v "$c" "$r")
      printf '%-5s %-5s %-4s %10s %12s\n' "$c" "$r" "$v" "$rps" "$us"
      echo "$c $v $rps $us" >>"$T/all"
    done
  done
done
# medians per case and variant, then on/off
for c in $CASES; do
  for v in off on; do
    rps=$(awk -v c="$c" -v v="$v" '$1 == c && $2 == v { print $3 }' "$T/all" | sort -n |
      awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    us=$(awk -v c="$c" -v v="$v" '$1 == c && $2 == v { print $4 }' "$T/all" | sort -n |
      awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    echo "$c $v $rps $us" >>"$T/med"
  done
done
awk '{ r[$1 " " $2] = $3; u[$1 " " $2] = $4; cs[$1] = 1 }
  END { for (c in cs) printf "median %-4s: req/s off %.0f on %.0f (on/off %.3f); us/request off %.1f on %.1f (on/off %.3f)\n",
    c, r[c " off"], r[c " on"], r[c " on"] / r[c " off"], u[c " off"], u[c " on"], u[c " on"] / u[c " off"] }' "$T/med"
