/* The upstream client: one per worker, on that worker's event loop.
 *
 * It hides how requests reach upstreams. http:// and https:// targets named
 * by a host name or an IP literal go through the native keep-alive HTTP/1.1
 * client (h1.h: plain TCP, or TLS on OpenSSL; names resolved on the loop);
 * whatever it refuses (other schemes, hosts it does not parse) through
 * libcurl's multi interface driven by the libuv loop. TOLLGATE_NO_NATIVE_HTTP=1
 * in the environment sends all through libcurl. The caller (an HTTP
 * connection) supplies a handler: request body bytes are pulled from it,
 * response head and body pushed to it, both with pause/resume so neither side
 * buffers a whole body.
 *
 * Nothing here allocates per request in the steady state: transfers (with
 * their curl easy handle and header list nodes, or their h1 buffers) are
 * pooled per worker. */
#ifndef TG_GATEWAY_PROXY_H
#define TG_GATEWAY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TG_PROXY_MAX_HEADERS 128

/* Returned by handler callbacks. */
#define TG_PROXY_PAUSE ((size_t)-2) /* read_body: no bytes yet, call resume_upload later */
#define TG_PROXY_ABORT ((size_t)-1) /* read_body: abort the transfer */

typedef enum {
    TG_PROXY_OK = 0,
    TG_PROXY_CONNECT, /* could not connect (refused, unreachable, DNS) */
    TG_PROXY_TIMEOUT, /* connect or response timeout */
    TG_PROXY_ERROR,   /* anything else: reset, bad response, TLS, aborted by handler */
} tg_proxy_result_t;

typedef struct tg_proxy_handler {
    /* Response head, one header at a time, then head_done with the status.
     * A 1xx interim response is swallowed here. */
    void (*on_header)(void *ud, const char *name, size_t nlen, const char *value, size_t vlen);
    void (*on_head_done)(void *ud, int status, const char *reason, size_t rlen);
    /* Response body bytes, always taken. Return 0, or 1 to have the
     * download paused until tg_proxy_resume_download, or -1 to abort the
     * transfer. The pause takes effect after the network read at hand: the
     * rest of it (at most one 64 KiB read buffer) may still be delivered. */
    int (*on_body)(void *ud, const char *p, size_t n);
    /* Optional: the client did all it will do for now with the bytes that
     * arrived (a consumer that holds back the response head to send it
     * together with the first body bytes writes it here). */
    void (*on_flush)(void *ud);
    /* Request body: copy up to cap bytes into buf and return the count; 0 at
     * the end; TG_PROXY_PAUSE when none is available yet; TG_PROXY_ABORT. */
    size_t (*read_body)(void *ud, char *buf, size_t cap);
    /* The transfer ended; the tg_proxy_req_t is gone after this returns. */
    void (*on_done)(void *ud, tg_proxy_result_t r, const char *detail);
} tg_proxy_handler_t;

typedef struct tg_proxy_spec {
    const char *method;
    const char *url;            /* full URL, target + path + query */
    const char *const *headers; /* "Name: value" lines, alive until on_done */
    size_t nheaders;
    int has_body;     /* the request carries a body (read through read_body) */
    int64_t body_len; /* its length, or -1 when unknown (sent chunked) */
    long connect_timeout_ms;
    long timeout_ms;      /* whole transfer; 0 = none */
    long idle_timeout_ms; /* no progress for this long = timeout (1 s granularity) */
    const char *ca_file;  /* PEM bundle verifying https:// targets; NULL = the system's */
} tg_proxy_spec_t;

typedef struct tg_proxy tg_proxy_t;
typedef struct tg_proxy_req tg_proxy_req_t;

tg_proxy_t *tg_proxy_new(uv_loop_t *loop);
/* Aborts whatever is still running (no on_done calls), closes the loop handles
 * it owns; the loop must then run once more for their close callbacks. */
void tg_proxy_free(tg_proxy_t *p);

/* Starts a transfer; NULL if it could not be set up (nothing was called). */
tg_proxy_req_t *tg_proxy_start(tg_proxy_t *p, const tg_proxy_spec_t *spec,
                               const tg_proxy_handler_t *h, void *ud);
/* More request body is available (after read_body said TG_PROXY_PAUSE). */
void tg_proxy_resume_upload(tg_proxy_req_t *r);
/* The consumer can take body bytes again (after on_body returned 1). */
void tg_proxy_resume_download(tg_proxy_req_t *r);
/* Cancels the transfer; on_done is not called. Not from inside a callback. */
void tg_proxy_abort(tg_proxy_req_t *r);

#endif
