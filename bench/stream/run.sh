#!/usr/bin/env bash
# bench/stream: per-chunk latency and time to first token of streamed OpenAI chat
# completions, side by side in one run, five ways:
#   direct       client -> mock upstream (no include_usage asked)
#   tollgate     client -> tollgate (route kind openai) -> mock; the client does not ask
#                for include_usage, so tollgate injects it and rewrites the stream (holds
#                each event until it ends, strips the usage chunk and "usage":null)
#   nginx        client -> nginx (proxy_pass, proxy_buffering off, keepalive) -> mock
#   direct+iu    as direct, the client asking stream_options.include_usage itself
#   tollgate+iu  as tollgate, include_usage asked by the client: pass-through parsing
# The mock stamps every event with `id: <CLOCK_MONOTONIC ns>` (x-mock-stamp: 1) and the
# client (bench/stream/client.c, epoll, one thread) takes the same clock when the read()
# holding the event's last byte returns: per-chunk latency = arrival - stamp; TTFT = first non-empty content - request
# start (includes one mock interval by construction). Added latency = way - its direct
# baseline. Rounds alternate the ways (direct, tollgate, nginx, direct+iu, tollgate+iu,
# then again) and the report (bench/stream/report.mjs, node) pools the rounds.
#
#   bench/stream/run.sh [STREAMS [CONC [ROUNDS]]]     (default 300 10 3)
# STREAMS per way in total (split over the rounds), CONC concurrent streams;
# MAX_TOKENS (50) and INTERVAL_MS (10) from the environment.
# PIN=1: the client on CPU 0, the proxy under test and the mock on CPU 1 (as bench/proxy);
# the client then also busy-polls (--spin) on its CPU, so its own wake-up is not measured.
# KEEP=DIR keeps the sample files in DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/nginx.sh
. bench/lib/setup.sh
STREAMS=${1:-300}
CONC=${2:-10}
ROUNDS=${3:-3}
MAX_TOKENS=${MAX_TOKENS:-50}
INTERVAL_MS=${INTERVAL_MS:-10}
if [ "${PIN:-0}" = 1 ]; then LOAD="taskset -c 0"; SERVE="taskset -c 1"; SPIN=(--spin); else LOAD=""; SERVE=""; SPIN=(); fi

command -v nginx >/dev/null || scripts/deps.sh --bench
make -s all >/dev/null
mkdir -p build/bench
CLIENT=build/bench/stream-client
if [ ! -x $CLIENT ] || [ bench/stream/client.c -nt $CLIENT ]; then
  ${CC:-cc} -O2 -g -std=c11 -Wall -Wextra -Werror -o $CLIENT bench/stream/client.c
fi

T=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$T"/*.json "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT
UP=$(port); TG=$(port); TGA=$(port); NG=$(port)

$SERVE build/mock-upstream --listen 127.0.0.1:$UP --threads 1 >"$T/mock.log" 2>&1 &
PIDS+=($!)

cat >"$T/tollgate.yaml" <<YAML
server: { listen: 127.0.0.1:$TG, admin_listen: 127.0.0.1:$TGA, workers: 1 }
store: sqlite:$T/tollgate.db
log: { access: $T/tollgate-access.log, level: warn }
upstreams:
  - { name: mock, targets: [http://127.0.0.1:$UP] }
routes:
  - { name: chat, path_prefix: /v1/, upstream: mock, kind: openai }
prices:
  models:
    bench: { input: 0.15, output: 0.60 }
YAML
build/tollgate -c "$T/tollgate.yaml" tenant add bench >/dev/null
KEY=$(build/tollgate -c "$T/tollgate.yaml" key create --tenant bench 2>/dev/null | sed -n 's/^secret: //p')
$SERVE build/tollgate -c "$T/tollgate.yaml" serve 2>"$T/tollgate.err" &
TGPID=$!
PIDS+=($TGPID)

start_nginx "$T" "$NG" "$UP" 1

for i in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$TGA/healthz" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$NG/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

PER=$(( (STREAMS + ROUNDS - 1) / ROUNDS ))
ARGS=(--streams "$PER" --conc "$CONC" --max-tokens "$MAX_TOKENS" --interval-ms "$INTERVAL_MS" "${SPIN[@]}")
P=/v1/chat/completions
FILES=()
for r in $(seq 1 "$ROUNDS"); do
  for way in direct tollgate nginx direct+iu tollgate+iu; do
    case $way in
      direct*) port=$UP; extra=() ;;
      tollgate*) port=$TG; extra=(--key "$KEY") ;;
      nginx) port=$NG; extra=() ;;
    esac
    case $way in *+iu) extra+=(--include-usage) ;; esac
    f="$T/$way.$r.json"
    $LOAD $CLIENT 127.0.0.1 $port $P "$f" --way "$way" "${ARGS[@]}" "${extra[@]}"
    FILES+=("$f")
  done
done
echo
node bench/stream/report.mjs tollgate=direct nginx=direct tollgate+iu=direct+iu "${FILES[@]}"

# The injected path must hide the usage from the client (no usage chunk, no "usage":null)
# and tollgate must still have metered every stream's tokens.
kill -TERM $TGPID
wait $TGPID || true
echo
python3 - "$T" <<'PY'
import json, glob, sys, os
t = sys.argv[1]
def tot(way, k):
    return sum(json.load(open(f))[k] for f in glob.glob(os.path.join(t, way + ".*.json")))
ok = True
for way, want in (("direct", 0), ("tollgate", 0), ("nginx", 0)):
    n, m = tot(way, "usageChunks"), tot(way, "usageNull")
    print(f"{way}: {n} usage chunks, {m} \"usage\":null seen by the client (want 0)")
    ok &= n == 0 and m == 0
for way in ("direct+iu", "tollgate+iu"):
    n, s = tot(way, "usageChunks"), tot(way, "streams")
    print(f"{way}: {n} usage chunks for {s} streams (want one each)")
    ok &= n == s
sys.exit(0 if ok else 1)
PY
sqlite3 "$T/tollgate.db" "select 'tollgate metered ' || count(*) || ' streams, ' || sum(tokens_out) || ' output tokens, ' || sum(tokens_out is null) || ' with tokens unknown, cost ' || sum(cost_micros) || ' micro-USD' from usage_events"
echo "(streams per way=$STREAMS in $ROUNDS rounds, concurrency=$CONC, max_tokens=$MAX_TOKENS, interval=${INTERVAL_MS} ms, pin=${PIN:-0}; $(nproc) cores shared by client, proxy and mock)"
