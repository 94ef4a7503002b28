/* Admin API tokens (issue 14): an in-memory snapshot of the admin_tokens table (store.h,
 * migration 15), so checking a token on /admin/v1/ touches no store.
 *
 * A token is "tgadm_" + 43 base62 characters (made by `tollgate admin-token create` with the
 * API keys' generator, auth/apikey.h); only its SHA-256 is stored. A refresher thread
 * (store/watch.h) polls meta.auth_version, which adding and revoking bump, and rebuilds the
 * snapshot: a new or revoked token counts within a second, in any process. The same thread
 * writes last_used_us back, at most once a second per token, from the times the checks
 * noted (the admin's loop never waits on the store).
 *
 * A check compares the presented digest with every token's (CRYPTO_memcmp, no early exit),
 * so its time depends on the number of tokens only. */
#ifndef TG_ADMIN_TOKENS_H
#define TG_ADMIN_TOKENS_H

#include <stdint.h>

#include "store/store.h"
#include "util/err.h"
#include "util/sizes.h"

#define TG_ADMIN_TOKEN_PREFIX "tgadm_"

/* Who is calling: what the admin API checks a call against, and its audit record's actor. */
typedef struct tg_admin_principal {
    char actor[48];              /* "config-token" or "admin-token:ID" */
    int read_only;               /* role read: GET (and HEAD) only */
    char tenant[TG_TENANT_SIZE]; /* a read token's scope; "" = every tenant */
} tg_admin_principal_t;

typedef enum {
    TG_ADMIN_TOKEN_OK = 0,
    TG_ADMIN_TOKEN_UNKNOWN,
    TG_ADMIN_TOKEN_EXPIRED,
    TG_ADMIN_TOKEN_REVOKED,
} tg_admin_token_result_t;

typedef struct tg_admin_tokens tg_admin_tokens_t;

tg_admin_tokens_t *tg_admin_tokens_new(void);
/* Stops the refresher, if any, and frees (NULL is fine). */
void tg_admin_tokens_free(tg_admin_tokens_t *t);
/* Rebuilds the snapshot from the store now. */
int tg_admin_tokens_load(tg_admin_tokens_t *t, tg_store_t *s, tg_err_t *err);
/* The refresher, on its own connection to store_url. */
int tg_admin_tokens_start_refresh(tg_admin_tokens_t *t, const char *store_url, long interval_ms,
                                  tg_err_t *err);
/* The store's auth_version the refresher last loaded; -1 before. */
int64_t tg_admin_tokens_loaded_version(const tg_admin_tokens_t *t);

/* Looks sha256 (of the presented token) up at now_us. OK fills *out (and notes the use);
 * EXPIRED (expires_us <= now_us) and REVOKED fill nothing. Any thread. */
tg_admin_token_result_t tg_admin_tokens_check(tg_admin_tokens_t *t, const unsigned char sha256[32],
                                              int64_t now_us, tg_admin_principal_t *out);

/* Writes the noted uses to s (what the refresher does each tick): for tests. */
int tg_admin_tokens_flush(tg_admin_tokens_t *t, tg_store_t *s, tg_err_t *err);

#endif
