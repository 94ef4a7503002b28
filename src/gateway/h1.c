/* Native HTTP/1.1 upstream client: see h1.h.
 *
 * Per worker: one pool per target (by its URL), each with a LIFO list of idle
 * keep-alive connections. An idle connection keeps reading so an upstream
 * close is noticed at once; a transfer on a reused connection that gets no
 * response byte before the connection closes (the upstream timed it out just
 * as we sent) is retried once on a fresh connection when no request body was
 * pulled yet.
 *
 * Completion and failures are reported with on_done only from this module's
 * own libuv callbacks (socket reads, connects, timers), never from inside a
 * call the caller made (start, resume, abort): a failure found there is
 * deferred through the transfer's timer, so the caller is never re-entered. */
#include "gateway/h1.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/wqueue.h"
#include "util/buf.h"
#include "util/clock.h"

#define MAX_IDLE_PER_POOL 512
#define UPLOAD_HIGH       (256 * 1024) /* stop pulling the body above this much queued */
#define STAGE_SIZE        (64 * 1024)
#define MAX_RESP_HDRS     128
#define RESP_HEAD_MAX     (64 * 1024)

typedef struct h1conn h1conn_t;
typedef struct h1req h1req_t;

typedef struct pool {
    char *target; /* "http://host:port", as in the URL prefix */
    size_t target_len;
    char host[300]; /* the Host header value */
    struct sockaddr_storage addr;
    h1conn_t *idle; /* doubly linked through idle_prev/idle_next */
    size_t nidle;
} pool_t;

struct tg_h1 {
    uv_loop_t *loop;
    pool_t **pools;
    size_t npools, cap;
    h1req_t *free_reqs;
    h1conn_t *conns;  /* every open connection, for tg_h1_free */
    char rbuf[65536]; /* read buffer: parsed before the next read */
};

struct h1conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    tg_h1_t *h;
    pool_t *pool;
    h1conn_t *idle_prev, *idle_next, *all_prev, *all_next;
    h1req_t *req; /* the transfer using it, NULL when idle */
    http_parser parser;
    int connected, closing, is_idle, reused;
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
    uv_timer_t timer; /* connect / response timeouts; deferred failures */
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
    int64_t body_sent;
    tg_proxy_result_t fail_result; /* a deferred failure, delivered by the timer */
    const char *fail_detail;
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
static const http_parser_settings rsettings;

/* ---- pools ------------------------------------------------------------ */

/* "http://1.2.3.4:80/path" → the pool for "http://1.2.3.4:80", made on first
 * use; NULL if the URL is not a plain-HTTP numeric/localhost one. */
static pool_t *pool_for(tg_h1_t *h, const char *url, const char **path)
{
    if (strncmp(url, TG_LIT("http://")) != 0) return NULL;
    const char *hs = url + TG_LIT_LEN("http://"), *slash = strchr(hs, '/');
    size_t tlen = slash ? (size_t)(slash - url) : strlen(url);
    *path = slash ? slash : "/";
    for (size_t i = 0; i < h->npools; i++)
        if (h->pools[i]->target_len == tlen && memcmp(h->pools[i]->target, url, tlen) == 0)
            return h->pools[i];

    char host[256];
    size_t hlen = tlen - TG_LIT_LEN("http://");
    if (hlen == 0 || hlen >= sizeof host) return NULL;
    memcpy(host, hs, hlen);
    host[hlen] = '\0';
    int port = 80;
    char *ip = host;
    if (host[0] == '[') {
        char *rb = strchr(host, ']');
        if (!rb) return NULL;
        *rb = '\0';
        ip = host + 1;
        if (rb[1] == ':') port = atoi(rb + 2);
    } else {
        char *colon = strrchr(host, ':');
        if (colon) {
            *colon = '\0';
            port = atoi(colon + 1);
        }
    }
    if (port <= 0 || port > 65535) return NULL;
    if (strcmp(ip, "localhost") == 0) ip = "127.0.0.1";
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr) != 0)
        return NULL; /* a host name: libcurl resolves those */

    if (h->npools == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        pool_t **np = realloc(h->pools, cap * sizeof *np);
        if (!np) return NULL;
        h->pools = np;
        h->cap = cap;
    }
    pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->target = strndup(url, tlen);
    if (!p->target) {
        free(p);
        return NULL;
    }
    p->target_len = tlen;
    snprintf(p->host, sizeof p->host, "%.*s", (int)hlen, hs);
    p->addr = addr;
    h->pools[h->npools++] = p;
    return p;
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
    free(hd->data);
}

static void conn_close(h1conn_t *c)
{
    if (c->closing) return;
    c->closing = 1;
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

/* ---- finishing a transfer --------------------------------------------- */

static void release(h1req_t *r)
{
    uv_timer_stop(&r->timer);
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
        int reuse =
            res == TG_PROXY_OK && r->body_done && http_should_keep_alive(&c->parser) && !c->closing;
        c->req = NULL;
        if (reuse) {
            http_parser_init(&c->parser, HTTP_RESPONSE);
            c->parser.data = c;
            c->reused = 1;
            idle_push(c);
        } else {
            conn_close(c);
        }
    }
    const tg_proxy_handler_t *hd = r->hd;
    void *ud = r->ud;
    release(r); /* on_done may start a transfer that reuses r */
    hd->on_done(ud, res, detail);
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
           r->c && r->c->connected ? "upstream response timed out" : "upstream connect timed out");
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

static int on_msg_begin(http_parser *p)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    tg_buf_reset(&r->hbuf);
    r->nhdrs = r->rlen = 0;
    r->last_val = 0;
    return 0;
}

static int on_status(http_parser *p, const char *at, size_t n)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    size_t k = n < sizeof r->reason - r->rlen ? n : sizeof r->reason - r->rlen;
    memcpy(r->reason + r->rlen, at, k);
    r->rlen += k;
    return 0;
}

static int on_hfield(http_parser *p, const char *at, size_t n)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    if (r->nhdrs == 0 || r->last_val) {
        if (r->nhdrs == MAX_RESP_HDRS) return -1;
        r->hdrs[r->nhdrs++] = (rhdr_t){.no = (uint32_t)r->hbuf.len};
        r->last_val = 0;
    }
    if (tg_buf_add(&r->hbuf, at, n) != 0) return -1;
    r->hdrs[r->nhdrs - 1].nl += (uint32_t)n;
    return 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t n)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    rhdr_t *hh = &r->hdrs[r->nhdrs - 1];
    if (!r->last_val) {
        hh->vo = (uint32_t)r->hbuf.len;
        r->last_val = 1;
    }
    if (tg_buf_add(&r->hbuf, at, n) != 0) return -1;
    hh->vl += (uint32_t)n;
    return 0;
}

static int on_hdone(http_parser *p)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    int status = p->status_code;
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

static int on_rbody(http_parser *p, const char *at, size_t n)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    int rc = r->hd->on_body(r->ud, at, n);
    if (rc < 0) return -1;
    if (rc == 1) r->down_paused = 1;
    return 0;
}

static int on_msg_complete(http_parser *p)
{
    h1req_t *r = ((h1conn_t *)p->data)->req;
    if (r->interim) {
        r->interim = 0;
        return 0; /* the final response follows */
    }
    r->done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings rsettings = {
    .on_message_begin = on_msg_begin,
    .on_status = on_status,
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_headers_complete = on_hdone,
    .on_body = on_rbody,
    .on_message_complete = on_msg_complete,
};

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h1conn_t *c = s->data;
    h1req_t *r = c->req;
    if (nread == 0) return;
    if (!r) {
        conn_close(c); /* idle: the upstream closed it (or sent junk) */
        return;
    }
    if (nread < 0) {
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
        if (r->got_bytes) {
            http_parser_execute(&c->parser, &rsettings, NULL, 0); /* EOF-delimited body */
            if (r->done) {
                conn_close(c); /* the close ended the body: not reusable */
                finish(r, TG_PROXY_OK, "");
                return;
            }
        }
        finish(r, TG_PROXY_ERROR,
               r->got_bytes ? "upstream closed the connection mid-response"
                            : "upstream closed the connection without a response");
        return;
    }
    r->got_bytes = 1;
    size_t n = http_parser_execute(&c->parser, &rsettings, buf->base, (size_t)nread);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (r->done) {
        if (n < (size_t)nread) conn_close(c); /* bytes past the response: not reusable */
        finish(r, TG_PROXY_OK, "");
        return;
    }
    if (e != HPE_OK) {
        finish(r, TG_PROXY_ERROR,
               e == HPE_CB_body ? "aborted by the client side" : "malformed upstream response");
        return;
    }
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
    pump_upload(c->req);
}

static int write_out(h1req_t *r, const uv_buf_t *bufs, unsigned n)
{
    int rc = tg_wq_write((uv_stream_t *)&r->c->tcp, bufs, n, on_written, r->c);
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
        static char msg[128];
        snprintf(msg, sizeof msg, "connect to %s: %s", c->pool->target, uv_strerror(status));
        finish(r, TG_PROXY_CONNECT, msg);
        return;
    }
    c->connected = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    send_request(r);
}

static void conn_connect(h1req_t *r)
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
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->all_next = h->conns;
    if (h->conns) h->conns->all_prev = c;
    h->conns = c;
    c->req = r;
    r->c = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&r->pool->addr, on_connect);
    if (rc != 0) {
        conn_close(c);
        r->c = NULL;
        fail_later(r, TG_PROXY_CONNECT, "connect failed");
        return;
    }
    /* The connect timeout, cut to the whole transfer's deadline. */
    int64_t ms = r->connect_timeout_ms > 0 ? r->connect_timeout_ms : 0;
    if (r->deadline_us) {
        int64_t left = (r->deadline_us - tg_mono_us()) / 1000;
        if (left < 1) left = 1;
        if (ms == 0 || left < ms) ms = left;
    }
    if (ms > 0) uv_timer_start(&r->timer, on_timeout, (uint64_t)ms, 0);
}

/* ---- the proxy.h calls ------------------------------------------------ */

static int build_head(h1req_t *r)
{
    size_t need = strlen(r->method) + strlen(r->path) + strlen(r->pool->host) + 96;
    for (size_t i = 0; i < r->nheaders; i++)
        need += strlen(r->headers[i]) + 2;
    tg_buf_reset(&r->obuf);
    if (tg_buf_reserve(&r->obuf, need) != 0) return -1;
    char *o = tg_buf_end(&r->obuf);
    o = tg_puts(tg_puts(tg_puts(o, r->method), " "), r->path);
    o = tg_puts(tg_puts(tg_puts(o, " HTTP/1.1\r\nHost: "), r->pool->host), "\r\n");
    for (size_t i = 0; i < r->nheaders; i++)
        o = tg_put(tg_puts(o, r->headers[i]), TG_LIT("\r\n"));
    if (r->has_body && !r->chunked)
        o += sprintf(o, "Content-Length: %lld\r\n", (long long)r->body_len);
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
    pool_t *pool = pool_for(h, spec->url, &path);
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
    r->got_bytes = r->done = r->interim = r->retried = 0;
    r->head_only = strcmp(spec->method, "HEAD") == 0;
    r->body_sent = 0;
    r->fail_detail = NULL;
    tg_buf_reset(&r->hbuf);
    r->nhdrs = r->rlen = 0;
    r->c = NULL;
    r->active = 1;
    if (build_head(r) != 0) {
        release(r);
        return NULL;
    }
    h1conn_t *c = pool->idle;
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
    if (r->c && r->c->connected) pump_upload(r);
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
    for (size_t i = 0; i < h->npools; i++) {
        free(h->pools[i]->target);
        free(h->pools[i]);
    }
    free(h->pools);
    free(h);
}
