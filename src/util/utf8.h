/* UTF-8 validity, inline: the writer runs it on every text field it stores (PostgreSQL's
 * events and the audit trail's call records). Moved here from store/pg_int.h so the audit
 * record (types/audit.c) cleans its fields the same way the events are. */
#ifndef TG_UTIL_UTF8_H
#define TG_UTIL_UTF8_H

#include <stddef.h>
#include <string.h>

/* The length of the UTF-8 sequence at p (at most left bytes), or 0 when it is not one
 * (a stray byte, a field cut in the middle of a character, an overlong or surrogate
 * form): the bytes PostgreSQL refuses in a UTF8 database (SQLSTATE 22021). */
static inline size_t tg_utf8_len(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n == 0 || n > left) return 0;
    unsigned lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return n;
}

/* Copies src[0..n) to dst with each byte that does not begin a UTF-8 character replaced
 * by '?': PostgreSQL would refuse the whole batch (an append's, a store copy's), its
 * events spooled forever (a path cut at 255 bytes can end inside a character), a SQLite
 * store holding a raw byte of a log never copied; and the audit trail hashes what it
 * stores. The same length; 1 if it changed anything. */
static inline int tg_utf8_clean(char *dst, const char *src, size_t n)
{
    const unsigned char *p = (const unsigned char *)src;
    int changed = 0;
    for (size_t i = 0; i < n;) {
        size_t k = p[i] < 0x80 ? 1 : tg_utf8_len(p + i, n - i);
        if (k == 0) {
            dst[i++] = '?';
            changed = 1;
        } else {
            memcpy(dst + i, p + i, k);
            i += k;
        }
    }
    return changed;
}

#endif
