/* Percent-decoding (RFC 3986 §2.1) of a URL part: the dashboard's query values and the
 * credentials of limits.backend's redis:// URL. */
#ifndef TG_UTIL_PCT_H
#define TG_UTIL_PCT_H

#include <stddef.h>

/* Decodes n bytes of s into out (cap bytes, NUL-terminated; n + 1 is always enough: decoding
 * never grows). 0, or -1 on a bad escape (not two hex digits), a %00 (the text would end
 * there: "a%00junk" would stand for "a") or when it does not fit. '+' stays '+'. */
int tg_pct_decode(const char *s, size_t n, char *out, size_t cap);

#endif
