/* Sending one notice to one notifier, synchronously: a sender lane (sender.h) calls it
 * for each due delivery, and `tollgate alarms test` for each notifier. Never called on a
 * worker: it blocks for up to the notifier's timeout.
 *
 * webhook: POST url, the notice as JSON (payload.h), Content-Type: application/json,
 *   X-Tollgate-Signature: sha256=HEX(HMAC-SHA256(secret, body)) and X-Tollgate-Timestamp
 *   (Unix seconds of the send). libcurl, no redirects followed, http and https only.
 * alertmanager: POST url + /api/v2/alerts, one alert (payload.h; a re-send round's list of
 *   up to 256 through tg_notify_send_alerts). A notice in state
 *   pending is not sent (Alertmanager knows firing and resolved only, as with Prometheus)
 *   and counts as delivered.
 * exec: argv[0] run with posix_spawn (no shell, no PATH search, argv from the config
 *   only), the notice as JSON on its stdin, stdout to /dev/null, stderr the gateway's; a
 *   clean environment holding only PATH and TOLLGATE_NOTICE_ID, TOLLGATE_NOTICE_KIND,
 *   TOLLGATE_ALARM, TOLLGATE_TENANT, TOLLGATE_STATE, TOLLGATE_SEVERITY (tenant data is only
 *   ever there or on stdin, never in argv); in a process group of its own, killed
 *   (the group, SIGKILL) at the timeout. Exit status 0 = delivered, anything else is
 *   retried. The caller must ignore SIGPIPE (a program that does not read its stdin). */
#ifndef TG_NOTIFY_SEND_H
#define TG_NOTIFY_SEND_H

#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"
#include "notify/retry.h"
#include "types/notice.h"

typedef struct tg_notify_result {
    tg_notify_outcome_t outcome;
    long http_status;  /* the answer's status; 0 when there was none (or exec) */
    char message[256]; /* "HTTP 200", "HTTP 503", "connection refused ...", "exit status 3",
                          "timed out after 5000 ms"; never the URL or the secret */
} tg_notify_result_t;

typedef struct tg_notify_ctl {
    const atomic_int *stop;   /* non-zero: abort now (TG_NOTIFY_ABORTED); may be NULL */
    const atomic_int *also;   /* the same, a second flag (a lane's own stop); may be NULL */
    int64_t (*mono_us)(void); /* the clock an exec timeout is measured with */
} tg_notify_ctl_t;

/* Sends n to nc; now_us is the wall clock of the send (the timestamp header). */
void tg_notify_send(const tg_notifier_conf_t *nc, const tg_notice_t *n, int64_t now_us,
                    const tg_notify_ctl_t *ctl, tg_notify_result_t *res);

/* Posts the n firing notices of v to nc (an alertmanager notifier) in one request, as one
 * alert list, each with endsAt 4 x resend ahead: a re-send round's batch. One result for
 * them all (Alertmanager keeps the valid alerts of a list it answers 400 to). */
void tg_notify_send_alerts(const tg_notifier_conf_t *nc, const tg_notice_t *v, size_t n,
                           int64_t now_us, const tg_notify_ctl_t *ctl, tg_notify_result_t *res);

#endif
