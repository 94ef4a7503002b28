/* JWT validation cost: instructions (under callgrind) or wall time of tg_jwt_verify for one
 * RS256, ES256 and HS256 token, N times each, keys made here by OpenSSL (bench/jwt/run.sh).
 *   bench_jwt ALG N      (ALG: RS256 | ES256 | HS256; prints microseconds per verify)
 *   bench_jwt ALG N hit  the same token verified once, then found N times in the worker's
 *                        cache of verified tokens (cached_auth: its SHA-256 and the lookup,
 *                        what the gateway does for a token it has seen) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/apikey.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "auth/jwtcache.h"

/* What AUTH does for a JWT before the keyring: hash it, look it up (auth/jwtcache.h). */
__attribute__((noinline)) static int cached_auth(tg_jwt_cache_t *c, const tg_config_t *cfg,
                                                 const char *tok, tg_jwt_claims_t *out)
{
    unsigned char sha[32];
    tg_apikey_hash(tok, strlen(tok), sha);
    return tg_jwt_cache_get(c, cfg, 0, sha, 1900000100000000LL, out);
}

static void b64u(const unsigned char *p, size_t n, char *dst)
{
    int len = EVP_EncodeBlock((unsigned char *)dst, p, (int)n);
    while (len > 0 && dst[len - 1] == '=')
        len--;
    dst[len] = '\0';
    for (int i = 0; i < len; i++)
        dst[i] = dst[i] == '+' ? '-' : dst[i] == '/' ? '_' : dst[i];
}

static void bn_b64u(EVP_PKEY *k, const char *param, char *dst)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    EVP_PKEY_get_bn_param(k, param, &bn);
    b64u(buf, (size_t)BN_bn2bin(bn, buf), dst);
    BN_free(bn);
}

/* n verifies (conf, ks) or n cache hits (c, cfg) of tok, timed; prints microseconds each. */
static int run(const char *alg, long n, const char *what, const tg_jwt_conf_t *conf,
               const tg_jwks_t *ks, const char *tok, tg_jwt_cache_t *c, const tg_config_t *cfg)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        tg_jwt_claims_t out;
        int r = c ? cached_auth(c, cfg, tok, &out)
                  : (int)tg_jwt_verify(conf, ks, tok, strlen(tok), 1900000100000000LL, &out);
        if (r != TG_JWT_OK) {
            fprintf(stderr, "%s: failed (%d)\n", what, r);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3;
    printf("%s %ld %s: %.3f us each\n", alg, n, what, n ? us / (double)n : 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 4 && !strcmp(argv[3], "hit"))) {
        fprintf(stderr, "usage: bench_jwt RS256|ES256|HS256 N [hit]\n");
        return 2;
    }
    const char *alg = argv[1];
    long n = atol(argv[2]);
    static char secret[] = "0123456789abcdef0123456789abcdef";
    EVP_PKEY *key = !strcmp(alg, "RS256")   ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                    : !strcmp(alg, "ES256") ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                            : NULL;
    char jwk[2048] = "", a[600], b[600];
    if (key && !strcmp(alg, "RS256")) {
        bn_b64u(key, OSSL_PKEY_PARAM_RSA_N, a);
        bn_b64u(key, OSSL_PKEY_PARAM_RSA_E, b);
        snprintf(jwk, sizeof jwk, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"%s\",\"e\":\"%s\"}]}", a, b);
    } else if (key) {
        unsigned char pub[65];
        size_t pl;
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &pl);
        b64u(pub + 1, 32, a);
        b64u(pub + 33, 32, b);
        snprintf(jwk, sizeof jwk,
                 "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", a, b);
    }
    tg_jwks_t *ks = NULL;
    tg_err_t err;
    if (key && tg_jwks_parse(jwk, strlen(jwk), &ks, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char hdr[128], cl[512], h[256], c[1024], tok[4096];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"typ\":\"JWT\"%s}", alg, key ? ",\"kid\":\"k\"" : "");
    snprintf(cl, sizeof cl,
             "{\"iss\":\"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc\",\"aud\":\"api\","
             "\"sub\":\"0f6b7c1e-2f44-4c52-9d0e-7c9f2f2c1a10\",\"custom:tenant_id\":\"acme\","
             "\"iat\":1900000000,\"exp\":1900003600,\"token_use\":\"access\",\"scope\":\"read write\"}");
    b64u((unsigned char *)hdr, strlen(hdr), h);
    b64u((unsigned char *)cl, strlen(cl), c);
    int off = snprintf(tok, sizeof tok, "%s.%s", h, c);
    unsigned char sig[600];
    size_t sl = sizeof sig;
    if (key) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key);
        EVP_DigestSign(md, sig, &sl, (unsigned char *)tok, (size_t)off);
        EVP_MD_CTX_free(md);
        if (!strcmp(alg, "ES256")) {
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
            unsigned char rs[64];
            BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
            ECDSA_SIG_free(es);
            memcpy(sig, rs, 64);
            sl = 64;
        }
    } else {
        unsigned int ml;
        HMAC(EVP_sha256(), secret, 32, (unsigned char *)tok, (size_t)off, sig, &ml);
        sl = ml;
    }
    tok[off++] = '.';
    b64u(sig, sl, tok + off);
    tg_jwt_conf_t conf = {.set = 1,
                          .issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
                          .audience = "api",
                          .tenant_claim = "custom:tenant_id",
                          .algorithms = TG_JWT_RS256 | TG_JWT_ES256 | TG_JWT_HS256,
                          .secret = (unsigned char *)secret,
                          .secret_len = 32,
                          .leeway_ms = 30000};
    if (argc > 3 && !strcmp(argv[3], "hit")) {
        static const char yaml[] =
            "auth: [jwt]\njwt: { issuer: x, secret: 0123456789abcdef0123456789abcdef }\n";
        tg_config_t *cfg;
        tg_err_t err;
        tg_jwt_claims_t out;
        if (tg_config_parse("bench.yaml", yaml, sizeof yaml - 1, &cfg, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (tg_jwt_verify(&conf, ks, tok, strlen(tok), 1900000100000000LL, &out) != TG_JWT_OK) {
            fprintf(stderr, "verify failed\n");
            return 1;
        }
        tg_jwt_cache_t *c = tg_jwt_cache_new();
        unsigned char sha[32];
        tg_apikey_hash(tok, strlen(tok), sha);
        tg_jwt_cache_put(c, cfg, 0, sha, &out);
        int rc = run(alg, n, "cache hits", NULL, NULL, tok, c, cfg);
        tg_jwt_cache_free(c);
        tg_config_unref(cfg);
        tg_jwks_free(ks);
        EVP_PKEY_free(key);
        return rc;
    }
    int rc = run(alg, n, "verifies", &conf, ks, tok, NULL, NULL);
    tg_jwks_free(ks);
    EVP_PKEY_free(key);
    return rc;
}
