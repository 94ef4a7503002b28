/* Row mappings and list sinks, shared by the store's backends (sqlite*.c, postgres*.c).
 *
 * A row type as read from the database is described once: the table (or join) its
 * columns come from and its columns in SELECT order, each with the field of the row struct
 * it is read into. The same description builds the statement's column list and reads each
 * row, in either backend, so no list of positions is kept in step by hand, and a renamed
 * column fails the store tests that prepare every map against the migrated schema, not a
 * read at run time. A map's column names are SQL both dialects read alike (plain columns,
 * `k.status = 'active'`, coalesce()); a backend with a different spelling writes its own.
 *
 * Nothing outside src/store/ includes it, except the store's unit tests. */
#ifndef TG_STORE_ROWMAP_H
#define TG_STORE_ROWMAP_H

#include <stddef.h>

/* How one column of a SELECT is read into its field of a row struct. */
typedef enum {
    TG_COL_TEXT,     /* char[size]: copied, truncated to fit, NUL-terminated; NULL reads as "" */
    TG_COL_INT64,    /* int64_t; NULL reads as 0 */
    TG_COL_INT,      /* int; NULL reads as 0; a boolean reads as 1 or 0 */
    TG_COL_FLAG,     /* int: 1 when the column is nonzero (or true), else 0 */
    TG_COL_AMOUNT,   /* int64_t; NULL reads as -1 ("not set", as in tg_price_row_t) */
    TG_COL_DOUBLE,   /* double; NULL reads as 0 */
    TG_COL_BLOB,     /* unsigned char[size]: copied only when the blob has exactly size bytes */
    TG_COL_STR,      /* const char *: into the result, valid during the row's callback; NULL
                        stays NULL */
    TG_COL_BLOB_PTR, /* const unsigned char *: likewise, NULL unless exactly size bytes */
    TG_COL_ENUM,     /* int32_t: the index i < size with names(i) equal to the text; -1 when
                        NULL or none is */
    TG_COL_CUSTOM,   /* read(text, row) does it, given the column as text (NULL for NULL) */
} tg_col_kind_t;

typedef struct tg_col {
    const char *name; /* a column of the map's from, or an expression over it; NULL: the
                         group of a usage report, given per query (tg_rowmap_select) */
    tg_col_kind_t kind;
    size_t off, size;            /* the field in the row struct (size: see the kinds) */
    const char *(*names)(int i); /* TG_COL_ENUM only */
    void (*read)(const char *text, void *row); /* TG_COL_CUSTOM only */
} tg_col_t;

typedef struct tg_rowmap {
    const char *from;
    const tg_col_t *cols;
    int ncols;
    size_t row_size;
} tg_rowmap_t;

#define TG_FIELD_SIZE(T, f) sizeof(((T *)0)->f)
#define TG_COL(T, f, name, kind)                                                                   \
    {                                                                                              \
        (name), (kind), offsetof(T, f), TG_FIELD_SIZE(T, f), NULL, NULL                            \
    }
/* A pointer field to a blob of n bytes (TG_COL_BLOB_PTR). */
#define TG_COL_BLOB_PTR_N(T, f, name, n)                                                           \
    {                                                                                              \
        (name), TG_COL_BLOB_PTR, offsetof(T, f), (n), NULL, NULL                                   \
    }
/* An int32_t field holding the index of the column's text among names(0 .. count - 1). */
#define TG_COL_ENUM_OF(T, f, name, names, count)                                                   \
    {                                                                                              \
        (name), TG_COL_ENUM, offsetof(T, f), (size_t)(count), (names), NULL                        \
    }
/* A column read by fn(text, row) (TG_COL_CUSTOM). */
#define TG_COL_CUSTOM_FN(T, name, fn)                                                              \
    {                                                                                              \
        (name), TG_COL_CUSTOM, 0, sizeof(T), NULL, (fn)                                            \
    }
#define TG_ROWMAP(T, from, cols)                                                                   \
    {                                                                                              \
        (from), (cols), (int)(sizeof(cols) / sizeof((cols)[0])), sizeof(T)                         \
    }

/* "a, b, c": the map's column list for a SELECT, with "group AS grp" for a NULL name.
 * Returns its length, or -1 when it does not fit in cap. */
int tg_rowmap_select(const tg_rowmap_t *m, const char *group, char *buf, size_t cap);
/* "SELECT <the map's columns> <rest>", malloc'd; NULL when out of memory. */
char *tg_rowmap_select_sql(const tg_rowmap_t *m, const char *rest);
/* The index of text among names(0 .. count - 1), or -1 (also for NULL). */
int tg_rowmap_enum(const char *(*names)(int), int count, const char *text);

/* Where a list hands its rows: the caller's callback and ud. The callback's type names
 * the row type, so it is kept as void (*)(void) (a function pointer converts to another
 * function pointer type and back unchanged, C11 6.3.2.3p8) and called as its own type
 * again by the emit function that reads that row type. SINK checks at compile time that
 * cb takes a const T *. */
typedef struct sink {
    void (*cb)(void);
    void *ud;
} sink_t;
#define SINK_CB(T, cb)       ((void (*)(void))(1 ? (cb) : (int (*)(const T *, void *))0))
#define SINK(T, cb, ud)      ((sink_t){SINK_CB(T, cb), (ud)})
#define SINK_CALL(T, k, row) (((int (*)(const T *, void *))(k)->cb)((row), (k)->ud))

#endif
