#!/usr/bin/env bash
# bench/proxy/unpinned.sh (also `bench/proxy/run.sh --unpinned`): issue 10's comparison,
# unpinned, every target side by side in one run, with CPU per request.
#
#   bench/proxy/unpinned.sh            (or: bench/proxy/run.sh --unpinned)
#
# Settings (the issue's): wrk -t1 -c32, a 2 s warm-up then a 5 s measured run per target;
# nothing pinned (load generator, upstream and proxy share the machine's cores as users'
# deployments do); 1 worker each. The upstream is nginx answering every request (GET and
# POST) with the same fixed 526-byte chat.completion carrying usage, no access log, from
# two ports: plain HTTP and HTTPS (a self-signed P-256 certificate for IP 127.0.0.1 made
# here with openssl; HTTP/1.1 only, no ALPN h2).
#
# Targets, for each upstream scheme (http, https) and each case (get: GET /; chat: the chat
# POST of bench/lib/setup.sh's write_chat_lua to /v1/chat/completions):
#   direct     wrk -> upstream
#   nginx      nginx proxy_pass, upstream keepalive 128 (ssl session reuse on https),
#              proxy_buffering off, no access log
#   nginx-log  the same, plus a buffered (buffer=64k flush=1s) JSON access line per request
#   tollgate   key auth, metering every request into SQLite (usage_events + usage_daily),
#              its JSON access log on; route / of kind http (get) and /v1/chat/ of kind
#              openai (chat, priced); the https upstream through the native client (OpenSSL)
# Both proxies and the upstream keep connections for 1,000,000 requests (nginx's default
# would close them every 1000; tollgate has no such limit).
#
# CPU per request: utime+stime of the proxy's processes (/proc/PID/stat: all threads of a
# process, so tollgate's writer thread is included; nginx's master and worker) read before
# and after the measured 5 s, divided by the requests wrk counted. For direct it is the
# upstream's. user% is the share of it spent in user space (the rest is the kernel's);
# others_us the CPU per request of all threads but the busiest one (tollgate: the writer,
# the store watchers and the admin loop besides the worker; nginx: its master).
# Clock ticks are 10 ms: at ~30k req/s over 5 s the resolution is ~0.1 µs.
# wrk_us and up_us are the CPU per request of the load generator (wrk's utime+stime, read
# from its parent shell's cutime/cstime once it has exited) and of the upstream nginx
# (master and worker) during the same measured run. On a machine whose cores all three
# share, a proxy's req/s follows the sum: cpu-bound is the req/s ratio to nginx that the
# three CPU figures alone allow, (wrk + upstream + proxy per request for nginx) / (the
# same for this target), what the target would do at nginx's idle%; below it, the rest
# of the gap is the machine's idle time (the peers waiting on each other).
# preempt is the proxy's involuntary context switches a request (all its threads,
# /proc/PID/task/*/status): a thread taken off its core by another that woke there.
# idle% is the whole machine's idle time during the measured run (/proc/stat): with every
# core shared by wrk, the upstream and the proxy, a few % means the cores were kept busy;
# more means the peers waited on each other (a scheduling state, not a CPU cost).
#
# BURN="BUSY_MS PERIOD_MS" runs bench/proxy/burner.c beside every target, during its warm-up
# and measured run: one more thread that spins BUSY_MS of every PERIOD_MS (BURN="8 50" is
# about what tollgate's writer thread takes at 70k GET/s). It shows what a second busy
# thread costs a proxy on this machine apart from its own CPU (bench/RESULTS.md).
#
# ROUNDS (3) rounds; in each, every (scheme, case) runs its targets in turn, so a drift of
# the shared machine's speed spreads over all targets. The summary is of each target's
# medians; ratios are of medians. Environment: ROUNDS, DUR (5), WARM (2), CONNS (32),
# SCHEMES ("http https"), CASES ("get chat"), TARGETS ("direct nginx nginx-log tollgate"),
# TOLLGATE=PATH (build/tollgate) the binary to measure, KEEP=DIR copies the configs,
# logs and per-run wrk output there. Needs wrk, nginx,
# openssl, sqlite3, curl, python3: `scripts/deps.sh --bench` installs them.
#
# Everything listens on 127.0.0.1 ports chosen here, runs in a temp dir, and is stopped by
# PID on exit (also on error or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
. bench/lib/peers.sh

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5}
WARM=${WARM:-2}
CONNS=${CONNS:-32}
SCHEMES=${SCHEMES:-http https}
CASES=${CASES:-get chat}
TARGETS=${TARGETS:-direct nginx nginx-log tollgate}
TOLLGATE=${TOLLGATE:-build/tollgate} # another build to measure (say, an older commit's)
BURN=${BURN:-}

bench_require wrk nginx openssl sqlite3 curl python3
make -s all >/dev/null
T=$(mktemp -d)
PIDS=()
unpinned_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$T"/. "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$T"
}
trap unpinned_cleanup EXIT
trap 'exit 130' INT TERM
if [ -n "$BURN" ]; then
  cc -O2 -o "$T/burner" bench/proxy/burner.c
  [[ "$BURN" =~ ^[0-9]+\ [1-9][0-9]*$ ]] && [ "${BURN% *}" -le "${BURN#* }" ] ||
    { echo "unpinned: BURN=\"$BURN\" is not BUSY_MS PERIOD_MS" >&2; exit 1; }
fi

UP=$(port); UPS=$(port); NG=$(port); NGL=$(port); NGS=$(port); NGSL=$(port)
TG=$(port); TGA=$(port); TGS=$(port); TGSA=$(port)

# --- servers: the nginx upstream, nginx as proxy, two tollgates (bench/lib/peers.sh) ---------
peers_upstream "$T/up" "$UP" "$UPS"
peers_nginx "$T/ng" "$UP" "$UPS" "$NG" "$NGL" "$NGS" "$NGSL" "$T/up/cert.pem"
nginx -c "$T/up/nginx.conf" -p "$T/up" &
UPPID=$!
PIDS+=($UPPID)
nginx -c "$T/ng/nginx.conf" -p "$T/ng" &
NGPID=$!
PIDS+=($NGPID)
peers_tollgate "$T/tg" "$TG" "$TGA" "http://127.0.0.1:$UP" "$T/up/cert.pem"
peers_tollgate "$T/tgs" "$TGS" "$TGSA" "https://127.0.0.1:$UPS" "$T/up/cert.pem"
"$TOLLGATE" -c "$T/tg/tollgate.yaml" serve 2>"$T/tg/err" &
TGPID=$!
PIDS+=($TGPID)
"$TOLLGATE" -c "$T/tgs/tollgate.yaml" serve 2>"$T/tgs/err" &
TGSPID=$!
PIDS+=($TGSPID)
KEY=$(cat "$T/tg/key")
KEYS=$(cat "$T/tgs/key")

# --- wait until everything answers, and check each path once ---------------------------------
ready() { curl -sf -o /dev/null --max-time 2 "$@" 2>/dev/null; }
for i in $(seq 1 100); do
  ready "http://127.0.0.1:$UP/" && ready -k "https://127.0.0.1:$UPS/" && ready "http://127.0.0.1:$NG/" &&
    ready "http://127.0.0.1:$TGA/healthz" && ready "http://127.0.0.1:$TGSA/healthz" && break
  [ "$i" = 100 ] && { echo "unpinned: the servers did not come up (see KEEP=DIR for logs)" >&2; exit 1; }
  sleep 0.1
done
for u in "$NG" "$NGL" "$NGS" "$NGSL"; do
  ready "http://127.0.0.1:$u/" || { echo "unpinned: nginx on :$u does not answer" >&2; cat "$T/ng/error.log" >&2; exit 1; }
done
ready -H "Authorization: Bearer $KEY" "http://127.0.0.1:$TG/" ||
  { echo "unpinned: tollgate (http upstream) does not answer" >&2; cat "$T/tg/err" >&2; exit 1; }
ready -H "Authorization: Bearer $KEYS" "http://127.0.0.1:$TGS/" ||
  { echo "unpinned: tollgate (https upstream) does not answer" >&2; cat "$T/tgs/err" >&2; exit 1; }

write_chat_lua "$T/chat.lua"

# pids_of PID: the process and its children (nginx: master and worker)
pids_of() { echo "$1"; ps -o pid= --ppid "$1" 2>/dev/null || true; }
# cpu_ticks PID...: "user system" CPU time of those processes (all their threads), in
# clock ticks
cpu_ticks() {
  local u=0 k=0 p t
  for p in "$@"; do
    t=$(awk '{ print $14, $15 }' "/proc/$p/stat" 2>/dev/null || echo 0 0)
    u=$((u + ${t% *})); k=$((k + ${t#* }))
  done
  echo "$u $k"
}
# task_ticks PID...: "TASK TICKS" for every thread of those processes (utime + stime)
task_ticks() {
  local p f
  for p in "$@"; do
    for f in /proc/"$p"/task/*/stat; do
      awk -v f="$f" '{ print f, $14 + $15 }' "$f" 2>/dev/null || true
    done
  done
}
HZ=$(getconf CLK_TCK)
# preempted PID...: involuntary context switches of every thread of those processes so far
preempted() {
  local p
  for p in "$@"; do cat /proc/"$p"/task/*/status 2>/dev/null; done |
    awk '/^nonvoluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'
}
# idle_ticks: "IDLE TOTAL" clock ticks of the whole machine so far (idle + iowait)
idle_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print $5 + $6, t }' /proc/stat; }
# to_ms: wrk's latency ("850.00us", "1.23ms", "1.02s") in milliseconds
to_ms() { awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /ms$/) v += 0; else if ($1 ~ /s$/) v *= 1000; printf "%.3f\n", v }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# one SCHEME CASE TARGET ROUND ->
#   "rps p99_ms us_per_req user_share us_per_req_beyond_the_busiest_thread idle% preempted_per_req
#    wrk_us_per_req upstream_us_per_req requests errors"
one() {
  local scheme=$1 kind=$2 target=$3 round=$4 url cpid auth=() extra=()
  case $scheme.$target in
    http.direct) url="http://127.0.0.1:$UP"; cpid=$UPPID ;;
    https.direct) url="https://127.0.0.1:$UPS"; cpid=$UPPID ;;
    http.nginx) url="http://127.0.0.1:$NG"; cpid=$NGPID ;;
    http.nginx-log) url="http://127.0.0.1:$NGL"; cpid=$NGPID ;;
    https.nginx) url="http://127.0.0.1:$NGS"; cpid=$NGPID ;;
    https.nginx-log) url="http://127.0.0.1:$NGSL"; cpid=$NGPID ;;
    http.tollgate) url="http://127.0.0.1:$TG"; cpid=$TGPID; auth=(-H "Authorization: Bearer $KEY") ;;
    https.tollgate) url="http://127.0.0.1:$TGS"; cpid=$TGSPID; auth=(-H "Authorization: Bearer $KEYS") ;;
    *) echo "unpinned: unknown target $scheme.$target" >&2; exit 1 ;;
  esac
  [ "$kind" = chat ] && extra=(-s "$T/chat.lua")
  local pids c0 c1 i0 i1 out n rps p99 errs bp= ups u0 u1
  pids=$(pids_of $cpid)
  ups=$(pids_of $UPPID)
  if [ -n "$BURN" ]; then "$T/burner" $BURN & bp=$!; fi
  wrk -t1 -c"$CONNS" -d"${WARM}s" "${auth[@]}" "${extra[@]}" "$url/" >"$T/warm.$scheme.$kind.$target.$round" 2>&1
  # shellcheck disable=SC2086
  c0=$(cpu_ticks $pids)
  # shellcheck disable=SC2086
  u0=$(cpu_ticks $ups)
  # shellcheck disable=SC2086
  task_ticks $pids >"$T/tasks0"
  i0=$(idle_ticks)
  local x0 x1
  # shellcheck disable=SC2086
  x0=$(preempted $pids)
  # wrk in a shell of its own, which prints wrk's CPU ticks once it has reaped it
  # shellcheck disable=SC2016
  out=$(sh -c 'wrk "$@" 2>&1; awk "{ print \"wrk-cpu-ticks\", \$16 + \$17 }" /proc/$$/stat' sh \
    -t1 -c"$CONNS" -d"${DUR}s" --latency "${auth[@]}" "${extra[@]}" "$url/")
  # shellcheck disable=SC2086
  c1=$(cpu_ticks $pids)
  # shellcheck disable=SC2086
  u1=$(cpu_ticks $ups)
  # shellcheck disable=SC2086
  task_ticks $pids >"$T/tasks1"
  i1=$(idle_ticks)
  # shellcheck disable=SC2086
  x1=$(preempted $pids)
  if [ -n "$bp" ]; then kill "$bp"; wait "$bp" 2>/dev/null || true; fi
  local rest
  rest=$(awk 'NR == FNR { t0[$1] = $2; next } { d = $2 - t0[$1]; s += d; if (d > m) m = d } END { print s - m }' \
    "$T/tasks0" "$T/tasks1")
  echo "$out" >"$T/wrk.$scheme.$kind.$target.$round"
  n=$(echo "$out" | awk '/requests in/ { print $1 }')
  rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
  p99=$(echo "$out" | awk '$1 == "99%" { print $2 }' | to_ms)
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ { printf "[%s] ", $0 }')
  local wt ut
  wt=$(echo "$out" | awk '$1 == "wrk-cpu-ticks" { print $2 }')
  ut=$(((${u1% *} + ${u1#* }) - (${u0% *} + ${u0#* })))
  [ -n "$n" ] && [ -n "$rps" ] || { echo "unpinned: wrk gave no result for $scheme $kind $target:" >&2; echo "$out" >&2; exit 1; }
  awk -v u0="${c0% *}" -v k0="${c0#* }" -v u1="${c1% *}" -v k1="${c1#* }" -v hz="$HZ" -v n="$n" \
    -v r="$rps" -v p="$p99" -v e="$errs" -v o="$rest" -v i0="$i0" -v i1="$i1" -v x="$((x1 - x0))" \
    -v wt="${wt:-0}" -v ut="$ut" 'BEGIN { c = u1 - u0 + k1 - k0
      split(i0, a, " "); split(i1, b, " "); idle = b[2] > a[2] ? 100 * (b[1] - a[1]) / (b[2] - a[2]) : 0
      printf "%s %s %.1f %.0f %.1f %.0f %.3f %.1f %.1f %d %s\n", r, p, c / hz * 1e6 / n, c ? 100 * (u1 - u0) / c : 0,
        o / hz * 1e6 / n, idle, x / n, wt / hz * 1e6 / n, ut / hz * 1e6 / n, n, e }'
}

declare -A RPS P99 CPU USR OTH IDL PRE WRK UPC
[ -n "$BURN" ] && echo "BURN=\"$BURN\": a burner thread spins ${BURN% *} ms of every ${BURN#* } ms beside every target"
printf '%-5s %-6s %-5s %-10s %10s %9s %11s %5s %9s %5s %7s %6s %6s\n' round scheme case target req/s p99_ms cpu_us/req user% others_us idle% preempt wrk_us up_us
for round in $(seq 1 "$ROUNDS"); do
  for scheme in $SCHEMES; do
    for kind in $CASES; do
      for target in $TARGETS; do
        read -r rps p99 us usr oth idl pre wu uu n errs < <(one "$scheme" "$kind" "$target" "$round")
        printf '%-5s %-6s %-5s %-10s %10s %9s %11s %5s %9s %5s %7s %6s %6s %s\n' "$round" "$scheme" "$kind" "$target" "$rps" "$p99" "$us" "$usr" "$oth" "$idl" "$pre" "$wu" "$uu" "${errs:-}"
        k=$scheme.$kind.$target
        RPS[$k]="${RPS[$k]:-} $rps"; P99[$k]="${P99[$k]:-} $p99"; CPU[$k]="${CPU[$k]:-} $us"
        USR[$k]="${USR[$k]:-} $usr"; OTH[$k]="${OTH[$k]:-} $oth"; IDL[$k]="${IDL[$k]:-} $idl"; PRE[$k]="${PRE[$k]:-} $pre"
        WRK[$k]="${WRK[$k]:-} $wu"; UPC[$k]="${UPC[$k]:-} $uu"
      done
    done
  done
done

echo
echo "medians of $ROUNDS round(s); cpu = µs of CPU per request (direct: the upstream's; proxies: all their threads),"
echo "usr = its user-space share in %, others = µs per request of the threads but the busiest (tollgate: writer and the rest),"
echo "wrk, up = µs of CPU per request of wrk and of the upstream; cpu-bound = the req/s ratio to nginx their sum with the"
echo "proxy's allows (at nginx's idle%)"
printf '%-6s %-5s %-10s %10s %8s %8s %4s %7s %5s %7s %5s %5s %10s %10s %10s %9s\n' scheme case target req/s p99_ms cpu_us usr others idle% preempt wrk up rps/nginx rps/ng-log cpu/nginx cpu-bound
for scheme in $SCHEMES; do
  for kind in $CASES; do
    declare -A M=()
    for target in $TARGETS; do
      k=$scheme.$kind.$target
      M[$target.r]=$(echo ${RPS[$k]} | tr ' ' '\n' | median)
      M[$target.p]=$(echo ${P99[$k]} | tr ' ' '\n' | median)
      M[$target.c]=$(echo ${CPU[$k]} | tr ' ' '\n' | median)
      M[$target.u]=$(echo ${USR[$k]} | tr ' ' '\n' | median)
      M[$target.o]=$(echo ${OTH[$k]} | tr ' ' '\n' | median)
      M[$target.i]=$(echo ${IDL[$k]} | tr ' ' '\n' | median)
      M[$target.x]=$(echo ${PRE[$k]} | tr ' ' '\n' | median)
      M[$target.w]=$(echo ${WRK[$k]} | tr ' ' '\n' | median)
      M[$target.up]=$(echo ${UPC[$k]} | tr ' ' '\n' | median)
    done
    for target in $TARGETS; do
      awk -v s=$scheme -v k=$kind -v t=$target -v r="${M[$target.r]}" -v p="${M[$target.p]}" -v c="${M[$target.c]}" \
        -v u="${M[$target.u]}" -v o="${M[$target.o]}" -v i="${M[$target.i]}" -v x="${M[$target.x]}" \
        -v w="${M[$target.w]}" -v up="${M[$target.up]}" -v nw="${M[nginx.w]:-}" -v nu="${M[nginx.up]:-}" \
        -v nr="${M[nginx.r]:-}" -v nl="${M[nginx-log.r]:-}" -v nc="${M[nginx.c]:-}" '
        function ratio(a, b) { return (b == "" || b + 0 == 0) ? "-" : sprintf("%.2fx", a / b) }
        BEGIN { printf "%-6s %-5s %-10s %10.0f %8.2f %8.1f %4.0f %7.1f %5.0f %7.3f %5.1f %5.1f %10s %10s %10s %9s\n", s, k, t, r, p, c, u, o, i, x,
                  w, up, ratio(r, nr), ratio(r, nl), t == "direct" ? "-" : ratio(c, nc),
                  (t == "direct" || nc == "") ? "-" : ratio(nw + nu + nc, w + up + c) }'
    done
    if [ -n "${M[tollgate.r]:-}" ] && [ -n "${M[nginx.r]:-}" ]; then
      awk -v s=$scheme -v k=$kind -v r="${M[tollgate.r]}" -v nr="${M[nginx.r]}" -v p="${M[tollgate.p]}" \
        -v np="${M[nginx.p]}" -v c="${M[tollgate.c]}" -v nc="${M[nginx.c]}" '
        BEGIN { printf "  %s %s target check: req/s %.2fx (>= 0.90) %s, p99 %.2fx (<= 1.5) %s, cpu %.2fx (<= 1.15) %s\n",
                  s, k, r / nr, (r / nr >= 0.9) ? "met" : "MISSED", p / np, (p / np <= 1.5) ? "met" : "MISSED",
                  c / nc, (c / nc <= 1.15) ? "met" : "MISSED" }'
    fi
    unset M
  done
done

# Every request tollgate answered must be metered: stop it (SIGTERM drains the recorder), count.
case " $TARGETS " in *" tollgate "*)
  for s in tg tgs; do
    pid=$TGPID; scheme=http
    [ $s = tgs ] && { pid=$TGSPID; scheme=https; }
    kill -TERM "$pid"
    wait "$pid" || true
    answered=$(cat "$T"/wrk.$scheme.*.tollgate.* "$T"/warm.$scheme.*.tollgate.* 2>/dev/null | awk '/requests in/ { n += $1 } END { print n + 0 }')
    echo "tollgate ($scheme upstream): $(sqlite3 "$T/$s/tollgate.db" "select count(*) || ' events (' || coalesce(sum(route = 'chat' and tokens_out = 16), 0) || ' chat with 16 output tokens read from the answer)' from usage_events") for $answered answers wrk counted (+ the readiness checks; wrk cuts its last requests)"
  done ;;
esac
echo "(unpinned; wrk -t1 -c$CONNS, ${WARM}s warm-up + ${DUR}s measured per target; 1 worker each; $(nproc) cores shared by wrk, upstream and proxy; $(nginx -v 2>&1 | sed 's/.*: //'))"
