/* Client connections: see conn.h.
 *
 * Life of a request: http_parser callbacks collect the head into c->head (capped: 431
 * past server.max_header_bytes); at headers-complete the request (c->req, request.h)
 * walks its phases (run_phases: authenticate, route, read a held body, admit, forward)
 * and is handed to the upstream client (proxy.h); billing (bill/bill.h) decides its
 * admission and, at the end, its outcome and price. The body is copied into c->body as
 * it arrives and pulled by the upstream client; reading from the client stops while
 * more than BODY_HIGH bytes wait. Response bytes go to the socket with uv_try_write and
 * only the part the kernel did not take is copied; while more than OUT_HIGH bytes are
 * queued the upstream download is paused. A request ends when both its message was read
 * and its response was queued; then exactly one event is pushed to the recorder and, on
 * keep-alive, the parser resumes on any pipelined bytes kept in c->pend.
 *
 * Callbacks from the upstream client never close the connection themselves
 * (curl forbids removing a transfer from inside its callbacks): a failed
 * write sets write_failed and the transfer is ended by curl, after which
 * on_done closes. */
#include "gateway/conn.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bill/bill.h"
#include "gateway/request.h"
#include "gateway/target.h"
#include "gateway/upstream.h"
#include "gateway/wqueue.h"
#include "meter/exchange.h"
#include "meter/price.h"
#include "policy/policy.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define MAX_HDRS        100
#define BODY_HIGH       (256 * 1024)  /* stop reading the client above this much unsent body */
#define BODY_LOW        (64 * 1024)   /* and read again below this */
#define OUT_HIGH        (1024 * 1024) /* pause the upstream above this much unsent response */
#define OUT_LOW         (256 * 1024)
#define PEND_MAX        (64 * 1024) /* pipelined bytes held while a request is in flight */
#define DISCARD_SMALL   (64 * 1024) /* a rejected request's body up to this is read and dropped */
#define LINGER_MS       1000
#define MAX_BATCH_TOOLS TG_BILL_MAX_TOOLS /* tools/call in one JSON-RPC batch (more: 400) */
#define UP_HEAD_MAX     65536             /* an upstream response head, as re-sent (more: 502) */

/* String literals with their length counted by the compiler, never by hand. */
#define LEN(lit)               (sizeof(lit) - 1)
#define LIT(lit)               (lit), LEN(lit) /* the two arguments (p, n) of a function */
#define EV_SET(ev, field, lit) TG_EVENT_SET(ev, field, lit, LEN(lit))
/* p[0..n) is lit, ASCII case ignored (header names, tokens). */
#define IS_LIT(p, n, lit) ((n) == LEN(lit) && strncasecmp((p), (lit), LEN(lit)) == 0)
/* p starts with lit, case ignored (p has at least LEN(lit) bytes). */
#define HAS_PREFIX(p, lit) (strncasecmp((p), (lit), LEN(lit)) == 0)

typedef struct hdr {
    uint32_t no, nl, vo, vl; /* offsets and lengths of name and value in c->head */
} hdr_t;

struct tg_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* header timeout, keep-alive idle timeout, linger */
    uv_shutdown_t sreq;
    tg_worker_t *w;
    tg_conn_t *prev, *next;
    http_parser parser;
    int open_handles;

    /* Connection state. */
    int closing;   /* uv_close called */
    int lingering; /* response sent with close; draining the client's rest */
    int reading;   /* uv_read_start in effect */
    int driving;   /* inside drive(): finish_request must not recurse */
    int resume;    /* drive() should unpause the parser and parse c->pend */
    int write_failed;
    int out_blocked;    /* over OUT_HIGH unsent between requests: nothing read until it drains */
    size_t timer_q;     /* write-queue size when the timer last fired (progress) */
    char client_ip[48]; /* the socket peer, printable */
    tg_ip_t peer;       /* the socket peer */
    tg_keycache_t keycache; /* the last key presented here and its hash (keyring.h) */

    /* The request being read or answered (request.h): one at a time. */
    tg_req_t req;

    /* Head of the current request: the buffer keeps its capacity across requests. */
    char *head;
    size_t head_len, head_cap;
    hdr_t hdrs[MAX_HDRS];
    size_t nhdrs;
    int last_was_value;

    /* Pipelined input not parsed yet. */
    char *pend;
    size_t pend_len, pend_cap;

    /* Request body on its way to the upstream. */
    char *body;
    size_t body_len, body_off, body_cap;
    int body_paused; /* client reads stopped for back-pressure */

    /* Upstream transfer. */
    const char *up_hdrs[TG_PROXY_MAX_HEADERS];
    char *scratch; /* URL and header lines handed to the upstream client */
    size_t scratch_cap;
    char up_conn[256]; /* names the upstream's Connection header lists (but close,
                          keep-alive); req.up_conn_len of it in use */

    /* Response head being collected from the upstream, then held until the
     * first body bytes (or the end of the read that brought it) so head and
     * body leave in one write. */
    char *out;
    size_t out_len, out_cap;
    char *rhead;
    size_t rhead_len, rhead_cap;

    tg_xchg_t *xchg; /* AI/MCP metering state, made on the first such request */
};

static void drive(tg_conn_t *c);
static void arm_timer(tg_conn_t *c, long ms);
static void conn_close(tg_conn_t *c);
static void start_upstream(tg_conn_t *c);
static int start_drain(tg_conn_t *c);
static const http_parser_settings settings;

/* ---- small helpers ---------------------------------------------------- */

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p) return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* Is name[0..nl) one of the tokens of the comma-separated list[0..ll)? (Connection) */
static int in_token_list(const char *list, size_t ll, const char *name, size_t nl)
{
    size_t i = 0;
    while (i < ll) {
        while (i < ll && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        size_t b = i;
        while (i < ll && list[i] != ',')
            i++;
        size_t e = i;
        while (e > b && (list[e - 1] == ' ' || list[e - 1] == '\t'))
            e--;
        if (e - b == nl && nl && strncasecmp(list + b, name, nl) == 0) return 1;
    }
    return 0;
}

static int name_is(const tg_conn_t *c, const hdr_t *h, const char *name)
{
    size_t n = strlen(name);
    return h->nl == n && strncasecmp(c->head + h->no, name, n) == 0;
}

static const hdr_t *find_hdr_n(const tg_conn_t *c, const char *name, size_t n)
{
    for (size_t i = 0; i < c->nhdrs; i++)
        if (c->hdrs[i].nl == n && strncasecmp(c->head + c->hdrs[i].no, name, n) == 0)
            return &c->hdrs[i];
    return NULL;
}

/* The same for a string literal: its length is known at compile time, and most header
 * names are told apart by it before a byte is compared. */
#define NAME_IS(c, h, lit)                                                                         \
    ((h)->nl == sizeof(lit) - 1 && strncasecmp((c)->head + (h)->no, lit, sizeof(lit) - 1) == 0)
#define FIND_HDR(c, lit) find_hdr_n(c, lit, sizeof(lit) - 1)

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* ---- writing ---------------------------------------------------------- */

static void on_write(void *data, int status)
{
    tg_conn_t *c = data;
    if (c->closing) return;
    if (status < 0) {
        if (c->req.drain || start_drain(c)) return;
        c->write_failed = 1;
        if (!c->req.up) conn_close(c);
        return;
    }
    size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (c->req.up && q < OUT_LOW) tg_proxy_resume_download(c->req.up);
    if (c->out_blocked && q < OUT_LOW) {
        /* The client reads again: the next pipelined request may go. */
        c->out_blocked = 0;
        c->resume = 1;
        arm_timer(c, c->w->cfg->server.idle_timeout_ms);
        drive(c);
    }
}

/* Writes bufs in order (see wqueue.h). Returns 0, or -1 with write_failed
 * set when the socket is gone. */
static int conn_write(tg_conn_t *c, uv_buf_t *bufs, unsigned n)
{
    if (c->closing || c->write_failed) return -1;
    if (tg_wq_write((uv_stream_t *)&c->tcp, bufs, n, on_write, c) != 0) {
        c->write_failed = 1;
        return -1;
    }
    return 0;
}

/* An error answered by tollgate itself: {"error":{"type","message"}}. The
 * strings are compile-time constants of ours, never client input. */
/* The RateLimit headers (IETF httpapi draft) and their X-RateLimit-* forms,
 * for a request a rate rule applied to; "" otherwise. */
static int rate_headers(const tg_conn_t *c, char *buf, size_t cap)
{
    const tg_admission_t *a = &c->req.adm;
    buf[0] = '\0';
    if (!a->limited || cap < 256) return 0;
    /* Per request on a limited route: memcpy and a digit loop, not printf
     * (which cost more than the whole admission decision). */
    char *o = tg_puts(buf, "RateLimit-Policy: \"");
    o = tg_putu(tg_puts(tg_puts(o, a->policy), "\";q="), a->limit);
    o = tg_putu(tg_puts(o, ";w="), a->window_s);
    o = tg_puts(tg_puts(tg_puts(o, "\r\nRateLimit: \""), a->policy), "\";r=");
    o = tg_putu(o, a->remaining);
    o = tg_putu(tg_puts(o, ";t="), a->reset_s);
    o = tg_putu(tg_puts(o, "\r\nX-RateLimit-Limit: "), a->limit);
    o = tg_putu(tg_puts(o, "\r\nX-RateLimit-Remaining: "), a->remaining);
    o = tg_putu(tg_puts(o, "\r\nX-RateLimit-Reset: "), a->reset_s);
    o = tg_puts(o, "\r\n");
    *o = '\0';
    return (int)(o - buf);
}

/* A JSON answer by tollgate itself; body ends with a newline already. */
static void send_json(tg_conn_t *c, int status, const char *body, size_t bl)
{
    char head[1024], extra[512];
    int el = rate_headers(c, extra, sizeof extra);
    if (c->req.adm.retry_after_s && (status == 429 || status == 503))
        el += snprintf(extra + el, sizeof extra - (size_t)el, "Retry-After: %llu\r\n",
                       (unsigned long long)c->req.adm.retry_after_s);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nx-request-id: %s\r\n%s%s\r\n",
                      status, status_text(status), bl, c->req.ev.request_id, extra,
                      c->req.keep_alive ? "" : "Connection: close\r\n");
    uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hl), uv_buf_init((char *)body, (unsigned)bl)};
    int head_only = c->req.headers_done && c->parser.method == HTTP_HEAD;
    if (conn_write(c, bufs, head_only ? 1 : 2) == 0 && !head_only)
        c->req.ev.bytes_out += (int64_t)bl;
    c->req.ev.status = status;
    c->req.head_sent = 1;
    c->req.resp_done = 1;
}

/* An error answered by tollgate itself: {"error":{"type","message"}},
 * encoded by jansson (a pause reason is operator text). */
static void send_error(tg_conn_t *c, int status, const char *type, const char *message)
{
    char body[1024];
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "type", type, "message", message);
    size_t bl = o ? json_dumpb(o, body, sizeof body - 1, JSON_COMPACT) : 0;
    json_decref(o);
    if (bl == 0 || bl >= sizeof body - 1) bl = (size_t)snprintf(body, sizeof body, "{}");
    body[bl++] = '\n';
    send_json(c, status, body, bl);
}

/* ---- reading and parsing ---------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    tg_conn_t *c = h->data;
    *buf = uv_buf_init(c->w->rbuf, sizeof c->w->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void set_reading(tg_conn_t *c, int on)
{
    if (c->closing || on == c->reading) return;
    c->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static void update_reading(tg_conn_t *c)
{
    set_reading(c, !c->body_paused && !c->out_blocked && c->pend_len < PEND_MAX);
}

static int pend_append(tg_conn_t *c, const char *p, size_t n)
{
    if (grow(&c->pend, &c->pend_cap, c->pend_len + n) != 0) return -1;
    memcpy(c->pend + c->pend_len, p, n);
    c->pend_len += n;
    return 0;
}

/* The answer's phases (request.h), once both halves of the request are over, whatever
 * way: METER's end (the exchange fills model, tokens, JSON-RPC method and tool; a 2xx MCP
 * answer that is not a result gets its reason, which makes it not billable), SETTLE
 * (bill.h: outcome, estimate, price, reservations settled), RECORD (the event, one per
 * request, to the recorder). */
static void record(tg_conn_t *c)
{
    tg_req_t *r = &c->req;
    tg_event_t *ev = &r->ev;
    ev->latency_us = tg_mono_us() - r->start_mono;
    r->phase = TG_PHASE_METER;
    int metered = r->metered;
    if (metered) {
        int unparsed;
        tg_xchg_finish(c->xchg, ev, &unparsed);
        r->metered = 0;
        if (unparsed) atomic_fetch_add_explicit(&c->w->srv->unparsed, 1, memory_order_relaxed);
    }
    r->phase = TG_PHASE_SETTLE;
    tg_bill_answer_t a;
    tg_bill_answer_from(&a, c->xchg, metered, r->drain, r->route ? r->route->kind : TG_ROUTE_HTTP,
                        r->cfg ? r->cfg->max_output_tokens : 0);
    tg_bill_env_t env = {c->w->srv->policy, c->w->srv->prices};
    tg_bill_settle(&env, &a, &r->adm, ev, (uint64_t)tg_mono_us() * 1000);
    r->phase = TG_PHASE_RECORD;
    ev->id = tg_event_new_id(ev->ts_us);
    tg_recorder_push(c->w->srv->rec, ev);
}

static void end_request_state(tg_conn_t *c)
{
    if (c->req.cfg) tg_config_unref(c->req.cfg);
    c->req.cfg = NULL;
    c->req.route = NULL;
    c->req.in_request = 0;
    c->body_len = c->body_off = 0;
    c->body_paused = 0;
}

static void on_timer(uv_timer_t *t);

static void arm_timer(tg_conn_t *c, long ms)
{
    if (ms > 0) uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

/* A body tollgate reads itself (held for admission, or the rest of an answered request
 * being dropped) must keep coming (server.header_timeout without a byte) and be whole by
 * body_deadline_us (server.body_timeout): a trickle of a byte now and then does not
 * hold the connection, or a held request's buffer, forever. */
static void arm_body_timer(tg_conn_t *c)
{
    long ms = c->w->cfg->server.header_timeout_ms;
    int64_t left = (c->req.body_deadline_us - tg_mono_us()) / 1000;
    if (left < 1) left = 1;
    if (left < ms) ms = (long)left;
    arm_timer(c, ms);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    tg_conn_t *c = req->data;
    if (c->closing) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* Lingering close: keep reading (and dropping) what the client still
     * sends for a moment, so the kernel does not reset the connection and
     * destroy the response before the client read it. */
    c->lingering = 1;
    c->body_paused = 0;
    c->pend_len = 0;
    set_reading(c, 1);
    arm_timer(c, LINGER_MS);
}

static void close_after_response(tg_conn_t *c)
{
    if (c->closing || c->lingering) return;
    if (c->write_failed) {
        conn_close(c);
        return;
    }
    c->sreq.data = c;
    c->lingering = 1;
    c->timer_q = 0;
    arm_timer(c, c->w->cfg->server.idle_timeout_ms); /* a client that never reads */
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
}

/* Both halves of the request are done: record it and move on. */
static void finish_request(tg_conn_t *c)
{
    record(c);
    atomic_fetch_sub_explicit(&c->w->srv->inflight, 1, memory_order_relaxed);
    end_request_state(c);
    if (!c->req.keep_alive || c->w->draining || c->write_failed) {
        close_after_response(c);
        return;
    }
    c->timer_q = 0;
    arm_timer(c, c->w->cfg->server.idle_timeout_ms);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > OUT_HIGH) {
        /* A client that sends requests but does not read the answers (tollgate's own
         * 401s cost it nothing to provoke) must not grow the write queue without bound:
         * nothing more is read or parsed until it drains below OUT_LOW (on_write), and
         * the timer closes the connection if it does not move for idle_timeout. */
        c->out_blocked = 1;
        set_reading(c, 0);
        return;
    }
    c->resume = 1;
    drive(c);
}

static void maybe_finish(tg_conn_t *c)
{
    if (c->req.in_request && c->req.msg_done && c->req.resp_done && !c->req.up) finish_request(c);
}

/* The client left (or its socket failed) during a 2xx answer of an AI call or an MCP
 * tools/call, or while its admitted call waited for the answer's head: the upstream bills
 * the whole answer (the MCP server ran the tools), so it is
 * read on, sent nowhere, for its final usage, up to ai.drain_after_disconnect (then
 * on_timer ends it and record() charges an estimate; with no head by then, nothing is).
 * Returns 1 when the connection now drains; 0 when this answer is not one to drain. Never
 * ends the transfer itself (it may run inside an upstream callback). */
static int start_drain(tg_conn_t *c)
{
    if (c->req.drain) return 1;
    if (!c->req.metered || !c->req.up || c->req.no_body_out || !c->req.msg_done || c->closing ||
        (c->req.head_sent && (c->req.ev.status < 200 || c->req.ev.status >= 300)))
        return 0;
    /* An MCP server runs a tools/call whether or not its client waits for the result:
     * each call that gets one is billed (record; no estimate for the others). */
    int ai = (c->req.route->kind == TG_ROUTE_OPENAI || c->req.route->kind == TG_ROUTE_ANTHROPIC) &&
             tg_xchg_counts_tokens(c->xchg);
    if (!ai && !(c->req.route->kind == TG_ROUTE_MCP && tg_xchg_ntools(c->xchg) > 0)) return 0;
    c->req.drain = 1;
    c->write_failed = 1; /* nothing more is written */
    c->req.head_pending = 0;
    c->req.keep_alive = 0;
    EV_SET(&c->req.ev, reason, "client_closed");
    tg_xchg_client_gone(c->xchg);
    set_reading(c, 0);
    /* (Shutting down: no wait; the answer is charged on what was delivered.) */
    long ms = c->w->draining ? 0 : c->req.cfg->ai.drain_after_disconnect_ms;
    arm_timer(c, ms > 0 ? ms : 1);
    tg_proxy_resume_download(c->req.up); /* it may have been paused for the client */
    return 1;
}

/* A rejected or answered request whose body is still coming: read and drop a
 * small rest to keep the connection, close after a large one. */
static void after_early_response(tg_conn_t *c)
{
    if (c->req.msg_done || !c->req.has_body) return;
    c->req.discard = 1;
    c->body_len = c->body_off = 0;
    /* A client that sent Expect: 100-continue may never send the body: what
     * it sends next could be read as body, so the connection ends here. */
    if (c->req.content_length < 0 || c->req.content_length > DISCARD_SMALL ||
        FIND_HDR(c, "expect")) {
        c->req.keep_alive = 0;
        c->req.msg_done = 1; /* nothing more will be read for this request */
        return;
    }
    c->req.body_deadline_us = tg_mono_us() + (int64_t)c->w->cfg->server.body_timeout_ms * 1000;
    arm_body_timer(c); /* a rest that never comes must not hold the connection */
}

static void mark_rejected(tg_conn_t *c, const char *reason)
{
    c->req.ev.outcome = TG_OUTCOME_REJECTED;
    TG_EVENT_SET(&c->req.ev, reason, reason, strlen(reason));
    after_early_response(c);
}

static void reject(tg_conn_t *c, int status, const char *type, const char *message,
                   const char *reason)
{
    mark_rejected(c, reason);
    send_error(c, status, type, message);
}

/* The same with a JSON body of the route's own protocol (a JSON-RPC error for MCP). */
static void reject_json(tg_conn_t *c, int status, const char *body, size_t bl, const char *reason)
{
    mark_rejected(c, reason);
    send_json(c, status, body, bl);
}

/* Parses data; returns the bytes consumed. Errors answer and close. */
static size_t parse(tg_conn_t *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &settings, data, len);
    if (c->closing) return len;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED || e == HPE_OK) return n;
    /* Malformed input: answer if the response has not started, then close. */
    if (c->req.up) {
        tg_proxy_abort(c->req.up);
        c->req.up = NULL;
    }
    if (!c->req.in_request) {
        /* An error before any message began (garbage on an idle connection, or after a
         * finished keep-alive request): a request of its own, nothing of the last one's
         * (its tenant, path, status or sent head) carried into this event. */
        tg_req_reset(&c->req, c, c->client_ip, tg_mono_us(), tg_wall_us());
        atomic_fetch_add_explicit(&c->w->srv->inflight, 1, memory_order_relaxed);
    }
    c->req.headers_done = 1; /* so the event is recorded even if the head was cut */
    c->req.keep_alive = 0;
    c->req.msg_done = 1;
    if (!c->req.head_sent) {
        int big = c->req.overflow || e == HPE_HEADER_OVERFLOW;
        c->req.ev.outcome = TG_OUTCOME_REJECTED;
        const char *reason = big ? "headers_too_large" : "malformed_request";
        TG_EVENT_SET(&c->req.ev, reason, reason, strlen(reason));
        if (big)
            send_error(c, 431, "headers_too_large", "request header block is too large");
        else
            send_error(c, 400, "invalid_request",
                       c->req.refuse ? c->req.refuse : "malformed HTTP request");
    } else {
        EV_SET(&c->req.ev, reason, "malformed_request");
        c->write_failed = 1; /* the response cannot be completed: just close */
    }
    c->req.resp_done = 1;
    maybe_finish(c);
    return len;
}

/* What parsed bytes may have made possible: more body for the upstream, or
 * a request that is now fully read and answered. */
static void after_parse(tg_conn_t *c)
{
    if (c->req.up && (c->body_len > c->body_off || c->req.msg_done))
        tg_proxy_resume_upload(c->req.up);
    if (!c->closing) maybe_finish(c);
}

/* Parses what is pending while the connection can take a new request. */
static void drive(tg_conn_t *c)
{
    if (c->driving) return;
    c->driving = 1;
    while (c->resume && !c->closing && !c->lingering) {
        c->resume = 0;
        http_parser_pause(&c->parser, 0);
        if (c->pend_len == 0) break;
        size_t n = parse(c, c->pend, c->pend_len);
        if (c->closing) break;
        memmove(c->pend, c->pend + n, c->pend_len - n);
        c->pend_len -= n;
        after_parse(c); /* may finish the request and set resume again */
    }
    c->driving = 0;
    if (!c->closing) update_reading(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tg_conn_t *c = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        if (c->lingering || !c->req.in_request || !c->req.headers_done) {
            conn_close(c); /* nothing, or only part of a head, was received */
            return;
        }
        /* The client went away mid-request. */
        if (start_drain(c)) return;
        if (c->req.up) {
            tg_proxy_abort(c->req.up);
            c->req.up = NULL;
        }
        if (!c->req.head_sent) c->req.ev.status = 499; /* nginx's "client closed request" */
        if (!c->req.ev.reason[0]) EV_SET(&c->req.ev, reason, "client_closed");
        c->req.msg_done = c->req.resp_done = 1;
        c->req.keep_alive = 0;
        c->write_failed = 1;
        maybe_finish(c);
        if (!c->closing) conn_close(c);
        return;
    }
    if (c->lingering) return;
    if (c->req.in_request && c->req.msg_done && !c->req.discard) {
        /* Pipelined: keep it until this response is done. */
        if (pend_append(c, buf->base, (size_t)nread) != 0) conn_close(c);
        update_reading(c);
        return;
    }
    size_t n = parse(c, buf->base, (size_t)nread);
    if (c->closing) return;
    if (n < (size_t)nread && pend_append(c, buf->base + n, (size_t)nread - n) != 0) {
        conn_close(c);
        return;
    }
    after_parse(c);
    if (!c->closing) update_reading(c);
}

/* ---- http_parser callbacks -------------------------------------------- */

static int head_append(tg_conn_t *c, const char *p, size_t n)
{
    size_t cap = c->w->cfg->server.max_header_bytes;
    if (c->head_len + n > cap) {
        c->req.overflow = 1;
        return -1;
    }
    if (grow(&c->head, &c->head_cap, c->head_len + n) != 0) return -1;
    memcpy(c->head + c->head_len, p, n);
    c->head_len += n;
    return 0;
}

static int on_message_begin(http_parser *p)
{
    tg_conn_t *c = p->data;
    /* The connection's buffers start over (keeping their capacity), the request anew. */
    c->head_len = c->nhdrs = 0;
    c->last_was_value = 0;
    c->out_len = 0;
    tg_req_reset(&c->req, c, c->client_ip, tg_mono_us(), tg_wall_us());
    atomic_fetch_add_explicit(&c->w->srv->inflight, 1, memory_order_relaxed);
    arm_timer(c, c->w->cfg->server.header_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    tg_conn_t *c = p->data;
    if (c->req.url_len == 0) c->req.url_off = (uint32_t)c->head_len;
    if (head_append(c, at, n) != 0) return -1;
    c->req.url_len += (uint32_t)n;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    tg_conn_t *c = p->data;
    /* A chunked body's trailer section comes through here too: it is dropped, never read
     * as headers (RFC 9110 §6.5.1), or a trailing X-Forwarded-For would pick the client
     * address of a held request and any trailer would be forwarded as a header. */
    if (c->req.headers_done) return 0;
    if (c->nhdrs == 0 || c->last_was_value) {
        if (c->nhdrs == MAX_HDRS) {
            c->req.overflow = 1;
            return -1;
        }
        hdr_t *h = &c->hdrs[c->nhdrs++];
        *h = (hdr_t){.no = (uint32_t)c->head_len};
        c->last_was_value = 0;
    }
    if (head_append(c, at, n) != 0) return -1;
    c->hdrs[c->nhdrs - 1].nl += (uint32_t)n;
    /* RFC 9112 §5.1: a field name is a token, no whitespace before the colon. The parser
     * lets "Content-Length : 4" through and frames by it; a proxy must not (whoever reads
     * the forwarded head next may frame it differently): 400. The parser itself refuses
     * every other byte that is not a tchar (its token table; tests/unit/gateway/
     * test_http_parser.c holds it to that), so the space is the one byte to look for. */
    if (memchr(at, ' ', n)) {
        c->req.refuse = "invalid character in a header field name";
        return -1;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    tg_conn_t *c = p->data;
    if (c->req.headers_done) return 0; /* a trailer (above) */
    hdr_t *h = &c->hdrs[c->nhdrs - 1];
    if (!c->last_was_value) {
        h->vo = (uint32_t)c->head_len;
        c->last_was_value = 1;
    }
    if (head_append(c, at, n) != 0) return -1;
    h->vl += (uint32_t)n;
    return 0;
}

/* The presented credential: "Authorization: Bearer X" or "x-api-key: X". */
static void credential(const tg_conn_t *c, const char **secret, size_t *len)
{
    *secret = NULL;
    *len = 0;
    for (size_t i = 0; i < c->nhdrs; i++) {
        const hdr_t *h = &c->hdrs[i];
        const char *v = c->head + h->vo;
        if (NAME_IS(c, h, "authorization") && h->vl > LEN("bearer ") && HAS_PREFIX(v, "bearer ")) {
            *secret = v + LEN("bearer ");
            *len = h->vl - LEN("bearer ");
            while (*len && **secret == ' ')
                (*secret)++, (*len)--;
            return;
        }
        if (NAME_IS(c, h, "x-api-key")) {
            *secret = v;
            *len = h->vl;
            return;
        }
    }
}

/* The client's x-request-id when it is a sane token, else ours stays. */
static void set_request_id(tg_conn_t *c)
{
    const hdr_t *h = FIND_HDR(c, "x-request-id");
    int ok = h && h->vl > 0 && h->vl < sizeof c->req.ev.request_id;
    for (uint32_t i = 0; ok && i < h->vl; i++) {
        char ch = c->head[h->vo + i];
        ok = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
    }
    if (ok) TG_EVENT_SET(&c->req.ev, request_id, c->head + h->vo, h->vl);
}

/* Transfer-Encoding, when present, must be exactly "chunked" (one line, one coding): the
 * parser frames by a final chunked and drops what precedes it ("gzip, chunked"), which
 * would forward a body whose coding nobody applied. 400, like any coding but chunked. */
static int te_is_chunked(const tg_conn_t *c, const http_parser *p)
{
    int n = 0;
    for (size_t i = 0; i < c->nhdrs; i++) {
        const hdr_t *h = &c->hdrs[i];
        if (!NAME_IS(c, h, "transfer-encoding")) continue;
        const char *v = c->head + h->vo;
        size_t b = 0, e = h->vl;
        while (b < e && (v[b] == ' ' || v[b] == '\t'))
            b++;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (++n > 1 || !IS_LIT(v + b, e - b, "chunked")) return 0;
    }
    return n == 0 || (p->flags & F_CHUNKED);
}

/* The request-target made canonical (target.h) into c->head past the head: from here
 * on url_off/url_len name it (it is what is forwarded), match_off/match_len its path as
 * routes and endpoint detection see it. A target that cannot be served sets c->req.refuse.
 * (c->head keeps its capacity across requests: no allocation in the steady state.) */
static void canon_target(tg_conn_t *c)
{
    size_t n = c->req.url_len;
    if (grow(&c->head, &c->head_cap, c->head_len + 2 * n + 2) != 0) {
        c->req.refuse = "out of memory";
        return;
    }
    char *out = c->head + c->head_len;
    tg_target_norm_t r;
    if (tg_target_normalize(c->head + c->req.url_off, n, out, &r) != 0) {
        c->req.refuse = r.error;
        return;
    }
    size_t len = tg_target_strip_tollgate_keys(out, r.len);
    c->req.match_len = (uint32_t)tg_target_match_path(out, r.path_len, out + len);
    c->req.url_off = (uint32_t)c->head_len;
    c->req.url_len = (uint32_t)len;
    c->req.match_off = (uint32_t)(c->head_len + len);
    c->head_len += len + c->req.match_len;
}

/* ---- the request's phases (request.h) --------------------------------- */

/* AUTH: the presented key. */
static tg_phase_res_t ph_auth(tg_req_t *r)
{
    tg_conn_t *c = r->conn;
    const char *secret;
    size_t slen;
    credential(c, &secret, &slen);
    char tenant[sizeof r->ev.tenant], key_id[sizeof r->ev.key_id];
    tg_auth_result_t ar =
        tg_keyring_check_cached(c->w->srv->keys, &c->keycache, secret, slen, tenant, key_id);
    if (ar != TG_AUTH_MISSING && ar != TG_AUTH_UNKNOWN) {
        TG_EVENT_SET(&r->ev, tenant, tenant, strlen(tenant));
        TG_EVENT_SET(&r->ev, key_id, key_id, strlen(key_id));
    }
    if (ar == TG_AUTH_OK) return TG_PHASE_RES(TG_PHASE_NEXT);
    static const char *const msgs[] = {
        [TG_AUTH_MISSING] = "missing API key (Authorization: Bearer KEY or x-api-key)",
        [TG_AUTH_UNKNOWN] = "invalid API key",
        [TG_AUTH_REVOKED] = "API key revoked",
        [TG_AUTH_DISABLED] = "tenant disabled",
    };
    return TG_PHASE_REFUSE(401, "unauthorized", msgs[ar], tg_auth_result_reason(ar));
}

/* ROUTE: the route, what it accepts, and on AI/MCP routes the exchange begun. */
static tg_phase_res_t ph_route(tg_req_t *r)
{
    tg_conn_t *c = r->conn;
    const char *mpath = c->head + r->match_off;
    size_t plen = r->match_len;
    r->route = tg_config_route(r->cfg, mpath, plen);
    if (!r->route) return TG_PHASE_REFUSE(404, "not_found", "no route for this path", "no_route");
    TG_EVENT_SET(&r->ev, route, r->route->name, strlen(r->route->name));
    if (r->content_length > r->body_limit)
        return TG_PHASE_REFUSE(413, "payload_too_large",
                               "request body is larger than server.max_body", "body_too_large");
    for (size_t i = 0; r->route->kind != TG_ROUTE_HTTP && i < c->nhdrs; i++)
        if (NAME_IS(c, &c->hdrs[i], "content-encoding") &&
            tg_xchg_request_coded(c->head + c->hdrs[i].vo, c->hdrs[i].vl))
            return TG_PHASE_REFUSE(
                415, "unsupported_media_type",
                "a compressed request body (Content-Encoding) is not accepted here",
                "content_encoding"); /* (see tg_xchg_request_coded) */
    if (r->route->kind == TG_ROUTE_HTTP) return TG_PHASE_RES(TG_PHASE_NEXT);
    if (!c->xchg && !(c->xchg = tg_xchg_new()))
        return TG_PHASE_REFUSE(503, "unavailable", "out of memory", "out_of_memory");
    /* The endpoint is the path as forwarded, not as routes match it: a path the
     * upstream may read as another endpoint ("/v1/chat/completions/", ";a=b",
     * "%2F..%2Fmoderations") is one tollgate does not recognise, metered from its
     * answer's usage or on an estimate; never free, never unmetered. */
    const char *fpath = c->head + r->url_off;
    const char *q = memchr(fpath, '?', r->url_len);
    size_t flen = q ? (size_t)(q - fpath) : r->url_len;
    tg_xchg_begin(c->xchg, r->route->kind, fpath, flen);
    tg_xchg_set_max_body(c->xchg, r->body_limit);
    tg_xchg_set_decoded_max(c->xchg, r->cfg->server.max_decoded_body);
    r->metered = 1;
    if (tg_xchg_offside(r->route->kind, fpath, flen, r->has_body) ||
        tg_xchg_offside(r->route->kind, mpath, plen, r->has_body))
        /* A credential for the upstream or work billed later: nothing tollgate could
         * meter or hold to the tenant's limits (exchange.h). */
        return TG_PHASE_REFUSE(403, "endpoint_not_metered",
                               "this endpoint spends outside the request and cannot be "
                               "metered on this route",
                               "endpoint_not_metered");
    /* The body says what is asked (model, tokens, tools): admission waits for
     * all of it (at most server.max_body), see ph_body. */
    r->hold_body = r->has_body;
    return TG_PHASE_RES(TG_PHASE_NEXT);
}

/* Expect: 100-continue from an HTTP/1.1 client, once the request is accepted (or is to
 * be decided on its body): the client may send its body now (the upstream never sees the
 * Expect; its own 100 is swallowed). */
static void expect_continue(tg_conn_t *c)
{
    const hdr_t *ex = FIND_HDR(c, "expect");
    if (ex && IS_LIT(c->head + ex->vo, ex->vl, "100-continue") && c->parser.http_minor >= 1) {
        uv_buf_t cont = uv_buf_init(LIT("HTTP/1.1 100 Continue\r\n\r\n"));
        conn_write(c, &cont, 1);
    }
}

/* BODY: an AI/MCP body is read whole before admission (WAIT until on_message_complete),
 * then read by the exchange, which may rewrite it; MCP bodies are checked and their
 * tools held to the tool rules. Other requests stream their body during FORWARD. */
static tg_phase_res_t ph_body(tg_req_t *r)
{
    tg_conn_t *c = r->conn;
    if (!r->hold_body) return TG_PHASE_RES(TG_PHASE_NEXT);
    if (!r->msg_done) {
        /* A held body has no upstream to time it: a client that stops sending it gets 408
         * after server.header_timeout without progress (re-armed by on_body), or once
         * server.body_timeout has passed since the head. */
        r->body_deadline_us = tg_mono_us() + (int64_t)r->cfg->server.body_timeout_ms * 1000;
        arm_body_timer(c);
        expect_continue(c);
        return TG_PHASE_RES(TG_PHASE_WAIT);
    }
    const char *nb;
    size_t nl;
    tg_xchg_request(c->xchg, c->body ? c->body : "", c->body_len, &nb, &nl);
    if (nb) {
        if (grow(&c->body, &c->body_cap, nl) != 0)
            return TG_PHASE_REFUSE(503, "unavailable", "out of memory", "out_of_memory");
        memcpy(c->body, nb, nl);
        c->body_len = nl;
    }
    c->body_off = 0;
    r->content_length = (int64_t)c->body_len;
    r->has_body = c->body_len > 0;
    const char *model = tg_xchg_model(c->xchg);
    if (model[0]) TG_EVENT_SET(&r->ev, model, model, strlen(model));
    if (r->route->kind == TG_ROUTE_MCP && tg_xchg_request_unreadable(c->xchg)) {
        /* Tool rules, tool limits and prices need the calls: a body tollgate cannot read
         * is refused, never forwarded unchecked. */
        static const char perr[] =
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":"
            "\"Parse error: the request body is not JSON tollgate can read\"}}\n";
        reject_json(c, 400, perr, sizeof perr - 1, "malformed_request");
        return TG_PHASE_RES(TG_PHASE_DONE);
    }
    const char *invalid = tg_xchg_mcp_invalid(c->xchg);
    if (r->route->kind == TG_ROUTE_MCP && invalid) {
        /* JSON-RPC "Invalid Request", encoded by jansson (the message is ours). */
        char body[512];
        json_t *o = json_pack("{s:s,s:n,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", "error", "code",
                              -32600, "message", invalid);
        size_t bl = o ? json_dumpb(o, body, sizeof body - 1, JSON_COMPACT) : 0;
        json_decref(o);
        if (bl == 0 || bl >= sizeof body - 1)
            return TG_PHASE_REFUSE(400, "invalid_request", invalid, "malformed_request");
        body[bl++] = '\n';
        reject_json(c, 400, body, bl, "malformed_request");
        return TG_PHASE_RES(TG_PHASE_DONE);
    }
    if (tg_xchg_unknown_endpoint(c->xchg)) EV_SET(&r->ev, reason, "endpoint_unknown");
    size_t ntools = tg_xchg_ntools(c->xchg);
    if (ntools > MAX_BATCH_TOOLS) {
        static const char many[] =
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
            "\"Invalid request: more than 64 tools/call in one batch\"}}\n";
        reject_json(c, 400, many, sizeof many - 1, "malformed_request");
        return TG_PHASE_RES(TG_PHASE_DONE);
    }
    for (size_t i = 0; i < ntools; i++) {
        const char *tool = tg_xchg_tool(c->xchg, i);
        if (i == 0) TG_EVENT_SET(&r->ev, tool, tool, strlen(tool));
        if (tg_policy_tool_allowed(c->w->srv->policy, r->ev.tenant, tool)) continue;
        char msg[256], body[4096];
        snprintf(msg, sizeof msg, "tool \"%.128s\" is not allowed for this tenant", tool);
        size_t bl = tg_xchg_mcp_error(c->xchg, msg, body, sizeof body - 1);
        if (bl == 0) {
            reject(c, 403, "forbidden", msg, "tool_denied");
            return TG_PHASE_RES(TG_PHASE_DONE);
        }
        body[bl++] = '\n';
        reject_json(c, 403, body, bl, "tool_denied");
        return TG_PHASE_RES(TG_PHASE_DONE);
    }
    return TG_PHASE_RES(TG_PHASE_NEXT);
}

/* ADMIT: the client's address, then billing's admission (bill.h). */
static tg_phase_res_t ph_admit(tg_req_t *r)
{
    tg_conn_t *c = r->conn;
    tg_ip_t client = c->peer;
    if (r->cfg->trusted_proxies.n) {
        /* Every X-Forwarded-For line, joined in order: a proxy that adds its
         * own line must not leave the client's first line to be believed. No line is
         * skipped for its length (a long one used to be, and with it the client's
         * address): the lines are bounded by the head's cap (431 past it), and the
         * scratch buffer, reused by start_upstream, keeps its capacity. */
        size_t need = 0, xl = 0;
        for (size_t i = 0; i < c->nhdrs; i++)
            if (NAME_IS(c, &c->hdrs[i], "x-forwarded-for")) need += c->hdrs[i].vl + 1;
        if (need && grow(&c->scratch, &c->scratch_cap, need) != 0)
            return TG_PHASE_REFUSE(503, "unavailable", "out of memory", "out_of_memory");
        char *xff = c->scratch;
        for (size_t i = 0; i < c->nhdrs; i++) {
            const hdr_t *h = &c->hdrs[i];
            if (!NAME_IS(c, h, "x-forwarded-for")) continue;
            if (xl) xff[xl++] = ',';
            memcpy(xff + xl, c->head + h->vo, h->vl);
            xl += h->vl;
        }
        tg_ip_client(&c->peer, xl ? xff : NULL, xl, &r->cfg->trusted_proxies, &client);
        if (memcmp(&client, &c->peer, sizeof client) != 0) {
            /* (The peer's printable form is already in the event.) */
            char ip[48];
            tg_ip_format(&client, ip, sizeof ip);
            TG_EVENT_SET(&r->ev, client_ip, ip, strlen(ip));
        }
    }
    tg_bill_ask_t ask;
    tg_bill_ask_from(&ask, c->xchg, r->metered, r->hold_body, r->route->kind, r->route->name,
                     r->ev.bytes_in, (int64_t)c->body_len, (int64_t)r->cfg->max_output_tokens);
    tg_bill_env_t env = {c->w->srv->policy, c->w->srv->prices};
    tg_bill_refusal_t no;
    if (tg_bill_admit(&env, &ask, &r->ev, &client, (uint64_t)tg_mono_us() * 1000, &r->adm, &no) ==
        0)
        return TG_PHASE_RES(TG_PHASE_NEXT);
    return TG_PHASE_REFUSE(no.status, no.type, no.message, no.reason);
}

/* FORWARD: the upstream request starts; the answer comes back through the handler. */
static tg_phase_res_t ph_forward(tg_req_t *r)
{
    tg_conn_t *c = r->conn;
    if (!r->hold_body) expect_continue(c); /* (a held body's was sent by ph_body) */
    start_upstream(c);                     /* (it answers 502 itself when it cannot) */
    return TG_PHASE_RES(TG_PHASE_DONE);
}

typedef tg_phase_res_t (*phase_fn)(tg_req_t *r);

static const phase_fn phases[] = {
    [TG_PHASE_AUTH] = ph_auth,   [TG_PHASE_ROUTE] = ph_route,     [TG_PHASE_BODY] = ph_body,
    [TG_PHASE_ADMIT] = ph_admit, [TG_PHASE_FORWARD] = ph_forward,
};

/* Runs the request's phases from r->phase on, until one answers, hands the request to
 * the upstream, or waits (then whatever it waits for calls this again, from that phase).
 * Once it stops for good the request is in the answer's phases (METER, then SETTLE and
 * RECORD in record()). */
static void run_phases(tg_req_t *r)
{
    while (r->phase <= TG_PHASE_FORWARD) {
        tg_phase_res_t res = phases[r->phase](r);
        switch (res.rc) {
        case TG_PHASE_NEXT: r->phase = (tg_phase_t)(r->phase + 1); continue;
        case TG_PHASE_WAIT: return;
        case TG_PHASE_ANSWER:
            reject(r->conn, res.status, res.type, res.message, res.reason);
            r->phase = TG_PHASE_METER;
            return;
        case TG_PHASE_DONE: r->phase = TG_PHASE_METER; return;
        }
    }
}

static int on_headers_complete(http_parser *p)
{
    tg_conn_t *c = p->data;
    uv_timer_stop(&c->timer);
    /* Heads we will not serve: parse() answers 400 and closes. */
    if (p->http_major != 1) c->req.refuse = "only HTTP/1.0 and HTTP/1.1 are supported";
    if (p->method == HTTP_CONNECT) c->req.refuse = "CONNECT is not supported";
    if (!te_is_chunked(c, p)) c->req.refuse = "unsupported Transfer-Encoding (only chunked)";
    if (!c->req.refuse) canon_target(c);
    if (c->req.refuse) {
        /* The 400's event shows the target as sent (credentials redacted still). */
        tg_target_redact(c->head + c->req.url_off, c->req.url_len, c->req.ev.path,
                         sizeof c->req.ev.path);
        return -1;
    }
    c->req.headers_done = 1;
    c->req.cfg = tg_config_ref(c->w->cfg);
    const char *method = http_method_str((enum http_method)p->method);
    TG_EVENT_SET(&c->req.ev, method, method, strlen(method));
    const char *url = c->head + c->req.url_off;
    /* Events and access logs never hold a credential passed in the query. */
    tg_target_redact(url, c->req.url_len, c->req.ev.path, sizeof c->req.ev.path);
    set_request_id(c);
    c->req.keep_alive = http_should_keep_alive(p) && !c->w->draining;
    c->req.content_length = (p->flags & F_CONTENTLENGTH) ? (int64_t)p->content_length : -1;
    c->req.has_body = (p->flags & F_CHUNKED) || c->req.content_length > 0;
    c->req.body_limit = (int64_t)c->req.cfg->server.max_body;
    /* An Upgrade (h2c, websocket) is ignored, as RFC 9110 allows: the request
     * is served as HTTP/1.1 and the connection closed after it, since the
     * parser stops at an upgrade. */
    if (p->upgrade) c->req.keep_alive = 0;

    /* The connection's part is done: the request walks its phases (request.h). */
    c->req.phase = TG_PHASE_AUTH;
    run_phases(&c->req);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    tg_conn_t *c = p->data;
    c->req.ev.bytes_in += (int64_t)n;
    if (c->req.discard) {
        if (!c->req.msg_done && c->req.resp_done && !c->req.up) arm_body_timer(c);
        return 0;
    }
    if (c->req.ev.bytes_in > c->req.body_limit) {
        /* A chunked body grew past the limit while streaming. */
        if (c->req.up) {
            tg_proxy_abort(c->req.up);
            c->req.up = NULL;
        }
        if (!c->req.head_sent) {
            c->req.keep_alive = 0;
            reject(c, 413, "payload_too_large", "request body is larger than server.max_body",
                   "body_too_large");
        } else {
            c->write_failed = 1;
            c->req.resp_done = 1;
        }
        c->req.msg_done = 1;
        c->req.discard = 1;
        return 0;
    }
    if (!c->req.up && !c->req.hold_body) return 0; /* answered already; nothing to forward to */
    if (grow(&c->body, &c->body_cap, c->body_len + n) != 0) return -1;
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    /* (A held body is bounded by body_limit instead: nothing drains it yet.) */
    if (!c->req.hold_body && c->body_len - c->body_off > BODY_HIGH) c->body_paused = 1;
    if (c->req.hold_body && !c->req.up) arm_body_timer(c);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    tg_conn_t *c = p->data;
    int answered = c->req.discard || c->req.resp_done;
    if (c->req.hold_body && !answered) uv_timer_stop(&c->timer);
    c->req.msg_done = 1;
    c->req.discard = 0;
    http_parser_pause(p, 1);
    /* The held body is whole: the phases go on from BODY, where they waited. */
    if (c->req.hold_body && !answered && !c->req.up) run_phases(&c->req);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the upstream side ------------------------------------------------ */

static int in_names(const char *n, size_t l, const tg_lit_t *names, size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (names[i].n == l && strncasecmp(n, names[i].s, l) == 0) return 1;
    return 0;
}

static int hop_by_hop(const char *n, size_t l)
{
    static const tg_lit_t names[] = {
        TG_LIT_INIT("connection"),       TG_LIT_INIT("keep-alive"),
        TG_LIT_INIT("proxy-connection"), TG_LIT_INIT("te"),
        TG_LIT_INIT("trailer"),          TG_LIT_INIT("transfer-encoding"),
        TG_LIT_INIT("upgrade"),          TG_LIT_INIT("proxy-authorization")};
    return in_names(n, l, names, sizeof names / sizeof names[0]);
}

/* Request headers the upstream must not get from the client: hop-by-hop,
 * ones we set ourselves, and the tenant's credential. */
static int drop_request_header(const tg_conn_t *c, const hdr_t *h, int conn_names)
{
    const char *n = c->head + h->no;
    if (hop_by_hop(n, h->nl)) return 1;
    static const tg_lit_t names[] = {TG_LIT_INIT("host"),          TG_LIT_INIT("content-length"),
                                     TG_LIT_INIT("authorization"), TG_LIT_INIT("x-api-key"),
                                     TG_LIT_INIT("x-request-id"),  TG_LIT_INIT("x-forwarded-for"),
                                     TG_LIT_INIT("expect")};
    if (in_names(n, h->nl, names, sizeof names / sizeof names[0])) return 1;
    if (h->nl >= LEN("x-tollgate-") && HAS_PREFIX(n, "x-tollgate-")) return 1;
    /* Headers the Connection header names are hop-by-hop too (RFC 9110 §7.6.1). */
    for (size_t i = 0; conn_names && i < c->nhdrs; i++)
        if (NAME_IS(c, &c->hdrs[i], "connection") &&
            in_token_list(c->head + c->hdrs[i].vo, c->hdrs[i].vl, n, h->nl))
            return 1;
    const tg_upstream_conf_t *u = c->req.route->up;
    for (size_t i = 0; i < u->nheaders; i++)
        if (name_is(c, h, u->headers[i].name)) return 1; /* the config's value wins */
    return 0;
}

/* Keeps the names an upstream's Connection header lists, to strip those headers once
 * the head is whole (a named header may come before the Connection line). "close" and
 * "keep-alive" name no header and are skipped, so the common case keeps nothing. A list
 * longer than up_conn is a head tollgate will not relay: 502. */
static void note_up_connection(tg_conn_t *c, const char *v, size_t vl)
{
    size_t i = 0;
    while (i < vl) {
        while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t b = i;
        while (i < vl && v[i] != ',')
            i++;
        size_t e = i;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        size_t n = e - b;
        if (n == 0 || IS_LIT(v + b, n, "close") || IS_LIT(v + b, n, "keep-alive")) continue;
        if (c->req.up_conn_len + n + 1 > sizeof c->up_conn) {
            c->req.up_bad = 1;
            return;
        }
        if (c->req.up_conn_len) c->up_conn[c->req.up_conn_len++] = ',';
        memcpy(c->up_conn + c->req.up_conn_len, v + b, n);
        c->req.up_conn_len += n;
    }
}

/* Removes from c->out the header lines the upstream's Connection header named. Framing
 * stays tollgate's: a named Content-Length is not removed (Transfer-Encoding and
 * Connection never reach c->out). */
static void strip_up_connection(tg_conn_t *c)
{
    size_t off = 0;
    while (off < c->out_len) {
        const char *line = c->out + off;
        const char *end = memchr(line, '\n', c->out_len - off);
        size_t ll = end ? (size_t)(end - line) + 1 : c->out_len - off;
        const char *colon = memchr(line, ':', ll);
        size_t nl = colon ? (size_t)(colon - line) : 0;
        int named = nl && in_token_list(c->up_conn, c->req.up_conn_len, line, nl) &&
                    !IS_LIT(line, nl, "content-length");
        if (!named) {
            off += ll;
            continue;
        }
        memmove(c->out + off, c->out + off + ll, c->out_len - off - ll);
        c->out_len -= ll;
        if (c->req.cl_len && c->req.cl_off > off) c->req.cl_off -= ll;
        if (c->req.ctype_len && c->req.ctype_off > off && c->req.ctype_off < off + ll)
            c->req.ctype_len = 0; /* the Content-Type line itself */
        else if (c->req.ctype_len && c->req.ctype_off > off)
            c->req.ctype_off -= (uint32_t)ll;
    }
}

static void on_up_header(void *ud, const char *name, size_t nl, const char *value, size_t vl)
{
    tg_conn_t *c = ud;
    if (c->req.up_bad) return;
    if (IS_LIT(name, nl, "transfer-encoding")) c->req.resp_te = 1;
    if (IS_LIT(name, nl, "connection")) {
        note_up_connection(c, value, vl);
        return;
    }
    if (c->req.metered && IS_LIT(name, nl, "content-encoding"))
        tg_xchg_response_coding(c->xchg, value, vl); /* (forwarded as it is, below) */
    if (hop_by_hop(name, nl)) return;
    if (IS_LIT(name, nl, "x-request-id")) return;
    size_t line = nl + vl + LEN(": \r\n");
    /* A head over the cap is refused whole (502), never cut: a dropped line must not
     * leave offsets (Content-Length, Content-Type) pointing past what was kept. */
    if (c->out_len + line > UP_HEAD_MAX || grow(&c->out, &c->out_cap, c->out_len + line) != 0) {
        c->req.up_bad = 1;
        return;
    }
    if (IS_LIT(name, nl, "content-length")) {
        if (c->req.resp_has_cl) return; /* a repeated length: the first one frames */
        c->req.resp_has_cl = 1;
        c->req.cl_off = c->out_len;
        c->req.cl_len = line;
    }
    if (IS_LIT(name, nl, "content-type")) {
        c->req.ctype_off = (uint32_t)(c->out_len + nl + LEN(": "));
        c->req.ctype_len = (uint32_t)vl;
    }
    char *o = tg_put(c->out + c->out_len, name, nl);
    o = tg_put(tg_put(tg_put(o, LIT(": ")), value, vl), LIT("\r\n"));
    c->out_len = (size_t)(o - c->out);
}

static void on_up_head_done(void *ud, int status, const char *reason, size_t rlen)
{
    tg_conn_t *c = ud;
    /* RFC 9110 §15: a status is three digits, 1xx to 5xx. http_parser takes 0 to 999, and
     * relaying "0" (bodiless here, as under 200) with its Content-Length would leave the
     * client waiting for a body that never comes and then reading the next answer as it
     * (found by fuzz_upstream). */
    if (!c->req.up_bad && (status < 100 || status > 599)) c->req.up_bad = 2;
    if (c->req.up_bad) {
        /* Nothing is built or sent: on_up_body aborts the transfer and on_up_done
         * answers 502 (the client never sees a part of this head). */
        c->req.ev.status = 502;
        return;
    }
    if (c->req.up_conn_len) strip_up_connection(c);
    c->req.ev.status = status;
    int bodiless = status < 200 || status == 204 || status == 304 || c->parser.method == HTTP_HEAD;
    if (c->req.metered && !bodiless) {
        /* (A response without a body carries no usage: it is not observed.) */
        tg_xchg_response_head(c->xchg, status, c->req.ctype_len ? c->out + c->req.ctype_off : NULL,
                              c->req.ctype_len);
        /* A rewritten stream changes length: it is re-framed like the case below. */
        if (tg_xchg_rewrites(c->xchg) && c->req.resp_has_cl && c->req.cl_len) c->req.resp_te = 1;
    }
    if (c->req.resp_te && c->req.resp_has_cl && c->req.cl_len) {
        /* Both framings: Transfer-Encoding wins (the body arrives decoded),
         * so the length must not reach the client; it is re-framed. */
        memmove(c->out + c->req.cl_off, c->out + c->req.cl_off + c->req.cl_len,
                c->out_len - c->req.cl_off - c->req.cl_len);
        c->out_len -= c->req.cl_len;
        c->req.resp_has_cl = 0;
    }
    int head = strcmp(c->req.ev.method, "HEAD") == 0;
    c->req.no_body_out = head || status == 204 || status == 304 || status < 200;
    if (c->w->draining) c->req.keep_alive = 0;
    if (!c->req.no_body_out && !c->req.resp_has_cl) {
        if (c->parser.http_major == 1 && c->parser.http_minor >= 1)
            c->req.chunked_out = 1;
        else
            c->req.keep_alive = 0; /* HTTP/1.0 client: the close delimits the body */
    }
    if (!rlen) {
        reason = status_text(status);
        rlen = strlen(reason);
    }
    /* The parser lets a NUL through in a reason phrase: the line ends before it, as the
     * "%.*s" that used to print it did (never a NUL in the client's head). */
    rlen = strnlen(reason, rlen);
    char rl[512];
    rate_headers(c, rl, sizeof rl);
    const char *te = c->req.chunked_out ? "Transfer-Encoding: chunked\r\n" : "";
    const char *cn = !c->req.keep_alive          ? "Connection: close\r\n"
                     : c->parser.http_minor == 0 ? "Connection: keep-alive\r\n"
                                                 : "";
    /* Copied piece by piece, not printed: this runs for every proxied answer (two
     * snprintf calls were 2,500 instructions a request). rlen <= 64 (h1.c, proxy.c). */
    size_t need = sizeof "HTTP/1.1  \r\n" + 20 + rlen + c->out_len + sizeof "x-request-id: \r\n" +
                  strlen(c->req.ev.request_id) + strlen(rl) + strlen(te) + strlen(cn) + 2;
    c->rhead_len = 0;
    if (grow(&c->rhead, &c->rhead_cap, need) != 0) {
        c->write_failed = 1;
        return;
    }
    char *w = tg_putu(tg_puts(c->rhead, "HTTP/1.1 "), (unsigned)status);
    w = tg_puts(tg_put(tg_puts(w, " "), reason, rlen), "\r\n");
    /* (An answer with no header line kept has no c->out yet: memcpy from NULL is undefined
     * even for 0 bytes.) */
    if (c->out_len) w = tg_put(w, c->out, c->out_len);
    w = tg_puts(tg_puts(tg_puts(w, "x-request-id: "), c->req.ev.request_id), "\r\n");
    w = tg_puts(tg_puts(tg_puts(tg_puts(w, rl), te), cn), "\r\n");
    c->rhead_len = (size_t)(w - c->rhead);
    c->req.head_pending = 1;
    c->req.head_sent = 1;
}

/* Writes bufs behind the held response head, if any, in one write. */
static int write_with_head(tg_conn_t *c, uv_buf_t *bufs, unsigned n)
{
    uv_buf_t all[5];
    unsigned k = 0;
    if (c->req.head_pending) {
        all[k++] = uv_buf_init(c->rhead, (unsigned)c->rhead_len);
        c->req.head_pending = 0;
    }
    for (unsigned i = 0; i < n && k < 5; i++)
        all[k++] = bufs[i];
    return k ? conn_write(c, all, k) : 0;
}

static void on_up_flush(void *ud)
{
    tg_conn_t *c = ud;
    if (c->req.head_pending) write_with_head(c, NULL, 0);
}

/* Response body bytes to the client, framed. */
static int send_body(void *ud, const char *p, size_t n)
{
    tg_conn_t *c = ud;
    int rc;
    if (c->req.chunked_out) {
        char pre[24]; /* the chunk size in hex, as "%zx\r\n" without printf (every chunk) */
        int pl = 0;
        for (int sh = (int)(sizeof n * 8) - 4; sh >= 0; sh -= 4)
            if (pl || (n >> sh) & 15 || sh == 0) pre[pl++] = "0123456789abcdef"[(n >> sh) & 15];
        pre[pl++] = '\r';
        pre[pl++] = '\n';
        uv_buf_t bufs[3] = {uv_buf_init(pre, (unsigned)pl), uv_buf_init((char *)p, (unsigned)n),
                            uv_buf_init(LIT("\r\n"))};
        rc = write_with_head(c, bufs, 3);
    } else {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        rc = write_with_head(c, &b, 1);
    }
    if (rc != 0) return start_drain(c) ? 0 : -1;
    c->req.ev.bytes_out += (int64_t)n;
    return 0;
}

static int on_up_body(void *ud, const char *p, size_t n)
{
    tg_conn_t *c = ud;
    if ((c->write_failed && !c->req.drain) || c->closing || c->req.up_bad) return -1;
    if (n == 0 || c->req.no_body_out) return 0;
    int rc =
        c->req.metered ? tg_xchg_response_body(c->xchg, p, n, send_body, c) : send_body(c, p, n);
    if (rc != 0) return -1;
    if (c->req.drain) return 0; /* read for its usage only: nothing waits on the client */
    /* Taken; ask for a pause while the client lags this far behind (and time
     * the client's progress meanwhile: the upstream is not to blame). */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= OUT_HIGH) return 0;
    c->timer_q = 0;
    arm_timer(c, c->w->cfg->server.idle_timeout_ms);
    return 1;
}

static size_t on_up_read(void *ud, char *buf, size_t cap)
{
    tg_conn_t *c = ud;
    size_t avail = c->body_len - c->body_off;
    if (avail == 0) return c->req.msg_done ? 0 : TG_PROXY_PAUSE;
    size_t k = avail < cap ? avail : cap;
    memcpy(buf, c->body + c->body_off, k);
    c->body_off += k;
    c->req.body_pulled += (int64_t)k;
    if (c->body_off == c->body_len) c->body_off = c->body_len = 0;
    if (c->body_paused && c->body_len - c->body_off < BODY_LOW) {
        c->body_paused = 0;
        update_reading(c);
    }
    return k;
}

static void on_up_done(void *ud, tg_proxy_result_t r, const char *detail)
{
    tg_conn_t *c = ud;
    c->req.up = NULL;
    if (c->req.up_bad) {
        r = TG_PROXY_ERROR; /* even a bodiless answer ended "OK": its head was refused */
        detail = c->req.up_bad == 2
                     ? "response status outside 100-599"
                     : "response head over 64 KiB (or a Connection list over 255 bytes)";
    }
    tg_upstream_conf_t *u = c->req.route->up;
    int64_t now = tg_mono_us();
    /* A timeout while the client's own body is still coming is the client's
     * slowness, not the upstream's: 408, and the target's health is spared. */
    int client_slow = r == TG_PROXY_TIMEOUT && !c->req.msg_done && !c->req.head_sent;
    int answered = r == TG_PROXY_OK || c->req.head_sent;
    if (!client_slow) tg_upstream_report(u, c->req.target, answered, now);
    if (r == TG_PROXY_CONNECT && !c->req.head_sent && c->req.body_pulled == 0 &&
        c->req.attempts < (int)u->ntargets && !c->w->draining) {
        /* Nothing reached the upstream: another target may take it. The body
         * buffer still holds every byte read, since none was pulled. */
        TG_DEBUG("%s: %s; trying the next target", c->req.target->url, detail);
        start_upstream(c);
        if (c->req.up) return;
    }
    after_early_response(c); /* before any head is built: it may set keep_alive = 0 */
    if (r == TG_PROXY_OK) {
        if (c->req.metered && !c->req.no_body_out) tg_xchg_response_end(c->xchg, send_body, c);
        uv_buf_t end = uv_buf_init(LIT("0\r\n\r\n"));
        write_with_head(c, &end, c->req.chunked_out ? 1 : 0);
    } else if (client_slow) {
        c->req.keep_alive = 0;
        c->req.msg_done = 1;
        c->req.ev.outcome = TG_OUTCOME_REJECTED;
        EV_SET(&c->req.ev, reason, "body_timeout");
        send_error(c, 408, "request_timeout", "request body not received in time");
    } else if (!c->req.head_sent || c->req.head_pending) {
        /* Nothing reached the client yet: it gets an error instead. */
        c->req.head_pending = 0;
        c->req.head_sent = 0;
        TG_WARN("upstream %s (%s): %s", u->name, c->req.target->url, detail);
        if (c->req.up_bad) {
            EV_SET(&c->req.ev, reason, "upstream_bad_response");
            send_error(c, 502, "bad_gateway",
                       c->req.up_bad == 2 ? "the upstream's response status is invalid"
                                          : "the upstream's response head is too large");
        } else if (r == TG_PROXY_TIMEOUT) {
            EV_SET(&c->req.ev, reason, "upstream_timeout");
            send_error(c, 504, "gateway_timeout", "the upstream did not answer in time");
        } else {
            EV_SET(&c->req.ev, reason, "upstream_unreachable");
            send_error(c, 502, "bad_gateway", "the upstream could not be reached");
        }
    } else if (!c->write_failed) {
        /* The response broke after it started: it cannot be completed. */
        TG_WARN("upstream %s (%s): response cut short: %s", u->name, c->req.target->url, detail);
        EV_SET(&c->req.ev, reason, "upstream_reset");
        c->write_failed = 1;
    }
    c->req.resp_done = 1;
    if (c->write_failed && !c->req.ev.reason[0]) EV_SET(&c->req.ev, reason, "client_closed");
    if (c->req.msg_done) {
        finish_request(c);
        return;
    }
    update_reading(c); /* the rest of the body is read and dropped */
}

static const tg_proxy_handler_t handler = {
    .on_header = on_up_header,
    .on_head_done = on_up_head_done,
    .on_body = on_up_body,
    .on_flush = on_up_flush,
    .read_body = on_up_read,
    .on_done = on_up_done,
};

static void start_upstream(tg_conn_t *c)
{
    tg_upstream_conf_t *u = c->req.route->up;
    c->req.target = tg_upstream_pick(u, tg_mono_us());
    c->req.attempts++;
    TG_EVENT_SET(&c->req.ev, upstream, c->req.target->url, strlen(c->req.target->url));

    size_t need = strlen(c->req.target->url) + c->req.url_len + c->head_len + c->nhdrs * 4 + 512;
    for (size_t i = 0; i < u->nheaders; i++)
        need += strlen(u->headers[i].name) + strlen(u->headers[i].value) + 4;
    for (size_t i = 0; i < c->nhdrs; i++) /* every X-Forwarded-For line, joined */
        if (NAME_IS(c, &c->hdrs[i], "x-forwarded-for")) need += c->hdrs[i].vl + 2;
    need += c->nhdrs * 8 + 32; /* Accept-Encoding may become "identity" (below) */
    if (grow(&c->scratch, &c->scratch_cap, need) != 0) {
        send_error(c, 502, "bad_gateway", "out of memory");
        return;
    }
    /* Does a Connection header name anything but close / keep-alive? (Usually not: then
     * no header is looked up in it.) */
    int conn_names = 0;
    for (size_t i = 0; i < c->nhdrs && !conn_names; i++) {
        const hdr_t *h = &c->hdrs[i];
        if (!NAME_IS(c, h, "connection")) continue;
        const char *v = c->head + h->vo;
        conn_names = !(IS_LIT(v, h->vl, "close") || IS_LIT(v, h->vl, "keep-alive"));
    }
    /* The URL, then one NUL-terminated "Name: value" string per header. */
    char *o = c->scratch;
    size_t nh = 0;
    const char *url = o;
    o = tg_puts(o, c->req.target->url);
    o = tg_put(o, c->head + c->req.url_off, c->req.url_len);
    *o++ = '\0';
    int ae = 0;
    for (size_t i = 0; i < c->nhdrs && nh < TG_PROXY_MAX_HEADERS - 8; i++) {
        const hdr_t *h = &c->hdrs[i];
        if (drop_request_header(c, h, conn_names)) continue;
        c->up_hdrs[nh++] = o;
        if (c->req.metered && NAME_IS(c, h, "accept-encoding")) {
            /* The meter must read the answer: only codings it decodes are asked for (see
             * meter/exchange.h); the answer still reaches the client as it comes. */
            o = tg_puts(o, "Accept-Encoding: ");
            o += tg_xchg_accept_encoding(c->xchg, c->head + h->vo, h->vl, o, h->vl + 8);
            *o++ = '\0';
            ae = 1;
            continue;
        }
        o = tg_put(o, c->head + h->no, h->nl);
        o = tg_put(o, LIT(": "));
        o = tg_put(o, c->head + h->vo, h->vl);
        *o++ = '\0';
    }
    for (size_t i = 0; i < u->nheaders; i++)
        if (strcasecmp(u->headers[i].name, "accept-encoding") == 0) ae = 1; /* the operator's */
    if (c->req.metered && !ae) {
        /* Without the header any coding is acceptable (RFC 9110 §12.5.3): ask for text. */
        c->up_hdrs[nh++] = o;
        o = tg_puts(o, "Accept-Encoding: identity");
        *o++ = '\0';
    }
    for (size_t i = 0; i < u->nheaders && nh < TG_PROXY_MAX_HEADERS - 3; i++) {
        c->up_hdrs[nh++] = o;
        o = tg_puts(o, u->headers[i].name);
        o = tg_put(o, LIT(": "));
        o = tg_puts(o, u->headers[i].value);
        *o++ = '\0';
    }
    c->up_hdrs[nh++] = o;
    o = tg_puts(tg_puts(o, "x-request-id: "), c->req.ev.request_id);
    *o++ = '\0';
    c->up_hdrs[nh++] = o;
    o = tg_puts(tg_puts(o, "x-tollgate-tenant: "), c->req.ev.tenant);
    *o++ = '\0';
    c->up_hdrs[nh++] = o;
    o = tg_puts(o, "X-Forwarded-For: ");
    for (size_t i = 0; i < c->nhdrs; i++) {
        const hdr_t *h = &c->hdrs[i];
        if (NAME_IS(c, h, "x-forwarded-for"))
            o = tg_put(tg_put(o, c->head + h->vo, h->vl), LIT(", "));
    }
    o = tg_puts(o, c->client_ip);
    *o++ = '\0';

    tg_proxy_spec_t spec = {
        .method = c->req.ev.method,
        .url = url,
        .headers = c->up_hdrs,
        .nheaders = nh,
        .has_body = c->req.has_body,
        .body_len = c->req.content_length,
        .connect_timeout_ms = u->connect_timeout_ms,
        .timeout_ms = u->timeout_ms,
        .idle_timeout_ms = u->idle_timeout_ms,
        .ca_file = u->ca_file,
    };
    c->req.up = tg_proxy_start(c->w->proxy, &spec, &handler, c);
    if (!c->req.up) {
        EV_SET(&c->req.ev, reason, "upstream_error");
        after_early_response(c);
        send_error(c, 502, "bad_gateway", "the upstream request could not be started");
    }
}

/* ---- connection lifecycle --------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    tg_conn_t *c = h->data;
    if (--c->open_handles > 0) return;
    tg_keycache_clear(&c->keycache);
    free(c->head);
    free(c->pend);
    free(c->body);
    free(c->scratch);
    free(c->out);
    free(c->rhead);
    tg_xchg_free(c->xchg);
    free(c);
}

static void conn_close(tg_conn_t *c)
{
    if (c->closing) return;
    if (c->req.up) {
        tg_proxy_abort(c->req.up);
        c->req.up = NULL;
        if (!c->req.ev.reason[0]) EV_SET(&c->req.ev, reason, "shutdown");
        if (!c->req.head_sent) c->req.ev.status = 503;
    }
    if (c->req.in_request && c->req.headers_done) {
        record(c);
        atomic_fetch_sub_explicit(&c->w->srv->inflight, 1, memory_order_relaxed);
    } else if (c->req.in_request) {
        atomic_fetch_sub_explicit(&c->w->srv->inflight, 1, memory_order_relaxed);
    }
    end_request_state(c);
    c->closing = 1;
    tg_worker_t *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->nconns--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (w->draining && w->nconns == 0) uv_async_send(&w->mailbox);
}

static void on_timer(uv_timer_t *t)
{
    tg_conn_t *c = t->data;
    if (c->req.drain) {
        /* ai.drain_after_disconnect passed before the upstream finished: the answer is
         * charged on an estimate (record). */
        if (c->req.up) {
            tg_proxy_abort(c->req.up);
            c->req.up = NULL;
        }
        if (!c->req.head_sent) c->req.ev.status = 499; /* no answer came: nothing to bill */
        c->req.msg_done = c->req.resp_done = 1;
        maybe_finish(c);
        if (!c->closing) conn_close(c);
        return;
    }
    /* A response still draining to a slow client gets more time as long as it
     * moves; a client that stopped reading altogether is cut off. */
    size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (q > 0 && q != c->timer_q) {
        c->timer_q = q;
        arm_timer(c, c->w->cfg->server.idle_timeout_ms);
        return;
    }
    c->timer_q = 0;
    if (c->lingering || !c->req.in_request) {
        conn_close(c); /* linger over, keep-alive idle, or a stalled close */
        return;
    }
    if (q > 0) {
        /* Mid-response and the client reads nothing: give up on it. An AI answer is still
         * read from the upstream for its usage (start_drain): a client that stops reading
         * pays what was served, as one that leaves does. */
        if (start_drain(c)) {
            EV_SET(&c->req.ev, reason, "client_stalled");
            return;
        }
        EV_SET(&c->req.ev, reason, "client_stalled");
        c->write_failed = 1;
        conn_close(c);
        return;
    }
    if (c->req.hold_body && !c->req.msg_done && !c->req.up && !c->req.resp_done) {
        /* A held (AI/MCP) body that stopped arriving. */
        c->req.keep_alive = 0;
        c->req.msg_done = 1;
        reject(c, 408, "request_timeout", "request body not received in time", "body_timeout");
        maybe_finish(c);
        return;
    }
    if (c->req.discard && !c->req.msg_done && !c->req.up) {
        /* The rest of an answered request's body stopped coming, or came too slowly:
         * the connection ends (the request was recorded with its answer's reason). */
        c->req.keep_alive = 0;
        c->req.msg_done = 1;
        maybe_finish(c);
        return;
    }
    if (!c->req.headers_done) {
        /* Slow or stalled head. */
        c->req.headers_done = 1;
        c->req.keep_alive = 0;
        c->req.msg_done = 1;
        c->req.ev.outcome = TG_OUTCOME_REJECTED;
        EV_SET(&c->req.ev, reason, "header_timeout");
        send_error(c, 408, "request_timeout", "request head not received in time");
        maybe_finish(c);
    }
}

void tg_conn_accept(tg_worker_t *w)
{
    tg_conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept((uv_stream_t *)&w->listener, (uv_stream_t *)&c->tcp) != 0) {
        c->open_handles = 1;
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    uv_timer_init(&w->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    strcpy(c->client_ip, "-");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0) {
        if (peer.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&peer, c->client_ip, sizeof c->client_ip);
        else
            uv_ip4_name((struct sockaddr_in *)&peer, c->client_ip, sizeof c->client_ip);
        tg_ip_parse(c->client_ip, strlen(c->client_ip), &c->peer);
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    c->req.keep_alive = 1;
    arm_timer(c, w->cfg->server.header_timeout_ms);
    set_reading(c, 1);
}

void tg_conn_drain_all(tg_worker_t *w)
{
    tg_conn_t *c = w->conns;
    while (c) {
        tg_conn_t *next = c->next;
        if (!c->req.in_request && !c->lingering)
            conn_close(c);
        else if (c->req.drain)
            arm_timer(c, 1); /* no client waits on it: ended (and charged) at once */
        c = next;
    }
}

void tg_conn_close_all(tg_worker_t *w)
{
    while (w->conns)
        conn_close(w->conns);
}
