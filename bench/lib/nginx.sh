# Sourced by the bench scripts: nginx as the reference proxy, configured the same way for
# every comparison (keep-alive to the upstream, no buffering, access log on like tollgate's).
#
# start_nginx DIR PORT UPSTREAM_PORT WORKERS: writes DIR/nginx.conf, starts nginx in the
# foreground under $SERVE (the CPU pinning, if any) and appends its PID to PIDS.
start_nginx() {
  local dir=$1 port=$2 up=$3 workers=$4
  mkdir -p "$dir/nginx"
  cat >"$dir/nginx.conf" <<NGINX
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log $dir/nginx-access.log;
  client_body_temp_path $dir/nginx; proxy_temp_path $dir/nginx;
  fastcgi_temp_path $dir/nginx; uwsgi_temp_path $dir/nginx; scgi_temp_path $dir/nginx;
  upstream up { server 127.0.0.1:$up; keepalive 128; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
  $SERVE nginx -c "$dir/nginx.conf" -p "$dir" &
  PIDS+=($!)
}
