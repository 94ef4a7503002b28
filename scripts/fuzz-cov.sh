#!/usr/bin/env bash
# Line coverage of the fuzz corpora (docs/fuzzing.md): builds the targets once more with
# clang's source-based coverage (no sanitizers) into build/fuzz-cov/, replays each target's
# seeds and what `make fuzz` found (-runs=0: no fuzzing), and prints llvm-cov's summary for
# the files the target is about. Needs llvm-14 (llvm-profdata, llvm-cov).
#   scripts/fuzz-cov.sh [NAME...]     default: every tests/fuzz/fuzz_*.c
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=build/fuzz-cov
mkdir -p "$out/obj"
pkgs="libuv libcurl sqlite3 libssl libcrypto yaml-0.1 jansson yajl zlib libbrotlidec libzstd"
cflags="-std=c11 -D_GNU_SOURCE -Isrc -pthread -O0 -g -fprofile-instr-generate -fcoverage-mapping $(pkg-config --cflags $pkgs) -I/usr/share/include/llhttp"
libs="$(pkg-config --libs $pkgs) -lm"
objs=()
# (llhttp's sources from Debian's node-llhttp, as the Makefile builds them)
for f in $(find src -name '*.c' ! -name main.c | sort) /usr/share/llhttp/*.c; do
  o=$out/obj/$(echo "${f%.c}" | tr / _).o
  [ "$o" -nt "$f" ] || clang $cflags -c "$f" -o "$o"
  objs+=("$o")
done
rm -f "$out/lib.a" && ar rcs "$out/lib.a" "${objs[@]}"
# What each target is about (the rest of the library it reaches is not summed).
declare -A files=(
  [request]="src/gateway/conn.c" [sse]="src/meter/sse.c" [jpick]="src/util/jpick.c"
  [exchange]="src/meter/exchange.c src/meter/usage.c" [mcp]="src/meter/exchange.c"
  [config]="src/config/config.c" [decode]="src/meter/decode.c"
  [upstream]="src/gateway/conn.c src/gateway/h1.c"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || for f in tests/fuzz/fuzz_*.c; do n=${f##*/fuzz_}; names+=("${n%.c}"); done
for t in "${names[@]}"; do
  clang $cflags -fsanitize=fuzzer -Itests/fuzz -o "$out/fuzz_$t" "tests/fuzz/fuzz_$t.c" "$out/lib.a" $libs
  dirs=("tests/fuzz/corpus/$t")
  [ -d "build/fuzz/corpus/$t" ] && dirs+=("build/fuzz/corpus/$t")
  LLVM_PROFILE_FILE="$out/$t.profraw" "$out/fuzz_$t" -runs=0 "${dirs[@]}" >"$out/$t.log" 2>&1
  llvm-profdata-14 merge -sparse "$out/$t.profraw" -o "$out/$t.profdata"
  echo "== $t ($(find "${dirs[@]}" -type f | wc -l) inputs)"
  # shellcheck disable=SC2086
  llvm-cov-14 report "$out/fuzz_$t" -instr-profile="$out/$t.profdata" ${files[$t]:-} |
    awk '/\.c / {n = split($1, p, "/"); printf "%-12s lines %5d of %5d (%s), branches %s\n", p[n], $8 - $9, $8, $10, $13}'
done
