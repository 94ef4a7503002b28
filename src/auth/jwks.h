/* The JWT verification keys: a JSON Web Key Set (RFC 7517) read from jwt.jwks_file, and the
 * watcher that reads it again when it changes.
 *
 * A key's algorithm is the key's: kty "RSA" (2048 bits at least) verifies RS256 only, kty
 * "EC" with crv "P-256" ES256 only; a JWK's own "alg", when present, must say the same, and
 * a "use" other than "sig" is refused. Keys are found by "kid" (compared as bytes, never used
 * as a path or in a query). Anything else in the file (an "oct" key, a private part, a
 * duplicated kid) makes the whole file refused: a key set is read whole or not at all.
 *
 * The watcher (tg_jwks_watch_t) keeps the current set behind a reader-writer lock, as the
 * keyring does. Each request that verifies a JWT asks it, with the monotonic now, whether
 * the file should be looked at again: at most once a second, one caller stats the file and,
 * when its modification time, size or inode moved, reads and parses it and swaps the new set
 * in. A file that no longer parses keeps the set in use (the error is logged once per
 * change). No extra thread: the request that comes first after the second pays one stat()
 * (and, after a change, the read and parse of a file of at most 1 MiB: a few keys, well
 * under a millisecond) on its worker; the others never wait for it (trylock). A gateway
 * that gets no JWT never stats the file. Rejected alternative: the keyring's refresher
 * thread, which polls the store, not files, and would tie key rotation to its store. */
#ifndef TG_AUTH_JWKS_H
#define TG_AUTH_JWKS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "util/err.h"

#define TG_JWKS_MAX_BYTES (1u << 20) /* a JWKS is a few keys: a larger file is refused */
#define TG_JWKS_MAX_KEYS  64
#define TG_JWK_KID_MAX    128 /* bytes of a kid, NUL excluded */

typedef struct tg_jwk {
    char kid[TG_JWK_KID_MAX + 1]; /* "" when the JWK has none */
    unsigned alg;                 /* TG_JWT_RS256 or TG_JWT_ES256 (config.h) */
    EVP_PKEY *pkey;               /* the public key */
} tg_jwk_t;

typedef struct tg_jwks {
    tg_jwk_t *keys;
    size_t nkeys;
} tg_jwks_t;

/* Parses a JWKS document ({"keys": [...]}) of len bytes. On error returns -1 with err
 * naming the key (keys[2].n: ...). */
int tg_jwks_parse(const char *text, size_t len, tg_jwks_t **out, tg_err_t *err);
/* Reads and parses path. */
int tg_jwks_load(const char *path, tg_jwks_t **out, tg_err_t *err);
void tg_jwks_free(tg_jwks_t *ks);

/* The key whose kid is kid[0..n), or NULL. */
const tg_jwk_t *tg_jwks_find(const tg_jwks_t *ks, const char *kid, size_t n);

typedef struct tg_jwks_watch tg_jwks_watch_t;

/* A watcher of path, read now: NULL on error (err says why). */
tg_jwks_watch_t *tg_jwks_watch_new(const char *path, tg_err_t *err);
void tg_jwks_watch_free(tg_jwks_watch_t *w);

/* The file's path (the config's jwt.jwks_file when the watcher was made). */
const char *tg_jwks_watch_path(const tg_jwks_watch_t *w);

/* Looks at the file again if a second passed since the last look (mono_us: the monotonic
 * clock); returns 1 when a new set was swapped in. Thread-safe; one caller at a time does
 * the work, the others return at once. */
int tg_jwks_watch_poll(tg_jwks_watch_t *w, int64_t mono_us);

/* The current set, read-locked until tg_jwks_watch_release: verify under it, then release.
 * Never held across a wait. */
const tg_jwks_t *tg_jwks_watch_acquire(tg_jwks_watch_t *w);
void tg_jwks_watch_release(tg_jwks_watch_t *w);

/* How many times a new set was swapped in (0 after the first read): tests, /metrics. */
uint64_t tg_jwks_watch_generation(tg_jwks_watch_t *w);

#endif
