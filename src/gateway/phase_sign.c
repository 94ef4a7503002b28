/* BODY's signature check: see phases.h and auth/sign.h. The time it judges the timestamp
 * by is the request's start on the gateway's wall clock (the event's ts_us), the same
 * instant the event records.
 *
 * With limits.backend redis:// an accepted signature is then claimed in Redis (SET NX PX:
 * redis/client.h's tg_redis_claim, the key and time of auth/replay.h), so a replay sent to
 * another gateway sharing the Redis is refused too. The process's cache stays in front: a
 * replay to this process is refused without a round trip, and only a signature it finds
 * fresh costs one. The phase WAITs for the answer; its callback runs the phases again from
 * BODY, which comes back here and finds the verdict in r->claim (the signing secret is
 * wiped by then: the check is not run twice). No answer (Redis down, or slower than
 * limits.timeout) follows limits.on_backend_down, the one setting for "Redis cannot
 * answer": deny refuses with 503 (a replay to another gateway cannot be ruled out), local
 * and allow accept on this process's word (counted, and the client's "down" warning is
 * logged): the window in which another gateway would take a replay is the outage's, and
 * an operator who keeps serving while the limits are local has chosen availability. */
#include <string.h>
#include <openssl/crypto.h>

#include "auth/sign.h"
#include "gateway/phases.h"
#include "redis/client.h"
#include "util/clock.h"

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

static void on_claim(void *ud, tg_redis_claim_t res)
{
    tg_req_t *r = ud;
    r->ticket = NULL;
    r->claim = res == TG_REDIS_CLAIMED ? TG_CLAIM_FRESH
               : res == TG_REDIS_TAKEN ? TG_CLAIM_TAKEN
                                       : TG_CLAIM_UNANSWERED;
    if (r->resp_done) return; /* answered meanwhile (see phase_admit.c's on_shared) */
    tg_req_run(r, tg_mono_us());
}

static tg_phase_res_t refuse(tg_sign_result_t sr)
{
    return TG_PHASE_REFUSE(401, "unauthorized", tg_sign_message(sr), tg_sign_reason(sr));
}

/* What Redis said, or limits.on_backend_down without an answer. */
static tg_phase_res_t claimed(const tg_req_t *r)
{
    switch (r->claim) {
    case TG_CLAIM_FRESH: return TG_PHASE_RES(TG_PHASE_NEXT);
    case TG_CLAIM_TAKEN: return refuse(TG_SIGN_REPLAYED);
    default: break;
    }
    if (r->cfg->limits.on_down == TG_LIMITS_DOWN_DENY)
        return TG_PHASE_REFUSE(503, "replay_check_unavailable",
                               "the shared replay cache cannot be reached; try again later",
                               "signature_replay_unchecked");
    return TG_PHASE_RES(TG_PHASE_NEXT);
}

tg_phase_res_t tg_ph_sign(tg_req_t *r, int64_t now_us)
{
    (void)now_us; /* monotonic */
    if (r->claim == TG_CLAIM_WAITING) return TG_PHASE_RES(TG_PHASE_WAIT);
    if (r->claim != TG_CLAIM_NONE) return claimed(r);
    tg_req_ctx_t *cx = r->cx;
    const tg_req_head_t *hd = cx->head;
    const tg_hdr_t *ts = TG_REQ_HDR(hd, "x-tollgate-timestamp");
    const tg_hdr_t *sig = TG_REQ_HDR(hd, "x-tollgate-signature");
    const tg_hdr_t *nonce = TG_REQ_HDR(hd, "x-tollgate-nonce");
    tg_sign_input_t in = {
        .method = r->ev.method,
        .target = hd->target.p + r->url_off,
        .tlen = r->url_len,
        .ts = ts ? tg_hdr_value(hd, ts) : NULL,
        .tslen = ts ? ts->vl : 0,
        .sig = sig ? tg_hdr_value(hd, sig) : NULL,
        .siglen = sig ? sig->vl : 0,
        .nonce = nonce ? tg_hdr_value(hd, nonce) : NULL,
        .nlen = nonce ? nonce->vl : 0,
        .body = r->hold_body ? tg_buf_str(cx->body) : NULL,
        .blen = r->hold_body ? tg_buf_len(cx->body) : 0,
        .body_sha256 = r->hold_body && r->body_sha_set ? r->ev.body_sha_in : NULL,
        .secret = r->signing,
        .secret_len = r->signing_len,
        .now_s = r->ev.ts_us / 1000000,
        .window_s = r->cfg->signing.window_ms / 1000,
        .who = r->ev.key_id,
    };
    tg_sign_seen_t seen;
    tg_sign_result_t sr = tg_sign_check(&in, cx->replay, cx->scratch, &seen);
    OPENSSL_cleanse(r->signing, sizeof r->signing); /* needed no more */
    r->signing_len = 0;
    if (sr != TG_SIGN_OK) return refuse(sr);
    if (!cx->shared) return TG_PHASE_RES(TG_PHASE_NEXT);
    char key[TG_REPLAY_KEY_SIZE];
    size_t kl = tg_replay_key(seen.mac, key);
    if (kl)
        r->ticket = tg_redis_claim(cx->shared, key, kl,
                                   tg_replay_ttl_ms(seen.ts_s, in.window_s, in.now_s), on_claim, r);
    if (!r->ticket) {
        r->claim = TG_CLAIM_UNANSWERED; /* down: at once */
        return claimed(r);
    }
    r->claim = TG_CLAIM_WAITING;
    return TG_PHASE_RES(TG_PHASE_WAIT);
}
