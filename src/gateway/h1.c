/* Native HTTP/1.1 upstream client: see h1.h.
 *
 * Per worker: one pool per (target, ca_file), each with a LIFO list of idle
 * keep-alive connections. An idle connection keeps reading so an upstream
 * close is noticed at once (for TLS its bytes go through OpenSSL: a
 * close_notify, an EOF or any application data closes it; a session ticket
 * does not); a transfer on a reused connection that gets no response byte
 * before the connection closes (the upstream timed it out just as we sent) is
 * retried once on a fresh connection when no request body was pulled yet.
 *
 * TLS (https://) runs on the same uv_tcp connection through two memory BIOs:
 * what the socket reads (64 KiB at a time, so a record never costs two
 * syscalls) is written into the read BIO and SSL_read hands plaintext to the
 * same llhttp path as plain HTTP; what SSL_write produces is drained
 * from the write BIO into one write per flush (a request head and its first
 * body bytes are one TLS record in one write). connect_timeout covers the
 * resolve, the TCP connect and the handshake. The last session a pool got is
 * offered on its next connections (TLS 1.3 tickets come after the handshake:
 * the context's new-session callback hands them over when they arrive).
 *
 * Host names are resolved with uv_getaddrinfo on the loop, the result kept
 * per pool for TG_H1DNS_TTL_US (h1dns.h); transfers that need a connection
 * while a resolve is in flight wait for it in the pool's queue. A failed
 * connect tries the pool's next address.
 *
 * Completion and failures are reported with on_done only from this module's
 * own libuv callbacks (socket reads, connects, resolves, timers), never from
 * inside a call the caller made (start, resume, abort): a failure found there
 * is deferred through the transfer's timer, so the caller is never
 * re-entered. */
#include "gateway/h1.h"

#include <llhttp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/h1dns.h"
#include "gateway/h1tls.h"
#include "gateway/h1url.h"
#include "gateway/wqueue.h"
#include "util/buf.h"
#include "util/clock.h"

#define MAX_IDLE_PER_POOL 512
#define UPLOAD_HIGH       (256 * 1024) /* stop pulling the body above this much queued */
#define STAGE_SIZE        (64 * 1024)
#define MAX_RESP_HDRS     128
#define RESP_HEAD_MAX     (64 * 1024)
/* A response head's raw bytes (status line, lines, whitespace) at most: llhttp has no limit
 * of its own; the names and values kept are held to RESP_HEAD_MAX. */
#define RESP_RAW_MAX (2 * RESP_HEAD_MAX)

#define PLAIN_MAX 16384 /* one TLS record's plaintext */

typedef struct h1conn h1conn_t;
typedef struct h1req h1req_t;
typedef struct pool pool_t;

/* An asynchronous resolve, apart from its pool so tg_h1_free can leave it behind: the
 * callback frees it, and does nothing else once pool is NULL. */
typedef struct resolve {
    uv_getaddrinfo_t req;
    pool_t *pool;
} resolve_t;

struct pool {
    char *target; /* "http://host:port", as in the URL prefix */
    size_t target_len;
    char *ca_file;  /* with target, the key: NULL = the system's CAs */
    tg_h1url_t url; /* name, port, Host header, tls */
    tg_h1dns_t dns;
    SSL_CTX *ctx;      /* https: the worker's context for ca_file (not owned) */
    SSL_SESSION *sess; /* https: the last session, offered to new connections */
    resolve_t *resolving;
    h1req_t *waiting, *waiting_tail; /* transfers waiting for the resolve, FIFO */
    h1conn_t *idle;                  /* doubly linked through idle_prev/idle_next */
    size_t nidle;
};

typedef struct tlsctx {
    char *ca_file;
    SSL_CTX *ctx;
} tlsctx_t;

struct tg_h1 {
    uv_loop_t *loop;
    pool_t **pools;
    size_t npools, cap;
    tlsctx_t *ctxs; /* one per ca_file used by an https pool */
    size_t nctxs;
    h1req_t *free_reqs;
    h1conn_t *conns;        /* every open connection, for tg_h1_free */
    char rbuf[65536];       /* read buffer: parsed (or fed to TLS) before the next read */
    char pbuf[PLAIN_MAX];   /* TLS: plaintext out of SSL_read */
    char wplain[PLAIN_MAX]; /* TLS: small request pieces joined into one record */
    char wbuf[65536];       /* TLS: ciphertext on its way to the socket */
};

struct h1conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    tg_h1_t *h;
    pool_t *pool;
    h1conn_t *idle_prev, *idle_next, *all_prev, *all_next;
    h1req_t *req; /* the transfer using it, NULL when idle */
    llhttp_t parser;
    const char *pfrom; /* the start of the bytes being parsed (the raw head's count) */
    SSL *ssl;          /* https, with rbio (socket -> OpenSSL) and wbio (OpenSSL -> socket) */
    BIO *rbio, *wbio;
    int connected; /* TCP connected */
    int ready;     /* connected, and for TLS the handshake done */
    int tls_bad;   /* a TLS error: its session is not offered again */
    int closing, is_idle, reused;
};

typedef struct rhdr {
    uint32_t no, nl, vo, vl;
} rhdr_t;

struct h1req {
    struct tg_proxy_base base;
    tg_h1_t *h;
    pool_t *pool;
    h1conn_t *c;
    h1req_t *next_free;
    h1req_t *wnext;           /* in pool->waiting */
    int waiting;              /* in pool->waiting */
    size_t addr_i;            /* the pool address being tried */
    int64_t conn_deadline_us; /* the connect timeout's end (monotonic), 0 = none */
    uv_timer_t timer;         /* connect / response timeouts; deferred failures */
    const tg_proxy_handler_t *hd;
    void *ud;
    /* the request */
    const char *method, *path;
    const char *const *headers;
    size_t nheaders;
    int has_body, chunked;
    int64_t body_len;
    long connect_timeout_ms, timeout_ms, idle_timeout_ms;
    int64_t deadline_us; /* overall, 0 = none */
    /* progress */
    int active;
    int head_sent;
    int body_done;
    int upload_paused;
    int down_paused;
    int got_bytes; /* any response byte arrived */
    int done;      /* the response message completed */
    int head_only; /* HEAD: the response has no body whatever it says */
    int interim;   /* inside a 1xx response */
    int retried;
    int body_abort; /* the handler's on_body refused the body (the client side is gone) */
    int in_head;    /* a response head is being read: hraw of its bytes before c->pfrom */
    size_t hraw;
    int64_t body_sent;
    tg_proxy_result_t fail_result; /* a deferred failure, delivered by the timer */
    const char *fail_detail;
    char msg[256]; /* a failure's detail, when it is made up */
    /* response head being collected (names and values may span reads) */
    tg_buf_t hbuf; /* max: RESP_HEAD_MAX */
    rhdr_t hdrs[MAX_RESP_HDRS];
    size_t nhdrs;
    int last_val;
    char reason[64];
    size_t rlen;
    tg_buf_t obuf;          /* request head (its size is bounded by the client's head) */
    char stage[STAGE_SIZE]; /* request body on its way out */
};

static void conn_close(h1conn_t *c);
static void conn_connect(h1req_t *r);
static void send_request(h1req_t *r);
static void pump_upload(h1req_t *r);
static int on_new_session(SSL *ssl, SSL_SESSION *sess);
static const llhttp_settings_t rsettings;

/* ---- pools ------------------------------------------------------------ */

static SSL_CTX *ctx_for(tg_h1_t *h, const char *ca_file)
{
    for (size_t i = 0; i < h->nctxs; i++) {
        const char *f = h->ctxs[i].ca_file;
        if (f == ca_file || (f && ca_file && strcmp(f, ca_file) == 0)) return h->ctxs[i].ctx;
    }
    tlsctx_t *nc = realloc(h->ctxs, (h->nctxs + 1) * sizeof *nc);
    if (!nc) return NULL;
    h->ctxs = nc;
    char *f = ca_file ? strdup(ca_file) : NULL;
    if (ca_file && !f) return NULL;
    SSL_CTX *ctx = tg_h1tls_ctx(ca_file, on_new_session);
    if (!ctx) {
        free(f);
        return NULL;
    }
    h->ctxs[h->nctxs++] = (tlsctx_t){.ca_file = f, .ctx = ctx};
    return ctx;
}

static void pool_free(pool_t *p)
{
    if (p->resolving) {
        p->resolving->pool = NULL; /* its callback frees it */
        uv_cancel((uv_req_t *)&p->resolving->req);
    }
    if (p->sess) SSL_SESSION_free(p->sess);
    free(p->target);
    free(p->ca_file);
    free(p);
}

/* "http://1.2.3.4:80/path" → the pool for "http://1.2.3.4:80" (and this ca_file for
 * https), made on first use; NULL if the URL is not one this client takes. */
static pool_t *pool_for(tg_h1_t *h, const char *url, const char *ca_file, const char **path)
{
    size_t tlen = tg_h1url_target_len(url);
    if (tlen == 0) return NULL;
    if (strncmp(url, TG_LIT("https://")) != 0) ca_file = NULL; /* only https uses it */
    for (size_t i = 0; i < h->npools; i++) {
        pool_t *p = h->pools[i];
        if (p->target_len == tlen && memcmp(p->target, url, tlen) == 0 &&
            (p->ca_file == ca_file || (p->ca_file && ca_file && !strcmp(p->ca_file, ca_file)))) {
            *path = url[tlen] == '/' ? url + tlen : "/";
            return p;
        }
    }

    tg_h1url_t u;
    if (tg_h1url_parse(url, &u) != 0 || u.target_len != tlen) return NULL;
    if (h->npools == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        pool_t **np = realloc(h->pools, cap * sizeof *np);
        if (!np) return NULL;
        h->pools = np;
        h->cap = cap;
    }
    pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->url = u;
    p->target = strndup(url, tlen);
    p->ca_file = ca_file ? strdup(ca_file) : NULL;
    if (!p->target || (ca_file && !p->ca_file)) goto fail;
    p->target_len = tlen;
    /* localhost is the loopback address, as before this client resolved names. */
    const char *lit = strcmp(u.name, "localhost") == 0 ? "127.0.0.1" : u.name;
    if (u.numeric || lit != u.name) tg_h1dns_literal(&p->dns, lit, u.port);
    if (u.tls && !(p->ctx = ctx_for(h, p->ca_file))) goto fail;
    h->pools[h->npools++] = p;
    *path = u.path;
    return p;
fail:
    pool_free(p);
    return NULL;
}

static void idle_remove(h1conn_t *c)
{
    if (!c->is_idle) return;
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        c->pool->idle = c->idle_next;
    if (c->idle_next) c->idle_next->idle_prev = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->is_idle = 0;
    c->pool->nidle--;
}

static void idle_push(h1conn_t *c)
{
    if (c->pool->nidle >= MAX_IDLE_PER_POOL) {
        conn_close(c);
        return;
    }
    c->is_idle = 1;
    c->idle_prev = NULL;
    c->idle_next = c->pool->idle;
    if (c->pool->idle) c->pool->idle->idle_prev = c;
    c->pool->idle = c;
    c->pool->nidle++;
}

/* ---- connections ------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *hd)
{
    h1conn_t *c = hd->data;
    if (c->ssl) SSL_free(c->ssl); /* and its BIOs */
    free(c);
}

/* A TLS connection that ends without an error says so (close_notify, sent as far as the
 * socket takes it now): OpenSSL marks the session of a connection freed without it as not
 * resumable, and the pool's session is that same object. */
static void tls_goodbye(h1conn_t *c)
{
    if (!c->ssl || !c->ready || c->tls_bad) return;
    if (SSL_shutdown(c->ssl) < 0) {
        ERR_clear_error();
        return;
    }
    int k = BIO_read(c->wbio, c->h->wbuf, sizeof c->h->wbuf);
    if (k > 0) {
        uv_buf_t b = uv_buf_init(c->h->wbuf, (unsigned)k);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
}

static void conn_close(h1conn_t *c)
{
    if (c->closing) return;
    c->closing = 1;
    tls_goodbye(c);
    idle_remove(c);
    if (c->req) c->req->c = NULL;
    c->req = NULL;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        c->h->conns = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    h1conn_t *c = hd->data;
    *buf = uv_buf_init(c->h->rbuf, sizeof c->h->rbuf);
}

/* TLS 1.3 tickets arrive after the handshake, on whichever read brings them: the pool
 * keeps the newest session for its next connection. 1: we keep the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    h1conn_t *c = SSL_get_app_data(ssl);
    if (!c || c->closing) return 0;
    pool_t *p = c->pool;
    if (p->sess) SSL_SESSION_free(p->sess);
    p->sess = sess;
    return 1;
}

/* ---- finishing a transfer --------------------------------------------- */

static void unwait(h1req_t *r)
{
    if (!r->waiting) return;
    pool_t *p = r->pool;
    h1req_t **pp = &p->waiting, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->wnext;
    }
    if (*pp) *pp = r->wnext;
    if (p->waiting_tail == r) p->waiting_tail = prev;
    r->wnext = NULL;
    r->waiting = 0;
}

static void release(h1req_t *r)
{
    uv_timer_stop(&r->timer);
    unwait(r);
    r->active = 0;
    r->c = NULL;
    r->next_free = r->h->free_reqs;
    r->h->free_reqs = r;
}

/* Ends the transfer with on_done. Only from this module's own callbacks. */
static void finish(h1req_t *r, tg_proxy_result_t res, const char *detail)
{
    h1conn_t *c = r->c;
    if (c) {
        int reuse = res == TG_PROXY_OK && r->body_done && llhttp_should_keep_alive(&c->parser) &&
                    !c->closing;
        c->req = NULL;
        if (reuse) {
            llhttp_init(&c->parser, HTTP_RESPONSE, &rsettings);
            c->parser.data = c;
            c->reused = 1;
            idle_push(c);
        } else {
            conn_close(c);
        }
    }
    const tg_proxy_handler_t *hd = r->hd;
    void *ud = r->ud;
    /* detail may be r->msg: copied before r goes back to the free list, since on_done
     * may start a transfer that reuses r. */
    char msg[sizeof r->msg];
    size_t n = strnlen(detail, sizeof msg - 1); /* not snprintf: 500 instructions a request */
    memcpy(msg, detail, n);
    msg[n] = '\0';
    release(r);
    hd->on_done(ud, res, msg);
}

static void on_deferred(uv_timer_t *t)
{
    h1req_t *r = t->data;
    finish(r, r->fail_result, r->fail_detail);
}

/* A failure found inside a caller's call: delivered on the next loop turn. */
static void fail_later(h1req_t *r, tg_proxy_result_t res, const char *detail)
{
    if (r->fail_detail) return;
    r->fail_result = res;
    r->fail_detail = detail;
    uv_timer_start(&r->timer, on_deferred, 0, 0);
}

static void on_timeout(uv_timer_t *t)
{
    h1req_t *r = t->data;
    finish(r, TG_PROXY_TIMEOUT,
           r->c && r->c->ready ? "upstream response timed out" : "upstream connect timed out");
}

/* (Re)arms the response timer: the idle timeout, cut to the overall deadline. */
static void arm_response_timer(h1req_t *r)
{
    if (r->fail_detail) return;
    int64_t ms = r->idle_timeout_ms > 0 ? r->idle_timeout_ms : 0;
    if (r->deadline_us) {
        int64_t left = (r->deadline_us - tg_mono_us()) / 1000;
        if (left < 1) left = 1;
        if (ms == 0 || left < ms) ms = left;
    }
    if (ms > 0)
        uv_timer_start(&r->timer, on_timeout, (uint64_t)ms, 0);
    else
        uv_timer_stop(&r->timer);
}

/* ---- reading the response ---------------------------------------------- */

/* The raw head so far, up to end (in the bytes being parsed): over RESP_RAW_MAX, -1. */
static int raw_head(const h1conn_t *c, const h1req_t *r, const char *end)
{
    return r->hraw + (size_t)(end - c->pfrom) > RESP_RAW_MAX ? -1 : 0;
}

static int on_msg_begin(llhttp_t *p)
{
    h1conn_t *c = p->data;
    h1req_t *r = c->req;
    /* (A 1xx's bytes before it in this read count too: still bounded.) */
    r->in_head = 1;
    r->hraw = 0;
    tg_buf_reset(&r->hbuf);
    r->nhdrs = r->rlen = 0;
    r->last_val = 0;
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t n)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    size_t k = n < sizeof r->reason - r->rlen ? n : sizeof r->reason - r->rlen;
    memcpy(r->reason + r->rlen, at, k);
    r->rlen += k;
    return 0;
}

static int on_hfield(llhttp_t *p, const char *at, size_t n)
{
    h1conn_t *c = p->data;
    h1req_t *r = c->req;
    if (raw_head(c, r, at + n) != 0) return -1;
    if (r->nhdrs == 0 || r->last_val) {
        if (r->nhdrs == MAX_RESP_HDRS) return -1;
        r->hdrs[r->nhdrs++] = (rhdr_t){.no = (uint32_t)r->hbuf.len};
        r->last_val = 0;
    }
    if (tg_buf_add(&r->hbuf, at, n) != 0) return -1;
    r->hdrs[r->nhdrs - 1].nl += (uint32_t)n;
    return 0;
}

static int on_hvalue(llhttp_t *p, const char *at, size_t n)
{
    h1conn_t *c = p->data;
    h1req_t *r = c->req;
    if (raw_head(c, r, at + n) != 0) return -1;
    /* A value needs a name: llhttp passes ": v" as an empty name (http_parser refused it). */
    if (r->nhdrs == 0) return -1;
    rhdr_t *hh = &r->hdrs[r->nhdrs - 1];
    if (!r->last_val) {
        if (hh->nl == 0) return -1;
        hh->vo = (uint32_t)r->hbuf.len;
        r->last_val = 1;
    }
    if (tg_buf_add(&r->hbuf, at, n) != 0) return -1;
    hh->vl += (uint32_t)n;
    return 0;
}

static int on_hdone(llhttp_t *p)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    int status = p->status_code;
    r->in_head = 0;
    r->interim = status >= 100 && status < 200;
    /* 1: a 1xx ends with its head (RFC 9110 §15.2), whatever Content-Length or
     * Transfer-Encoding it names; read as a body, those bytes went to the client before any
     * head (found by fuzz_upstream). */
    if (r->interim) return 1;
    for (size_t i = 0; i < r->nhdrs; i++) {
        const rhdr_t *hh = &r->hdrs[i];
        r->hd->on_header(r->ud, r->hbuf.p + hh->no, hh->nl, r->hbuf.p + hh->vo, hh->vl);
    }
    r->hd->on_head_done(r->ud, status, r->reason, r->rlen);
    /* 1: no body follows, whatever Content-Length says (HEAD, 204, 304). */
    return r->head_only || status == 204 || status == 304 ? 1 : 0;
}

static int on_rbody(llhttp_t *p, const char *at, size_t n)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    int rc = r->hd->on_body(r->ud, at, n);
    if (rc < 0) {
        r->body_abort = 1;
        return -1;
    }
    if (rc == 1) r->down_paused = 1;
    return 0;
}

static int on_msg_complete(llhttp_t *p)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    if (r->interim) {
        r->interim = 0;
        return 0; /* the final response follows */
    }
    r->done = 1;
    return HPE_PAUSED; /* what follows is not this response's */
}

static const llhttp_settings_t rsettings = {
    .on_message_begin = on_msg_begin,
    .on_status = on_status,
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_headers_complete = on_hdone,
    .on_body = on_rbody,
    .on_message_complete = on_msg_complete,
};

static int tls_flush(h1conn_t *c);

/* After a complete response: is anything more on a TLS connection (application data, a
 * close_notify, an error)? Then it is not reusable. Tickets and partial records are not. */
static int tls_more(h1conn_t *c)
{
    if (BIO_ctrl_pending(c->rbio) == 0 && !SSL_has_pending(c->ssl)) return 0; /* the usual */
    int k = SSL_read(c->ssl, c->h->pbuf, sizeof c->h->pbuf);
    if (k > 0) return 1;
    int e = SSL_get_error(c->ssl, k);
    if (e == SSL_ERROR_WANT_READ) return 0;
    ERR_clear_error();
    return 1;
}

/* Response bytes (plaintext) for r: parsed. 1 when the transfer ended here. */
static int got_plain(h1conn_t *c, h1req_t *r, const char *p, size_t n)
{
    r->got_bytes = 1;
    c->pfrom = p;
    llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
    size_t k = e == HPE_OK ? n : (size_t)(llhttp_get_error_pos(&c->parser) - p);
    if (e == HPE_OK && r->in_head) {
        r->hraw += n;
        if (r->hraw > RESP_RAW_MAX) e = HPE_USER;
    }
    if (r->done) {
        /* bytes past the response: not reusable */
        if (k < n || (c->ssl && tls_more(c))) conn_close(c);
        finish(r, TG_PROXY_OK, "");
        return 1;
    }
    /* (HPE_PAUSED_UPGRADE: a 101 with Upgrade to a request that asked for none, RFC 9110
     * §15.2.2: malformed.) */
    if (e != HPE_OK) {
        finish(r, TG_PROXY_ERROR,
               r->body_abort ? "aborted by the client side" : "malformed upstream response");
        return 1;
    }
    return 0;
}

/* The upstream's side ended: clean is a plain TCP end, or a TLS close_notify (a TLS
 * connection cut without one may have been truncated by anyone on the path, so a body
 * read until the close is not complete). */
static void got_eof(h1conn_t *c, h1req_t *r, int clean)
{
    if (!r->got_bytes && c->reused && !r->retried && r->body_sent == 0) {
        /* A stale keep-alive connection: try once more on a fresh one. */
        r->retried = 1;
        r->head_sent = 0;
        r->body_done = 0; /* nothing was pulled: pull (and end) the body again */
        r->upload_paused = 0;
        r->c = NULL;
        c->req = NULL;
        conn_close(c);
        conn_connect(r);
        return;
    }
    if (r->got_bytes && clean) {
        llhttp_finish(&c->parser); /* an EOF-delimited body ends (on_msg_complete) */
        if (r->done) {
            conn_close(c); /* the close ended the body: not reusable */
            finish(r, TG_PROXY_OK, "");
            return;
        }
    }
    finish(r, TG_PROXY_ERROR,
           !r->got_bytes ? "upstream closed the connection without a response"
           : clean       ? "upstream closed the connection mid-response"
                         : "upstream closed the TLS connection mid-response without close_notify");
}

static void tls_handshake(h1conn_t *c, h1req_t *r)
{
    int rc = SSL_do_handshake(c->ssl);
    if (tls_flush(c) != 0) {
        finish(r, TG_PROXY_ERROR, "write to upstream failed");
        return;
    }
    if (rc == 1) {
        c->ready = 1;
        send_request(r);
        return;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) return;
    c->tls_bad = 1;
    tg_h1tls_why(c->ssl, r->msg, sizeof r->msg);
    finish(r, TG_PROXY_ERROR, r->msg);
}

/* Ciphertext read from a TLS connection: the handshake goes on, or plaintext goes to the
 * parser. */
static void tls_read(h1conn_t *c, h1req_t *r, const char *p, size_t n)
{
    if (BIO_write(c->rbio, p, (int)n) != (int)n) {
        ERR_clear_error();
        if (r)
            finish(r, TG_PROXY_ERROR, "out of memory");
        else
            conn_close(c);
        return;
    }
    if (!c->ready) {
        if (!r) {
            conn_close(c);
            return;
        }
        tls_handshake(c, r);
        /* Records after the handshake in the same read (an early answer) are read now. */
        if (!c->ready || c->req != r) return;
    }
    for (;;) {
        int k = SSL_read(c->ssl, c->h->pbuf, sizeof c->h->pbuf);
        if (k > 0) {
            if (!r) {
                conn_close(c); /* idle: data nobody asked for */
                return;
            }
            if (got_plain(c, r, c->h->pbuf, (size_t)k)) return;
            if (BIO_ctrl_pending(c->rbio) == 0 && !SSL_has_pending(c->ssl)) break; /* all read */
            continue;
        }
        int e = SSL_get_error(c->ssl, k);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify */
            if (r)
                got_eof(c, r, 1);
            else
                conn_close(c);
            return;
        }
        ERR_clear_error();
        c->tls_bad = 1;
        if (r)
            finish(r, TG_PROXY_ERROR, "TLS error reading from upstream");
        else
            conn_close(c);
        return;
    }
    /* SSL_read may have something to say (a key update's answer). */
    if (BIO_ctrl_pending(c->wbio) && tls_flush(c) != 0 && r) {
        finish(r, TG_PROXY_ERROR, "write to upstream failed");
        return;
    }
    if (!r) return;
    if (r->hd->on_flush) r->hd->on_flush(r->ud);
    if (r->down_paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_timer_stop(&r->timer);
        return;
    }
    arm_response_timer(r);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h1conn_t *c = s->data;
    h1req_t *r = c->req;
    if (nread == 0) return;
    if (nread < 0) {
        if (!r) {
            conn_close(c); /* idle: the upstream closed it */
        } else if (c->ssl && !c->ready) {
            finish(r, TG_PROXY_ERROR, "upstream closed the connection during the TLS handshake");
        } else {
            /* TLS: a close_notify was handled as it came (and this connection then closed) */
            got_eof(c, r, !c->ssl);
        }
        return;
    }
    if (c->ssl) {
        tls_read(c, r, buf->base, (size_t)nread);
        return;
    }
    if (!r) {
        conn_close(c); /* idle: the upstream sent junk */
        return;
    }
    if (got_plain(c, r, buf->base, (size_t)nread)) return;
    if (r->hd->on_flush) r->hd->on_flush(r->ud);
    if (r->down_paused) {
        /* Waiting on our client, not on the upstream: no upstream timer. */
        uv_read_stop(s);
        uv_timer_stop(&r->timer);
        return;
    }
    arm_response_timer(r);
}

/* ---- sending the request ---------------------------------------------- */

static void on_written(void *data, int status)
{
    h1conn_t *c = data;
    if (c->closing || !c->req) return;
    if (status < 0) {
        finish(c->req, TG_PROXY_ERROR, "write to upstream failed");
        return;
    }
    if (c->ready) pump_upload(c->req);
}

/* Everything OpenSSL has to send, out to the socket. */
static int tls_flush(h1conn_t *c)
{
    for (;;) {
        int k = BIO_read(c->wbio, c->h->wbuf, sizeof c->h->wbuf);
        if (k <= 0) return 0;
        uv_buf_t b = uv_buf_init(c->h->wbuf, (unsigned)k);
        int rc = tg_wq_write((uv_stream_t *)&c->tcp, &b, 1, on_written, c);
        if (rc != 0) return rc;
    }
}

static int tls_write(h1conn_t *c, const char *p, size_t n)
{
    if (n == 0) return 0;
    if (SSL_write(c->ssl, p, (int)n) != (int)n) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static int write_out(h1req_t *r, const uv_buf_t *bufs, unsigned n)
{
    h1conn_t *c = r->c;
    int rc = 0;
    if (c->ssl) {
        /* Pieces that fit one record are joined: one record, one encryption. */
        size_t total = 0;
        for (unsigned i = 0; i < n; i++)
            total += bufs[i].len;
        if (total <= sizeof c->h->wplain) {
            char *o = c->h->wplain;
            for (unsigned i = 0; i < n; i++)
                o = tg_put(o, bufs[i].base, bufs[i].len);
            rc = tls_write(c, c->h->wplain, total);
        } else {
            for (unsigned i = 0; i < n && rc == 0; i++)
                rc = tls_write(c, bufs[i].base, bufs[i].len);
        }
        if (rc == 0) rc = tls_flush(c);
    } else {
        rc = tg_wq_write((uv_stream_t *)&c->tcp, bufs, n, on_written, c);
    }
    if (rc != 0) fail_later(r, TG_PROXY_ERROR, "write to upstream failed");
    return rc;
}

/* Pulls body bytes from the handler and writes them while the socket keeps
 * up; the first piece goes out with the head in one write. */
static void pump_upload(h1req_t *r)
{
    while (r->active && r->c && !r->fail_detail) {
        uv_buf_t bufs[4];
        unsigned nb = 0;
        char pre[24];
        if (!r->head_sent) {
            bufs[nb++] = uv_buf_init(r->obuf.p, (unsigned)r->obuf.len);
            r->head_sent = 1;
        }
        if (r->body_done || r->upload_paused ||
            uv_stream_get_write_queue_size((uv_stream_t *)&r->c->tcp) > UPLOAD_HIGH) {
            if (nb) write_out(r, bufs, nb);
            return;
        }
        size_t got = r->hd->read_body(r->ud, r->stage, sizeof r->stage);
        if (got == TG_PROXY_ABORT) {
            fail_later(r, TG_PROXY_ERROR, "request body aborted");
            return;
        }
        if (got == TG_PROXY_PAUSE) {
            r->upload_paused = 1;
            if (nb == 1 && r->body_sent == 0) {
                /* No body bytes yet: the head waits to leave with the first
                 * ones (the client's read usually brings them right after). */
                r->head_sent = 0;
                return;
            }
        } else if (got == 0) {
            r->body_done = 1;
            if (r->chunked) bufs[nb++] = uv_buf_init(TG_LIT("0\r\n\r\n"));
            arm_response_timer(r);
        } else {
            if (r->chunked) {
                int pl = snprintf(pre, sizeof pre, "%zx\r\n", got);
                bufs[nb++] = uv_buf_init(pre, (unsigned)pl);
            }
            bufs[nb++] = uv_buf_init(r->stage, (unsigned)got);
            if (r->chunked) bufs[nb++] = uv_buf_init(TG_LIT("\r\n"));
            r->body_sent += (int64_t)got;
            arm_response_timer(r); /* an upload in progress is not an idle upstream */
        }
        if (nb && write_out(r, bufs, nb) != 0) return;
    }
}

static void send_request(h1req_t *r)
{
    if (!r->has_body) r->body_done = 1;
    arm_response_timer(r);
    int rc = uv_read_start((uv_stream_t *)&r->c->tcp, on_alloc, on_read);
    if (rc != 0 && rc != UV_EALREADY) { /* an idle connection is already reading */
        fail_later(r, TG_PROXY_ERROR, "upstream socket read failed");
        return;
    }
    pump_upload(r);
}

/* The TLS side of a connection that just connected: the ClientHello goes out. */
static int tls_start(h1conn_t *c)
{
    pool_t *p = c->pool;
    c->ssl = tg_h1tls_new(p->ctx, p->url.name, p->url.numeric);
    if (!c->ssl) return -1;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        return -1;
    }
    BIO_set_mem_eof_return(c->rbio, -1); /* empty: "want read", not EOF */
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_app_data(c->ssl, c);
    if (p->sess) SSL_set_session(c->ssl, p->sess);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) return -1;
    tls_handshake(c, c->req);
    return 0;
}

static void conn_open(h1req_t *r);

/* Arms r's timer with what is left of the connect timeout: all of it for the last address
 * (cb on_timeout), else an even share among the addresses left, so one that never answers
 * does not use up the time of the ones after it (cb on_addr_timeout). */
static void arm_connect_timer(h1req_t *r, uv_timer_cb cb, size_t addresses)
{
    if (!r->conn_deadline_us) return;
    int64_t left = (r->conn_deadline_us - tg_mono_us()) / 1000;
    if (addresses > 1) left /= (int64_t)addresses;
    uv_timer_start(&r->timer, cb, (uint64_t)(left < 1 ? 1 : left), 0);
}

/* An address's share of the connect timeout ran out before it connected: the next one. */
static void on_addr_timeout(uv_timer_t *t)
{
    h1req_t *r = t->data;
    h1conn_t *c = r->c;
    if (c && !c->connected && r->addr_i + 1 < r->pool->dns.n) {
        r->c = NULL;
        c->req = NULL;
        conn_close(c);
        r->addr_i++;
        conn_open(r);
        return;
    }
    on_timeout(t);
}

static void on_connect(uv_connect_t *creq, int status)
{
    h1conn_t *c = creq->data;
    h1req_t *r = c->req;
    if (c->closing) return;
    if (!r) {
        conn_close(c);
        return;
    }
    if (status < 0) {
        if (r->addr_i + 1 < r->pool->dns.n) {
            /* The next address of the name, under the same connect timer. */
            r->addr_i++;
            r->c = NULL;
            c->req = NULL;
            conn_close(c);
            conn_open(r);
            return;
        }
        snprintf(r->msg, sizeof r->msg, "connect to %s: %s", c->pool->target, uv_strerror(status));
        finish(r, TG_PROXY_CONNECT, r->msg);
        return;
    }
    c->connected = 1;
    arm_connect_timer(r, on_timeout, 1); /* the rest of it, for the TLS handshake */
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->pool->url.tls) {
        if (tls_start(c) != 0) {
            ERR_clear_error();
            finish(r, TG_PROXY_ERROR, "TLS setup failed");
        }
        return; /* the connect timer runs on through the handshake */
    }
    c->ready = 1;
    send_request(r);
}

/* A new connection to the pool's address r->addr_i. */
static void conn_open(h1req_t *r)
{
    tg_h1_t *h = r->h;
    h1conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        fail_later(r, TG_PROXY_ERROR, "out of memory");
        return;
    }
    c->h = h;
    c->pool = r->pool;
    uv_tcp_init(h->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    llhttp_init(&c->parser, HTTP_RESPONSE, &rsettings);
    c->parser.data = c;
    c->all_next = h->conns;
    if (h->conns) h->conns->all_prev = c;
    h->conns = c;
    c->req = r;
    r->c = c;
    size_t rest = r->pool->dns.n - r->addr_i;
    arm_connect_timer(r, rest > 1 ? on_addr_timeout : on_timeout, rest);
    const struct sockaddr *sa = (const struct sockaddr *)&r->pool->dns.addr[r->addr_i];
    int rc = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect);
    if (rc != 0) {
        conn_close(c);
        r->c = NULL;
        fail_later(r, TG_PROXY_CONNECT, "connect failed");
    }
}

static void on_resolved(uv_getaddrinfo_t *q, int status, struct addrinfo *ai)
{
    resolve_t *rs = q->data;
    pool_t *p = rs->pool;
    free(rs);
    if (!p) { /* the client was freed meanwhile */
        uv_freeaddrinfo(ai);
        return;
    }
    p->resolving = NULL;
    size_t n = status == 0 ? tg_h1dns_set(&p->dns, ai, p->url.port, tg_mono_us()) : 0;
    uv_freeaddrinfo(ai);
    /* One at a time from the queue: a failure's on_done may start transfers (they queue
     * behind a new resolve, which stops this loop) or abort waiting ones. */
    while (p->waiting && !p->resolving) {
        h1req_t *r = p->waiting;
        unwait(r);
        if (n) {
            r->addr_i = 0;
            conn_open(r);
        } else {
            snprintf(r->msg, sizeof r->msg, "could not resolve host %.180s: %s", p->url.name,
                     status ? uv_strerror(status) : "no address");
            finish(r, TG_PROXY_CONNECT, r->msg);
        }
    }
}

/* A connection for r: the connect timer starts, and the name is resolved first when the
 * pool's addresses are missing or stale. */
static void conn_connect(h1req_t *r)
{
    pool_t *p = r->pool;
    /* The connect timeout (resolve, connect, TLS handshake), cut to the whole transfer's
     * deadline. */
    int64_t ms = r->connect_timeout_ms > 0 ? r->connect_timeout_ms : 0;
    if (r->deadline_us) {
        int64_t left = (r->deadline_us - tg_mono_us()) / 1000;
        if (left < 1) left = 1;
        if (ms == 0 || left < ms) ms = left;
    }
    if (ms > 0) uv_timer_start(&r->timer, on_timeout, (uint64_t)ms, 0);
    r->conn_deadline_us = ms > 0 ? tg_mono_us() + ms * 1000 : 0;
    r->addr_i = 0;
    if (p->dns.fixed || (!p->resolving && tg_h1dns_fresh(&p->dns, tg_mono_us()))) {
        conn_open(r);
        return;
    }
    r->waiting = 1;
    r->wnext = NULL;
    if (p->waiting_tail)
        p->waiting_tail->wnext = r;
    else
        p->waiting = r;
    p->waiting_tail = r;
    if (p->resolving) return;
    resolve_t *rs = calloc(1, sizeof *rs);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (rs) {
        rs->pool = p;
        rs->req.data = rs;
    }
    if (!rs || uv_getaddrinfo(r->h->loop, &rs->req, on_resolved, p->url.name, NULL, &hints) != 0) {
        free(rs);
        unwait(r);
        fail_later(r, TG_PROXY_CONNECT, "could not start resolving the upstream host");
        return;
    }
    p->resolving = rs;
}

/* ---- the proxy.h calls ------------------------------------------------ */

static int build_head(h1req_t *r)
{
    const char *host = r->pool->url.host;
    size_t need = strlen(r->method) + strlen(r->path) + strlen(host) + 96;
    for (size_t i = 0; i < r->nheaders; i++)
        need += strlen(r->headers[i]) + 2;
    tg_buf_reset(&r->obuf);
    if (tg_buf_reserve(&r->obuf, need) != 0) return -1;
    char *o = tg_buf_end(&r->obuf);
    o = tg_puts(tg_puts(tg_puts(o, r->method), " "), r->path);
    o = tg_puts(tg_puts(tg_puts(o, " HTTP/1.1\r\nHost: "), host), "\r\n");
    for (size_t i = 0; i < r->nheaders; i++)
        o = tg_put(tg_puts(o, r->headers[i]), TG_LIT("\r\n"));
    if (r->has_body && !r->chunked)
        o = tg_put(tg_putu(tg_puts(o, "Content-Length: "), (unsigned long long)r->body_len),
                   TG_LIT("\r\n"));
    else if (!r->has_body && (!strcmp(r->method, "POST") || !strcmp(r->method, "PUT") ||
                              !strcmp(r->method, "PATCH")))
        o = tg_puts(o, "Content-Length: 0\r\n"); /* some front-ends answer 411 without */
    else if (r->chunked)
        o = tg_puts(o, "Transfer-Encoding: chunked\r\n");
    o = tg_put(o, TG_LIT("\r\n"));
    tg_buf_added(&r->obuf, (size_t)(o - r->obuf.p));
    return 0;
}

tg_proxy_req_t *tg_h1_start(tg_h1_t *h, const tg_proxy_spec_t *spec, const tg_proxy_handler_t *hd,
                            void *ud)
{
    const char *path;
    pool_t *pool = pool_for(h, spec->url, spec->ca_file, &path);
    if (!pool) return NULL;
    h1req_t *r = h->free_reqs;
    if (r) {
        h->free_reqs = r->next_free;
    } else {
        r = calloc(1, sizeof *r);
        if (!r) return NULL;
        tg_buf_init(&r->hbuf, RESP_HEAD_MAX);
        tg_buf_init(&r->obuf, TG_BUF_MAX_LIMIT);
        r->base.native = 1;
        r->h = h;
        uv_timer_init(h->loop, &r->timer);
        r->timer.data = r;
    }
    r->pool = pool;
    r->hd = hd;
    r->ud = ud;
    r->method = spec->method;
    r->path = path;
    r->headers = spec->headers;
    r->nheaders = spec->nheaders;
    r->has_body = spec->has_body;
    r->body_len = spec->body_len;
    r->chunked = spec->has_body && spec->body_len < 0;
    r->connect_timeout_ms = spec->connect_timeout_ms;
    r->timeout_ms = spec->timeout_ms;
    r->idle_timeout_ms = spec->idle_timeout_ms;
    r->deadline_us = spec->timeout_ms > 0 ? tg_mono_us() + (int64_t)spec->timeout_ms * 1000 : 0;
    r->head_sent = r->body_done = r->upload_paused = r->down_paused = 0;
    r->got_bytes = r->done = r->interim = r->retried = r->body_abort = r->in_head = 0;
    r->hraw = 0;
    r->head_only = strcmp(spec->method, "HEAD") == 0;
    r->body_sent = 0;
    r->fail_detail = NULL;
    r->waiting = 0;
    r->wnext = NULL;
    tg_buf_reset(&r->hbuf);
    r->nhdrs = r->rlen = 0;
    r->c = NULL;
    r->active = 1;
    if (build_head(r) != 0) {
        release(r);
        return NULL;
    }
    h1conn_t *c = pool->idle;
    /* An idle TLS connection holding bytes OpenSSL has not made a whole record of (the
     * upstream wrote them after the answer) is closed, not reused: the next answer would be
     * read behind them. (Whole records on an idle connection close it as they come.) */
    while (c && c->ssl && (BIO_ctrl_pending(c->rbio) > 0 || SSL_has_pending(c->ssl))) {
        conn_close(c);
        c = pool->idle;
    }
    if (c) {
        idle_remove(c);
        c->req = r;
        r->c = c;
        send_request(r);
    } else {
        conn_connect(r);
    }
    return (tg_proxy_req_t *)r;
}

void tg_h1_resume_upload(tg_proxy_req_t *pr)
{
    h1req_t *r = (h1req_t *)pr;
    if (!r->active || !r->upload_paused) return;
    r->upload_paused = 0;
    if (r->c && r->c->ready) pump_upload(r);
}

void tg_h1_resume_download(tg_proxy_req_t *pr)
{
    h1req_t *r = (h1req_t *)pr;
    if (!r->active || !r->down_paused) return;
    r->down_paused = 0;
    if (r->c) uv_read_start((uv_stream_t *)&r->c->tcp, on_alloc, on_read);
    arm_response_timer(r);
}

int64_t tg_h1_body_sent(const tg_proxy_req_t *pr)
{
    return ((const h1req_t *)pr)->body_sent;
}

void tg_h1_abort(tg_proxy_req_t *pr)
{
    h1req_t *r = (h1req_t *)pr;
    if (!r->active) return;
    if (r->c) conn_close(r->c); /* mid-transfer: the connection cannot be reused */
    release(r);
}

tg_h1_t *tg_h1_new(uv_loop_t *loop)
{
    tg_h1_t *h = calloc(1, sizeof *h);
    if (h) h->loop = loop;
    return h;
}

static void on_req_timer_closed(uv_handle_t *hd)
{
    h1req_t *r = hd->data;
    tg_buf_free(&r->hbuf);
    tg_buf_free(&r->obuf);
    free(r);
}

void tg_h1_free(tg_h1_t *h)
{
    if (!h) return;
    while (h->conns)
        conn_close(h->conns);
    while (h->free_reqs) {
        h1req_t *r = h->free_reqs;
        h->free_reqs = r->next_free;
        uv_close((uv_handle_t *)&r->timer, on_req_timer_closed);
    }
    for (size_t i = 0; i < h->npools; i++)
        pool_free(h->pools[i]);
    free(h->pools);
    for (size_t i = 0; i < h->nctxs; i++) {
        SSL_CTX_free(h->ctxs[i].ctx);
        free(h->ctxs[i].ca_file);
    }
    free(h->ctxs);
    free(h);
}
