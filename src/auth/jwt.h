/* JWT tenants: a compact JWS (RFC 7515/7519) verified and its claims read, no I/O, no clock
 * (the wall-clock instant is an argument), so tests use fixed instants.
 *
 * Why OpenSSL 3 and jansson rather than libjwt: Debian's libjwt 1.10 decodes with the
 * algorithm the token's header names (the classic RS256-to-HS256 confusion is one missing
 * check away), has no JWKS, and its JSON parser accepts duplicated members. Here every step
 * is one library call we chose: EVP_DigestVerify (RS256, ES256), HMAC (HS256),
 * EVP_DecodeBlock (base64url, b64url.h), json_loadb with JSON_REJECT_DUPLICATES.
 *
 * The rules, in the order they are checked (each refusal has its own result and reason):
 *  - at most TG_JWT_MAX bytes, three base64url parts; header and claims JSON objects with no
 *    member twice (RFC 7515 4 and 7519 4: a duplicate is refused, never "the last one wins");
 *  - the header's alg is never trusted to choose: "none" is refused, an alg outside
 *    jwt.algorithms is refused; the KEY is chosen first (by kid in the JWKS; a token without
 *    kid uses jwt.secret for HS256, or the JWKS's only key) and the header's alg must be
 *    that key's own (an RSA key verifies RS256 only, a P-256 key ES256 only, the secret
 *    HS256 only): a public key presented as an HMAC secret is an alg mismatch;
 *  - the signature's length is the algorithm's (ES256: the JOSE r||s of 64 bytes, so a DER
 *    signature is refused) and it verifies (HS256 compared with CRYPTO_memcmp);
 *  - only then are the claims read: exp required; exp, nbf, iat numbers; now past
 *    exp + leeway, now + leeway before nbf, or iat after now + leeway refused; iss equal to
 *    jwt.issuer; jwt.audience in aud (a string or an array) when set; the tenant claim a
 *    tenant id (1-63 of [A-Za-z0-9._-]); sub and the key claim strings when present.
 * Whether the tenant exists and is active is the keyring's (auth/keyring.h), asked by the
 * gateway afterwards. */
#ifndef TG_AUTH_JWT_H
#define TG_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwks.h"
#include "config/config.h"
#include "util/sizes.h"

#define TG_JWT_MAX     8192 /* bytes of a token; a longer one is refused before decoding */
#define TG_JWT_SUB_MAX 128  /* tg_event_t.subject: a longer sub is kept truncated */

typedef enum {
    TG_JWT_OK = 0,
    TG_JWT_TOO_LARGE,     /* over TG_JWT_MAX */
    TG_JWT_MALFORMED,     /* not three base64url parts of JSON objects */
    TG_JWT_DUPLICATE,     /* a member twice in the header or the claims */
    TG_JWT_UNSUPPORTED,   /* a "crit" header (no extension is understood) */
    TG_JWT_ALG_NONE,      /* alg "none" (any case) */
    TG_JWT_ALG_REFUSED,   /* alg unknown or not in jwt.algorithms */
    TG_JWT_UNKNOWN_KID,   /* no key with this kid, or no kid and no single key */
    TG_JWT_ALG_MISMATCH,  /* the header's alg is not the key's */
    TG_JWT_NO_SIGNATURE,  /* empty signature part */
    TG_JWT_SIG_LENGTH,    /* a signature of the wrong length for the algorithm */
    TG_JWT_BAD_SIGNATURE, /* it does not verify */
    TG_JWT_BAD_CLAIM,     /* exp missing; exp, nbf, iat, sub or the key claim mistyped */
    TG_JWT_EXPIRED,       /* now >= exp + leeway */
    TG_JWT_NOT_YET_VALID, /* now + leeway < nbf */
    TG_JWT_ISSUED_FUTURE, /* iat > now + leeway */
    TG_JWT_BAD_ISSUER,    /* iss is not jwt.issuer */
    TG_JWT_BAD_AUDIENCE,  /* jwt.audience is not in aud */
    TG_JWT_NO_TENANT,     /* the tenant claim missing or not a tenant id */
} tg_jwt_result_t;

/* The event reason: "jwt_expired", ... */
const char *tg_jwt_result_reason(tg_jwt_result_t r);

typedef struct tg_jwt_claims {
    char tenant[TG_TENANT_SIZE]; /* the tenant claim */
    char sub[TG_JWT_SUB_MAX];    /* sub, truncated; "" when absent */
    char key_id[32];             /* the key claim's value; "" when absent or not configured */
    int64_t exp_us;              /* exp, Unix microseconds */
    int64_t nbf_us, iat_us;      /* nbf, iat; INT64_MIN when absent */
} tg_jwt_claims_t;

/* Verifies tok[0..len) under conf with the keys of jwks (NULL: none, HS256 only) at the
 * wall-clock instant now_us (Unix microseconds). On TG_JWT_OK fills out. */
tg_jwt_result_t tg_jwt_verify(const tg_jwt_conf_t *conf, const tg_jwks_t *jwks, const char *tok,
                              size_t len, int64_t now_us, tg_jwt_claims_t *out);

/* The time rules alone (exp, nbf, iat against now_us with jwt.leeway), as tg_jwt_verify
 * applies them: what a cached verdict (auth/jwtcache.h) is checked against again at each
 * use. TG_JWT_OK, TG_JWT_EXPIRED, TG_JWT_NOT_YET_VALID or TG_JWT_ISSUED_FUTURE. */
tg_jwt_result_t tg_jwt_check_times(const tg_jwt_conf_t *conf, const tg_jwt_claims_t *cl,
                                   int64_t now_us);

/* 1 when s[0..n) has the shape of a compact JWS: exactly two dots. What the gateway sends to
 * jwt (when listed) rather than to api_key; tollgate's own keys have no dot. */
int tg_jwt_looks_like(const char *s, size_t n);

#endif
