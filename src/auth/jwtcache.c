#include "auth/jwtcache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

typedef struct entry {
    unsigned char sha[32];
    int used;
    uint64_t keygen;
    tg_jwt_claims_t claims;
} entry_t;

struct tg_jwt_cache {
    tg_config_t *cfg; /* a reference while entries exist; NULL: none */
    entry_t *slots;   /* TG_JWT_CACHE_SLOTS, or NULL until the first put */
};

tg_jwt_cache_t *tg_jwt_cache_new(void)
{
    return calloc(1, sizeof(tg_jwt_cache_t));
}

static void drop_all(tg_jwt_cache_t *c)
{
    if (c->slots) memset(c->slots, 0, TG_JWT_CACHE_SLOTS * sizeof *c->slots);
    if (c->cfg) tg_config_unref(c->cfg);
    c->cfg = NULL;
}

void tg_jwt_cache_clear(tg_jwt_cache_t *c)
{
    if (c) drop_all(c);
}

void tg_jwt_cache_free(tg_jwt_cache_t *c)
{
    if (!c) return;
    drop_all(c);
    free(c->slots);
    free(c);
}

static entry_t *slot_of(tg_jwt_cache_t *c, const unsigned char sha[32])
{
    uint32_t h;
    memcpy(&h, sha, sizeof h);
    return &c->slots[h % TG_JWT_CACHE_SLOTS];
}

int tg_jwt_cache_get(tg_jwt_cache_t *c, const tg_config_t *cfg, uint64_t keygen,
                     const unsigned char sha[32], int64_t now_us, tg_jwt_claims_t *out)
{
    if (!c || !c->slots || c->cfg != cfg) return -1;
    const entry_t *e = slot_of(c, sha);
    if (!e->used || e->keygen != keygen || CRYPTO_memcmp(e->sha, sha, 32) != 0) return -1;
    tg_jwt_result_t r = tg_jwt_check_times(&cfg->jwt, &e->claims, now_us);
    if (r == TG_JWT_OK) *out = e->claims;
    return (int)r;
}

void tg_jwt_cache_put(tg_jwt_cache_t *c, tg_config_t *cfg, uint64_t keygen,
                      const unsigned char sha[32], const tg_jwt_claims_t *cl)
{
    if (!c) return;
    if (!c->slots && !(c->slots = calloc(TG_JWT_CACHE_SLOTS, sizeof *c->slots))) return;
    if (c->cfg != cfg) {
        drop_all(c);
        c->cfg = tg_config_ref(cfg);
    }
    entry_t *e = slot_of(c, sha);
    memcpy(e->sha, sha, 32);
    e->used = 1;
    e->keygen = keygen;
    e->claims = *cl;
}
