/* What the log parsers share: percent-decoding, query parameters, numbers, times, and
 * the entry point that picks a format's parser. Every function reads a bounded span
 * (pointer and length), never past it: lines are not NUL-terminated inside the driver's
 * buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"

static const struct {
    const char *name, *source;
} formats[] = {
    [TG_INGEST_CLOUDFRONT] = {"cloudfront", "cloudfront"},
    [TG_INGEST_APIGW] = {"apigw-json", "apigw"},
    [TG_INGEST_CLF] = {"clf", "clf"},
    [TG_INGEST_COMBINED] = {"combined", "clf"},
    [TG_INGEST_JSONL] = {"jsonl", "accesslog"},
};

int tg_ingest_format_parse(const char *name, tg_ingest_format_t *out)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(name, formats[i].name) == 0) {
            *out = (tg_ingest_format_t)i;
            return 0;
        }
    return -1;
}

const char *tg_ingest_source(tg_ingest_format_t f)
{
    return formats[f].source;
}

void tg_ingest_parser_init(tg_ingest_parser_t *p, tg_ingest_format_t format, const char *key_field,
                           const char *tenant_field)
{
    memset(p, 0, sizeof *p);
    p->format = format;
    p->key_field = key_field;
    p->tenant_field = tenant_field;
    if (!key_field && format == TG_INGEST_CLOUDFRONT) p->key_field = "cf_api_key";
    if (!key_field && (format == TG_INGEST_CLF || format == TG_INGEST_COMBINED))
        p->key_field = "api_key";
    if (!tenant_field && format == TG_INGEST_APIGW) p->tenant_field = "tenant_id";
    tg_ingest_parser_reset(p);
}

int tg_ingest_parse(tg_ingest_parser_t *p, const char *line, size_t len, tg_ingest_emit_fn emit,
                    void *ud, char *why, size_t cap)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (len == 0) return 0;
    switch (p->format) {
    case TG_INGEST_CLOUDFRONT: return tg_ingest__cloudfront(p, line, len, emit, ud, why, cap);
    case TG_INGEST_APIGW: return tg_ingest__apigw(p, line, len, emit, ud, why, cap);
    case TG_INGEST_CLF:
    case TG_INGEST_COMBINED: return tg_ingest__clf(p, line, len, emit, ud, why, cap);
    case TG_INGEST_JSONL: return tg_ingest__jsonl(p, line, len, emit, ud, why, cap);
    }
    snprintf(why, cap, "unknown format");
    return -1;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

long tg_ingest__pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1; /* a '%' without two digits after it */
            int hi = hexval((unsigned char)s[i + 1]);
            int lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    if (cap) out[o] = '\0';
    return (long)o;
}

int tg_ingest__query_param(const char *q, size_t n, const char *name, const char **val,
                           size_t *vlen)
{
    size_t nlen = strlen(name);
    int found = 0;
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && q[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && q[eq] != '=')
            eq++;
        /* The name as sent may itself be escaped (cf%5Fapi%5Fkey): compare it decoded.
         * An exact comparison, so x_cf_api_key and cf_api_key_hint are other parameters. */
        char dn[128];
        long dl = eq - i < sizeof dn ? tg_ingest__pct_decode(q + i, eq - i, dn, sizeof dn) : -1;
        if (dl == (long)nlen && memcmp(dn, name, nlen) == 0) {
            /* A second one: the client added it, and which the origin took is unknown. */
            if (found) return 2;
            found = 1;
            *val = eq < end ? q + eq + 1 : q + end;
            *vlen = eq < end ? end - eq - 1 : 0;
        }
        i = end + 1;
    }
    return found;
}

int tg_ingest__uint(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int tg_ingest__seconds_us(const char *s, size_t n, int64_t *out)
{
    size_t dot = 0;
    while (dot < n && s[dot] != '.')
        dot++;
    int64_t whole;
    if (tg_ingest__uint(s, dot, &whole) != 0 || whole > 100000000) return -1;
    int64_t frac = 0, scale = 100000;
    if (dot < n) {
        if (dot + 1 == n) return -1;
        for (size_t i = dot + 1; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') return -1;
            frac += (s[i] - '0') * scale; /* past microseconds: digits ignored */
            scale /= 10;
        }
    }
    *out = whole * 1000000 + frac;
    return 0;
}

int64_t tg_ingest__utc_us(int year, int mon, int day, int hour, int min, int sec)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1970 || year > 9999 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] ||
        hour > 23 || min > 59 || sec > 60 || hour < 0 || min < 0 || sec < 0)
        return -1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (mon == 2 && day == 29 && !leap) return -1;
    /* days from civil (Howard Hinnant's algorithm) */
    int y = year - (mon <= 2);
    int era = y / 400;
    int yoe = y - era * 400;
    int doy = (153 * (mon + (mon > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + doe - 719468;
    return ((days * 86400) + hour * 3600 + min * 60 + sec) * 1000000LL;
}

static int num(const char *s, size_t n, int *out)
{
    int64_t v;
    if (tg_ingest__uint(s, n, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

int tg_ingest__clf_time(const char *s, size_t n, int64_t *out)
{
    /* dd/Mon/yyyy:HH:MM:SS +hhmm */
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (n != 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[14] != ':' || s[17] != ':' ||
        s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
        return -1;
    int day, year, hh, mm, ss, zh, zm, mon = 0;
    for (int i = 0; i < 12; i++)
        if (memcmp(months + 3 * i, s + 3, 3) == 0) mon = i + 1;
    if (!mon || num(s, 2, &day) || num(s + 7, 4, &year) || num(s + 12, 2, &hh) ||
        num(s + 15, 2, &mm) || num(s + 18, 2, &ss) || num(s + 22, 2, &zh) || num(s + 24, 2, &zm) ||
        zh > 23 || zm > 59)
        return -1;
    int64_t t = tg_ingest__utc_us(year, mon, day, hh, mm, ss);
    if (t < 0) return -1;
    int64_t off = (zh * 3600LL + zm * 60) * 1000000LL;
    *out = s[21] == '+' ? t - off : t + off; /* local = UTC + offset */
    return 0;
}

int tg_ingest__key_param(tg_ingest_rec_t *rec, const char *q, size_t n, const char *name,
                         int layers, char *why, size_t cap)
{
    const char *v;
    size_t vn;
    int found = tg_ingest__query_param(q, n, name, &v, &vn);
    if (found == 2) {
        snprintf(why, cap, "the key parameter %.64s is given twice", name);
        return -1;
    }
    return found ? tg_ingest__set_key(rec, v, vn, layers, why, cap) : 0;
}

int tg_ingest__set_key(tg_ingest_rec_t *rec, const char *v, size_t n, int layers, char *why,
                       size_t cap)
{
    if (n >= sizeof rec->key) {
        snprintf(why, cap, "API key longer than %zu bytes", sizeof rec->key - 1);
        return -1;
    }
    memcpy(rec->key, v, n);
    long len = (long)n;
    for (int i = 0; i < layers; i++) {
        len = tg_ingest__pct_decode(rec->key, (size_t)len, rec->key, sizeof rec->key);
        if (len < 0) {
            snprintf(why, cap, "API key parameter has a broken %%-escape");
            return -1;
        }
    }
    for (long i = 0; i < len; i++)
        if ((unsigned char)rec->key[i] < 0x20 || rec->key[i] == 0x7f) {
            snprintf(why, cap, "API key has a control character");
            return -1;
        }
    rec->key[len] = '\0';
    rec->key_len = (size_t)len;
    return 0;
}
