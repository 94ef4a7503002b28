/* The notification sender: the outbox's producer side (tg_notify_enqueue, called by whoever
 * has a notice: the budget thresholds through the policy's hook, the alarm engine) and its
 * consumer: a supervisor thread and one thread per configured notifier (its lane), each with
 * its own store connection; a lane claims and sends its own notifier's deliveries only.
 *
 * Guarantees (docs/operations.md, "Notifications"):
 *   - a notice is in the store, with one delivery row per configured notifier, before any
 *     send is tried; a delivery is marked delivered only after its receiver accepted it
 *     (2xx, exit status 0). A crash or restart loses nothing: the next sender on the store
 *     sends what is pending. A crash between the receiver's answer and the mark sends that
 *     one notice again: the stable id lets the receiver drop it.
 *   - retries: 5xx, 408, 429, connection errors, timeouts and failed programs are retried
 *     with exponential backoff and jitter (retry.h), per notifier: while one receiver is
 *     down its deliveries wait for its backoff, one try per wait, the others flow (a
 *     receiver that never answers holds up its own lane only, up to its timeout). A 4xx
 *     (other than 408, 429) is permanent: the delivery is kept as failed with its error and
 *     logged. A delivery still failing notify_retry.give_up after its notice was stored is
 *     marked failed too.
 *   - several gateways on one store: a sender claims the rows it sends (a lease of the
 *     8 times the longest timeout + 10 s: one batch), so no two send the same row; a
 *     sender killed while it held a batch delays those rows to the lease's end.
 * Never on a worker: a send blocks its own lane only. Deliveries to a notifier gone from the
 * config are handled by the supervisor (kept until a reload brings it back, or give_up). */
#ifndef TG_NOTIFY_SENDER_H
#define TG_NOTIFY_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "crypt/crypt.h"
#include "notify/send.h"
#include "store/store.h"
#include "types/notice.h"
#include "util/err.h"

typedef void (*tg_notify_send_fn)(const tg_notifier_conf_t *nc, const tg_notice_t *n,
                                  int64_t now_us, const tg_notify_ctl_t *ctl,
                                  tg_notify_result_t *res);

typedef void (*tg_notify_send_alerts_fn)(const tg_notifier_conf_t *nc, const tg_notice_t *v,
                                         size_t n, int64_t now_us, const tg_notify_ctl_t *ctl,
                                         tg_notify_result_t *res);

typedef struct tg_notify_opts {
    const char *store_url;                /* the sender thread opens its own connection */
    int64_t (*wall_clock)(void);          /* dates sends, due times and give-up (required) */
    int64_t (*mono_clock)(void);          /* waits and exec timeouts (required) */
    uint64_t (*random)(void);             /* the backoff's jitter (required) */
    tg_notify_send_fn send;               /* NULL: tg_notify_send (tests pass a fake) */
    tg_notify_send_alerts_fn send_alerts; /* re-sends: NULL: tg_notify_send_alerts */
    /* encryption's KEK (copied): notices are stored sealed (notify/seal.h) and opened before
     * each send. NULL: stored plain; sealed ones found are not sent (see tg_notify_sealed_refused).
     */
    const tg_kek_t *kek;
} tg_notify_opts_t;

typedef struct tg_notify tg_notify_t;

/* A sender over cfg's notifiers (takes a reference); no thread yet. NULL when out of
 * memory. */
tg_notify_t *tg_notify_new(const tg_notify_opts_t *opts, tg_config_t *cfg);
/* Starts the thread. 0, or -1 with err set (the store cannot be opened). */
int tg_notify_start(tg_notify_t *t, tg_err_t *err);
/* Stops the thread (a send in progress is aborted and stays pending) and frees t. */
void tg_notify_free(tg_notify_t *t);

/* A reload: the notifiers and retry settings of cfg from now on (takes a reference). The
 * lane of a notifier no longer configured gives up its send in progress (pending, as on
 * stop) and ends; its deliveries stay pending (tried again every
 * notify_retry.max) until one of that name is configured again. */
void tg_notify_set_config(tg_notify_t *t, tg_config_t *cfg);

/* Stores n in the outbox with a delivery per configured notifier (store: the caller's
 * connection, of the caller's thread), then wakes the thread. 0 (also when n's id was
 * already stored, or there are no notifiers: nothing is stored then), or the store's code
 * with err set: the caller keeps n and tries again. Any thread. */
int tg_notify_enqueue(tg_notify_t *t, tg_store_t *store, const tg_notice_t *n, int64_t now_us,
                      tg_err_t *err);

/* How many times a delivery was not sent because its notice did not open: sealed by a KEK
 * that is not configured (kept pending, tried again every notify_retry.max until give_up,
 * the error naming the KEK id it needs) or damaged (kept as failed). Any thread. */
uint64_t tg_notify_sealed_refused(tg_notify_t *t);

/* One pass of the thread's loop on store: claims up to 8 due deliveries and sends each,
 * then records each outcome. Returns how many it handled, or the store's code. (The
 * thread's body; the unit tests call it without a thread.) */
int tg_notify_pass(tg_notify_t *t, tg_store_t *store, tg_err_t *err);

/* The re-send round of the thread's loop on store: each alertmanager notifier whose resend
 * interval has passed since its last round (and that is not in a failure's backoff) gets
 * every alarm the store says is firing again (256 alerts a request), with the labels and id of the
 * notice sent when it began and endsAt a lease away (send.c), so Alertmanager keeps it firing while
 * it fires and resolves it if tollgate is gone. The first round is at once (after a restart, what
 * still fires is posted again). A failure ends the round and blocks the notifier as a failed
 * delivery does. Returns the alerts posted, or -1 with err set (the store cannot be read). */
int tg_notify_resend(tg_notify_t *t, tg_store_t *store, tg_err_t *err);

#endif
