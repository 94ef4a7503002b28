#!/usr/bin/env bash
# Installs the Debian packages tollgate needs to build, test and benchmark.
# The one place the project's system dependencies are listed; `make run` and
# `make check` both call it, and it does nothing when everything is present.
set -euo pipefail

# clang and libclang-rt-14-dev (libFuzzer's runtime) build the fuzz targets of `make fuzz`;
# llvm-14 has llvm-cov for scripts/fuzz-cov.sh. prometheus has promtool, which the tests run
# on /metrics (`promtool check metrics`), and the server the metrics e2e test scrapes with;
# prometheus-alertmanager is the Alertmanager tests/e2e/notify.test.mjs starts on its own port
# (the package's system service is never used).
# libhiredis-dev is the Redis client of the shared limiter (limits.backend: redis://, with its
# libuv adapter); redis-server is the private Redis tests/e2e/redis.test.mjs starts on its own
# port and directory (the package's system service is never used).
# libpq-dev is the PostgreSQL client of the postgres:// store; postgresql has the server the
# store tests and the multi-instance e2e start privately (initdb in a temp dir, a loopback
# port, run as the package's postgres user; its system cluster is never used).
# node-llhttp ships llhttp's C sources (/usr/share/llhttp), which the Makefile compiles: the
# HTTP/1.1 parser of the gateway, its upstream client and the admin listener.
PKGS=(
  build-essential pkg-config clang-format clang libclang-rt-14-dev llvm-14
  libuv1-dev libcurl4-openssl-dev libhttp-parser-dev libsqlite3-dev libssl-dev
  libyaml-dev libjansson-dev libyajl-dev libcmocka-dev
  zlib1g-dev libbrotli-dev libzstd-dev libhiredis-dev libpq-dev
  curl sqlite3 openssl faketime prometheus prometheus-alertmanager
  node-llhttp redis-server postgresql
)
# chromium: the headless browser tests/e2e/dashboard.test.mjs drives over CDP (puppeteer-core).
PKGS+=(chromium)
# Node runs the end-to-end tests; any node >= 20 will do, so keep one that is there.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
# Benchmarks need these too; `make bench` passes --bench. strace, valgrind (callgrind) and
# linux-perf are the profilers of bench/proxy/profile.sh.
if [ "${1:-}" = "--bench" ]; then
  PKGS+=(wrk nginx-light strace valgrind linux-perf)
  # goaccess: what bench/ingest compares `tollgate ingest` with (CloudFront and combined logs).
  PKGS+=(goaccess)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
