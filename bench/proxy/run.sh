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
# Everything listens on 127.0.0.1 ports chosen here and is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10}
CONNS=${2:-50}
WORKERS=${3:-1}
LIMITS=${4:-0}
# PIN=1: wrk on CPU 0, the proxy under test and the upstream on CPU 1, which
# takes the scheduler's placement out of the comparison (less run-to-run noise).
if [ "${PIN:-0}" = 1 ]; then LOAD="taskset -c 0"; SERVE="taskset -c 1"; else LOAD=""; SERVE=""; fi

scripts/deps.sh --bench
make -s all >/dev/null

T=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
UP=$(port); TG=$(port); TGA=$(port); NG=$(port)

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
YAML
if [ "$LIMITS" = 1 ]; then
  printf 'defaults:\n  limits: { rps: 1000000, burst: 1000000, concurrency: 100000 }\n' >>"$T/tollgate.yaml"
fi
build/tollgate -c "$T/tollgate.yaml" tenant add bench >/dev/null
KEY=$(build/tollgate -c "$T/tollgate.yaml" key create --tenant bench 2>/dev/null | sed -n 's/^secret: //p')
$SERVE build/tollgate -c "$T/tollgate.yaml" serve 2>"$T/tollgate.err" &
TGPID=$!
PIDS+=($TGPID)

mkdir -p "$T/nginx"
cat >"$T/nginx.conf" <<NGINX
worker_processes $WORKERS;
pid $T/nginx.pid;
error_log $T/nginx-error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log $T/nginx-access.log;
  client_body_temp_path $T/nginx; proxy_temp_path $T/nginx;
  fastcgi_temp_path $T/nginx; uwsgi_temp_path $T/nginx; scgi_temp_path $T/nginx;
  upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NG;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
$SERVE nginx -c "$T/nginx.conf" -p "$T" &
PIDS+=($!)

for i in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$TGA/healthz" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$NG/" >/dev/null 2>&1 && break
  sleep 0.1
done

BODY=$(python3 -c 'import json;print(json.dumps({"model":"bench","input":"x"*985}))')
cat >"$T/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA

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

printf '%-8s %-9s %12s %10s %10s\n' case target req/s p50 p99
declare -A R
for kind in get post; do
  for target in direct tollgate nginx; do
    case $target in
      direct) url="http://127.0.0.1:$UP/"; auth=() ;;
      tollgate) url="http://127.0.0.1:$TG/"; auth=(-H "Authorization: Bearer $KEY") ;;
      nginx) url="http://127.0.0.1:$NG/"; auth=() ;;
    esac
    if [ $kind = post ]; then extra=(-s "$T/post.lua"); else extra=(); fi
    read -r rps p50 p99 errs < <(run "${auth[@]}" "${extra[@]}" "$url")
    R[$kind.$target]=$rps
    printf '%-8s %-9s %12s %10s %10s %s\n' "$kind" "$target" "$rps" "$p50" "$p99" "$errs"
  done
done
echo
for kind in get post; do
  awk -v k=$kind -v t="${R[$kind.tollgate]}" -v n="${R[$kind.nginx]}" -v d="${R[$kind.direct]}" \
    'BEGIN { printf "%s: tollgate/nginx = %.2fx   tollgate/direct = %.2fx   nginx/direct = %.2fx\n", k, t/n, t/d, n/d }'
done

# Every tollgate request must be metered: stop it (SIGTERM drains) and count.
kill -TERM $TGPID
wait $TGPID || true
EVENTS=$(sqlite3 "$T/tollgate.db" "select count(*) from usage_events")
BILLABLE=$(sqlite3 "$T/tollgate.db" "select coalesce(sum(billable),0) from usage_daily")
echo "tollgate metered $EVENTS events ($BILLABLE billable) during the run"
echo "(workers=$WORKERS connections=$CONNS duration=${DUR}s limits=$LIMITS, wrk -t1; $(nproc) cores shared by wrk, proxy and upstream)"
