/* Watching the store for changes made by other processes: a thread that
 * opens its own store connection and, every interval, reads a version number
 * (meta.auth_version, meta.policy_version); when it moved, it calls reload.
 * The keyring and the admission policy each run one, which is how a CLI change
 * reaches a running gateway within a second. A failed read or reload is
 * logged and tried again at the next tick. */
#ifndef TG_STORE_WATCH_H
#define TG_STORE_WATCH_H

#include "store/store.h"

typedef struct tg_watch tg_watch_t;

typedef int (*tg_watch_version_fn)(tg_store_t *s, int64_t *out, tg_err_t *err);
/* now_us: the wall clock, read by the watcher thread once per tick (the one place this
 * thread reads it), for reloads that depend on the date (a budget's UTC month). */
typedef int (*tg_watch_reload_fn)(void *ud, tg_store_t *s, int64_t now_us, tg_err_t *err);

/* name is used in log lines ("keyring", "policy"). */
tg_watch_t *tg_watch_start(const char *name, const char *store_url, long interval_ms,
                           tg_watch_version_fn version, tg_watch_reload_fn reload, void *ud,
                           tg_err_t *err);
/* Also calls tick (with the thread's store connection) at every interval and once more
 * when stopped: for work queued by other threads that needs the store (budget alerts). */
typedef int (*tg_watch_tick_fn)(void *ud, tg_store_t *s, int64_t now_us, tg_err_t *err);
tg_watch_t *tg_watch_start_tick(const char *name, const char *store_url, long interval_ms,
                                tg_watch_version_fn version, tg_watch_reload_fn reload,
                                tg_watch_tick_fn tick, void *ud, tg_err_t *err);
/* Stops the thread and frees w (NULL is fine). */
void tg_watch_stop(tg_watch_t *w);
/* The version the thread last loaded (reload returned 0 for it), -1 before the first load or
 * for NULL. Any thread: what /readyz shows, so a caller that changed the store can wait until
 * a running gateway took the change rather than sleep for the poll interval. */
int64_t tg_watch_loaded(const tg_watch_t *w);

#endif
