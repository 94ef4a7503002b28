/* The native upstream client: keep-alive HTTP/1.1 on the worker's loop, plain
 * TCP or TLS (OpenSSL, through memory BIOs on the same uv_tcp connection),
 * responses parsed by llhttp, connections pooled per (target, ca_file).
 * proxy.c tries it first for every http:// and https:// target; it refuses
 * (NULL from tg_h1_start) what it does not take: other schemes, hosts that are
 * not a plain name or an IP literal (IDN, escapes, user info), and then
 * libcurl has the request. Host names are resolved asynchronously on the loop
 * (h1dns.h), TLS is set up as strictly as libcurl's (h1tls.h), the Host header
 * is libcurl's (h1url.h). It implements the same calls as proxy.h, and a
 * transfer of either kind starts with struct tg_proxy_base so proxy.c can
 * tell them apart.
 *
 * Why it exists: bench/proxy showed libcurl's per-transfer cost (connection
 * checks with poll(), socket-interest churn, separate head and body writes,
 * URL parsing and header building per request) kept tollgate under half of
 * nginx's req/s on plain-HTTP upstreams, and on https upstreams ~78k of the
 * worker's ~120k instructions per GET were libcurl's machinery around
 * OpenSSL's ~14k (bench/RESULTS.md, "Issue 10: where the time goes"). */
#ifndef TG_GATEWAY_H1_H
#define TG_GATEWAY_H1_H

#include "gateway/proxy.h"

struct tg_proxy_base {
    int native; /* 1: an h1 transfer, 0: a libcurl one */
};

typedef struct tg_h1 tg_h1_t;

tg_h1_t *tg_h1_new(uv_loop_t *loop);
/* Closes idle connections and frees the pool; no transfer may be active. */
void tg_h1_free(tg_h1_t *h);

/* A transfer, or NULL when the URL is not one this client takes (the caller
 * then uses libcurl) or it could not be set up. */
tg_proxy_req_t *tg_h1_start(tg_h1_t *h, const tg_proxy_spec_t *spec, const tg_proxy_handler_t *hd,
                            void *ud);
void tg_h1_resume_upload(tg_proxy_req_t *r);
void tg_h1_resume_download(tg_proxy_req_t *r);
int64_t tg_h1_body_sent(const tg_proxy_req_t *r);
void tg_h1_abort(tg_proxy_req_t *r);

#endif
