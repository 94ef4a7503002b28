/* One request on a client connection, and the phases it goes through.
 *
 * The connection (conn.c) parses and writes bytes and keeps what outlives a request: the
 * socket, its timer, the parser, the buffers (their capacity is kept from one request to
 * the next), the exchange state. The request (tg_req_t, nginx's ngx_http_request_t beside
 * its ngx_connection_t, h2o's h2o_req_t) holds what starts over with each request: its
 * flags, its route and config reference, its admission and its event. It lives inside
 * the connection (one request at a time: pipelined ones wait), so a request allocates
 * nothing; tg_req_reset is its constructor.
 *
 * A request walks these phases, in this order:
 *
 *   AUTH     the presented key (keyring)                                  401
 *   ROUTE    the route, size and coding checks, the exchange begun on AI/MCP routes,
 *            endpoints that cannot be metered                   404 413 415 403
 *   BODY     AI/MCP: the body read whole before admission (WAIT until it is), then
 *            read by the exchange; MCP tool rules              408 400 403 + JSON-RPC
 *   ADMIT    the client address (trusted X-Forwarded-For), then billing's admission
 *            (bill.h: pauses, IP rules, in-flight cap, budget, rate and token limits,
 *            every tool of a batch)                             503 403 429 402 400
 *   FORWARD  the upstream request started (proxy.h)                       502
 *   -- then the answer, driven by the upstream's callbacks: --
 *   METER    the answer read by the exchange as it passes; at its end the event gets
 *            model, tokens and the MCP results
 *   SETTLE   billing decides outcome and price and settles the reservations (bill.h)
 *   RECORD   the event pushed to the recorder
 *
 * AUTH to FORWARD are phase functions run by one loop (conn.c, run_phases). Each returns
 * a tg_phase_res_t: NEXT (on to the next phase), ANSWER (refuse with the status, error
 * type, message and event reason given: the loop answers and stops), DONE (the phase
 * answered or handed the request on itself: stop) or WAIT (stop for now: what the phase
 * waits for arrives later on the event loop, and its callback runs the phases again from
 * r->phase, which finds what it waited for). BODY waits for the rest of a held body
 * today; an asynchronous admission (a shared limiter across gateways) is an ADMIT that
 * returns WAIT and is resumed by its answer's callback. A waiting request may end without
 * being resumed (the client leaves, a deadline passes: conn_close records it and frees the
 * connection), so what a phase waits for must be cancellable from there. A new check is
 * a new phase function in the table, in its place in the order. */
#ifndef TG_GATEWAY_REQUEST_H
#define TG_GATEWAY_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "gateway/proxy.h"
#include "gateway/upstream.h"
#include "types/event.h"
#include "policy/policy.h"

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

typedef struct tg_req {
    struct tg_conn *conn; /* the connection carrying it */
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
    int hold_body; /* AI/MCP route: the whole body is read before admission (exchange.h) */
    int metered;   /* the connection's exchange follows this request */
    int64_t body_limit;
    int64_t content_length; /* -1 when chunked or absent */
    tg_config_t *cfg;       /* one reference, given back when the request ends */
    const tg_route_conf_t *route;
    tg_target_t *target;
    int attempts;
    int64_t start_mono;

    /* The head, as offsets into the connection's head buffer. From headers-complete on,
     * url_off / url_len name the canonical request-target (target.h), the one forwarded;
     * match_off / match_len its path as routes and endpoints see it. */
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

    tg_admission_t adm; /* rate-limit headers, the in-flight slot and reservations */
    tg_event_t ev;      /* what is recorded: exactly one per request */
} tg_req_t;

/* The constructor: a request that just began on conn, at mono / wall microseconds, from
 * client_ip (the socket peer's printable form). Everything else starts zero: no route,
 * no admission, tokens unknown; keep_alive until the head says otherwise. */
void tg_req_reset(tg_req_t *r, struct tg_conn *conn, const char *client_ip, int64_t mono_us,
                  int64_t wall_us);

#endif
