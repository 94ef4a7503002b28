/* Bytes in memory: a growing buffer with a cap, and appending into a buffer already sized
 * by the caller.
 *
 * tg_buf_t follows curl's dynbuf: the maximum is part of the buffer, set once at init, and
 * every call that would take the buffer past it fails and leaves the buffer as it was, so
 * a caller never checks a size of its own. Nothing is allocated until the first byte is
 * added; capacity doubles (from 64 bytes) and never exceeds max + 1; what is held is always
 * followed by a NUL, so a buffer of text is a C string (and can be handed over as one with
 * tg_buf_take). Reset keeps the memory for the next use; tg_buf_reset_trim frees it when
 * it grew above a bound, for a buffer kept per connection between requests.
 *
 * The put helpers below (tg_put, tg_putu, tg_puts) write without printf's format parsing
 * into memory the caller sized (these run per request on the hot path). */
#ifndef TG_UTIL_BUF_H
#define TG_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A string literal and its length, counted by the compiler: tg_put(o, TG_LIT("\r\n")). */
#define TG_LIT(s)     ("" s ""), (sizeof(s) - 1)
#define TG_LIT_LEN(s) (sizeof("" s "") - 1)
/* A literal and its length as one value, for tables: static const tg_lit_t t[] =
 * {TG_LIT_INIT("host"), ...}. */
typedef struct tg_lit {
    const char *s;
    size_t n;
} tg_lit_t;
#define TG_LIT_INIT(s)                                                                             \
    {                                                                                              \
        "" s "", sizeof(s) - 1                                                                     \
    }
/* n bytes at p are exactly the literal s: TG_LIT_EQ(name, nlen, "event"). */
#define TG_LIT_EQ(p, n, s) ((n) == sizeof(s) - 1 && memcmp((p), "" s "", sizeof(s) - 1) == 0)

typedef struct tg_buf {
    char *p;    /* NULL until the first byte is added; then p[len] is always '\0' */
    size_t len; /* bytes held */
    size_t cap; /* bytes allocated (at most max + 1, for the NUL) */
    size_t max; /* the buffer never holds more than this */
} tg_buf_t;

/* Results of the calls that add bytes: 0, or a negative code; the buffer is unchanged. */
enum {
    TG_BUF_OK = 0,
    TG_BUF_TOOBIG = -1, /* the bytes would take the buffer past its max */
    TG_BUF_NOMEM = -2,  /* allocation failed */
};

/* Above this a max is lowered to it: doubling and the NUL never overflow a size_t. */
#define TG_BUF_MAX_LIMIT (SIZE_MAX / 2)

#define TG_BUF_INIT(max_)                                                                          \
    {                                                                                              \
        NULL, 0, 0, (max_) < TG_BUF_MAX_LIMIT ? (max_) : TG_BUF_MAX_LIMIT                          \
    }

/* An empty buffer that will hold at most max bytes; allocates nothing. */
void tg_buf_init(tg_buf_t *b, size_t max);

int tg_buf__add_grow(tg_buf_t *b, const void *p, size_t n); /* (internal: tg_buf_add) */

/* Changes the max of an empty buffer (between uses); memory above the new max is freed. */
void tg_buf_set_max(tg_buf_t *b, size_t max);

/* Appends n bytes (none when n is 0). 0, TG_BUF_TOOBIG or TG_BUF_NOMEM. Inline: on the
 * request path the bytes nearly always fit the memory kept from the last use. */
static inline int tg_buf_add(tg_buf_t *b, const void *p, size_t n)
{
    /* cap <= max + 1, so bytes that fit the memory also fit the max. */
    if (b->p && n < b->cap - b->len) {
        if (n) memcpy(b->p + b->len, p, n);
        b->len += n;
        b->p[b->len] = '\0';
        return TG_BUF_OK;
    }
    return tg_buf__add_grow(b, p, n);
}
/* Makes room for n more bytes without adding them: 0, TG_BUF_TOOBIG or TG_BUF_NOMEM. The
 * caller writes up to n bytes at tg_buf_end() and then calls tg_buf_added. */
int tg_buf_reserve(tg_buf_t *b, size_t n);
/* Counts n bytes written at tg_buf_end() after tg_buf_reserve(b, m) with n <= m. */
void tg_buf_added(tg_buf_t *b, size_t n);

/* Empties the buffer and keeps its memory. */
static inline void tg_buf_reset(tg_buf_t *b)
{
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}
/* Frees the memory; the buffer is empty and usable again, with the same max. */
void tg_buf_free(tg_buf_t *b);
/* Empties the buffer; frees its memory when more than keep bytes are allocated (a rare
 * large message does not pin its memory to a connection for the connection's lifetime). */
static inline void tg_buf_reset_trim(tg_buf_t *b, size_t keep)
{
    if (b->cap > keep)
        tg_buf_free(b);
    else
        tg_buf_reset(b);
}
/* Keeps the first n bytes (n <= tg_buf_len). */
void tg_buf_truncate(tg_buf_t *b, size_t n);
/* Hands over the bytes as a malloc'd NUL-terminated string (owned by the caller, "" when
 * nothing was added; NULL when that cannot be allocated); the buffer is left empty. */
char *tg_buf_take(tg_buf_t *b);

/* The bytes held: NUL-terminated, "" (not NULL) when empty; valid until the next call that
 * adds or frees. */
static inline const char *tg_buf_str(const tg_buf_t *b)
{
    return b->p ? b->p : "";
}
static inline char *tg_buf_end(tg_buf_t *b)
{
    return b->p + b->len;
}
static inline size_t tg_buf_len(const tg_buf_t *b)
{
    return b->len;
}
static inline size_t tg_buf_max(const tg_buf_t *b)
{
    return b->max;
}

/* ---- appending into memory the caller sized ------------------------------ */

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
