/* Store watcher: see watch.h. The thread sleeps on a condition variable so
 * tg_watch_stop wakes it at once instead of waiting out the interval. A failure that
 * repeats word for word (a store locked for long, a lost WAL index: every poll fails the
 * same way) is logged once, not four times a second, until something else happens. */
#include "store/watch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/sizes.h"

struct tg_watch {
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop */
    pthread_cond_t cv;
    int stop;
    char *name, *url;
    long interval_ms;
    tg_watch_version_fn version;
    tg_watch_reload_fn reload;
    tg_watch_tick_fn tick;
    void *ud;
    atomic_llong loaded; /* tg_watch_loaded */
};

/* Logs a warning unless it is the same as the last one; last[0] = 0 forgets it. */
static void __attribute__((format(printf, 2, 3))) warn(char last[512], const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (strcmp(msg, last) == 0) return;
    memcpy(last, msg, sizeof msg);
    TG_WARN("%s", msg);
}

static void *watch_main(void *arg)
{
    char last[512] = ""; /* the last warning logged */
    tg_watch_t *w = arg;
    pthread_setname_np(pthread_self(), "tg-watch");
    tg_store_t *store = NULL;
    int64_t seen = -1;
    tg_err_t err;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        int64_t v, now_us = tg_wall_us();
        int failed = 1;
        if (!store && tg_store_open(w->url, &store, &err) != 0) {
            warn(last, "%s: cannot open store: %s", w->name, err.msg);
            store = NULL;
        } else if (store && w->version(store, &v, &err) != 0) {
            warn(last, "%s: %s", w->name, err.msg);
        } else if (store && v != seen) {
            if (w->reload(w->ud, store, now_us, &err) == 0) {
                seen = v;
                atomic_store(&w->loaded, v);
                failed = 0;
            } else {
                warn(last, "%s: reload failed: %s", w->name, err.msg);
            }
        } else {
            failed = 0;
        }
        if (store && w->tick && w->tick(w->ud, store, now_us, &err) != 0) {
            warn(last, "%s: %s", w->name, err.msg);
            failed = 1;
        }
        if (!failed) last[0] = '\0';
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts); /* the interval, unmoved by wall-clock steps */
        ts.tv_nsec += w->interval_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&w->mu);
        if (!w->stop) pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    /* A last tick, so work queued for it (alerts) is not lost at shutdown. */
    if (store && w->tick && w->tick(w->ud, store, tg_wall_us(), &err) != 0)
        TG_WARN("%s: %s", w->name, err.msg);
    tg_store_close(store);
    return NULL;
}

tg_watch_t *tg_watch_start(const char *name, const char *store_url, long interval_ms,
                           tg_watch_version_fn version, tg_watch_reload_fn reload, void *ud,
                           tg_err_t *err)
{
    return tg_watch_start_tick(name, store_url, interval_ms, version, reload, NULL, ud, err);
}

tg_watch_t *tg_watch_start_tick(const char *name, const char *store_url, long interval_ms,
                                tg_watch_version_fn version, tg_watch_reload_fn reload,
                                tg_watch_tick_fn tick, void *ud, tg_err_t *err)
{
    tg_watch_t *w = calloc(1, sizeof *w);
    if (!w) goto fail;
    w->name = strdup(name);
    w->url = strdup(store_url);
    w->interval_ms = interval_ms > 0 ? interval_ms : TG_REFRESH_MS;
    w->version = version;
    w->reload = reload;
    w->tick = tick;
    w->ud = ud;
    atomic_init(&w->loaded, -1);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!w->name || !w->url || pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w->name);
        free(w->url);
        free(w);
        goto fail;
    }
    return w;
fail:
    tg_err_set(err, "cannot start the %s watcher", name);
    return NULL;
}

int64_t tg_watch_loaded(const tg_watch_t *w)
{
    return w ? atomic_load(&((tg_watch_t *)w)->loaded) : -1;
}

void tg_watch_stop(tg_watch_t *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->name);
    free(w->url);
    free(w);
}
