/* Signed requests: see sign.h for the canonical string. One HMAC over the canonical string
 * built in the caller's scratch buffer: a few hundred bytes for the usual request, so no
 * incremental MAC is worth its code. */
#include "auth/sign.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

const char *tg_sign_reason(tg_sign_result_t r)
{
    switch (r) {
    case TG_SIGN_OK: return "";
    case TG_SIGN_MISSING: return "signature_missing";
    case TG_SIGN_MALFORMED: return "signature_malformed";
    case TG_SIGN_NO_SECRET: return "signature_no_secret";
    case TG_SIGN_INVALID: return "signature_invalid";
    case TG_SIGN_EXPIRED: return "signature_expired";
    case TG_SIGN_REPLAYED: return "signature_replayed";
    }
    return "signature_invalid";
}

const char *tg_sign_message(tg_sign_result_t r)
{
    switch (r) {
    case TG_SIGN_OK: return "";
    case TG_SIGN_MISSING:
        return "this request must be signed (X-Tollgate-Timestamp and X-Tollgate-Signature)";
    case TG_SIGN_MALFORMED:
        return "malformed signature headers (X-Tollgate-Signature: v1=<64 hex digits>, "
               "X-Tollgate-Timestamp: Unix seconds, X-Tollgate-Nonce: 1-64 of A-Z a-z 0-9 . _ ~ -)";
    case TG_SIGN_NO_SECRET: return "this API key has no usable signing secret";
    case TG_SIGN_INVALID: return "invalid request signature";
    case TG_SIGN_EXPIRED: return "request timestamp outside the allowed window; sign again";
    case TG_SIGN_REPLAYED: return "this signed request was already received";
    }
    return "invalid request signature";
}

typedef struct piece {
    const char *p;
    size_t n;
    size_t name; /* bytes before the first '=' (n when there is none) */
    size_t at;   /* position in the query as sent */
} piece_t;

/* The byte at i of the piece's name followed by '=' ("z" compares as "z="); -1 past it. */
static int name_byte(const piece_t *x, size_t i)
{
    return i < x->name ? (unsigned char)x->p[i] : i == x->name ? '=' : -1;
}

/* By name (with its '=', so pieces of distinct names sort as a byte sort of the whole
 * pieces would), then as sent. Not by value: "a=2&a=1" and "a=1&a=2" are different
 * requests to an upstream that reads the first (or the last) "a", and must not share a
 * signature (a captured request could be forwarded with its values swapped). */
static int cmp_piece(const void *a, const void *b)
{
    const piece_t *x = a, *y = b;
    for (size_t i = 0;; i++) {
        int cx = name_byte(x, i), cy = name_byte(y, i);
        if (cx != cy) return cx < cy ? -1 : 1;
        if (cx < 0) break;
    }
    return (x->at > y->at) - (x->at < y->at);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
}

/* tg_sign_canonical with the body's SHA-256 given (sha) or computed (sha NULL). */
static int canonical(const char *method, const char *target, size_t tlen, const char *ts,
                     size_t tslen, const void *body, size_t blen, const unsigned char *sha,
                     const char *nonce, size_t nlen, tg_buf_t *out)
{
    const char *q = memchr(target, '?', tlen);
    size_t plen = q ? (size_t)(q - target) : tlen;
    piece_t pieces[TG_SIGN_MAX_PARAMS];
    size_t np = 0;
    for (const char *s = q ? q + 1 : NULL, *end = target + tlen; s && s <= end;) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *e = amp ? amp : end;
        if (e > s) {
            if (np == TG_SIGN_MAX_PARAMS) return TG_SIGN_MALFORMED;
            const char *eq = memchr(s, '=', (size_t)(e - s));
            pieces[np] = (piece_t){s, (size_t)(e - s), eq ? (size_t)(eq - s) : (size_t)(e - s), np};
            np++;
        }
        if (!amp) break;
        s = amp + 1;
    }
    qsort(pieces, np, sizeof *pieces, cmp_piece);
    unsigned char own[32];
    char shahex[64];
    if (!sha && EVP_Digest(body ? body : "", blen, own, NULL, EVP_sha256(), NULL) != 1) return -1;
    hex(sha ? sha : own, 32, shahex);
    tg_buf_reset(out);
    int rc = tg_buf_add(out, method, strlen(method)) | tg_buf_add(out, "\n", 1) |
             tg_buf_add(out, target, plen) | tg_buf_add(out, "\n", 1);
    for (size_t i = 0; i < np; i++)
        rc |= tg_buf_add(out, "&", i ? 1 : 0) | tg_buf_add(out, pieces[i].p, pieces[i].n);
    rc |= tg_buf_add(out, "\n", 1) | tg_buf_add(out, ts, tslen) | tg_buf_add(out, "\n", 1) |
          tg_buf_add(out, shahex, sizeof shahex);
    if (nonce) rc |= tg_buf_add(out, "\n", 1) | tg_buf_add(out, nonce, nlen);
    return rc ? -1 : 0;
}

int tg_sign_canonical(const char *method, const char *target, size_t tlen, const char *ts,
                      size_t tslen, const void *body, size_t blen, const char *nonce, size_t nlen,
                      tg_buf_t *out)
{
    return canonical(method, target, tlen, ts, tslen, body, blen, NULL, nonce, nlen, out);
}

/* "v1=" and 64 hex digits (either case) into mac. */
static int parse_sig(const char *v, size_t n, unsigned char mac[32])
{
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n != 3 + 64 || strncmp(v, "v1=", 3) != 0) return -1;
    for (size_t i = 0; i < 32; i++) {
        int hi = v[3 + 2 * i], lo = v[4 + 2 * i];
        if (!isxdigit(hi) || !isxdigit(lo)) return -1;
        hi = isdigit(hi) ? hi - '0' : tolower(hi) - 'a' + 10;
        lo = isdigit(lo) ? lo - '0' : tolower(lo) - 'a' + 10;
        mac[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* 1 to TG_SIGN_MAX_NONCE of the URL-safe characters (RFC 3986's unreserved): what a UUID,
 * hex or base64url nonce is made of, and nothing that could end a line of the canonical
 * string. */
static int nonce_ok(const char *v, size_t n)
{
    if (n == 0 || n > TG_SIGN_MAX_NONCE) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && !strchr("._~-", v[i])) return 0;
    return 1;
}

/* 1 to 12 decimal digits (Unix seconds until the year 33658). */
static int parse_ts(const char *v, size_t n, int64_t *out)
{
    if (n == 0 || n > 12) return -1;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i])) return -1;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 0;
}

tg_sign_result_t tg_sign_check(const tg_sign_input_t *in, tg_replay_t *replay, tg_buf_t *scratch,
                               tg_sign_seen_t *seen)
{
    if (!in->ts || !in->sig) return TG_SIGN_MISSING;
    unsigned char want[32], got[32];
    int64_t ts;
    if (parse_sig(in->sig, in->siglen, want) != 0 || parse_ts(in->ts, in->tslen, &ts) != 0 ||
        (in->nonce && !nonce_ok(in->nonce, in->nlen)))
        return TG_SIGN_MALFORMED;
    if (!in->secret || in->secret_len == 0) return TG_SIGN_NO_SECRET;
    int rc = canonical(in->method, in->target, in->tlen, in->ts, in->tslen, in->body, in->blen,
                       in->body_sha256, in->nonce, in->nlen, scratch);
    if (rc == TG_SIGN_MALFORMED) return TG_SIGN_MALFORMED;
    unsigned int mlen = 0;
    int ok = rc == 0 && HMAC(EVP_sha256(), in->secret, (int)in->secret_len,
                             (const unsigned char *)tg_buf_str(scratch), tg_buf_len(scratch), got,
                             &mlen) != NULL;
    tg_buf_reset(scratch);
    /* The MAC first, the clock after: a forged request learns nothing about the window. */
    if (!ok || mlen != 32 || CRYPTO_memcmp(got, want, 32) != 0) return TG_SIGN_INVALID;
    if (ts < in->now_s - in->window_s || ts > in->now_s + in->window_s) return TG_SIGN_EXPIRED;
    if (seen) {
        memcpy(seen->mac, got, 32);
        seen->ts_s = ts;
    }
    if (!replay) return TG_SIGN_OK;
    switch (tg_replay_check_for(replay, in->who, got, ts, in->window_s, in->now_s)) {
    case TG_REPLAY_FRESH: return TG_SIGN_OK;
    case TG_REPLAY_SEEN: return TG_SIGN_REPLAYED;
    case TG_REPLAY_TOO_OLD: return TG_SIGN_EXPIRED;
    case TG_REPLAY_NOMEM: break;
    }
    return TG_SIGN_REPLAYED; /* cannot tell: never let one through unchecked */
}
