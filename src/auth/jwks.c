/* JWKS: see jwks.h. JSON through jansson (duplicate members refused), keys made with
 * OpenSSL 3's EVP_PKEY_fromdata from the JWK's n/e (RSA) or x/y (EC P-256, the point checked
 * to be on the curve). */
#include "auth/jwks.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "auth/b64url.h"
#include "config/config.h"
#include "util/log.h"
#include "util/rwlock.h"

#define MIN_RSA_BITS 2048
#define MAX_PART     2048 /* base64url characters of n (a 8192-bit modulus is 1366) */
#define POLL_US      1000000

/* The base64url member name of o as bytes, at most max of them; -1 (err set) otherwise. */
static long member_bytes(json_t *o, const char *name, const char *at, unsigned char *out,
                         size_t max, tg_err_t *err)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v)) return tg_err_set(err, "%s.%s: missing (a base64url string)", at, name);
    size_t n = json_string_length(v);
    if (n > MAX_PART || TG_B64URL_DECODED_MAX(n) > max)
        return tg_err_set(err, "%s.%s: too long", at, name);
    long got = tg_b64url_decode(json_string_value(v), n, out);
    if (got <= 0) return tg_err_set(err, "%s.%s: not base64url", at, name);
    return got;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(json_t *o, const char *at, tg_err_t *err)
{
    unsigned char n[TG_B64URL_DECODED_MAX(MAX_PART)], e[16];
    long nl = member_bytes(o, "n", at, n, sizeof n, err), el;
    if (nl < 0 || (el = member_bytes(o, "e", at, e, sizeof e, err)) < 0) return NULL;
    if (nl * 8 < MIN_RSA_BITS) {
        tg_err_set(err, "%s.n: a %ld-bit modulus (at least %d bits)", at, nl * 8, MIN_RSA_BITS);
        return NULL;
    }
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
    EVP_PKEY *pkey = NULL;
    if (bld && bn && be && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1)
        pkey = from_params("RSA", bld);
    BN_free(bn);
    BN_free(be);
    OSSL_PARAM_BLD_free(bld);
    if (!pkey) tg_err_set(err, "%s: not a usable RSA public key", at);
    return pkey;
}

static EVP_PKEY *ec_key(json_t *o, const char *at, tg_err_t *err)
{
    json_t *crv = json_object_get(o, "crv");
    if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256")) {
        tg_err_set(err, "%s.crv: must be \"P-256\" (ES256)", at);
        return NULL;
    }
    unsigned char x[40], y[40], point[65];
    long xl = member_bytes(o, "x", at, x, sizeof x, err), yl;
    if (xl < 0 || (yl = member_bytes(o, "y", at, y, sizeof y, err)) < 0) return NULL;
    if (xl != 32 || yl != 32) {
        tg_err_set(err, "%s: x and y must be 32 bytes each (P-256)", at);
        return NULL;
    }
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) == 1)
        pkey = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    /* fromdata does not prove the point is on the curve: an invalid-curve key is refused. */
    EVP_PKEY_CTX *chk = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    if (pkey && (!chk || EVP_PKEY_public_check(chk) != 1)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(chk);
    if (!pkey) tg_err_set(err, "%s: not a usable P-256 public key", at);
    return pkey;
}

/* One JWK of the set into k. */
static int parse_key(json_t *o, const char *at, tg_jwk_t *k, tg_err_t *err)
{
    if (!json_is_object(o)) return tg_err_set(err, "%s: expected an object", at);
    json_t *kty = json_object_get(o, "kty"), *kid = json_object_get(o, "kid"),
           *alg = json_object_get(o, "alg"), *use = json_object_get(o, "use");
    const char *t = json_is_string(kty) ? json_string_value(kty) : "";
    if (json_object_get(o, "d") || json_object_get(o, "p") || json_object_get(o, "k"))
        return tg_err_set(err,
                          "%s: holds private or symmetric key material: give public keys "
                          "only (an HS256 secret goes in jwt.secret)",
                          at);
    if (kid && (!json_is_string(kid) || json_string_length(kid) == 0 ||
                json_string_length(kid) > TG_JWK_KID_MAX))
        return tg_err_set(err, "%s.kid: expected a string of 1 to %d bytes", at, TG_JWK_KID_MAX);
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig")))
        return tg_err_set(err, "%s.use: only \"sig\" keys verify tokens", at);
    if (!strcmp(t, "RSA"))
        k->alg = TG_JWT_RS256;
    else if (!strcmp(t, "EC"))
        k->alg = TG_JWT_ES256;
    else
        return tg_err_set(err, "%s.kty: expected \"RSA\" or \"EC\"", at);
    const char *want = k->alg == TG_JWT_RS256 ? "RS256" : "ES256";
    if (alg && (!json_is_string(alg) || strcmp(json_string_value(alg), want)))
        return tg_err_set(err, "%s.alg: a %s key verifies %s only", at, t, want);
    if (kid) memcpy(k->kid, json_string_value(kid), json_string_length(kid) + 1);
    k->pkey = k->alg == TG_JWT_RS256 ? rsa_key(o, at, err) : ec_key(o, at, err);
    return k->pkey ? 0 : -1;
}

int tg_jwks_parse(const char *text, size_t len, tg_jwks_t **out, tg_err_t *err)
{
    json_error_t je;
    *out = NULL;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) return tg_err_set(err, "line %d: %s", je.line, je.text);
    json_t *keys = json_object_get(doc, "keys");
    int rc = -1;
    tg_jwks_t *ks = calloc(1, sizeof *ks);
    if (!ks) {
        tg_err_set(err, "out of memory");
        goto done;
    }
    if (!json_is_array(keys) || json_array_size(keys) == 0 ||
        json_array_size(keys) > TG_JWKS_MAX_KEYS) {
        tg_err_set(err, "keys: expected a list of 1 to %d keys", TG_JWKS_MAX_KEYS);
        goto done;
    }
    ks->keys = calloc(json_array_size(keys), sizeof *ks->keys);
    if (!ks->keys) {
        tg_err_set(err, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < json_array_size(keys); i++) {
        char at[32];
        snprintf(at, sizeof at, "keys[%zu]", i);
        tg_jwk_t *k = &ks->keys[i];
        if (parse_key(json_array_get(keys, i), at, k, err) < 0) goto done;
        ks->nkeys++;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(ks->keys[j].kid, k->kid)) {
                tg_err_set(err, "%s.kid: \"%s\" again (keys[%zu]): kids must be unique", at,
                           k->kid[0] ? k->kid : "(none)", j);
                goto done;
            }
    }
    rc = 0;
done:
    json_decref(doc);
    if (rc == 0)
        *out = ks;
    else
        tg_jwks_free(ks);
    return rc;
}

void tg_jwks_free(tg_jwks_t *ks)
{
    if (!ks) return;
    for (size_t i = 0; i < ks->nkeys; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    free(ks->keys);
    free(ks);
}

const tg_jwk_t *tg_jwks_find(const tg_jwks_t *ks, const char *kid, size_t n)
{
    for (size_t i = 0; n <= TG_JWK_KID_MAX && i < ks->nkeys; i++)
        if (strlen(ks->keys[i].kid) == n && !memcmp(ks->keys[i].kid, kid, n)) return &ks->keys[i];
    return NULL;
}

/* The file's identity: a change of any of these is a new file. */
typedef struct stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} stamp_t;

static int stamp_of(const char *path, stamp_t *st)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return -1;
    memset(st, 0, sizeof *st);
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
    st->size = sb.st_size;
    st->mtime = sb.st_mtim;
    return 0;
}

static int load_stamped(const char *path, stamp_t *st, tg_jwks_t **out, tg_err_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return tg_err_set(err, "%s: %s", path, strerror(errno));
    struct stat sb;
    char *buf = NULL;
    int rc = -1;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))
        tg_err_set(err, "%s: not a regular file", path);
    else if (sb.st_size > (off_t)TG_JWKS_MAX_BYTES)
        tg_err_set(err, "%s: larger than %u KiB", path, TG_JWKS_MAX_BYTES >> 10);
    else if (!(buf = malloc((size_t)sb.st_size + 1)))
        tg_err_set(err, "%s: out of memory", path);
    else if (fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
        tg_err_set(err, "%s: short read", path);
    else {
        tg_err_t perr;
        rc = tg_jwks_parse(buf, (size_t)sb.st_size, out, &perr);
        if (rc < 0) tg_err_set(err, "%s: %s", path, perr.msg);
        memset(st, 0, sizeof *st);
        st->dev = sb.st_dev;
        st->ino = sb.st_ino;
        st->size = sb.st_size;
        st->mtime = sb.st_mtim;
    }
    free(buf);
    fclose(f);
    return rc;
}

int tg_jwks_load(const char *path, tg_jwks_t **out, tg_err_t *err)
{
    stamp_t st;
    return load_stamped(path, &st, out, err);
}

struct tg_jwks_watch {
    char *path;
    pthread_rwlock_t lock; /* guards set (the pointer; a set is immutable) */
    tg_jwks_t *set;
    pthread_mutex_t poll; /* held (trylock) by the one caller looking at the file; guards
                             seen and refused */
    stamp_t seen;         /* the file as last read (or refused) */
    atomic_llong next_us; /* monotonic: no look before this */
    atomic_ullong generation;
};

tg_jwks_watch_t *tg_jwks_watch_new(const char *path, tg_err_t *err)
{
    tg_jwks_watch_t *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        tg_err_set(err, "out of memory");
        return NULL;
    }
    if (load_stamped(path, &w->seen, &w->set, err) < 0) {
        free(w->path);
        free(w);
        return NULL;
    }
    tg_rwlock_init(&w->lock);
    pthread_mutex_init(&w->poll, NULL);
    return w;
}

void tg_jwks_watch_free(tg_jwks_watch_t *w)
{
    if (!w) return;
    tg_jwks_free(w->set);
    pthread_rwlock_destroy(&w->lock);
    pthread_mutex_destroy(&w->poll);
    free(w->path);
    free(w);
}

const char *tg_jwks_watch_path(const tg_jwks_watch_t *w)
{
    return w->path;
}

int tg_jwks_watch_poll(tg_jwks_watch_t *w, int64_t mono_us)
{
    if (mono_us < atomic_load_explicit(&w->next_us, memory_order_relaxed)) return 0;
    if (pthread_mutex_trylock(&w->poll) != 0) return 0; /* another worker is looking */
    atomic_store(&w->next_us, mono_us + POLL_US);
    stamp_t now;
    int swapped = 0;
    if (stamp_of(w->path, &now) == 0 && memcmp(&now, &w->seen, sizeof now) != 0) {
        tg_jwks_t *next;
        tg_err_t err;
        if (load_stamped(w->path, &w->seen, &next, &err) < 0) {
            w->seen = now; /* said once; the next change is read again */
            TG_ERROR("jwt: keys kept as they were: %s", err.msg);
        } else {
            pthread_rwlock_wrlock(&w->lock);
            tg_jwks_t *old = w->set;
            w->set = next;
            /* Under the lock: a reader holding a set reads that set's generation. */
            atomic_fetch_add(&w->generation, 1);
            pthread_rwlock_unlock(&w->lock);
            tg_jwks_free(old);
            TG_INFO("jwt: %zu keys read from %s", next->nkeys, w->path);
            swapped = 1;
        }
    }
    pthread_mutex_unlock(&w->poll);
    return swapped;
}

const tg_jwks_t *tg_jwks_watch_acquire(tg_jwks_watch_t *w)
{
    pthread_rwlock_rdlock(&w->lock);
    return w->set;
}

void tg_jwks_watch_release(tg_jwks_watch_t *w)
{
    pthread_rwlock_unlock(&w->lock);
}

uint64_t tg_jwks_watch_generation(tg_jwks_watch_t *w)
{
    return atomic_load(&w->generation);
}
