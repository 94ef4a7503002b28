/* A budget's alert thresholds: percents of the monthly budget at which an alert fires,
 * 1 to TG_THRESHOLDS_MAX of them, each from 1 to TG_THRESHOLD_MAX_PCT, strictly ascending
 * (tg_budget_row_t.thresholds). One check for every writer of them (`tollgate budget set`,
 * the admin API), each giving the verdict in its own words: a value at a time, so a caller
 * parsing a list stops at the first bad one, as it reads. */
#ifndef TG_TYPES_THRESHOLDS_H
#define TG_TYPES_THRESHOLDS_H

#include <stddef.h>
#include <stdint.h>

#define TG_THRESHOLDS_MAX    8    /* the slots of tg_budget_row_t.thresholds */
#define TG_THRESHOLD_MAX_PCT 1000 /* ten times the budget is the last alert worth having */

typedef enum tg_threshold_verdict {
    TG_THRESHOLD_OK = 0,
    TG_THRESHOLD_RANGE,    /* not from 1 to TG_THRESHOLD_MAX_PCT */
    TG_THRESHOLD_TOO_MANY, /* a value past TG_THRESHOLDS_MAX */
    TG_THRESHOLD_ORDER,    /* not above prev[i - 1] */
} tg_threshold_verdict_t;

/* The verdict on v as the value at index i of a list whose values before it, prev[0..i),
 * were accepted. */
tg_threshold_verdict_t tg_threshold_check(const int *prev, size_t i, int64_t v);

#endif
