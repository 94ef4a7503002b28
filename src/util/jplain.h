/* The bytes a JSON string holds as they are: printable ASCII (0x20..0x7e) but '"' and '\'.
 * A writer copies a run of them and hands anything else to its JSON library's escaping:
 * the access log (observe/accesslog.c, jansson) and an audit record's data (types/audit.c,
 * yajl), which the writer thread runs for every event. One table lookup a byte: the four
 * comparisons it replaced were two thirds of the access log's formatting (callgrind). */
#ifndef TG_UTIL_JPLAIN_H
#define TG_UTIL_JPLAIN_H

#include <stddef.h>

extern const unsigned char tg_jplain[256]; /* 1: copied as is; 0 for NUL */

/* The length of the run of plain bytes that starts s (it stops at a NUL, at the latest). */
static inline size_t tg_jplain_span(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (tg_jplain[p[n]])
        n++;
    return n;
}

/* The same within s[0..n): the length of its plain prefix (n when all of it is plain). */
static inline size_t tg_jplain_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && tg_jplain[p[i]])
        i++;
    return i;
}

#endif
