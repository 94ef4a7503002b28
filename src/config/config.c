/* Configuration loader: see config.h for the interface and docs/configuration.md
 * for every key. libyaml's document API parses the file (its node marks give us
 * line numbers); we then walk the tree once against a table of known keys per
 * mapping, so a misspelt key is an error instead of a silently ignored setting.
 *
 * `${NAME}` is expanded per scalar after parsing, not by rewriting the text: a
 * variable's value is never re-read as YAML (a secret holding ": " or "#" stays
 * one string) and comments are never expanded. `$${` writes a literal `${`.
 * `${file:PATH}` (an upstream's header values and credentials only) is the first line of
 * the file, read at every load: a SIGHUP after the file was replaced rotates the secret.
 *
 * The first error wins. Messages are "FILE:LINE: KEY.PATH: problem" with LINE
 * 1-based and sequence indexes 0-based (`routes[0]` is the first route). Values
 * that may hold secrets (headers, store URLs, credentials in targets) are never
 * echoed in a message. */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config/credential.h"
#include "util/buf.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/money.h"
#include "util/pct.h"
#include "util/sizes.h"

#define MAX_FILE_BYTES (4u << 20) /* a config is a page of YAML; refuse runaway input */
#define MAX_NAME       63         /* fits tg_event_t.route[64] */
#define MAX_PREFIX     255
#define MAX_WORKERS    TG_WORKERS_MAX /* what the server runs: more would be capped unseen */
#define MAX_SIZE       (1ull << 40)   /* 1 TiB: anything larger is a typo */
#define MAX_MS         (7ull * 24 * 3600 * 1000) /* 7 days: keeps ms*1000 far from overflow */
#define KEYPATH        256
#define MAX_MODEL      127 /* fits tg_event_t.model[128]: a longer name could never match */
#define MAX_TOOL       127 /* fits tg_event_t.tool[128] */
#define MAX_THRESHOLDS 8   /* fits tg_budget_row_t.thresholds[8] */

typedef struct parse {
    const char *name; /* shown in messages */
    yaml_document_t *doc;
    tg_err_t *err;
    int files_ok; /* ${file:PATH} allowed in the scalar being expanded (secrets' places only:
                     elsewhere a file's text could end up echoed in a message) */
} parse_t;

/* ---- errors ------------------------------------------------------------ */

static unsigned long line_of(const yaml_node_t *n)
{
    return (unsigned long)n->start_mark.line + 1;
}

static int fail(parse_t *p, const yaml_node_t *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(parse_t *p, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unsigned long line = n ? line_of(n) : 1;
    if (path && *path) return tg_err_set(p->err, "%s:%lu: %s: %s", p->name, line, path, msg);
    return tg_err_set(p->err, "%s:%lu: %s", p->name, line, msg);
}

static int oom(parse_t *p, const yaml_node_t *n, const char *path)
{
    return fail(p, n, path, "out of memory");
}

static const char *node_what(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return "a single value";
    }
}

/* Key paths are for messages: a very long one is cut, never an error. (vsnprintf
 * rather than snprintf: the cut is intended, -Wformat-truncation need not say so.) */
static void keypath(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void keypath(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, KEYPATH, fmt, ap);
    va_end(ap);
}

static void join(char *dst, const char *path, const char *key)
{
    keypath(dst, "%s%s%s", path, *path ? "." : "", key);
}

static yaml_node_t *node_at(parse_t *p, int index)
{
    return yaml_document_get_node(p->doc, index);
}

/* ---- scalars and ${ENV} ------------------------------------------------ */

/* Offset of the first byte not allowed in a header value (RFC 9110 §5.5: a control
 * character but HTAB, or DEL), or n. */
static size_t bad_header_byte(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return i;
    }
    return n;
}

/* YAML's null: an empty plain value, `~` or `null`. A quoted "" is a string. */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static int valid_var(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
    return 1;
}

static int add_file_line(parse_t *p, const yaml_node_t *n, const char *path, const char *file,
                         tg_buf_t *b);

/* The scalar's text with ${NAME} (and, where p->files_ok, ${file:PATH}) replaced; *out is
 * malloc'd, owned by the caller. */
static int expand(parse_t *p, const yaml_node_t *n, const char *path, char **out)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    *out = NULL;
    if (memchr(s, '\0', len)) return fail(p, n, path, "contains a NUL byte");
    if (!memchr(s, '$', len)) {
        *out = strdup(s);
        return *out ? 0 : oom(p, n, path);
    }
    /* A value expanded past the size of a whole config file is a mistake (or a loop of
     * references to a huge variable), not a setting. */
    tg_buf_t b = TG_BUF_INIT(MAX_FILE_BYTES);
    size_t i = 0;
    while (i < len) {
        int rc = 0;
        if (s[i] != '$') {
            size_t run = strcspn(s + i, "$");
            rc = tg_buf_add(&b, s + i, run);
            i += run;
        } else if (i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            rc = tg_buf_add(&b, TG_LIT("${"));
            i += 3;
        } else if (i + 1 < len && s[i + 1] == '{') {
            const char *name = s + i + 2;
            const char *end = memchr(name, '}', len - i - 2);
            if (!end) {
                tg_buf_free(&b);
                return fail(p, n, path, "unterminated \"${\" (write $${ for a literal ${)");
            }
            size_t nl = (size_t)(end - name);
            if (nl >= 5 && !memcmp(name, "file:", 5)) {
                char file[PATH_MAX];
                if (!p->files_ok || nl - 5 >= sizeof file || name[5] != '/') {
                    tg_buf_free(&b);
                    return fail(p, n, path,
                                !p->files_ok ? "${file:...} is only read in an upstream's headers "
                                               "and credentials"
                                             : "${file:PATH} needs an absolute PATH");
                }
                memcpy(file, name + 5, nl - 5);
                file[nl - 5] = '\0';
                rc = add_file_line(p, n, path, file, &b);
                if (rc < 0) {
                    if (b.p) OPENSSL_cleanse(b.p, b.len);
                    tg_buf_free(&b);
                    return -1;
                }
                i += nl + 3;
                continue;
            }
            if (!valid_var(name, nl) || nl > 128) {
                tg_buf_free(&b);
                return fail(p, n, path,
                            "bad variable reference \"${%.*s}\" (names are letters, digits and _; "
                            "write $${ for a literal ${)",
                            (int)(nl > 64 ? 64 : nl), name);
            }
            char var[129];
            memcpy(var, name, nl);
            var[nl] = '\0';
            const char *v = getenv(var);
            if (!v) {
                tg_buf_free(&b);
                return fail(p, n, path, "environment variable %s is not set", var);
            }
            rc = tg_buf_add(&b, v, strlen(v));
            i += nl + 3;
        } else {
            rc = tg_buf_add(&b, TG_LIT("$"));
            i++;
        }
        if (rc != TG_BUF_OK) {
            if (b.p) OPENSSL_cleanse(b.p, b.len);
            tg_buf_free(&b);
            if (rc == TG_BUF_TOOBIG)
                return fail(p, n, path, "longer than %u MiB with its variables expanded",
                            MAX_FILE_BYTES >> 20);
            return oom(p, n, path);
        }
    }
    *out = tg_buf_take(&b);
    return *out ? 0 : oom(p, n, path);
}

/* A single value (not a mapping, list or null), expanded. expect describes it. */
static int scalar(parse_t *p, const yaml_node_t *n, const char *path, const char *expect,
                  char **out)
{
    *out = NULL;
    if (n->type != YAML_SCALAR_NODE)
        return fail(p, n, path, "expected %s, found %s", expect, node_what(n));
    if (is_null(n)) return fail(p, n, path, "missing value (expected %s)", expect);
    return expand(p, n, path, out);
}

/* ---- numbers ----------------------------------------------------------- */

/* Leading decimal digits of s. Returns -1 when there are none, -2 on overflow. */
static int digits(const char *s, const char **end, unsigned long long *out)
{
    unsigned long long v = 0;
    const char *q = s;
    if (!isdigit((unsigned char)*q)) return -1;
    for (; isdigit((unsigned char)*q); q++) {
        if (v > (MAX_SIZE * 1024)) return -2; /* far above every cap we check */
        v = v * 10 + (unsigned long long)(*q - '0');
    }
    *end = q;
    *out = v;
    return 0;
}

static int is_negative(const char *v)
{
    return v[0] == '-' && isdigit((unsigned char)v[1]);
}

static int get_uint(parse_t *p, const yaml_node_t *n, const char *path, unsigned long long min,
                    unsigned long long max, unsigned long long *out)
{
    char *v;
    if (scalar(p, n, path, "a number", &v) < 0) return -1;
    const char *end = NULL;
    unsigned long long x = 0;
    int rc = -1, d = digits(v, &end, &x);
    if (is_negative(v))
        fail(p, n, path, "must not be negative (got %s)", v);
    else if (d == -1 || (d == 0 && *end))
        fail(p, n, path, "expected a whole number, got \"%s\"", v);
    else if (d == -2 || x > max)
        fail(p, n, path, "too large (got %s; at most %llu)", v, max);
    else if (x < min && min == 1)
        fail(p, n, path, "must be positive (got %s)", v);
    else if (x < min)
        fail(p, n, path, "must be at least %llu (got %s)", min, v);
    else {
        *out = x;
        rc = 0;
    }
    free(v);
    return rc;
}

/* Bytes: an integer, or one with k/m/g (KiB, MiB, GiB), nginx style: "10m". */
static int get_size(parse_t *p, const yaml_node_t *n, const char *path, size_t *out)
{
    char *v;
    if (scalar(p, n, path, "a size", &v) < 0) return -1;
    const char *end = NULL;
    unsigned long long x = 0, mul = 1;
    int rc = -1, d = digits(v, &end, &x);
    if (d == 0 && *end && !end[1]) {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            mul = 1ull << 10;
            end++;
            break;
        case 'm':
            mul = 1ull << 20;
            end++;
            break;
        case 'g':
            mul = 1ull << 30;
            end++;
            break;
        }
    }
    if (is_negative(v))
        fail(p, n, path, "must not be negative (got %s)", v);
    else if (d == -1 || (d == 0 && *end))
        fail(p, n, path, "bad size \"%s\" (bytes, or a number with k, m or g, e.g. 64k, 10m)", v);
    else if (d == -2 || x > MAX_SIZE / mul)
        fail(p, n, path, "too large (got %s)", v);
    else if (x == 0)
        fail(p, n, path, "must be positive (got %s)", v);
    else {
        *out = (size_t)(x * mul);
        rc = 0;
    }
    free(v);
    return rc;
}

/* Milliseconds: an integer, or a number with ms, s, m, h or d: "250ms", "5s" (util/duration.h). */
static int get_ms(parse_t *p, const yaml_node_t *n, const char *path, int zero_ok, long *out)
{
    char *v;
    if (scalar(p, n, path, "a duration", &v) < 0) return -1;
    long long x = 0;
    int rc = -1, d = tg_duration_parse(v, MAX_MS, &x);
    if (is_negative(v))
        fail(p, n, path, "must not be negative (got %s)", v);
    else if (d == -1)
        fail(p, n, path,
             "bad duration \"%s\" (milliseconds, or a number with ms, s, m, h or d, e.g. 250ms, "
             "5s)",
             v);
    else if (d == -2)
        fail(p, n, path, "too large (got %s; at most 7 days)", v);
    else if (x == 0 && !zero_ok)
        fail(p, n, path, "must be positive (got %s)", v);
    else {
        *out = (long)x;
        rc = 0;
    }
    free(v);
    return rc;
}

/* A retention period in whole days: "400d", "8w", "7y" (365 days each: a year kept is at
 * least a year), or a bare number of days; 0 keeps forever. At most 100 years. */
static int get_days(parse_t *p, const yaml_node_t *n, const char *path, int *out)
{
    char *v;
    if (scalar(p, n, path, "a period", &v) < 0) return -1;
    const char *end = NULL;
    unsigned long long x = 0, mul = 0;
    int rc = -1, d = digits(v, &end, &x);
    if (d == 0) {
        if (!*end || !strcmp(end, "d"))
            mul = 1;
        else if (!strcmp(end, "w"))
            mul = 7;
        else if (!strcmp(end, "y"))
            mul = 365;
    }
    if (is_negative(v))
        fail(p, n, path, "must not be negative (got %s)", v);
    else if (d == -1 || (d == 0 && !mul))
        fail(p, n, path, "bad period \"%s\" (days, or a number with d, w or y, e.g. 400d, 7y)", v);
    else if (d == -2 || x > 36500 / mul)
        fail(p, n, path, "too large (got %s; at most 100 years)", v);
    else {
        *out = (int)(x * mul);
        rc = 0;
    }
    free(v);
    return rc;
}

/* audit.bodies (issue 14): none, hash (each call record carries the SHA-256 of its
 * request and answer bodies) or encrypt (hash, and the bodies kept sealed by the KEK:
 * checked against encryption: once both are parsed, check_bodies). */
static int get_bodies(parse_t *p, const yaml_node_t *n, const char *path, int *out)
{
    char *v;
    if (scalar(p, n, path, "none, hash or encrypt", &v) < 0) return -1;
    int rc = 0;
    if (!strcmp(v, "none"))
        *out = TG_BODIES_NONE;
    else if (!strcmp(v, "hash"))
        *out = TG_BODIES_HASH;
    else if (!strcmp(v, "encrypt"))
        *out = TG_BODIES_ENCRYPT;
    else
        rc = fail(p, n, path, "unknown value \"%.*s\" (expected none, hash or encrypt)", 64, v);
    free(v);
    return rc;
}

static int cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

static int get_workers(parse_t *p, const yaml_node_t *n, const char *path, int *out)
{
    char *v;
    if (scalar(p, n, path, "a number of workers or \"auto\"", &v) < 0) return -1;
    const char *end = NULL;
    unsigned long long x = 0;
    int rc = -1, d = digits(v, &end, &x);
    if (!strcmp(v, "auto")) {
        *out = cores();
        rc = 0;
    } else if (is_negative(v) || (d == 0 && !*end && x == 0))
        fail(p, n, path, "must be a positive number or \"auto\" (got %s)", v);
    else if (d == -1 || (d == 0 && *end))
        fail(p, n, path, "expected a positive number or \"auto\", got \"%s\"", v);
    else if (d == -2 || x > MAX_WORKERS)
        fail(p, n, path, "must be at most %d (got %s)", MAX_WORKERS, v);
    else {
        *out = (int)x;
        rc = 0;
    }
    free(v);
    return rc;
}

/* ---- addresses and names ----------------------------------------------- */

static int valid_hostname(const char *h, size_t n)
{
    if (n == 0 || n > 253) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)h[i]) || h[i] == '-' || h[i] == '.' || h[i] == '_')) return 0;
    return 1;
}

/* host:port, [v6]:port, or (listen == 0) a bare host. NULL when fine, else
 * what is wrong. A listen address takes port 0 (any free port) but not a host
 * name: a name may resolve to several addresses, and which one we bound would
 * then depend on the resolver; say 0.0.0.0 or an address instead. */
static const char *check_hostport(const char *s, size_t n, int listen)
{
    const char *port = NULL;
    size_t portn = 0;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb) return "missing \"]\" after the IPv6 address";
        char v6[64];
        size_t l = (size_t)(rb - s - 1);
        struct in6_addr a;
        if (l == 0 || l >= sizeof v6) return "bad IPv6 address";
        memcpy(v6, s + 1, l);
        v6[l] = '\0';
        if (inet_pton(AF_INET6, v6, &a) != 1) return "bad IPv6 address";
        size_t used = (size_t)(rb - s) + 1;
        if (used < n) {
            if (rb[1] != ':') return "expected \":PORT\" after \"]\"";
            port = rb + 2;
            portn = n - used - 1;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        size_t hl = colon ? (size_t)(colon - s) : n;
        if (colon && memchr(colon + 1, ':', n - hl - 1))
            return "IPv6 addresses need brackets, e.g. [::1]:8080";
        if (hl == 0) return "missing host";
        if (!valid_hostname(s, hl)) return "bad host name";
        if (listen && !TG_LIT_EQ(s, hl, "localhost")) {
            char v4[16];
            struct in_addr a;
            if (hl >= sizeof v4) return "host must be an IP address or localhost";
            memcpy(v4, s, hl);
            v4[hl] = '\0';
            if (inet_pton(AF_INET, v4, &a) != 1) return "host must be an IP address or localhost";
        }
        if (colon) {
            port = colon + 1;
            portn = n - hl - 1;
        }
    }
    if (!port) return listen ? "missing port" : NULL;
    if (portn == 0) return "missing port";
    unsigned v = 0;
    for (size_t i = 0; i < portn; i++) {
        if (!isdigit((unsigned char)port[i])) return "bad port";
        if (v <= 65535) v = v * 10 + (unsigned)(port[i] - '0');
    }
    if (v > 65535 || (v == 0 && !listen)) return "port out of range";
    return NULL;
}

static int get_listen(parse_t *p, const yaml_node_t *n, const char *path, int empty_ok, char **out)
{
    char *v;
    if (scalar(p, n, path, "a host:port address", &v) < 0) return -1;
    if (empty_ok && (!*v || !strcmp(v, "off"))) {
        v[0] = '\0';
        *out = v;
        return 0;
    }
    const char *problem = check_hostport(v, strlen(v), 1);
    if (problem) {
        fail(p, n, path, "bad address \"%s\": %s (expected host:port, IPv6 as [::1]:8080)", v,
             problem);
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

/* scheme://host[:port], lower-case scheme, no trailing slash, no path. */
static int get_target(parse_t *p, const yaml_node_t *n, const char *path, char **out)
{
    char *v;
    if (scalar(p, n, path, "an http:// or https:// URL", &v) < 0) return -1;
    const char *scheme = NULL;
    size_t skip = 0;
    if (!strncasecmp(v, TG_LIT("http://")))
        scheme = "http", skip = TG_LIT_LEN("http://");
    else if (!strncasecmp(v, TG_LIT("https://")))
        scheme = "https", skip = TG_LIT_LEN("https://");
    const char *auth = v + skip;
    size_t an = strcspn(auth, "/?#");
    const char *rest = auth + an, *problem = NULL;
    while (*rest == '/')
        rest++;
    int rc = -1;
    if (!scheme)
        fail(p, n, path, "bad target \"%s\": must start with http:// or https://", v);
    else if (memchr(auth, '@', an))
        fail(p, n, path, "credentials in a target URL are not supported (use headers)");
    else if ((problem = check_hostport(auth, an, 0)))
        fail(p, n, path, "bad target \"%s\": %s", v, problem);
    else if (*rest == '?' || *rest == '#')
        fail(p, n, path, "bad target: no query or fragment allowed (not echoed: may hold a key)");
    else if (*rest)
        fail(p, n, path,
             "bad target \"%s\": no path allowed (targets are scheme://host[:port]; the "
             "request path is forwarded as is)",
             v);
    else {
        size_t len = strlen(scheme) + 3 + an + 1;
        *out = malloc(len);
        if (!*out)
            oom(p, n, path);
        else {
            snprintf(*out, len, "%s://%.*s", scheme, (int)an, auth);
            rc = 0;
        }
    }
    free(v);
    return rc;
}

/* Upstream and route names end up in events, metrics labels and URLs. */
static int get_name(parse_t *p, const yaml_node_t *n, const char *path, char **out)
{
    char *v;
    if (scalar(p, n, path, "a name", &v) < 0) return -1;
    size_t len = strlen(v);
    int ok = len > 0 && len <= MAX_NAME;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '_' || v[i] == '-';
    if (!ok) {
        fail(p, n, path, "bad name \"%s\" (1-%d letters, digits, '.', '_' or '-')", v, MAX_NAME);
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_prefix(parse_t *p, const yaml_node_t *n, const char *path, char **out)
{
    char *v;
    if (scalar(p, n, path, "a path starting with /", &v) < 0) return -1;
    const char *problem = NULL;
    if (v[0] != '/')
        problem = "must start with \"/\"";
    else if (strlen(v) > MAX_PREFIX)
        problem = "too long";
    for (const char *c = v; !problem && *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '?' || *c == '#')
            problem = "must not contain spaces, control characters, '?' or '#'";
    if (problem) {
        fail(p, n, path, "%s (got \"%.*s\")", problem, 64, v);
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

static const char *const kind_names[] = {"http", "openai", "anthropic", "mcp"};

static int get_kind(parse_t *p, const yaml_node_t *n, const char *path, tg_route_kind_t *out)
{
    char *v;
    if (scalar(p, n, path, "a route kind", &v) < 0) return -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, kind_names[i])) {
            *out = (tg_route_kind_t)i;
            free(v);
            return 0;
        }
    fail(p, n, path, "unknown kind \"%.*s\" (expected http, openai, anthropic or mcp)", 64, v);
    free(v);
    return -1;
}

static const char *const signed_names[] = {"off", "optional", "required"};

static int get_signed(parse_t *p, const yaml_node_t *n, const char *path, tg_signed_mode_t *out)
{
    char *v;
    if (scalar(p, n, path, "off, optional or required", &v) < 0) return -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(v, signed_names[i])) {
            *out = (tg_signed_mode_t)i;
            free(v);
            return 0;
        }
    fail(p, n, path, "unknown value \"%.*s\" (expected off, optional or required)", 64, v);
    free(v);
    return -1;
}

static int get_store(parse_t *p, const yaml_node_t *n, const char *path, char **out)
{
    char *v;
    if (scalar(p, n, path, "a store URL", &v) < 0) return -1;
    const char *problem = NULL;
    if (!strncmp(v, TG_LIT("sqlite:"))) {
        if (!v[TG_LIT_LEN("sqlite:")]) problem = "sqlite: needs a path, e.g. sqlite:./tollgate.db";
    } else if (!strncmp(v, TG_LIT("postgres://")) || !strncmp(v, TG_LIT("postgresql://"))) {
        if (!v[strcspn(v, ":") + 3]) problem = "postgres:// needs a host or database";
    } else {
        problem = "must be sqlite:PATH or postgres://...";
    }
    if (problem) { /* no echo: a postgres URL may carry a password */
        fail(p, n, path, "%s", problem);
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

/* One part of a redis:// URL's credentials, [s, e), percent-decoded into *out (malloc'd).
 * NULL, or the problem, which never quotes the text. */
static const char *decode_part(const char *s, const char *e, int password, char **out)
{
    size_t n = (size_t)(e - s);
    char *d = malloc(n + 1);
    if (!d) return "out of memory";
    if (tg_pct_decode(s, n, d, n + 1) != 0) {
        OPENSSL_cleanse(d, n + 1);
        free(d);
        return password ? "bad percent escape in the password (%XX with two hex digits, not "
                          "%00; a literal % is %25)"
                        : "bad percent escape in the user (%XX with two hex digits, not %00; a "
                          "literal % is %25)";
    }
    *out = d;
    return NULL;
}

/* The credentials of a redis:// URL, [s, at): ":PASSWORD" or "USER:PASSWORD" (Redis 6's
 * ACL users), the user ending at the first ":". A USER alone is kept without a password:
 * limits.password_file may give it (parse_redis_password checks). */
static const char *get_credentials(const char *s, const char *at, tg_config_t *c)
{
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *uend = colon ? colon : at, *problem;
    if (s == at)
        return "nothing before \"@\" (write redis://:PASSWORD@HOST or "
               "redis://USER:PASSWORD@HOST)";
    if (colon && colon + 1 == at)
        return "empty password after \":\" (write redis://:PASSWORD@HOST, or leave out the "
               "\"@\" for a Redis without one)";
    if (uend > s && (problem = decode_part(s, uend, 0, &c->limits.redis_user))) return problem;
    if (colon && (problem = decode_part(colon + 1, at, 1, &c->limits.redis_password)))
        return problem;
    return NULL;
}

/* limits.backend: "memory", or redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (HOST a name, an
 * IPv4 literal or an IPv6 one in brackets; USER and PASSWORD percent-decoded, as in Redis's
 * own URI scheme). The credentials end at the last "@" (no host, port or database holds
 * one), so a password from ${ENV} with "@" or "/" in it still parses; a "%" in it must be
 * written %25 (or the password given in limits.password_file, taken as it is). No message
 * quotes the URL: it may hold the password. No TLS yet: another scheme is refused rather
 * than half used. */
static int get_backend(parse_t *p, const yaml_node_t *n, const char *path, tg_config_t *c)
{
    char *v;
    if (scalar(p, n, path, "a limits backend", &v) < 0) return -1;
    const char *problem = NULL;
    const char *h = v + TG_LIT_LEN("redis://"), *hend, *at;
    if (!strcmp(v, "memory")) {
        free(v);
        return 0;
    }
    if (strncmp(v, TG_LIT("redis://"))) {
        problem = "must be memory or redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss://, "
                  "sentinel and cluster seeds are not supported yet)";
        goto bad;
    }
    if ((at = strrchr(h, '@'))) {
        if ((problem = get_credentials(h, at, c))) goto bad;
        h = at + 1;
    }
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend || hend == h + 1) {
            problem = "bad IPv6 host (write redis://[::1]:6379/0)";
            goto bad;
        }
        h++;
    } else {
        hend = h + strcspn(h, ":/");
    }
    if (hend == h) {
        problem = at ? "needs a host after \"@\", e.g. redis://:PASSWORD@127.0.0.1:6379/0"
                     : "needs a host, e.g. redis://127.0.0.1:6379/0";
        goto bad;
    }
    c->limits.redis_host = strndup(h, (size_t)(hend - h));
    if (!c->limits.redis_host) {
        problem = "out of memory";
        goto bad;
    }
    const char *r = *hend == ']' ? hend + 1 : hend;
    unsigned long long x;
    const char *end;
    if (*r == ':') {
        if (digits(r + 1, &end, &x) != 0 || x == 0 || x > 65535 || (*end && *end != '/')) {
            problem = "bad port (1..65535)";
            goto bad;
        }
        c->limits.redis_port = (int)x;
        r = end;
    }
    if (*r == '/' && r[1]) {
        if (digits(r + 1, &end, &x) != 0 || *end || x > 15) {
            problem = "bad database number (0..15)";
            goto bad;
        }
        c->limits.redis_db = (int)x;
    } else if (*r && strcmp(r, "/")) {
        problem = "unexpected text after the host (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB])";
        goto bad;
    }
    c->limits.redis = 1;
    OPENSSL_cleanse(v, strlen(v));
    free(v);
    return 0;
bad:
    fail(p, n, path, "%s", problem);
    OPENSSL_cleanse(v, strlen(v));
    free(v);
    return -1;
}

static int get_on_down(parse_t *p, const yaml_node_t *n, const char *path, tg_limits_down_t *out)
{
    char *v;
    if (scalar(p, n, path, "local, allow or deny", &v) < 0) return -1;
    int rc = 0;
    if (!strcmp(v, "local"))
        *out = TG_LIMITS_DOWN_LOCAL;
    else if (!strcmp(v, "allow"))
        *out = TG_LIMITS_DOWN_ALLOW;
    else if (!strcmp(v, "deny"))
        *out = TG_LIMITS_DOWN_DENY;
    else
        rc = fail(p, n, path, "unknown policy \"%.*s\" (expected local, allow or deny)", 64, v);
    free(v);
    return rc;
}

static int get_level(parse_t *p, const yaml_node_t *n, const char *path, char **out)
{
    char *v;
    tg_log_level_t lvl;
    if (scalar(p, n, path, "a log level", &v) < 0) return -1;
    if (tg_log_parse_level(v, &lvl) < 0) {
        fail(p, n, path, "unknown level \"%.*s\" (expected debug, info, warn or error)", 64, v);
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_path(parse_t *p, const yaml_node_t *n, const char *path, char **out)
{
    char *v;
    if (scalar(p, n, path, "a file path", &v) < 0) return -1;
    if (!*v) {
        free(v);
        return fail(p, n, path, "must not be empty");
    }
    *out = v;
    return 0;
}

/* USD, exactly (util/money.h): "0.15" is 150000 micro-USD, never a float. */
static int get_usd(parse_t *p, const yaml_node_t *n, const char *path, int64_t *out)
{
    char *v;
    if (scalar(p, n, path, "a USD amount", &v) < 0) return -1;
    int rc = 0;
    if (tg_money_parse(v, out) < 0)
        rc = fail(p, n, path, "not a USD amount with at most 6 decimals: \"%.*s\"", 64, v);
    free(v);
    return rc;
}

/* ---- mappings against a table of keys ---------------------------------- */

typedef enum {
    V_LISTEN,       /* char *, host:port */
    V_ADMIN_LISTEN, /* char *, host:port or "" / off */
    V_WORKERS,      /* int */
    V_SIZE,         /* size_t, bytes, > 0 */
    V_MS,           /* long, ms, > 0 */
    V_MS0,          /* long, ms, 0 = none */
    V_INT0,         /* int, >= 0 */
    V_INT1,         /* int, >= 1 */
    V_COUNT,        /* size_t, >= 1 */
    V_STORE,        /* char * */
    V_LEVEL,        /* char * */
    V_PATH,         /* char *, non-empty */
    V_NAME,         /* char * */
    V_PREFIX,       /* char * */
    V_KIND,         /* tg_route_kind_t */
    V_TARGETS,      /* the tg_upstream_conf_t itself (off 0) */
    V_HEADERS,      /* the tg_upstream_conf_t itself (off 0) */
    V_CIDRS,        /* tg_cidr_list_t */
    V_USD,          /* int64_t micro-USD */
    V_BACKEND,      /* the tg_config_t itself (off 0): limits.backend */
    V_ONDOWN,       /* tg_limits_down_t */
    V_SIGNED,       /* tg_signed_mode_t */
    V_DAYS,         /* int, whole days, 0 = forever: "400d", "7y" */
    V_BODIES,       /* int, audit.bodies: TG_BODIES_NONE, _HASH or _ENCRYPT */
    V_SECTION,      /* handled by the caller */
} vkind_t;

typedef struct field {
    const char *key;
    vkind_t kind;
    size_t off;
} field_t;

#define MAX_FIELDS 32 /* fields of one mapping (the top level has the most) */
#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static int set_targets(parse_t *p, const yaml_node_t *n, const char *path, tg_upstream_conf_t *u);
static int set_headers(parse_t *p, const yaml_node_t *n, const char *path, tg_upstream_conf_t *u);
static int set_cidrs(parse_t *p, const yaml_node_t *n, const char *path, tg_cidr_list_t *l);

static int set_value(parse_t *p, const yaml_node_t *n, const char *path, vkind_t kind, void *dst)
{
    unsigned long long x;
    switch (kind) {
    case V_LISTEN: return get_listen(p, n, path, 0, dst);
    case V_ADMIN_LISTEN: return get_listen(p, n, path, 1, dst);
    case V_WORKERS: return get_workers(p, n, path, dst);
    case V_SIZE: return get_size(p, n, path, dst);
    case V_MS: return get_ms(p, n, path, 0, dst);
    case V_MS0: return get_ms(p, n, path, 1, dst);
    case V_INT0:
    case V_INT1:
        if (get_uint(p, n, path, kind == V_INT1, 1000000, &x) < 0) return -1;
        *(int *)dst = (int)x;
        return 0;
    case V_COUNT:
        if (get_uint(p, n, path, 1, 1ull << 30, &x) < 0) return -1;
        *(size_t *)dst = (size_t)x;
        return 0;
    case V_DAYS: return get_days(p, n, path, dst);
    case V_BODIES: return get_bodies(p, n, path, dst);
    case V_STORE: return get_store(p, n, path, dst);
    case V_LEVEL: return get_level(p, n, path, dst);
    case V_PATH: return get_path(p, n, path, dst);
    case V_NAME: return get_name(p, n, path, dst);
    case V_PREFIX: return get_prefix(p, n, path, dst);
    case V_KIND: return get_kind(p, n, path, dst);
    case V_TARGETS: return set_targets(p, n, path, dst);
    case V_HEADERS: return set_headers(p, n, path, dst);
    case V_CIDRS: return set_cidrs(p, n, path, dst);
    case V_USD: return get_usd(p, n, path, dst);
    case V_BACKEND: return get_backend(p, n, path, dst);
    case V_ONDOWN: return get_on_down(p, n, path, dst);
    case V_SIGNED: return get_signed(p, n, path, dst);
    case V_SECTION: break;
    }
    return 0;
}

static int is_duration(vkind_t k)
{
    return k == V_MS || k == V_MS0;
}

/* Levenshtein distance, capped: only used to suggest a key for a typo. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64) return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t sub =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

static int unknown_key(parse_t *p, const yaml_node_t *k, const char *path, const char *key,
                       const field_t *f, size_t nf)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < nf; i++)
        if (is_duration(f[i].kind) && klen == strlen(f[i].key) + 3 &&
            !strncmp(key, f[i].key, klen - 3) && !strcmp(key + klen - 3, "_ms"))
            return fail(p, k, path,
                        "unknown key (write \"%s: 5s\"; durations take a unit, a plain number is "
                        "milliseconds)",
                        f[i].key);
    size_t best = 0, bestd = 99;
    for (size_t i = 0; i < nf; i++) {
        size_t d = distance(key, f[i].key);
        if (d < bestd) bestd = d, best = i;
    }
    if (bestd <= (klen <= 4 ? 1u : 2u))
        return fail(p, k, path, "unknown key (did you mean \"%s\"?)", f[best].key);
    char list[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < nf && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", f[i].key);
    return fail(p, k, path, "unknown key (expected one of: %s)", list);
}

/* Indexes map's values by f[].key into vals[] (NULL = absent); an unknown or
 * repeated key is an error. A null map is an empty section. */
static int collect(parse_t *p, const yaml_node_t *map, const char *path, const field_t *f,
                   size_t nf, yaml_node_t **vals)
{
    yaml_node_t *keys[MAX_FIELDS] = {0};
    TG_ASSERT(nf <= MAX_FIELDS);
    memset(vals, 0, nf * sizeof *vals);
    if (is_null(map)) return 0;
    if (map->type != YAML_MAPPING_NODE)
        return fail(p, map, path, "expected a mapping, found %s", node_what(map));
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = node_at(p, pr->key), *v = node_at(p, pr->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(p, k, path, "keys must be plain names, found %s", node_what(k));
        const char *ks = (const char *)k->data.scalar.value;
        char sub[KEYPATH];
        join(sub, path, ks);
        size_t i = 0;
        while (i < nf && strcmp(f[i].key, ks))
            i++;
        if (i == nf) return unknown_key(p, k, sub, ks, f, nf);
        if (vals[i]) return fail(p, k, sub, "duplicate key (first at line %lu)", line_of(keys[i]));
        vals[i] = v;
        keys[i] = k;
    }
    return 0;
}

/* Parses map's keys into base + f[].off. vals (nf entries) receives the value
 * nodes so the caller can check required keys and point at lines. */
static int parse_fields(parse_t *p, const yaml_node_t *map, const char *path, const field_t *f,
                        size_t nf, void *base, yaml_node_t **vals)
{
    if (collect(p, map, path, f, nf, vals) < 0) return -1;
    for (size_t i = 0; i < nf; i++) {
        if (!vals[i] || f[i].kind == V_SECTION) continue;
        char sub[KEYPATH];
        join(sub, path, f[i].key);
        if (set_value(p, vals[i], sub, f[i].kind, (char *)base + f[i].off) < 0) return -1;
    }
    return 0;
}

/* The value node of key in map, or NULL. */
static yaml_node_t *find_key(parse_t *p, const yaml_node_t *map, const char *key)
{
    if (map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = node_at(p, pr->key);
        if (k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
            return node_at(p, pr->value);
    }
    return NULL;
}

static int missing(parse_t *p, const yaml_node_t *map, const char *path, const char *key)
{
    char sub[KEYPATH];
    join(sub, path, key);
    return fail(p, map, sub, "required key is missing");
}

/* ---- upstreams --------------------------------------------------------- */

static int set_targets(parse_t *p, const yaml_node_t *n, const char *path, tg_upstream_conf_t *u)
{
    if (n->type != YAML_SEQUENCE_NODE || is_null(n))
        return fail(p, n, path, "expected a list of URLs, e.g. [https://api.example.com], found %s",
                    is_null(n) ? "nothing" : node_what(n));
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) return fail(p, n, path, "needs at least one target");
    u->targets = calloc(cnt, sizeof *u->targets);
    if (!u->targets) return oom(p, n, path);
    u->ntargets = cnt;
    for (size_t i = 0; i < cnt; i++) {
        tg_target_t *t = &u->targets[i];
        atomic_init(&t->fails, 0);
        atomic_init(&t->down_until_us, 0);
        yaml_node_t *item = node_at(p, n->data.sequence.items.start[i]);
        char sub[KEYPATH];
        keypath(sub, "%s[%zu]", path, i);
        if (get_target(p, item, sub, &t->url) < 0) return -1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(u->targets[j].url, t->url))
                return fail(p, item, sub, "duplicate target \"%s\"", t->url);
    }
    return 0;
}

static int valid_token(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s))) return 0;
    return 1;
}

/* A list of CIDRs ("10.0.0.0/8", "::1"), parsed by policy/iprules. */
static int set_cidrs(parse_t *p, const yaml_node_t *n, const char *path, tg_cidr_list_t *l)
{
    if (is_null(n)) return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(p, n, path, "expected a list of addresses or CIDRs, found %s", node_what(n));
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *item = node_at(p, n->data.sequence.items.start[i]);
        char sub[KEYPATH], *v;
        keypath(sub, "%s[%zu]", path, i);
        if (scalar(p, item, sub, "an address or CIDR", &v) < 0) return -1;
        tg_cidr_t c;
        tg_err_t e;
        int rc = tg_cidr_parse(v, &c, &e);
        free(v);
        if (rc != 0) return fail(p, item, sub, "%s", e.msg);
        if (tg_cidr_list_add(l, &c) != 0) return oom(p, item, sub);
    }
    return 0;
}

static int set_headers(parse_t *p, const yaml_node_t *n, const char *path, tg_upstream_conf_t *u)
{
    static const char *const managed[] = {
        "content-length", "transfer-encoding", "connection", "upgrade", "te", "keep-alive"};
    if (is_null(n)) return 0;
    if (n->type != YAML_MAPPING_NODE)
        return fail(p, n, path, "expected a mapping of header names to values, found %s",
                    node_what(n));
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (cnt == 0) return 0;
    u->headers = calloc(cnt, sizeof *u->headers);
    if (!u->headers) return oom(p, n, path);
    u->nheaders = cnt;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *pr = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = node_at(p, pr->key), *v = node_at(p, pr->value);
        tg_header_conf_t *h = &u->headers[i];
        if (scalar(p, k, path, "a header name", &h->name) < 0) return -1;
        char sub[KEYPATH];
        join(sub, path, h->name);
        if (!valid_token(h->name)) return fail(p, k, sub, "bad header name \"%.*s\"", 64, h->name);
        for (size_t j = 0; j < sizeof managed / sizeof managed[0]; j++)
            if (!strcasecmp(h->name, managed[j]))
                return fail(p, k, sub, "%s is managed by the proxy and cannot be set", h->name);
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(u->headers[j].name, h->name))
                return fail(p, k, sub, "duplicate header (header names ignore case)");
        h->cred_at = -1;
        p->files_ok = 1;
        int rc = scalar(p, v, sub, "a header value", &h->value);
        p->files_ok = 0;
        if (rc < 0) return -1;
        size_t len = strlen(h->value);
        if (strpbrk(h->value, "\r\n"))
            return fail(p, v, sub, "value must not contain a line break");
        size_t bad = bad_header_byte(h->value, len);
        if (bad < len)
            return fail(p, v, sub, "value has a control character (at byte %zu)", bad + 1);
        const char *mark = strstr(h->value, TG_CRED_MARK);
        if (mark) {
            if (strstr(mark + 1, TG_CRED_MARK))
                return fail(p, v, sub, "%s may appear once in a value", TG_CRED_MARK);
            h->cred_at = (int)(mark - h->value);
        }
    }
    return 0;
}

#define MAX_CREDENTIALS 64

/* credentials: [VALUE, ...] (each usually "${file:/run/secrets/NAME}"), taken in turn by the
 * headers whose value holds {credential} (config/credential.h). A value is never echoed. */
static int set_credentials(parse_t *p, const yaml_node_t *n, const char *path,
                           tg_upstream_conf_t *u)
{
    if (n->type != YAML_SEQUENCE_NODE || is_null(n))
        return fail(p, n, path,
                    "expected a list of credentials, e.g. [\"${file:/run/secrets/key1}\"], "
                    "found %s",
                    is_null(n) ? "nothing" : node_what(n));
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) return fail(p, n, path, "needs at least one credential");
    if (cnt > MAX_CREDENTIALS)
        return fail(p, n, path, "at most %d credentials (found %zu)", MAX_CREDENTIALS, cnt);
    u->credentials = calloc(cnt, sizeof *u->credentials);
    if (!u->credentials) return oom(p, n, path);
    u->ncredentials = cnt;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *item = node_at(p, n->data.sequence.items.start[i]);
        char sub[KEYPATH];
        keypath(sub, "%s[%zu]", path, i);
        p->files_ok = 1;
        int rc = scalar(p, item, sub, "a credential", &u->credentials[i]);
        p->files_ok = 0;
        if (rc < 0) return -1;
        size_t len = strlen(u->credentials[i]);
        if (len == 0) return fail(p, item, sub, "is empty");
        size_t bad = bad_header_byte(u->credentials[i], len); /* (CR and LF among them) */
        if (bad < len) return fail(p, item, sub, "has a control character (at byte %zu)", bad + 1);
        if (len > u->credential_max) u->credential_max = len;
    }
    return 0;
}

/* Credentials without a header to go in, or a {credential} without credentials, is a
 * mistake either way: one would be sent nowhere, the other as the literal text. */
static int check_credentials(parse_t *p, const yaml_node_t *item, const char *sub,
                             const tg_upstream_conf_t *u, const yaml_node_t *creds)
{
    char key[KEYPATH];
    size_t used = 0;
    for (size_t i = 0; i < u->nheaders; i++)
        if (u->headers[i].cred_at >= 0) used++;
    if (u->ncredentials && !used) {
        join(key, sub, "credentials");
        return fail(p, creds, key,
                    "no header takes them: write %s in one, e.g. headers: { Authorization: "
                    "\"Bearer %s\" }",
                    TG_CRED_MARK, TG_CRED_MARK);
    }
    if (used && !u->ncredentials) {
        const yaml_node_t *h = find_key(p, item, "headers");
        join(key, sub, "headers");
        return fail(p, h ? h : item, key, "%s needs %s.credentials: [...]", TG_CRED_MARK, sub);
    }
    return 0;
}

enum { UF_NAME, UF_TARGETS };
static const field_t upstream_fields[] = {
    {"name", V_NAME, offsetof(tg_upstream_conf_t, name)},
    {"targets", V_TARGETS, 0},
    {"headers", V_HEADERS, 0},
    {"connect_timeout", V_MS, offsetof(tg_upstream_conf_t, connect_timeout_ms)},
    {"timeout", V_MS0, offsetof(tg_upstream_conf_t, timeout_ms)},
    {"idle_timeout", V_MS0, offsetof(tg_upstream_conf_t, idle_timeout_ms)},
    {"max_fails", V_INT1, offsetof(tg_upstream_conf_t, max_fails)},
    {"fail_timeout", V_MS, offsetof(tg_upstream_conf_t, fail_timeout_ms)},
    {"ca_file", V_PATH, offsetof(tg_upstream_conf_t, ca_file)},
    {"credentials", V_SECTION, 0}, /* set_credentials: UF_CREDENTIALS */
};
enum { UF_CREDENTIALS = NFIELDS(upstream_fields) - 1 };

static int parse_upstreams(parse_t *p, const yaml_node_t *seq, tg_config_t *c)
{
    const char *path = "upstreams";
    if (!seq || is_null(seq)) return 0;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(p, seq, path, "expected a list of upstreams, found %s", node_what(seq));
    size_t cnt = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (cnt == 0) return 0;
    c->upstreams = calloc(cnt, sizeof *c->upstreams);
    if (!c->upstreams) return oom(p, seq, path);
    c->nupstreams = cnt;
    for (size_t i = 0; i < cnt; i++) {
        tg_upstream_conf_t *u = &c->upstreams[i];
        u->connect_timeout_ms = 5000;
        u->timeout_ms = 60000;
        u->idle_timeout_ms = 30000;
        u->max_fails = 3;
        u->fail_timeout_ms = 10000;
        atomic_init(&u->rr, 0);
        atomic_init(&u->cred_rr, 0);
    }
    for (size_t i = 0; i < cnt; i++) {
        tg_upstream_conf_t *u = &c->upstreams[i];
        yaml_node_t *item = node_at(p, seq->data.sequence.items.start[i]), *vals[MAX_FIELDS];
        char sub[KEYPATH], key[KEYPATH];
        keypath(sub, "%s[%zu]", path, i);
        if (item->type != YAML_MAPPING_NODE)
            return fail(p, item, sub, "expected a mapping with name and targets, found %s",
                        node_what(item));
        if (parse_fields(p, item, sub, upstream_fields, NFIELDS(upstream_fields), u, vals) < 0)
            return -1;
        if (!vals[UF_NAME]) return missing(p, item, sub, "name");
        if (!vals[UF_TARGETS]) return missing(p, item, sub, "targets");
        join(key, sub, "credentials");
        if (vals[UF_CREDENTIALS] && set_credentials(p, vals[UF_CREDENTIALS], key, u) < 0) return -1;
        if (check_credentials(p, item, sub, u, vals[UF_CREDENTIALS]) < 0) return -1;
        if (u->ca_file && access(u->ca_file, R_OK) != 0) {
            join(key, sub, "ca_file");
            return fail(p, find_key(p, item, "ca_file"), key, "cannot read \"%s\": %s", u->ca_file,
                        strerror(errno));
        }
        join(key, sub, "name");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->upstreams[j].name, u->name)) {
                yaml_node_t *first = node_at(p, seq->data.sequence.items.start[j]);
                yaml_node_t *fn = find_key(p, first, "name");
                return fail(p, vals[UF_NAME], key,
                            "duplicate upstream name \"%s\" (first at line %lu)", u->name,
                            line_of(fn ? fn : first));
            }
    }
    return 0;
}

/* ---- routes ------------------------------------------------------------ */

enum { RF_NAME, RF_PREFIX, RF_UPSTREAM, RF_KIND, RF_AUTH };
static const field_t route_fields[] = {
    {"name", V_NAME, offsetof(tg_route_conf_t, name)},
    {"path_prefix", V_PREFIX, offsetof(tg_route_conf_t, path_prefix)},
    {"upstream", V_NAME, offsetof(tg_route_conf_t, upstream)},
    {"kind", V_KIND, offsetof(tg_route_conf_t, kind)},
    {"auth", V_SECTION, 0}, /* get_auth */
    {"signed", V_SIGNED, offsetof(tg_route_conf_t, signed_mode)},
};

static int get_auth(parse_t *p, const yaml_node_t *n, const char *path, unsigned *out);

static int parse_routes(parse_t *p, const yaml_node_t *seq, tg_config_t *c)
{
    const char *path = "routes";
    if (!seq || is_null(seq)) return 0;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(p, seq, path, "expected a list of routes, found %s", node_what(seq));
    size_t cnt = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (cnt == 0) return 0;
    c->routes = calloc(cnt, sizeof *c->routes);
    if (!c->routes) return oom(p, seq, path);
    c->nroutes = cnt;
    for (size_t i = 0; i < cnt; i++) {
        tg_route_conf_t *r = &c->routes[i];
        r->kind = TG_ROUTE_HTTP;
        yaml_node_t *item = node_at(p, seq->data.sequence.items.start[i]), *vals[MAX_FIELDS];
        char sub[KEYPATH], key[KEYPATH];
        keypath(sub, "%s[%zu]", path, i);
        if (item->type != YAML_MAPPING_NODE)
            return fail(p, item, sub,
                        "expected a mapping with name, path_prefix and upstream, found %s",
                        node_what(item));
        if (parse_fields(p, item, sub, route_fields, NFIELDS(route_fields), r, vals) < 0) return -1;
        if (!vals[RF_NAME]) return missing(p, item, sub, "name");
        if (!vals[RF_PREFIX]) return missing(p, item, sub, "path_prefix");
        if (!vals[RF_UPSTREAM]) return missing(p, item, sub, "upstream");
        if (vals[RF_AUTH]) {
            join(key, sub, "auth");
            if (get_auth(p, vals[RF_AUTH], key, &r->auth) < 0) return -1;
            c->auth_per_route = 1;
        }
        for (size_t j = 0; j < i; j++) {
            yaml_node_t *first = node_at(p, seq->data.sequence.items.start[j]), *fn;
            if (!strcmp(c->routes[j].name, r->name)) {
                fn = find_key(p, first, "name");
                join(key, sub, "name");
                return fail(p, vals[RF_NAME], key,
                            "duplicate route name \"%s\" (first at line %lu)", r->name,
                            line_of(fn ? fn : first));
            }
            if (!strcasecmp(c->routes[j].path_prefix, r->path_prefix)) { /* (matched so) */
                join(key, sub, "path_prefix");
                return fail(p, vals[RF_PREFIX], key,
                            "path_prefix \"%s\" is already used by route \"%s\"", r->path_prefix,
                            c->routes[j].name);
            }
        }
        for (size_t j = 0; j < c->nupstreams && !r->up; j++)
            if (!strcmp(c->upstreams[j].name, r->upstream)) r->up = &c->upstreams[j];
        if (!r->up) {
            join(key, sub, "upstream");
            return fail(p, vals[RF_UPSTREAM], key, "no upstream named \"%s\"", r->upstream);
        }
    }
    return 0;
}

/* ---- prices ------------------------------------------------------------ */

/* prices: { models: {NAME: {...}}, routes: {...}, tools: {...} }, each entry one
 * tg_price_row_t effective from the epoch (the store's dated rows override them). */
#define PR(f) offsetof(tg_price_row_t, f)
enum { PM_INPUT, PM_OUTPUT };
static const field_t model_price_fields[] = {
    {"input", V_USD, PR(input_micros)},
    {"output", V_USD, PR(output_micros)},
    {"cached", V_USD, PR(cached_micros)},
    {"cache_write", V_USD, PR(cache_write_micros)},
};
static const field_t route_price_fields[] = {
    {"request", V_USD, PR(request_micros)},
    {"gb", V_USD, PR(gb_micros)},
};
static const field_t tool_price_fields[] = {
    {"call", V_USD, PR(call_micros)},
};
static const field_t prices_fields[] = {
    {"models", V_SECTION, 0},
    {"routes", V_SECTION, 0},
    {"tools", V_SECTION, 0},
};

typedef struct meter_spec {
    const char *key, *meter, *example;
    const field_t *fields;
    size_t nfields;
    size_t max_name;
} meter_spec_t;

static const meter_spec_t meter_specs[] = {
    {"models", "model", "{ input: 0.15, output: 0.60 }", model_price_fields,
     NFIELDS(model_price_fields), MAX_MODEL},
    {"routes", "route", "{ request: 0.0001, gb: 0.09 }", route_price_fields,
     NFIELDS(route_price_fields), MAX_NAME},
    {"tools", "tool", "{ call: 0.002 }", tool_price_fields, NFIELDS(tool_price_fields), MAX_TOOL},
};

static size_t pairs_of(const yaml_node_t *n)
{
    if (!n || n->type != YAML_MAPPING_NODE) return 0;
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

/* Checks the entry name k (already expanded into name); path is the entry's key path. */
static int check_price_name(parse_t *p, const yaml_node_t *k, const char *path,
                            const meter_spec_t *m, const char *name, const tg_config_t *c)
{
    size_t len = strlen(name);
    if (len > m->max_name)
        return fail(p, k, path, "name longer than %zu bytes (an event cannot hold it)",
                    m->max_name);
    for (const char *q = name; *q; q++)
        if ((unsigned char)*q < ' ' || *q == 0x7f)
            return fail(p, k, path, "name must not contain control characters");
    if (strcmp(m->meter, "route") || !strcmp(name, "*")) return 0;
    for (size_t i = 0; i < c->nroutes; i++)
        if (!strcmp(c->routes[i].name, name)) return 0;
    return fail(p, k, path, "no route named \"%s\" (or \"*\" for every route)", name);
}

static int parse_meter_prices(parse_t *p, const yaml_node_t *map, const meter_spec_t *m,
                              tg_config_t *c)
{
    char path[KEYPATH];
    join(path, "prices", m->key);
    if (!map || is_null(map)) return 0;
    if (map->type != YAML_MAPPING_NODE)
        return fail(p, map, path, "expected a mapping of names to prices, e.g. NAME: %s, found %s",
                    m->example, node_what(map));
    size_t first = c->nprices;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = node_at(p, pr->key), *v = node_at(p, pr->value), *vals[MAX_FIELDS];
        char *name, sub[KEYPATH];
        if (scalar(p, k, path, "a name", &name) < 0) return -1;
        if (!*name) {
            free(name);
            return fail(p, k, path, "empty name");
        }
        join(sub, path, name);
        int rc = check_price_name(p, k, sub, m, name, c);
        for (size_t j = first; rc == 0 && j < c->nprices; j++)
            if (!strcmp(c->prices[j].name, name)) {
                yaml_node_t *fk = node_at(p, map->data.mapping.pairs.start[j - first].key);
                rc = fail(p, k, sub, "duplicate key (first at line %lu)", line_of(fk));
            }
        tg_price_row_t *row = &c->prices[c->nprices];
        memset(row, 0, sizeof *row);
        snprintf(row->meter, sizeof row->meter, "%s", m->meter);
        snprintf(row->name, sizeof row->name, "%s", name); /* fits: checked above */
        free(name);
        if (rc < 0) return -1;
        row->input_micros = row->output_micros = row->cached_micros = -1;
        row->cache_write_micros = row->request_micros = row->gb_micros = row->call_micros = -1;
        if (v->type != YAML_MAPPING_NODE || is_null(v))
            return fail(p, v, sub, "expected a mapping of prices, e.g. %s, found %s", m->example,
                        is_null(v) ? "nothing" : node_what(v));
        if (parse_fields(p, v, sub, m->fields, m->nfields, row, vals) < 0) return -1;
        if (m->fields == model_price_fields) {
            if (!vals[PM_INPUT]) return missing(p, v, sub, "input");
            if (!vals[PM_OUTPUT]) return missing(p, v, sub, "output");
        } else if (m->fields == route_price_fields) {
            if (!vals[0] && !vals[1]) return fail(p, v, sub, "give request, gb or both");
        } else if (!vals[0]) {
            return missing(p, v, sub, "call");
        }
        c->nprices++;
    }
    return 0;
}

static int parse_prices(parse_t *p, const yaml_node_t *n, tg_config_t *c)
{
    yaml_node_t *v[MAX_FIELDS] = {0};
    if (!n) return 0;
    if (parse_fields(p, n, "prices", prices_fields, NFIELDS(prices_fields), c, v) < 0) return -1;
    size_t cnt = pairs_of(v[0]) + pairs_of(v[1]) + pairs_of(v[2]);
    if (cnt && !(c->prices = calloc(cnt, sizeof *c->prices))) return oom(p, n, "prices");
    for (size_t i = 0; i < NFIELDS(meter_specs); i++)
        if (parse_meter_prices(p, v[i], &meter_specs[i], c) < 0) return -1;
    return 0;
}

/* ---- the admin token --------------------------------------------------- */

/* The token is a credential: no message shows it (only its length and the rule it breaks),
 * and tollgate keeps only its SHA-256 (the admin hashes what is presented and compares the
 * digests, admin.h). Every copy tollgate made of the text is wiped once hashed; the parsed
 * document and the file's text are wiped too (tg_config_parse, tg_config_load). */

/* src is "" for server.admin_token, "the token in PATH: " for a file. */
static int take_token(parse_t *p, const yaml_node_t *n, const char *path, const char *src,
                      const char *t, size_t len, tg_config_t *c)
{
    if (len < TG_ADMIN_TOKEN_MIN)
        return fail(p, n, path,
                    "%stoo short (%zu bytes; at least %d: `openssl rand -hex 32` makes one)", src,
                    len, TG_ADMIN_TOKEN_MIN);
    if (len > TG_ADMIN_TOKEN_MAX)
        return fail(p, n, path, "%stoo long (%zu bytes; at most %d)", src, len, TG_ADMIN_TOKEN_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
            return fail(p, n, path,
                        "%smust be visible ASCII characters, without spaces or control "
                        "characters (it is sent in an Authorization header)",
                        src);
    unsigned int outlen = sizeof c->server.admin_token_sha256;
    if (EVP_Digest(t, len, c->server.admin_token_sha256, &outlen, EVP_sha256(), NULL) != 1)
        return fail(p, n, path, "cannot hash it (OpenSSL's SHA-256 failed)");
    c->server.admin_token_set = 1;
    return 0;
}

/* The first line of a secret's file (admin_token_file, notify's secret_file,
 * limits.password_file) in buf[b, e), without the whitespace around it (an editor's newline,
 * a `\r\n`); what follows the first line is not read. A regular file only: a FIFO would hold
 * the main thread on reload. Read at every load, so SIGHUP picks up a rotated file. */
typedef struct first_line {
    size_t b, e; /* the line, trimmed */
    size_t got;  /* bytes read */
    int full;    /* buf filled without a newline: the line may go on */
} first_line_t;

/* 0, or -1 with the message. The caller wipes buf. */
static int read_first_line(parse_t *p, const yaml_node_t *n, const char *path, const char *file,
                           char *buf, size_t cap, first_line_t *l)
{
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return fail(p, n, path, "cannot open %s: %s", file, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(p, n, path, "%s is not a regular file", file);
    }
    size_t got = 0;
    int rerr = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rerr = errno;
        if (r <= 0) break;
        got += (size_t)r;
    }
    /* A file rewritten in place while it is read (truncated, then written) could hand us a
     * part of the new secret: its size or time moved, or what we read is not all of it. */
    struct stat after;
    int stat_after = fstat(fd, &after);
    int moved = stat_after != 0 || after.st_size != st.st_size ||
                after.st_mtim.tv_sec != st.st_mtim.tv_sec ||
                after.st_mtim.tv_nsec != st.st_mtim.tv_nsec ||
                (got < cap && (off_t)got != after.st_size);
    close(fd);
    if (rerr) return fail(p, n, path, "cannot read %s: %s", file, strerror(rerr));
    /* A /proc or /sys file passes for a regular one of 0 bytes: one longer than buf read
     * "unchanged", and its first line (a memory map, a process's state) became a secret. */
    if (stat_after == 0 && st.st_size == 0 && after.st_size == 0 && got > 0)
        return fail(p, n, path,
                    "%s is not a regular file (its size is 0 but it reads as text: a /proc or "
                    "/sys file)",
                    file);
    if (moved)
        return fail(p, n, path,
                    "%s changed while it was read (write a new file and rename it over the old "
                    "one)",
                    file);
    const char *nl = memchr(buf, '\n', got);
    l->got = got;
    l->full = !nl && got == cap;
    l->b = 0;
    l->e = nl ? (size_t)(nl - buf) : got;
    while (l->b < l->e && isspace((unsigned char)buf[l->b]))
        l->b++;
    while (l->e > l->b && isspace((unsigned char)buf[l->e - 1]))
        l->e--;
    return 0;
}

static int read_token_file(parse_t *p, const yaml_node_t *n, const char *path, const char *file,
                           tg_config_t *c)
{
    char buf[TG_ADMIN_TOKEN_MAX + 64], src[KEYPATH];
    first_line_t l;
    int rc = read_first_line(p, n, path, file, buf, sizeof buf, &l);
    keypath(src, "the token in %s: ", file);
    if (rc < 0) {
        /* (read_first_line set the message) */
    } else if (l.full)
        rc = fail(p, n, path, "%sfirst line longer than %d bytes", src, TG_ADMIN_TOKEN_MAX);
    else if (l.b == l.e)
        rc = fail(p, n, path, "%s%s", src, l.got ? "the first line is empty" : "the file is empty");
    else
        rc = take_token(p, n, path, src, buf + l.b, l.e - l.b, c);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

/* server.admin_token: TOKEN (or ${ENV}) | server.admin_token_file: PATH; not both. */
static int parse_admin_token(parse_t *p, const yaml_node_t *server, tg_config_t *c)
{
    yaml_node_t *tok = find_key(p, server, "admin_token");
    yaml_node_t *file = find_key(p, server, "admin_token_file");
    if (tok && file) {
        int tok_last = line_of(tok) >= line_of(file);
        return fail(p, tok_last ? tok : file,
                    tok_last ? "server.admin_token" : "server.admin_token_file",
                    "give server.admin_token or server.admin_token_file, not both");
    }
    if (file) {
        if (get_path(p, file, "server.admin_token_file", &c->server.admin_token_file) < 0)
            return -1;
        return read_token_file(p, file, "server.admin_token_file", c->server.admin_token_file, c);
    }
    if (!tok) return 0;
    char *v;
    if (scalar(p, tok, "server.admin_token", "a token of at least 16 characters", &v) < 0)
        return -1;
    size_t len = strlen(v);
    int rc = take_token(p, tok, "server.admin_token", "", v, len, c);
    OPENSSL_cleanse(v, len);
    free(v);
    return rc;
}

/* ---- alarms and actions ------------------------------------------------- */

static const char *const alarm_kind_names[] = {"quota", "error_rate", "latency", "spend_rate",
                                               "queue"};

const char *tg_alarm_kind_name(tg_alarm_kind_t k)
{
    return (unsigned)k < sizeof alarm_kind_names / sizeof alarm_kind_names[0] ? alarm_kind_names[k]
                                                                              : "?";
}

/* A plain decimal number in [min, max] (min excluded when open_min): ratios, factors,
 * quantiles. strtod reads it; "nan", "inf", hex and trailing text are refused. */
static int get_number(parse_t *p, const yaml_node_t *n, const char *path, double min, int open_min,
                      double max, double *out)
{
    char *v;
    if (scalar(p, n, path, "a number", &v) < 0) return -1;
    int rc = -1;
    char *end = NULL;
    int plain = *v && strspn(v, "0123456789.-+eE") == strlen(v);
    errno = 0;
    double x = plain ? strtod(v, &end) : 0;
    if (!plain || !end || *end || errno)
        fail(p, n, path, "expected a number, got \"%.*s\"", 64, v);
    else if (x < min || (open_min && x == min) || x > max)
        fail(p, n, path, "must be %s %g and at most %g (got %s)",
             open_min ? "greater than" : "at least", min, max, v);
    else {
        *out = x;
        rc = 0;
    }
    free(v);
    return rc;
}

/* One of names[0..n) by its text; *out = its index. */
static int get_word(parse_t *p, const yaml_node_t *n, const char *path, const char *what,
                    const char *const *names, int nn, int *out)
{
    char *v;
    if (scalar(p, n, path, what, &v) < 0) return -1;
    for (int i = 0; i < nn; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            free(v);
            return 0;
        }
    char list[160] = "";
    size_t used = 0;
    for (int i = 0; i < nn && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    fail(p, n, path, "unknown %s \"%.*s\" (expected one of: %s)", what, 64, v, list);
    free(v);
    return -1;
}

#define MAX_ALARM_WINDOW_MS (24L * 3600 * 1000) /* the engine's ring covers a day at most */

enum {
    AF_NAME,
    AF_KIND,
    AF_THRESHOLD,
    AF_WINDOW,
    AF_QUANTILE,
    AF_FACTOR,
    AF_MIN_REQ,
    AF_MIN_MS,
    AF_FOR,
    AF_MARGIN,
    AF_SEVERITY
};
static const field_t alarm_fields[] = {
    {"name", V_NAME, offsetof(tg_alarm_conf_t, name)},
    {"kind", V_SECTION, 0},
    {"threshold", V_SECTION, 0},
    {"window", V_MS, offsetof(tg_alarm_conf_t, window_ms)},
    {"quantile", V_SECTION, 0},
    {"baseline_factor", V_SECTION, 0},
    {"min_requests", V_INT0, offsetof(tg_alarm_conf_t, min_requests)},
    {"min_ms", V_SECTION, 0},
    {"for", V_SECTION, 0},
    {"resolve_margin", V_SECTION, 0},
    {"severity", V_SECTION, 0},
};

static int parse_alarm(parse_t *p, const yaml_node_t *item, const char *sub, tg_alarm_conf_t *a)
{
    static const char *const severities[] = {"warning", "critical"};
    yaml_node_t *v[MAX_FIELDS];
    char key[KEYPATH];
    if (item->type != YAML_MAPPING_NODE)
        return fail(p, item, sub, "expected a mapping with name and kind, found %s",
                    node_what(item));
    if (parse_fields(p, item, sub, alarm_fields, NFIELDS(alarm_fields), a, v) < 0) return -1;
    if (!v[AF_NAME]) return missing(p, item, sub, "name");
    if (!v[AF_KIND]) return missing(p, item, sub, "kind");
    int k = 0, sev = 0;
    unsigned long long x;
    join(key, sub, "kind");
    if (get_word(p, v[AF_KIND], key, "alarm kind", alarm_kind_names, 5, &k) < 0) return -1;
    a->kind = (tg_alarm_kind_t)k;
    int windowed = k == TG_ALARM_ERROR_RATE || k == TG_ALARM_LATENCY || k == TG_ALARM_SPEND_RATE;
    /* Keys that mean nothing for the kind are refused, not ignored. */
    static const struct {
        int field, kinds; /* bit per kind where the key is allowed */
    } allowed[] = {
        {AF_WINDOW, 1 << TG_ALARM_ERROR_RATE | 1 << TG_ALARM_LATENCY | 1 << TG_ALARM_SPEND_RATE},
        {AF_QUANTILE, 1 << TG_ALARM_LATENCY},
        {AF_FACTOR, 1 << TG_ALARM_ERROR_RATE | 1 << TG_ALARM_LATENCY | 1 << TG_ALARM_SPEND_RATE},
        {AF_MIN_REQ, 1 << TG_ALARM_ERROR_RATE | 1 << TG_ALARM_LATENCY | 1 << TG_ALARM_SPEND_RATE},
        {AF_MIN_MS, 1 << TG_ALARM_LATENCY},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (v[allowed[i].field] && !(allowed[i].kinds & (1 << k))) {
            join(key, sub, alarm_fields[allowed[i].field].key);
            return fail(p, v[allowed[i].field], key, "not used by kind %s alarms",
                        alarm_kind_names[k]);
        }
    if (v[AF_THRESHOLD]) {
        join(key, sub, "threshold");
        double max = k == TG_ALARM_ERROR_RATE                     ? 1
                     : k == TG_ALARM_QUOTA || k == TG_ALARM_QUEUE ? 100
                                                                  : 1e15;
        if (get_number(p, v[AF_THRESHOLD], key, 0, 1, max, &a->threshold) < 0) return -1;
    }
    if (v[AF_QUANTILE]) {
        join(key, sub, "quantile");
        if (get_number(p, v[AF_QUANTILE], key, 0, 1, 0.999, &a->quantile) < 0) return -1;
    }
    if (v[AF_FACTOR]) {
        join(key, sub, "baseline_factor");
        if (get_number(p, v[AF_FACTOR], key, 1, 0, 1000, &a->baseline_factor) < 0) return -1;
    }
    if (v[AF_MIN_MS]) {
        join(key, sub, "min_ms");
        if (get_uint(p, v[AF_MIN_MS], key, 0, 3600000, &x) < 0) return -1;
        a->min_ms = (long)x;
    }
    if (v[AF_FOR]) {
        join(key, sub, "for");
        if (get_uint(p, v[AF_FOR], key, 1, 1000, &x) < 0) return -1;
        a->for_evals = (int)x;
    }
    if (v[AF_MARGIN]) {
        join(key, sub, "resolve_margin");
        if (get_number(p, v[AF_MARGIN], key, 0, 0, 0.99, &a->resolve_margin) < 0) return -1;
    }
    join(key, sub, "severity");
    if (v[AF_SEVERITY] && get_word(p, v[AF_SEVERITY], key, "severity", severities, 2, &sev) < 0)
        return -1;
    if (!(a->severity = strdup(severities[sev]))) return oom(p, item, sub);
    if (windowed && a->window_ms > MAX_ALARM_WINDOW_MS) {
        join(key, sub, "window");
        return fail(p, v[AF_WINDOW], key, "at most 24h (got %ld s)", a->window_ms / 1000);
    }
    if (!windowed) a->window_ms = 0;
    if ((k == TG_ALARM_QUOTA || k == TG_ALARM_QUEUE) && !v[AF_THRESHOLD])
        return missing(p, item, sub, "threshold");
    if (windowed && !v[AF_THRESHOLD] && !v[AF_FACTOR])
        return fail(p, item, sub, "give threshold, baseline_factor or both (kind %s)",
                    alarm_kind_names[k]);
    return 0;
}

static int parse_alarms(parse_t *p, const yaml_node_t *seq, tg_config_t *c)
{
    const char *path = "alarms";
    if (!seq || is_null(seq)) return 0;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(p, seq, path, "expected a list of alarm rules, found %s", node_what(seq));
    size_t cnt = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (cnt == 0) return 0;
    if (cnt > 64) return fail(p, seq, path, "at most 64 alarm rules (got %zu)", cnt);
    c->alarms = calloc(cnt, sizeof *c->alarms);
    if (!c->alarms) return oom(p, seq, path);
    c->nalarms = cnt;
    for (size_t i = 0; i < cnt; i++) {
        tg_alarm_conf_t *a = &c->alarms[i];
        a->window_ms = 5 * 60 * 1000;
        a->quantile = 0.95;
        a->min_requests = 20;
        a->for_evals = 1;
        a->resolve_margin = 0.1;
    }
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *item = node_at(p, seq->data.sequence.items.start[i]);
        char sub[KEYPATH], key[KEYPATH];
        keypath(sub, "%s[%zu]", path, i);
        if (parse_alarm(p, item, sub, &c->alarms[i]) < 0) return -1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->alarms[j].name, c->alarms[i].name)) {
                yaml_node_t *first = node_at(p, seq->data.sequence.items.start[j]);
                yaml_node_t *fn = find_key(p, first, "name");
                join(key, sub, "name");
                return fail(p, find_key(p, item, "name"), key,
                            "duplicate alarm name \"%s\" (first at line %lu)", c->alarms[i].name,
                            line_of(fn ? fn : first));
            }
    }
    return 0;
}

enum { AC_ALARM, AC_AT, AC_DO, AC_FACTOR };
static const field_t action_fields[] = {
    {"alarm", V_NAME, offsetof(tg_action_conf_t, alarm)},
    {"at", V_SECTION, 0},
    {"do", V_SECTION, 0},
    {"factor", V_SECTION, 0},
};

static int parse_actions(parse_t *p, const yaml_node_t *seq, tg_config_t *c)
{
    static const char *const ats[] = {"pending", "firing"};
    static const char *const dos[] = {"throttle", "pause"};
    const char *path = "actions";
    if (!seq || is_null(seq)) return 0;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(p, seq, path, "expected a list of actions, found %s", node_what(seq));
    size_t cnt = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (cnt == 0) return 0;
    if (cnt > 64) return fail(p, seq, path, "at most 64 actions (got %zu)", cnt);
    c->actions = calloc(cnt, sizeof *c->actions);
    if (!c->actions) return oom(p, seq, path);
    c->nactions = cnt;
    for (size_t i = 0; i < cnt; i++) {
        tg_action_conf_t *a = &c->actions[i];
        yaml_node_t *item = node_at(p, seq->data.sequence.items.start[i]), *v[MAX_FIELDS];
        char sub[KEYPATH], key[KEYPATH];
        keypath(sub, "%s[%zu]", path, i);
        if (item->type != YAML_MAPPING_NODE)
            return fail(p, item, sub, "expected a mapping with alarm and do, found %s",
                        node_what(item));
        if (parse_fields(p, item, sub, action_fields, NFIELDS(action_fields), a, v) < 0) return -1;
        if (!v[AC_ALARM]) return missing(p, item, sub, "alarm");
        if (!v[AC_DO]) return missing(p, item, sub, "do");
        int at = 1, what = 0;
        join(key, sub, "at");
        if (v[AC_AT] && get_word(p, v[AC_AT], key, "state", ats, 2, &at) < 0) return -1;
        a->at_firing = at;
        join(key, sub, "do");
        if (get_word(p, v[AC_DO], key, "action", dos, 2, &what) < 0) return -1;
        a->what = (tg_action_do_t)what;
        join(key, sub, "factor");
        if (a->what == TG_ACTION_THROTTLE) {
            if (!v[AC_FACTOR]) return missing(p, item, sub, "factor");
            if (get_number(p, v[AC_FACTOR], key, 0, 1, 1, &a->factor) < 0) return -1;
        } else if (v[AC_FACTOR]) {
            return fail(p, v[AC_FACTOR], key, "only a throttle takes a factor");
        }
        const tg_alarm_conf_t *rule = NULL;
        for (size_t j = 0; j < c->nalarms && !rule; j++)
            if (!strcmp(c->alarms[j].name, a->alarm)) rule = &c->alarms[j];
        join(key, sub, "alarm");
        if (!rule) return fail(p, v[AC_ALARM], key, "no alarm named \"%s\"", a->alarm);
        if (rule->kind == TG_ALARM_QUEUE)
            return fail(p, v[AC_ALARM], key,
                        "alarm \"%s\" is process-wide (kind queue): actions act on a tenant",
                        a->alarm);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->actions[j].alarm, a->alarm) && c->actions[j].what == a->what)
                return fail(p, v[AC_DO], key, "alarm \"%s\" already has a %s action", a->alarm,
                            dos[what]);
    }
    return 0;
}

/* ---- secrets in files --------------------------------------------------- */

#define MAX_SECRET 1024

/* The first line of file (read_first_line) as *out (malloc'd, *len bytes): notify's
 * secret_file, limits.password_file. what names it in messages, which never show it. */
static int read_secret_file(parse_t *p, const yaml_node_t *n, const char *path, const char *file,
                            const char *what, char **out, size_t *len)
{
    char buf[MAX_SECRET + 64];
    first_line_t l;
    int rc = read_first_line(p, n, path, file, buf, sizeof buf, &l);
    if (rc < 0) {
        /* (read_first_line set the message) */
    } else if (l.b == l.e)
        rc = fail(p, n, path, "the %s in %s: the first line is empty", what, file);
    else if (l.e - l.b > MAX_SECRET)
        rc = fail(p, n, path, "the %s in %s: longer than %d bytes", what, file, MAX_SECRET);
    else if (!(*out = malloc(l.e - l.b + 1)))
        rc = oom(p, n, path);
    else {
        memcpy(*out, buf + l.b, l.e - l.b);
        (*out)[l.e - l.b] = '\0';
        *len = l.e - l.b;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

#define MAX_FILE_SECRET 8192 /* a ${file:} value: API keys are ~200 bytes, tokens a few KiB */

/* ${file:PATH}: the first line of file appended to b. Every refusal names the file, never
 * its content: missing, unreadable, not a regular file, empty (a file being rewritten in
 * place is empty for a moment: a reload refused then keeps the running config, whose
 * credentials go on), changed while read, too long, or a byte a header cannot carry. */
static int add_file_line(parse_t *p, const yaml_node_t *n, const char *path, const char *file,
                         tg_buf_t *b)
{
    char buf[MAX_FILE_SECRET + 64];
    first_line_t l;
    int rc = read_first_line(p, n, path, file, buf, sizeof buf, &l);
    size_t bad = rc < 0 ? 0 : bad_header_byte(buf + l.b, l.e - l.b);
    if (rc < 0) {
        /* (read_first_line set the message) */
    } else if (l.b == l.e)
        rc = fail(p, n, path, "%s: %s", file,
                  l.got ? "the first line is empty" : "the file is empty");
    else if (l.full || l.e - l.b > MAX_FILE_SECRET)
        rc = fail(p, n, path, "%s: the first line is longer than %d bytes", file, MAX_FILE_SECRET);
    else if (bad < l.e - l.b)
        rc = fail(p, n, path,
                  "%s: the first line has a control character (at byte %zu), not allowed in a "
                  "header value",
                  file, bad + 1);
    else if ((rc = tg_buf_add(b, buf + l.b, l.e - l.b)) != TG_BUF_OK)
        rc = rc == TG_BUF_TOOBIG
                 ? fail(p, n, path, "longer than %u MiB with its files read", MAX_FILE_BYTES >> 20)
                 : oom(p, n, path);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

/* limits.password_file: the Redis password, the first line of the file taken as it is (not
 * percent-decoded), for a redis:// URL without one; and the check that a user in the URL
 * has a password from one or the other. Read at every load, but the backend and its
 * password take effect on restart (a reload that changes them says so). */
static int parse_redis_password(parse_t *p, const yaml_node_t *limits, tg_config_t *c)
{
    yaml_node_t *file = limits ? find_key(p, limits, "password_file") : NULL;
    const char *path = "limits.password_file";
    if (file) {
        if (!c->limits.redis) return fail(p, file, path, "only with a redis:// limits.backend");
        if (c->limits.redis_password)
            return fail(p, file, path,
                        "give the password in limits.backend or limits.password_file, not both");
        size_t len;
        if (get_path(p, file, path, &c->limits.redis_pw_file) < 0 ||
            read_secret_file(p, file, path, c->limits.redis_pw_file, "password",
                             &c->limits.redis_password, &len) < 0)
            return -1;
    }
    if (c->limits.redis_user && !c->limits.redis_password)
        return fail(p, find_key(p, limits, "backend"), "limits.backend",
                    "a user needs a password: redis://USER:PASSWORD@HOST (or "
                    "limits.password_file)");
    return 0;
}

/* ---- encryption and signing (issue 14: keys) ---------------------------- */

/* audit.bodies: encrypt seals the bodies with the KEK: refused without one. */
static int check_bodies(parse_t *p, const yaml_node_t *audit, const tg_config_t *c)
{
    if (c->audit_bodies != TG_BODIES_ENCRYPT || c->encryption.has_kek) return 0;
    return fail(p, find_key(p, audit, "bodies"), "audit.bodies",
                "encrypt needs encryption.kek_file or encryption.kek_env (the bodies are "
                "sealed by the KEK)");
}

/* encryption: { kek_file: PATH } or { kek_env: NAME }: the KEK (crypt/crypt.h), read now,
 * its text wiped; an unreadable or malformed key is an error naming the file or variable,
 * never showing the text. */
static const field_t encryption_fields[] = {
    {"kek_file", V_PATH, offsetof(tg_config_t, encryption.kek_file)},
    {"kek_env", V_NAME, offsetof(tg_config_t, encryption.kek_env)},
};

static int parse_encryption(parse_t *p, const yaml_node_t *n, tg_config_t *c)
{
    yaml_node_t *v[MAX_FIELDS] = {0};
    if (!n) return 0;
    if (parse_fields(p, n, "encryption", encryption_fields, NFIELDS(encryption_fields), c, v) < 0)
        return -1;
    if (!v[0] == !v[1]) return fail(p, n, "encryption", "give one of kek_file or kek_env");
    char what[300];
    tg_err_t err;
    int rc;
    if (v[0]) {
        char *text = NULL;
        size_t len = 0;
        if (read_secret_file(p, v[0], "encryption.kek_file", c->encryption.kek_file, "key", &text,
                             &len) < 0)
            return -1;
        snprintf(what, sizeof what, "the key in %s", c->encryption.kek_file);
        rc = tg_kek_parse(text, len, what, &c->encryption.kek, &err);
        tg_crypt_free(text, len);
        if (rc != 0) return fail(p, v[0], "encryption.kek_file", "%s", err.msg);
    } else {
        const char *text = getenv(c->encryption.kek_env);
        if (!text || !*text)
            return fail(p, v[1], "encryption.kek_env", "$%s is not set or empty",
                        c->encryption.kek_env);
        snprintf(what, sizeof what, "$%s", c->encryption.kek_env);
        if (tg_kek_parse(text, strlen(text), what, &c->encryption.kek, &err) != 0)
            return fail(p, v[1], "encryption.kek_env", "%s", err.msg);
    }
    c->encryption.has_kek = 1;
    return 0;
}

/* signing: { window: 300s, replay_cache: 100000, required_tenants: [ID, ...] } */
enum { SG_WINDOW, SG_CACHE, SG_TENANTS };
static const field_t signing_fields[] = {
    {"window", V_MS, offsetof(tg_config_t, signing.window_ms)},
    {"replay_cache", V_COUNT, offsetof(tg_config_t, signing.replay_cache)},
    {"required_tenants", V_SECTION, 0},
};

static int parse_signing(parse_t *p, const yaml_node_t *n, const yaml_node_t *routes,
                         tg_config_t *c)
{
    yaml_node_t *v[MAX_FIELDS] = {0};
    if (n && parse_fields(p, n, "signing", signing_fields, NFIELDS(signing_fields), c, v) < 0)
        return -1;
    if (c->signing.window_ms < 1000 || c->signing.window_ms > 3600000)
        return fail(p, v[SG_WINDOW], "signing.window", "between 1s and 1h");
    /* About 56 bytes an entry (auth/replay.c): 10 million is 560 MB, allocated whole. */
    if (c->signing.replay_cache > 10000000)
        return fail(p, v[SG_CACHE], "signing.replay_cache", "at most 10000000");
    const yaml_node_t *seq = v[SG_TENANTS];
    if (seq && !is_null(seq)) {
        const char *path = "signing.required_tenants";
        if (seq->type != YAML_SEQUENCE_NODE)
            return fail(p, seq, path, "expected a list of tenant ids, found %s", node_what(seq));
        size_t cnt = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
        c->signing.required_tenants = calloc(cnt ? cnt : 1, sizeof(char *));
        if (!c->signing.required_tenants) return oom(p, seq, path);
        for (size_t i = 0; i < cnt; i++) {
            char sub[KEYPATH];
            keypath(sub, "%s[%zu]", path, i);
            yaml_node_t *item = node_at(p, seq->data.sequence.items.start[i]);
            char *id;
            if (scalar(p, item, sub, "a tenant id", &id) < 0) return -1;
            c->signing.required_tenants[c->signing.nrequired_tenants++] = id;
            if (!*id || strlen(id) >= TG_TENANT_SIZE)
                return fail(p, item, sub, "a tenant id of 1-%d bytes", TG_TENANT_SIZE - 1);
        }
    }
    /* Signing secrets are sealed by the KEK: without one no signature can be checked. */
    if (c->encryption.has_kek) return 0;
    if (c->signing.nrequired_tenants)
        return fail(p, seq, "signing.required_tenants",
                    "needs encryption.kek_file or encryption.kek_env (signing secrets are "
                    "sealed by it)");
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].signed_mode != TG_SIGNED_OFF) {
            const yaml_node_t *item = node_at(p, routes->data.sequence.items.start[i]);
            char sub[KEYPATH];
            keypath(sub, "routes[%zu].signed", i);
            return fail(p, find_key(p, item, "signed"), sub,
                        "needs encryption.kek_file or encryption.kek_env (signing secrets are "
                        "sealed by it)");
        }
    return 0;
}

int tg_config_tenant_signs(const tg_config_t *c, const char *tenant)
{
    for (size_t i = 0; i < c->signing.nrequired_tenants; i++)
        if (!strcmp(c->signing.required_tenants[i], tenant)) return 1;
    return 0;
}

/* ---- notify ------------------------------------------------------------ */

/* notify: [{ type: webhook, url, secret | secret_file }, { type: alertmanager, url },
 *          { type: exec, command: PATH | [PATH, ARG...] }], each with optional name and
 * timeout. URLs and secrets are never echoed in a message (a webhook URL often carries
 * a token in its path). */
static const char *const notifier_types[] = {"webhook", "alertmanager", "exec"};

const char *tg_notifier_type_name(tg_notifier_type_t t)
{
    if ((unsigned)t < NFIELDS(notifier_types)) return notifier_types[t];
    return "unknown";
}

enum { NF_TYPE, NF_NAME, NF_URL, NF_SECRET, NF_SECRET_FILE, NF_COMMAND, NF_TIMEOUT, NF_RESEND };
static const field_t notifier_fields[] = {
    {"type", V_SECTION, 0},
    {"name", V_NAME, offsetof(tg_notifier_conf_t, name)},
    {"url", V_SECTION, 0},
    {"secret", V_SECTION, 0},
    {"secret_file", V_SECTION, 0},
    {"command", V_SECTION, 0},
    {"timeout", V_MS, offsetof(tg_notifier_conf_t, timeout_ms)},
    {"resend", V_MS0, offsetof(tg_notifier_conf_t, resend_ms)},
};

#define MAX_ARGS    64
#define MAX_URL     2048
#define MAX_TIMEOUT 60000

/* http:// or https://, a valid host[:port] (after any user:password@), no fragment. */
static int get_notify_url(parse_t *p, const yaml_node_t *n, const char *path, char **out)
{
    char *v;
    if (scalar(p, n, path, "an http:// or https:// URL", &v) < 0) return -1;
    size_t skip = 0;
    if (!strncasecmp(v, TG_LIT("http://")))
        skip = TG_LIT_LEN("http://");
    else if (!strncasecmp(v, TG_LIT("https://")))
        skip = TG_LIT_LEN("https://");
    const char *auth = v + skip, *problem = NULL;
    size_t an = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', an);
    if (at) {
        an -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    if (!skip)
        problem = "must start with http:// or https://";
    else if (strlen(v) > MAX_URL)
        problem = "longer than 2048 bytes";
    else if (strchr(v, '#'))
        problem = "no fragment (#) allowed";
    else if (strpbrk(v, " \t\r\n"))
        problem = "must not contain spaces or line breaks";
    else
        problem = check_hostport(auth, an, 0);
    if (problem) {
        fail(p, n, path, "bad URL: %s (the URL is not shown: it may hold a credential)", problem);
        OPENSSL_cleanse(v, strlen(v));
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_secret(parse_t *p, const yaml_node_t *n, const char *path, tg_notifier_conf_t *nc)
{
    char *v;
    if (scalar(p, n, path, "a secret (e.g. \"${HOOK_SECRET}\")", &v) < 0) return -1;
    size_t len = strlen(v);
    if (len == 0 || len > MAX_SECRET) {
        OPENSSL_cleanse(v, len);
        free(v);
        return fail(p, n, path, len ? "longer than %d bytes" : "must not be empty", MAX_SECRET);
    }
    nc->secret = v;
    nc->secret_len = len;
    return 0;
}

/* command: "/path" (the whole string is the path: nothing is split) or [/path, arg, ...]. */
static int get_command(parse_t *p, const yaml_node_t *n, const char *path, tg_notifier_conf_t *nc)
{
    size_t cnt = 1;
    if (n->type == YAML_SEQUENCE_NODE) {
        cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (cnt == 0) return fail(p, n, path, "needs at least the program's absolute path");
        if (cnt > MAX_ARGS) return fail(p, n, path, "at most %d arguments", MAX_ARGS);
    }
    nc->argv = calloc(cnt + 1, sizeof *nc->argv);
    if (!nc->argv) return oom(p, n, path);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *item =
            n->type == YAML_SEQUENCE_NODE ? node_at(p, n->data.sequence.items.start[i]) : n;
        char sub[KEYPATH];
        if (n->type == YAML_SEQUENCE_NODE)
            keypath(sub, "%s[%zu]", path, i);
        else
            keypath(sub, "%s", path);
        if (scalar(p, item, sub, i ? "an argument" : "an absolute path", &nc->argv[i]) < 0)
            return -1;
        nc->argc = i + 1;
    }
    if (nc->argv[0][0] != '/')
        return fail(p, n, path,
                    "must be an absolute path (got \"%.*s\"): the program is run without a shell "
                    "or a PATH search",
                    64, nc->argv[0]);
    return 0;
}

/* What each type needs and refuses: which keys it takes. */
static int notifier_keys(parse_t *p, const yaml_node_t *item, const char *sub,
                         tg_notifier_conf_t *nc, yaml_node_t **vals)
{
    static const struct {
        int key;
        const char *name;
        unsigned types; /* bit per tg_notifier_type_t that takes it */
    } keys[] = {
        {NF_URL, "url", 1u << TG_NOTIFIER_WEBHOOK | 1u << TG_NOTIFIER_ALERTMANAGER},
        {NF_SECRET, "secret", 1u << TG_NOTIFIER_WEBHOOK},
        {NF_SECRET_FILE, "secret_file", 1u << TG_NOTIFIER_WEBHOOK},
        {NF_COMMAND, "command", 1u << TG_NOTIFIER_EXEC},
        {NF_RESEND, "resend", 1u << TG_NOTIFIER_ALERTMANAGER},
    };
    const char *tname = notifier_types[nc->type];
    char key[KEYPATH];
    for (size_t k = 0; k < NFIELDS(keys); k++) {
        join(key, sub, keys[k].name);
        if (vals[keys[k].key] && !(keys[k].types & (1u << nc->type)))
            return fail(p, vals[keys[k].key], key, "not a key of %s %s notifier",
                        nc->type == TG_NOTIFIER_ALERTMANAGER || nc->type == TG_NOTIFIER_EXEC ? "an"
                                                                                             : "a",
                        tname);
    }
    if (nc->type != TG_NOTIFIER_EXEC && !vals[NF_URL]) return missing(p, item, sub, "url");
    if (nc->type == TG_NOTIFIER_EXEC && !vals[NF_COMMAND]) return missing(p, item, sub, "command");
    if (nc->type == TG_NOTIFIER_WEBHOOK) {
        if (vals[NF_SECRET] && vals[NF_SECRET_FILE]) {
            join(key, sub, "secret_file");
            return fail(p, vals[NF_SECRET_FILE], key, "give secret or secret_file, not both");
        }
        if (!vals[NF_SECRET] && !vals[NF_SECRET_FILE])
            return fail(p, item, sub,
                        "a webhook needs secret (e.g. \"${HOOK_SECRET}\") or secret_file: "
                        "receivers check the X-Tollgate-Signature it signs");
    }
    if (vals[NF_URL]) {
        join(key, sub, "url");
        if (get_notify_url(p, vals[NF_URL], key, &nc->url) < 0) return -1;
    }
    if (vals[NF_SECRET]) {
        join(key, sub, "secret");
        if (get_secret(p, vals[NF_SECRET], key, nc) < 0) return -1;
    }
    if (vals[NF_SECRET_FILE]) {
        char *file;
        join(key, sub, "secret_file");
        if (get_path(p, vals[NF_SECRET_FILE], key, &file) < 0) return -1;
        int rc = read_secret_file(p, vals[NF_SECRET_FILE], key, file, "secret", &nc->secret,
                                  &nc->secret_len);
        free(file);
        if (rc < 0) return -1;
    }
    if (vals[NF_COMMAND]) {
        join(key, sub, "command");
        if (get_command(p, vals[NF_COMMAND], key, nc) < 0) return -1;
    }
    return 0;
}

static int parse_notify(parse_t *p, const yaml_node_t *seq, tg_config_t *c)
{
    const char *path = "notify";
    if (!seq || is_null(seq)) return 0;
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(p, seq, path, "expected a list of notifiers, found %s", node_what(seq));
    size_t cnt = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (cnt == 0) return 0;
    if (cnt > 64) return fail(p, seq, path, "at most 64 notifiers (got %zu)", cnt);
    c->notifiers = calloc(cnt, sizeof *c->notifiers);
    if (!c->notifiers) return oom(p, seq, path);
    for (size_t i = 0; i < cnt; i++) {
        tg_notifier_conf_t *nc = &c->notifiers[i];
        c->nnotifiers = i + 1; /* freed with the config whatever happens below */
        nc->timeout_ms = 5000;
        nc->resend_ms = 60000;
        yaml_node_t *item = node_at(p, seq->data.sequence.items.start[i]), *vals[MAX_FIELDS];
        char sub[KEYPATH], key[KEYPATH];
        keypath(sub, "%s[%zu]", path, i);
        if (item->type != YAML_MAPPING_NODE)
            return fail(p, item, sub,
                        "expected a mapping with type (webhook, alertmanager or "
                        "exec), found %s",
                        node_what(item));
        if (parse_fields(p, item, sub, notifier_fields, NFIELDS(notifier_fields), nc, vals) < 0)
            return -1;
        if (!vals[NF_TYPE]) return missing(p, item, sub, "type");
        char *t;
        join(key, sub, "type");
        if (scalar(p, vals[NF_TYPE], key, "a notifier type", &t) < 0) return -1;
        size_t k = 0;
        while (k < NFIELDS(notifier_types) && strcmp(t, notifier_types[k]))
            k++;
        if (k == NFIELDS(notifier_types)) {
            fail(p, vals[NF_TYPE], key,
                 "unknown type \"%.*s\" (expected webhook, alertmanager or exec)", 64, t);
            free(t);
            return -1;
        }
        free(t);
        nc->type = (tg_notifier_type_t)k;
        if (notifier_keys(p, item, sub, nc, vals) < 0) return -1;
        if (nc->timeout_ms > MAX_TIMEOUT) {
            join(key, sub, "timeout");
            return fail(p, vals[NF_TIMEOUT], key, "at most 60s");
        }
        if (nc->resend_ms && (nc->resend_ms < 1000 || nc->resend_ms > 3600000)) {
            join(key, sub, "resend");
            return fail(p, vals[NF_RESEND], key, "between 1s and 1h, or 0 (never re-sent)");
        }
        if (!nc->name) {
            char def[32];
            snprintf(def, sizeof def, "%s-%u", notifier_types[k], (unsigned)i);
            if (!(nc->name = strdup(def))) return oom(p, item, sub);
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->notifiers[j].name, nc->name)) {
                join(key, sub, "name");
                return fail(p, vals[NF_NAME] ? vals[NF_NAME] : item, key,
                            "duplicate notifier name \"%s\" (notify[%zu] has it)", nc->name, j);
            }
    }
    return 0;
}

/* ---- auth and jwt (issue 14) ------------------------------------------- */

static int dup_default(char **dst, const char *def);
static const char *const auth_names[] = {"api_key", "jwt"};
static const char *const jwt_alg_names[] = {"RS256", "ES256", "HS256"};

/* A list of distinct words of names[] as a bit set (bit i = names[i]); never empty. */
static int get_word_set(parse_t *p, const yaml_node_t *n, const char *path, const char *what,
                        const char *const *names, int nn, unsigned *out)
{
    *out = 0;
    if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top == n->data.sequence.items.start)
        return fail(p, n, path, "expected a non-empty list of %ss, e.g. [%s], found %s", what,
                    names[0], node_what(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = node_at(p, *it);
        char sub[KEYPATH];
        int w;
        keypath(sub, "%s[%zu]", path, (size_t)(it - n->data.sequence.items.start));
        if (get_word(p, item, sub, what, names, nn, &w) < 0) return -1;
        if (*out & (1u << w)) return fail(p, item, sub, "%s listed twice", names[w]);
        *out |= 1u << w;
    }
    return 0;
}

static int get_auth(parse_t *p, const yaml_node_t *n, const char *path, unsigned *out)
{
    return get_word_set(p, n, path, "auth method", auth_names, 2, out);
}

enum { JF_ISSUER, JF_AUDIENCE, JF_TENANT, JF_KEY, JF_ALGS, JF_JWKS, JF_SECRET, JF_LEEWAY };
#define JW(f) offsetof(tg_jwt_conf_t, f)
static const field_t jwt_fields[] = {
    {"issuer", V_SECTION, 0},       {"audience", V_SECTION, 0},
    {"tenant_claim", V_SECTION, 0}, {"key_claim", V_SECTION, 0},
    {"algorithms", V_SECTION, 0},   {"jwks_file", V_PATH, JW(jwks_file)},
    {"secret", V_SECTION, 0},       {"leeway", V_MS0, JW(leeway_ms)},
};
#define MAX_CLAIM 255

/* A non-empty string of at most max bytes (issuer, audience, a claim's name). */
static int get_text(parse_t *p, const yaml_node_t *n, const char *path, size_t max, char **out)
{
    if (scalar(p, n, path, "a string", out) < 0) return -1;
    size_t len = strlen(*out);
    if (len == 0 || len > max) {
        free(*out);
        *out = NULL;
        return fail(p, n, path, len ? "longer than %zu bytes" : "must not be empty", max);
    }
    return 0;
}

/* jwt: { issuer, audience, tenant_claim, key_claim, algorithms, jwks_file, secret, leeway }.
 * The JWKS file itself is read by the gateway (auth/jwks.h), at start and when it changes:
 * a config only names it. */
static int parse_jwt(parse_t *p, const yaml_node_t *n, tg_jwt_conf_t *j)
{
    yaml_node_t *v[MAX_FIELDS] = {0};
    const char *path = "jwt";
    j->leeway_ms = 30000;
    if (parse_fields(p, n, path, jwt_fields, NFIELDS(jwt_fields), j, v) < 0) return -1;
    j->set = 1;
    if (!v[JF_ISSUER]) return missing(p, n, path, "issuer");
    if (get_text(p, v[JF_ISSUER], "jwt.issuer", MAX_CLAIM, &j->issuer) < 0 ||
        (v[JF_AUDIENCE] &&
         get_text(p, v[JF_AUDIENCE], "jwt.audience", MAX_CLAIM, &j->audience) < 0) ||
        (v[JF_KEY] && get_text(p, v[JF_KEY], "jwt.key_claim", MAX_CLAIM, &j->key_claim) < 0))
        return -1;
    if (v[JF_TENANT] ? get_text(p, v[JF_TENANT], "jwt.tenant_claim", MAX_CLAIM, &j->tenant_claim)
                     : dup_default(&j->tenant_claim, "custom:tenant_id"))
        return v[JF_TENANT] ? -1 : oom(p, n, path);
    if (v[JF_SECRET]) {
        char *s;
        if (scalar(p, v[JF_SECRET], "jwt.secret", "a secret (e.g. \"${JWT_SECRET}\")", &s) < 0)
            return -1;
        size_t len = strlen(s);
        if (len < 32 || len > MAX_SECRET) {
            OPENSSL_cleanse(s, len);
            free(s);
            return fail(p, v[JF_SECRET], "jwt.secret",
                        "must be 32 to %d bytes (HS256 needs a key as long as its hash; the "
                        "value is not shown)",
                        MAX_SECRET);
        }
        j->secret = (unsigned char *)s;
        j->secret_len = len;
    }
    unsigned have =
        (j->jwks_file ? TG_JWT_RS256 | TG_JWT_ES256 : 0) | (j->secret ? TG_JWT_HS256 : 0);
    if (!have) return fail(p, n, path, "give jwks_file (RS256, ES256) or secret (HS256), or both");
    if (!v[JF_ALGS]) {
        j->algorithms = have;
        return 0;
    }
    if (get_word_set(p, v[JF_ALGS], "jwt.algorithms", "algorithm", jwt_alg_names, 3,
                     &j->algorithms) < 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if ((j->algorithms & (1u << i)) && !(have & (1u << i)))
            return fail(p, v[JF_ALGS], "jwt.algorithms", "%s needs %s", jwt_alg_names[i],
                        i == 2 ? "jwt.secret" : "jwt.jwks_file");
    return 0;
}

/* auth: [api_key, jwt] (default [api_key]) and jwt:, which is required when any auth (the
 * global one or a route's) lists jwt, and refused when none does (a key set nobody uses is a
 * mistake worth saying). */
static int parse_auth(parse_t *p, const yaml_node_t *root, const yaml_node_t *auth,
                      const yaml_node_t *jwt, tg_config_t *c)
{
    c->auth = TG_AUTH_API_KEY;
    if (auth && get_auth(p, auth, "auth", &c->auth) < 0) return -1;
    unsigned any = c->auth;
    for (size_t i = 0; i < c->nroutes; i++)
        any |= c->routes[i].auth;
    if (jwt && parse_jwt(p, jwt, &c->jwt) < 0) return -1;
    if ((any & TG_AUTH_JWT) && !jwt)
        return fail(p, auth ? auth : root, "jwt", "required key is missing (auth lists jwt)");
    if (jwt && !(any & TG_AUTH_JWT))
        return fail(p, jwt, "jwt",
                    "no auth lists jwt (add auth: [api_key, jwt] globally or to a "
                    "route)");
    return 0;
}

/* ---- the document ------------------------------------------------------ */

#define SRV(f) offsetof(tg_config_t, server.f)
static const field_t server_fields[] = {
    {"listen", V_LISTEN, SRV(listen)},
    {"admin_listen", V_ADMIN_LISTEN, SRV(admin_listen)},
    {"workers", V_WORKERS, SRV(workers)},
    {"max_header_bytes", V_SIZE, SRV(max_header_bytes)},
    {"max_body", V_SIZE, SRV(max_body)},
    {"max_decoded_body", V_SIZE, SRV(max_decoded_body)},
    {"idle_timeout", V_MS, SRV(idle_timeout_ms)},
    {"header_timeout", V_MS, SRV(header_timeout_ms)},
    {"body_timeout", V_MS, SRV(body_timeout_ms)},
    {"drain_timeout", V_MS, SRV(drain_timeout_ms)},
    {"trusted_proxies", V_CIDRS, offsetof(tg_config_t, trusted_proxies)},
    {"admin_token", V_SECTION, 0},      /* parse_admin_token */
    {"admin_token_file", V_SECTION, 0}, /* parse_admin_token */
};
enum { DF_LIMITS, DF_MAX_OUTPUT, DF_THRESHOLDS };
static const field_t defaults_fields[] = {
    {"limits", V_SECTION, 0},
    {"max_output_tokens", V_INT1, offsetof(tg_config_t, max_output_tokens)},
    {"budget_thresholds", V_SECTION, 0},
};
#define DL(f) offsetof(tg_config_t, default_limits.f)
enum { DL_RPS, DL_RPM, DL_RPH };
static const field_t limits_fields[] = {
    {"rps", V_INT0, DL(rps)},
    {"rpm", V_INT0, DL(rpm)},
    {"rph", V_INT0, DL(rph)},
    {"burst", V_INT1, DL(burst)},
    {"concurrency", V_INT0, DL(concurrency)},
};
static const field_t log_fields[] = {
    {"access", V_PATH, offsetof(tg_config_t, log.access)},
    {"level", V_LEVEL, offsetof(tg_config_t, log.level)},
    {"unauthenticated_per_minute", V_INT1, offsetof(tg_config_t, log.unauthenticated_per_minute)},
};
static const field_t retention_fields[] = {
    {"events_days", V_INT0, offsetof(tg_config_t, retention.events_days)},
    {"aggregates_days", V_INT0, offsetof(tg_config_t, retention.aggregates_days)},
    /* issue 14: a period per table; events is events_days spelled as a period */
    {"events", V_DAYS, offsetof(tg_config_t, retention.events_days)},
    {"audit", V_DAYS, offsetof(tg_config_t, retention.audit_days)},
};
static const field_t audit_fields[] = {
    {"bodies", V_BODIES, offsetof(tg_config_t, audit_bodies)},
    {"max_body", V_SIZE, offsetof(tg_config_t, audit_max_body)},
};
static const field_t ai_fields[] = {
    {"drain_after_disconnect", V_MS0, offsetof(tg_config_t, ai.drain_after_disconnect_ms)},
};
static const field_t recorder_fields[] = {
    {"queue_size", V_COUNT, offsetof(tg_config_t, recorder.queue_size)},
    {"flush_interval", V_MS, offsetof(tg_config_t, recorder.flush_ms)},
    {"spool", V_PATH, offsetof(tg_config_t, recorder.spool)},
};
static const field_t metrics_fields[] = {
    {"max_tenants", V_INT1, offsetof(tg_config_t, metrics.max_tenants)},
    {"max_models", V_INT1, offsetof(tg_config_t, metrics.max_models)},
    {"max_tools", V_INT1, offsetof(tg_config_t, metrics.max_tools)},
};
static const field_t limits_backend_fields[] = {
    {"backend", V_BACKEND, 0},
    {"timeout", V_MS, offsetof(tg_config_t, limits.timeout_ms)},
    {"reservation_ttl", V_MS, offsetof(tg_config_t, limits.reservation_ttl_ms)},
    {"on_backend_down", V_ONDOWN, offsetof(tg_config_t, limits.on_down)},
    {"instances", V_INT1, offsetof(tg_config_t, limits.instances)},
    {"password_file", V_SECTION, 0}, /* parse_redis_password */
};
static int parse_notify(parse_t *p, const yaml_node_t *seq, tg_config_t *c);
static const field_t notify_retry_fields[] = {
    {"min", V_MS, offsetof(tg_config_t, notify_retry.min_ms)},
    {"max", V_MS, offsetof(tg_config_t, notify_retry.max_ms)},
    {"give_up", V_MS, offsetof(tg_config_t, notify_retry.give_up_ms)},
};
enum {
    R_SERVER,
    R_STORE,
    R_LOG,
    R_RETENTION,
    R_RECORDER,
    R_UPSTREAMS,
    R_ROUTES,
    R_DEFAULTS,
    R_PRICES,
    R_AI,
    R_METRICS,
    R_ALARMS,
    R_ALARMS_INTERVAL,
    R_ACTIONS,
    R_NOTIFY,
    R_NOTIFY_RETRY,
    R_LIMITS,
    R_AUTH,
    R_JWT,
    R_ENCRYPTION,
    R_SIGNING,
    R_AUDIT
};
static const field_t root_fields[] = {
    {"server", V_SECTION, 0},
    {"store", V_STORE, offsetof(tg_config_t, store)},
    {"log", V_SECTION, 0},
    {"retention", V_SECTION, 0},
    {"recorder", V_SECTION, 0},
    {"upstreams", V_SECTION, 0},
    {"routes", V_SECTION, 0},
    {"defaults", V_SECTION, 0},
    {"prices", V_SECTION, 0},
    {"ai", V_SECTION, 0},
    {"metrics", V_SECTION, 0},
    {"alarms", V_SECTION, 0},
    {"alarms_interval", V_MS, offsetof(tg_config_t, alarms_interval_ms)},
    {"actions", V_SECTION, 0},
    {"notify", V_SECTION, 0},
    {"notify_retry", V_SECTION, 0},
    {"limits", V_SECTION, 0},
    {"auth", V_SECTION, 0}, /* get_auth */
    {"jwt", V_SECTION, 0},  /* parse_jwt */
    {"encryption", V_SECTION, 0},
    {"signing", V_SECTION, 0},
    {"audit", V_SECTION, 0},
};

/* budget_thresholds: [80, 90, 100]. An explicit [] means no threshold alerts; a null
 * value is refused rather than read as [], since it would silently drop the defaults. */
static int parse_thresholds(parse_t *p, const yaml_node_t *n, tg_config_t *c)
{
    const char *path = "defaults.budget_thresholds";
    if (is_null(n))
        return fail(p, n, path,
                    "missing value (expected a list of percentages, e.g. [80, 90, 100])");
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(p, n, path, "expected a list of percentages, e.g. [80, 90, 100], found %s",
                    node_what(n));
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt > MAX_THRESHOLDS)
        return fail(p, n, path, "at most %d thresholds (got %zu)", MAX_THRESHOLDS, cnt);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *item = node_at(p, n->data.sequence.items.start[i]);
        char sub[KEYPATH];
        unsigned long long x;
        keypath(sub, "%s[%zu]", path, i);
        if (get_uint(p, item, sub, 1, 1000, &x) < 0) return -1;
        if (i > 0 && (int)x <= c->budget_thresholds[i - 1])
            return fail(p, item, sub,
                        "must be greater than the one before it (%d): thresholds "
                        "are ascending percentages",
                        c->budget_thresholds[i - 1]);
        c->budget_thresholds[i] = (int)x;
    }
    c->nbudget_thresholds = (int)cnt;
    return 0;
}

/* defaults: { limits: { rpm: N, burst: N, concurrency: N }, max_output_tokens: N,
 *             budget_thresholds: [N, ...] } */
static int parse_defaults(parse_t *p, const yaml_node_t *n, tg_config_t *c)
{
    yaml_node_t *v[MAX_FIELDS] = {0}, *l[MAX_FIELDS] = {0};
    if (!n) return 0;
    if (parse_fields(p, n, "defaults", defaults_fields, NFIELDS(defaults_fields), c, v) < 0)
        return -1;
    if (v[DF_THRESHOLDS] && parse_thresholds(p, v[DF_THRESHOLDS], c) < 0) return -1;
    if (!v[DF_LIMITS]) return 0;
    if (parse_fields(p, v[DF_LIMITS], "defaults.limits", limits_fields, NFIELDS(limits_fields), c,
                     l) < 0)
        return -1;
    int rates = !!l[DL_RPS] + !!l[DL_RPM] + !!l[DL_RPH];
    if (rates > 1)
        return fail(p, v[DF_LIMITS], "defaults.limits", "give one of rps, rpm or rph, not %d",
                    rates);
    return 0;
}

static int dup_default(char **dst, const char *def)
{
    if (*dst) return 0;
    *dst = strdup(def);
    return *dst ? 0 : -1;
}

static int spool_default(tg_config_t *c)
{
    if (c->recorder.spool) return 0;
    const char *db = c->store + TG_LIT_LEN("sqlite:");
    if (strncmp(c->store, TG_LIT("sqlite:")) || !strcmp(db, ":memory:"))
        return dup_default(&c->recorder.spool, "./tollgate.spool");
    size_t len = strlen(db) + sizeof ".spool";
    c->recorder.spool = malloc(len);
    if (!c->recorder.spool) return -1;
    snprintf(c->recorder.spool, len, "%s.spool", db);
    return 0;
}

static int parse_root(parse_t *p, const yaml_node_t *root, tg_config_t *c)
{
    yaml_node_t *v[MAX_FIELDS] = {0}, *s[MAX_FIELDS];
    if (root && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE)
            return fail(p, root, "",
                        "expected a mapping (server:, store:, upstreams:, ...) at "
                        "the top level, found %s",
                        node_what(root));
        if (parse_fields(p, root, "", root_fields, NFIELDS(root_fields), c, v) < 0) return -1;
    }
    if ((v[R_SERVER] &&
         (parse_fields(p, v[R_SERVER], "server", server_fields, NFIELDS(server_fields), c, s) < 0 ||
          parse_admin_token(p, v[R_SERVER], c) < 0)) ||
        (v[R_LOG] && parse_fields(p, v[R_LOG], "log", log_fields, NFIELDS(log_fields), c, s) < 0) ||
        (v[R_RETENTION] && parse_fields(p, v[R_RETENTION], "retention", retention_fields,
                                        NFIELDS(retention_fields), c, s) < 0) ||
        (v[R_RECORDER] && parse_fields(p, v[R_RECORDER], "recorder", recorder_fields,
                                       NFIELDS(recorder_fields), c, s) < 0) ||
        (v[R_AI] && parse_fields(p, v[R_AI], "ai", ai_fields, NFIELDS(ai_fields), c, s) < 0) ||
        (v[R_AUDIT] &&
         parse_fields(p, v[R_AUDIT], "audit", audit_fields, NFIELDS(audit_fields), c, s) < 0) ||
        (v[R_METRICS] && parse_fields(p, v[R_METRICS], "metrics", metrics_fields,
                                      NFIELDS(metrics_fields), c, s) < 0) ||
        (v[R_LIMITS] && parse_fields(p, v[R_LIMITS], "limits", limits_backend_fields,
                                     NFIELDS(limits_backend_fields), c, s) < 0) ||
        parse_redis_password(p, v[R_LIMITS], c) < 0 || parse_upstreams(p, v[R_UPSTREAMS], c) < 0 ||
        parse_routes(p, v[R_ROUTES], c) < 0 || parse_defaults(p, v[R_DEFAULTS], c) < 0 ||
        parse_prices(p, v[R_PRICES], c) < 0 || parse_alarms(p, v[R_ALARMS], c) < 0 ||
        parse_actions(p, v[R_ACTIONS], c) < 0 || parse_auth(p, root, v[R_AUTH], v[R_JWT], c) < 0 ||
        parse_encryption(p, v[R_ENCRYPTION], c) < 0 ||
        parse_signing(p, v[R_SIGNING], v[R_ROUTES], c) < 0 || check_bodies(p, v[R_AUDIT], c) < 0)
        return -1;
    yaml_node_t *nr[MAX_FIELDS] = {0};
    if ((v[R_NOTIFY_RETRY] &&
         parse_fields(p, v[R_NOTIFY_RETRY], "notify_retry", notify_retry_fields,
                      NFIELDS(notify_retry_fields), c, nr) < 0) ||
        parse_notify(p, v[R_NOTIFY], c) < 0)
        return -1;
    if (c->notify_retry.max_ms > 600000)
        return fail(p, nr[1], "notify_retry.max",
                    "at most 10m (a receiver back from an outage waits up to this long)");
    if (c->notify_retry.min_ms > c->notify_retry.max_ms)
        return fail(p, nr[0] ? nr[0] : v[R_NOTIFY_RETRY], "notify_retry.min",
                    "must not exceed notify_retry.max (%ldms)", c->notify_retry.max_ms);
    if (dup_default(&c->server.listen, "127.0.0.1:8080") < 0 ||
        dup_default(&c->server.admin_listen, "127.0.0.1:9090") < 0 ||
        dup_default(&c->store, "sqlite:./tollgate.db") < 0 ||
        dup_default(&c->log.access, "stdout") < 0 || dup_default(&c->log.level, "info") < 0 ||
        spool_default(c) < 0)
        return oom(p, root, "");
    if (*c->server.admin_listen && !strcmp(c->server.admin_listen, c->server.listen)) {
        yaml_node_t *at = v[R_SERVER] ? find_key(p, v[R_SERVER], "admin_listen") : NULL;
        return fail(p, at ? at : root, "server.admin_listen", "same address as server.listen");
    }
    return 0;
}

static void config_free(tg_config_t *c)
{
    if (!c) return;
    free(c->path);
    free(c->server.listen);
    free(c->server.admin_listen);
    free(c->server.admin_token_file);
    OPENSSL_cleanse(c->server.admin_token_sha256, sizeof c->server.admin_token_sha256);
    free(c->store);
    free(c->encryption.kek_file);
    free(c->encryption.kek_env);
    tg_kek_wipe(&c->encryption.kek);
    for (size_t i = 0; i < c->signing.nrequired_tenants; i++)
        free(c->signing.required_tenants[i]);
    free(c->signing.required_tenants);
    free(c->limits.redis_host);
    if (c->limits.redis_user) OPENSSL_cleanse(c->limits.redis_user, strlen(c->limits.redis_user));
    if (c->limits.redis_password)
        OPENSSL_cleanse(c->limits.redis_password, strlen(c->limits.redis_password));
    free(c->limits.redis_user);
    free(c->limits.redis_password);
    free(c->limits.redis_pw_file);
    free(c->log.access);
    free(c->log.level);
    free(c->recorder.spool);
    tg_cidr_list_free(&c->trusted_proxies);
    for (size_t i = 0; i < c->nupstreams; i++) {
        tg_upstream_conf_t *u = &c->upstreams[i];
        free(u->name);
        free(u->ca_file);
        for (size_t j = 0; j < u->ntargets; j++)
            free(u->targets[j].url);
        free(u->targets);
        for (size_t j = 0; j < u->nheaders; j++) {
            free(u->headers[j].name);
            if (u->headers[j].value) { /* may be a credential: do not leave it in the heap */
                explicit_bzero(u->headers[j].value, strlen(u->headers[j].value));
                free(u->headers[j].value);
            }
        }
        free(u->headers);
        for (size_t j = 0; j < u->ncredentials; j++)
            if (u->credentials[j]) {
                OPENSSL_cleanse(u->credentials[j], strlen(u->credentials[j]));
                free(u->credentials[j]);
            }
        free(u->credentials);
    }
    free(c->upstreams);
    for (size_t i = 0; i < c->nroutes; i++) {
        free(c->routes[i].name);
        free(c->routes[i].path_prefix);
        free(c->routes[i].upstream);
    }
    free(c->routes);
    free(c->prices);
    for (size_t i = 0; i < c->nalarms; i++) {
        free(c->alarms[i].name);
        free(c->alarms[i].severity);
    }
    free(c->alarms);
    for (size_t i = 0; i < c->nactions; i++)
        free(c->actions[i].alarm);
    free(c->actions);
    for (size_t i = 0; i < c->nnotifiers; i++) {
        tg_notifier_conf_t *n = &c->notifiers[i];
        free(n->name);
        if (n->url) { /* may hold a credential */
            OPENSSL_cleanse(n->url, strlen(n->url));
            free(n->url);
        }
        if (n->secret) {
            OPENSSL_cleanse(n->secret, n->secret_len);
            free(n->secret);
        }
        for (size_t j = 0; j < n->argc; j++)
            free(n->argv[j]);
        free(n->argv);
    }
    free(c->notifiers);
    free(c->jwt.issuer);
    free(c->jwt.audience);
    free(c->jwt.tenant_claim);
    free(c->jwt.key_claim);
    free(c->jwt.jwks_file);
    if (c->jwt.secret) {
        OPENSSL_cleanse(c->jwt.secret, c->jwt.secret_len);
        free(c->jwt.secret);
    }
    free(c);
}

static unsigned long offset_line(const char *text, size_t len, size_t off)
{
    unsigned long line = 1;
    for (size_t i = 0; i < off && i < len; i++)
        line += text[i] == '\n';
    return line;
}

static int yaml_error(const char *name, const char *text, size_t len, yaml_parser_t *y,
                      tg_err_t *err)
{
    const char *problem = y->problem ? y->problem : "cannot parse";
    switch (y->error) {
    case YAML_MEMORY_ERROR: return tg_err_set(err, "%s: out of memory", name);
    case YAML_READER_ERROR:
        return tg_err_set(err, "%s:%lu: YAML error: %s", name,
                          offset_line(text, len, y->problem_offset), problem);
    default:
        if (y->context)
            return tg_err_set(err, "%s:%lu: YAML syntax error: %s (%s at line %lu)", name,
                              (unsigned long)y->problem_mark.line + 1, problem, y->context,
                              (unsigned long)y->context_mark.line + 1);
        return tg_err_set(err, "%s:%lu: YAML syntax error: %s", name,
                          (unsigned long)y->problem_mark.line + 1, problem);
    }
}

/* Loads the one document of text into doc; 0 or -1 with err set. */
static int load_document(const char *name, const char *text, size_t len, yaml_document_t *doc,
                         tg_err_t *err)
{
    yaml_parser_t y;
    yaml_document_t extra;
    if (!yaml_parser_initialize(&y)) return tg_err_set(err, "%s: out of memory", name);
    yaml_parser_set_input_string(&y, (const unsigned char *)text, len);
    if (!yaml_parser_load(&y, doc)) {
        yaml_error(name, text, len, &y, err);
        yaml_parser_delete(&y);
        return -1;
    }
    int rc = 0;
    if (yaml_document_get_root_node(doc)) {
        /* A second document would be silently ignored: refuse it. */
        if (!yaml_parser_load(&y, &extra)) {
            rc = yaml_error(name, text, len, &y, err);
        } else {
            yaml_node_t *more = yaml_document_get_root_node(&extra);
            if (more)
                rc = tg_err_set(err, "%s:%lu: only one YAML document is allowed", name,
                                line_of(more));
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&y);
    if (rc < 0) yaml_document_delete(doc);
    return rc;
}

int tg_config_parse(const char *name, const char *text, size_t len, tg_config_t **out,
                    tg_err_t *err)
{
    yaml_document_t doc;
    *out = NULL;
    if (!name) name = "(config)";
    if (!text) len = 0;
    tg_config_t *c = calloc(1, sizeof *c);
    if (!c) return tg_err_set(err, "%s: out of memory", name);
    atomic_init(&c->refs, 1);
    c->server.workers = cores();
    c->server.max_header_bytes = 16384;
    c->server.max_body = 10u << 20;
    c->server.max_decoded_body = 64u << 20; /* honest answers grow it (decode.h) */
    c->audit_max_body = 256u << 10;         /* x 2 x concurrent AI/MCP calls (audit.md) */
    c->server.idle_timeout_ms = 60000;
    c->server.header_timeout_ms = 10000;
    c->server.body_timeout_ms = 60000;
    c->server.drain_timeout_ms = 30000;
    c->log.unauthenticated_per_minute = 100;
    c->ai.drain_after_disconnect_ms = 30000;
    c->retention.events_days = 90;
    c->retention.aggregates_days = 730;
    c->default_limits.rps = c->default_limits.rpm = c->default_limits.rph = -1;
    c->max_output_tokens = 4096;
    c->budget_thresholds[0] = 80;
    c->budget_thresholds[1] = 90;
    c->budget_thresholds[2] = 100;
    c->nbudget_thresholds = 3;
    c->recorder.queue_size = 65536;
    c->recorder.flush_ms = 50;
    c->metrics.max_tenants = 1000;
    c->metrics.max_models = 200;
    c->metrics.max_tools = 200;
    c->alarms_interval_ms = 10000;
    c->limits.redis_port = 6379;
    c->signing.window_ms = 300000;
    c->signing.replay_cache = 100000;
    c->limits.timeout_ms = 20;
    c->limits.reservation_ttl_ms = 300000;
    c->limits.instances = 1;
    c->notify_retry.min_ms = 1000;
    c->notify_retry.max_ms = 60000;
    c->notify_retry.give_up_ms = 24 * 3600 * 1000L;
    c->path = strdup(name);
    if (!c->path) {
        config_free(c);
        return tg_err_set(err, "%s: out of memory", name);
    }
    if (load_document(name, text ? text : "", len, &doc, err) < 0) {
        config_free(c);
        return -1;
    }
    parse_t p = {name, &doc, err, 0};
    int rc = parse_root(&p, yaml_document_get_root_node(&doc), c);
    /* The document's scalars hold the admin token and upstream credentials as written:
     * libyaml frees them without wiping. */
    for (yaml_node_t *n = doc.nodes.start; n < doc.nodes.top; n++)
        if (n->type == YAML_SCALAR_NODE && n->data.scalar.value)
            OPENSSL_cleanse(n->data.scalar.value, n->data.scalar.length);
    yaml_document_delete(&doc);
    if (rc < 0) {
        config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int tg_config_load(const char *path, tg_config_t **out, tg_err_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return tg_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    /* (Less one byte: a file of exactly MAX_FILE_BYTES was always refused too.) */
    tg_buf_t text = TG_BUF_INIT(MAX_FILE_BYTES - 1);
    int rc = -1;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        int brc = tg_buf_add(&text, chunk, got);
        if (brc == TG_BUF_TOOBIG) {
            tg_err_set(err, "%s: larger than %u MiB; is this a config file?", path,
                       MAX_FILE_BYTES >> 20);
            goto out;
        }
        if (brc != TG_BUF_OK) {
            tg_err_set(err, "%s: out of memory", path);
            goto out;
        }
    }
    if (ferror(f)) {
        tg_err_set(err, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    rc = tg_config_parse(path, tg_buf_str(&text), text.len, out, err);
out:
    if (text.p) OPENSSL_cleanse(text.p, text.len); /* secrets as written (see take_token) */
    OPENSSL_cleanse(chunk, sizeof chunk);
    tg_buf_free(&text);
    fclose(f);
    return rc;
}

tg_config_t *tg_config_ref(tg_config_t *c)
{
    if (c) atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void tg_config_unref(tg_config_t *c)
{
    /* acq_rel: the last holder must see every other holder's writes (health
     * counters) before it frees. */
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) config_free(c);
}

const tg_route_conf_t *tg_config_route(const tg_config_t *c, const char *path, size_t len)
{
    /* A linear scan: configs hold a handful of routes, and prefixes are unique
     * (checked at load), so the longest match is the only candidate of its length. */
    const tg_route_conf_t *best = NULL;
    size_t best_len = 0;
    if (!c || !path) return NULL;
    for (size_t i = 0; i < c->nroutes; i++) {
        const tg_route_conf_t *r = &c->routes[i];
        size_t l = strlen(r->path_prefix);
        /* On a segment boundary: "/v1/messages" matches itself and "/v1/messages/..."
         * but not "/v1/messagesX"; a prefix ending in "/" matches what lies beneath it. */
        /* (Case-insensitively: the path comes lower-cased from gateway/target.h.) */
        if (l > len || (best && l <= best_len) || strncasecmp(path, r->path_prefix, l) != 0)
            continue;
        if (l == len || (l > 0 && r->path_prefix[l - 1] == '/') || path[l] == '/' ||
            path[l] == '?') {
            best = r;
            best_len = l;
        }
    }
    return best;
}

const char *tg_route_kind_name(tg_route_kind_t k)
{
    if ((unsigned)k < sizeof kind_names / sizeof kind_names[0]) return kind_names[k];
    return "unknown";
}

const char *tg_config_default_path(const char *flag)
{
    if (flag && *flag) return flag;
    const char *env = getenv("TOLLGATE_CONFIG");
    if (env && *env) return env;
    return "./tollgate.yaml";
}
