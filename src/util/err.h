/* Errors are values: a function that can fail returns 0 or a negative code and,
 * when the caller passes a tg_err_t, fills it with one human-readable line. */
#ifndef TG_UTIL_ERR_H
#define TG_UTIL_ERR_H

#include <stddef.h>

typedef struct tg_err {
    char msg[512];
} tg_err_t;

/* Formats into err (if non-NULL) and returns -1, so callers can `return tg_err_set(...)`. */
int tg_err_set(tg_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
