/* Sizes and intervals that several modules share, named once: a module that needs one
 * includes this header instead of writing the number again. */
#ifndef TG_UTIL_SIZES_H
#define TG_UTIL_SIZES_H

#include <stddef.h>

/* A tenant id in memory: at most 63 characters (A-Z a-z 0-9 . _ -, checked by the CLI and
 * the store) and the NUL. Events, rows, the keyring and the policy tables hold them. */
#define TG_TENANT_SIZE 64

/* 1 when s is a tenant id as above: 1-63 characters of [A-Za-z0-9._-] (safe in URLs, file
 * names, log lines and metric labels without quoting). The one definition: the CLI checks
 * ids it is given with it, `tollgate ingest` those it reads in logs. */
static inline int tg_tenant_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n == TG_TENANT_SIZE - 1 ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

/* How often the keyring, the policy tables and the price book poll the store for a change
 * made by the CLI or the admin API (milliseconds): the longest a revoked key still works. */
#define TG_REFRESH_MS 250

/* Worker threads (server.workers) the server runs at most; the config refuses more. */
#define TG_WORKERS_MAX 256

#endif
