#!/usr/bin/env bash
# A private PostgreSQL server for tests and benches, on loopback, in a directory of its own;
# the system's cluster and service are never touched.
#
#   scripts/pg-test.sh start DIR PORT   initdb into DIR/data, listen on 127.0.0.1:PORT (unix
#                                       socket in DIR), create database tollgate, print
#                                       postgres://postgres@127.0.0.1:PORT/tollgate
#                                       (a DIR stopped without --rm: started again, data kept)
#   scripts/pg-test.sh stop DIR [--rm]  fast shutdown, waited for; --rm removes DIR then
#   scripts/pg-test.sh run CMD [ARG...] CMD with TG_TEST_PG_URL set to a server started for
#                                       it (temp dir, a free port from 55432 up), stopped
#                                       and removed when CMD ends, however it ends; when
#                                       TG_TEST_PG_URL is already set, that server is used
#
# Trust authentication, for 127.0.0.1 and the socket only: nothing else can connect.
# PG_TEST_FAST=1 turns fsync off (a bench of tollgate, not of the disk, or a test run).
# PostgreSQL refuses to run as root: as root (CI) DIR is given to the postgres user and the
# server runs as it; as anyone else, the caller owns DIR and runs it.
set -euo pipefail

die() { echo "pg-test: $*" >&2; exit 1; }

# The newest installed server's bin directory.
pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] ||
    die "no PostgreSQL server found in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
  echo "$d"
}

# Runs "$@" as the server's user: postgres when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (apt-get install postgresql)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir=$1 port=$2 bin
  [[ $port =~ ^[0-9]+$ ]] || die "start: PORT must be a number, not '$port'"
  bin=$(pg_bin)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -e "$dir/data" ]; then
    # A server this script made and stopped: started again on its port, data kept (a test
    # restarting PostgreSQL under load).
    [ -f "$dir/data/PG_VERSION" ] || die "start: $dir/data exists and is not a PostgreSQL cluster"
    grep -q "^port = $port\$" "$dir/data/postgresql.conf" ||
      die "start: $dir/data was made for another port (stop it with: $0 stop $dir --rm)"
    as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 &&
      die "start: the server in $dir/data is running"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null ||
      { cat "$dir/server.log" >&2; die "the server did not start again on 127.0.0.1:$port"; }
    echo "postgres://postgres@127.0.0.1:$port/tollgate"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] && { id postgres >/dev/null 2>&1 || die "root needs the postgres user"; chown postgres: "$dir"; }
  as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  local fsync=on
  [ "${PG_TEST_FAST:-0}" = 1 ] && fsync=off
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "fsync = $fsync"
    echo "max_connections = 100"
  } | as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
  printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' |
    as_owner tee "$dir/data/pg_hba.conf" >/dev/null
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null ||
    { cat "$dir/server.log" >&2; die "the server did not start on 127.0.0.1:$port (see $dir/server.log)"; }
  local i
  for i in $(seq 1 100); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    [ "$i" -eq 100 ] && die "127.0.0.1:$port does not accept connections (see $dir/server.log)"
    sleep 0.1
  done
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres tollgate || die "createdb tollgate failed"
  echo "postgres://postgres@127.0.0.1:$port/tollgate"
}

stop() {
  local dir=$1 rm=${2:-} bin pid
  [ -z "$rm" ] || [ "$rm" = --rm ] || die "stop: unknown option '$rm'"
  if [ -f "$dir/data/postmaster.pid" ]; then
    bin=$(pg_bin)
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    if kill -0 "$pid" 2>/dev/null; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null ||
        die "the server of $dir (pid $pid) did not stop"
    fi
  fi
  [ "$rm" = --rm ] && rm -rf "$dir"
  return 0
}

# Whether something listens on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

run() {
  [ -n "${TG_TEST_PG_URL:-}" ] && exec "$@"
  local dir url port try rc
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-pg.XXXXXX")
  trap 'stop "$dir" --rm' EXIT
  trap 'exit 130' INT TERM
  # Another run may take the same port between the check and the bind: the next one then.
  port=$((55432 + $$ % 500))
  for try in $(seq 1 20); do
    port=$((port + 1))
    port_busy "$port" && continue
    url=$(PG_TEST_FAST=1 start "$dir" "$port" 2>"$dir.err") && break
    stop "$dir" --rm; mkdir -p "$dir"; url=''
  done
  [ -n "$url" ] || { cat "$dir.err" >&2; rm -f "$dir.err"; die "run: no server could be started"; }
  rm -f "$dir.err"
  rc=0
  TG_TEST_PG_URL=$url "$@" || rc=$?
  exit $rc
}

case "${1:-}" in
  start) [ $# -eq 3 ] || die "usage: $0 start DIR PORT"; start "$2" "$3" ;;
  stop) [ $# -ge 2 ] && [ $# -le 3 ] || die "usage: $0 stop DIR [--rm]"; stop "$2" "${3:-}" ;;
  run) [ $# -ge 2 ] || die "usage: $0 run CMD [ARG...]"; shift; run "$@" ;;
  *) die "usage: $0 start DIR PORT | stop DIR [--rm] | run CMD [ARG...]" ;;
esac
