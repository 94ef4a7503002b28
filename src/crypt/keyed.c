/* Keyed hashes under keys derived from the KEK: see keyed.h. OpenSSL's one-shot HMAC. */
#include "crypt/keyed.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define LABEL "tollgate keyed hash"

int tg_crypt_keyed_hash(const tg_kek_t *kek, const char *purpose, const void *data, size_t n,
                        unsigned char out[TG_KEYED_HASH_LEN])
{
    size_t plen = strlen(purpose);
    unsigned char info[sizeof LABEL - 1 + 64], key[EVP_MAX_MD_SIZE];
    unsigned int klen = 0, olen = 0;
    if (plen > 64) return -1;
    memcpy(info, LABEL, sizeof LABEL - 1);
    memcpy(info + sizeof LABEL - 1, purpose, plen);
    int ok = HMAC(EVP_sha256(), kek->key, TG_KEK_LEN, info, sizeof LABEL - 1 + plen, key, &klen) &&
             HMAC(EVP_sha256(), key, (int)klen, data, n, out, &olen) && olen == TG_KEYED_HASH_LEN;
    OPENSSL_cleanse(key, sizeof key);
    return ok ? 0 : -1;
}
