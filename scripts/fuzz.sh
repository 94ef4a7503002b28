#!/usr/bin/env bash
# Runs libFuzzer targets, FUZZ_JOBS at a time (default: one per core; each target is
# single-threaded), reporting them in the order given (docs/fuzzing.md).
#   scripts/fuzz.sh run SECONDS BIN...    grow build/fuzz/corpus/NAME from it and the seeds
#   scripts/fuzz.sh check SECONDS BIN...  seeds only, fixed -seed per target (CI)
# A target's options: the defaults below, then tests/fuzz/fuzz_NAME.options (one flag a
# line, e.g. -max_len=65536) and tests/fuzz/fuzz_NAME.dict when present. Any crash, leak,
# timeout, out-of-memory or sanitizer report fails the run; the input that caused it is
# left in build/fuzz/crashes/NAME/ and the log in build/fuzz/logs/NAME.log.
set -u
mode=$1 secs=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/fuzz
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
status=$(mktemp -d)
trap 'rm -rf "$status"' EXIT

# One target: its summary line(s) go to $status/NAME.out, its exit status to NAME.rc.
one() {
  local bin=$1
  local name t seeds opts corpus log execs rss cov
  name=$(basename "$bin")
  t=${name#fuzz_}
  seeds=$root/tests/fuzz/corpus/$t
  mkdir -p "$out/crashes/$t" "$out/logs"
  opts=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$out/crashes/$t/")
  if [ -f "$root/tests/fuzz/$name.options" ]; then
    while read -r o; do [ -n "$o" ] && [ "${o:0:1}" != "#" ] && opts+=("$o"); done \
      <"$root/tests/fuzz/$name.options"
  fi
  [ -f "$root/tests/fuzz/$name.dict" ] && opts+=(-dict="$root/tests/fuzz/$name.dict")
  if [ "$mode" = check ]; then
    # A fixed seed per target: the same mutations in the same order on every machine (how
    # far a run gets in its time still depends on the machine's speed).
    corpus=$out/check-corpus/$t
    rm -rf "$corpus"
    opts+=(-seed=$(printf '%s' "$t" | cksum | cut -d' ' -f1))
  else
    corpus=$out/corpus/$t
  fi
  mkdir -p "$corpus"
  log=$out/logs/$t.log
  if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
     "$bin" "${opts[@]}" "$corpus" "$seeds" >"$log" 2>&1; then
    execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")
    rss=$(awk '/^stat::peak_rss_mb:/ {print $2}' "$log")
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+' "$log" | tail -1)
    echo "fuzz: $t: ok, ${secs} s, $execs runs, peak RSS $rss MB, $cov" >"$status/$t.out"
    echo 0 >"$status/$t.rc"
  else
    { grep -E 'ERROR|SUMMARY|runtime error|Test unit written|^==[0-9]+==' "$log" | head -20
      echo "fuzz: $t: FAILED, input in $out/crashes/$t/, log $log"; } >"$status/$t.out"
    echo 1 >"$status/$t.rc"
  fi
}

for bin in "$@"; do
  t=$(basename "$bin"); t=${t#fuzz_}
  [ -d "$root/tests/fuzz/corpus/$t" ] || { echo "fuzz: $t: no seed folder $root/tests/fuzz/corpus/$t" >&2; exit 2; }
done
running=0
for bin in "$@"; do
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
  one "$bin" &
  running=$((running + 1))
done
wait

pass=0 fail=0 failed=()
for bin in "$@"; do
  t=$(basename "$bin"); t=${t#fuzz_}
  rc=$(cat "$status/$t.rc" 2>/dev/null || echo 1)
  if [ "$rc" = 0 ]; then
    pass=$((pass + 1)); cat "$status/$t.out"
  else
    fail=$((fail + 1)); failed+=("$t"); cat "$status/$t.out" >&2 2>/dev/null || echo "fuzz: $t: no result" >&2
  fi
done
echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
