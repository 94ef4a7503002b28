/* libFuzzer target: the access-log parsers (src/ingest/cloudfront.c, apigw.c, clf.c,
 * jsonl.c and field.c under them), the code that reads files a user did not write.
 *
 * Input: byte 0 picks the format (low 3 bits) and whether --key-field / --tenant-field
 * are set (bits 3-4); the rest is the log, split into lines at '\n' as the driver does.
 * Checks beyond the sanitizers: every record's strings are NUL-terminated within their
 * fields, its key is under TG_INGEST_KEY_MAX and free of control bytes, its status is 0-999
 * and its time not before 1970; the path of a clf or apigw record holds no '?' (a query may
 * carry a key, and is never stored); a malformed line says why; and parsing the same line
 * again, and with a '\r' after it, gives the same records. */
#include "fuzz.h"
#include "ingest/ingest.h"

typedef struct seen {
    fz_log_t log;
    tg_ingest_format_t fmt;
} seen_t;

static void field_ok(const char *f, size_t cap)
{
    FZ_CHECK(memchr(f, '\0', cap) != NULL);
}

static int on_rec(void *ud, tg_ingest_rec_t *rec)
{
    seen_t *s = ud;
    const tg_event_t *e = &rec->ev;
    field_ok(e->tenant, sizeof e->tenant);
    field_ok(e->key_id, sizeof e->key_id);
    field_ok(e->route, sizeof e->route);
    field_ok(e->method, sizeof e->method);
    field_ok(e->path, sizeof e->path);
    field_ok(e->reason, sizeof e->reason);
    field_ok(e->cache, sizeof e->cache);
    field_ok(e->client_ip, sizeof e->client_ip);
    field_ok(e->request_id, sizeof e->request_id);
    field_ok(e->upstream, sizeof e->upstream);
    FZ_CHECK(rec->key_len < TG_INGEST_KEY_MAX && rec->key[rec->key_len] == '\0');
    for (size_t i = 0; i < rec->key_len; i++)
        FZ_CHECK((unsigned char)rec->key[i] >= 0x20 && rec->key[i] != 0x7f);
    FZ_CHECK(e->status >= 0 && e->status <= 999);
    FZ_CHECK(e->ts_us >= 0);
    FZ_CHECK(e->bytes_in >= 0 && e->bytes_out >= 0 && e->latency_us >= 0);
    if (s->fmt != TG_INGEST_CLOUDFRONT && s->fmt != TG_INGEST_JSONL)
        FZ_CHECK(strchr(e->path, '?') == NULL);
    FZ_CHECK(rec->raw && rec->raw_len > 0);
    fz_log_add(&s->log, e, sizeof *e);
    fz_log_add(&s->log, rec->key, rec->key_len + 1);
    fz_log_add(&s->log, &rec->rid_len, sizeof rec->rid_len);
    if (rec->rid) fz_log_add(&s->log, rec->rid, rec->rid_len);
    return 0;
}

static int parse(tg_ingest_parser_t *p, const uint8_t *line, size_t n, seen_t *s)
{
    char why[256] = "";
    int rc = tg_ingest_parse(p, (const char *)line, n, on_rec, s, why, sizeof why);
    FZ_CHECK(rc == 0 || rc == -1);
    if (rc < 0) FZ_CHECK(why[0] != '\0' && memchr(why, '\0', sizeof why));
    fz_log_add(&s->log, &rc, sizeof rc);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    tg_ingest_format_t fmt = (tg_ingest_format_t)(data[0] % 5);
    const char *key = data[0] & 8 ? (fmt == TG_INGEST_APIGW ? "key" : "token") : NULL;
    const char *tenant = data[0] & 16 ? (fmt == TG_INGEST_APIGW ? "customer" : "user") : NULL;
    if (fmt == TG_INGEST_CLOUDFRONT || fmt == TG_INGEST_JSONL) tenant = NULL;
    tg_ingest_parser_t a, b;
    tg_ingest_parser_init(&a, fmt, key, tenant);
    tg_ingest_parser_init(&b, fmt, key, tenant);
    const uint8_t *p = data + 1;
    size_t left = size - 1;
    uint8_t *copy = malloc(left + 1);
    FZ_CHECK(copy != NULL);
    while (left) {
        const uint8_t *nl = memchr(p, '\n', left);
        size_t n = nl ? (size_t)(nl - p) : left;
        seen_t s1 = {.fmt = fmt}, s2 = {.fmt = fmt};
        parse(&a, p, n, &s1);
        /* the same line again on a second parser fed the same lines, with a '\r' after it */
        memcpy(copy, p, n);
        copy[n] = '\r';
        parse(&b, copy, n + 1, &s2);
        /* the logs hold the events and keys by value (parsers zero an event first) */
        FZ_CHECK(s1.log.len == s2.log.len && memcmp(s1.log.p, s2.log.p, s1.log.len) == 0);
        free(s1.log.p);
        free(s2.log.p);
        if (!nl) break;
        left -= n + 1;
        p = nl + 1;
    }
    free(copy);
    return 0;
}
