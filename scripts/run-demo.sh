#!/usr/bin/env bash
# `make run`: serves examples/tollgate.yaml in front of the bundled mock
# upstream, with a demo tenant and key created on first use. All of this is
# the demo's doing (this script and the example config), not the binary's.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=examples/tollgate.yaml
TG=build/tollgate
mkdir -p .run

build/mock-upstream --listen 127.0.0.1:8081 >.run/mock-upstream.log 2>&1 &
MOCK=$!
trap 'kill $MOCK 2>/dev/null || true' EXIT

# The admin token the example config reads (server.admin_token_file): random, made once,
# readable by this user only. Made before the first command, since every command loads the
# config.
if [ ! -s .run/admin-token ]; then
  (umask 077 && openssl rand -hex 32 >.run/admin-token)
fi

if [ ! -s .run/demo-key ] || [ ! -f .run/tollgate.db ]; then
  rm -f .run/demo-key
  "$TG" -c "$CONFIG" tenant add demo --name "Demo tenant" >/dev/null 2>&1 || true
  "$TG" -c "$CONFIG" key create --tenant demo --name demo 2>/dev/null | sed -n 's/^secret: //p' >.run/demo-key
fi
KEY=$(cat .run/demo-key)
# The dashboard's log-in link: the admin token once in the URL, then a cookie (docs/operations.md,
# "Dashboard"). Printed on this terminal only, as the key above is.
DASHBOARD="http://127.0.0.1:9090/dashboard?token=$(cat .run/admin-token)"

cat <<MSG

tollgate is starting on http://127.0.0.1:8080 (admin http://127.0.0.1:9090/readyz)
in front of the mock upstream on 127.0.0.1:8081.

Dashboard (open it in a browser; the token is then kept as a cookie):

  $DASHBOARD

Try, from another terminal:

  curl -i -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/hello
  curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/v1/chat/completions \\
       -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}'
  $TG -c $CONFIG usage
  $TG -c $CONFIG usage --by model
  curl -H "Authorization: Bearer \$(cat .run/admin-token)" http://127.0.0.1:9090/metrics

(The demo key is kept in .run/demo-key, the admin token in .run/admin-token;
Ctrl-C stops both servers.)

MSG
"$TG" -c "$CONFIG" serve
