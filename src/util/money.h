/* Money: integer micro-USD, parsed from and printed as decimal USD text.
 *
 * Never a float: "0.15" is 150000 micro-USD exactly. At most 6 decimals (a micro-USD);
 * more is an error, not a rounding. */
#ifndef TG_UTIL_MONEY_H
#define TG_UTIL_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define TG_MICROS_PER_USD 1000000LL

/* "12", "0.15", "1.000001", ".5" (leading "+" or "$" not accepted; no sign). 0, or -1 when s is
 * not a non-negative decimal with at most 6 decimals or exceeds 9e12 USD. */
int tg_money_parse(const char *s, int64_t *micros);

/* "12.50", "0.000150": at least 2 decimals, trailing zeros beyond 2 dropped; negative
 * amounts get a leading '-'. Returns the length written (buf always NUL-terminated; cap >= 32
 * suffices for any int64). */
int tg_money_format(int64_t micros, char *buf, size_t cap);

#endif
