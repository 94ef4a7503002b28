/* BODY's signature check: see phases.h and auth/sign.h. The time it judges the timestamp
 * by is the request's start on the gateway's wall clock (the event's ts_us), the same
 * instant the event records. */
#include <string.h>
#include <openssl/crypto.h>

#include "auth/sign.h"
#include "gateway/phases.h"

int tg_ph_sign_wanted(const tg_req_t *r)
{
    switch (r->route->signed_mode) {
    case TG_SIGNED_REQUIRED: return 1;
    case TG_SIGNED_OPTIONAL:
        if (TG_REQ_HDR(r->cx->head, "x-tollgate-signature")) return 1;
        break;
    case TG_SIGNED_OFF: break;
    }
    return tg_config_tenant_signs(r->cfg, r->ev.tenant);
}

tg_phase_res_t tg_ph_sign(tg_req_t *r, int64_t now_us)
{
    (void)now_us; /* monotonic */
    tg_req_ctx_t *cx = r->cx;
    const tg_req_head_t *hd = cx->head;
    const tg_hdr_t *ts = TG_REQ_HDR(hd, "x-tollgate-timestamp");
    const tg_hdr_t *sig = TG_REQ_HDR(hd, "x-tollgate-signature");
    tg_sign_input_t in = {
        .method = r->ev.method,
        .target = hd->target.p + r->url_off,
        .tlen = r->url_len,
        .ts = ts ? tg_hdr_value(hd, ts) : NULL,
        .tslen = ts ? ts->vl : 0,
        .sig = sig ? tg_hdr_value(hd, sig) : NULL,
        .siglen = sig ? sig->vl : 0,
        .body = r->hold_body ? tg_buf_str(cx->body) : NULL,
        .blen = r->hold_body ? tg_buf_len(cx->body) : 0,
        .secret = r->signing,
        .secret_len = r->signing_len,
        .now_s = r->ev.ts_us / 1000000,
        .window_s = r->cfg->signing.window_ms / 1000,
    };
    tg_sign_result_t sr = tg_sign_check(&in, cx->replay, cx->scratch);
    OPENSSL_cleanse(r->signing, sizeof r->signing); /* needed no more */
    r->signing_len = 0;
    if (sr == TG_SIGN_OK) return TG_PHASE_RES(TG_PHASE_NEXT);
    return TG_PHASE_REFUSE(401, "unauthorized", tg_sign_message(sr), tg_sign_reason(sr));
}
