/* When to try a delivery again, and what a receiver's answer means: pure functions, the
 * randomness passed in (tests/unit/notify/test_retry.c checks the schedule with fixed
 * values).
 *
 * Backoff: the n-th consecutive failure of a notifier waits base = min * 2^(n-1), capped at
 * max, with "equal jitter": base/2 plus a random part of up to base/2, so senders that
 * failed together do not come back together, and the wait never exceeds max. With the
 * defaults (1 s, 60 s) a receiver down for an hour is tried about once a minute and gets
 * everything within a minute of coming back. */
#ifndef TG_NOTIFY_RETRY_H
#define TG_NOTIFY_RETRY_H

#include <stdint.h>

/* The wait in milliseconds after the failures-th consecutive failure (failures >= 1;
 * below 1 counts as 1). rnd: any 64-bit random value. Between min_ms / 2 and max_ms. */
int64_t tg_notify_backoff_ms(int failures, long min_ms, long max_ms, uint64_t rnd);

typedef enum {
    TG_NOTIFY_OK = 0,    /* the receiver took it: delivered */
    TG_NOTIFY_RETRY,     /* 5xx, 408, 429, a connection error, a timeout, a failed program */
    TG_NOTIFY_PERMANENT, /* any other answer (4xx, 3xx, 1xx): kept as failed, not retried */
    TG_NOTIFY_ABORTED,   /* the sender is stopping: not an attempt, tried again at once later */
} tg_notify_outcome_t;

/* What an HTTP status means for a delivery: 2xx OK; 408, 429 and 5xx RETRY; else
 * PERMANENT (a 4xx says the request itself is wrong: sending it again cannot help). */
tg_notify_outcome_t tg_notify_classify_http(long status);

#endif
