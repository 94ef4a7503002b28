#!/usr/bin/env bash
# JWT validation cost per request: instructions of one tg_jwt_verify under callgrind (only
# inside tg_jwt_verify: --toggle-collect, so key generation does not count), N verifies
# divided, and wall time per verify on this machine; then the same for a token found in the
# worker's cache of verified tokens (its SHA-256 and the lookup: auth/jwtcache.h).
#   bench/jwt/run.sh          (N=200 WALL=20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-200}
WALL=${WALL:-20000}
make -s build/bench/bench_jwt # the Makefile's rule: linked with all libtollgate.a needs
B=build/bench
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ir() { # total instructions of bench_jwt ALG N [hit] in the function measured
  valgrind --tool=callgrind --toggle-collect="${3:-tg_jwt_verify}" --callgrind-out-file="$T/cg" \
    "$B/bench_jwt" "$1" "$2" ${4:-} >/dev/null 2>&1
  callgrind_annotate "$T/cg" | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
for alg in HS256 RS256 ES256; do
  a=$(ir "$alg" "$N")
  echo "$alg: $(( a / N )) instructions per verify (callgrind); $("$B/bench_jwt" "$alg" "$WALL")"
  h=$(ir "$alg" "$N" cached_auth hit)
  echo "$alg: $(( h / N )) instructions per cache hit (callgrind); $("$B/bench_jwt" "$alg" "$WALL" hit)"
done
