#!/usr/bin/env bash
# Ingest benchmark: `tollgate ingest` against GoAccess on the same generated logs.
#   bench/ingest/run.sh [LINES]                         (default 1000000)
# Generates a CloudFront standard log (33 fields, #Fields header) and a combined log of
# LINES records each (50 API keys in the query, 45 of them known to the store; 10% 503s;
# a month of timestamps), then times, each pinned to CPU 0 (taskset), one after the other:
#   parse   tollgate ingest --dry-run   (read, split, parse every field; nothing stored)
#   store   tollgate ingest             (into a fresh SQLite store holding the tenants and
#                                        keys: keys hashed and matched, events priced,
#                                        deduplicated and written with usage_daily)
#   goaccess goaccess --log-format=CLOUDFRONT|COMBINED -o report.json --no-progress
# and prints lines/s by wall clock and by CPU time (user + sys), which moves less when the
# machine is shared. Needs goaccess (scripts/deps.sh --bench) and python3 for the logs.
set -euo pipefail
cd "$(dirname "$0")/../.."

LINES=${1:-1000000}
command -v goaccess >/dev/null || { echo "bench/ingest: goaccess missing (scripts/deps.sh --bench)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "bench/ingest: taskset missing (util-linux)" >&2; exit 1; }
make -s all >/dev/null
BIN=$PWD/build/tollgate
DIR=$(mktemp -d /tmp/tollgate-bench-ingest-XXXXXX)
trap 'rm -rf "$DIR"' EXIT

python3 - "$DIR" "$LINES" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
fields = ("date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
          "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type "
          "x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for "
          "ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status "
          "fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type "
          "sc-content-type sc-content-len sc-range-start sc-range-end")
ua = ("Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/537.36%20"
      "(KHTML,%20like%20Gecko)%20Chrome/78.0.3904.108%20Safari/537.36")
with open(f"{d}/cf.log", "w") as f:
    f.write("#Version: 1.0\n#Fields: " + fields + "\n")
    for i in range(n):
        day, sec = 1 + i * 30 // n, i % 86400
        t = "%02d:%02d:%02d" % (sec // 3600, sec // 60 % 60, sec % 60)
        f.write("\t".join([
            "2026-11-%02d" % day, t, "FRA56-P1", str(1000 + i % 5000), "198.51.100.%d" % (i % 250),
            "GET", "d1.cloudfront.net", "/v1/items/%d" % (i % 1000), "503" if i % 10 == 0 else "200",
            "-", ua, "cf_api_key=tg_bench_key_%02d&page=%d" % (i % 50, i % 7), "-",
            "Hit" if i % 3 == 0 else "Miss", "REQ%012dabcdefghijABCDEFGHIJ==" % i,
            "api.example.com", "https", "50", "0.020", "-", "TLSv1.3", "TLS_AES_128_GCM_SHA256",
            "Miss", "HTTP/2.0", "-", "-", "443", "0.010", "Miss", "application/json", "900",
            "-", "-"]) + "\n")
with open(f"{d}/combined.log", "w") as f:
    for i in range(n):
        day, sec = 1 + i * 30 // n, i % 86400
        f.write('198.51.100.%d - - [%02d/Nov/2026:%02d:%02d:%02d +0000] "GET /v1/items/%d?'
                'api_key=tg_bench_key_%02d HTTP/1.1" %s %d "https://example.com/" "%s"\n'
                % (i % 250, day, sec // 3600, sec // 60 % 60, sec % 60, i % 1000, i % 50,
                   "503" if i % 10 == 0 else "200", 1000 + i % 5000, ua.replace("%20", " ")))
PY

cat >"$DIR/tollgate.yaml" <<YAML
store: sqlite:$DIR/tollgate.db
upstreams:
  - { name: u, targets: [http://127.0.0.1:9] }
routes:
  - { name: r, path_prefix: /, upstream: u, kind: http }
YAML
fresh_store() {
  rm -f "$DIR"/tollgate.db*
  for t in 0 1 2 3 4; do "$BIN" -c "$DIR/tollgate.yaml" tenant add "t$t" >/dev/null; done
  for k in $(seq 0 44); do
    printf 'tg_bench_key_%02d' "$k" | "$BIN" -c "$DIR/tollgate.yaml" key import --tenant "t$((k % 5))" >/dev/null
  done
}

# Runs a command pinned to CPU 0; prints "wall_s cpu_s".
timed() {
  /usr/bin/time -f '%e %U %S' -o "$DIR/time" taskset -c 0 "$@" >"$DIR/out" 2>"$DIR/err" || { cat "$DIR/err" >&2; exit 1; }
  awk '{ printf "%s %.2f", $1, $2 + $3 }' "$DIR/time"
}
report() { # name wall cpu
  awk -v n="$1" -v w="$2" -v c="$3" -v l="$LINES" \
    'BEGIN { printf "%-34s %7.2f s wall %9.0f lines/s   %7.2f s cpu %9.0f lines/s\n", n, w, l / w, c, l / c }'
}

printf 'bench/ingest: %s lines a format; %s\n' "$LINES" "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for fmt in cloudfront:cf:CLOUDFRONT combined:combined:COMBINED; do
  IFS=: read -r name file ga <<<"$fmt"
  read -r w c <<<"$(timed "$BIN" -c "$DIR/tollgate.yaml" ingest --dry-run --format "$name" "$DIR/$file.log")"
  report "$name tollgate parse only" "$w" "$c"
  fresh_store
  read -r w c <<<"$(timed "$BIN" -c "$DIR/tollgate.yaml" ingest --format "$name" "$DIR/$file.log")"
  report "$name tollgate into the store" "$w" "$c"
  grep -q "$LINES stored" "$DIR/out" || { echo "bench/ingest: not all stored: $(cat "$DIR/out")" >&2; exit 1; }
  read -r w c <<<"$(timed goaccess "$DIR/$file.log" --log-format="$ga" --no-global-config --no-progress -o "$DIR/report.json")"
  report "$name goaccess (report.json)" "$w" "$c"
done
