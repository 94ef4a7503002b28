/* Tests src/auth/jwt.c, jwks.c and b64url.c with keys made here by OpenSSL and fixed
 * instants: every rule of jwt.h, each refusal with its own result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth/b64url.h"
#include "auth/jwks.h"
#include "auth/jwt.h"
#include "util/buf.h"

#define NOW_S  1900000000LL /* 2030-03-17, a fixed instant */
#define NOW_US (NOW_S * 1000000LL)

static EVP_PKEY *rsa, *ec;
static tg_jwks_t *jwks;
static char secret[] = "0123456789abcdef0123456789abcdef";
static tg_jwt_conf_t conf;

/* base64url of p[0..n) into dst (no padding). */
static void b64u(const unsigned char *p, size_t n, char *dst)
{
    int len = EVP_EncodeBlock((unsigned char *)dst, p, (int)n);
    while (len > 0 && dst[len - 1] == '=')
        len--;
    dst[len] = '\0';
    for (int i = 0; i < len; i++)
        dst[i] = dst[i] == '+' ? '-' : dst[i] == '/' ? '_' : dst[i];
}

static void b64u_str(const char *s, char *dst)
{
    b64u((const unsigned char *)s, strlen(s), dst);
}

static void bn_b64u(EVP_PKEY *k, const char *param, char *dst)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    unsigned char buf[512];
    int n = BN_bn2bin(bn, buf);
    b64u(buf, (size_t)n, dst);
    BN_free(bn);
}

/* The JWKS of rsa (kid "r1") and ec (kid "e1"), plus extra keys' JSON when given. */
static char *make_jwks(const char *extra)
{
    static char doc[8192];
    char n[600], e[16], x[64], y[64];
    bn_b64u(rsa, OSSL_PKEY_PARAM_RSA_N, n);
    bn_b64u(rsa, OSSL_PKEY_PARAM_RSA_E, e);
    unsigned char pub[65];
    size_t pl = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &pl), 1);
    assert_int_equal(pl, 65);
    b64u(pub + 1, 32, x);
    b64u(pub + 33, 32, y);
    snprintf(
        doc, sizeof doc,
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"%s\","
        "\"e\":\"%s\"},{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}%"
        "s]}",
        n, e, x, y, extra ? extra : "");
    return doc;
}

static int setup(void **state)
{
    (void)state;
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(rsa);
    assert_non_null(ec);
    char *doc = make_jwks(NULL);
    tg_err_t err;
    if (tg_jwks_parse(doc, strlen(doc), &jwks, &err) != 0) fail_msg("%s", err.msg);
    conf = (tg_jwt_conf_t){.set = 1,
                           .issuer = "https://idp",
                           .audience = "api",
                           .tenant_claim = "custom:tenant_id",
                           .key_claim = "custom:key_id",
                           .algorithms = TG_JWT_RS256 | TG_JWT_ES256 | TG_JWT_HS256,
                           .secret = (unsigned char *)secret,
                           .secret_len = strlen(secret),
                           .leeway_ms = 30000};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tg_jwks_free(jwks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return 0;
}

enum { SIG_OK, SIG_DER };

/* header.claims.signature, signed with key (NULL: HMAC with hmac_key). */
static char *token(const char *header, const char *claims, EVP_PKEY *key, const char *hmac_key,
                   int how)
{
    static char tok[16384];
    char h[2048], c[12288];
    b64u_str(header, h);
    b64u_str(claims, c);
    int off = snprintf(tok, sizeof tok, "%s.%s", h, c);
    unsigned char sig[600];
    size_t sl = sizeof sig;
    if (!key) {
        unsigned int ml = 0;
        HMAC(EVP_sha256(), hmac_key, (int)strlen(hmac_key), (unsigned char *)tok, (size_t)off, sig,
             &ml);
        sl = ml;
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, sig, &sl, (unsigned char *)tok, (size_t)off), 1);
        EVP_MD_CTX_free(md);
        if (EVP_PKEY_is_a(key, "EC") && how == SIG_OK) { /* DER -> r||s */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
            unsigned char rs[64];
            BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
            ECDSA_SIG_free(es);
            memcpy(sig, rs, 64);
            sl = 64;
        }
    }
    tok[off++] = '.';
    b64u(sig, sl, tok + off);
    return tok;
}

static char claims_buf[12288];
/* Good claims for tenant acme with extra members (",\"k\":v" text) appended. */
static const char *claims(const char *extra)
{
    snprintf(
        claims_buf, sizeof claims_buf,
        "{\"iss\":\"https://idp\",\"aud\":\"api\",\"sub\":\"u-1\",\"custom:tenant_id\":\"acme\","
        "\"iat\":%lld,\"exp\":%lld%s}",
        NOW_S - 10, NOW_S + 600, extra ? extra : "");
    return claims_buf;
}

static tg_jwt_result_t verify_at(const char *tok, int64_t now_us, tg_jwt_claims_t *out)
{
    return tg_jwt_verify(&conf, jwks, tok, strlen(tok), now_us, out);
}

static tg_jwt_result_t verify(const char *tok)
{
    tg_jwt_claims_t out;
    return verify_at(tok, NOW_US, &out);
}

static void test_happy_paths(void **state)
{
    (void)state;
    tg_jwt_claims_t out;
    assert_int_equal(
        verify_at(token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", claims(NULL), rsa, NULL, 0), NOW_US,
                  &out),
        TG_JWT_OK);
    assert_string_equal(out.tenant, "acme");
    assert_string_equal(out.sub, "u-1");
    assert_string_equal(out.key_id, "");
    assert_int_equal(out.exp_us, (NOW_S + 600) * 1000000LL);
    assert_int_equal(verify(token("{\"alg\":\"ES256\",\"kid\":\"e1\"}", claims(NULL), ec, NULL, 0)),
                     TG_JWT_OK);
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", claims(",\"custom:key_id\":\"key_1\""),
                                  NULL, secret, 0)),
                     TG_JWT_OK);
    assert_int_equal(verify_at(token("{\"alg\":\"HS256\"}", claims(",\"custom:key_id\":\"key_1\""),
                                     NULL, secret, 0),
                               NOW_US, &out),
                     TG_JWT_OK);
    assert_string_equal(out.key_id, "key_1");
    /* aud as an array holding ours */
    assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":\"r1\"}",
                                  "{\"iss\":\"https://idp\",\"aud\":[\"x\",\"api\"],"
                                  "\"custom:tenant_id\":\"acme\",\"exp\":1900000600}",
                                  rsa, NULL, 0)),
                     TG_JWT_OK);
}

static void test_algorithm_is_the_keys(void **state)
{
    (void)state;
    const char *c = claims(NULL);
    assert_int_equal(verify(token("{\"alg\":\"none\"}", c, NULL, "", 0)), TG_JWT_ALG_NONE);
    assert_int_equal(verify(token("{\"alg\":\"nOnE\",\"kid\":\"r1\"}", c, NULL, "", 0)),
                     TG_JWT_ALG_NONE);
    assert_int_equal(verify(token("{\"alg\":\"PS256\",\"kid\":\"r1\"}", c, rsa, NULL, 0)),
                     TG_JWT_ALG_REFUSED);
    assert_int_equal(verify(token("{\"kid\":\"r1\"}", c, rsa, NULL, 0)), TG_JWT_MALFORMED);
    /* RS256 -> HS256 confusion: an HMAC over the token with the RSA key's PEM as secret. */
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, rsa);
    char pem[1024] = {0};
    BIO_read(b, pem, sizeof pem - 1);
    BIO_free(b);
    assert_int_equal(verify(token("{\"alg\":\"HS256\",\"kid\":\"r1\"}", c, NULL, pem, 0)),
                     TG_JWT_ALG_MISMATCH);
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, pem, 0)), TG_JWT_BAD_SIGNATURE);
    /* The EC key named for an RS256 token; the RSA key for ES256. */
    assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":\"e1\"}", c, rsa, NULL, 0)),
                     TG_JWT_ALG_MISMATCH);
    assert_int_equal(verify(token("{\"alg\":\"ES256\",\"kid\":\"r1\"}", c, ec, NULL, 0)),
                     TG_JWT_ALG_MISMATCH);
    /* An algorithm not configured is refused even with its key. */
    conf.algorithms = TG_JWT_ES256 | TG_JWT_HS256;
    assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", c, rsa, NULL, 0)),
                     TG_JWT_ALG_REFUSED);
    conf.algorithms = TG_JWT_RS256 | TG_JWT_ES256 | TG_JWT_HS256;
    /* No kid and two keys in the set: no key is guessed. */
    assert_int_equal(verify(token("{\"alg\":\"RS256\"}", c, rsa, NULL, 0)), TG_JWT_UNKNOWN_KID);
    assert_int_equal(
        verify(token("{\"alg\":\"RS256\",\"kid\":\"../../etc/passwd\"}", c, rsa, NULL, 0)),
        TG_JWT_UNKNOWN_KID);
    assert_int_equal(verify(token("{\"alg\":\"RS256\",\"kid\":7}", c, rsa, NULL, 0)),
                     TG_JWT_UNKNOWN_KID);
    assert_int_equal(
        verify(token("{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"b64\"]}", c, rsa, NULL, 0)),
        TG_JWT_UNSUPPORTED);
}

static void test_signatures(void **state)
{
    (void)state;
    const char *c = claims(NULL);
    char tok[16384];
    snprintf(tok, sizeof tok, "%s", token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", c, rsa, NULL, 0));
    char *dot = strrchr(tok, '.');
    /* a flipped bit in the signature */
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(tok), TG_JWT_BAD_SIGNATURE);
    dot[1] = '\0'; /* stripped */
    assert_int_equal(verify(tok), TG_JWT_NO_SIGNATURE);
    snprintf(tok, sizeof tok, "%s", token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", c, rsa, NULL, 0));
    dot = strrchr(tok, '.');
    dot[1 + 300] = '\0'; /* truncated to 225 bytes */
    assert_int_equal(verify(tok), TG_JWT_SIG_LENGTH);
    assert_int_equal(verify(token("{\"alg\":\"ES256\",\"kid\":\"e1\"}", c, ec, NULL, SIG_DER)),
                     TG_JWT_SIG_LENGTH);
    assert_int_equal(
        verify(token("{\"alg\":\"HS256\"}", c, NULL, "another-secret-of-32-bytes-----", 0)),
        TG_JWT_BAD_SIGNATURE);
    /* claims changed after signing */
    snprintf(tok, sizeof tok, "%s", token("{\"alg\":\"HS256\"}", c, NULL, secret, 0));
    char other[4096];
    b64u_str(claims(",\"x\":1"), other);
    char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.'), forged[16384];
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(d1 - tok), tok, other, d2);
    assert_int_equal(verify(forged), TG_JWT_BAD_SIGNATURE);
}

static void test_shape(void **state)
{
    (void)state;
    assert_int_equal(verify("a.b"), TG_JWT_MALFORMED);
    assert_int_equal(verify("a.b.c.d"), TG_JWT_MALFORMED);
    assert_int_equal(verify("..."), TG_JWT_MALFORMED);
    assert_int_equal(verify("e30=.e30.AAAA"), TG_JWT_MALFORMED); /* padding */
    assert_int_equal(verify("W10.e30.AAAA"), TG_JWT_MALFORMED);  /* [] is not an object */
    assert_int_equal(
        verify(token("{\"alg\":\"HS256\",\"alg\":\"none\"}", claims(NULL), NULL, secret, 0)),
        TG_JWT_DUPLICATE);
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", claims(",\"custom:tenant_id\":\"evil\""),
                                  NULL, secret, 0)),
                     TG_JWT_DUPLICATE);
    char big[TG_JWT_MAX + 2];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[10] = big[20] = '.';
    assert_int_equal(verify(big), TG_JWT_TOO_LARGE);
    assert_true(tg_jwt_looks_like(TG_LIT("a.b.c")));
    assert_true(tg_jwt_looks_like(TG_LIT("a.b.")));
    assert_false(tg_jwt_looks_like(TG_LIT("tg_abcdef")));
    assert_false(tg_jwt_looks_like(TG_LIT("a.b")));
    assert_false(tg_jwt_looks_like(TG_LIT("a.b.c.d")));
}

static void test_times(void **state)
{
    (void)state;
    tg_jwt_claims_t out;
    const char *tok = token("{\"alg\":\"HS256\"}", claims(NULL), NULL, secret, 0);
    int64_t exp = (NOW_S + 600) * 1000000LL, leeway = 30000000;
    assert_int_equal(verify_at(tok, exp + leeway - 1, &out), TG_JWT_OK);
    assert_int_equal(verify_at(tok, exp + leeway, &out), TG_JWT_EXPIRED);
    char c[512];
    snprintf(c, sizeof c,
             "{\"iss\":\"https://"
             "idp\",\"aud\":\"api\",\"custom:tenant_id\":\"acme\",\"exp\":%lld,\"nbf\":%lld}",
             NOW_S + 600, NOW_S + 100);
    tok = token("{\"alg\":\"HS256\"}", c, NULL, secret, 0);
    assert_int_equal(verify_at(tok, NOW_US, &out), TG_JWT_NOT_YET_VALID);
    assert_int_equal(verify_at(tok, (NOW_S + 70) * 1000000LL, &out), TG_JWT_OK); /* in leeway */
    snprintf(c, sizeof c,
             "{\"iss\":\"https://"
             "idp\",\"aud\":\"api\",\"custom:tenant_id\":\"acme\",\"exp\":%lld,\"iat\":%lld}",
             NOW_S + 600, NOW_S + 31);
    tok = token("{\"alg\":\"HS256\"}", c, NULL, secret, 0);
    assert_int_equal(verify_at(tok, NOW_US, &out), TG_JWT_ISSUED_FUTURE);
    snprintf(c, sizeof c,
             "{\"iss\":\"https://idp\",\"aud\":\"api\",\"custom:tenant_id\":\"acme\"}");
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, secret, 0)), TG_JWT_BAD_CLAIM);
    snprintf(
        c, sizeof c,
        "{\"iss\":\"https://idp\",\"aud\":\"api\",\"custom:tenant_id\":\"acme\",\"exp\":\"soon\"}");
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, secret, 0)), TG_JWT_BAD_CLAIM);
    snprintf(
        c, sizeof c,
        "{\"iss\":\"https://idp\",\"aud\":\"api\",\"custom:tenant_id\":\"acme\",\"exp\":1e300}");
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, secret, 0)), TG_JWT_BAD_CLAIM);
}

static void test_claims(void **state)
{
    (void)state;
    char c[512];
    snprintf(
        c, sizeof c,
        "{\"iss\":\"https://evil\",\"aud\":\"api\",\"custom:tenant_id\":\"acme\",\"exp\":%lld}",
        NOW_S + 600);
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, secret, 0)), TG_JWT_BAD_ISSUER);
    snprintf(c, sizeof c,
             "{\"iss\":\"https://idp\",\"aud\":[\"x\"],\"custom:tenant_id\":\"acme\",\"exp\":%lld}",
             NOW_S + 600);
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, secret, 0)), TG_JWT_BAD_AUDIENCE);
    snprintf(c, sizeof c, "{\"iss\":\"https://idp\",\"aud\":\"api\",\"exp\":%lld}", NOW_S + 600);
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, secret, 0)), TG_JWT_NO_TENANT);
    snprintf(c, sizeof c,
             "{\"iss\":\"https://idp\",\"aud\":\"api\",\"custom:tenant_id\":\"a b\",\"exp\":%lld}",
             NOW_S + 600);
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, secret, 0)), TG_JWT_NO_TENANT);
    assert_int_equal(
        verify(token("{\"alg\":\"HS256\"}", claims(",\"custom:key_id\":5"), NULL, secret, 0)),
        TG_JWT_BAD_CLAIM);
    /* audience not configured: any aud passes */
    conf.audience = NULL;
    snprintf(c, sizeof c,
             "{\"iss\":\"https://idp\",\"aud\":[\"x\"],\"custom:tenant_id\":\"acme\",\"exp\":%lld}",
             NOW_S + 600);
    assert_int_equal(verify(token("{\"alg\":\"HS256\"}", c, NULL, secret, 0)), TG_JWT_OK);
    conf.audience = "api";
    assert_string_equal(tg_jwt_result_reason(TG_JWT_EXPIRED), "jwt_expired");
}

static void test_jwks_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        ",{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"AAAA\"}",
        ",{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
        ",{\"kty\":\"RSA\",\"kid\":\"small\",\"n\":\"AQABAQABAQAB\",\"e\":\"AQAB\"}",
        ",{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":"
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
        "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
        ",{\"kty\":\"EC\",\"kid\":\"enc\",\"use\":\"enc\",\"crv\":\"P-256\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_jwks_t *ks = NULL;
        tg_err_t err;
        char *doc = make_jwks(bad[i]);
        if (tg_jwks_parse(doc, strlen(doc), &ks, &err) == 0) fail_msg("accepted: %s", bad[i]);
        assert_null(ks);
        assert_non_null(strstr(err.msg, "keys[2]"));
    }
    tg_jwks_t *ks = NULL;
    tg_err_t err;
    assert_int_equal(tg_jwks_parse(TG_LIT("{\"keys\":[]}"), &ks, &err), -1);
    assert_int_equal(tg_jwks_parse(TG_LIT("{\"keys\":1,\"keys\":2}"), &ks, &err), -1);
    assert_null(tg_jwks_find(jwks, TG_LIT("r")));
    assert_non_null(tg_jwks_find(jwks, TG_LIT("r1")));
}

static void test_b64url(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(tg_b64url_decode(TG_LIT("AQAB"), out), 3);
    assert_int_equal(tg_b64url_decode(TG_LIT("-_8"), out), 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(tg_b64url_decode(TG_LIT("-_9"), out), -1); /* unused bits set */
    assert_int_equal(tg_b64url_decode(TG_LIT("AQA"), out), 2);
    assert_int_equal(tg_b64url_decode(TG_LIT("A"), out), -1);
    assert_int_equal(tg_b64url_decode(TG_LIT("AQ=="), out), -1);
    assert_int_equal(tg_b64url_decode(TG_LIT("AQ+/"), out), -1);
    assert_int_equal(tg_b64url_decode(TG_LIT("AQ B"), out), -1);
    assert_int_equal(tg_b64url_decode(TG_LIT(""), out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_paths),   cmocka_unit_test(test_algorithm_is_the_keys),
        cmocka_unit_test(test_signatures),    cmocka_unit_test(test_shape),
        cmocka_unit_test(test_times),         cmocka_unit_test(test_claims),
        cmocka_unit_test(test_jwks_refusals), cmocka_unit_test(test_b64url),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
