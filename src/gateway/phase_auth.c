/* AUTH: the presented key (phases.h). */
#include <string.h>
#include <openssl/crypto.h>

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

tg_phase_res_t tg_ph_auth(tg_req_t *r, int64_t now_us)
{
    (void)now_us; /* monotonic: a key's expiry is a wall-clock instant, the request's start */
    const char *secret;
    size_t slen;
    credential(r->cx->head, &secret, &slen);
    tg_key_match_t m;
    tg_auth_result_t ar =
        tg_keyring_check(r->cx->keys, r->cx->keycache, secret, slen, r->ev.ts_us, &m);
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
        [TG_AUTH_EXPIRED] = "API key expired",
    };
    return TG_PHASE_REFUSE(401, "unauthorized", msgs[ar], tg_auth_result_reason(ar));
}
