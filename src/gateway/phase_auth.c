/* AUTH: the presented credential, an API key or a JWT (phases.h). */
#include <string.h>
#include <openssl/crypto.h>

#include "auth/apikey.h"
#include "auth/jwt.h"
#include "auth/jwtcache.h"
#include "auth/keyring.h"
#include "gateway/phases.h"

/* The presented credential: "Authorization: Bearer X" or "x-api-key: X". */
static void credential(const tg_req_head_t *hd, const char **secret, size_t *len)
{
    *secret = NULL;
    *len = 0;
    for (size_t i = 0; i < hd->nhdrs; i++) {
        const tg_hdr_t *h = &hd->hdrs[i];
        const char *v = tg_hdr_value(hd, h);
        if (TG_HDR_IS(hd, h, "authorization") && h->vl > TG_LIT_LEN("bearer ") &&
            strncasecmp(v, TG_LIT("bearer ")) == 0) {
            *secret = v + TG_LIT_LEN("bearer ");
            *len = h->vl - TG_LIT_LEN("bearer ");
            while (*len && **secret == ' ')
                (*secret)++, (*len)--;
            return;
        }
        if (TG_HDR_IS(hd, h, "x-api-key")) {
            *secret = v;
            *len = h->vl;
            return;
        }
    }
}

/* The auth methods of the request's route (config.h): the route is looked up here only
 * when some route has its own (ROUTE looks it up again, with its refusals). */
static unsigned methods_of(const tg_req_t *r)
{
    const tg_route_conf_t *route = NULL;
    if (r->cfg->auth_per_route)
        route = tg_config_route(r->cfg, r->cx->head->target.p + r->match_off, r->match_len);
    return tg_config_auth(r->cfg, route);
}

/* A JWT: verified (auth/jwt.h) at the request's wall-clock start, then its tenant (and key
 * claim) looked up in the keyring's snapshot like a key's. */
static tg_phase_res_t auth_jwt(tg_req_t *r, const char *tok, size_t len, int64_t now_us)
{
    tg_req_ctx_t *cx = r->cx;
    TG_EVENT_SET(&r->ev, auth, "jwt", 3);
    if (cx->jwks) tg_jwks_watch_poll(cx->jwks, now_us);
    const tg_jwks_t *ks = cx->jwks ? tg_jwks_watch_acquire(cx->jwks) : NULL;
    uint64_t keygen = cx->jwks ? tg_jwks_watch_generation(cx->jwks) : 0; /* ks's own */
    unsigned char sha[32];
    tg_apikey_hash(tok, len, sha);
    tg_jwt_claims_t cl;
    int known = tg_jwt_cache_get(cx->jwtcache, r->cfg, keygen, sha, r->ev.ts_us, &cl);
    tg_jwt_result_t jr = known >= 0 ? (tg_jwt_result_t)known
                                    : tg_jwt_verify(&r->cfg->jwt, ks, tok, len, r->ev.ts_us, &cl);
    if (known < 0 && jr == TG_JWT_OK) tg_jwt_cache_put(cx->jwtcache, r->cfg, keygen, sha, &cl);
    if (cx->jwks) tg_jwks_watch_release(cx->jwks);
    if (jr != TG_JWT_OK)
        return TG_PHASE_REFUSE(401, "unauthorized", "invalid token", tg_jwt_result_reason(jr));
    TG_EVENT_SET(&r->ev, subject, cl.sub, strlen(cl.sub));
    tg_auth_result_t ar = tg_keyring_check_tenant(cx->keys, cl.tenant, cl.key_id, r->ev.ts_us);
    if (ar != TG_AUTH_NO_TENANT) TG_EVENT_SET(&r->ev, tenant, cl.tenant, strlen(cl.tenant));
    if (ar != TG_AUTH_NO_TENANT && ar != TG_AUTH_UNKNOWN)
        TG_EVENT_SET(&r->ev, key_id, cl.key_id, strlen(cl.key_id));
    switch (ar) {
    case TG_AUTH_OK: return TG_PHASE_RES(TG_PHASE_NEXT);
    case TG_AUTH_NO_TENANT:
        return TG_PHASE_REFUSE(401, "unauthorized", "invalid token", "jwt_unknown_tenant");
    case TG_AUTH_DISABLED:
        return TG_PHASE_REFUSE(401, "unauthorized", "tenant disabled", "tenant_disabled");
    case TG_AUTH_REVOKED:
        return TG_PHASE_REFUSE(401, "unauthorized", "API key revoked", "revoked_key");
    case TG_AUTH_EXPIRED:
        return TG_PHASE_REFUSE(401, "unauthorized", "API key expired", "key_expired");
    default: return TG_PHASE_REFUSE(401, "unauthorized", "invalid token", "jwt_unknown_key");
    }
}

tg_phase_res_t tg_ph_auth(tg_req_t *r, int64_t now_us)
{
    const char *secret;
    size_t slen;
    credential(r->cx->head, &secret, &slen);
    unsigned methods = r->cfg->auth == TG_AUTH_API_KEY && !r->cfg->auth_per_route ? TG_AUTH_API_KEY
                                                                                  : methods_of(r);
    if (secret && (methods & TG_AUTH_JWT) &&
        (tg_jwt_looks_like(secret, slen) || !(methods & TG_AUTH_API_KEY)))
        return auth_jwt(r, secret, slen, now_us);
    if (!(methods & TG_AUTH_API_KEY))
        return TG_PHASE_REFUSE(401, "unauthorized", "missing token (Authorization: Bearer JWT)",
                               "missing_token");
    /* A key's expiry is a wall-clock instant: the request's start (now_us is monotonic). */
    tg_key_match_t m;
    tg_auth_result_t ar =
        tg_keyring_check(r->cx->keys, r->cx->keycache, secret, slen, r->ev.ts_us, &m);
    if (ar != TG_AUTH_MISSING) TG_EVENT_SET(&r->ev, auth, "api_key", 7);
    if (ar != TG_AUTH_MISSING && ar != TG_AUTH_UNKNOWN) {
        TG_EVENT_SET(&r->ev, tenant, m.tenant, strlen(m.tenant));
        TG_EVENT_SET(&r->ev, key_id, m.key_id, strlen(m.key_id));
    }
    if (ar == TG_AUTH_OK) {
        memcpy(r->signing, m.signing, m.signing_len);
        r->signing_len = m.signing_len;
        OPENSSL_cleanse(&m, sizeof m);
        return TG_PHASE_RES(TG_PHASE_NEXT);
    }
    static const char *const msgs[] = {
        [TG_AUTH_MISSING] = "missing API key (Authorization: Bearer KEY or x-api-key)",
        [TG_AUTH_UNKNOWN] = "invalid API key",
        [TG_AUTH_REVOKED] = "API key revoked",
        [TG_AUTH_DISABLED] = "tenant disabled",
        [TG_AUTH_NO_TENANT] = "invalid API key",
        [TG_AUTH_EXPIRED] = "API key expired",
    };
    return TG_PHASE_REFUSE(401, "unauthorized", msgs[ar], tg_auth_result_reason(ar));
}
