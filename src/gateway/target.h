/* The request-target, made canonical before anything decides on it (RFC 9112 §3.2,
 * RFC 3986 §6.2.2): what routes, endpoint detection, limits and prices see is what the
 * upstream gets, so no spelling of a path (dot-segments, percent-encoded letters,
 * a fragment, `;` parameters) can make a billed endpoint look like another one.
 *
 * Pure functions over caller-owned buffers: no allocation, no global state. */
#ifndef TG_GATEWAY_TARGET_H
#define TG_GATEWAY_TARGET_H

#include <stddef.h>

typedef struct tg_target_norm {
    size_t len;        /* the whole normalised target (path and query) */
    size_t path_len;   /* its path part (up to the '?') */
    const char *error; /* when refused: why, for a 400 (a constant string) */
} tg_target_norm_t;

/* Normalises the request-target in[0..len) into out, which has room for len + 1 bytes
 * (out may not overlap in). Returns 0, or -1 with res->error set, for a target to be
 * answered 400:
 * - a control byte, space, DEL or '#' anywhere (a fragment is never sent, RFC 9112 §3.2);
 * - a path that does not start with '/' (origin-form; absolute-form "http://host/p" is
 *   reduced to its path and query, and "*" is kept as it is);
 * - a '%' not followed by two hex digits, an encoded NUL (%00), an overlong UTF-8
 *   sequence ("%C0%AE" for '.') or a backslash in the path (not a URI character; some
 *   servers read it as "/").
 * In the path, percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded,
 * other escapes upper-cased and kept (so %2F stays an encoded byte, never a '/'), then
 * dot-segments are removed (RFC 3986 §5.2.4; ".." above the root stays at the root).
 * The query is kept as it came (after the same byte checks). */
int tg_target_normalize(const char *in, size_t len, char *out, tg_target_norm_t *res);

/* The path as routes and endpoint detection match it, the most decoded view an upstream
 * could take of the canonical path: %2F read as "/", every segment's ";parameters"
 * removed, empty segments merged ("//" is "/", as nginx's merge_slashes reads it),
 * ASCII letters lower-cased (as case-insensitive routers read them), dot-segments
 * resolved again ("/V1/chat;x=1%2FCompletions;y//" -> "/v1/chat/completions/"). So a spelling an
 * upstream may decode to a billed endpoint is metered as one, and one it may decode to another
 * route's path matches that route. out has room for len bytes (it may be path itself: the result is
 * never longer). Returns its length. */
size_t tg_target_match_path(const char *path, size_t len, char *out);

/* Query parameters that carry credentials: api_key, api-key, apikey, key, access_token,
 * token, x-api-key (names compared percent-decoded and case-insensitively: "api%5Fkey"
 * is api_key), and any parameter whose value (or bare name) is a tollgate key "tg_..."
 * (also percent-encoded). Copies target[0..len) into out (cap bytes, at least 1), each
 * such value replaced by REDACTED and a fragment ("#...", only in a target refused with
 * 400) by "#REDACTED", cut at cap - 1, NUL-terminated; returns the length written. For
 * events and access logs. */
size_t tg_target_redact(const char *target, size_t len, char *out, size_t cap);

/* Removes, in place, credential parameters (by name, as above) whose value is a
 * tollgate key ("tg_...", also percent-encoded): a tenant's key is tollgate's and never reaches the
 * upstream, while an upstream's own key (Google's ?key=) is left to reach it. Returns the new
 * length. */
size_t tg_target_strip_tollgate_keys(char *target, size_t len);

#endif
