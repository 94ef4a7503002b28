/* Picks a few members out of a JSON document without building it.
 *
 * A picker is given a table of paths, each a list of object keys from the root
 * ({"usage", "prompt_tokens"}), and is fed the document in pieces as they arrive. The
 * whole document is validated (yajl: no comments, nothing but whitespace after the one
 * value, at most TG_JPICK_NEST containers deep, UTF-8 as far as yajl checks it, see below);
 * only the values at the paths are kept, scalars by value, objects and arrays by their
 * type and number of direct members (an object's repeated keys counted each time). No path
 * goes through an array: a member of an object inside an array never matches.
 *
 * Why not jansson here: jansson builds the whole tree (a hashtable and allocations per
 * object) at ~15 ns a byte, which made metering a 526-byte chat answer cost more CPU than
 * proxying it (bench/RESULTS.md). yajl is an event (SAX) parser at ~2 ns a byte; this
 * module keeps, per open object, the bit set of paths that still match, so each key costs
 * a comparison with the few keys that could follow. jansson stays everywhere else.
 *
 * Semantics follow jansson's: a repeated key replaces the earlier value and everything
 * picked under it; integers outside int64 and reals beyond a double are errors; \u0000 is
 * allowed in strings (a picked string ends there); nesting deeper than jansson's limit is
 * an error. One difference: yajl's UTF-8 check lets through some sequences jansson refuses
 * (overlong forms, encoded surrogates, lone \ud800 escapes, code points past U+10FFFF), so
 * a picked string may be invalid UTF-8; every writer of event fields escapes or replaces
 * such bytes.
 *
 * Memory and time: yajl buffers the token in progress when it spans pieces, and re-reads
 * the whole buffered token on each call. So (1) one token is capped: once more than
 * token_max bytes (TG_JPICK_TOKEN_MAX unless the caller changes it after tg_jpick_begin)
 * were fed without any value or key completing, the picker stops (tg_jpick_too_big) and
 * frees what it held; and (2) while a token is in progress, pieces are held in the picker
 * until they are as many bytes as yajl already holds, so each byte is re-read a bounded
 * number of times however small the pieces (a trickling upstream, 1460-byte segments).
 * Nesting is bounded by TG_JPICK_NEST. yajl allocates from an arena inside the picker
 * first (its handle, stacks and buffers for a small document fit), then from malloc. */
#ifndef TG_UTIL_JPICK_H
#define TG_UTIL_JPICK_H

#include <stddef.h>
#include <stdint.h>

#define TG_JPICK_MAX       32          /* paths in a table */
#define TG_JPICK_DEPTH     4           /* keys in a path */
#define TG_JPICK_STR       128         /* a picked string keeps up to 127 bytes */
#define TG_JPICK_TOKEN_MAX (64u << 20) /* see above: base64 audio or images fit */
#define TG_JPICK_NEST      2048        /* containers deep (jansson's limit) */
#define TG_JPICK_ARENA     4096        /* bytes for yajl's own allocations, see above */

typedef enum {
    TG_JT_ABSENT = 0,
    TG_JT_NULL,
    TG_JT_FALSE,
    TG_JT_TRUE,
    TG_JT_INT,
    TG_JT_REAL,
    TG_JT_STRING,
    TG_JT_OBJECT,
    TG_JT_ARRAY,
} tg_jtype_t;

/* Keys from the root object, NULL-terminated. */
typedef struct tg_jpath {
    const char *key[TG_JPICK_DEPTH + 1];
} tg_jpath_t;

/* A table of paths, prepared on first use (thread-safe) for matching: per depth, the
 * distinct keys and which paths have each. Declare it static next to its paths:
 *   static tg_jpick_spec_t spec = TG_JPICK_SPEC(paths); */
typedef struct tg_jpick_spec {
    const tg_jpath_t *paths;
    size_t npaths;
    int ready;                           /* atomic: the fields below are set */
    uint32_t exact[TG_JPICK_DEPTH + 1];  /* per depth d: the paths of d keys */
    uint32_t longer[TG_JPICK_DEPTH + 1]; /* ... of more than d keys */
    struct tg_jpick_key {
        const char *s;
        size_t len;
        uint32_t paths; /* whose key at this depth is s */
    } keys[TG_JPICK_DEPTH][TG_JPICK_MAX];
    uint8_t nkeys[TG_JPICK_DEPTH];
} tg_jpick_spec_t;

#define TG_JPICK_SPEC(arr)                                                                         \
    {                                                                                              \
        .paths = (arr), .npaths = sizeof(arr) / sizeof((arr)[0])                                   \
    }

typedef struct tg_jval {
    tg_jtype_t type;
    int64_t i;            /* TG_JT_INT */
    size_t n;             /* TG_JT_OBJECT: members; TG_JT_ARRAY: elements */
    char s[TG_JPICK_STR]; /* TG_JT_STRING, NUL-terminated, cut at TG_JPICK_STR - 1 bytes */
} tg_jval_t;

typedef struct tg_jpick {
    tg_jpick_spec_t *spec;
    void *yajl; /* the parse in progress, NULL before begin and after end */
    /* yajl's allocations (its handle, lexer, stacks, small buffers) come from here while
     * they fit, so a parse of a small document calls malloc not at all. */
    size_t arena_used, arena_last;
    _Alignas(16) unsigned char arena[TG_JPICK_ARENA];
    int depth;        /* containers open */
    int failed;       /* not JSON, or a token over the cap */
    int too_big;      /* ... the latter */
    int progressed;   /* a value or key completed during the current piece */
    size_t idle;      /* bytes given to yajl since one last did */
    size_t token_max; /* TG_JPICK_TOKEN_MAX unless changed after begin */
    char *held;       /* pieces held while a token is in progress (malloc) */
    size_t held_len, held_cap;
    size_t parses;   /* yajl_parse calls in this document (for tests) */
    int root_done;   /* the one value has ended: only whitespace may follow */
    size_t root_end; /* where it ended in the bytes being parsed (SIZE_MAX: not in them) */
    tg_jtype_t root; /* the document's type, once known */
    size_t root_n;   /* members or elements of the root */
    /* Per depth d (1 = inside the root): the paths that can still match a key of the open
     * object (0 in an array), the paths matching the key just read, the picked value whose
     * members are being counted (-1: none; -2: the root), and whether the container is an
     * array. Depths beyond are not followed. */
    uint32_t live[TG_JPICK_DEPTH + 2];
    uint32_t keyed[TG_JPICK_DEPTH + 2];
    int8_t counted[TG_JPICK_DEPTH + 2];
    uint8_t in_array[TG_JPICK_DEPTH + 2];
    tg_jval_t v[TG_JPICK_MAX]; /* by path index */
} tg_jpick_t;

/* A picker that holds nothing (as a zeroed one does): call before its first begin. */
static inline void tg_jpick_init(tg_jpick_t *pk)
{
    pk->yajl = NULL;
    pk->held = NULL;
    pk->held_len = pk->held_cap = 0;
}

/* Starts a document. The spec's paths: at most TG_JPICK_MAX (more are ignored), each of 1
 * to TG_JPICK_DEPTH keys. Returns 0, -1 when out of memory (the picker is then failed). */
int tg_jpick_begin(tg_jpick_t *pk, tg_jpick_spec_t *spec);
/* The next piece. Returns 0, or -1 once the document is known to be unreadable. */
int tg_jpick_feed(tg_jpick_t *pk, const char *p, size_t n);
/* The document ended. Returns 0 when it was one complete JSON value, else -1. The values
 * stay readable until the next begin. */
int tg_jpick_end(tg_jpick_t *pk);
/* Abandons a parse in progress (safe to call at any time, and more than once). */
void tg_jpick_free(tg_jpick_t *pk);
/* begin + feed + end of one whole document. */
int tg_jpick_doc(tg_jpick_t *pk, tg_jpick_spec_t *spec, const char *p, size_t n);

static inline const tg_jval_t *tg_jpick_get(const tg_jpick_t *pk, size_t i)
{
    return &pk->v[i];
}
static inline int tg_jpick_too_big(const tg_jpick_t *pk)
{
    return pk->too_big;
}

#endif
