#!/usr/bin/env bash
# bench/proxy/profile.sh: where a proxied request's time goes, counted rather than timed
# (instruction and syscall counts do not depend on what else the machine is running), for
# the peers of bench/proxy/unpinned.sh (bench/lib/peers.sh: an nginx upstream answering a
# fixed chat completion, plain and TLS; nginx as proxy with and without its access log;
# tollgate with key auth, SQLite metering and its access log, one worker).
#
#   bench/proxy/profile.sh [strace] [callgrind] [writer] [perf]  (default: the first three)
#
# strace     syscalls per request of each proxy, per thread kind, for GET and the openai
#            chat POST, plain and TLS upstream: `strace -f -qq -p PID` attached to the
#            running proxy (all of tollgate's threads; nginx's worker) over a wrk load
#            (-t1 -c$CONNS, ${SDUR}s), each syscall line counted by thread and name and
#            divided by the requests wrk counted. Tollgate's threads are told apart by what
#            they do: the worker waits in epoll_wait, the writer writes the SQLite WAL
#            (pwrite64). Under strace the proxy runs slower, so more events are ready per
#            epoll_wait than at full speed: epoll_wait per request is a lower bound.
# callgrind  instructions per request of tollgate's worker thread and of its writer thread
#            separately (--separate-threads=yes), and of nginx (master_process off, one
#            process) for comparison: a sequential keep-alive client (python http.client)
#            sends $WARMN requests with instrumentation off, then $N with it on
#            (callgrind_control -i on), waits for the writer's flush and dumps. Prints the
#            top 15 functions of tollgate's worker, inclusive and self, for each case.
#            The writer sees small batches here (valgrind is ~50x slower, the client is
#            sequential): its per-event figure includes a per-batch cost spread thin; the
#            writer section has the cost at the batch size of a loaded gateway.
# writer     bench/recorder/writer_cost.c under callgrind: the writer's cost per event taken
#            apart (access-log JSON formatting, the log's stdio and write, the store append
#            in batches of 256 with one usage_daily upsert a batch, 16 a batch, one per
#            event, a transaction per event, batches of 4096, without the api_keys update),
#            with the top functions of the 256-batch append.
# perf       sampled, so as noisy as the machine (not in the default set): perf record -e
#            cpu-clock -g on the running proxy (all tollgate threads; nginx's worker) over
#            the same wrk load as strace, for the plain upstream: the share of kernel time,
#            the top objects, and the top kernel and user-space symbols. Where the kernel
#            half of the CPU per request goes, which callgrind does not see.
#
# Environment: SCHEMES ("http https"), CASES ("get chat"), CONNS (32), SDUR (3), N (2000),
# WARMN (200), KEEP=DIR keeps every raw file (strace traces, callgrind outputs).
# Needs strace, valgrind (callgrind_annotate, callgrind_control), wrk, nginx, openssl,
# python3: scripts/deps.sh --bench. Takes ~10 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/setup.sh
. bench/lib/peers.sh

PARTS=${*:-strace callgrind writer}
SCHEMES=${SCHEMES:-http https}
CASES=${CASES:-get chat}
CONNS=${CONNS:-32}
SDUR=${SDUR:-3}
N=${N:-2000}
WARMN=${WARMN:-200}

bench_require strace valgrind callgrind_annotate callgrind_control wrk nginx openssl sqlite3 curl python3
if [[ " $PARTS " == *" perf "* ]]; then bench_require perf; fi
make -s all >/dev/null
T=$(mktemp -d)
PIDS=()
profile_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$T"/. "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$T"
}
trap profile_cleanup EXIT
trap 'exit 130' INT TERM

# stop PID: TERM, KILL if it is still there after 10 s (nginx under valgrind can sit in
# epoll_wait with the signal pending), wait, and drop it from PIDS
stop() {
  local i
  kill -TERM "$1" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

ready() { curl -sf -o /dev/null --max-time 5 "$@" 2>/dev/null; }
# wait_for WHAT CURL-ARGS...: up to 60 s (valgrind starts slowly)
wait_for() {
  local what=$1 i
  shift
  for i in $(seq 1 600); do
    ready "$@" && return 0
    sleep 0.1
  done
  echo "profile: $what did not come up" >&2
  exit 1
}

UP=$(port); UPS=$(port); NG=$(port); NGL=$(port); NGS=$(port); NGSL=$(port)
peers_upstream "$T/up" "$UP" "$UPS"
nginx -c "$T/up/nginx.conf" -p "$T/up" &
PIDS+=($!)
wait_for "the upstream" "http://127.0.0.1:$UP/"
write_chat_lua "$T/chat.lua"
CHAT_BODY='{"model":"bench","messages":[{"role":"user","content":"Hello, how are you today?"}],"max_tokens":16}'

# target_of SCHEME: the upstream URL tollgate is given
target_of() { if [ "$1" = https ]; then echo "https://127.0.0.1:$UPS"; else echo "http://127.0.0.1:$UP"; fi; }

# ---------------------------------------------------------------------------------------------
# strace: syscalls per request
# ---------------------------------------------------------------------------------------------
# count_trace FILE REQUESTS [WORKER-PID]: per thread kind and syscall, calls per request
count_trace() {
  python3 - "$@" <<'PY'
import collections, re, sys
path, reqs = sys.argv[1], int(sys.argv[2])
per = collections.defaultdict(collections.Counter)
line_re = re.compile(r'^(\d+)\s+([a-z_0-9]+)\(')
for line in open(path, errors='replace'):
    m = line_re.match(line)
    if not m:  # "<... x resumed>", signals, exits: the call was counted where it started
        continue
    per[m.group(1)][m.group(2)] += 1
kinds = {}
for tid, c in per.items():
    if c['pwrite64'] or c['fdatasync'] or c['fsync']:
        kinds[tid] = 'writer'
    elif c['epoll_wait'] or c['epoll_pwait']:
        kinds[tid] = 'worker'
    else:
        kinds[tid] = 'other'
# the busiest epoll thread is the worker; other loop threads (admin) are "other"
workers = [t for t in kinds if kinds[t] == 'worker']
if len(workers) > 1:
    busiest = max(workers, key=lambda t: sum(per[t].values()))
    for t in workers:
        if t != busiest:
            kinds[t] = 'other'
by = collections.defaultdict(collections.Counter)
for tid, c in per.items():
    by[kinds[tid]].update(c)
total = sum(sum(c.values()) for c in by.values())
print(f"    {total / reqs:6.2f} syscalls/request in all ({reqs} requests)")
for kind in ('worker', 'writer', 'other'):
    c = by.get(kind)
    if not c:
        continue
    n = sum(c.values())
    top = ', '.join(f"{name} {v / reqs:.3f}" for name, v in c.most_common(8))
    print(f"    {kind:6s} {n / reqs:6.3f}: {top}")
PY
}

# strace_one NAME PID URL CURL/WRK-ARGS...: attach, load, detach, count
strace_one() {
  local name=$1 pid=$2 url=$3 kind=$4
  shift 4
  local extra=()
  [ "$kind" = chat ] && extra=(-s "$T/chat.lua")
  wrk -t1 -c"$CONNS" -d1s "$@" "${extra[@]}" "$url/" >/dev/null 2>&1
  strace -f -qq -o "$T/strace.$name" -p "$pid" &
  local spid=$!
  sleep 1
  local out n
  out=$(wrk -t1 -c"$CONNS" -d"${SDUR}s" "$@" "${extra[@]}" "$url/" 2>&1)
  kill -INT $spid 2>/dev/null || true
  wait $spid 2>/dev/null || true
  n=$(echo "$out" | awk '/requests in/ { print $1 }')
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "profile: wrk served nothing for $name: $out" >&2; exit 1; }
  echo "  $name: $(echo "$out" | awk '/Non-2xx/ { print "(" $0 ")" }')"
  count_trace "$T/strace.$name" "$n"
}

# perf_one NAME PID URL KIND WRK-ARGS...: sample PID over a wrk load, report
perf_one() {
  local name=$1 pid=$2 url=$3 kind=$4
  shift 4
  local extra=()
  [ "$kind" = chat ] && extra=(-s "$T/chat.lua")
  wrk -t1 -c"$CONNS" -d1s "$@" "${extra[@]}" "$url/" >/dev/null 2>&1
  perf record -q -e cpu-clock -F 2000 -g -p "$pid" -o "$T/perf.$name" -- sleep "$SDUR" >/dev/null 2>&1 &
  local ppid=$!
  wrk -t1 -c"$CONNS" -d"$((SDUR + 1))s" "$@" "${extra[@]}" "$url/" >/dev/null 2>&1
  wait $ppid || true
  echo "  $name:"
  perf report -i "$T/perf.$name" --no-children -g none --sort dso -q 2>/dev/null |
    awk 'NF { printf "%s%s %s", sep, $1, $2; sep = ", " } END { print "" }' | sed 's/^/    objects: /'
  echo "    top kernel symbols (share of the proxy's samples):"
  perf report -i "$T/perf.$name" --no-children -g none --sort sym -q 2>/dev/null |
    awk '$2 == "[k]"' | head -12 | sed 's/^ */      /' || true
  echo "    top user-space symbols:"
  perf report -i "$T/perf.$name" --no-children -g none --sort dso,sym -q 2>/dev/null |
    awk '$3 == "[.]"' | head -10 | sed 's/^ */      /' || true
}

if [[ " $PARTS " == *" strace "* || " $PARTS " == *" perf "* ]]; then
  TG=$(port); TGA=$(port); TGS=$(port); TGSA=$(port)
  peers_nginx "$T/ng" "$UP" "$UPS" "$NG" "$NGL" "$NGS" "$NGSL" "$T/up/cert.pem"
  nginx -c "$T/ng/nginx.conf" -p "$T/ng" &
  NGPID=$!
  PIDS+=($NGPID)
  peers_tollgate "$T/tg" "$TG" "$TGA" "$(target_of http)" "$T/up/cert.pem"
  peers_tollgate "$T/tgs" "$TGS" "$TGSA" "$(target_of https)" "$T/up/cert.pem"
  build/tollgate -c "$T/tg/tollgate.yaml" serve 2>"$T/tg/err" &
  TGPID=$!
  PIDS+=($TGPID)
  build/tollgate -c "$T/tgs/tollgate.yaml" serve 2>"$T/tgs/err" &
  TGSPID=$!
  PIDS+=($TGSPID)
  wait_for nginx "http://127.0.0.1:$NG/"
  wait_for tollgate "http://127.0.0.1:$TGA/healthz"
  wait_for tollgate-tls "http://127.0.0.1:$TGSA/healthz"
  NGW=$(ps -o pid= --ppid $NGPID | head -1 | tr -d ' ')
fi
if [[ " $PARTS " == *" strace "* ]]; then
  echo "== strace: syscalls per request (wrk -t1 -c$CONNS -d${SDUR}s, strace -f attached) =="
  for scheme in $SCHEMES; do
    for kind in $CASES; do
      echo "$scheme upstream, $kind:"
      if [ "$scheme" = https ]; then
        strace_one "tollgate.$scheme.$kind" $TGSPID "http://127.0.0.1:$TGS" $kind -H "Authorization: Bearer $(cat "$T/tgs/key")"
        strace_one "nginx.$scheme.$kind" "$NGW" "http://127.0.0.1:$NGS" $kind
        strace_one "nginx-log.$scheme.$kind" "$NGW" "http://127.0.0.1:$NGSL" $kind
      else
        strace_one "tollgate.$scheme.$kind" $TGPID "http://127.0.0.1:$TG" $kind -H "Authorization: Bearer $(cat "$T/tg/key")"
        strace_one "nginx.$scheme.$kind" "$NGW" "http://127.0.0.1:$NG" $kind
        strace_one "nginx-log.$scheme.$kind" "$NGW" "http://127.0.0.1:$NGL" $kind
      fi
    done
  done
  echo
fi
if [[ " $PARTS " == *" perf "* ]]; then
  echo "== perf: sampled CPU of each proxy, plain upstream (noisy: as busy as the machine) =="
  for kind in $CASES; do
    perf_one "tollgate.$kind" $TGPID "http://127.0.0.1:$TG" $kind -H "Authorization: Bearer $(cat "$T/tg/key")"
    perf_one "nginx.$kind" "$NGW" "http://127.0.0.1:$NG" $kind
    perf_one "nginx-log.$kind" "$NGW" "http://127.0.0.1:$NGL" $kind
  done
  echo
fi
if [[ " $PARTS " == *" strace "* || " $PARTS " == *" perf "* ]]; then
  stop $TGPID
  stop $TGSPID
  stop $NGPID
fi

# ---------------------------------------------------------------------------------------------
# callgrind: instructions per request, tollgate's worker and writer apart; nginx for scale
# ---------------------------------------------------------------------------------------------
# client PORT KIND COUNT [KEY]: COUNT sequential keep-alive requests, each must answer 200
client() {
  python3 - "$@" "$CHAT_BODY" <<'PY'
import http.client, sys
port, kind, count, key, body = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
h = {"Authorization": "Bearer " + key} if key != "-" else {}
for i in range(count):
    if kind == "chat":
        c.request("POST", "/v1/chat/completions", body=body, headers=dict(h, **{"Content-Type": "application/json"}))
    else:
        c.request("GET", "/", headers=h)
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"client: status {r.status} at request {i}")
PY
}

# cg_total FILE: the Ir total of a callgrind output file
cg_total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }
# cg_calls FILE FUNCTION: how many times FUNCTION was called (from the call records)
cg_calls() {
  python3 - "$1" "$2" <<'PY'
import re, sys
names, total, target = {}, 0, sys.argv[2]
want = False
for line in open(sys.argv[1], errors='replace'):
    if line.startswith('cfn='):
        m = re.match(r'cfn=\((\d+)\)(?: (.*))?', line.rstrip('\n'))
        if m:
            if m.group(2): names[m.group(1)] = m.group(2)
            want = names.get(m.group(1)) == target
        else:
            want = line.rstrip('\n')[4:] == target
    elif line.startswith('fn='):
        m = re.match(r'fn=\((\d+)\)(?: (.*))?', line.rstrip('\n'))
        if m and m.group(2): names[m.group(1)] = m.group(2)
    elif line.startswith('calls=') and want:
        total += int(line.split()[0][6:])
        want = False
print(total)
PY
}
# cg_top FILE DIVISOR COUNT: the top COUNT functions, inclusive then self, in Ir per
# DIVISOR (requests or events), file paths cut to the file name
cg_top() {
  local f=$1 div=$2 count=$3 mode
  for mode in yes no; do
    if [ $mode = yes ]; then echo "    inclusive:"; else echo "    self:"; fi
    callgrind_annotate --auto=no --threshold=100 --inclusive=$mode "$f" 2>/dev/null |
      awk -v d="$div" 'hdr && $1 ~ /^[0-9,]+$/ { v = $1; gsub(",", "", v); name = $0
          sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", name)
          sub(/ \[.*\]$/, "", name); sub(/^.*\//, "", name)
          if (!seen[name]++) printf "      %8.0f  %s\n", v / d, name }
        /file:function/ { hdr = 1 }' |
      grep -v -E 'below main|libc_start|start_thread|clone3?$|0x0000000000|:main$|_main$' | head -"$count" || true
  done
}

# callgrind_one NAME DIR PORT KIND KEY CMD...: run CMD under callgrind, count N requests
callgrind_one() {
  local name=$1 dir=$2 port=$3 kind=$4 key=$5 health=$6
  shift 6
  mkdir -p "$dir/cg"
  valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no \
    --callgrind-out-file="$dir/cg/out" "$@" 2>"$dir/cg/valgrind.err" &
  local pid=$!
  PIDS+=($pid)
  wait_for "$name under valgrind" "$health"
  client "$port" "$kind" "$WARMN" "$key"
  callgrind_control -i on $pid >/dev/null 2>&1
  client "$port" "$kind" "$N" "$key"
  sleep 1 # the writer's flush (50 ms) and a tick or two
  callgrind_control -d $pid >/dev/null 2>&1
  callgrind_control -i off $pid >/dev/null 2>&1
  stop $pid
}

if [[ " $PARTS " == *" callgrind "* ]]; then
  echo "== callgrind: instructions per request ($N sequential keep-alive requests after $WARMN) =="
  for scheme in $SCHEMES; do
    for kind in $CASES; do
      d="$T/cg.$scheme.$kind"
      p=$(port); a=$(port)
      peers_tollgate "$d/tg" "$p" "$a" "$(target_of $scheme)" "$T/up/cert.pem"
      callgrind_one tollgate "$d/tg" "$p" "$kind" "$(cat "$d/tg/key")" "http://127.0.0.1:$a/healthz" \
        build/tollgate -c "$d/tg/tollgate.yaml" serve
      events=$(sqlite3 "$d/tg/tollgate.db" "select count(*) from usage_events")
      echo "tollgate, $scheme upstream, $kind ($events events in the store):"
      for f in "$d/tg/cg"/out.1-*; do
        # which thread: by the code it ran (instrumentation starts inside the threads'
        # loops, so their start functions do not show)
        what=other
        if grep -q 'gateway/conn\.c' "$f"; then what=worker
        elif grep -q 'recorder\.c' "$f"; then what=writer
        elif grep -q 'watch\.c' "$f"; then what=watcher; fi
        tot=$(cg_total "$f")
        case $what in
          writer)
            batches=$(cg_calls "$f" sq_append)
            awk -v t="$tot" -v n="$N" -v b="$batches" 'BEGIN { printf "  writer  %8.0f Ir/request (%d appends: %.1f events a batch)\n", t / n, b, b ? n / b : 0 }' ;;
          *) awk -v w=$what -v t="$tot" -v n="$N" 'BEGIN { printf "  %-7s %8.0f Ir/request\n", w, t / n }' ;;
        esac
        [ $what = worker ] && cp "$f" "$d/worker.cg"
        [ $what = writer ] && cp "$f" "$d/writer.cg"
      done
      if [ -f "$d/worker.cg" ]; then
        echo "  worker, top 15:"
        cg_top "$d/worker.cg" "$N" 15
      fi
      if [ -f "$d/writer.cg" ]; then
        echo "  writer, top 12 inclusive:"
        cg_top "$d/writer.cg" "$N" 12 | sed -n '1,13p'
      fi
      # nginx, the same requests, no access log (NG/NGS) and with it (NGL/NGSL)
      np=$(port); npl=$(port); nps=$(port); npsl=$(port)
      peers_nginx "$d/ng" "$UP" "$UPS" "$np" "$npl" "$nps" "$npsl" "$T/up/cert.pem" off
      if [ $scheme = https ]; then port_a=$nps; port_b=$npsl; else port_a=$np; port_b=$npl; fi
      mkdir -p "$d/ng/cg"
      valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$d/ng/cg/out" \
        nginx -c "$d/ng/nginx.conf" -p "$d/ng" 2>"$d/ng/cg/valgrind.err" &
      ngp=$!
      PIDS+=($ngp)
      wait_for "nginx under valgrind" "http://127.0.0.1:$port_a/"
      for pp in $port_a $port_b; do
        client "$pp" "$kind" "$WARMN" -
        callgrind_control -z $ngp >/dev/null 2>&1
        callgrind_control -i on $ngp >/dev/null 2>&1
        client "$pp" "$kind" "$N" -
        callgrind_control -d $ngp >/dev/null 2>&1
        callgrind_control -i off $ngp >/dev/null 2>&1
      done
      stop $ngp
      files=("$d/ng/cg"/out.*)
      awk -v a="$(cg_total "${files[0]}")" -v b="$(cg_total "${files[1]}")" -v n="$N" -v s=$scheme -v k=$kind \
        'BEGIN { printf "nginx, %s upstream, %s: %.0f Ir/request without access log, %.0f with it\n", s, k, a / n, b / n }'
      cp "${files[0]}" "$d/nginx.cg"
      echo
    done
  done
fi

# ---------------------------------------------------------------------------------------------
# writer: cost per event, taken apart (bench/recorder/writer_cost.c)
# ---------------------------------------------------------------------------------------------
if [[ " $PARTS " == *" writer "* ]]; then
  echo "== writer: instructions per event (bench/recorder/writer_cost.c under callgrind) =="
  mkdir -p "$T/wc"
  make -s build/bench/writer_cost >/dev/null # the Makefile links it (every library it needs)
  valgrind --tool=callgrind --callgrind-out-file="$T/wc/out" build/bench/writer_cost "$T/wc" \
    >"$T/wc/stdout" 2>"$T/wc/valgrind.err"
  for f in "$T/wc"/out.*; do
    phase=$(sed -n 's/^desc: Trigger: Client Request: //p' "$f")
    n=$(awk -v p="$phase" '$1 == p { print $2 }' "$T/wc/stdout")
    awk -v p="$phase" -v t="$(cg_total "$f")" -v n="$n" 'BEGIN { printf "  %-18s %8.0f Ir/event\n", p, t / n }'
    [ "$phase" = append_b256 ] && cp "$f" "$T/wc/append_b256.cg"
    [ "$phase" = format ] && cp "$f" "$T/wc/format.cg"
    [ "$phase" = append_b256_get ] && cp "$f" "$T/wc/append_b256_get.cg"
  done
  echo "  append_b256, top 15 (per event):"
  cg_top "$T/wc/append_b256.cg" 5120 15
  echo "  append_b256_get, top 15 (per event):"
  cg_top "$T/wc/append_b256_get.cg" 5120 15
  echo "  format, top 8 (per event):"
  cg_top "$T/wc/format.cg" 5120 8
fi
