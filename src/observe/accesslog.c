/* Access log: one JSON line per usage event; see accesslog.h.
 *
 * A line is assembled into a stack buffer from constant keys and values, then
 * fwrite()n into a 1 MiB stdio buffer that the writer flushes once per batch:
 * one write(2) per batch rather than per event. Escaping is jansson's: a
 * string value that is plain printable ASCII (no '"', no '\\') needs none and
 * is copied; any other goes through json_dumpb(). Building a jansson object
 * per line instead cost ~4 us (40-odd allocations), most of a core at 200k
 * events/s on the thread that also feeds the store. Invalid UTF-8 is replaced
 * first, because json_string() refuses it and a path cut at 255 bytes can end
 * inside a multibyte character.
 *
 * "stdout" writes to a dup() of fd 1 through our own FILE, so our buffering
 * never depends on (or changes) what the rest of the process did to stdout. */
#include "observe/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/dec.h"
#include "util/jplain.h"
#include "util/log.h"

#define BUF_BYTES (1u << 20)

struct tg_accesslog {
    FILE *f;
    char *path; /* NULL for stdout */
    char *buf;  /* stdio buffer, BUF_BYTES, owned here (setvbuf does not free it) */
    int64_t last_warn_us;
};

/* Copies src into dst replacing each byte that does not start a valid UTF-8
 * sequence (overlong forms, surrogates and code points past U+10FFFF included,
 * as jansson rejects them) with U+FFFD. dst must hold 3 * strlen(src) + 1. */
static void utf8_clean(const char *src, char *dst)
{
    const unsigned char *s = (const unsigned char *)src;
    char *d = dst;
    while (*s) {
        unsigned c = *s;
        size_t n = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            *d++ = (char)*s++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4, cp = c & 0x07;
        }
        size_t i = 1;
        for (; n && i < n; i++) {
            if ((s[i] & 0xC0) != 0x80) break; /* also stops at the NUL */
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        int ok = n && i == n;
        if (ok && n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ok = 0;
        if (ok && n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ok = 0;
        if (ok) {
            memcpy(d, s, n);
            d += n;
            s += n;
        } else {
            memcpy(d, "\xEF\xBF\xBD", sizeof "\xEF\xBF\xBD" - 1); /* U+FFFD */
            d += 3;
            s += 1;
        }
    }
    *d = '\0';
}

/* A jansson string from a fixed event field (at most 255 bytes + NUL). */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    char clean[3 * 256 + 1];
    if (strlen(s) >= 256) return json_string("");
    utf8_clean(s, clean);
    return json_string(clean);
}

/* The line being built. len counts every byte asked for, also past cap, so
 * the caller learns the size it needs (as snprintf does). */
struct out {
    char *buf;
    size_t cap, len;
    int failed;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n <= o->cap) memcpy(o->buf + o->len, s, n);
    o->len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

/* Writes s as a JSON string. Printable ASCII other than '"' and '\' needs no
 * escaping, so it is copied (most fields, every line); anything else is
 * escaped by jansson. */
static void put_str(struct out *o, const char *s)
{
    size_t n = tg_jplain_span(s);
    if (!s[n]) {
        PUT_LIT(o, "\"");
        put(o, s, n);
        PUT_LIT(o, "\"");
        return;
    }
    json_t *j = jstr(s);
    char tmp[2048]; /* 255 bytes, each at worst \u00XX */
    size_t len = j ? json_dumpb(j, tmp, sizeof tmp, JSON_ENCODE_ANY) : 0;
    if (len == 0 || len > sizeof tmp) {
        o->failed = 1;
    } else {
        put(o, tmp, len);
    }
    json_decref(j);
}

/* Decimal digits by hand, not snprintf (util/dec.h): five numbers a line. */
static void put_i64(struct out *o, int64_t v)
{
    char tmp[TG_DEC_MAX];
    const char *p = tg_dec_i64(v, tmp);
    put(o, p, (size_t)(tmp + TG_DEC_MAX - p));
}

/* Exactly three digits of v (0..999): the fraction of milliseconds and seconds. */
static void put_3digits(struct out *o, int v)
{
    char d[3] = {(char)('0' + v / 100), (char)('0' + v / 10 % 10), (char)('0' + v % 10)};
    put(o, d, 3);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of wall_us; the seconds part is cached per
 * thread, since consecutive lines mostly share it. */
static void put_time(struct out *o, int64_t wall_us)
{
    static _Thread_local int64_t cached_sec = INT64_MIN;
    static _Thread_local char cached[32];
    int64_t sec = wall_us >= 0 ? wall_us / 1000000 : (wall_us - 999999) / 1000000;
    if (sec != cached_sec) {
        char iso[25];
        tg_utc_iso(sec * 1000000, iso); /* "....:SS.000Z" */
        memcpy(cached, iso, 19);
        cached[19] = '\0';
        cached_sec = sec;
    }
    int ms = (int)((wall_us - sec * 1000000) / 1000);
    PUT_LIT(o, "\"");
    put(o, cached, 19);
    PUT_LIT(o, ".");
    put_3digits(o, ms);
    PUT_LIT(o, "Z\"");
}

long tg_accesslog_format(const tg_event_t *ev, char *buf, size_t cap)
{
    struct out o = {.buf = buf, .cap = cap ? cap - 1 : 0}; /* room for the NUL */
    PUT_LIT(&o, "{\"time\":");
    put_time(&o, ev->ts_us);
    PUT_LIT(&o, ",\"request_id\":");
    put_str(&o, ev->request_id);
    PUT_LIT(&o, ",\"tenant\":");
    put_str(&o, ev->tenant);
    PUT_LIT(&o, ",\"key_id\":");
    put_str(&o, ev->key_id);
    PUT_LIT(&o, ",\"route\":");
    put_str(&o, ev->route);
    PUT_LIT(&o, ",\"method\":");
    put_str(&o, ev->method);
    PUT_LIT(&o, ",\"path\":");
    put_str(&o, ev->path);
    if (ev->auth[0]) { /* how it authenticated, and a JWT's sub (issue 14) */
        PUT_LIT(&o, ",\"auth\":");
        put_str(&o, ev->auth);
    }
    if (ev->subject[0]) {
        PUT_LIT(&o, ",\"subject\":");
        put_str(&o, ev->subject);
    }
    PUT_LIT(&o, ",\"status\":");
    put_i64(&o, ev->status);
    PUT_LIT(&o, ",\"outcome\":");
    put_str(&o, tg_outcome_name((tg_outcome_t)ev->outcome));
    if (ev->reason[0]) {
        PUT_LIT(&o, ",\"reason\":");
        put_str(&o, ev->reason);
    }
    if (tg_event_count(ev) > 1 || strcmp(ev->reason, TG_REASON_FLOOD) == 0) {
        /* An aggregate: the one line of many refusals (meter/flood.h). */
        PUT_LIT(&o, ",\"count\":");
        put_i64(&o, tg_event_count(ev));
    }
    /* Whole microseconds: milliseconds with exactly three decimals. */
    int64_t lat = ev->latency_us > 0 ? ev->latency_us : 0;
    PUT_LIT(&o, ",\"latency_ms\":");
    put_i64(&o, lat / 1000);
    PUT_LIT(&o, ".");
    put_3digits(&o, (int)(lat % 1000));
    PUT_LIT(&o, ",\"bytes_in\":");
    put_i64(&o, ev->bytes_in);
    PUT_LIT(&o, ",\"bytes_out\":");
    put_i64(&o, ev->bytes_out);
    PUT_LIT(&o, ",\"upstream\":");
    put_str(&o, ev->upstream);
    PUT_LIT(&o, ",\"client_ip\":");
    put_str(&o, ev->client_ip);
    PUT_LIT(&o, "}");
    if (o.failed) return -1;
    if (o.len <= o.cap) buf[o.len] = '\0';
    return (long)o.len;
}

static FILE *open_dest(const char *dest, tg_err_t *err)
{
    int fd;
    if (strcmp(dest, "stdout") == 0) {
        fd = dup(STDOUT_FILENO);
        if (fd < 0) {
            tg_err_set(err, "access log: dup(stdout): %s", strerror(errno));
            return NULL;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    } else {
        fd = open(dest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            tg_err_set(err, "access log: %s: %s", dest, strerror(errno));
            return NULL;
        }
    }
    FILE *f = fdopen(fd, "a");
    if (!f) {
        tg_err_set(err, "access log: fdopen: %s", strerror(errno));
        close(fd);
    }
    return f;
}

int tg_accesslog_open(const char *dest, tg_accesslog_t **out, tg_err_t *err)
{
    *out = NULL;
    if (!dest || !dest[0] || strcmp(dest, "off") == 0) return 0;
    tg_accesslog_t *log = calloc(1, sizeof *log);
    if (!log) return tg_err_set(err, "access log: out of memory");
    log->buf = malloc(BUF_BYTES);
    if (!log->buf) goto oom;
    if (strcmp(dest, "stdout") != 0 && !(log->path = strdup(dest))) goto oom;
    log->f = open_dest(dest, err);
    if (!log->f) goto fail;
    setvbuf(log->f, log->buf, _IOFBF, BUF_BYTES);
    *out = log;
    return 0;
oom:
    tg_err_set(err, "access log: out of memory");
fail:
    free(log->path);
    free(log->buf);
    free(log);
    return -1;
}

void tg_accesslog_write(tg_accesslog_t *log, const tg_event_t *ev)
{
    if (!log) return;
    /* Fits any event: 15 keys, fixed-size fields at worst 6x escaped. */
    char line[8192];
    long n = tg_accesslog_format(ev, line, sizeof line - 1);
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 1) { /* cannot happen with today's field sizes */
        char *big = malloc((size_t)n + 2);
        if (!big) return;
        if (tg_accesslog_format(ev, big, (size_t)n + 1) == n) {
            big[n] = '\n';
            fwrite(big, 1, (size_t)n + 1, log->f);
        }
        free(big);
        return;
    }
    line[n] = '\n';
    fwrite(line, 1, (size_t)n + 1, log->f);
}

int tg_accesslog_flush(tg_accesslog_t *log)
{
    if (!log) return 0;
    if (fflush(log->f) == 0 && !ferror(log->f)) return 0;
    int e = errno;
    clearerr(log->f);
    int64_t now = tg_mono_us();
    if (log->last_warn_us == 0 || now - log->last_warn_us >= 60 * 1000000LL) {
        log->last_warn_us = now;
        TG_WARN("access log %s: write failed: %s (lines lost)", log->path ? log->path : "stdout",
                strerror(e));
    }
    return -1;
}

int tg_accesslog_reopen(tg_accesslog_t *log, tg_err_t *err)
{
    if (!log) return 0;
    tg_accesslog_flush(log);
    if (!log->path) return 0;
    FILE *f = open_dest(log->path, err);
    if (!f) return -1;
    fclose(log->f); /* buffer is empty after the flush; we keep owning log->buf */
    log->f = f;
    setvbuf(log->f, log->buf, _IOFBF, BUF_BYTES);
    return 0;
}

void tg_accesslog_close(tg_accesslog_t *log)
{
    if (!log) return;
    tg_accesslog_flush(log);
    fclose(log->f);
    free(log->path);
    free(log->buf);
    free(log);
}
