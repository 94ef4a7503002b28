/* Sizes and intervals that several modules share, named once: a module that needs one
 * includes this header instead of writing the number again. */
#ifndef TG_UTIL_SIZES_H
#define TG_UTIL_SIZES_H

/* A tenant id in memory: at most 63 characters (A-Z a-z 0-9 . _ -, checked by the CLI and
 * the store) and the NUL. Events, rows, the keyring and the policy tables hold them. */
#define TG_TENANT_SIZE 64

/* How often the keyring, the policy tables and the price book poll the store for a change
 * made by the CLI or the admin API (milliseconds): the longest a revoked key still works. */
#define TG_REFRESH_MS 250

/* Worker threads (server.workers) the server runs at most; the config refuses more. */
#define TG_WORKERS_MAX 256

#endif
