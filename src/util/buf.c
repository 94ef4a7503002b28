/* The capped growing buffer: see buf.h. Growth doubles from FIRST_ALLOC so a buffer that
 * is reused (reset keeps its memory) reaches its working size in a few steps and then
 * allocates no more; the allocation is clamped to max + 1, so a buffer never holds memory
 * for bytes it may not take. */
#include "util/buf.h"

#include <stdlib.h>

#include "util/log.h"

#define FIRST_ALLOC 64

void tg_buf_init(tg_buf_t *b, size_t max)
{
    *b = (tg_buf_t)TG_BUF_INIT(max);
}

void tg_buf_set_max(tg_buf_t *b, size_t max)
{
    TG_ASSERT(b->len == 0);
    b->max = max < TG_BUF_MAX_LIMIT ? max : TG_BUF_MAX_LIMIT;
    if (b->cap > b->max + 1) tg_buf_free(b);
}

/* Room for n more bytes and the NUL, within max. */
static int grow(tg_buf_t *b, size_t n)
{
    /* max <= SIZE_MAX / 2: neither max - len nor need + 1 can wrap. */
    if (n > b->max - b->len) return TG_BUF_TOOBIG;
    size_t need = b->len + n + 1;
    if (b->p && need <= b->cap) return TG_BUF_OK;
    size_t nc = b->cap ? b->cap : FIRST_ALLOC;
    while (nc < need)
        nc *= 2; /* need <= max + 1 <= SIZE_MAX / 2 + 1: nc stays below SIZE_MAX */
    if (nc > b->max + 1) nc = b->max + 1;
    char *np = realloc(b->p, nc);
    if (!np) return TG_BUF_NOMEM;
    if (!b->p) np[0] = '\0';
    b->p = np;
    b->cap = nc;
    return TG_BUF_OK;
}

int tg_buf__add_grow(tg_buf_t *b, const void *p, size_t n)
{
    if (n == 0) return TG_BUF_OK; /* allocates nothing */
    int rc = grow(b, n);
    if (rc != TG_BUF_OK) return rc;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return TG_BUF_OK;
}

int tg_buf_reserve(tg_buf_t *b, size_t n)
{
    return grow(b, n);
}

void tg_buf_added(tg_buf_t *b, size_t n)
{
    if (n == 0) return;
    /* Within what tg_buf_reserve made room for (the NUL's byte stays free). */
    TG_ASSERT(b->p && n < b->cap - b->len);
    b->len += n;
    b->p[b->len] = '\0';
}

void tg_buf_truncate(tg_buf_t *b, size_t n)
{
    if (n >= b->len) return;
    b->len = n;
    b->p[n] = '\0';
}

void tg_buf_free(tg_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *tg_buf_take(tg_buf_t *b)
{
    char *s = b->p ? b->p : strdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return s;
}
