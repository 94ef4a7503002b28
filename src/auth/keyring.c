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

#include "auth/apikey.h"
#include "util/log.h"

typedef struct entry {
    unsigned char sha256[32];
    char key_id[32];
    char tenant[64];
    unsigned char used, key_active, tenant_active;
} entry_t;

typedef struct snapshot {
    entry_t *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t count;
} snapshot_t;

struct tg_keyring {
    pthread_rwlock_t lock; /* guards snap (the pointer; a snapshot is immutable) */
    snapshot_t *snap;
    /* refresher state: touched only by the refresher thread and start/stop */
    pthread_t thread;
    int running;
    atomic_int stop;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    char *store_url;
    long interval_ms;
};

const char *tg_auth_result_reason(tg_auth_result_t r)
{
    switch (r) {
    case TG_AUTH_OK: return "";
    case TG_AUTH_MISSING: return "missing_key";
    case TG_AUTH_UNKNOWN: return "unknown_key";
    case TG_AUTH_REVOKED: return "revoked_key";
    case TG_AUTH_DISABLED: return "tenant_disabled";
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
    free(s->slots);
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
} collect_t;

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
    return 0;
}

tg_keyring_t *tg_keyring_new(void)
{
    tg_keyring_t *kr = calloc(1, sizeof *kr);
    if (!kr) return NULL;
    pthread_rwlock_init(&kr->lock, NULL);
    pthread_mutex_init(&kr->stop_mu, NULL);
    pthread_cond_init(&kr->stop_cv, NULL);
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
    pthread_mutex_destroy(&kr->stop_mu);
    pthread_cond_destroy(&kr->stop_cv);
    free(kr->store_url);
    free(kr);
}

int tg_keyring_load(tg_keyring_t *kr, tg_store_t *store, tg_err_t *err)
{
    collect_t c = {0};
    int rc = tg_store_auth_load(store, collect_cb, &c, err);
    snapshot_t *s = rc == 0 ? snap_new(c.n) : NULL;
    if (rc == 0 && !s) rc = tg_err_set(err, "out of memory loading keys");
    for (size_t i = 0; s && i < c.n; i++)
        snap_insert(s, &c.rows[i]);
    free(c.rows);
    if (rc != 0) return rc;
    pthread_rwlock_wrlock(&kr->lock);
    snapshot_t *old = kr->snap;
    kr->snap = s;
    pthread_rwlock_unlock(&kr->lock);
    snap_free(old);
    return 0;
}

tg_auth_result_t tg_keyring_check(tg_keyring_t *kr, const char *secret, size_t len, char tenant[64],
                                  char key_id[32])
{
    if (!secret || len == 0) return TG_AUTH_MISSING;
    unsigned char sha[32];
    tg_apikey_hash(secret, len, sha);
    tg_auth_result_t r = TG_AUTH_UNKNOWN;
    pthread_rwlock_rdlock(&kr->lock);
    const snapshot_t *s = kr->snap;
    for (size_t i = slot_of(sha) & s->mask; s->slots[i].used; i = (i + 1) & s->mask) {
        const entry_t *e = &s->slots[i];
        if (!tg_apikey_hash_eq(e->sha256, sha)) continue;
        memcpy(tenant, e->tenant, 64);
        memcpy(key_id, e->key_id, 32);
        r = !e->key_active ? TG_AUTH_REVOKED : !e->tenant_active ? TG_AUTH_DISABLED : TG_AUTH_OK;
        break;
    }
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

static void *refresh_main(void *arg)
{
    tg_keyring_t *kr = arg;
    tg_store_t *store = NULL;
    int64_t seen = -1;
    tg_err_t err;
    while (!atomic_load(&kr->stop)) {
        int64_t v;
        if (!store && tg_store_open(kr->store_url, &store, &err) != 0) {
            TG_WARN("keyring: cannot open store: %s", err.msg);
            store = NULL;
        } else if (store && tg_store_auth_version(store, &v, &err) != 0) {
            TG_WARN("keyring: %s", err.msg);
        } else if (store && v != seen) {
            if (tg_keyring_load(kr, store, &err) == 0) {
                seen = v;
                TG_DEBUG("keyring: reloaded %zu keys", tg_keyring_size(kr));
            } else {
                TG_WARN("keyring: reload failed: %s", err.msg);
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += kr->interval_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&kr->stop_mu);
        if (!atomic_load(&kr->stop)) pthread_cond_timedwait(&kr->stop_cv, &kr->stop_mu, &ts);
        pthread_mutex_unlock(&kr->stop_mu);
    }
    tg_store_close(store);
    return NULL;
}

int tg_keyring_start_refresh(tg_keyring_t *kr, const char *store_url, long interval_ms,
                             tg_err_t *err)
{
    kr->store_url = strdup(store_url);
    kr->interval_ms = interval_ms > 0 ? interval_ms : 250;
    atomic_store(&kr->stop, 0);
    if (!kr->store_url || pthread_create(&kr->thread, NULL, refresh_main, kr) != 0)
        return tg_err_set(err, "cannot start the keyring refresher");
    kr->running = 1;
    return 0;
}

void tg_keyring_stop_refresh(tg_keyring_t *kr)
{
    if (!kr->running) return;
    pthread_mutex_lock(&kr->stop_mu);
    atomic_store(&kr->stop, 1);
    pthread_cond_signal(&kr->stop_cv);
    pthread_mutex_unlock(&kr->stop_mu);
    pthread_join(kr->thread, NULL);
    kr->running = 0;
}
