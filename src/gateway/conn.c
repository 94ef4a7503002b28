/* Client connections: see conn.h.
 *
 * Life of a request: llhttp callbacks collect the head into c->head (request.h's
 * tg_req_head_t; capped: 431 past server.max_header_bytes, counted both as the bytes kept
 * and as the raw bytes of the head); at headers-complete (where the parser pauses, so parse()
 * knows the head's exact end) the
 * request (c->req, request.h) walks its phases (gateway/phases.h, run by tg_req_run:
 * authenticate, route, read a held body, admit, forward), each in its own module, which
 * see the head and the held body through c->cx and ask this file for what only the
 * connection does (answer, 100 Continue, the body timer, the upstream, a rewritten body:
 * the op_* callbacks); the request is handed to the upstream client (proxy.h), whose
 * callbacks below relay the answer and feed the exchange (METER). The body is copied into
 * c->body as it arrives and pulled by the upstream client; reading from the client stops
 * while more than BODY_HIGH bytes wait. Response bytes go to the socket with uv_try_write
 * and only the part the kernel did not take is copied; while more than OUT_HIGH bytes are
 * queued the upstream download is paused. A request ends when both its message was read
 * and its response was queued; then tg_req_end runs the answer's phases (METER's end,
 * SETTLE, RECORD: exactly one event to the recorder) and, on keep-alive, the parser
 * resumes on any pipelined bytes kept in c->pend. Every buffer here is a util/buf.h
 * tg_buf_t whose max is the limit it is held to.
 *
 * Callbacks from the upstream client never close the connection themselves
 * (curl forbids removing a transfer from inside its callbacks): a failed
 * write sets write_failed and the transfer is ended by curl, after which
 * on_done closes. */
#include "gateway/conn.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>

#include "config/credential.h"
#include "gateway/phases.h"
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

#define BODY_HIGH     (256 * 1024)  /* stop reading the client above this much unsent body */
#define BODY_LOW      (64 * 1024)   /* and read again below this */
#define OUT_HIGH      (1024 * 1024) /* pause the upstream above this much unsent response */
#define OUT_LOW       (256 * 1024)
#define PEND_MAX      (64 * 1024) /* pipelined bytes held while a request is in flight */
#define DISCARD_SMALL (64 * 1024) /* a rejected request's body up to this is read and dropped */
#define LINGER_MS     1000
#define UP_HEAD_MAX   65536 /* an upstream response head, as re-sent (more: 502) */
/* The response head built from it: the status line, the kept lines (UP_HEAD_MAX at most),
 * x-request-id, the rate-limit headers (under 512 bytes) and the framing lines. */
#define RHEAD_MAX (UP_HEAD_MAX + 4096)

/* String literals with their length counted by the compiler (util/buf.h's TG_LIT family). */
#define EV_SET(ev, field, lit) TG_EVENT_SET(ev, field, lit, TG_LIT_LEN(lit))
/* p[0..n) is lit, ASCII case ignored (header names, tokens). */
#define IS_LIT(p, n, lit) ((n) == TG_LIT_LEN(lit) && strncasecmp((p), TG_LIT(lit)) == 0)

struct tg_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* header timeout, keep-alive idle timeout, linger */
    uv_shutdown_t sreq;
    tg_worker_t *w;
    tg_conn_t *prev, *next;
    llhttp_t parser;
    int open_handles;

    /* Connection state. */
    int closing;   /* uv_close called */
    int lingering; /* response sent with close; draining the client's rest */
    int reading;   /* uv_read_start in effect */
    int driving;   /* inside drive(): finish_request must not recurse */
    int parsing;   /* inside parse(): its caller finishes what the parse answered */
    int resume;    /* drive() should unpause the parser and parse c->pend */
    int write_failed;
    int out_blocked;    /* over OUT_HIGH unsent between requests: nothing read until it drains */
    size_t timer_q;     /* write-queue size when the timer last fired (progress) */
    char client_ip[48]; /* the socket peer, printable */
    tg_ip_t peer;       /* the socket peer */
    tg_keycache_t keycache; /* the last key presented here and its hash (keyring.h) */

    /* The request being read or answered (request.h): one at a time, and what it borrows
     * from the connection (views of the buffers below, the callbacks, the exchange). */
    tg_req_t req;
    tg_req_ctx_t cx;

    /* Head of the current request (request.h; capped at server.max_header_bytes): the
     * buffers keep their capacity across requests. */
    tg_req_head_t head;
    int last_was_value;
    /* The head's raw size (request line, header lines, the blank line: what the limit is
     * on; llhttp has no limit of its own): hraw bytes of the current head counted before
     * hfrom, the start of the bytes being parsed. in_head from message-begin to the pause
     * at headers-complete (head_paused); trailer: a chunked body's trailer bytes. */
    size_t hraw, trailer;
    const char *hfrom;
    int in_head, head_paused;

    /* Pipelined input not parsed yet: reading stops at PEND_MAX, so at most one read
     * more (the worker's rbuf) is ever held. */
    tg_buf_t pend;

    /* Request body on its way to the upstream (capped at the request's body_limit,
     * server.max_body; body_off of it pulled). */
    tg_buf_t body;
    size_t body_off;
    int body_paused; /* client reads stopped for back-pressure */

    /* Upstream transfer. */
    const char *up_hdrs[TG_PROXY_MAX_HEADERS];
    tg_buf_t scratch;  /* URL and header lines handed to the upstream client (sized from
                          the head's capped parts: no cap of its own) */
    char up_conn[256]; /* names the upstream's Connection header lists (but close,
                          keep-alive); req.up_conn_len of it in use */

    /* Response head being collected from the upstream, then held until the
     * first body bytes (or the end of the read that brought it) so head and
     * body leave in one write. */
    tg_buf_t out;   /* the upstream's header lines kept (UP_HEAD_MAX: 502 past it) */
    tg_buf_t rhead; /* the response head built from them (RHEAD_MAX) */
};

static void drive(tg_conn_t *c);
static void arm_timer(tg_conn_t *c, long ms);
static void conn_close(tg_conn_t *c);
static void start_upstream(tg_conn_t *c);
static int start_drain(tg_conn_t *c);
static const llhttp_settings_t settings;

/* ---- small helpers ---------------------------------------------------- */

/* tg_buf_reserve with its common case inline: the room is there from the last request (the
 * memory never exceeds max + 1, so bytes that fit it fit the max too). */
static inline int room(tg_buf_t *b, size_t n)
{
    return b->p && n < b->cap - b->len ? TG_BUF_OK : tg_buf_reserve(b, n);
}

/* tg_buf_added after room(b, m), for n <= m bytes written at tg_buf_end(b) (so no check). */
static inline void added(tg_buf_t *b, size_t n)
{
    b->len += n;
    b->p[b->len] = '\0';
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
    set_reading(c, !c->body_paused && !c->out_blocked && c->pend.len < PEND_MAX);
}

static int pend_append(tg_conn_t *c, const char *p, size_t n)
{
    return tg_buf_add(&c->pend, p, n) == 0 ? 0 : -1;
}

static void end_request_state(tg_conn_t *c)
{
    if (c->req.cfg) tg_config_unref(c->req.cfg);
    c->req.cfg = NULL;
    c->req.route = NULL;
    c->req.in_request = 0;
    tg_buf_reset(&c->body);
    c->body_off = 0;
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
    tg_buf_reset(&c->pend);
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
    tg_req_end(&c->req, tg_mono_us());
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
 * on_timer ends it and SETTLE (tg_req_end) charges an estimate; with no head by then, nothing is).
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
             tg_xchg_counts_tokens(c->cx.xchg);
    if (!ai && !(c->req.route->kind == TG_ROUTE_MCP && tg_xchg_ntools(c->cx.xchg) > 0)) return 0;
    c->req.drain = 1;
    c->write_failed = 1; /* nothing more is written */
    c->req.head_pending = 0;
    c->req.keep_alive = 0;
    EV_SET(&c->req.ev, reason, "client_closed");
    tg_xchg_client_gone(c->cx.xchg);
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
    tg_buf_reset(&c->body);
    c->body_off = 0;
    /* A client that sent Expect: 100-continue may never send the body: what
     * it sends next could be read as body, so the connection ends here. */
    if (c->req.content_length < 0 || c->req.content_length > DISCARD_SMALL ||
        TG_REQ_HDR(&c->head, "expect")) {
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

/* ---- what the connection does for its request's phases (request.h) ----- */

/* An answer given outside parse(): the phases resumed by an asynchronous backend (a shared
 * admission's refusal, or its fall-back after limits.timeout). Nothing parses after it, so
 * the request ends here; left unfinished, the next request on a keep-alive connection (an
 * nginx front's) waited until a timeout. Inside parse(), after_parse() finishes it. */
static void finish_if_async(tg_conn_t *c)
{
    if (!c->parsing && !c->closing) maybe_finish(c);
}

static void op_answer_error(tg_req_t *r, int status, const char *type, const char *message,
                            const char *reason)
{
    reject(r->conn, status, type, message, reason);
    finish_if_async(r->conn);
}

static void op_answer_json(tg_req_t *r, int status, const char *body, size_t len,
                           const char *reason)
{
    reject_json(r->conn, status, body, len, reason);
    finish_if_async(r->conn);
}

static void op_arm_body_timer(tg_req_t *r)
{
    arm_body_timer(r->conn);
}

static void op_start_upstream(tg_req_t *r)
{
    start_upstream(r->conn);
}

/* The exchange's rewrite of a held body replaces it. The rewrite is tollgate's own (a
 * stream_options member added): it may pass the client's cap, server.max_body, by that
 * much, so the buffer's max follows it for this request (headers-complete sets it back). */
static int op_set_body(tg_req_t *r, const char *p, size_t n)
{
    tg_conn_t *c = r->conn;
    tg_buf_reset(&c->body);
    c->body_off = 0;
    if (n > tg_buf_max(&c->body)) tg_buf_set_max(&c->body, n);
    return tg_buf_add(&c->body, p, n) == 0 ? 0 : -1;
}

static void op_send_continue(tg_req_t *r);

static const tg_req_ops_t req_ops = {
    .answer_error = op_answer_error,
    .answer_json = op_answer_json,
    .send_continue = op_send_continue,
    .arm_body_timer = op_arm_body_timer,
    .start_upstream = op_start_upstream,
    .set_body = op_set_body,
};

static int head_done(tg_conn_t *c);

static size_t parse_some(tg_conn_t *c, const char *data, size_t len);

/* Parses data; returns the bytes consumed. Errors answer and close. The parser pauses at
 * headers-complete (head_done runs here, with the head's exact size known) and at
 * message-complete (the rest waits in c->pend for the next request). */
static size_t parse(tg_conn_t *c, const char *data, size_t len)
{
    c->parsing = 1;
    size_t n = parse_some(c, data, len);
    c->parsing = 0;
    return n;
}

static size_t parse_some(tg_conn_t *c, const char *data, size_t len)
{
    /* Still paused (a message's answer not done; an upgrade): nothing is parsed, all is kept,
     * as http_parser did. (llhttp would return at once, its position the old one.) */
    llhttp_errno_t e = llhttp_get_errno(&c->parser);
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) return 0;
    size_t off = 0;
    int big = 0;
    const char *end;
    for (;;) {
        c->hfrom = data + off;
        e = llhttp_execute(&c->parser, data + off, len - off);
        if (c->closing) return len;
        end = e == HPE_OK ? data + len : llhttp_get_error_pos(&c->parser);
        if (c->in_head) {
            c->hraw += (size_t)(end - c->hfrom);
            /* (http_parser's limit: over the max is refused, the max itself passes) */
            if (c->hraw > c->w->cfg->server.max_header_bytes) {
                big = 1;
                break;
            }
        }
        if (e == HPE_PAUSED && c->head_paused) {
            c->head_paused = 0;
            c->in_head = 0;
            off = (size_t)(end - data);
            if (head_done(c) != 0) break;
            if (c->closing) return len;
            llhttp_resume(&c->parser);
            continue;
        }
        /* (An upgrade ends in HPE_PAUSED_UPGRADE after its message: the connection closes
         * after the answer, nothing more is parsed.) */
        if (e == HPE_OK || e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) return (size_t)(end - data);
        break;
    }
    /* Malformed input: answer if the response has not started, then close. */
    if (c->req.up) {
        tg_proxy_abort(c->req.up);
        c->req.up = NULL;
    }
    if (!c->req.in_request) {
        /* An error before any message began (garbage on an idle connection, or after a
         * finished keep-alive request): a request of its own, nothing of the last one's
         * (its tenant, path, status or sent head) carried into this event. */
        tg_req_drop_bodies(&c->req); /* (none: RECORD took or freed them) */
        tg_req_reset(&c->req, c, c->client_ip, tg_mono_us(), tg_wall_us());
        c->req.cx = &c->cx;
        atomic_fetch_add_explicit(&c->w->srv->inflight, 1, memory_order_relaxed);
    }
    c->in_head = c->head_paused = 0;
    /* What llhttp refuses itself that http_parser left to head_done: the same words. (A
     * version it refuses is digits it does not take, e.g. "HTTP/3.0\r", "HTTP/1.2\r".) */
    if (!c->req.refuse && e == HPE_INVALID_TRANSFER_ENCODING)
        c->req.refuse = "unsupported Transfer-Encoding (only chunked)";
    if (!c->req.refuse && e == HPE_INVALID_VERSION && end - data >= 3 && end < data + len &&
        *end == '\r' && end[-2] == '.' && end[-1] >= '0' && end[-1] <= '9' && end[-3] >= '0' &&
        end[-3] <= '9')
        c->req.refuse = "only HTTP/1.0 and HTTP/1.1 are supported";
    c->req.headers_done = 1; /* so the event is recorded even if the head was cut */
    c->req.keep_alive = 0;
    c->req.msg_done = 1;
    if (!c->req.head_sent) {
        big = big || c->req.overflow;
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
    if (c->req.up && (c->body.len > c->body_off || c->req.msg_done))
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
        llhttp_resume(&c->parser);
        if (c->pend.len == 0) break;
        size_t n = parse(c, c->pend.p, c->pend.len);
        if (c->closing) break;
        memmove(c->pend.p, c->pend.p + n, c->pend.len - n);
        tg_buf_truncate(&c->pend, c->pend.len - n);
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

/* ---- llhttp callbacks ------------------------------------------------- */

static int head_append(tg_conn_t *c, const char *p, size_t n)
{
    int rc = tg_buf_add(&c->head.bytes, p, n); /* (its max: server.max_header_bytes) */
    if (rc == TG_BUF_TOOBIG) c->req.overflow = 1;
    return rc == TG_BUF_OK ? 0 : -1;
}

static int on_message_begin(llhttp_t *p)
{
    tg_conn_t *c = p->data;
    /* (The message starts where this parse began: the parser pauses after each message.) */
    c->in_head = 1;
    c->hraw = c->trailer = 0;
    /* The connection's buffers start over (keeping their capacity), the request anew. */
    size_t hmax = c->w->cfg->server.max_header_bytes;
    tg_buf_reset(&c->head.bytes);
    tg_buf_reset(&c->head.target);
    if (tg_buf_max(&c->head.bytes) != hmax) { /* (the config changed: rarely) */
        tg_buf_set_max(&c->head.bytes, hmax);
        tg_buf_set_max(&c->head.target, 2 * hmax + 2);
    }
    c->head.nhdrs = 0;
    c->last_was_value = 0;
    tg_buf_reset(&c->out);
    tg_req_drop_bodies(&c->req); /* (none: RECORD took or freed them) */
    tg_req_reset(&c->req, c, c->client_ip, tg_mono_us(), tg_wall_us());
    c->req.cx = &c->cx;
    atomic_fetch_add_explicit(&c->w->srv->inflight, 1, memory_order_relaxed);
    arm_timer(c, c->w->cfg->server.header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    tg_conn_t *c = p->data;
    if (c->req.url_len == 0) c->req.url_off = (uint32_t)c->head.bytes.len;
    if (head_append(c, at, n) != 0) return -1;
    c->req.url_len += (uint32_t)n;
    return 0;
}

/* A chunked body's trailer section: its bytes count against the head limit, as they did
 * in http_parser (past it: 431 or a close, like a head). */
static int trailer_bytes(tg_conn_t *c, size_t n)
{
    c->trailer += n;
    if (c->trailer <= c->w->cfg->server.max_header_bytes) return 0;
    c->req.overflow = 1;
    return -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    tg_conn_t *c = p->data;
    /* A chunked body's trailer section comes through here too: it is dropped, never read
     * as headers (RFC 9110 §6.5.1), or a trailing X-Forwarded-For would pick the client
     * address of a held request and any trailer would be forwarded as a header. */
    if (c->req.headers_done) return trailer_bytes(c, n);
    if (c->head.nhdrs == 0 || c->last_was_value) {
        if (c->head.nhdrs == TG_REQ_MAX_HDRS) {
            c->req.overflow = 1;
            return -1;
        }
        tg_hdr_t *h = &c->head.hdrs[c->head.nhdrs++];
        *h = (tg_hdr_t){.no = (uint32_t)c->head.bytes.len};
        c->last_was_value = 0;
    }
    if (head_append(c, at, n) != 0) return -1;
    c->head.hdrs[c->head.nhdrs - 1].nl += (uint32_t)n;
    /* RFC 9112 §5.1: a field name is a token, no whitespace before the colon. The parser
     * lets "Content-Length : 4" through and frames by it; a proxy must not (whoever reads
     * the forwarded head next may frame it differently): 400. The parser itself refuses
     * every other byte that is not a tchar (its token table; tests/unit/gateway/
     * test_llhttp.c holds it to that), so the space is the one byte to look for. */
    if (memchr(at, ' ', n)) {
        c->req.refuse = "invalid character in a header field name";
        return -1;
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    tg_conn_t *c = p->data;
    if (c->req.headers_done) return trailer_bytes(c, n); /* a trailer (above) */
    /* A value needs a name: llhttp passes ": v" as an empty name (http_parser refused it). */
    if (c->head.nhdrs == 0) return -1;
    tg_hdr_t *h = &c->head.hdrs[c->head.nhdrs - 1];
    if (!c->last_was_value) {
        if (h->nl == 0) return -1;
        h->vo = (uint32_t)c->head.bytes.len;
        c->last_was_value = 1;
    }
    if (head_append(c, at, n) != 0) return -1;
    h->vl += (uint32_t)n;
    return 0;
}

/* The client's x-request-id when it is a sane token, else ours stays. */
static void set_request_id(tg_conn_t *c)
{
    const tg_hdr_t *h = TG_REQ_HDR(&c->head, "x-request-id");
    int ok = h && h->vl > 0 && h->vl < sizeof c->req.ev.request_id;
    for (uint32_t i = 0; ok && i < h->vl; i++) {
        char ch = c->head.bytes.p[h->vo + i];
        ok = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
    }
    if (ok) TG_EVENT_SET(&c->req.ev, request_id, c->head.bytes.p + h->vo, h->vl);
}

/* Transfer-Encoding, when present, must be exactly "chunked" (one line, one coding): the
 * parser frames by a final chunked and drops what precedes it ("gzip, chunked"), which
 * would forward a body whose coding nobody applied. 400, like any coding but chunked. */
static int te_is_chunked(const tg_conn_t *c, const llhttp_t *p)
{
    int n = 0;
    for (size_t i = 0; i < c->head.nhdrs; i++) {
        const tg_hdr_t *h = &c->head.hdrs[i];
        if (!TG_HDR_IS(&c->head, h, "transfer-encoding")) continue;
        const char *v = c->head.bytes.p + h->vo;
        size_t b = 0, e = h->vl;
        while (b < e && (v[b] == ' ' || v[b] == '\t'))
            b++;
        while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (++n > 1 || !IS_LIT(v + b, e - b, "chunked")) return 0;
    }
    return n == 0 || (p->flags & F_CHUNKED);
}

/* The request-target made canonical (target.h) into the head's target buffer: from here
 * on url_off/url_len name it there (it is what is forwarded), match_off/match_len its path
 * as routes and endpoint detection see it. A target that cannot be served sets
 * c->req.refuse. (The buffer keeps its capacity across requests: no allocation in the
 * steady state.) */
static void canon_target(tg_conn_t *c)
{
    size_t n = c->req.url_len;
    tg_buf_t *t = &c->head.target;
    tg_buf_reset(t);
    if (room(t, 2 * n + 2) != 0) {
        c->req.refuse = "out of memory";
        return;
    }
    char *out = tg_buf_end(t);
    tg_target_norm_t r;
    if (tg_target_normalize(c->head.bytes.p + c->req.url_off, n, out, &r) != 0) {
        c->req.refuse = r.error;
        return;
    }
    size_t len = tg_target_strip_tollgate_keys(out, r.len);
    c->req.match_len = (uint32_t)tg_target_match_path(out, r.path_len, out + len);
    c->req.url_off = 0;
    c->req.url_len = (uint32_t)len;
    c->req.match_off = (uint32_t)len;
    added(t, len + c->req.match_len);
}

/* Expect: 100-continue from an HTTP/1.1 client, once the request is accepted (or is to
 * be decided on its body): the client may send its body now (the upstream never sees the
 * Expect; its own 100 is swallowed). */
static void op_send_continue(tg_req_t *r)
{
    tg_conn_t *c = r->conn;
    const tg_hdr_t *ex = TG_REQ_HDR(&c->head, "expect");
    if (ex && IS_LIT(c->head.bytes.p + ex->vo, ex->vl, "100-continue") &&
        c->parser.http_minor >= 1) {
        uv_buf_t cont = uv_buf_init(TG_LIT("HTTP/1.1 100 Continue\r\n\r\n"));
        conn_write(c, &cont, 1);
    }
}

/* Headers-complete: the parser pauses, parse() checks the head's size and calls head_done. */
static int on_headers_complete(llhttp_t *p)
{
    tg_conn_t *c = p->data;
    c->head_paused = 1;
    return HPE_PAUSED;
}

/* The head is whole (and within the limit): 0 to go on parsing its body, -1 to refuse it
 * (c->req.refuse says why; parse() answers 400). */
static int head_done(tg_conn_t *c)
{
    const llhttp_t *p = &c->parser;
    uv_timer_stop(&c->timer);
    /* An empty request-target ("CONNECT \n", which llhttp reads as an HTTP/0.9 line; http_parser
     * refused it as it parsed, found by fuzz_request): malformed, and no head bytes to show. */
    if (c->req.url_len == 0) return -1;
    /* Heads we will not serve: parse() answers 400 and closes. */
    if (p->http_major != 1) c->req.refuse = "only HTTP/1.0 and HTTP/1.1 are supported";
    if (p->method == HTTP_CONNECT) c->req.refuse = "CONNECT is not supported";
    if (!te_is_chunked(c, p)) c->req.refuse = "unsupported Transfer-Encoding (only chunked)";
    if (!c->req.refuse) canon_target(c);
    if (c->req.refuse) {
        /* The 400's event shows the target as sent (credentials redacted still). */
        tg_target_redact(c->head.bytes.p + c->req.url_off, c->req.url_len, c->req.ev.path,
                         sizeof c->req.ev.path);
        return -1;
    }
    c->req.headers_done = 1;
    c->req.cfg = tg_config_ref(c->w->cfg);
    const char *method = llhttp_method_name((llhttp_method_t)p->method);
    TG_EVENT_SET(&c->req.ev, method, method, strlen(method));
    const char *url = c->head.target.p + c->req.url_off;
    /* Events and access logs never hold a credential passed in the query. */
    tg_target_redact(url, c->req.url_len, c->req.ev.path, sizeof c->req.ev.path);
    set_request_id(c);
    c->req.keep_alive = llhttp_should_keep_alive(p) && !c->w->draining;
    c->req.content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    c->req.has_body = (p->flags & F_CHUNKED) || c->req.content_length > 0;
    c->req.body_limit = (int64_t)c->req.cfg->server.max_body;
    /* The body buffer's max is the limit (empty here: the last request's was dropped). */
    if (tg_buf_max(&c->body) != (size_t)c->req.body_limit) {
        tg_buf_reset(&c->body);
        tg_buf_set_max(&c->body, (size_t)c->req.body_limit);
    }
    /* An Upgrade (h2c, websocket) is ignored, as RFC 9110 allows: the request
     * is served as HTTP/1.1 and the connection closed after it, since the
     * parser stops at an upgrade. */
    if (p->upgrade) c->req.keep_alive = 0;

    /* The connection's part is done: the request walks its phases (request.h). */
    c->req.phase = TG_PHASE_AUTH;
    tg_req_run(&c->req, tg_mono_us());
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
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
    /* Answered already, nothing to forward to; but a body that comes while admission waits
     * for the shared limiter is kept for the upstream. */
    if (!c->req.up && !c->req.hold_body && c->req.shared != TG_SHARED_WAITING) return 0;
    if (tg_buf_add(&c->body, at, n) != 0) return -1; /* (its max: body_limit) */
    /* (A held body is bounded by body_limit instead: nothing drains it yet.) */
    if (!c->req.hold_body && c->body.len - c->body_off > BODY_HIGH) c->body_paused = 1;
    if (c->req.hold_body && !c->req.up) arm_body_timer(c);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    tg_conn_t *c = p->data;
    int answered = c->req.discard || c->req.resp_done;
    if (c->req.hold_body && !answered) uv_timer_stop(&c->timer);
    c->req.msg_done = 1;
    c->req.discard = 0;
    /* The held body is whole: the phases go on from BODY, where they waited. */
    if (c->req.hold_body && !answered && !c->req.up) tg_req_run(&c->req, tg_mono_us());
    return HPE_PAUSED; /* pipelined bytes wait for this request's end (drive) */
}

static const llhttp_settings_t settings = {
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
static int drop_request_header(const tg_conn_t *c, const tg_hdr_t *h, int conn_names)
{
    const char *n = c->head.bytes.p + h->no;
    if (hop_by_hop(n, h->nl)) return 1;
    static const tg_lit_t names[] = {TG_LIT_INIT("host"),          TG_LIT_INIT("content-length"),
                                     TG_LIT_INIT("authorization"), TG_LIT_INIT("x-api-key"),
                                     TG_LIT_INIT("x-request-id"),  TG_LIT_INIT("x-forwarded-for"),
                                     TG_LIT_INIT("expect")};
    if (in_names(n, h->nl, names, sizeof names / sizeof names[0])) return 1;
    if (h->nl >= TG_LIT_LEN("x-tollgate-") && strncasecmp(n, TG_LIT("x-tollgate-")) == 0) return 1;
    /* Headers the Connection header names are hop-by-hop too (RFC 9110 §7.6.1). */
    for (size_t i = 0; conn_names && i < c->head.nhdrs; i++)
        if (TG_HDR_IS(&c->head, &c->head.hdrs[i], "connection") &&
            in_token_list(c->head.bytes.p + c->head.hdrs[i].vo, c->head.hdrs[i].vl, n, h->nl))
            return 1;
    const tg_upstream_conf_t *u = c->req.route->up;
    for (size_t i = 0; i < u->nheaders; i++)
        if (tg_hdr_is(&c->head, h, u->headers[i].name, strlen(u->headers[i].name)))
            return 1; /* the config's value wins */
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
    while (off < c->out.len) {
        const char *line = c->out.p + off;
        const char *end = memchr(line, '\n', c->out.len - off);
        size_t ll = end ? (size_t)(end - line) + 1 : c->out.len - off;
        const char *colon = memchr(line, ':', ll);
        size_t nl = colon ? (size_t)(colon - line) : 0;
        int named = nl && in_token_list(c->up_conn, c->req.up_conn_len, line, nl) &&
                    !IS_LIT(line, nl, "content-length");
        if (!named) {
            off += ll;
            continue;
        }
        memmove(c->out.p + off, c->out.p + off + ll, c->out.len - off - ll);
        tg_buf_truncate(&c->out, c->out.len - ll);
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
        tg_xchg_response_coding(c->cx.xchg, value, vl); /* (forwarded as it is, below) */
    if (hop_by_hop(name, nl)) return;
    if (IS_LIT(name, nl, "x-request-id")) return;
    size_t line = nl + vl + TG_LIT_LEN(": \r\n");
    /* A head over the cap is refused whole (502), never cut: a dropped line must not
     * leave offsets (Content-Length, Content-Type) pointing past what was kept. */
    if (room(&c->out, line) != 0) { /* (its max: UP_HEAD_MAX) */
        c->req.up_bad = 1;
        return;
    }
    if (IS_LIT(name, nl, "content-length")) {
        if (c->req.resp_has_cl) return; /* a repeated length: the first one frames */
        c->req.resp_has_cl = 1;
        c->req.cl_off = c->out.len;
        c->req.cl_len = line;
    }
    if (IS_LIT(name, nl, "content-type")) {
        c->req.ctype_off = (uint32_t)(c->out.len + nl + TG_LIT_LEN(": "));
        c->req.ctype_len = (uint32_t)vl;
    }
    char *o = tg_put(tg_buf_end(&c->out), name, nl);
    o = tg_put(tg_put(tg_put(o, TG_LIT(": ")), value, vl), TG_LIT("\r\n"));
    added(&c->out, line);
}

/* A reason phrase to relay: not empty, and only HTAB, SP, VCHAR and obs-text (RFC 9112
 * section 4). The parser stops at CR and LF but lets other control bytes through, which
 * some clients choke on; such a phrase is replaced by the status's own. */
static int reason_ok(const char *r, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)r[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return 0;
    }
    return 1;
}

static void on_up_head_done(void *ud, int status, const char *reason, size_t rlen)
{
    tg_conn_t *c = ud;
    /* RFC 9110 §15: a status is three digits, 1xx to 5xx. The parser takes 0 to 999, and
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
        tg_xchg_response_head(c->cx.xchg, status,
                              c->req.ctype_len ? c->out.p + c->req.ctype_off : NULL,
                              c->req.ctype_len);
        /* A rewritten stream changes length: it is re-framed like the case below. */
        if (tg_xchg_rewrites(c->cx.xchg) && c->req.resp_has_cl && c->req.cl_len) c->req.resp_te = 1;
    }
    if (c->req.resp_te && c->req.resp_has_cl && c->req.cl_len) {
        /* Both framings: Transfer-Encoding wins (the body arrives decoded),
         * so the length must not reach the client; it is re-framed. */
        memmove(c->out.p + c->req.cl_off, c->out.p + c->req.cl_off + c->req.cl_len,
                c->out.len - c->req.cl_off - c->req.cl_len);
        tg_buf_truncate(&c->out, c->out.len - c->req.cl_len);
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
    /* The parser lets a NUL through in a reason phrase: the line ends before it, as the
     * "%.*s" that used to print it did (never a NUL in the client's head). */
    rlen = reason ? strnlen(reason, rlen) : 0;
    if (!reason_ok(reason, rlen)) {
        reason = status_text(status);
        rlen = strlen(reason);
    }
    char rl[512];
    rate_headers(c, rl, sizeof rl);
    const char *te = c->req.chunked_out ? "Transfer-Encoding: chunked\r\n" : "";
    const char *cn = !c->req.keep_alive          ? "Connection: close\r\n"
                     : c->parser.http_minor == 0 ? "Connection: keep-alive\r\n"
                                                 : "";
    /* Copied piece by piece, not printed: this runs for every proxied answer (two
     * snprintf calls were 2,500 instructions a request). rlen <= 64 (h1.c, proxy.c). */
    size_t need = sizeof "HTTP/1.1  \r\n" + 20 + rlen + c->out.len + sizeof "x-request-id: \r\n" +
                  strlen(c->req.ev.request_id) + strlen(rl) + strlen(te) + strlen(cn) + 2;
    tg_buf_reset(&c->rhead);
    if (room(&c->rhead, need) != 0) {
        c->write_failed = 1;
        return;
    }
    char *w = tg_putu(tg_puts(c->rhead.p, "HTTP/1.1 "), (unsigned)status);
    w = tg_puts(tg_put(tg_puts(w, " "), reason, rlen), "\r\n");
    /* (An answer with no header line kept has no c->out yet: memcpy from NULL is undefined
     * even for 0 bytes.) */
    if (c->out.len) w = tg_put(w, c->out.p, c->out.len);
    w = tg_puts(tg_puts(tg_puts(w, "x-request-id: "), c->req.ev.request_id), "\r\n");
    w = tg_puts(tg_puts(tg_puts(tg_puts(w, rl), te), cn), "\r\n");
    added(&c->rhead, (size_t)(w - c->rhead.p));
    c->req.head_pending = 1;
    c->req.head_sent = 1;
}

/* Writes bufs behind the held response head, if any, in one write. */
static int write_with_head(tg_conn_t *c, uv_buf_t *bufs, unsigned n)
{
    uv_buf_t all[5];
    unsigned k = 0;
    if (c->req.head_pending) {
        all[k++] = uv_buf_init(c->rhead.p, (unsigned)c->rhead.len);
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
                            uv_buf_init(TG_LIT("\r\n"))};
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
        c->req.metered ? tg_xchg_response_body(c->cx.xchg, p, n, send_body, c) : send_body(c, p, n);
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
    size_t avail = c->body.len - c->body_off;
    if (avail == 0) return c->req.msg_done ? 0 : TG_PROXY_PAUSE;
    size_t k = avail < cap ? avail : cap;
    memcpy(buf, c->body.p + c->body_off, k);
    c->body_off += k;
    c->req.body_pulled += (int64_t)k;
    if (c->body_off == c->body.len) {
        c->body_off = 0;
        tg_buf_reset(&c->body);
    }
    if (c->body_paused && c->body.len - c->body_off < BODY_LOW) {
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
    c->req.ev.upstream_latency_us = tg_req_upstream_us(&c->req, now); /* the transfer's end */
    after_early_response(c); /* before any head is built: it may set keep_alive = 0 */
    if (r == TG_PROXY_OK) {
        if (c->req.metered && !c->req.no_body_out) tg_xchg_response_end(c->cx.xchg, send_body, c);
        uv_buf_t end = uv_buf_init(TG_LIT("0\r\n\r\n"));
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

    size_t need = strlen(c->req.target->url) + c->req.url_len + c->head.bytes.len +
                  c->head.target.len + c->head.nhdrs * 4 + 512;
    for (size_t i = 0; i < u->nheaders; i++)
        need += strlen(u->headers[i].name) + strlen(u->headers[i].value) + u->credential_max + 4;
    for (size_t i = 0; i < c->head.nhdrs; i++) /* every X-Forwarded-For line, joined */
        if (TG_HDR_IS(&c->head, &c->head.hdrs[i], "x-forwarded-for"))
            need += c->head.hdrs[i].vl + 2;
    need += c->head.nhdrs * 8 + 32; /* Accept-Encoding may become "identity" (below) */
    tg_buf_reset(&c->scratch);
    if (room(&c->scratch, need) != 0) {
        send_error(c, 502, "bad_gateway", "out of memory");
        return;
    }
    /* Does a Connection header name anything but close / keep-alive? (Usually not: then
     * no header is looked up in it.) */
    int conn_names = 0;
    for (size_t i = 0; i < c->head.nhdrs && !conn_names; i++) {
        const tg_hdr_t *h = &c->head.hdrs[i];
        if (!TG_HDR_IS(&c->head, h, "connection")) continue;
        const char *v = c->head.bytes.p + h->vo;
        conn_names = !(IS_LIT(v, h->vl, "close") || IS_LIT(v, h->vl, "keep-alive"));
    }
    /* The URL, then one NUL-terminated "Name: value" string per header. */
    char *o = c->scratch.p;
    size_t nh = 0;
    const char *url = o;
    o = tg_puts(o, c->req.target->url);
    o = tg_put(o, c->head.target.p + c->req.url_off, c->req.url_len);
    *o++ = '\0';
    int ae = 0;
    for (size_t i = 0; i < c->head.nhdrs && nh < TG_PROXY_MAX_HEADERS - 8; i++) {
        const tg_hdr_t *h = &c->head.hdrs[i];
        if (drop_request_header(c, h, conn_names)) continue;
        c->up_hdrs[nh++] = o;
        if (c->req.metered && TG_HDR_IS(&c->head, h, "accept-encoding")) {
            /* The meter must read the answer: only codings it decodes are asked for (see
             * meter/exchange.h); the answer still reaches the client as it comes. */
            o = tg_puts(o, "Accept-Encoding: ");
            o += tg_xchg_accept_encoding(c->cx.xchg, c->head.bytes.p + h->vo, h->vl, o, h->vl + 8);
            *o++ = '\0';
            ae = 1;
            continue;
        }
        o = tg_put(o, c->head.bytes.p + h->no, h->nl);
        o = tg_put(o, TG_LIT(": "));
        o = tg_put(o, c->head.bytes.p + h->vo, h->vl);
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
    /* One credential per upstream request, from this request's config: a reload swaps the
     * list for the next request, never for this one (config/credential.h). */
    const char *cred = tg_cred_next(u);
    for (size_t i = 0; i < u->nheaders && nh < TG_PROXY_MAX_HEADERS - 3; i++) {
        c->up_hdrs[nh++] = o;
        o = tg_puts(o, u->headers[i].name);
        o = tg_put(o, TG_LIT(": "));
        o = tg_cred_value(&u->headers[i], cred, o);
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
    for (size_t i = 0; i < c->head.nhdrs; i++) {
        const tg_hdr_t *h = &c->head.hdrs[i];
        if (TG_HDR_IS(&c->head, h, "x-forwarded-for"))
            o = tg_put(tg_put(o, c->head.bytes.p + h->vo, h->vl), TG_LIT(", "));
    }
    o = tg_puts(o, c->client_ip);
    *o++ = '\0';
    added(&c->scratch, (size_t)(o - c->scratch.p));

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
    /* A client that left while its signed body was read: AUTH's copy of the key's signing
     * secret was never checked, hence never wiped (phase_sign.c). */
    OPENSSL_cleanse(c->req.signing, sizeof c->req.signing);
    tg_req_drop_bodies(&c->req);
    tg_buf_free(&c->head.bytes);
    tg_buf_free(&c->head.target);
    tg_buf_free(&c->pend);
    tg_buf_free(&c->body);
    tg_buf_free(&c->scratch);
    tg_buf_free(&c->out);
    tg_buf_free(&c->rhead);
    tg_xchg_free(c->cx.xchg);
    free(c->cx.hold);
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
        tg_req_end(&c->req, tg_mono_us());
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
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    size_t hmax = w->cfg->server.max_header_bytes;
    tg_buf_init(&c->head.bytes, hmax);
    tg_buf_init(&c->head.target, 2 * hmax + 2);
    tg_buf_init(&c->pend, PEND_MAX + sizeof w->rbuf);
    tg_buf_init(&c->body, w->cfg->server.max_body);
    tg_buf_init(&c->scratch, SIZE_MAX);
    tg_buf_init(&c->out, UP_HEAD_MAX);
    tg_buf_init(&c->rhead, RHEAD_MAX);
    tg_server_t *srv = w->srv;
    c->cx = (tg_req_ctx_t){
        .ops = &req_ops,
        .keys = srv->keys,
        .jwks = srv->jwks,
        .jwtcache = w->jwtcache,
        .replay = srv->replay,
        .policy = srv->policy,
        .prices = srv->prices,
        .rec = srv->rec,
        .metrics = srv->no_request_metrics ? NULL : w->metrics,
        .unparsed = &srv->unparsed,
        .keycache = &c->keycache,
        .peer = &c->peer,
        .head = &c->head,
        .body = &c->body,
        .scratch = &c->scratch,
        .shared = w->redis,
    };
    c->req.cx = &c->cx;
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
