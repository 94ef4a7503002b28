/* Helpers shared by the libFuzzer targets (docs/fuzzing.md): a growable log to compare two
 * runs of the same input, and piece sizes drawn from the input so every target can cut its
 * bytes at arbitrary places. Header-only: each target is one .c file. */
#ifndef TG_FUZZ_H
#define TG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An invariant of the code under test broke: abort, so libFuzzer keeps the input. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct fz_log {
    char *p;
    size_t len, cap;
} fz_log_t;

static inline void fz_log_add(fz_log_t *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n)
            cap *= 2;
        l->p = realloc(l->p, cap);
        FZ_CHECK(l->p != NULL);
        l->cap = cap;
    }
    if (n) memcpy(l->p + l->len, p, n);
    l->len += n;
}

static inline void fz_log_free(fz_log_t *l)
{
    free(l->p);
    l->p = NULL;
    l->len = l->cap = 0;
}

static inline int fz_log_eq(const fz_log_t *a, const fz_log_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* Piece sizes: a xorshift generator seeded from input bytes, mostly tiny pieces (where
 * split bugs live: a CRLF or a UTF-8 sequence cut in two), sometimes large ones. */
typedef struct fz_split {
    uint64_t s;
} fz_split_t;

static inline void fz_split_init(fz_split_t *sp, uint32_t seed)
{
    sp->s = 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed * 0xbf58476d1ce4e5b9ull);
    if (!sp->s) sp->s = 1;
}

static inline size_t fz_split_next(fz_split_t *sp, size_t left)
{
    sp->s ^= sp->s << 13;
    sp->s ^= sp->s >> 7;
    sp->s ^= sp->s << 17;
    size_t r = (size_t)(sp->s >> 8);
    size_t n;
    switch (sp->s & 3) {
    case 0: n = 1; break;
    case 1: n = 1 + r % 8; break;
    case 2: n = 1 + r % 300; break;
    default: n = 1 + r % 5000; break;
    }
    return n < left ? n : left;
}

/* The input cut at the first occurrence of sep: [p, *n) before it and the rest after it
 * (rest NULL when sep does not occur: everything is the first part). */
static inline const uint8_t *fz_cut(const uint8_t *p, size_t *n, const char *sep, size_t *restn)
{
    size_t sl = strlen(sep);
    for (size_t i = 0; i + sl <= *n; i++) {
        if (memcmp(p + i, sep, sl) == 0) {
            *restn = *n - i - sl;
            const uint8_t *rest = p + i + sl;
            *n = i;
            return rest;
        }
    }
    *restn = 0;
    return NULL;
}

#endif
