/* The keyring: an in-memory snapshot of every API key (by SHA-256) with its
 * tenant, status, expiry and signing secret, so authenticating a request touches no store.
 * An expired key is refused at the request's instant from the snapshot alone: the store
 * row does not change when a key's time runs out, so no reload is needed for it.
 *
 * Signing secrets are sealed in the store (crypt/crypt.h); the snapshot holds them opened,
 * in memory only, when the keyring was given the KEK (tg_keyring_set_kek). Without it, or
 * when a secret does not open, the key has no secret here and its signed requests fail.
 *
 * A refresher thread polls tg_store_auth_version() every 250 ms and rebuilds
 * the snapshot when another process changed tenants or keys, which is how a
 * revoked key or a disabled tenant is refused within a second. Lookups take a
 * read lock; the swap takes the write lock for one pointer store. */
#ifndef TG_AUTH_KEYRING_H
#define TG_AUTH_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "crypt/crypt.h"
#include "store/store.h"
#include "util/err.h"
#include "util/sizes.h"

typedef enum {
    TG_AUTH_OK = 0,
    TG_AUTH_MISSING,   /* no credential presented */
    TG_AUTH_UNKNOWN,   /* no such key */
    TG_AUTH_REVOKED,   /* key revoked */
    TG_AUTH_DISABLED,  /* tenant disabled */
    TG_AUTH_NO_TENANT, /* a JWT's tenant is not in the store */
    TG_AUTH_EXPIRED,   /* key past its expires_us (`key create --expires`, `key rotate`) */
} tg_auth_result_t;

const char *tg_auth_result_reason(tg_auth_result_t r); /* "unknown_key", ... */

typedef struct tg_keyring tg_keyring_t;

tg_keyring_t *tg_keyring_new(void);
void tg_keyring_free(tg_keyring_t *kr);

/* The KEK that opens signing secrets (copied; NULL: none), for the loads after it. */
void tg_keyring_set_kek(tg_keyring_t *kr, const tg_kek_t *kek);

/* Rebuilds the snapshot from the store now. */
int tg_keyring_load(tg_keyring_t *kr, tg_store_t *store, tg_err_t *err);

/* Starts the refresher thread on its own store connection (opened from url). */
int tg_keyring_start_refresh(tg_keyring_t *kr, const char *store_url, long interval_ms,
                             tg_err_t *err);
void tg_keyring_stop_refresh(tg_keyring_t *kr);
/* The store's auth_version the refresher last loaded; -1 before (store/watch.h). */
int64_t tg_keyring_loaded_version(const tg_keyring_t *kr);

/* What a matched key tells the request. The signing secret is a copy: wipe it
 * (OPENSSL_cleanse) when the request is over. */
typedef struct tg_key_match {
    char tenant[TG_TENANT_SIZE];
    char key_id[32];
    size_t signing_len; /* 0: the key has no signing secret (or it could not be opened) */
    char signing[TG_SIGNING_SECRET_LEN + 1];
} tg_key_match_t;

/* The last secret a keep-alive connection presented and its SHA-256, so the next request
 * presenting the same bytes (the usual case: one client, one key) is not hashed again. The
 * lookup in the current snapshot still happens every time, so a revoked key or a disabled
 * tenant is refused as soon as the snapshot says so. The secret is compared in constant
 * time and wiped by tg_keycache_clear (call it when the connection ends). Zero-initialise. */
typedef struct tg_keycache {
    size_t len; /* 0: empty */
    unsigned char sha256[32];
    char secret[96];
} tg_keycache_t;

/* Authenticates a presented secret at now_us (wall clock, microseconds: the request's
 * instant), through cache (may be NULL). On TG_AUTH_OK fills out whole; on REVOKED,
 * EXPIRED and DISABLED the tenant and key id only (the event names them). Thread-safe. */
tg_auth_result_t tg_keyring_check(tg_keyring_t *kr, tg_keycache_t *cache, const char *secret,
                                  size_t len, int64_t now_us, tg_key_match_t *out);

void tg_keycache_clear(tg_keycache_t *cache);

/* For a verified JWT (auth/jwt.h): TG_AUTH_OK when tenant exists and is active and, when
 * key_id is not empty (jwt.key_claim), that key is the tenant's, active and not expired at
 * now_us (wall clock); else TG_AUTH_NO_TENANT, TG_AUTH_DISABLED, TG_AUTH_UNKNOWN (no such key
 * of this tenant), TG_AUTH_REVOKED or TG_AUTH_EXPIRED. Thread-safe; looks up the same
 * snapshot as tg_keyring_check, so a disabled tenant is refused as soon as the refresher has
 * seen it. */
tg_auth_result_t tg_keyring_check_tenant(tg_keyring_t *kr, const char *tenant, const char *key_id,
                                         int64_t now_us);

/* Number of keys in the current snapshot. */
size_t tg_keyring_size(tg_keyring_t *kr);

#endif
