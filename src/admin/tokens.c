/* Admin API tokens: see tokens.h. The snapshot is a flat array: a deployment has a handful
 * of admin tokens, and a check must look at every one anyway (constant time). Each entry
 * carries the last use noted by a check (atomic: the admin's loop writes it, the refresher
 * reads it) and the last one written to the store (the refresher's only). */
#include "admin/tokens.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/watch.h"
#include "util/log.h"
#include "util/rwlock.h"

#define TOUCH_EVERY_US 1000000LL /* last_used_us is written at most this often per token */

typedef struct entry {
    tg_admin_token_row_t row;
    _Atomic int64_t used_us; /* last check that passed; 0 = none since the load */
    int64_t written_us;      /* last value written back (refresher thread only) */
} entry_t;

typedef struct snapshot {
    entry_t *e;
    size_t n;
} snapshot_t;

struct tg_admin_tokens {
    pthread_rwlock_t lock; /* guards snap (the pointer; entries change only by their atomics) */
    snapshot_t *snap;
    tg_watch_t *watch;
};

static void snap_free(snapshot_t *s)
{
    if (!s) return;
    if (s->e) OPENSSL_cleanse(s->e, s->n * sizeof *s->e);
    free(s->e);
    free(s);
}

tg_admin_tokens_t *tg_admin_tokens_new(void)
{
    tg_admin_tokens_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->snap = calloc(1, sizeof *t->snap);
    if (!t->snap) {
        free(t);
        return NULL;
    }
    tg_rwlock_init(&t->lock);
    return t;
}

void tg_admin_tokens_free(tg_admin_tokens_t *t)
{
    if (!t) return;
    tg_watch_stop(t->watch);
    snap_free(t->snap);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

typedef struct collect {
    entry_t *e;
    size_t n, cap;
} collect_t;

static int collect_cb(const tg_admin_token_row_t *r, void *ud)
{
    collect_t *c = ud;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        entry_t *e = realloc(c->e, cap * sizeof *e);
        if (!e) return -1;
        c->e = e;
        c->cap = cap;
    }
    memset(&c->e[c->n], 0, sizeof c->e[c->n]);
    c->e[c->n].row = *r;
    c->e[c->n].written_us = r->last_used_us;
    c->n++;
    return 0;
}

int tg_admin_tokens_load(tg_admin_tokens_t *t, tg_store_t *s, tg_err_t *err)
{
    collect_t c = {0};
    snapshot_t *snap = calloc(1, sizeof *snap);
    int rc = snap ? tg_store_admin_token_list(s, collect_cb, &c, err) : -1;
    if (rc != 0) {
        if (!snap || !err->msg[0]) tg_err_set(err, "out of memory loading admin tokens");
        if (c.e) OPENSSL_cleanse(c.e, c.n * sizeof *c.e);
        free(c.e);
        free(snap);
        return -1;
    }
    snap->e = c.e;
    snap->n = c.n;
    pthread_rwlock_wrlock(&t->lock);
    snapshot_t *old = t->snap;
    /* Uses noted in the old snapshot and not yet written carry over (the refresher flushes
     * before it reloads, so this only matters for a load from another thread). */
    for (size_t i = 0; i < snap->n; i++)
        for (size_t j = 0; old && j < old->n; j++)
            if (strcmp(old->e[j].row.id, snap->e[i].row.id) == 0)
                atomic_store(&snap->e[i].used_us, atomic_load(&old->e[j].used_us));
    t->snap = snap;
    pthread_rwlock_unlock(&t->lock);
    snap_free(old);
    return 0;
}

tg_admin_token_result_t tg_admin_tokens_check(tg_admin_tokens_t *t, const unsigned char sha256[32],
                                              int64_t now_us, tg_admin_principal_t *out)
{
    pthread_rwlock_rdlock(&t->lock);
    const snapshot_t *s = t->snap;
    entry_t *hit = NULL;
    /* Every entry compared, the match remembered without leaving the loop. */
    for (size_t i = 0; i < s->n; i++) {
        int same = CRYPTO_memcmp(s->e[i].row.sha256, sha256, 32) == 0;
        if (same && !hit) hit = &s->e[i];
    }
    tg_admin_token_result_t r = TG_ADMIN_TOKEN_UNKNOWN;
    if (hit) {
        const tg_admin_token_row_t *row = &hit->row;
        if (row->revoked_us)
            r = TG_ADMIN_TOKEN_REVOKED;
        else if (row->expires_us && row->expires_us <= now_us)
            r = TG_ADMIN_TOKEN_EXPIRED;
        else {
            r = TG_ADMIN_TOKEN_OK;
            memset(out, 0, sizeof *out);
            snprintf(out->actor, sizeof out->actor, "admin-token:%.31s", row->id);
            out->read_only = strcmp(row->role, "admin") != 0; /* anything else reads only */
            snprintf(out->tenant, sizeof out->tenant, "%s", row->tenant);
            atomic_store(&hit->used_us, now_us);
        }
    }
    pthread_rwlock_unlock(&t->lock);
    return r;
}

int tg_admin_tokens_flush(tg_admin_tokens_t *t, tg_store_t *s, tg_err_t *err)
{
    int rc = 0;
    pthread_rwlock_rdlock(&t->lock);
    snapshot_t *snap = t->snap;
    for (size_t i = 0; i < snap->n && rc == 0; i++) {
        entry_t *e = &snap->e[i];
        int64_t used = atomic_load(&e->used_us);
        if (used <= e->written_us || (e->written_us && used - e->written_us < TOUCH_EVERY_US))
            continue;
        rc = tg_store_admin_token_touch(s, e->row.id, used, err);
        if (rc == 0) e->written_us = used;
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

static int reload_cb(void *ud, tg_store_t *s, int64_t now_us, tg_err_t *err)
{
    (void)now_us;
    tg_admin_tokens_t *t = ud;
    tg_err_t ferr = {{0}};
    if (tg_admin_tokens_flush(t, s, &ferr) != 0)
        TG_WARN("admin tokens: cannot write last use: %s", ferr.msg);
    return tg_admin_tokens_load(t, s, err);
}

static int tick_cb(void *ud, tg_store_t *s, int64_t now_us, tg_err_t *err)
{
    (void)now_us;
    return tg_admin_tokens_flush(ud, s, err);
}

static int version_cb(tg_store_t *s, int64_t *out, tg_err_t *err)
{
    return tg_store_auth_version(s, out, err);
}

int tg_admin_tokens_start_refresh(tg_admin_tokens_t *t, const char *store_url, long interval_ms,
                                  tg_err_t *err)
{
    t->watch = tg_watch_start_tick("admin tokens", store_url, interval_ms, version_cb, reload_cb,
                                   tick_cb, t, err);
    return t->watch ? 0 : -1;
}

int64_t tg_admin_tokens_loaded_version(const tg_admin_tokens_t *t)
{
    return tg_watch_loaded(t->watch);
}
