/* The request's phases (the list and what each returns: request.h), one module each, and
 * the loop that runs them (pipeline.c).
 *
 * A phase is a function of the request and the time (the monotonic clock's microseconds,
 * read once by its caller) with a result. It reads the head through r->cx->head, holds the
 * request to the config r->cfg and its route, and asks the connection through
 * r->cx->ops for what only the connection can do; none of them sees a socket, so each is
 * unit-tested with values (tests/unit/gateway/test_phases.c). */
#ifndef TG_GATEWAY_PHASES_H
#define TG_GATEWAY_PHASES_H

#include <stdint.h>

#include "gateway/request.h"

typedef tg_phase_res_t (*tg_phase_fn)(tg_req_t *r, int64_t now_us);

/* AUTH (phase_auth.c): the presented key ("Authorization: Bearer KEY" or "x-api-key"),
 * checked against the keyring through the connection's key cache; the event gets tenant
 * and key id, the request the key's signing secret (wiped by BODY's check). 401 with the
 * keyring's reason (missing_key, unknown_key, revoked_key, key_expired at the request's
 * wall-clock start, tenant_disabled). */
tg_phase_res_t tg_ph_auth(tg_req_t *r, int64_t now_us);
/* ROUTE (phase_route.c): the route of the match path (404), the declared body against
 * server.max_body (413), a coded body on an AI/MCP route (415); on AI/MCP routes the
 * exchange begun on the forwarded path and an endpoint that spends out of sight refused
 * (403); a body there is held for BODY. */
tg_phase_res_t tg_ph_route(tg_req_t *r, int64_t now_us);
/* BODY (phase_body.c): a held body is awaited (WAIT; body timer, 100 Continue), a signed
 * request's signature checked (tg_ph_sign), then an AI/MCP body read by the exchange
 * (which may rewrite it); MCP: an unreadable or invalid body, too many
 * tools in a batch (400) and the tool rules (403), answered as JSON-RPC errors. */
tg_phase_res_t tg_ph_body(tg_req_t *r, int64_t now_us);
/* BODY's signature check (phase_sign.c), once a held body is whole and before the
 * exchange reads it: whether the request is checked (set by ROUTE: the route's `signed`,
 * a tenant in signing.required_tenants, or on an optional route the header present), and
 * the check itself (auth/sign.h): 401 with signature_missing, signature_malformed,
 * signature_no_secret, signature_invalid, signature_expired or signature_replayed. */
int tg_ph_sign_wanted(const tg_req_t *r);
tg_phase_res_t tg_ph_sign(tg_req_t *r, int64_t now_us);
/* ADMIT (phase_admit.c): the client address (every X-Forwarded-For line joined, believed
 * only from trusted proxies), then billing's admission (bill.h). */
tg_phase_res_t tg_ph_admit(tg_req_t *r, int64_t now_us);
/* FORWARD (phase_forward.c): 100 Continue for a streamed body, then the upstream request
 * started by the connection; now_us is the upstream call's start (r->up_start_mono, the
 * start of the event's upstream_latency_us). Always DONE. */
tg_phase_res_t tg_ph_forward(tg_req_t *r, int64_t now_us);

/* AUTH to FORWARD, in order (indexed by tg_phase_t). */
extern const tg_phase_fn tg_phases[TG_PHASE_FORWARD + 1];

/* Runs the request's phases from r->phase on (pipeline.c), until one answers (ANSWER: the
 * connection's answer_error), hands the request to the upstream, or waits (then whatever
 * it waits for calls this again). Once it stops for good r->phase is METER. */
void tg_req_run(tg_req_t *r, int64_t now_us);

/* The answer's phases (phase_answer.c), once both halves of the request are over,
 * whatever way. METER's end: the exchange fills model, tokens, JSON-RPC method and tool
 * (a 2xx MCP answer that is not a result gets its reason, which makes it not billable). */
void tg_ph_meter(tg_req_t *r, int64_t now_us);
/* SETTLE: billing's outcome, estimate and price, the reservations settled (bill.h). */
void tg_ph_settle(tg_req_t *r, int64_t now_us);
/* RECORD: the event, one per request, counted in the worker's metrics (r->cx->metrics,
 * observe/metrics.h) and pushed to the recorder. */
void tg_ph_record(tg_req_t *r);
/* The three in order, the latency first (and the upstream latency of a call still open,
 * which ends now): the one place a request's event is finished. */
void tg_req_end(tg_req_t *r, int64_t now_us);

#endif
