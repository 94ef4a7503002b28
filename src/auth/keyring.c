/* Keyring: see keyring.h. The snapshot is an open-addressing table indexed by
 * the first 8 bytes of the SHA-256 (already uniformly distributed, so no
 * second hash). The full 32 bytes are then compared in constant time. */
#include "auth/keyring.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <openssl/crypto.h>

#include "auth/apikey.h"
#include "store/watch.h"
#include "util/log.h"
#include "util/rwlock.h"

typedef struct entry {
    unsigned char sha256[32];
    char key_id[32];
    char tenant[TG_TENANT_SIZE];
    unsigned char used, key_active, tenant_active;
    unsigned char signing_len; /* 0: none */
    int64_t expires_us;        /* 0: never */
    char signing[TG_SIGNING_SECRET_LEN + 1];
} entry_t;

/* A tenant and its status, for JWTs (which name a tenant, not a key). */
typedef struct tenant {
    char id[TG_TENANT_SIZE];
    unsigned char active;
} tenant_t;

typedef struct snapshot {
    entry_t *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t count;
    tenant_t *tenants; /* every tenant, sorted by id (bsearch) */
    size_t ntenants;
    const entry_t **by_id; /* the keys sorted by key_id (bsearch): jwt.key_claim */
} snapshot_t;

struct tg_keyring {
    pthread_rwlock_t lock; /* guards snap (the pointer; a snapshot is immutable) */
    snapshot_t *snap;
    int has_kek; /* set before the refresher starts, read by loads only */
    tg_kek_t kek;
    tg_watch_t *watch; /* the refresher (store/watch.h); start/stop only */
};

const char *tg_auth_result_reason(tg_auth_result_t r)
{
    switch (r) {
    case TG_AUTH_OK: return "";
    case TG_AUTH_MISSING: return "missing_key";
    case TG_AUTH_UNKNOWN: return "unknown_key";
    case TG_AUTH_REVOKED: return "revoked_key";
    case TG_AUTH_DISABLED: return "tenant_disabled";
    case TG_AUTH_NO_TENANT: return "unknown_tenant";
    case TG_AUTH_EXPIRED: return "key_expired";
    }
    return "unauthorized";
}

static uint64_t slot_of(const unsigned char sha[32])
{
    uint64_t h;
    memcpy(&h, sha, sizeof h);
    return h;
}

static void snap_free(snapshot_t *s)
{
    if (!s) return;
    OPENSSL_cleanse(s->slots, (s->mask + 1) * sizeof *s->slots); /* the signing secrets */
    free(s->slots);
    free(s->tenants);
    free(s->by_id);
    free(s);
}

static snapshot_t *snap_new(size_t want)
{
    size_t cap = 16;
    while (cap < want * 2)
        cap <<= 1;
    snapshot_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->slots = calloc(cap, sizeof *s->slots);
    if (!s->slots) {
        free(s);
        return NULL;
    }
    s->mask = cap - 1;
    return s;
}

static void snap_insert(snapshot_t *s, const entry_t *src)
{
    size_t i = slot_of(src->sha256) & s->mask;
    while (s->slots[i].used)
        i = (i + 1) & s->mask;
    s->slots[i] = *src;
    s->slots[i].used = 1;
    s->count++;
}

/* Rows are copied out of the store callback into a growing array first, so the
 * table can be sized once. */
typedef struct collect {
    entry_t *rows;
    size_t n, cap;
    tenant_t *tenants;
    size_t nt, tcap;
    const tg_kek_t *kek; /* NULL: signing secrets stay closed */
    size_t closed;       /* keys whose signing secret could not be opened */
    char why[160];       /* the first reason */
} collect_t;

static int tenant_cb(const tg_tenant_t *t, void *ud)
{
    collect_t *c = ud;
    if (c->nt == c->tcap) {
        size_t cap = c->tcap ? c->tcap * 2 : 64;
        tenant_t *r = realloc(c->tenants, cap * sizeof *r);
        if (!r) return -1;
        c->tenants = r;
        c->tcap = cap;
    }
    tenant_t *e = &c->tenants[c->nt++];
    snprintf(e->id, sizeof e->id, "%s", t->id);
    e->active = (unsigned char)!strcmp(t->status, "active");
    return 0;
}

static int tenant_cmp(const void *a, const void *b)
{
    return strcmp(((const tenant_t *)a)->id, ((const tenant_t *)b)->id);
}

static int by_id_cmp(const void *a, const void *b)
{
    return strcmp((*(const entry_t *const *)a)->key_id, (*(const entry_t *const *)b)->key_id);
}

/* The JWT indexes of s: its tenants (taken from c) and its keys by id. */
static int snap_index(snapshot_t *s, collect_t *c)
{
    if (c->nt) /* (an empty store: no array, and qsort's pointer must not be NULL) */
        qsort(c->tenants, c->nt, sizeof *c->tenants, tenant_cmp);
    s->tenants = c->tenants;
    s->ntenants = c->nt;
    c->tenants = NULL;
    s->by_id = calloc(s->count ? s->count : 1, sizeof *s->by_id);
    if (!s->by_id) return -1;
    size_t n = 0;
    for (size_t i = 0; i <= s->mask; i++)
        if (s->slots[i].used) s->by_id[n++] = &s->slots[i];
    qsort(s->by_id, n, sizeof *s->by_id, by_id_cmp);
    return 0;
}

/* The key's signing secret, opened into e (bound to its key id: crypt.h's AAD). */
static void open_signing(collect_t *c, const tg_auth_row_t *row, entry_t *e)
{
    tg_err_t err = {{0}};
    unsigned char *pt = NULL;
    size_t n = 0;
    if (!c->kek)
        snprintf(err.msg, sizeof err.msg, "no encryption.kek_file or kek_env is configured");
    else if (tg_crypt_open(c->kek, row->signing_sealed, sizeof row->signing_sealed, row->key_id,
                           strlen(row->key_id), &pt, &n, &err) == 0 &&
             n != TG_SIGNING_SECRET_LEN)
        snprintf(err.msg, sizeof err.msg, "the opened secret has %zu bytes", n);
    if (pt && n == TG_SIGNING_SECRET_LEN) {
        memcpy(e->signing, pt, n);
        e->signing_len = (unsigned char)n;
    } else if (c->closed++ == 0) {
        snprintf(c->why, sizeof c->why, "key %.31s: %.120s", row->key_id, err.msg);
    }
    tg_crypt_free(pt, n + 1);
}

static int collect_cb(const tg_auth_row_t *row, void *ud)
{
    collect_t *c = ud;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        entry_t *r = realloc(c->rows, cap * sizeof *r);
        if (!r) return -1;
        c->rows = r;
        c->cap = cap;
    }
    entry_t *e = &c->rows[c->n++];
    memset(e, 0, sizeof *e);
    memcpy(e->sha256, row->sha256, 32);
    snprintf(e->key_id, sizeof e->key_id, "%s", row->key_id);
    snprintf(e->tenant, sizeof e->tenant, "%s", row->tenant_id);
    e->key_active = (unsigned char)(row->key_active != 0);
    e->tenant_active = (unsigned char)(row->tenant_active != 0);
    e->expires_us = row->expires_us;
    if (row->signing) open_signing(c, row, e);
    return 0;
}

tg_keyring_t *tg_keyring_new(void)
{
    tg_keyring_t *kr = calloc(1, sizeof *kr);
    if (!kr) return NULL;
    tg_rwlock_init(&kr->lock);
    kr->snap = snap_new(0);
    if (!kr->snap) {
        free(kr);
        return NULL;
    }
    return kr;
}

void tg_keyring_free(tg_keyring_t *kr)
{
    if (!kr) return;
    tg_keyring_stop_refresh(kr);
    snap_free(kr->snap);
    pthread_rwlock_destroy(&kr->lock);
    free(kr);
}

void tg_keyring_set_kek(tg_keyring_t *kr, const tg_kek_t *kek)
{
    kr->has_kek = kek != NULL;
    if (kek)
        kr->kek = *kek;
    else
        tg_kek_wipe(&kr->kek);
}

int tg_keyring_load(tg_keyring_t *kr, tg_store_t *store, tg_err_t *err)
{
    collect_t c = {.kek = kr->has_kek ? &kr->kek : NULL};
    int rc = tg_store_auth_load(store, collect_cb, &c, err);
    if (rc == 0) rc = tg_store_tenant_list(store, tenant_cb, &c, err);
    snapshot_t *s = rc == 0 ? snap_new(c.n) : NULL;
    if (rc == 0 && !s) rc = tg_err_set(err, "out of memory loading keys");
    for (size_t i = 0; s && i < c.n; i++)
        snap_insert(s, &c.rows[i]);
    if (s && snap_index(s, &c) != 0) rc = tg_err_set(err, "out of memory loading keys");
    if (c.rows) OPENSSL_cleanse(c.rows, c.cap * sizeof *c.rows);
    free(c.rows);
    free(c.tenants);
    if (rc != 0) {
        snap_free(s);
        return rc;
    }
    /* Each load says it again: the operator sees it at start and after each key change. */
    if (c.closed)
        TG_WARN("keyring: %zu signing secret(s) could not be opened, their signed requests "
                "are refused (%s)",
                c.closed, c.why);
    pthread_rwlock_wrlock(&kr->lock);
    snapshot_t *old = kr->snap;
    kr->snap = s;
    pthread_rwlock_unlock(&kr->lock);
    snap_free(old);
    return 0;
}

void tg_keycache_clear(tg_keycache_t *cache)
{
    OPENSSL_cleanse(cache, sizeof *cache);
}

tg_auth_result_t tg_keyring_check(tg_keyring_t *kr, tg_keycache_t *cache, const char *secret,
                                  size_t len, int64_t now_us, tg_key_match_t *out)
{
    out->signing_len = 0;
    if (!secret || len == 0) return TG_AUTH_MISSING;
    unsigned char sha[32];
    if (cache && cache->len == len && CRYPTO_memcmp(cache->secret, secret, len) == 0) {
        memcpy(sha, cache->sha256, sizeof sha); /* the same bytes: the same hash */
    } else {
        tg_apikey_hash(secret, len, sha);
        if (cache && len <= sizeof cache->secret) {
            memcpy(cache->secret, secret, len);
            memcpy(cache->sha256, sha, sizeof sha);
            cache->len = len;
        } else if (cache) {
            tg_keycache_clear(cache); /* too long to keep: the next one is hashed */
        }
    }
    tg_auth_result_t r = TG_AUTH_UNKNOWN;
    pthread_rwlock_rdlock(&kr->lock);
    const snapshot_t *s = kr->snap;
    for (size_t i = slot_of(sha) & s->mask; s->slots[i].used; i = (i + 1) & s->mask) {
        const entry_t *e = &s->slots[i];
        if (!tg_apikey_hash_eq(e->sha256, sha)) continue;
        memcpy(out->tenant, e->tenant, sizeof out->tenant);
        memcpy(out->key_id, e->key_id, sizeof out->key_id);
        r = !e->key_active                                  ? TG_AUTH_REVOKED
            : e->expires_us != 0 && now_us >= e->expires_us ? TG_AUTH_EXPIRED
            : !e->tenant_active                             ? TG_AUTH_DISABLED
                                                            : TG_AUTH_OK;
        if (r == TG_AUTH_OK && e->signing_len) {
            memcpy(out->signing, e->signing, e->signing_len);
            out->signing_len = e->signing_len;
        }
        break;
    }
    pthread_rwlock_unlock(&kr->lock);
    return r;
}

tg_auth_result_t tg_keyring_check_tenant(tg_keyring_t *kr, const char *tenant, const char *key_id,
                                         int64_t now_us)
{
    tenant_t want;
    entry_t kwant;
    const entry_t *kp = &kwant;
    snprintf(want.id, sizeof want.id, "%s", tenant);
    snprintf(kwant.key_id, sizeof kwant.key_id, "%s", key_id);
    tg_auth_result_t r;
    pthread_rwlock_rdlock(&kr->lock);
    const snapshot_t *s = kr->snap;
    const tenant_t *t =
        s->ntenants ? bsearch(&want, s->tenants, s->ntenants, sizeof *t, tenant_cmp) : NULL;
    const entry_t *const *k = key_id[0] && s->count
                                  ? bsearch(&kp, s->by_id, s->count, sizeof *s->by_id, by_id_cmp)
                                  : NULL;
    if (!t)
        r = TG_AUTH_NO_TENANT;
    else if (!t->active)
        r = TG_AUTH_DISABLED;
    else if (key_id[0] && (!k || strcmp((*k)->tenant, tenant)))
        r = TG_AUTH_UNKNOWN;
    else if (key_id[0] && !(*k)->key_active)
        r = TG_AUTH_REVOKED;
    else if (key_id[0] && (*k)->expires_us != 0 && now_us >= (*k)->expires_us)
        r = TG_AUTH_EXPIRED;
    else
        r = TG_AUTH_OK;
    pthread_rwlock_unlock(&kr->lock);
    return r;
}

size_t tg_keyring_size(tg_keyring_t *kr)
{
    pthread_rwlock_rdlock(&kr->lock);
    size_t n = kr->snap->count;
    pthread_rwlock_unlock(&kr->lock);
    return n;
}

static int reload_cb(void *ud, tg_store_t *store, int64_t now_us, tg_err_t *err)
{
    (void)now_us;
    tg_keyring_t *kr = ud;
    if (tg_keyring_load(kr, store, err) != 0) return -1;
    TG_DEBUG("keyring: reloaded %zu keys", tg_keyring_size(kr));
    return 0;
}

static int version_cb(tg_store_t *s, int64_t *out, tg_err_t *err)
{
    return tg_store_auth_version(s, out, err);
}

int tg_keyring_start_refresh(tg_keyring_t *kr, const char *store_url, long interval_ms,
                             tg_err_t *err)
{
    kr->watch = tg_watch_start("keyring", store_url, interval_ms, version_cb, reload_cb, kr, err);
    return kr->watch ? 0 : -1;
}

int64_t tg_keyring_loaded_version(const tg_keyring_t *kr)
{
    return tg_watch_loaded(kr->watch);
}

void tg_keyring_stop_refresh(tg_keyring_t *kr)
{
    tg_watch_stop(kr->watch);
    kr->watch = NULL;
}
