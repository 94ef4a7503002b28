/* The pricing arithmetic of plans (issue 12): a plan (types/plan.h) and a month's measured
 * quantities in, the invoice's lines and total out. No I/O, no clock: the CLI reads the
 * store and prints; this module only counts and multiplies, so it is unit-tested with
 * values (tests/unit/invoice/test_invoice.c).
 *
 * The one rounding rule: a line's subtotal is quantity x unit price / scale, rounded half
 * up to the micro-USD, once per line (a line is one tier of one meter); the total is the
 * exact sum of the lines. Every product and sum is checked: a result that would not fit
 * in int64 is refused with an error, never wrapped. */
#ifndef TG_INVOICE_INVOICE_H
#define TG_INVOICE_INVOICE_H

#include <stddef.h>
#include <stdint.h>

#include "types/plan.h"
#include "util/err.h"

/* Lines an invoice holds at most: the base fee, every meter's included line and tiers,
 * and adjustment lines for closed months. */
#define TG_INVOICE_LINES 512

typedef struct tg_invoice {
    int32_t nlines;
    tg_invoice_line_t lines[TG_INVOICE_LINES];
    /* Per meter of the plan, by its index there: units measured (before included units)
     * and what its lines came to. */
    int32_t nmeters;
    int64_t measured[TG_PLAN_METERS];
    int64_t amount_micros[TG_PLAN_METERS];
    int64_t total_micros;
} tg_invoice_t;

/* round_half_up(q * unit / scale), exactly, for q >= 0, unit >= 0 and scale > 0 (at most
 * 10^9). 0, or -1 (err set) when the result does not fit in int64 or an input is out of
 * range. */
int tg_invoice_amount(int64_t q, int64_t unit, int64_t scale, int64_t *out, tg_err_t *err);

/* "YYYY-MM" (a month from 1970-01 to 9999-12): its first instant and the next month's, UTC
 * microseconds. 0 or -1. */
int tg_invoice_month(const char *s, int64_t *start_us, int64_t *next_us);
/* "YYYY-MM" of the UTC month holding us; buf holds 8 bytes. */
void tg_invoice_month_of(int64_t us, char buf[8]);
/* The month before "YYYY-MM" into buf (8 bytes); 0 or -1. */
int tg_invoice_month_prev(const char *month, char buf[8]);

/* Everything a stored plan must satisfy (the store and the CLI both call it). */
int tg_invoice_plan_check(const tg_plan_t *p, tg_err_t *err);

/* Adds one usage group to measured[] (per meter of p, by index; zeroed by the caller): a
 * token meter takes a model's tokens when its match names the model or a base of it
 * (util/modelname.h, case-insensitively), else the "*" meter of its kind does; tool_calls
 * likewise by tool name (exactly). 0, or -1 on an overflow. */
int tg_invoice_measure(const tg_plan_t *p, const tg_plan_usage_row_t *row, int64_t *measured,
                       tg_err_t *err);

/* Prices measured[] (p->nmeters of them) under p into inv (all of it overwritten): the base
 * fee line, then per meter its included line (when it has included units), its tier or
 * flat lines (a meter with nothing to price gets one line of 0 units), and the total. */
int tg_invoice_price(const tg_plan_t *p, const int64_t *measured, tg_invoice_t *inv, tg_err_t *err);

/* Adds to inv one adjustment line per meter of a closed month whose units now (now_inv,
 * priced by the closed month's plan p from the events as they are now) are more than
 * were billed (billed[], nbilled rows of that month; a meter never billed counts 0): the
 * units added and the change of amount (which a volume meter may make negative). Units
 * fewer than billed make no line: events leave a closed month only by retention or the
 * archive, which credit nothing. grew[i] (when grew is not NULL) is set to whether meter
 * i got a line. Updates inv->total_micros. */
int tg_invoice_adjust(tg_invoice_t *inv, const char *for_month, const tg_plan_t *p,
                      const tg_invoice_t *now_inv, const tg_invoice_billed_t *billed,
                      size_t nbilled, int *grew, tg_err_t *err);

#endif
