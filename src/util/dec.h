/* Decimal digits of an int64_t without printf: the writer formats several numbers for
 * every event (its access-log line, an audit record's data), and snprintf's format
 * interpreter was a third of the access log's formatting cost (callgrind). */
#ifndef TG_UTIL_DEC_H
#define TG_UTIL_DEC_H

#include <stddef.h>
#include <stdint.h>

#define TG_DEC_MAX 20 /* "-9223372036854775808" */

/* Writes v's digits (and a '-') at the end of buf[TG_DEC_MAX], no NUL; returns where they
 * start. INT64_MIN too. */
static inline char *tg_dec_i64(int64_t v, char buf[TG_DEC_MAX])
{
    char *p = buf + TG_DEC_MAX;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return p;
}

#endif
