# Sourced by bench/proxy/unpinned.sh and bench/proxy/profile.sh: the peers of issue 10's
# comparison, configured once. Each function writes config files only; the caller starts
# the servers (so it can start them under strace or valgrind) and keeps their PIDs.
#
# peers_upstream DIR PORT TLS-PORT: nginx answering every request with the same fixed
#   526-byte chat.completion carrying usage, on PORT (plain) and TLS-PORT (HTTP/1.1 over
#   TLS with DIR/cert.pem, a self-signed P-256 certificate for IP 127.0.0.1, also the CA
#   file the proxies verify it with). One worker, no access log. -> DIR/nginx.conf
# peers_nginx DIR UP UPS NG NGL NGS NGSL CA [MASTER]: nginx as the reference proxy, one
#   worker, four servers: NG and NGL proxy to the plain upstream, NGS and NGSL to the TLS
#   one (verified against CA, ssl session reuse); NGL and NGSL write a buffered JSON access
#   line per request, NG and NGS log nothing. proxy_pass with upstream keepalive 128,
#   HTTP/1.1, proxy_buffering off. MASTER=off runs the worker in the foreground process
#   (master_process off: for callgrind and strace). -> DIR/nginx.conf
# peers_tollgate DIR PORT ADMIN-PORT TARGET CA: tollgate with one worker, SQLite store and
#   access log in DIR, route / of kind http and /v1/chat/ of kind openai (model bench
#   priced), a tenant and its key (-> DIR/key). -> DIR/tollgate.yaml
# Every peer keeps a client or upstream connection for 1,000,000 requests (nginx's default
# closes it every 1000; tollgate has no such limit).

PEERS_ANSWER='{"id":"chatcmpl-5344c31757e0e48e806b8cd7","object":"chat.completion","created":1700000000,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 tok10 tok11 tok12 tok13 tok14 tok15 ","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":16,"total_tokens":23,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_mock"}'

# peers_nginx_head DIR [MASTER]: what every nginx here starts with
peers_nginx_head() {
  cat <<NGINX
worker_processes 1;
master_process ${2:-on};
pid $1/nginx.pid;
error_log $1/error.log warn;
daemon off;
events { worker_connections 4096; }
NGINX
}

peers_temp_paths() {
  echo "client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;"
}

# peers_nginx_check DIR: nginx -t on DIR/nginx.conf, its complaint on failure
peers_nginx_check() {
  nginx -t -q -c "$1/nginx.conf" -p "$1" 2>"$1/test.err" ||
    { cat "$1/test.err" >&2; echo "bench: the nginx config $1/nginx.conf does not load" >&2; exit 1; }
}

peers_upstream() {
  local dir=$1 up=$2 ups=$3
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>"$dir/openssl.err" ||
    { cat "$dir/openssl.err" >&2; echo "bench: openssl could not make the test certificate" >&2; exit 1; }
  {
    peers_nginx_head "$dir"
    cat <<NGINX
http {
  access_log off;
  $(peers_temp_paths "$dir")
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  default_type application/json;
  server {
    listen 127.0.0.1:$up;
    location / { return 200 '$PEERS_ANSWER'; }
  }
  server {
    listen 127.0.0.1:$ups ssl;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    ssl_session_cache shared:up:1m;
    location / { return 200 '$PEERS_ANSWER'; }
  }
}
NGINX
  } >"$dir/nginx.conf"
  peers_nginx_check "$dir"
}

# peers_location UPSTREAM-URL CA
peers_location() {
  cat <<NGINX
    location / {
      proxy_pass $1;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_ssl_session_reuse on;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $2;
      proxy_ssl_name 127.0.0.1;
    }
NGINX
}

peers_nginx() {
  local dir=$1 up=$2 ups=$3 ng=$4 ngl=$5 ngs=$6 ngsl=$7 ca=$8 master=${9:-on}
  mkdir -p "$dir"
  {
    peers_nginx_head "$dir" "$master"
    cat <<NGINX
http {
  access_log off;
  $(peers_temp_paths "$dir")
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  log_format jsonl escape=json '{"time":"\$time_iso8601","client":"\$remote_addr","method":"\$request_method","path":"\$request_uri","status":\$status,"bytes_in":\$request_length,"bytes_out":\$bytes_sent,"duration_ms":\$request_time,"upstream":"\$upstream_addr","upstream_status":"\$upstream_status","upstream_ms":"\$upstream_response_time"}';
  upstream up { server 127.0.0.1:$up; keepalive 128; keepalive_requests 1000000; keepalive_timeout 300s; }
  upstream ups { server 127.0.0.1:$ups; keepalive 128; keepalive_requests 1000000; keepalive_timeout 300s; }
  server {
    listen 127.0.0.1:$ng;
$(peers_location http://up "$ca")
  }
  server {
    listen 127.0.0.1:$ngl;
    access_log $dir/access-http.json jsonl buffer=64k flush=1s;
$(peers_location http://up "$ca")
  }
  server {
    listen 127.0.0.1:$ngs;
$(peers_location https://ups "$ca")
  }
  server {
    listen 127.0.0.1:$ngsl;
    access_log $dir/access-https.json jsonl buffer=64k flush=1s;
$(peers_location https://ups "$ca")
  }
}
NGINX
  } >"$dir/nginx.conf"
  peers_nginx_check "$dir"
}

peers_tollgate() {
  local dir=$1 port=$2 admin=$3 target=$4 ca=$5
  mkdir -p "$dir"
  cat >"$dir/tollgate.yaml" <<YAML
server: { listen: 127.0.0.1:$port, admin_listen: 127.0.0.1:$admin, workers: 1 }
store: sqlite:$dir/tollgate.db
log: { access: $dir/access.log, level: warn }
upstreams:
  - { name: up, targets: [$target], ca_file: $ca${TG_UPSTREAM_EXTRA:+, $TG_UPSTREAM_EXTRA} }
routes:
  - { name: api, path_prefix: /, upstream: up, kind: http }
  - { name: chat, path_prefix: /v1/chat/, upstream: up, kind: openai }
prices:
  models:
    bench: { input: 0.15, output: 0.60 }
YAML
  # TG_EXTRA_YAML: top-level config appended as is (e.g. alarms: to measure their cost);
  # TG_UPSTREAM_EXTRA: keys added to the upstream's flow mapping (e.g. credentials: and
  # headers: to measure the cost of an upstream credential in turn).
  [ -n "${TG_EXTRA_YAML:-}" ] && printf '%s\n' "$TG_EXTRA_YAML" >>"$dir/tollgate.yaml"
  "${TOLLGATE:-build/tollgate}" -c "$dir/tollgate.yaml" tenant add bench >/dev/null
  "${TOLLGATE:-build/tollgate}" -c "$dir/tollgate.yaml" key create --tenant bench 2>/dev/null | sed -n 's/^secret: //p' >"$dir/key"
  [ -s "$dir/key" ] || { echo "bench: could not create a tollgate key in $dir" >&2; exit 1; }
}
