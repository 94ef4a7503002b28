/* Keyed hashes under keys derived from the KEK: a value stored in the clear that must not
 * reveal what it was computed from (the outbox's row ids, notify/seal.h), yet is the same
 * each time for the same input under the same KEK, so a unique key still de-duplicates.
 *
 * The key for a purpose is HMAC-SHA256(KEK, "tollgate keyed hash" || purpose): one KEK
 * gives unrelated keys for unrelated uses, and the KEK itself never touches the data. The
 * hash is HMAC-SHA256(that key, data). Another KEK gives other hashes: a value hashed before
 * `kek rotate` does not match the same value hashed after it. */
#ifndef TG_CRYPT_KEYED_H
#define TG_CRYPT_KEYED_H

#include <stddef.h>

#include "crypt/crypt.h"

#define TG_KEYED_HASH_LEN 32

/* out = HMAC-SHA256(key of purpose under kek, data[0..n)). 0, or -1 when OpenSSL failed. */
int tg_crypt_keyed_hash(const tg_kek_t *kek, const char *purpose, const void *data, size_t n,
                        unsigned char out[TG_KEYED_HASH_LEN]);

#endif
