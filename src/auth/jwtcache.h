/* Verified JWTs remembered by the bytes of the token, so that a client presenting the same
 * token again (the usual case: an access token is reused until it expires) is not verified
 * again. A verification costs 95k (HS256), 415k (RS256) or 955k (ES256) instructions against
 * ~17.5k for a whole proxied GET (bench/RESULTS.md); a hit costs the token's SHA-256.
 *
 * What is remembered is only what tg_jwt_verify established from the bytes: the signature
 * and every claim rule but the time ones. At each use:
 *  - the time rules (exp, nbf, iat with jwt.leeway) are applied again at the request's
 *    instant (tg_jwt_check_times), so a cached token expires exactly when it would unmemoized;
 *  - the verdict counts only under the config it was made under (jwt.issuer, audience,
 *    algorithms, secret, claims, leeway: any reload is a new config) and the same JWKS
 *    generation (a key removed from the file drops every token it signed);
 *  - the tenant's and the key claim's state are not cached: the caller asks the keyring's
 *    snapshot every time, as for API keys, so a disabled tenant is refused within a second.
 * Only verdicts of success are kept; a refused token is verified (and refused) each time.
 *
 * One cache per worker, used by that worker's thread only: no lock. Direct-mapped on the
 * token's SHA-256, TG_JWT_CACHE_SLOTS entries (a later token that maps to a taken slot
 * replaces it); the table is allocated on the first token put in. While it holds entries it
 * holds a reference on their config, so a config freed and another allocated at the same
 * address can never be taken for the same one. */
#ifndef TG_AUTH_JWTCACHE_H
#define TG_AUTH_JWTCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "config/config.h"

#define TG_JWT_CACHE_SLOTS 1024 /* per worker: ~300 KiB once a JWT was seen */

typedef struct tg_jwt_cache tg_jwt_cache_t;

tg_jwt_cache_t *tg_jwt_cache_new(void);
void tg_jwt_cache_free(tg_jwt_cache_t *c); /* NULL is fine */

/* Looks the token whose SHA-256 is sha up, as verified under cfg's jwt section and JWKS
 * generation keygen. Returns -1 on a miss (verify it); otherwise the time rules' result at
 * now_us (TG_JWT_OK with *out filled, or why the remembered token is refused now). */
int tg_jwt_cache_get(tg_jwt_cache_t *c, const tg_config_t *cfg, uint64_t keygen,
                     const unsigned char sha[32], int64_t now_us, tg_jwt_claims_t *out);

/* Forgets every entry and lets go of their config (a worker that switched to a reloaded
 * config: the old one is freed as soon as its requests end). */
void tg_jwt_cache_clear(tg_jwt_cache_t *c);

/* Remembers a token tg_jwt_verify accepted under cfg and keygen. Entries made under another
 * config are dropped first. A failed allocation remembers nothing. */
void tg_jwt_cache_put(tg_jwt_cache_t *c, tg_config_t *cfg, uint64_t keygen,
                      const unsigned char sha[32], const tg_jwt_claims_t *cl);

#endif
