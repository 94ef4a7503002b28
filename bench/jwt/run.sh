#!/usr/bin/env bash
# JWT validation cost per request: instructions of one tg_jwt_verify under callgrind (only
# inside tg_jwt_verify: --toggle-collect, so key generation does not count), N verifies
# divided, and wall time per verify on this machine.
#   bench/jwt/run.sh          (N=200 WALL=20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-200}
WALL=${WALL:-20000}
make -s build/libtollgate.a
B=build/bench
mkdir -p "$B"
cc -O2 -g -std=c11 -D_GNU_SOURCE -Isrc bench/jwt/bench_jwt.c build/libtollgate.a \
  $(pkg-config --libs libcrypto jansson) -pthread -o "$B/bench_jwt"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ir() { # total instructions of bench_jwt ALG N
  valgrind --tool=callgrind --toggle-collect=tg_jwt_verify --callgrind-out-file="$T/cg" \
    "$B/bench_jwt" "$1" "$2" >/dev/null 2>&1
  callgrind_annotate "$T/cg" | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
for alg in HS256 RS256 ES256; do
  a=$(ir "$alg" "$N")
  echo "$alg: $(( a / N )) instructions per verify (callgrind); $("$B/bench_jwt" "$alg" "$WALL")"
done
