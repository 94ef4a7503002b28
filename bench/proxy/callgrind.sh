#!/bin/bash
# bench/proxy/callgrind.sh LIMITS: instructions executed by tollgate (all its
# threads, user space) for N keep-alive GETs through the native client to the
# mock upstream, under valgrind's callgrind: repeatable where req/s is noisy.
# Run it for N=200 and N=2200 and take the difference over 2000 to drop the
# start-up cost:
#   for l in 0 1; do N=200 bench/proxy/callgrind.sh $l; N=2200 bench/proxy/callgrind.sh $l; done
# CHAT=openai|http: instead, chat POSTs (the chat case of run.sh: a 100-byte request, a
# 526-byte answer with usage) to a /v1/chat/ route of that kind, with a model price:
#   for k in openai http; do for n in 200 2200; do CHAT=$k N=$n bench/proxy/callgrind.sh; done; done
# Needs build/tollgate and a mock upstream on 127.0.0.1:18581
# (build/mock-upstream --listen 127.0.0.1:18581 &). B=path picks another binary.
set -euo pipefail
L=${1:-0}; D=$(mktemp -d); trap 'rm -rf $D' EXIT
cat > $D/t.yaml <<Y
server: { listen: 127.0.0.1:18580, admin_listen: 127.0.0.1:18590, workers: 1 }
store: sqlite:$D/t.db
log: { access: $D/access.log, level: warn }
upstreams: [ { name: m, targets: [http://127.0.0.1:18581] } ]
routes: [ { name: api, path_prefix: /, upstream: m, kind: http } ]
Y
if [ -n "${CHAT:-}" ]; then
  sed -i "s|^routes: .*|routes: [ { name: chat, path_prefix: /v1/chat/, upstream: m, kind: $CHAT } ]|" $D/t.yaml
  printf 'prices:\n  models:\n    bench: { input: 0.15, output: 0.60 }\n' >> $D/t.yaml
fi
[ "$L" = 1 ] && printf 'defaults:\n  limits: { rps: 1000000, burst: 1000000, concurrency: 100000 }\n' >> $D/t.yaml
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/build/tollgate}
$B -c $D/t.yaml tenant add t >/dev/null
KEY=$($B -c $D/t.yaml key create --tenant t 2>/dev/null | sed -n 's/^secret: //p')
valgrind --tool=callgrind --callgrind-out-file=$D/cg.out $B -c $D/t.yaml serve 2>$D/vg.err &
PID=$!
for i in $(seq 1 100); do curl -s http://127.0.0.1:18590/healthz >/dev/null && break; sleep 0.2; done
sleep 1
python3 - "$KEY" <<P
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", 18580)
chat = "${CHAT:-}" != ""
body = '{"model":"bench","messages":[{"role":"user","content":"Hello, how are you today?"}],"max_tokens":16}'
for i in range(${N:-3000}):
    if chat:
        c.request("POST", "/v1/chat/completions", body=body, headers={"x-api-key": sys.argv[1], "Content-Type": "application/json"})
    else:
        c.request("GET", "/", headers={"x-api-key": sys.argv[1]})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
P
kill -TERM $PID; wait $PID || true
grep -h "^summary\|^totals" $D/cg.out | head -1
