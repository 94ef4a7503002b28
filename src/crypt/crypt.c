/* Envelope encryption under a KEK: see crypt.h for the blob's layout and why. Every
 * AES-256-GCM operation goes through gcm() below, one EVP context each. */
#include "crypt/crypt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define NONCE 12
#define TAG   16
#define HEAD  12 /* magic + KEK id: the wrap's AAD */
#define DATA  (HEAD + TG_WRAPPED_DEK_LEN)

static const unsigned char magic[4] = {'T', 'G', 'S', 0x01};

/* AES-256-GCM of in[0..n) into out (same length) with aad; enc 1 writes tag, enc 0 checks
 * it. 0, or -1 (a tag that does not match, or OpenSSL failing). */
static int gcm(int enc, const unsigned char key[32], const unsigned char nonce[NONCE],
               const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t n,
               unsigned char *out, unsigned char tag[TAG])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len, ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
                  EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) == 1;
    if (ok && aadlen) ok = EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aadlen) == 1;
    if (ok && n) ok = EVP_CipherUpdate(ctx, out, &len, in, (int)n) == 1;
    if (ok && !enc) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, tag) == 1;
    if (ok) ok = EVP_CipherFinal_ex(ctx, out + n, &len) == 1;
    if (ok && enc) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
}

int tg_kek_parse(const char *text, size_t len, const char *what, tg_kek_t *out, tg_err_t *err)
{
    while (len && isspace((unsigned char)*text))
        text++, len--;
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    memset(out, 0, sizeof *out);
    unsigned char raw[64];
    int ok = 0;
    if (len == 2 * TG_KEK_LEN && all_hex(text, len)) {
        char hex[2 * TG_KEK_LEN + 1];
        size_t got = 0;
        memcpy(hex, text, len);
        hex[len] = '\0';
        ok = OPENSSL_hexstr2buf_ex(raw, sizeof raw, &got, hex, '\0') == 1 && got == TG_KEK_LEN;
        if (ok) memcpy(out->key, raw, TG_KEK_LEN);
        OPENSSL_cleanse(hex, sizeof hex);
    } else if (len == 43 || len == 44) {
        /* base64 of 32 bytes is 43 characters and one '=' of padding. */
        char b64[45];
        memcpy(b64, text, len);
        if (len == 43) b64[len++] = '=';
        ok = b64[43] == '=' && b64[42] != '=' &&
             EVP_DecodeBlock(raw, (const unsigned char *)b64, 44) == 33;
        if (ok) memcpy(out->key, raw, TG_KEK_LEN);
        OPENSSL_cleanse(b64, sizeof b64);
    }
    OPENSSL_cleanse(raw, sizeof raw);
    if (!ok)
        return tg_err_set(err,
                          "%s: expected a 32-byte key written as 64 hex digits or base64 "
                          "(make one with: openssl rand -hex 32)",
                          what);
    unsigned char in[15 + TG_KEK_LEN], sha[EVP_MAX_MD_SIZE];
    memcpy(in, "tollgate kek id", 15);
    memcpy(in + 15, out->key, TG_KEK_LEN);
    ok = EVP_Digest(in, sizeof in, sha, NULL, EVP_sha256(), NULL) == 1;
    OPENSSL_cleanse(in, sizeof in);
    memcpy(out->id, sha, TG_KEK_ID_LEN);
    return ok ? 0 : tg_err_set(err, "%s: SHA-256 failed", what);
}

void tg_kek_id_hex(const tg_kek_t *k, char hex[2 * TG_KEK_ID_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < TG_KEK_ID_LEN; i++) {
        hex[2 * i] = digits[k->id[i] >> 4];
        hex[2 * i + 1] = digits[k->id[i] & 15];
    }
    hex[2 * TG_KEK_ID_LEN] = '\0';
}

void tg_kek_wipe(tg_kek_t *k)
{
    OPENSSL_cleanse(k, sizeof *k);
}

void tg_crypt_free(void *p, size_t n)
{
    if (!p) return;
    OPENSSL_cleanse(p, n);
    free(p);
}

/* Wraps dek into blob[HEAD .. DATA) under kek; blob[0 .. HEAD) is written first. */
static int wrap(const tg_kek_t *kek, const unsigned char dek[32], unsigned char *blob)
{
    memcpy(blob, magic, sizeof magic);
    memcpy(blob + 4, kek->id, TG_KEK_ID_LEN);
    unsigned char *nonce = blob + HEAD;
    if (RAND_bytes(nonce, NONCE) != 1) return -1;
    return gcm(1, kek->key, nonce, blob, HEAD, dek, 32, nonce + NONCE, nonce + NONCE + 32);
}

/* The DEK of a blob of n bytes (n >= DATA + NONCE + TAG checked by the caller). */
static int unwrap(const tg_kek_t *kek, const unsigned char *blob, unsigned char dek[32],
                  tg_err_t *err)
{
    if (memcmp(blob, magic, sizeof magic) != 0)
        return tg_err_set(err, "not a sealed blob (unknown magic or version)");
    if (CRYPTO_memcmp(blob + 4, kek->id, TG_KEK_ID_LEN) != 0) {
        char want[2 * TG_KEK_ID_LEN + 1];
        tg_kek_t other;
        memcpy(other.id, blob + 4, TG_KEK_ID_LEN);
        tg_kek_id_hex(&other, want);
        return tg_err_set(err, "sealed by another key-encryption key (id %s)", want);
    }
    const unsigned char *nonce = blob + HEAD;
    unsigned char tag[TAG];
    memcpy(tag, nonce + NONCE + 32, TAG);
    if (gcm(0, kek->key, nonce, blob, HEAD, nonce + NONCE, 32, dek, tag) != 0) {
        OPENSSL_cleanse(dek, 32);
        return tg_err_set(err, "sealed blob does not authenticate (its data key was altered)");
    }
    return 0;
}

int tg_crypt_seal(const tg_kek_t *kek, const void *pt, size_t n, const void *aad, size_t aadlen,
                  unsigned char **out, size_t *outlen, tg_err_t *err)
{
    *out = NULL;
    *outlen = 0;
    if (n > (size_t)1 << 30) return tg_err_set(err, "seal: %zu bytes is too large", n);
    unsigned char *blob = malloc(n + TG_SEAL_OVERHEAD), dek[32];
    if (!blob) return tg_err_set(err, "seal: out of memory");
    unsigned char *nonce = blob + DATA;
    int ok = RAND_bytes(dek, sizeof dek) == 1 && wrap(kek, dek, blob) == 0 &&
             RAND_bytes(nonce, NONCE) == 1 &&
             gcm(1, dek, nonce, aad, aadlen, pt, n, nonce + NONCE, nonce + NONCE + n) == 0;
    OPENSSL_cleanse(dek, sizeof dek);
    if (!ok) {
        free(blob);
        return tg_err_set(err, "seal: OpenSSL failed (random bytes or AES-256-GCM)");
    }
    *out = blob;
    *outlen = n + TG_SEAL_OVERHEAD;
    return 0;
}

int tg_crypt_open(const tg_kek_t *kek, const unsigned char *blob, size_t n, const void *aad,
                  size_t aadlen, unsigned char **out, size_t *outlen, tg_err_t *err)
{
    *out = NULL;
    *outlen = 0;
    if (!blob || n < TG_SEAL_OVERHEAD)
        return tg_err_set(err, "not a sealed blob (%zu bytes, at least %d expected)", n,
                          TG_SEAL_OVERHEAD);
    unsigned char dek[32];
    if (unwrap(kek, blob, dek, err) != 0) return -1;
    size_t m = n - TG_SEAL_OVERHEAD;
    unsigned char *pt = malloc(m + 1), tag[TAG];
    const unsigned char *nonce = blob + DATA;
    memcpy(tag, nonce + NONCE + m, TAG);
    int rc = pt ? gcm(0, dek, nonce, aad, aadlen, nonce + NONCE, m, pt, tag) : -1;
    OPENSSL_cleanse(dek, sizeof dek);
    if (rc != 0) {
        tg_crypt_free(pt, m + 1);
        return tg_err_set(err, pt ? "sealed blob does not authenticate (tampered, or it "
                                    "belongs to another record)"
                                  : "open: out of memory");
    }
    pt[m] = '\0';
    *out = pt;
    *outlen = m;
    return 0;
}

int tg_crypt_rewrap(const tg_kek_t *from, const tg_kek_t *to, const unsigned char *blob, size_t n,
                    unsigned char **out, tg_err_t *err)
{
    *out = NULL;
    if (!blob || n < TG_SEAL_OVERHEAD)
        return tg_err_set(err, "not a sealed blob (%zu bytes, at least %d expected)", n,
                          TG_SEAL_OVERHEAD);
    unsigned char dek[32];
    if (unwrap(from, blob, dek, err) != 0) return -1;
    unsigned char *nb = malloc(n);
    int ok = nb && wrap(to, dek, nb) == 0;
    OPENSSL_cleanse(dek, sizeof dek);
    if (!ok) {
        free(nb);
        return tg_err_set(err, "rewrap: out of memory or OpenSSL failed");
    }
    memcpy(nb + DATA, blob + DATA, n - DATA);
    *out = nb;
    return 0;
}
