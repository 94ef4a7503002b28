/* Request-target normalisation: see target.h.
 *
 * The order is RFC 3986 §6.2.2's: percent-decoding of unreserved characters first, then
 * dot-segment removal, so "%2E%2E" is a ".." like any other. Both steps only shrink the
 * path, which is why the output never needs more than the input (plus one byte for the
 * "/" an absolute-form target without a path gets). */
#include "gateway/target.h"

#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Does the escaped byte v, followed by rest[0..n), start an overlong UTF-8 sequence (RFC
 * 3629 §3: C0 and C1 never occur; E0 must be followed by A0..BF, F0 by 90..BF)? */
static int overlong(unsigned char v, const char *rest, size_t n)
{
    if (v == 0xC0 || v == 0xC1) return 1;
    if (v != 0xE0 && v != 0xF0) return 0;
    int hi = n >= 3 && rest[0] == '%' ? hexval(rest[1]) : -1;
    int lo = hi >= 0 ? hexval(rest[2]) : -1;
    if (lo < 0) return 0; /* (not a valid sequence either way: left to the upstream) */
    unsigned char next = (unsigned char)(hi * 16 + lo);
    return v == 0xE0 ? next < 0xA0 : next < 0x90;
}

/* RFC 3986 §5.2.4 on b[0..n), in place; returns the new length. The write index never
 * passes the read index, and rewriting the input's prefix to "/" (steps B and C) only
 * moves the read index forward or writes one '/' at or ahead of it. */
static size_t remove_dot_segments(char *b, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        size_t left = n - r;
        const char *p = b + r;
        if (left >= 3 && !memcmp(p, "../", 3)) { /* A */
            r += 3;
        } else if (left >= 2 && !memcmp(p, "./", 2)) {
            r += 2;
        } else if (left >= 3 && !memcmp(p, "/./", 3)) { /* B */
            r += 2;
        } else if (left == 2 && !memcmp(p, "/.", 2)) {
            b[r + 1] = '/';
            r += 1;
        } else if ((left >= 4 && !memcmp(p, "/../", 4)) || (left == 3 && !memcmp(p, "/..", 3))) {
            if (left == 3) b[r + 2] = '/'; /* C: input becomes "/" */
            r += left == 3 ? 2 : 3;
            while (w > 0 && b[w - 1] != '/') /* the output's last segment, */
                w--;
            if (w > 0) w--; /* and its "/" */
        } else if ((left == 1 && p[0] == '.') || (left == 2 && !memcmp(p, "..", 2))) { /* D */
            r = n;
        } else { /* E: the first segment, with its leading "/" */
            if (b[r] == '/') b[w++] = b[r++];
            while (r < n && b[r] != '/')
                b[w++] = b[r++];
        }
    }
    return w;
}

/* Byte classes of a request-target, for the one pass every target gets. */
enum { B_BAD = 1, B_WORK = 2, B_QUERY = 4 };
#define BAD_RANGE(c) ((c) <= 0x20 || (c) == 0x7f)
static unsigned char byte_class(unsigned c)
{
    if (BAD_RANGE(c) || c == '#') return B_BAD;
    if (c == '%' || c == '\\') return B_WORK; /* escapes, backslash */
    if (c == '?') return B_QUERY;
    return 0;
}

/* The common target, "/v1/chat/completions" or "/p?q=1": origin-form, and no escape,
 * backslash or segment starting with a dot in its path. Already canonical: copied as it is. Returns
 * 1 when it was (out and res filled), 0 when the whole normalisation must run. */
static int canonical_already(const char *in, size_t len, char *out, tg_target_norm_t *res)
{
    if (len == 0 || in[0] != '/') return 0;
    size_t i = 0;
    while (i < len) {
        unsigned char k = byte_class((unsigned char)in[i]);
        if (k & (B_BAD | B_WORK) || (in[i] == '.' && in[i - 1] == '/')) return 0;
        if (k & B_QUERY) break;
        i++;
    }
    for (size_t j = i; j < len; j++) /* the query: only the byte checks */
        if (byte_class((unsigned char)in[j]) & B_BAD) return 0;
    memcpy(out, in, len);
    res->len = len;
    res->path_len = i;
    return 1;
}

int tg_target_normalize(const char *in, size_t len, char *out, tg_target_norm_t *res)
{
    res->len = res->path_len = 0;
    res->error = NULL;
    if (canonical_already(in, len, out, res)) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (BAD_RANGE(c) || c == '#') {
            res->error = c == '#' ? "a fragment (#) is not allowed in the request-target"
                                  : "control character or space in the request-target";
            return -1;
        }
    }
    if (len == 1 && in[0] == '*') { /* asterisk-form (OPTIONS *) */
        out[0] = '*';
        res->len = res->path_len = 1;
        return 0;
    }
    size_t i = 0;
    int absolute = 0;
    if (len >= 7 && !strncasecmp(in, "http://", 7)) {
        i = 7;
        absolute = 1;
    } else if (len >= 8 && !strncasecmp(in, "https://", 8)) {
        i = 8;
        absolute = 1;
    }
    if (absolute) { /* the authority is the Host's business, not the path's */
        while (i < len && in[i] != '/' && in[i] != '?')
            i++;
    } else if (len == 0 || in[0] != '/') {
        res->error = "the request-target must be a path starting with /";
        return -1;
    }
    const char *q = memchr(in + i, '?', len - i);
    size_t pend = q ? (size_t)(q - in) : len;
    size_t o = 0;
    if (i == pend || in[i] != '/') out[o++] = '/';
    for (; i < pend; i++) {
        char c = in[i];
        if (c == '\\') {
            /* Not a URI character (RFC 3986 §2), and some servers read it as a "/": a
             * path spelt with it would be routed and metered as one path and served as
             * another ("/v1\\chat\\completions"). */
            res->error = "a backslash in the request-target path";
            return -1;
        }
        if (c != '%') {
            out[o++] = c;
            continue;
        }
        int hi = i + 2 < pend ? hexval(in[i + 1]) : -1;
        int lo = hi >= 0 ? hexval(in[i + 2]) : -1;
        if (lo < 0) {
            res->error = "malformed percent-encoding in the request-target";
            return -1;
        }
        unsigned char v = (unsigned char)(hi * 16 + lo);
        if (v == 0) {
            res->error = "an encoded NUL (%00) in the request-target path";
            return -1;
        }
        if (overlong(v, in + i + 3, pend - i - 3)) {
            /* An ASCII character spelt in more bytes than UTF-8 allows ("%C0%AE" for
             * '.'): never sent by a client, and a lax decoder reads a "..": 400. */
            res->error = "an overlong UTF-8 sequence in the request-target path";
            return -1;
        }
        if (unreserved(v)) {
            out[o++] = (char)v;
        } else {
            static const char hex[] = "0123456789ABCDEF";
            out[o++] = '%';
            out[o++] = hex[hi];
            out[o++] = hex[lo];
        }
        i += 2;
    }
    o = remove_dot_segments(out, o);
    res->path_len = o;
    if (q) {
        memcpy(out + o, q, len - pend);
        o += len - pend;
    }
    res->len = o;
    return 0;
}

size_t tg_target_match_path(const char *path, size_t len, char *out)
{
    /* The common path has no escape, no ";", no empty or dot segment: it only needs its
     * letters lower-cased (in place when out is path; what is written was already read,
     * and the full walk below reads the lower-cased prefix the same way). */
    size_t i = 0;
    for (char prev = 0; i < len; prev = path[i++]) {
        char c = path[i];
        if (c == '%' || c == ';' || (c == '/' && prev == '/') || (c == '.' && prev == '/')) break;
        out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    if (i == len) return len;
    size_t o = 0;
    int skip = 0;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (c == '%' && i + 2 < len && path[i + 1] == '2' &&
            (path[i + 2] == 'F' || path[i + 2] == 'f')) {
            c = '/'; /* an upstream may decode it: match as if it had */
            i += 2;
        }
        if (c == '/') skip = 0;
        if (c == ';') skip = 1;
        /* Empty segments are merged, as many servers do (nginx's merge_slashes, the
         * default): "/v1/chat/completions//" is that endpoint, "//v1/x" the /v1 route. */
        if (c == '/' && o > 0 && out[o - 1] == '/') continue;
        /* Letters lower-cased: servers that route case-insensitively (Express's and
         * Fiber's default) serve "/v1/CHAT/completions" as the chat endpoint. */
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (!skip) out[o++] = c;
    }
    /* "%2F.." segments may now be dot-segments: resolved as the upstream could. */
    return remove_dot_segments(out, o);
}

/* s[0..l) percent-decoded into out (cap bytes); returns the decoded length, or cap when
 * it does not fit (an upstream decodes a parameter's name and value: so must the check). */
static size_t pct_decode(const char *s, size_t l, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < l; i++) {
        if (o == cap) return cap;
        int hi = s[i] == '%' && i + 2 < l ? hexval(s[i + 1]) : -1;
        int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
        if (lo >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    return o;
}

/* The name of a credential parameter? (Compared decoded: "api%5Fkey" is api_key.) */
static int key_name(const char *n, size_t l)
{
    static const char *const names[] = {"api_key",      "api-key", "apikey",   "key",
                                        "access_token", "token",   "x-api-key"};
    char d[16];
    size_t dl = pct_decode(n, l, d, sizeof d);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == dl && !strncasecmp(d, names[i], dl)) return 1;
    return 0;
}

/* Does the value v[0..l) hold a tollgate key ("tg_...", also percent-encoded)? */
static int tollgate_key(const char *v, size_t l)
{
    char d[3];
    size_t k = 0, i = 0;
    while (k < 3 && i < l) { /* the first three decoded bytes */
        size_t step =
            v[i] == '%' && i + 2 < l && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0 ? 3 : 1;
        pct_decode(v + i, step, d + k++, 1);
        i += step;
    }
    return k == 3 && !memcmp(d, "tg_", 3);
}

/* Walks the query's parameters: for each, [ns, ne) is its name, [vs, ve) its value. */
typedef struct param {
    size_t start, ns, ne, vs, ve, end; /* end: index of the '&' or the length */
} param_t;

static int next_param(const char *t, size_t len, size_t *at, param_t *p)
{
    if (*at >= len) return 0;
    p->start = p->ns = *at;
    size_t i = *at;
    while (i < len && t[i] != '&' && t[i] != '=')
        i++;
    p->ne = i;
    if (i < len && t[i] == '=') i++;
    p->vs = i;
    while (i < len && t[i] != '&')
        i++;
    p->ve = p->end = i;
    *at = i + 1;
    return 1;
}

size_t tg_target_redact(const char *t, size_t len, char *out, size_t cap)
{
    /* A fragment (only in a target refused with 400) may hold anything: it is not kept. */
    const char *frag = memchr(t, '#', len);
    if (frag) len = (size_t)(frag - t);
    const char *q = memchr(t, '?', len);
    size_t o = 0, head = q ? (size_t)(q - t) + 1 : len;
    if (cap == 0) return 0;
#define PUT(s, n)                                                                                  \
    do {                                                                                           \
        size_t k_ = (n) < cap - 1 - o ? (n) : cap - 1 - o;                                         \
        memcpy(out + o, (s), k_);                                                                  \
        o += k_;                                                                                   \
    } while (0)
    PUT(t, head);
    size_t at = head;
    param_t p;
    while (q && o < cap - 1 && next_param(t, len, &at, &p)) {
        if (p.vs > p.ne &&
            (key_name(t + p.ns, p.ne - p.ns) || tollgate_key(t + p.vs, p.ve - p.vs))) {
            PUT(t + p.start, p.vs - p.start);
            PUT("REDACTED", sizeof "REDACTED" - 1);
        } else if (p.vs == p.ne && tollgate_key(t + p.ns, p.ne - p.ns)) {
            PUT("REDACTED", sizeof "REDACTED" - 1); /* a bare "?tg_..." */
        } else {
            PUT(t + p.start, p.end - p.start);
        }
        if (p.end < len) PUT("&", 1);
    }
    if (frag) PUT("#REDACTED", sizeof "#REDACTED" - 1);
#undef PUT
    out[o] = '\0';
    return o;
}

size_t tg_target_strip_tollgate_keys(char *t, size_t len)
{
    char *q = memchr(t, '?', len);
    if (!q) return len;
    size_t at = (size_t)(q - t) + 1, w = at;
    param_t p;
    int dropped = 0;
    while (next_param(t, len, &at, &p)) {
        int drop =
            p.vs > p.ne && key_name(t + p.ns, p.ne - p.ns) && tollgate_key(t + p.vs, p.ve - p.vs);
        dropped |= drop;
        if (drop) continue;
        if (w > (size_t)(q - t) + 1) t[w++] = '&';
        memmove(t + w, t + p.start, p.end - p.start);
        w += p.end - p.start;
    }
    if (!dropped) return len;          /* (the walk rewrote nothing) */
    if (w == (size_t)(q - t) + 1) w--; /* nothing left: no "?" either */
    return w;
}
