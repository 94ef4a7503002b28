#!/usr/bin/env bash
# Recorder benchmark: builds bench_recorder and pushes EVENTS usage events from
# PRODUCERS threads through the real recorder into a real SQLite store.
#   bench/recorder/run.sh [EVENTS [PRODUCERS]]      (default 1000000 2)
# Extra options go to the program through BENCH_ARGS, e.g. BENCH_ARGS="-q 16384".
# TG_BENCH_PG=1: PostgreSQL too. Two private servers (scripts/pg-test.sh, ports
# TG_BENCH_PG_PORT and the next; default 56990): one as installed (fsync on), one with
# PG_TEST_FAST=1 (fsync off); ROUNDS rounds (default 3), each running SQLite, PostgreSQL
# and PostgreSQL without fsync one after another into a fresh database, so the three are
# compared under the same load. The servers are stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

EVENTS=${1:-1000000}
PRODUCERS=${2:-2}
BIN=build/bench/bench_recorder
# The Makefile's rule (make check builds it too): linked with everything libtollgate.a needs.
make -s -j2 "$BIN" >&2

echo "bench/recorder: $EVENTS events, $PRODUCERS producers, $(nproc) CPUs" >&2
if [ "${TG_BENCH_PG:-0}" != 1 ]; then
  "$BIN" -n "$EVENTS" -p "$PRODUCERS" ${BENCH_ARGS:-}
  exit
fi

PORT=${TG_BENCH_PG_PORT:-56990}
PGDIR=$(mktemp -d /tmp/tg_bench_pg.XXXXXX)
chmod 755 "$PGDIR" # as root, the servers run as postgres, which must reach their directories
stop_servers() {
  scripts/pg-test.sh stop "$PGDIR/sync" --rm >/dev/null 2>&1 || true
  scripts/pg-test.sh stop "$PGDIR/fast" --rm >/dev/null 2>&1 || true
  rm -rf "$PGDIR"
}
trap stop_servers EXIT
URL_SYNC=$(scripts/pg-test.sh start "$PGDIR/sync" "$PORT")
URL_FAST=$(PG_TEST_FAST=1 scripts/pg-test.sh start "$PGDIR/fast" $((PORT + 1)))
fresh() { # URL ROUND: a new empty database on that server; prints its URL
  local base=${1%/*}
  psql -qX "$1" -c "DROP DATABASE IF EXISTS bench$2" -c "CREATE DATABASE bench$2" >/dev/null
  echo "$base/bench$2"
}
for r in $(seq 1 "${ROUNDS:-3}"); do
  echo "== round $r: sqlite" >&2
  "$BIN" -n "$EVENTS" -p "$PRODUCERS" ${BENCH_ARGS:-}
  echo "== round $r: postgres (fsync on)" >&2
  "$BIN" -n "$EVENTS" -p "$PRODUCERS" -s "$(fresh "$URL_SYNC" "$r")" ${BENCH_ARGS:-}
  echo "== round $r: postgres (PG_TEST_FAST=1: fsync off)" >&2
  "$BIN" -n "$EVENTS" -p "$PRODUCERS" -s "$(fresh "$URL_FAST" "$r")" ${BENCH_ARGS:-}
done
