#!/usr/bin/env bash
# bench/proxy: wrk against the mock upstream directly, through tollgate (key
# auth + metering into SQLite + access log to a file) and through nginx
# proxy_pass with upstream keepalive (access log to a file), in one run, for a
# GET of a small body and a POST of a 1 KiB JSON body. Prints req/s, p50, p99
# and the ratio tollgate/nginx.
#
#   bench/proxy/run.sh [DURATION_S] [CONNECTIONS] [WORKERS] [LIMITS]
#
# LIMITS=1 turns a default rate limit and in-flight cap on for every tenant
# (set high enough never to refuse: what is measured is the cost of checking).
#
# CASES (default "get post chat") picks the cases. chat is a non-streamed
# POST /v1/chat/completions with a small JSON body (max_tokens 16), which the
# mock answers with a chat.completion carrying usage (526 bytes). It runs
# against the mock directly, nginx, tollgate on a route of kind openai (reads
# the request body before admission, parses the JSON answer for model and
# tokens, prices the event) and, for the same request, a second tollgate whose
# route is of kind http (tg-http): the openai route's tollgate/nginx ratio is
# compared with the plain route's from the same run.
#
# ROUNDS=N (default 1) runs the targets of each case N times in turn (direct, tollgate, ...,
# direct, tollgate, ...) and reports each target's median req/s, and for chat the median
# of the per-round openai/plain ratios: on a shared VM whose speed drifts by 10-30% over
# minutes, interleaving keeps a drift from landing on one target only.
#
# Everything listens on 127.0.0.1 ports chosen here and is stopped by PID.
#
# --unpinned: issue 10's side-by-side comparison instead (nginx upstream, plain and TLS,
# nginx with and without an access log, CPU per request, interleaved rounds and medians):
# see bench/proxy/unpinned.sh, which it runs with the remaining arguments.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = --unpinned ]; then shift; exec bench/proxy/unpinned.sh "$@"; fi
. bench/lib/nginx.sh
. bench/lib/setup.sh
DUR=${1:-10}
CONNS=${2:-50}
WORKERS=${3:-1}
LIMITS=${4:-0}
CASES=${CASES:-get post chat}
ROUNDS=${ROUNDS:-1}
# PIN=1: wrk on CPU 0, the proxy under test and the upstream on CPU 1, which
# takes the scheduler's placement out of the comparison (less run-to-run noise).
if [ "${PIN:-0}" = 1 ]; then LOAD="taskset -c 0"; SERVE="taskset -c 1"; else LOAD=""; SERVE=""; fi

bench_setup
UP=$(port); TG=$(port); TGA=$(port); NG=$(port); TH=$(port); THA=$(port)

$SERVE build/mock-upstream --listen 127.0.0.1:$UP --threads 1 >"$T/mock.log" 2>&1 &
PIDS+=($!)

cat >"$T/tollgate.yaml" <<YAML
server: { listen: 127.0.0.1:$TG, admin_listen: 127.0.0.1:$TGA, workers: $WORKERS }
store: sqlite:$T/tollgate.db
log: { access: $T/tollgate-access.log, level: warn }
upstreams:
  - { name: mock, targets: [http://127.0.0.1:$UP] }
routes:
  - { name: api, path_prefix: /, upstream: mock, kind: http }
  - { name: chat, path_prefix: /v1/chat/, upstream: mock, kind: openai }
prices:
  models:
    bench: { input: 0.15, output: 0.60 }
YAML
# tg-http: the same gateway, but /v1/chat/ is a plain route (its own store)
mkdir -p "$T/h"
sed -e "s|127.0.0.1:$TG,|127.0.0.1:$TH,|; s|127.0.0.1:$TGA,|127.0.0.1:$THA,|; s|$T/|$T/h/|g" \
    -e "s|kind: openai|kind: http|" "$T/tollgate.yaml" >"$T/h/tollgate.yaml"
for c in "$T/tollgate.yaml" "$T/h/tollgate.yaml"; do
  if [ "$LIMITS" = 1 ]; then
    printf 'defaults:\n  limits: { rps: 1000000, burst: 1000000, concurrency: 100000 }\n' >>"$c"
  fi
  build/tollgate -c "$c" tenant add bench >/dev/null
done
KEY=$(build/tollgate -c "$T/tollgate.yaml" key create --tenant bench 2>/dev/null | sed -n 's/^secret: //p')
HKEY=$(build/tollgate -c "$T/h/tollgate.yaml" key create --tenant bench 2>/dev/null | sed -n 's/^secret: //p')
$SERVE build/tollgate -c "$T/tollgate.yaml" serve 2>"$T/tollgate.err" &
TGPID=$!
PIDS+=($TGPID)
THPID=
case " $CASES " in *" chat "*)
  $SERVE build/tollgate -c "$T/h/tollgate.yaml" serve 2>"$T/h/tollgate.err" &
  THPID=$!
  PIDS+=($THPID) ;;
esac

start_nginx "$T" "$NG" "$UP" $WORKERS

for i in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$TGA/healthz" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$NG/" >/dev/null 2>&1 &&
    { [ -z "$THPID" ] || curl -sf "http://127.0.0.1:$THA/healthz" >/dev/null 2>&1; } && break
  sleep 0.1
done

BODY=$(python3 -c 'import json;print(json.dumps({"model":"bench","input":"x"*985}))')
cat >"$T/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
write_chat_lua "$T/chat.lua"

# run NAME URL [wrk args...] -> "rps p50 p99"
run() {
  local out
  out=$($LOAD wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$@" 2>&1)
  local rps p50 p99 errs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {printf "%s ", $0}')
  echo "$rps $p50 $p99 ${errs:-}"
}

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-8s %-9s %12s %10s %10s\n' case target req/s p50 p99
declare -A R RS
CHATRATIOS=""
for kind in $CASES; do
  targets="direct tollgate nginx"
  [ $kind = chat ] && targets="direct tollgate tg-http nginx"
  for round in $(seq 1 "$ROUNDS"); do
  for target in $targets; do
    case $target in
      direct) url="http://127.0.0.1:$UP/"; auth=() ;;
      tollgate) url="http://127.0.0.1:$TG/"; auth=(-H "Authorization: Bearer $KEY") ;;
      tg-http) url="http://127.0.0.1:$TH/"; auth=(-H "Authorization: Bearer $HKEY") ;;
      nginx) url="http://127.0.0.1:$NG/"; auth=() ;;
    esac
    case $kind in
      post) extra=(-s "$T/post.lua") ;;
      chat) extra=(-s "$T/chat.lua") ;;
      *) extra=() ;;
    esac
    read -r rps p50 p99 errs < <(run "${auth[@]}" "${extra[@]}" "$url")
    RS[$kind.$target]="${RS[$kind.$target]:-} $rps"
    printf '%-8s %-9s %12s %10s %10s %s\n' "$kind" "$target" "$rps" "$p50" "$p99" "$errs"
  done
  if [ $kind = chat ]; then
    r=$(awk -v h="$(echo ${RS[chat.tg-http]} | awk '{print $NF}')" -v o="$(echo ${RS[chat.tollgate]} | awk '{print $NF}')" 'BEGIN { printf "%.3f", o/h }')
    CHATRATIOS="$CHATRATIOS $r"
    if [ "$ROUNDS" -gt 1 ]; then echo "chat round $round: openai/plain = $r"; fi
  fi
  done
  for target in $targets; do
    R[$kind.$target]=$(echo ${RS[$kind.$target]} | tr ' ' '\n' | median)
  done
done
if [ "$ROUNDS" -gt 1 ]; then echo "(ROUNDS=$ROUNDS: the ratios below are of each target's median req/s)"; fi
echo
for kind in $CASES; do
  awk -v k=$kind -v t="${R[$kind.tollgate]}" -v n="${R[$kind.nginx]}" -v d="${R[$kind.direct]}" \
    'BEGIN { printf "%s: tollgate/nginx = %.2fx   tollgate/direct = %.2fx   nginx/direct = %.2fx\n", k, t/n, t/d, n/d }'
done
case " $CASES " in *" chat "*)
  # the openai route against the plain route: the same request (tg-http), and the post case
  awk -v t="${R[chat.tollgate]}" -v h="${R[chat.tg-http]}" -v n="${R[chat.nginx]}" -v p="${R[post.tollgate]:-}" -v pn="${R[post.nginx]:-}" \
    'BEGIN { printf "chat: openai route tollgate/nginx = %.2fx, plain route (tg-http)/nginx = %.2fx: openai/plain = %.3f", t/n, h/n, t/h
             if (p != "" && pn != "") printf "; post (plain route) tollgate/nginx = %.2fx: chat-openai/post = %.3f", p/pn, (t/n)/(p/pn)
             printf "\n" }'
  if [ "$ROUNDS" -gt 1 ]; then
    echo "chat: openai/plain per round:$CHATRATIOS; median $(echo $CHATRATIOS | tr ' ' '\n' | median)"
  fi ;;
esac

# Every tollgate request must be metered: stop it (SIGTERM drains) and count.
kill -TERM $TGPID
wait $TGPID || true
EVENTS=$(sqlite3 "$T/tollgate.db" "select count(*) from usage_events")
BILLABLE=$(sqlite3 "$T/tollgate.db" "select coalesce(sum(billable),0) from usage_daily")
echo "tollgate metered $EVENTS events ($BILLABLE billable) during the run"
case " $CASES " in *" chat "*)
  sqlite3 "$T/tollgate.db" "select 'openai route: ' || count(*) || ' events, ' || sum(tokens_out = 16) || ' with 16 output tokens read from the answer, cost ' || coalesce(sum(cost_micros),0) || ' micro-USD' from usage_events where route = 'chat'"
  # (wrk cuts its connections at the end of a run: those last requests have no answer to read)
  sqlite3 "$T/tollgate.db" "select '  tokens unknown: ' || count(*) || ' (status ' || status || ', ' || outcome || ', ' || coalesce(reason, '-') || ')' from usage_events where route = 'chat' and tokens_out is null group by status, outcome, reason"
  kill -TERM $THPID
  wait $THPID || true
  echo "tg-http metered $(sqlite3 "$T/h/tollgate.db" "select count(*) from usage_events") events" ;;
esac
echo "(workers=$WORKERS connections=$CONNS duration=${DUR}s limits=$LIMITS pin=${PIN:-0}, wrk -t1; $(nproc) cores shared by wrk, proxy and upstream)"
