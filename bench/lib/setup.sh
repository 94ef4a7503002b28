# Sourced by the bench scripts: what every run needs first (bench/stream keeps its own
# cleanup, which can save the samples, and uses port only).
#
# bench_setup: installs what is missing, builds, makes the temp dir $T and the PID list
# PIDS, both cleaned up on exit (every PID in PIDS killed, then waited for).
# port: a free loopback port. cpu_ticks PID and HZ: a process's CPU time in clock ticks.
# write_chat_lua FILE: the wrk script of the chat case (a 100-byte chat completion request,
# max_tokens 16, which the mock answers with 526 bytes carrying usage).
bench_setup() {
  scripts/deps.sh --bench
  make -s all >/dev/null
  T=$(mktemp -d)
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}

# cpu_ticks PID: utime + stime of the process (all its threads), in clock ticks; HZ ticks a
# second.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

write_chat_lua() {
  cat >"$1" <<'LUA'
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"Hello, how are you today?"}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
LUA
}

# bench_require CMD...: stops with a clear error naming what is missing (the scripts that
# call this do not install anything themselves).
bench_require() {
  local c missing=()
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: missing ${missing[*]}: install with scripts/deps.sh --bench (as root)" >&2
    exit 1
  fi
}
