/* What each notifier sends for a notice (types/notice.h): pure functions of the notice and
 * the time, no I/O, unit-tested with fixed values (tests/unit/notify/test_payload.c).
 *
 * The notice as JSON is the webhook's body and the exec program's stdin:
 *   {"id", "kind", "alarm", "alarm_kind", "tenant", "state", "severity", "value",
 *    "threshold", "baseline", "window" (seconds), "time", "started" (RFC 3339 UTC, ms),
 *    "summary"}
 * A webhook signs the exact body bytes: X-Tollgate-Signature: sha256=HEX(HMAC-SHA256(secret,
 * body)). Alertmanager gets its v2 alert list (one alert, or a re-send round's batch) instead. */
#ifndef TG_NOTIFY_PAYLOAD_H
#define TG_NOTIFY_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "types/notice.h"

/* The notice as compact JSON, malloc'd (the caller frees it); NULL when out of memory.
 * Text that is not valid UTF-8 has its bad bytes replaced by '?'; a value that is not a
 * finite number is null. */
char *tg_notify_json(const tg_notice_t *n);

/* A jansson string of the fixed-size field s[0..cap): as it is when valid UTF-8, else with
 * every byte above 0x7f replaced by '?' (what every payload sends). NULL: out of memory. */
struct json_t *tg_notify_json_text(const char *s, size_t cap);

/* "sha256=" + 64 lower-case hex digits of HMAC-SHA256(secret, body), into out (at least
 * TG_NOTIFY_SIG_SIZE bytes). 0, or -1 when OpenSSL failed. */
#define TG_NOTIFY_SIG_SIZE 72
int tg_notify_signature(const char *secret, size_t secret_len, const char *body, size_t len,
                        char out[TG_NOTIFY_SIG_SIZE]);

/* Alertmanager's POST /api/v2/alerts body for the notice, malloc'd; NULL when out of memory.
 * One alert: labels alertname (the rule), tenant (left out when process-wide), severity,
 * alarm_kind and source="tollgate" (what routes and groups it); annotations summary, value,
 * threshold, baseline, notice_id, state; startsAt = started (or time); endsAt = time when the
 * state is resolved, else ends_us when > 0 (a firing alert's lease: it is re-sent before
 * then while it fires), else none (it stays firing until Alertmanager's resolve_timeout).
 * generator_url: put as generatorURL when not NULL or "". */
char *tg_notify_alertmanager_json(const tg_notice_t *n, const char *generator_url, int64_t ends_us);
/* The same for the n notices of v, one request: the list of their alerts, in order (a
 * re-send round posts what still fires this way, as Prometheus batches its alerts). */
char *tg_notify_alertmanager_list_json(const tg_notice_t *v, size_t n, const char *generator_url,
                                       int64_t ends_us);

#endif
