/* libFuzzer target: the JWT verifier (src/auth/jwt.c) and the JWKS reader (jwks.c). The
 * first byte picks what the rest is:
 *   0..99    a token as presented (base64url parts, signatures the fuzzer cannot forge:
 *            the framing, the header's JSON, kid and alg checks, the signature lengths);
 *   100..199 "HEADER\0CLAIMS": two JSON texts the target encodes and signs with the HS256
 *            secret, so the claims' checks (types, times, iss, aud, the tenant and key
 *            claims, duplicates) are reached past a valid signature;
 *   200..255 a JWKS document.
 * Whatever comes, nothing crashes or leaks, a result is one of tg_jwt_result_t, and an
 * accepted token's claims are what the verifier promises. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "fuzz.h"

#define NOW_US 1796083200000000LL /* 2026-12-01T00:00:00Z */

static unsigned char secret[] = "fuzz-secret-0123456789abcdef-0123456789";
static tg_jwks_t *keys;
static tg_jwt_conf_t conf;

static size_t b64u(const unsigned char *p, size_t n, char *dst);

/* A JWKS of one RSA and one P-256 key made here (no private part is kept: nothing the
 * fuzzer makes verifies under them, but the RS256 and ES256 paths run up to the check). */
static void make_keys(void)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIGNUM *n = NULL, *e = NULL;
    unsigned char buf[512], pub[65];
    char nb[400], eb[16], xb[64], yb[64], jwks[1024];
    size_t pl = 0;
    if (!rsa || !ec || !EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &e) ||
        !EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &pl) ||
        pl != 65)
        abort();
    nb[b64u(buf, (size_t)BN_bn2bin(n, buf), nb)] = 0;
    eb[b64u(buf, (size_t)BN_bn2bin(e, buf), eb)] = 0;
    xb[b64u(pub + 1, 32, xb)] = 0;
    yb[b64u(pub + 33, 32, yb)] = 0;
    snprintf(jwks, sizeof jwks,
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             nb, eb, xb, yb);
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    tg_err_t err;
    if (tg_jwks_parse(jwks, strlen(jwks), &keys, &err) != 0) {
        fprintf(stderr, "fuzz_jwt: seed JWKS: %s\n", err.msg);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    make_keys();
    conf = (tg_jwt_conf_t){.set = 1,
                           .issuer = "https://idp.example",
                           .audience = "api",
                           .tenant_claim = "custom:tenant_id",
                           .key_claim = "custom:key_id",
                           .algorithms = TG_JWT_RS256 | TG_JWT_ES256 | TG_JWT_HS256,
                           .secret = secret,
                           .secret_len = sizeof secret - 1,
                           .leeway_ms = 30000};
    return 0;
}

static size_t b64u(const unsigned char *p, size_t n, char *dst)
{
    int len = EVP_EncodeBlock((unsigned char *)dst, p, (int)n);
    while (len > 0 && dst[len - 1] == '=')
        len--;
    for (int i = 0; i < len; i++)
        dst[i] = dst[i] == '+' ? '-' : dst[i] == '/' ? '_' : dst[i];
    return (size_t)len;
}

static void check(const char *tok, size_t len)
{
    tg_jwt_claims_t cl;
    tg_jwt_result_t r = tg_jwt_verify(&conf, keys, tok, len, NOW_US, &cl);
    FZ_CHECK(r >= TG_JWT_OK && r <= TG_JWT_NO_TENANT);
    FZ_CHECK(tg_jwt_result_reason(r) != NULL);
    if (r != TG_JWT_OK) return;
    FZ_CHECK(len <= TG_JWT_MAX && tg_jwt_looks_like(tok, len));
    FZ_CHECK(cl.tenant[0] && memchr(cl.tenant, 0, sizeof cl.tenant));
    FZ_CHECK(memchr(cl.sub, 0, sizeof cl.sub) && memchr(cl.key_id, 0, sizeof cl.key_id));
    FZ_CHECK(tg_jwt_check_times(&conf, &cl, NOW_US) == TG_JWT_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = data[0];
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if (mode < 100) {
        check(rest, n);
    } else if (mode < 200) {
        const char *nul = memchr(rest, 0, n);
        if (!nul || n > 6000) return 0;
        size_t hl = (size_t)(nul - rest), cl = n - hl - 1;
        char *tok = malloc(2 * n + 128);
        size_t o = b64u((const unsigned char *)rest, hl, tok);
        tok[o++] = '.';
        o += b64u((const unsigned char *)nul + 1, cl, tok + o);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned ml = 0;
        HMAC(EVP_sha256(), secret, (int)(sizeof secret - 1), (unsigned char *)tok, o, mac, &ml);
        tok[o++] = '.';
        o += b64u(mac, ml, tok + o);
        check(tok, o);
        free(tok);
    } else {
        tg_jwks_t *ks = NULL;
        tg_err_t err;
        err.msg[0] = 0;
        if (tg_jwks_parse(rest, n, &ks, &err) != 0) {
            FZ_CHECK(ks == NULL && err.msg[0]);
            return 0;
        }
        FZ_CHECK(ks != NULL && ks->nkeys <= TG_JWKS_MAX_KEYS);
        for (size_t i = 0; i < ks->nkeys; i++) {
            FZ_CHECK(ks->keys[i].pkey != NULL);
            FZ_CHECK(tg_jwks_find(ks, ks->keys[i].kid, strlen(ks->keys[i].kid)) != NULL);
        }
        tg_jwks_free(ks);
    }
    return 0;
}
