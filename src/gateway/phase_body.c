/* BODY: a held AI/MCP body, read whole before admission, then read by the exchange; MCP
 * bodies checked and their tools held to the tool rules (phases.h). Other requests stream
 * their body during FORWARD. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "bill/bill.h"
#include "gateway/phases.h"
#include "meter/exchange.h"
#include "policy/policy.h"
#include "types/bodies.h"

#define MAX_BATCH_TOOLS TG_BILL_MAX_TOOLS /* tools/call in one JSON-RPC batch (more: 400) */

/* The held body's SHA-256 as the client sent it (before the exchange may rewrite it), once
 * (BODY runs again after a wait): the signature's check takes it (phase_sign.c), and with
 * audit.bodies: hash the event carries it to the audit record. */
static void hash_body(tg_req_t *r)
{
    unsigned len = 0;
    const tg_buf_t *b = r->cx->body;
    if (EVP_Digest(tg_buf_str(b), tg_buf_len(b), r->ev.body_sha_in, &len, EVP_sha256(), NULL) !=
            1 ||
        len != 32)
        return; /* (out of memory: the signature computes its own; the record has none) */
    r->body_sha_set = 1;
    if (r->cfg->audit_bodies >= TG_BODIES_HASH) r->ev.body_hashed |= TG_BODY_IN;
}

/* audit.bodies: encrypt: a copy of the held body as the client sent it, its first
 * audit.max_body bytes, handed to the event at RECORD (phase_answer.c) or freed at the
 * request's end. Out of memory: the record says "dropped". */
static void keep_body(tg_req_t *r)
{
    const tg_buf_t *b = r->cx->body;
    size_t n = tg_buf_len(b), max = r->cfg->audit_max_body;
    if (n > max) {
        n = max;
        r->keep_flags |= TG_BODIES_IN_TRUNC;
    }
    r->keep_in = malloc(n ? n : 1);
    if (!r->keep_in) return;
    memcpy(r->keep_in, tg_buf_str(b), n);
    r->keep_in_len = n;
    r->keep_flags |= TG_BODIES_HAS_IN;
}

tg_phase_res_t tg_ph_body(tg_req_t *r, int64_t now_us)
{
    tg_req_ctx_t *cx = r->cx;
    if (r->hold_body && !r->msg_done) {
        /* A held body has no upstream to time it: a client that stops sending it gets 408
         * after server.header_timeout without progress (re-armed as bytes come), or once
         * server.body_timeout has passed since the head. */
        r->body_deadline_us = now_us + (int64_t)r->cfg->server.body_timeout_ms * 1000;
        cx->ops->arm_body_timer(r);
        cx->ops->send_continue(r);
        return TG_PHASE_RES(TG_PHASE_WAIT);
    }
    if (r->hold_body && !r->body_sha_set && (r->sign || r->cfg->audit_bodies >= TG_BODIES_HASH)) {
        hash_body(r);
        if (r->cfg->audit_bodies == TG_BODIES_ENCRYPT && !r->keep_in) keep_body(r);
    }
    if (r->sign) { /* before the exchange reads (or rewrites) the body */
        tg_phase_res_t sr = tg_ph_sign(r, now_us);
        if (sr.rc != TG_PHASE_NEXT) return sr;
    }
    if (!r->hold_body || r->route->kind == TG_ROUTE_HTTP) return TG_PHASE_RES(TG_PHASE_NEXT);
    const char *nb;
    size_t nl;
    tg_xchg_request(cx->xchg, tg_buf_str(cx->body), tg_buf_len(cx->body), &nb, &nl);
    if (nb && cx->ops->set_body(r, nb, nl) != 0)
        return TG_PHASE_REFUSE(503, "unavailable", "out of memory", "out_of_memory");
    r->content_length = (int64_t)tg_buf_len(cx->body);
    r->has_body = tg_buf_len(cx->body) > 0;
    const char *model = tg_xchg_model(cx->xchg);
    if (model[0]) TG_EVENT_SET(&r->ev, model, model, strlen(model));
    if (r->route->kind == TG_ROUTE_MCP && tg_xchg_request_unreadable(cx->xchg)) {
        /* Tool rules, tool limits and prices need the calls: a body tollgate cannot read
         * is refused, never forwarded unchecked. */
        static const char perr[] =
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":"
            "\"Parse error: the request body is not JSON tollgate can read\"}}\n";
        cx->ops->answer_json(r, 400, perr, sizeof perr - 1, "malformed_request");
        return TG_PHASE_RES(TG_PHASE_DONE);
    }
    const char *invalid = tg_xchg_mcp_invalid(cx->xchg);
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
        cx->ops->answer_json(r, 400, body, bl, "malformed_request");
        return TG_PHASE_RES(TG_PHASE_DONE);
    }
    if (tg_xchg_unknown_endpoint(cx->xchg))
        TG_EVENT_SET(&r->ev, reason, "endpoint_unknown", TG_LIT_LEN("endpoint_unknown"));
    size_t ntools = tg_xchg_ntools(cx->xchg);
    if (ntools > MAX_BATCH_TOOLS) {
        static const char many[] =
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
            "\"Invalid request: more than 64 tools/call in one batch\"}}\n";
        cx->ops->answer_json(r, 400, many, sizeof many - 1, "malformed_request");
        return TG_PHASE_RES(TG_PHASE_DONE);
    }
    for (size_t i = 0; i < ntools; i++) {
        const char *tool = tg_xchg_tool(cx->xchg, i);
        if (i == 0) TG_EVENT_SET(&r->ev, tool, tool, strlen(tool));
        if (tg_policy_tool_allowed(cx->policy, r->ev.tenant, tool)) continue;
        char msg[256], body[4096];
        snprintf(msg, sizeof msg, "tool \"%.128s\" is not allowed for this tenant", tool);
        size_t bl = tg_xchg_mcp_error(cx->xchg, msg, body, sizeof body - 1);
        if (bl == 0) {
            cx->ops->answer_error(r, 403, "forbidden", msg, "tool_denied");
            return TG_PHASE_RES(TG_PHASE_DONE);
        }
        body[bl++] = '\n';
        cx->ops->answer_json(r, 403, body, bl, "tool_denied");
        return TG_PHASE_RES(TG_PHASE_DONE);
    }
    return TG_PHASE_RES(TG_PHASE_NEXT);
}
