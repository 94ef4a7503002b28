#!/usr/bin/env bash
# Runs the unit-test binaries given, UNIT_JOBS at a time (default: one more than the cores, as
# some binaries spend seconds waiting on the store's timeouts; each binary has its own temp
# files, and its own schemas on the test PostgreSQL server); prints one summary line, and
# the log (BIN.log) of each binary that failed; fails if any failed.
set -u
jobs=${UNIT_JOBS:-$(( $(nproc 2>/dev/null || echo 1) + 1 ))}
results=$(mktemp)
trap 'rm -f "$results"' EXIT
# The slowest first (by the time each took in the last run here, BIN.ms), so that the run
# does not end with one long binary on one core.
order=$(for t in "$@"; do printf '%s %s\n' "$(cat "$t.ms" 2>/dev/null || echo 0)" "$t"; done |
  sort -rn -k1,1 | cut -d' ' -f2-)
# shellcheck disable=SC2016
printf '%s\n' "$order" | xargs -d '\n' -P "$jobs" -n 1 sh -c '
  s=$(date +%s%N)
  if "$1" >"$1.log" 2>&1; then r=pass; else r=fail; fi
  echo $(( ($(date +%s%N) - s) / 1000000 )) >"$1.ms"
  echo "$r $1" >>"$0"' "$results"
pass=$(grep -c '^pass ' "$results")
fail=$(grep -c '^fail ' "$results")
failed=$(sed -n 's/^fail //p' "$results")
for t in $failed; do cat "$t.log"; done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:" $failed >&2; exit 1; }
[ "$pass" -eq $# ] || { echo "unit: $# binaries given, $pass reported" >&2; exit 1; }
