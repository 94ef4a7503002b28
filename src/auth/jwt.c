/* JWT verification: see jwt.h. One stack buffer of TG_JWT_MAX bytes holds the decoded
 * header, claims and signature (a token is at most that long, and decoding only shrinks
 * it), so verifying allocates nothing but jansson's objects. */
#include "auth/jwt.h"

#include <jansson.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>

#include "auth/b64url.h"

/* Seconds beyond which a time claim is refused rather than converted (year 5138). */
#define MAX_CLAIM_S 1e11

const char *tg_jwt_result_reason(tg_jwt_result_t r)
{
    switch (r) {
    case TG_JWT_OK: return "";
    case TG_JWT_TOO_LARGE: return "jwt_too_large";
    case TG_JWT_MALFORMED: return "jwt_malformed";
    case TG_JWT_DUPLICATE: return "jwt_duplicate_member";
    case TG_JWT_UNSUPPORTED: return "jwt_crit_unsupported";
    case TG_JWT_ALG_NONE: return "jwt_alg_none";
    case TG_JWT_ALG_REFUSED: return "jwt_alg_not_allowed";
    case TG_JWT_UNKNOWN_KID: return "jwt_unknown_kid";
    case TG_JWT_ALG_MISMATCH: return "jwt_alg_mismatch";
    case TG_JWT_NO_SIGNATURE: return "jwt_no_signature";
    case TG_JWT_SIG_LENGTH: return "jwt_signature_length";
    case TG_JWT_BAD_SIGNATURE: return "jwt_bad_signature";
    case TG_JWT_BAD_CLAIM: return "jwt_bad_claim";
    case TG_JWT_EXPIRED: return "jwt_expired";
    case TG_JWT_NOT_YET_VALID: return "jwt_not_yet_valid";
    case TG_JWT_ISSUED_FUTURE: return "jwt_iat_future";
    case TG_JWT_BAD_ISSUER: return "jwt_bad_issuer";
    case TG_JWT_BAD_AUDIENCE: return "jwt_bad_audience";
    case TG_JWT_NO_TENANT: return "jwt_no_tenant";
    }
    return "jwt_invalid";
}

int tg_jwt_looks_like(const char *s, size_t n)
{
    const char *d1 = memchr(s, '.', n);
    if (!d1) return 0;
    const char *d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - s));
    return d2 && !memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - s));
}

/* A JSON object from base64url s[0..n), decoded into buf. */
static tg_jwt_result_t decode_json(const char *s, size_t n, unsigned char *buf, json_t **out)
{
    *out = NULL;
    long got = tg_b64url_decode(s, n, buf);
    if (got <= 0) return TG_JWT_MALFORMED;
    json_error_t je;
    json_t *j = json_loadb((const char *)buf, (size_t)got, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return json_error_code(&je) == json_error_duplicate_key ? TG_JWT_DUPLICATE
                                                                : TG_JWT_MALFORMED;
    if (!json_is_object(j)) {
        json_decref(j);
        return TG_JWT_MALFORMED;
    }
    *out = j;
    return TG_JWT_OK;
}

static unsigned alg_of(const char *name)
{
    if (!strcmp(name, "RS256")) return TG_JWT_RS256;
    if (!strcmp(name, "ES256")) return TG_JWT_ES256;
    if (!strcmp(name, "HS256")) return TG_JWT_HS256;
    return 0;
}

/* The key the token is checked with, chosen by kid (never by alg), and its algorithm. */
typedef struct vkey {
    unsigned alg;
    EVP_PKEY *pkey;            /* RS256, ES256 */
    const unsigned char *hmac; /* HS256: conf's secret */
    size_t hmac_len;
} vkey_t;

static tg_jwt_result_t choose_key(const tg_jwt_conf_t *conf, const tg_jwks_t *jwks, json_t *kid,
                                  unsigned alg, vkey_t *k)
{
    memset(k, 0, sizeof *k);
    if (kid) {
        if (!json_is_string(kid) || !jwks) return TG_JWT_UNKNOWN_KID;
        const tg_jwk_t *j = tg_jwks_find(jwks, json_string_value(kid), json_string_length(kid));
        if (!j) return TG_JWT_UNKNOWN_KID;
        k->alg = j->alg;
        k->pkey = j->pkey;
    } else if (alg == TG_JWT_HS256 && conf->secret) {
        k->alg = TG_JWT_HS256;
        k->hmac = conf->secret;
        k->hmac_len = conf->secret_len;
    } else if (jwks && jwks->nkeys == 1) {
        k->alg = jwks->keys[0].alg;
        k->pkey = jwks->keys[0].pkey;
    } else if (conf->secret && !jwks) {
        k->alg = TG_JWT_HS256; /* the only key there is: the header's alg must match it */
    } else {
        return TG_JWT_UNKNOWN_KID;
    }
    return k->alg == alg ? TG_JWT_OK : TG_JWT_ALG_MISMATCH;
}

static int verify_pkey(EVP_PKEY *pkey, const char *msg, size_t mlen, const unsigned char *sig,
                       size_t slen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestVerify(md, sig, slen, (const unsigned char *)msg, mlen) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* ES256's JOSE signature is r||s, 32 bytes each (RFC 7518 3.4); OpenSSL verifies DER. */
static int verify_es256(EVP_PKEY *pkey, const char *msg, size_t mlen, const unsigned char *rs)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);
    unsigned char der[80], *p = der;
    int ok = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* es owns them */
        int dl = i2d_ECDSA_SIG(es, NULL);
        if (dl > 0 && (size_t)dl <= sizeof der && i2d_ECDSA_SIG(es, &p) == dl)
            ok = verify_pkey(pkey, msg, mlen, der, (size_t)dl);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return ok;
}

static tg_jwt_result_t check_signature(const vkey_t *k, const char *msg, size_t mlen,
                                       const unsigned char *sig, long slen)
{
    if (slen == 0) return TG_JWT_NO_SIGNATURE;
    switch (k->alg) {
    case TG_JWT_HS256: {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        if (slen != 32) return TG_JWT_SIG_LENGTH;
        if (!HMAC(EVP_sha256(), k->hmac, (int)k->hmac_len, (const unsigned char *)msg, mlen, mac,
                  &ml) ||
            ml != 32)
            return TG_JWT_BAD_SIGNATURE;
        int eq = CRYPTO_memcmp(mac, sig, 32) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
        return eq ? TG_JWT_OK : TG_JWT_BAD_SIGNATURE;
    }
    case TG_JWT_RS256:
        if (slen != EVP_PKEY_get_size(k->pkey)) return TG_JWT_SIG_LENGTH;
        return verify_pkey(k->pkey, msg, mlen, sig, (size_t)slen) ? TG_JWT_OK
                                                                  : TG_JWT_BAD_SIGNATURE;
    case TG_JWT_ES256:
        if (slen != 64) return TG_JWT_SIG_LENGTH;
        return verify_es256(k->pkey, msg, mlen, sig) ? TG_JWT_OK : TG_JWT_BAD_SIGNATURE;
    }
    return TG_JWT_BAD_SIGNATURE;
}

/* A NumericDate claim (seconds, integer or not) in microseconds: 1 when present, 0 when
 * absent, -1 when mistyped or out of range. */
static int time_claim(json_t *claims, const char *name, int64_t *out_us)
{
    json_t *v = json_object_get(claims, name);
    if (!v) return 0;
    if (!json_is_number(v)) return -1;
    double s = json_number_value(v);
    if (!isfinite(s) || s < 0 || s > MAX_CLAIM_S) return -1;
    *out_us = (int64_t)(s * 1e6);
    return 1;
}

/* The optional string claim name copied into dst[cap] (truncated when trunc, else refused
 * when longer): 0, or -1 when mistyped or too long. */
static int string_claim(json_t *claims, const char *name, char *dst, size_t cap, int trunc)
{
    dst[0] = '\0';
    json_t *v = name ? json_object_get(claims, name) : NULL;
    if (!v) return 0;
    if (!json_is_string(v)) return -1;
    size_t n = json_string_length(v);
    if (n >= cap && !trunc) return -1;
    if (n >= cap) n = cap - 1;
    memcpy(dst, json_string_value(v), n);
    dst[n] = '\0';
    return 0;
}

static int audience_ok(json_t *aud, const char *want)
{
    if (json_is_string(aud)) return !strcmp(json_string_value(aud), want);
    size_t i;
    json_t *v;
    if (json_is_array(aud)) json_array_foreach(aud, i, v)
        {
            if (json_is_string(v) && !strcmp(json_string_value(v), want)) return 1;
        }
    return 0;
}

static tg_jwt_result_t check_claims(const tg_jwt_conf_t *conf, json_t *c, int64_t now_us,
                                    tg_jwt_claims_t *out)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int he = time_claim(c, "exp", &exp), hn = time_claim(c, "nbf", &nbf),
        hi = time_claim(c, "iat", &iat);
    if (he <= 0 || hn < 0 || hi < 0) return TG_JWT_BAD_CLAIM;
    out->exp_us = exp;
    out->nbf_us = hn ? nbf : INT64_MIN;
    out->iat_us = hi ? iat : INT64_MIN;
    tg_jwt_result_t when = tg_jwt_check_times(conf, out, now_us);
    if (when != TG_JWT_OK) return when;
    json_t *iss = json_object_get(c, "iss");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), conf->issuer))
        return TG_JWT_BAD_ISSUER;
    if (conf->audience && !audience_ok(json_object_get(c, "aud"), conf->audience))
        return TG_JWT_BAD_AUDIENCE;
    if (string_claim(c, conf->tenant_claim, out->tenant, sizeof out->tenant, 0) < 0 ||
        !tg_tenant_id_valid(out->tenant))
        return TG_JWT_NO_TENANT;
    if (string_claim(c, "sub", out->sub, sizeof out->sub, 1) < 0 ||
        string_claim(c, conf->key_claim, out->key_id, sizeof out->key_id, 0) < 0)
        return TG_JWT_BAD_CLAIM;
    return TG_JWT_OK;
}

tg_jwt_result_t tg_jwt_check_times(const tg_jwt_conf_t *conf, const tg_jwt_claims_t *cl,
                                   int64_t now_us)
{
    int64_t leeway = (int64_t)conf->leeway_ms * 1000;
    if (now_us >= cl->exp_us + leeway) return TG_JWT_EXPIRED;
    if (cl->nbf_us != INT64_MIN && now_us + leeway < cl->nbf_us) return TG_JWT_NOT_YET_VALID;
    if (cl->iat_us != INT64_MIN && cl->iat_us > now_us + leeway) return TG_JWT_ISSUED_FUTURE;
    return TG_JWT_OK;
}

tg_jwt_result_t tg_jwt_verify(const tg_jwt_conf_t *conf, const tg_jwks_t *jwks, const char *tok,
                              size_t len, int64_t now_us, tg_jwt_claims_t *out)
{
    unsigned char buf[TG_JWT_MAX];
    memset(out, 0, sizeof *out);
    if (len > TG_JWT_MAX) return TG_JWT_TOO_LARGE;
    if (!tg_jwt_looks_like(tok, len)) return TG_JWT_MALFORMED;
    const char *d1 = memchr(tok, '.', len), *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
    size_t hl = (size_t)(d1 - tok), pl = (size_t)(d2 - d1 - 1), sl = len - (size_t)(d2 + 1 - tok);
    json_t *hdr = NULL, *claims = NULL;
    tg_jwt_result_t r = decode_json(tok, hl, buf, &hdr);
    if (r != TG_JWT_OK) goto done;
    json_t *alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg)) {
        r = TG_JWT_MALFORMED;
        goto done;
    }
    if (!strcasecmp(json_string_value(alg), "none")) {
        r = TG_JWT_ALG_NONE;
        goto done;
    }
    if (json_object_get(hdr, "crit")) {
        r = TG_JWT_UNSUPPORTED;
        goto done;
    }
    unsigned a = alg_of(json_string_value(alg));
    if (!a || !(a & conf->algorithms)) {
        r = TG_JWT_ALG_REFUSED;
        goto done;
    }
    vkey_t k;
    if ((r = choose_key(conf, jwks, json_object_get(hdr, "kid"), a, &k)) != TG_JWT_OK) goto done;
    /* The signature goes after the header's bytes in buf; the claims are decoded over both
     * once it verified. */
    long sigl = tg_b64url_decode(d2 + 1, sl, buf);
    if (sigl < 0) {
        r = TG_JWT_MALFORMED;
        goto done;
    }
    if ((r = check_signature(&k, tok, (size_t)(d2 - tok), buf, sigl)) != TG_JWT_OK) goto done;
    if ((r = decode_json(d1 + 1, pl, buf, &claims)) != TG_JWT_OK) goto done;
    r = check_claims(conf, claims, now_us, out);
done:
    json_decref(hdr);
    json_decref(claims);
    if (r != TG_JWT_OK) memset(out, 0, sizeof *out);
    return r;
}
