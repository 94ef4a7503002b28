/* Making and rotating API keys in the store: see keyops.h. These steps lived in cli/key.c
 * until the admin API needed the same ones. */
#include "auth/keyops.h"

#include <stdio.h>
#include <string.h>

#include "util/duration.h"
#include "util/log.h"

void tg_key_made_wipe(tg_key_made_t *made)
{
    explicit_bzero(made, sizeof *made);
}

int tg_key_parse_grace(const char *s, int64_t *out_s)
{
    long long ms;
    /* A unit is needed (a bare number would be milliseconds), except for 0. */
    if (strspn(s, "0123456789") == strlen(s) && strcmp(s, "0") != 0) return -1;
    if (tg_duration_parse(s, TG_KEY_GRACE_MAX_S * 1000LL, &ms) != 0) return -1;
    *out_s = ms / 1000;
    return 0;
}

/* A fresh signing secret into made, sealed for its key (AAD: the key's id). */
static tg_keyop_t make_signing(const tg_kek_t *kek, tg_key_made_t *made, tg_err_t *err)
{
    tg_key_t *k = &made->key;
    unsigned char *blob = NULL;
    size_t bl = 0;
    if (tg_apikey_signing_secret(made->signing) != 0) return TG_KEYOP_RANDOM;
    if (tg_crypt_seal(kek, made->signing, TG_SIGNING_SECRET_LEN, k->id, strlen(k->id), &blob, &bl,
                      err) != 0)
        return TG_KEYOP_STORE;
    TG_ASSERT(bl == sizeof k->signing_sealed);
    memcpy(k->signing_sealed, blob, bl);
    k->signing = 1;
    tg_crypt_free(blob, bl);
    return TG_KEYOP_OK;
}

static tg_keyop_t make(tg_store_t *s, const tg_kek_t *kek, const tg_key_spec_t *spec,
                       const char *rotated_from, int64_t now_us, tg_key_made_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (spec->signing && !kek) return TG_KEYOP_NEED_KEK;
    tg_tenant_t t;
    int r = tg_store_tenant_get(s, spec->tenant, &t, err);
    if (r == TG_STORE_NOTFOUND) return TG_KEYOP_NO_TENANT;
    if (r != 0) return TG_KEYOP_STORE;
    snprintf(out->tenant_status, sizeof out->tenant_status, "%s", t.status);
    tg_key_t *k = &out->key;
    char prefix[TG_APIKEY_PREFIX_LEN + 1];
    if (spec->import ? tg_apikey_import(spec->import, spec->import_len, k->id, prefix, k->sha256)
                     : tg_apikey_generate(out->secret, k->id, prefix, k->sha256))
        return TG_KEYOP_RANDOM;
    snprintf(k->tenant_id, sizeof k->tenant_id, "%s", t.id);
    snprintf(k->prefix, sizeof k->prefix, "%s", prefix);
    snprintf(k->name, sizeof k->name, "%s", spec->name ? spec->name : "");
    snprintf(k->status, sizeof k->status, "active");
    k->created_us = now_us;
    k->expires_us = spec->expires_us;
    if (rotated_from) snprintf(k->rotated_from, sizeof k->rotated_from, "%s", rotated_from);
    tg_keyop_t rc;
    if (spec->signing && (rc = make_signing(kek, out, err)) != TG_KEYOP_OK) return rc;
    r = tg_store_key_add(s, k, err);
    if (r == TG_STORE_NOTFOUND) return TG_KEYOP_NO_TENANT; /* removed since we looked */
    if (r == TG_STORE_EXISTS && spec->import) return TG_KEYOP_EXISTS;
    return r == 0 ? TG_KEYOP_OK : TG_KEYOP_STORE;
}

tg_keyop_t tg_key_make(tg_store_t *s, const tg_kek_t *kek, const tg_key_spec_t *spec,
                       int64_t now_us, tg_key_made_t *out, tg_err_t *err)
{
    tg_keyop_t rc = make(s, kek, spec, NULL, now_us, out, err);
    if (rc != TG_KEYOP_OK) tg_key_made_wipe(out);
    return rc;
}

/* The old key's own limits (scope key) for the new key too, so a rotation changes nothing
 * but the secret. */
typedef struct copy_limits {
    tg_store_t *store;
    const char *from, *to;
    int failed;
    tg_err_t err;
} copy_limits_t;

static int copy_limit(const tg_limit_row_t *row, void *ud)
{
    copy_limits_t *c = ud;
    if (strcmp(row->scope, "key") != 0 || strcmp(row->value, c->from) != 0) return 0;
    tg_limit_row_t n = *row;
    snprintf(n.value, sizeof n.value, "%s", c->to);
    if (tg_store_limit_set(c->store, &n, &c->err) != 0) c->failed = 1;
    return 0;
}

typedef struct successor {
    const char *of;
    char *id; /* [32] */
} successor_t;

static int find_successor(const tg_key_t *k, void *ud)
{
    successor_t *f = ud;
    if (strcmp(k->rotated_from, f->of) == 0 && strcmp(k->status, "active") == 0)
        snprintf(f->id, 32, "%s", k->id);
    return 0;
}

tg_keyop_t tg_key_rotate(tg_store_t *s, const tg_kek_t *kek, const char *old_id, int64_t grace_s,
                         int64_t now_us, tg_key_made_t *made, tg_key_rotated_t *rot, tg_err_t *err)
{
    memset(made, 0, sizeof *made);
    memset(rot, 0, sizeof *rot);
    tg_key_t *old = &rot->old;
    int r = tg_store_key_get(s, old_id, old, err);
    if (r == TG_STORE_NOTFOUND) return TG_KEYOP_NO_KEY;
    if (r != 0) return TG_KEYOP_STORE;
    if (strcmp(old->status, "active") != 0) return TG_KEYOP_INACTIVE;
    if (old->expires_us && old->expires_us <= now_us) return TG_KEYOP_EXPIRED;
    if (old->signing && !kek) return TG_KEYOP_NEED_KEK;
    /* One live successor at a time: a second rotation (a client retrying after a timeout,
     * two operators at once) is refused, not a second new key nobody got the secret of.
     * The successor revoked, the key can be rotated again. (Two processes checking at the
     * same instant can still both pass: the admin API runs its calls one at a time.) */
    successor_t f = {old->id, rot->successor};
    if (tg_store_key_list(s, old->tenant_id, find_successor, &f, err) != 0) return TG_KEYOP_STORE;
    if (rot->successor[0]) return TG_KEYOP_ROTATED;
    tg_key_spec_t spec = {.tenant = old->tenant_id, .name = old->name, .signing = old->signing};
    tg_keyop_t rc = make(s, kek, &spec, old->id, now_us, made, err);
    if (rc != TG_KEYOP_OK) {
        tg_key_made_wipe(made);
        return rc;
    }
    copy_limits_t c = {.store = s, .from = old->id, .to = made->key.id};
    rot->limits_copied =
        tg_store_limit_list(s, old->tenant_id, copy_limit, &c, &rot->err_limits) == 0 && !c.failed;
    if (c.failed) rot->err_limits = c.err;
    int64_t until = now_us + grace_s * 1000000;
    r = tg_store_key_expire(s, old->id, until, err);
    if (r == TG_STORE_NOTFOUND) { /* it expires sooner already (or was revoked meanwhile) */
        tg_err_t e2 = {{0}};
        if (tg_store_key_get(s, old->id, old, &e2) == 0) rot->old_expires_us = old->expires_us;
        return TG_KEYOP_OK;
    }
    if (r != 0) return TG_KEYOP_HALF;
    old->expires_us = rot->old_expires_us = until;
    return TG_KEYOP_OK;
}
