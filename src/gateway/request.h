/* One request on a client connection, what it borrows from the connection, and the phases
 * it goes through.
 *
 * The connection (conn.c) parses and writes bytes and keeps what outlives a request: the
 * socket, its timer, the parser, the buffers (their capacity is kept from one request to
 * the next), the exchange state. The request (tg_req_t, nginx's ngx_http_request_t beside
 * its ngx_connection_t, h2o's h2o_req_t) holds what starts over with each request: its
 * flags, its route and config reference, its admission and its event. It lives inside
 * the connection (one request at a time: pipelined ones wait), so a request allocates
 * nothing; tg_req_reset is its constructor.
 *
 * The phases never see the connection's struct. They read the request head through a view
 * (tg_req_head_t: the head bytes, the header table, the canonical target; looked up by
 * lower-case name, tg_req_hdr / TG_REQ_HDR) and the held body through a pointer to the
 * connection's buffer, and they ask the connection for the few things only it can do
 * through a table of callbacks (tg_req_ops_t: answer, 100 Continue, the body timer, the
 * upstream, a rewritten body). Both, with the worker's shared services (keyring, policy,
 * price book, recorder), are the request's context (tg_req_ctx_t), made once per
 * connection: nothing is copied per request, and a test builds one without a socket.
 *
 * A request walks these phases, in this order (gateway/phases.h; one module each):
 *
 *   AUTH     phase_auth.c: the presented key (keyring) or JWT (auth/jwt.h) 401
 *   ROUTE    phase_route.c: the route, size and coding checks, the exchange begun on
 *            AI/MCP routes, endpoints that cannot be metered      404 413 415 403
 *   BODY     phase_body.c: AI/MCP: the body read whole before admission (WAIT until it
 *            is), then read by the exchange; MCP tool rules    408 400 403 + JSON-RPC
 *   ADMIT    phase_admit.c: the client address (trusted X-Forwarded-For), then billing's
 *            admission (bill.h: pauses, IP rules, in-flight cap, budget, rate and token
 *            limits, every tool of a batch)                     503 403 429 402 400
 *   FORWARD  phase_forward.c: the upstream request started (the connection's
 *            start_upstream, proxy.h)                                     502
 *   -- then the answer, driven by the upstream's callbacks in conn.c: --
 *   METER    phase_answer.c: the answer read by the exchange as it passes; at its end
 *            the event gets model, tokens and the MCP results
 *   SETTLE   phase_answer.c: billing decides outcome and price and settles the
 *            reservations (bill.h)
 *   RECORD   phase_answer.c: the event counted in the worker's metrics and pushed to
 *            the recorder
 *
 * AUTH to FORWARD are phase functions run by one loop (pipeline.c, tg_req_run). Each
 * returns a tg_phase_res_t: NEXT (on to the next phase), ANSWER (refuse with the status,
 * error type, message and event reason given: the loop answers and stops), DONE (the phase
 * answered or handed the request on itself: stop) or WAIT (stop for now: what the phase
 * waits for arrives later on the event loop, and its callback runs the phases again from
 * r->phase, which finds what it waited for). BODY waits for the rest of a held body
 * today; an asynchronous admission (a shared limiter across gateways) is an ADMIT that
 * returns WAIT and is resumed by its answer's callback. A waiting request may end without
 * being resumed (the client leaves, a deadline passes: conn_close records it and frees the
 * connection), so what a phase waits for must be cancellable from there. A new check is
 * a new phase function in the table, in its place in the order. METER's end, SETTLE and
 * RECORD run once both halves of the request are over, whatever way (tg_req_end, from the
 * one place a request ends in conn.c). Time is an argument of every phase (the
 * monotonic clock's microseconds, read once by the caller), never read by a phase. */
#ifndef TG_GATEWAY_REQUEST_H
#define TG_GATEWAY_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <stdatomic.h>
#include <strings.h>

#include "auth/jwks.h"
#include "auth/jwtcache.h"
#include "auth/keyring.h"
#include "auth/replay.h"
#include "config/config.h"
#include "gateway/proxy.h"
#include "gateway/upstream.h"
#include "meter/exchange.h"
#include "meter/price.h"
#include "meter/recorder.h"
#include "observe/metrics.h"
#include "policy/policy.h"
#include "redis/client.h"
#include "types/cidr.h"
#include "types/event.h"
#include "util/buf.h"

typedef enum {
    TG_PHASE_AUTH = 0,
    TG_PHASE_ROUTE,
    TG_PHASE_BODY,
    TG_PHASE_ADMIT,
    TG_PHASE_FORWARD,
    TG_PHASE_METER,
    TG_PHASE_SETTLE,
    TG_PHASE_RECORD,
} tg_phase_t;

typedef enum {
    TG_PHASE_NEXT = 0, /* continue with the next phase */
    TG_PHASE_ANSWER,   /* answer now with the status and reason given, and stop */
    TG_PHASE_DONE,     /* answered or handed on by the phase itself: stop */
    TG_PHASE_WAIT,     /* stop until a callback runs the phases again from this one */
} tg_phase_rc_t;

/* What a phase decided. For ANSWER: the HTTP status, the JSON error's type and message
 * (constants, or text that outlives the call, as an admission's message) and the
 * event's reason. */
typedef struct tg_phase_res {
    tg_phase_rc_t rc;
    int status;
    const char *type, *message, *reason;
} tg_phase_res_t;

#define TG_PHASE_RES(rc_) ((tg_phase_res_t){.rc = (rc_)})
#define TG_PHASE_REFUSE(status_, type_, msg_, reason_)                                             \
    ((tg_phase_res_t){TG_PHASE_ANSWER, (status_), (type_), (msg_), (reason_)})

struct tg_conn;
typedef struct tg_req tg_req_t;

/* ---- the request head, as phases read it --------------------------------------------- */

#define TG_REQ_MAX_HDRS 100 /* header lines in one head (more: 431) */

/* One header line: offsets and lengths of its name and value in the head bytes. */
typedef struct tg_hdr {
    uint32_t no, nl, vo, vl;
} tg_hdr_t;

/* The head of the current request, kept by the connection (the buffers keep their
 * capacity across requests). bytes holds the request-target and the header names and
 * values as the parser gave them, capped at server.max_header_bytes (the buffer's max:
 * 431 past it); target the canonical request-target and, after it, its match path (see
 * tg_req_t's url_off and match_off), capped at 2 x server.max_header_bytes + 2, which
 * normalizing a target of the head's size may take (target.h). */
typedef struct tg_req_head {
    tg_buf_t bytes;
    tg_buf_t target;
    tg_hdr_t hdrs[TG_REQ_MAX_HDRS];
    size_t nhdrs;
} tg_req_head_t;

static inline const char *tg_hdr_name(const tg_req_head_t *hd, const tg_hdr_t *h)
{
    return hd->bytes.p + h->no;
}
static inline const char *tg_hdr_value(const tg_req_head_t *hd, const tg_hdr_t *h)
{
    return hd->bytes.p + h->vo;
}
/* The header h is named lname (lower case; the head's name in any case). The literal
 * form below has its length known at compile time: most names are told apart by it
 * before a byte is compared. */
static inline int tg_hdr_is(const tg_req_head_t *hd, const tg_hdr_t *h, const char *lname, size_t n)
{
    return h->nl == n && strncasecmp(hd->bytes.p + h->no, lname, n) == 0;
}
#define TG_HDR_IS(hd, h, lit) tg_hdr_is((hd), (h), TG_LIT(lit))
/* The first header named lname[0..n), or NULL. */
static inline const tg_hdr_t *tg_req_hdr(const tg_req_head_t *hd, const char *lname, size_t n)
{
    for (size_t i = 0; i < hd->nhdrs; i++)
        if (tg_hdr_is(hd, &hd->hdrs[i], lname, n)) return &hd->hdrs[i];
    return NULL;
}
#define TG_REQ_HDR(hd, lit) tg_req_hdr((hd), TG_LIT(lit))

/* ---- what the connection lends its requests ------------------------------------------ */

/* The few things only the connection can do, called by the phases with the request (the
 * connection finds itself in r->conn). */
typedef struct tg_req_ops {
    /* Answers {"error":{"type","message"}} with status; the event becomes a rejection with
     * reason; a body still coming is read and dropped (or the connection ends after it). */
    void (*answer_error)(tg_req_t *r, int status, const char *type, const char *message,
                         const char *reason);
    /* The same with a JSON body of the route's own protocol (ends with a newline). */
    void (*answer_json)(tg_req_t *r, int status, const char *body, size_t len, const char *reason);
    /* "100 Continue" when an HTTP/1.1 client sent Expect: 100-continue. */
    void (*send_continue)(tg_req_t *r);
    /* Times a body the connection reads itself against r->body_deadline_us (408). */
    void (*arm_body_timer)(tg_req_t *r);
    /* Starts the upstream request (answers 502 itself when it cannot). */
    void (*start_upstream)(tg_req_t *r);
    /* Replaces the held body with p[0..n) (the exchange's rewrite): 0, or -1 when it
     * cannot be held. */
    int (*set_body)(tg_req_t *r, const char *p, size_t n);
} tg_req_ops_t;

/* A request's context: made once per connection, never copied, the same for each of its
 * requests (r->cx). */
typedef struct tg_req_ctx {
    const tg_req_ops_t *ops;
    /* The worker's shared services. */
    tg_keyring_t *keys;
    tg_jwks_watch_t *jwks;    /* jwt.jwks_file's keys as the server read them, or NULL */
    tg_jwt_cache_t *jwtcache; /* the worker's verified JWTs (auth/jwtcache.h), or NULL */
    tg_replay_t *replay;      /* signed requests seen (auth/replay.h) */
    tg_policy_t *policy;
    tg_pricebook_t *prices;
    tg_recorder_t *rec;
    tg_metrics_block_t *metrics; /* the worker's own counters (NULL: none kept) */
    atomic_llong *unparsed;      /* answers whose usage or result could not be read */
    /* The connection's. */
    tg_keycache_t *keycache;   /* the last key presented on it (keyring.h) */
    const tg_ip_t *peer;       /* the socket peer */
    const tg_req_head_t *head; /* the head, valid from headers-complete on */
    const tg_buf_t *body;      /* the held body, whole once msg_done */
    tg_buf_t *scratch;         /* bytes a phase may write for the time of its call */
    tg_xchg_t *xchg;           /* AI/MCP metering state: made by ROUTE on the connection's
                                  first AI/MCP request, reused, freed by the connection */
    tg_redis_t *shared;        /* the worker's shared limiter (limits.backend redis://), or
                                  NULL: limits in memory */
    tg_redis_hold_t *hold;     /* what the current request holds in Redis (valid while its
                                  r->held): made by ADMIT on the connection's first shared
                                  admission, reused, freed by the connection */
} tg_req_ctx_t;

/* ---- the request -------------------------------------------------------------------- */

struct tg_req {
    struct tg_conn *conn; /* the connection carrying it */
    tg_req_ctx_t *cx;     /* what it borrows from the connection (set after tg_req_reset) */
    tg_phase_t phase;     /* the phase running, or the one a WAIT resumes */

    /* The request in flight. */
    int in_request;   /* a message began and its event is not recorded yet */
    int headers_done; /* its head was read whole */
    int msg_done;     /* the whole request message was read */
    int resp_done;    /* the whole response was queued */
    int keep_alive;
    int drain;   /* the client left a 2xx AI answer: the upstream is read on, unsent, for
                    its usage (ai.drain_after_disconnect); see start_drain in conn.c */
    int discard; /* body bytes are read and dropped (request already answered) */
    int has_body;
    int hold_body;    /* AI/MCP route: the whole body is read before admission (exchange.h) */
    int metered;      /* the connection's exchange follows this request */
    int sign;         /* its signature is checked once the body is read (phase_sign.c) */
    int body_sha_set; /* ev.body_sha_in holds the held body's SHA-256 (phase_body.c) */
    /* audit.bodies: encrypt: the held body's copy (malloc'd, BODY), handed over with the
     * event at RECORD or freed by tg_req_drop_bodies; keep_flags: TG_BODIES_* of bodies.h */
    unsigned char *keep_in;
    size_t keep_in_len;
    uint32_t keep_flags;
    size_t signing_len; /* the key's signing secret (AUTH's copy), wiped once checked */
    char signing[TG_SIGNING_SECRET_LEN + 1];
    int64_t body_limit;
    int64_t content_length; /* -1 when chunked or absent */
    tg_config_t *cfg;       /* one reference, given back when the request ends */
    const tg_route_conf_t *route;
    tg_target_t *target;
    int attempts;
    int64_t start_mono;
    int64_t up_start_mono; /* FORWARD's time: the upstream call began (0: none) */

    /* The request-target: until headers-complete, url_off / url_len name it in the head's
     * bytes as sent; from then on, in the head's target buffer, the canonical
     * request-target (target.h), the one forwarded, and match_off / match_len its path as
     * routes and endpoints see it. */
    uint32_t url_off, url_len;
    uint32_t match_off, match_len;
    int overflow;             /* head over max_header_bytes or its header count: 431 */
    const char *refuse;       /* a well-formed head we will not serve: 400 with this */
    int64_t body_deadline_us; /* a body read by tollgate itself is whole by then */
    int64_t body_pulled;      /* bytes handed to the upstream client */

    /* The upstream transfer and its answer. */
    tg_proxy_req_t *up;
    int up_bad;                    /* upstream head over the cap (or its Connection list over the
                                      connection's up_conn; 2: a status outside 100-599): 502, nothing of it
                                      sent */
    size_t up_conn_len;            /* bytes of the connection's up_conn in use */
    int resp_te;                   /* the upstream response came with Transfer-Encoding */
    size_t cl_off, cl_len;         /* its Content-Length line within the connection's out */
    uint32_t ctype_off, ctype_len; /* its Content-Type value within out */
    int head_pending;              /* rhead holds a head not written yet */
    int head_sent;                 /* a response head went to the client: no error page now */
    int resp_has_cl;
    int chunked_out;
    int no_body_out;

    /* A shared admission (phase_admit.c): WAITING for Redis with ticket out, then DECIDED
     * (the verdict in adm) or UNANSWERED (limits.on_backend_down decides). */
    enum { TG_SHARED_NONE = 0, TG_SHARED_WAITING, TG_SHARED_DECIDED, TG_SHARED_UNANSWERED } shared;
    int held;                  /* cx->hold is this request's: settled by SETTLE */
    tg_redis_ticket_t *ticket; /* while WAITING (an admission, or a signature's claim);
                                  cancelled if the request ends first */
    /* Its signature's claim in the shared replay cache (phase_sign.c): WAITING for Redis,
     * then what Redis said. */
    enum {
        TG_CLAIM_NONE = 0,
        TG_CLAIM_WAITING,
        TG_CLAIM_FRESH,
        TG_CLAIM_TAKEN,
        TG_CLAIM_UNANSWERED
    } claim;

    tg_admission_t adm; /* rate-limit headers, the in-flight slot and reservations */
    tg_event_t ev;      /* what is recorded: exactly one per request */
};

/* The upstream call's duration at now (event.h's upstream_latency_us): at least 1, since 0
 * says there was no call. */
static inline int64_t tg_req_upstream_us(const tg_req_t *r, int64_t now_us)
{
    return now_us - r->up_start_mono > 0 ? now_us - r->up_start_mono : 1;
}

/* Frees the request's copy of its body (audit.bodies: encrypt) unless RECORD took it. */
void tg_req_drop_bodies(tg_req_t *r);

/* The constructor: a request that just began on conn, at mono / wall microseconds, from
 * client_ip (the socket peer's printable form). Everything else starts zero (the context
 * too: the connection sets r->cx after): no route, no admission, tokens unknown;
 * keep_alive until the head says otherwise. */
void tg_req_reset(tg_req_t *r, struct tg_conn *conn, const char *client_ip, int64_t mono_us,
                  int64_t wall_us);

#endif
