/* API key generation and hashing: see apikey.h. Randomness and SHA-256 come
 * from OpenSSL; base62 by rejection sampling so every character is uniform. */
#include "auth/apikey.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#define SECRET_CHARS 43

/* SECRET_CHARS uniform base62 characters at out, NUL after them; 0 or -1 (RNG). */
static int random_b62(char *out)
{
    unsigned char rnd[64];
    size_t n = 0;
    while (n < SECRET_CHARS) {
        if (RAND_bytes(rnd, sizeof rnd) != 1) return -1;
        for (size_t i = 0; i < sizeof rnd && n < SECRET_CHARS; i++)
            if (rnd[i] < 248) /* 248 = 4 * 62: keeps the distribution uniform */
                out[n++] = b62[rnd[i] % 62];
    }
    out[SECRET_CHARS] = '\0';
    OPENSSL_cleanse(rnd, sizeof rnd);
    return 0;
}

int tg_apikey_generate(char secret[TG_APIKEY_SECRET_MAX], char key_id[TG_APIKEY_ID_MAX],
                       char prefix[TG_APIKEY_PREFIX_LEN + 1], unsigned char sha256[32])
{
    memcpy(secret, "tg_", sizeof "tg_" - 1);
    if (random_b62(secret + 3) != 0) return -1;
    return tg_apikey_import(secret, strlen(secret), key_id, prefix, sha256);
}

int tg_apikey_signing_secret(char out[TG_SIGNING_SECRET_LEN + 1])
{
    _Static_assert(sizeof "tgs_" - 1 + SECRET_CHARS == TG_SIGNING_SECRET_LEN, "rows.h's length");
    memcpy(out, "tgs_", sizeof "tgs_" - 1);
    return random_b62(out + 4);
}

int tg_apikey_import(const char *secret, size_t len, char key_id[TG_APIKEY_ID_MAX],
                     char prefix[TG_APIKEY_PREFIX_LEN + 1], unsigned char sha256[32])
{
    unsigned char idb[8];
    if (RAND_bytes(idb, sizeof idb) != 1) return -1;
    char *p = key_id + sprintf(key_id, "key_");
    for (size_t i = 0; i < sizeof idb; i++)
        p += sprintf(p, "%02x", idb[i]);

    size_t pn = tg_apikey_prefix_len(len);
    memcpy(prefix, secret, pn);
    prefix[pn] = '\0';
    tg_apikey_hash(secret, len, sha256);
    return 0;
}

/* SHA-256 fetched from OpenSSL's provider once: EVP_sha256() names it anew on every
 * digest (a lookup by name under a lock, and allocations), which cost every request about
 * 2,300 instructions of its 5,700 for hashing the presented key (callgrind). Kept for the
 * life of the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void tg_apikey_hash(const char *secret, size_t len, unsigned char sha256[32])
{
    unsigned int outlen = 32;
    pthread_once(&sha256_once, fetch_sha256);
    EVP_Digest(secret, len, sha256, &outlen, sha256_md ? (const EVP_MD *)sha256_md : EVP_sha256(),
               NULL);
}

int tg_apikey_hash_eq(const unsigned char a[32], const unsigned char b[32])
{
    return CRYPTO_memcmp(a, b, 32) == 0;
}
