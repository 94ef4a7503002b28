/* Making and rotating API keys in the store: the one copy of the steps `tollgate key create
 * | import | rotate` (cli/key.c) and the admin API's POST /tenants/{id}/keys and
 * /keys/{id}/rotate (adminapi) take, so both make the same rows. Each caller checks its
 * own input (options or a JSON body) and words the outcome in its own terms; nothing here
 * prints, logs or reads a clock.
 *
 * A secret exists only in a tg_key_made_t, for as long as the caller takes to show it once:
 * the store gets its SHA-256 and display prefix (auth/apikey.h), and a signing secret sealed
 * by the KEK (crypt/crypt.h, AAD the key's id). tg_key_made_wipe clears it. */
#ifndef TG_AUTH_KEYOPS_H
#define TG_AUTH_KEYOPS_H

#include <stdint.h>

#include "auth/apikey.h"
#include "crypt/crypt.h"
#include "store/store.h"
#include "util/err.h"

#define TG_KEY_GRACE_DEFAULT_S (24 * 3600)       /* `key rotate` without --grace */
#define TG_KEY_GRACE_MAX_S     (365 * 24 * 3600) /* a longer grace is no rotation */

typedef enum {
    TG_KEYOP_OK,
    TG_KEYOP_NO_TENANT, /* no such tenant (or removed meanwhile) */
    TG_KEYOP_NO_KEY,    /* rotate: no key of that id */
    TG_KEYOP_INACTIVE,  /* rotate: the key is revoked */
    TG_KEYOP_EXPIRED,   /* rotate: the key has expired */
    TG_KEYOP_ROTATED,   /* rotate: the key has an active successor already (its id in the
                           tg_key_rotated_t's successor): a retried or concurrent rotation
                           would leave a live key whose secret nobody holds */
    TG_KEYOP_NEED_KEK,  /* a signing secret without a KEK to seal it */
    TG_KEYOP_EXISTS,    /* import: this secret is already a key */
    TG_KEYOP_RANDOM,    /* the system random source failed */
    TG_KEYOP_STORE,     /* the store failed: err */
    TG_KEYOP_HALF,      /* rotate: the new key is made, the old one could not be set to
                           expire (err): both work until the old one is revoked */
} tg_keyop_t;

/* A key just made: its row (never the hash shown), its secret (generated; "" when imported)
 * and its signing secret ("" when none). */
typedef struct tg_key_made {
    tg_key_t key;
    char secret[TG_APIKEY_SECRET_MAX];
    char signing[TG_SIGNING_SECRET_LEN + 1];
    char tenant_status[16]; /* the tenant's, when made: a disabled one's key works once enabled */
} tg_key_made_t;

/* What a new key is: its tenant and name, 0 or when it expires, a signing secret or not. */
typedef struct tg_key_spec {
    const char *tenant, *name;
    int64_t expires_us; /* 0 = never; the caller has checked it is after now */
    int signing;
    const char *import; /* an existing secret (`key import`), checked by the caller; NULL:
                           a new one is generated */
    size_t import_len;
} tg_key_spec_t;

/* Makes a key as spec says at now_us into out; kek NULL when the config has none. */
tg_keyop_t tg_key_make(tg_store_t *s, const tg_kek_t *kek, const tg_key_spec_t *spec,
                       int64_t now_us, tg_key_made_t *out, tg_err_t *err);

/* A rotation's outcome besides the new key. */
typedef struct tg_key_rotated {
    tg_key_t old;           /* the old key as it is now */
    int64_t old_expires_us; /* when the old key stops working */
    int limits_copied;      /* 0: its per-key limits were not all copied (err_limits) */
    tg_err_t err_limits;
    char successor[32]; /* TG_KEYOP_ROTATED: the active key rotated from it already */
} tg_key_rotated_t;

/* `key rotate`: a new key for old_id's tenant and name (a new signing secret if it had
 * one, and its per-key limits), then old_id set to expire grace_s after now_us (unless it
 * expires sooner already). Both work meanwhile; the two steps are not one transaction:
 * TG_KEYOP_HALF when the second failed, with the new key in made (no outage either way). */
tg_keyop_t tg_key_rotate(tg_store_t *s, const tg_kek_t *kek, const char *old_id, int64_t grace_s,
                         int64_t now_us, tg_key_made_t *made, tg_key_rotated_t *rot, tg_err_t *err);

/* --grace and the API's "grace": a whole number with s, m, h or d ("24h"), or 0; at most
 * TG_KEY_GRACE_MAX_S. 0, or -1. */
int tg_key_parse_grace(const char *s, int64_t *out_s);

/* Clears the secrets of made. */
void tg_key_made_wipe(tg_key_made_t *made);

#endif
