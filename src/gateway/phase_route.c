/* ROUTE: the route, what it accepts, and on AI/MCP routes the exchange begun (phases.h). */
#include <string.h>
#include <openssl/crypto.h>

#include "gateway/phases.h"
#include "meter/exchange.h"

/* A refusal: AUTH's copy of the signing secret is wiped first, as BODY wipes it once
 * checked (a request refused here never reaches BODY, and the copy would stay in the
 * connection's memory until its next request, or in the heap after its free). */
static tg_phase_res_t refuse(tg_req_t *r, tg_phase_res_t res)
{
    if (r->signing_len) OPENSSL_cleanse(r->signing, sizeof r->signing);
    r->signing_len = 0;
    return res;
}

tg_phase_res_t tg_ph_route(tg_req_t *r, int64_t now_us)
{
    (void)now_us;
    tg_req_ctx_t *cx = r->cx;
    const tg_req_head_t *hd = cx->head;
    const char *mpath = hd->target.p + r->match_off;
    size_t plen = r->match_len;
    r->route = tg_config_route(r->cfg, mpath, plen);
    if (!r->route)
        return refuse(r, TG_PHASE_REFUSE(404, "not_found", "no route for this path", "no_route"));
    TG_EVENT_SET(&r->ev, route, r->route->name, strlen(r->route->name));
    if (r->content_length > r->body_limit)
        return refuse(r, TG_PHASE_REFUSE(413, "payload_too_large",
                                         "request body is larger than server.max_body",
                                         "body_too_large"));
    for (size_t i = 0; r->route->kind != TG_ROUTE_HTTP && i < hd->nhdrs; i++)
        if (TG_HDR_IS(hd, &hd->hdrs[i], "content-encoding") &&
            tg_xchg_request_coded(tg_hdr_value(hd, &hd->hdrs[i]), hd->hdrs[i].vl))
            return refuse(
                r,
                TG_PHASE_REFUSE(415, "unsupported_media_type",
                                "a compressed request body (Content-Encoding) is not accepted here",
                                "content_encoding")); /* (see tg_xchg_request_coded) */
    /* A signature covers the body's hash: a signed request's body is read whole first (at
     * most server.max_body; a larger streamed one is refused with 413), on any route. */
    r->sign = tg_ph_sign_wanted(r);
    if (r->sign)
        r->hold_body = r->has_body;
    else if (r->signing_len) { /* AUTH's copy of the signing secret, not needed */
        OPENSSL_cleanse(r->signing, sizeof r->signing);
        r->signing_len = 0;
    }
    if (r->route->kind == TG_ROUTE_HTTP) return TG_PHASE_RES(TG_PHASE_NEXT);
    if (!cx->xchg && !(cx->xchg = tg_xchg_new()))
        return refuse(r, TG_PHASE_REFUSE(503, "unavailable", "out of memory", "out_of_memory"));
    /* The endpoint is the path as forwarded, not as routes match it: a path the
     * upstream may read as another endpoint ("/v1/chat/completions/", ";a=b",
     * "%2F..%2Fmoderations") is one tollgate does not recognise, metered from its
     * answer's usage or on an estimate; never free, never unmetered. */
    const char *fpath = hd->target.p + r->url_off;
    const char *q = memchr(fpath, '?', r->url_len);
    size_t flen = q ? (size_t)(q - fpath) : r->url_len;
    tg_xchg_begin(cx->xchg, r->route->kind, fpath, flen);
    tg_xchg_set_max_body(cx->xchg, r->body_limit);
    tg_xchg_set_decoded_max(cx->xchg, r->cfg->server.max_decoded_body);
    if (r->cfg->audit_bodies == TG_BODIES_ENCRYPT)
        tg_xchg_keep_answer(cx->xchg, r->cfg->audit_max_body);
    else if (r->cfg->audit_bodies == TG_BODIES_HASH)
        tg_xchg_hash_answer(cx->xchg);
    r->metered = 1;
    if (tg_xchg_offside(r->route->kind, fpath, flen, r->has_body) ||
        tg_xchg_offside(r->route->kind, mpath, plen, r->has_body))
        /* A credential for the upstream or work billed later: nothing tollgate could
         * meter or hold to the tenant's limits (exchange.h). */
        return refuse(r, TG_PHASE_REFUSE(403, "endpoint_not_metered",
                                         "this endpoint spends outside the request and cannot "
                                         "be metered on this route",
                                         "endpoint_not_metered"));
    /* The body says what is asked (model, tokens, tools): admission waits for
     * all of it (at most server.max_body), see tg_ph_body. */
    r->hold_body = r->has_body;
    return TG_PHASE_RES(TG_PHASE_NEXT);
}
