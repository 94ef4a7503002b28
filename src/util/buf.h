/* Appending into a buffer already sized by the caller, without printf's
 * format parsing (these run per request on the hot path). */
#ifndef TG_UTIL_BUF_H
#define TG_UTIL_BUF_H

#include <string.h>

/* Copies n bytes to dst; returns the position after them. */
static inline char *tg_put(char *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    return dst + n;
}

/* Writes v in decimal; returns the position after it. */
static inline char *tg_putu(char *dst, unsigned long long v)
{
    char tmp[20];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 20);
    while (n)
        *dst++ = tmp[--n];
    return dst;
}

/* Copies a NUL-terminated string (without the NUL). */
static inline char *tg_puts(char *dst, const char *s)
{
    return tg_put(dst, s, strlen(s));
}

#endif
