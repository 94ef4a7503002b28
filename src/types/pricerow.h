/* A price row's rules and text forms (types/rows.h, tg_price_row_t), shared by `tollgate
 * price` (cli/price.c) and the admin API's /prices (adminapi/prices.c) so that both accept,
 * store and show exactly the same rows: the seven amounts and which meter each belongs
 * to, the checks on a name, the effective time as text both ways, and each row's status
 * at an instant. Money stays integer micro-USD (util/money.h does its text). */
#ifndef TG_TYPES_PRICEROW_H
#define TG_TYPES_PRICEROW_H

#include <stddef.h>
#include <stdint.h>

#include "types/rows.h"

/* The seven amounts of a row, in the order of the CLI's options, the row's fields and the
 * list's columns. */
enum {
    TG_PRICE_INPUT,
    TG_PRICE_OUTPUT,
    TG_PRICE_CACHED,
    TG_PRICE_CACHE_WRITE,
    TG_PRICE_REQUEST,
    TG_PRICE_GB,
    TG_PRICE_CALL,
    TG_PRICE_NAMOUNTS
};
/* "input", ... "call": the list's columns and the API's members. */
extern const char *const tg_price_amount_name[TG_PRICE_NAMOUNTS];
/* "model", "route" or "tool": the meter each amount prices. */
extern const char *const tg_price_amount_meter[TG_PRICE_NAMOUNTS];

/* Amount i of r (micro-USD, -1 = not set in this row). */
int64_t *tg_price_amount(tg_price_row_t *r, int i);
int64_t tg_price_amount_get(const tg_price_row_t *r, int i);

typedef enum {
    TG_PRICE_NAME_OK,
    TG_PRICE_NAME_EMPTY,
    TG_PRICE_NAME_LONG, /* not below sizeof row->name: TG_PRICE_NAME_MAX bytes at most */
    TG_PRICE_NAME_TEXT, /* not UTF-8, or a control character */
} tg_price_name_t;
#define TG_PRICE_NAME_MAX (sizeof((tg_price_row_t *)0)->name - 1)
tg_price_name_t tg_price_name_check(const char *name);

/* A `price set`'s amounts for meter ("model", "route" or "tool"), given as USD text (NULL =
 * not given) in tg_price_amount_name's order, into row's fields (-1 where not given). The
 * one copy of the rules of `price set` (cli/price.c) and PUT /admin/v1/prices/...
 * (adminapi/prices.c); each words the answer in its own terms (--input, "input"). */
typedef enum {
    TG_PRICE_SET_OK,
    TG_PRICE_SET_METER,   /* amount *which prices another meter (--call on a route) */
    TG_PRICE_SET_AMOUNT,  /* amount *which is not USD text (tg_money_parse: no sign) */
    TG_PRICE_SET_MISSING, /* the meter's amounts are missing: tg_price_set_needs(meter) */
} tg_price_set_t;
tg_price_set_t tg_price_set_amounts(tg_price_row_t *row, const char *meter,
                                    const char *const usd[TG_PRICE_NAMOUNTS], int *which);
/* What a row of meter must set, in words: "input and output", "call", "request or gb". */
const char *tg_price_set_needs(const char *meter);

/* An effective time: "now" (only when now_us >= 0) is the second of now_us; "YYYY-MM-DD"
 * is 00:00 UTC that day; "YYYY-MM-DDTHH:MM:SSZ" is that second, as a list prints it.
 * 0 or -1 (not one of these). */
int tg_price_parse_from(const char *s, int64_t now_us, int64_t *us);
/* "2026-03-01T00:00:00Z" (whole seconds, which is all an effective time holds); 0 is the
 * epoch, not "-", since a config price is effective from then. */
void tg_price_fmt_when(int64_t us, char buf[25]);

/* Per row of v (n rows, each (meter, name) together, oldest first, as the store lists
 * them): "current" (in force at now_us), "scheduled" (effective later) or "superseded" (a
 * later row is in force). */
void tg_price_statuses(const tg_price_row_t *v, size_t n, int64_t now_us, const char **st);

#endif
