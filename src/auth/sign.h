/* Signed requests: the canonical string a client signs and its check (HMAC-SHA256 with the
 * key's signing secret), so a stolen API key alone cannot make requests.
 *
 *   X-Tollgate-Timestamp: Unix seconds (decimal digits only)
 *   X-Tollgate-Signature: v1=HEX(HMAC-SHA256(signing_secret, canonical))
 *   X-Tollgate-Nonce: optional, 1 to 64 of [A-Za-z0-9._~-], a fresh one per request
 *   canonical = METHOD "\n" PATH "\n" QUERY "\n" TIMESTAMP "\n" HEX(SHA-256(body))
 *               [ "\n" NONCE ]   (the sixth line only when the nonce header is sent)
 *
 * METHOD as sent (upper case); PATH the path tollgate forwards (target.h: percent-encoded
 * unreserved characters decoded, other escapes upper-cased, dot-segments removed: a client
 * that sends canonical paths signs what it sends); QUERY the query's '&'-separated
 * parameters, empty ones dropped, each kept exactly as sent (no decoding), sorted by name
 * and '=' in byte order, one name's values in the order sent, joined by '&' ("" when
 * there is none); TIMESTAMP the header's value; HEX lower case. docs/signing.md says the
 * same with client examples. The signature is compared in constant time; the timestamp
 * must be within the window of the gateway's clock, and a signature seen before within it
 * is refused by the replay cache (auth/replay.h). The nonce lets two identical requests
 * within one second (an SDK's retry after a 5xx) have different signatures. */
#ifndef TG_AUTH_SIGN_H
#define TG_AUTH_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "auth/replay.h"
#include "util/buf.h"

#define TG_SIGN_MAX_PARAMS 256 /* query parameters a signed request may carry */
#define TG_SIGN_MAX_NONCE  64  /* bytes of X-Tollgate-Nonce */

typedef enum {
    TG_SIGN_OK = 0,
    TG_SIGN_MISSING,   /* no X-Tollgate-Signature or X-Tollgate-Timestamp */
    TG_SIGN_MALFORMED, /* not "v1=" and 64 hex digits, a timestamp not digits, a nonce
                          not 1-64 of [A-Za-z0-9._~-], too many query parameters */
    TG_SIGN_NO_SECRET, /* the key has no signing secret (or it could not be opened) */
    TG_SIGN_INVALID,   /* the HMAC does not match */
    TG_SIGN_EXPIRED,   /* the timestamp is outside the window (or older than what the
                          replay cache still remembers) */
    TG_SIGN_REPLAYED,  /* the same signature was accepted before, within the window */
} tg_sign_result_t;

/* "signature_missing", "signature_malformed", ...: the event's reason. */
const char *tg_sign_reason(tg_sign_result_t r);
/* A sentence for the 401's message. */
const char *tg_sign_message(tg_sign_result_t r);

/* Writes the canonical string into out (reset first). target[0..tlen) is the
 * request-target as forwarded (path and query); nonce NULL: none (five lines). 0, or
 * TG_SIGN_MALFORMED (too many query parameters), or -1 when out cannot hold it. */
int tg_sign_canonical(const char *method, const char *target, size_t tlen, const char *ts,
                      size_t tslen, const void *body, size_t blen, const char *nonce, size_t nlen,
                      tg_buf_t *out);

/* What a request presents and what checking it needs. */
typedef struct tg_sign_input {
    const char *method;
    const char *target; /* path and query, as forwarded */
    size_t tlen;
    const char *ts, *sig, *nonce; /* header values (NULL: absent) */
    size_t tslen, siglen, nlen;
    const void *body;
    size_t blen;
    /* The body's SHA-256 when the caller has it already (the gateway hashes a held body
     * once, for the audit trail too); NULL: computed from body. */
    const unsigned char *body_sha256;
    const char *secret; /* the key's signing secret; NULL or 0 bytes: none */
    size_t secret_len;
    int64_t now_s;    /* the gateway's clock (the request's start), Unix seconds */
    int64_t window_s; /* signing.window */
    const char *who;  /* the key's id: whose replay floor (auth/replay.h); NULL: "" */
} tg_sign_input_t;

/* An accepted signature, for the shared replay cache (auth/replay.h's key and time). */
typedef struct tg_sign_seen {
    unsigned char mac[32];
    int64_t ts_s;
} tg_sign_seen_t;

/* Checks a signed request; on success records it in replay (may be NULL: no replay
 * check) and, when seen is not NULL, fills it. scratch holds the canonical string
 * meanwhile. */
tg_sign_result_t tg_sign_check(const tg_sign_input_t *in, tg_replay_t *replay, tg_buf_t *scratch,
                               tg_sign_seen_t *seen);

#endif
