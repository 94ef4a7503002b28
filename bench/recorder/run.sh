#!/usr/bin/env bash
# Recorder benchmark: builds bench_recorder and pushes EVENTS usage events from
# PRODUCERS threads through the real recorder into a real SQLite store.
#   bench/recorder/run.sh [EVENTS [PRODUCERS]]      (default 1000000 2)
# Extra options go to the program through BENCH_ARGS, e.g. BENCH_ARGS="-q 16384".
# Links build/libtollgate.a when it is newer than the sources it needs;
# otherwise compiles those sources directly (so it works while `make` is not).
set -euo pipefail
cd "$(dirname "$0")/../.."

EVENTS=${1:-1000000}
PRODUCERS=${2:-2}
OUT=build/bench
BIN=$OUT/bench_recorder
mkdir -p "$OUT"

CC=${CC:-cc}
CFLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Isrc -pthread"
PKGS="sqlite3 jansson libcrypto"
LIBS="$(pkg-config --libs $PKGS) -pthread -lm"
SRCS="src/meter/recorder.c src/types/event.c src/observe/accesslog.c $(ls src/store/*.c src/util/*.c)"

lib=build/libtollgate.a
use_lib=0
if [ -f "$lib" ]; then
  use_lib=1
  for s in $SRCS $(ls src/meter/*.h src/store/*.h src/observe/*.h src/types/*.h src/util/*.h); do
    if [ "$s" -nt "$lib" ]; then use_lib=0; break; fi
  done
fi

if [ $use_lib -eq 1 ]; then
  echo "bench/recorder: linking $lib" >&2
  # The archive holds every module; its other members may need the full set.
  ALL="$(pkg-config --libs libuv libcurl sqlite3 libcrypto yaml-0.1 jansson 2>/dev/null) -lhttp_parser"
  $CC $CFLAGS -Werror $(pkg-config --cflags $PKGS) bench/recorder/bench_recorder.c "$lib" \
    -o "$BIN" $ALL -pthread -lm
else
  echo "bench/recorder: compiling from sources ($lib missing or older than them)" >&2
  # The library sources get -Werror from the Makefile build; here only the bench does.
  objs=()
  for s in $SRCS; do
    o="$OUT/$(echo "$s" | tr / _).o"
    $CC $CFLAGS $(pkg-config --cflags $PKGS) -c "$s" -o "$o"
    objs+=("$o")
  done
  $CC $CFLAGS -Werror $(pkg-config --cflags $PKGS) bench/recorder/bench_recorder.c "${objs[@]}" \
    -o "$BIN" $LIBS
fi

echo "bench/recorder: $EVENTS events, $PRODUCERS producers, $(nproc) CPUs" >&2
"$BIN" -n "$EVENTS" -p "$PRODUCERS" ${BENCH_ARGS:-}
