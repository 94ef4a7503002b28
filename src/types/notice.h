/* A notice: one thing an operator must hear about, as every notifier sends it.
 *
 * Producers: the alarm engine (a state change of a rule for a tenant, or process-wide),
 * the budget thresholds (policy/budget.c, when an alert row is first stored) and
 * `tollgate alarms test`. Consumer: the notification outbox (notify/), which stores the
 * notice before sending it and sends it to every configured notifier (webhook,
 * Alertmanager, exec) until each has taken it.
 *
 * A plain value with fixed-size strings, copied with =; it sits in types/ because the
 * producers and the consumer are peers that must not include each other. */
#ifndef TG_TYPES_NOTICE_H
#define TG_TYPES_NOTICE_H

#include <stdint.h>

#include "util/sizes.h"

typedef struct tg_notice {
    /* Stable and unique per notice: a receiver de-duplicates on it. Built by the producer
     * from what the notice is about, never from a clock read or a counter in memory alone,
     * so a notice sent again after a crash has the same id (e.g. "alarm/errors/acme/12" =
     * the 12th transition of rule errors for tenant acme, "budget/acme/2026-12/80"). */
    char id[160];
    char kind[16];               /* "alarm" | "budget" | "test" */
    char alarm[64];              /* rule name ("budget" for budget thresholds) */
    char alarm_kind[16];         /* quota | error_rate | latency | spend_rate | queue | budget */
    char tenant[TG_TENANT_SIZE]; /* "" = process-wide (kind queue) */
    char state[16];              /* "pending" | "firing" | "resolved" (budget: "firing") */
    char severity[16];           /* "warning" | "critical" */
    double value;                /* what was measured (a ratio, a rate, ms, micro-USD/h) */
    double threshold;            /* what it was compared with */
    double baseline;             /* the tenant's own baseline then; 0 when the rule has none */
    int64_t window_s;            /* the rule's window in seconds; 0 when it has none */
    int64_t time_us;             /* when it happened (wall clock, UTC, passed in) */
    int64_t started_us;          /* when the alarm started firing (resolved: its start) */
    char summary[256];           /* one human sentence, e.g. "error rate 12% over 5m ..." */
} tg_notice_t;

/* The text of a sealed notice (notify/seal.h): base64 of a crypt/crypt.h blob of the
 * notice as JSON, at most this many bytes with its NUL (the notice's strings are bounded:
 * its JSON is under 4 KiB even with every character escaped). */
#define TG_NOTICE_SEALED_SIZE 8192

/* One notice's delivery to one notifier, as the outbox (store, migration 6) keeps it until
 * the notifier took it. status: "pending" (to be tried at next_us), "delivered" (the
 * receiver accepted it), "failed" (refused for good: a 4xx, or given up; error says why). */
typedef struct tg_notice_delivery {
    tg_notice_t notice;
    char notifier[64];  /* the notifier's name (notify[].name, or TYPE-INDEX) */
    char status[16];    /* "pending" | "delivered" | "failed" */
    int attempts;       /* sends tried so far */
    int64_t next_us;    /* pending: not before this (wall clock); claimed: the lease's end */
    int64_t created_us; /* when the notice entered the outbox */
    int64_t updated_us; /* last change of this row */
    char error[256];    /* the last failure ("HTTP 503", "connection refused"), "" if none */
    /* "" = a plain row: notice is the notice. Else the notice sealed (migration 17), and
     * notice holds its row's id (a keyed hash) and nothing else: notify/seal.h opens it. */
    char sealed[TG_NOTICE_SEALED_SIZE];
} tg_notice_delivery_t;

#endif
