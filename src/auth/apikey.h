/* Tenant API keys: generation and hashing.
 *
 * A secret is "tg_" + 43 base62 characters (256 bits of randomness). The store
 * keeps only its SHA-256 and a display prefix (the first 8 characters); the
 * secret is shown once, by `tollgate key create`. Comparisons of hashes use
 * CRYPTO_memcmp (constant time). */
#ifndef TG_AUTH_APIKEY_H
#define TG_AUTH_APIKEY_H

#include <stddef.h>

#include "types/rows.h"

#define TG_APIKEY_SECRET_MAX 64 /* buffer size for a secret, NUL included */
#define TG_APIKEY_ID_MAX     32
#define TG_APIKEY_PREFIX_LEN 8
/* How much of a secret of len bytes its display prefix shows: TG_APIKEY_PREFIX_LEN, and
 * never more than half of it (an 8-character imported secret was stored whole). */
static inline size_t tg_apikey_prefix_len(size_t len)
{
    return len / 2 < TG_APIKEY_PREFIX_LEN ? len / 2 : TG_APIKEY_PREFIX_LEN;
}

/* Fills a fresh secret, its public key id ("key_" + 16 hex), display prefix and
 * SHA-256. Returns 0, or -1 if the system RNG failed. */
int tg_apikey_generate(char secret[TG_APIKEY_SECRET_MAX], char key_id[TG_APIKEY_ID_MAX],
                       char prefix[TG_APIKEY_PREFIX_LEN + 1], unsigned char sha256[32]);

/* The same for an existing secret (`tollgate key import`: a key made elsewhere, any
 * printable form): a fresh key id, its display prefix (its first 8 characters, or all of
 * a shorter one) and SHA-256. Returns 0, or -1 if the system RNG failed. */
int tg_apikey_import(const char *secret, size_t len, char key_id[TG_APIKEY_ID_MAX],
                     char prefix[TG_APIKEY_PREFIX_LEN + 1], unsigned char sha256[32]);

void tg_apikey_hash(const char *secret, size_t len, unsigned char sha256[32]);

/* A fresh signing secret (signed requests, auth/sign.h): "tgs_" + 43 base62 characters,
 * TG_SIGNING_SECRET_LEN bytes and a NUL. 0, or -1 if the system RNG failed. */
int tg_apikey_signing_secret(char out[TG_SIGNING_SECRET_LEN + 1]);

/* Constant-time equality of two 32-byte hashes. */
int tg_apikey_hash_eq(const unsigned char a[32], const unsigned char b[32]);

#endif
