#!/usr/bin/env bash
# Limiter benchmark: decisions per second on one thread for 1, 10,000 and 1,000,000 tenants,
# and memory per tenant.
#   bench/limiter/run.sh [DECISIONS [RUNS]]      (default 20000000 3)
# Extra options go to the program through BENCH_ARGS, e.g. BENCH_ARGS="-s 16".
# Links build/libtollgate.a when it is newer than the sources it needs;
# otherwise compiles those sources directly (so it works while `make` is not).
set -euo pipefail
cd "$(dirname "$0")/../.."

DECISIONS=${1:-20000000}
RUNS=${2:-3}
OUT=build/bench
BIN=$OUT/bench_limiter
mkdir -p "$OUT"

CC=${CC:-cc}
CFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Isrc -pthread"
SRCS="src/policy/ratelimit.c src/util/log.c"

lib=build/libtollgate.a
use_lib=0
if [ -f "$lib" ]; then
  use_lib=1
  for s in $SRCS src/policy/ratelimit.h src/util/log.h; do
    if [ "$s" -nt "$lib" ]; then use_lib=0; break; fi
  done
fi

if [ $use_lib -eq 1 ]; then
  echo "bench/limiter: linking $lib" >&2
  # Only the limiter's members (and the assert helper) are pulled from the archive.
  $CC $CFLAGS -Werror bench/limiter/bench_limiter.c "$lib" -o "$BIN" -pthread
else
  echo "bench/limiter: compiling from sources ($lib missing or older than them)" >&2
  # The library sources get -Werror from the Makefile build; here only the bench does.
  objs=()
  for s in $SRCS; do
    o="$OUT/$(echo "$s" | tr / _).o"
    $CC $CFLAGS -c "$s" -o "$o"
    objs+=("$o")
  done
  $CC $CFLAGS -Werror bench/limiter/bench_limiter.c "${objs[@]}" -o "$BIN" -pthread
fi

echo "bench/limiter: $DECISIONS decisions x $RUNS runs per case, 1 thread, $(nproc) CPUs" >&2
"$BIN" -n "$DECISIONS" -r "$RUNS" ${BENCH_ARGS:-}
