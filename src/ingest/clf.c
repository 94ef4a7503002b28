/* Common and combined log format (Apache, nginx):
 *   %h %l %u [%t] "%r" %>s %b                               common
 *   %h %l %u [%t] "%r" %>s %b "%{Referer}i" "%{User-agent}i" combined
 * Anything after those fields (nginx's extra variables) is ignored. The time carries its
 * zone ([10/Oct/2000:13:55:36 -0700]) and is converted to UTC. Inside quotes a server
 * escapes '"' and '\' with a backslash and other bytes as \xhh; the request line is
 * unescaped before it is split. A request line that is not METHOD URI [PROTOCOL] (a TLS
 * handshake sent to a plain port, "-" for a connection that sent nothing) is still a
 * record: the server answered it (400, 408), so it is kept with method "-", no path and
 * reason "bad_request_line".
 *
 * The key comes from a query parameter of the URI (--key-field, default api_key; decoded
 * once: these servers log the request line as received), or, with --tenant-field user,
 * the tenant is the %u field. The path is stored without its query, so no key is stored. */
#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"

#define REQ_MAX 16384

/* Skips spaces; then a token up to the next space. */
static int token(const char *s, size_t n, size_t *i, const char **b, size_t *len)
{
    while (*i < n && s[*i] == ' ')
        (*i)++;
    size_t st = *i;
    while (*i < n && s[*i] != ' ')
        (*i)++;
    *b = s + st;
    *len = *i - st;
    return *len ? 0 : -1;
}

/* A quoted field at s[*i] (after spaces): *b and *len: its bytes between the quotes, still
 * escaped. -1 when there is no quote or it is not closed. */
static int quoted(const char *s, size_t n, size_t *i, const char **b, size_t *len)
{
    while (*i < n && s[*i] == ' ')
        (*i)++;
    if (*i >= n || s[*i] != '"') return -1;
    size_t st = ++*i;
    /* memchr to each '"', which ends the field unless an odd run of backslashes escapes it:
     * a byte-by-byte scan of the user agent was a twentieth of the instructions of
     * ingesting a combined log. */
    for (size_t at = st; at < n;) {
        const char *q = memchr(s + at, '"', n - at);
        if (!q) break;
        size_t e = (size_t)(q - s), bs = 0;
        while (e - bs > st && s[e - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0) {
            *b = s + st;
            *len = e - st;
            *i = e + 1;
            return 0;
        }
        at = e + 1;
    }
    *i = n;
    return -1;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Undoes the server's escaping (\" \\ \xhh); out has cap >= n + 1. Returns the length. */
static size_t unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'x' && i + 3 < n && hexv(s[i + 2]) >= 0 && hexv(s[i + 3]) >= 0) {
                out[o++] = (char)(hexv(s[i + 2]) << 4 | hexv(s[i + 3]));
                i += 3;
                continue;
            }
            i++;
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
    return o;
}

static int is_method(const char *s, size_t n)
{
    if (n == 0 || n > 15) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' || s[i] == '_')) return 0;
    return 1;
}

int tg_ingest__clf(tg_ingest_parser_t *p, const char *line, size_t len, tg_ingest_emit_fn emit,
                   void *ud, char *why, size_t cap)
{
    tg_ingest_rec_t rec;
    memset(&rec, 0, sizeof rec);
    tg_event_t *ev = &rec.ev;
    size_t i = 0, n;
    const char *b;
    if (token(line, len, &i, &b, &n) != 0) goto bad_fields;
    TG_EVENT_SET(ev, client_ip, b, n);
    if (token(line, len, &i, &b, &n) != 0) goto bad_fields; /* %l */
    if (token(line, len, &i, &b, &n) != 0) goto bad_fields; /* %u */
    if (p->tenant_field && strcmp(p->tenant_field, "user") == 0 && !(n == 1 && b[0] == '-')) {
        if (n >= sizeof ev->tenant) { /* cut, it could name another tenant */
            snprintf(why, cap, "user longer than %zu bytes: not a tenant id",
                     sizeof ev->tenant - 1);
            return -1;
        }
        TG_EVENT_SET(ev, tenant, b, n);
    }
    while (i < len && line[i] == ' ')
        i++;
    const char *close = i < len && line[i] == '[' ? memchr(line + i, ']', len - i) : NULL;
    if (!close ||
        tg_ingest__clf_time(line + i + 1, (size_t)(close - line) - i - 1, &ev->ts_us) != 0) {
        snprintf(why, cap, "bad [time] (want [10/Oct/2000:13:55:36 -0700])");
        return -1;
    }
    i = (size_t)(close - line) + 1;
    const char *rq;
    size_t rqn;
    if (quoted(line, len, &i, &rq, &rqn) != 0) {
        snprintf(why, cap, "no quoted request line");
        return -1;
    }
    int64_t status;
    if (token(line, len, &i, &b, &n) != 0 || n != 3 || tg_ingest__uint(b, n, &status) != 0) {
        snprintf(why, cap, "bad status");
        return -1;
    }
    ev->status = (int32_t)status;
    if (token(line, len, &i, &b, &n) != 0 ||
        (!(n == 1 && b[0] == '-') && tg_ingest__uint(b, n, &ev->bytes_out) != 0)) {
        snprintf(why, cap, "bad byte count");
        return -1;
    }
    if (p->format == TG_INGEST_COMBINED) {
        const char *x;
        size_t xn;
        if (quoted(line, len, &i, &x, &xn) != 0 || quoted(line, len, &i, &x, &xn) != 0) {
            snprintf(why, cap, "no quoted referer and user agent (combined format)");
            return -1;
        }
    }

    char req[REQ_MAX];
    if (rqn >= sizeof req) {
        snprintf(why, cap, "request line longer than 16 KiB");
        return -1;
    }
    size_t rl = unescape(rq, rqn, req);
    size_t j = 0;
    const char *m, *uri;
    size_t mn, un;
    if (token(req, rl, &j, &m, &mn) == 0 && is_method(m, mn) &&
        token(req, rl, &j, &uri, &un) == 0 && uri[0] != ' ') {
        TG_EVENT_SET(ev, method, m, mn);
        const char *qm = memchr(uri, '?', un);
        size_t pn = qm ? (size_t)(qm - uri) : un;
        TG_EVENT_SET(ev, path, uri, pn);
        if (qm && p->key_field &&
            tg_ingest__key_param(&rec, qm + 1, un - pn - 1, p->key_field, 1, why, cap) != 0)
            return -1;
    } else {
        TG_EVENT_SET(ev, method, "-", 1);
        TG_EVENT_SET(ev, reason, "bad_request_line", 16);
    }
    rec.raw = line;
    rec.raw_len = len;
    return emit(ud, &rec);

bad_fields:
    snprintf(why, cap, "too few fields for %s log format",
             p->format == TG_INGEST_COMBINED ? "combined" : "common");
    return -1;
}
