/* Store URL dispatch: see store.h. The scheme picks the backend; everything
 * after it is the backend's business. */
#include "store/store.h"

#include <string.h>

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

int tg_store_open(const char *url, tg_store_t **out, tg_err_t *err)
{
    *out = NULL;
    if (!url || !*url) return tg_err_set(err, "no store configured (expected sqlite:PATH)");

    if (has_prefix(url, "sqlite:")) {
        /* "sqlite:./x.db" and "sqlite:/abs/x.db"; "sqlite:///abs/x.db" too,
         * for those used to URL forms. */
        const char *path = url + strlen("sqlite:");
        if (has_prefix(path, "//")) path += 2;
        if (!*path) return tg_err_set(err, "store \"%s\": missing database path", url);
        return tg_sqlite_open(path, out, err);
    }
    if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://"))
        return tg_err_set(err, "postgres store is not supported yet");
    /* Only the scheme is echoed: the rest of a URL may hold a password. */
    size_t scheme = strcspn(url, ":");
    if (!url[scheme])
        return tg_err_set(err, "store \"%s\": missing scheme (expected sqlite:PATH)", url);
    return tg_err_set(err, "store \"%.*s:...\": unknown scheme (expected sqlite:PATH)",
                      (int)(scheme < 32 ? scheme : 32), url);
}
