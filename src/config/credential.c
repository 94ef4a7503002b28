/* An upstream's credentials in turn: see credential.h. The value is split once at load
 * (tg_header_conf_t.cred_at), so a request copies three pieces and searches nothing. */
#include "config/credential.h"

#include <string.h>

const char *tg_cred_next(tg_upstream_conf_t *u)
{
    if (u->ncredentials == 0) return NULL;
    unsigned k = atomic_fetch_add_explicit(&u->cred_rr, 1, memory_order_relaxed);
    return u->credentials[k % u->ncredentials];
}

size_t tg_cred_value_len(const tg_header_conf_t *h, const char *cred)
{
    size_t n = strlen(h->value);
    if (h->cred_at < 0) return n;
    return n - TG_CRED_MARK_LEN + (cred ? strlen(cred) : 0);
}

char *tg_cred_value(const tg_header_conf_t *h, const char *cred, char *out)
{
    size_t n = strlen(h->value);
    if (h->cred_at < 0) {
        memcpy(out, h->value, n);
        return out + n;
    }
    size_t at = (size_t)h->cred_at, c = cred ? strlen(cred) : 0;
    memcpy(out, h->value, at);
    out += at;
    memcpy(out, cred, c);
    out += c;
    size_t rest = n - at - TG_CRED_MARK_LEN;
    memcpy(out, h->value + at + TG_CRED_MARK_LEN, rest);
    return out + rest;
}
