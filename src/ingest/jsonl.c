/* tollgate's own JSON access log (observe/accesslog.h), read back into events: a way to
 * rebuild a store's events from the log lines. What the log holds is restored (time to
 * the millisecond, request_id, tenant, key_id, route, method, path, status, outcome,
 * reason, count, latency, bytes, upstream, client_ip); what it does not hold (model,
 * tokens, tool, cost) is unknown, and the driver prices the event by its route. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"

static void set(char *dst, size_t cap, json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    tg_event_str(dst, cap, s, s ? strlen(s) : 0);
}

/* "2026-03-01T10:00:00.123Z" */
static int iso_time(const char *s, int64_t *out)
{
    int64_t y, mo, d, h, mi, se, ms = 0;
    size_t n = s ? strlen(s) : 0;
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[n - 1] != 'Z' || tg_ingest__uint(s, 4, &y) || tg_ingest__uint(s + 5, 2, &mo) ||
        tg_ingest__uint(s + 8, 2, &d) || tg_ingest__uint(s + 11, 2, &h) ||
        tg_ingest__uint(s + 14, 2, &mi) || tg_ingest__uint(s + 17, 2, &se))
        return -1;
    if (n == 24 && s[19] == '.') {
        if (tg_ingest__uint(s + 20, 3, &ms)) return -1;
    } else if (n != 20) {
        return -1;
    }
    int64_t t = tg_ingest__utc_us((int)y, (int)mo, (int)d, (int)h, (int)mi, (int)se);
    if (t < 0) return -1;
    *out = t + ms * 1000;
    return 0;
}

static int nonneg(json_t *o, const char *name, int64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = json_integer_value(v);
    return 0;
}

int tg_ingest__jsonl(tg_ingest_parser_t *p, const char *line, size_t len, tg_ingest_emit_fn emit,
                     void *ud, char *why, size_t cap)
{
    (void)p;
    json_error_t je;
    json_t *o = json_loadb(line, len, 0, &je);
    if (!o || !json_is_object(o)) {
        snprintf(why, cap, o ? "not a JSON object" : "invalid JSON at byte %d: %s", je.position,
                 je.text);
        json_decref(o);
        return -1;
    }
    tg_ingest_rec_t rec;
    memset(&rec, 0, sizeof rec);
    tg_event_t *ev = &rec.ev;
    const char *outcome = json_string_value(json_object_get(o, "outcome"));
    json_t *status = json_object_get(o, "status"), *lat = json_object_get(o, "latency_ms");
    int rc = -1;
    if (iso_time(json_string_value(json_object_get(o, "time")), &ev->ts_us) != 0) {
        snprintf(why, cap, "bad or missing time");
        goto out;
    }
    if (!json_is_integer(status) || json_integer_value(status) < 0 ||
        json_integer_value(status) > 999) {
        snprintf(why, cap, "bad or missing status");
        goto out;
    }
    ev->status = (int32_t)json_integer_value(status);
    if (!outcome ||
        (strcmp(outcome, "billable") && strcmp(outcome, "failed") && strcmp(outcome, "rejected"))) {
        snprintf(why, cap, "bad or missing outcome");
        goto out;
    }
    ev->outcome = outcome[0] == 'b'   ? TG_OUTCOME_BILLABLE
                  : outcome[0] == 'f' ? TG_OUTCOME_FAILED
                                      : TG_OUTCOME_REJECTED;
    rec.has_outcome = 1;
    if (lat &&
        !(json_is_number(lat) && json_number_value(lat) >= 0 && json_number_value(lat) < 1e12)) {
        snprintf(why, cap, "bad latency_ms");
        goto out;
    }
    ev->latency_us = lat ? (int64_t)(json_number_value(lat) * 1000.0 + 0.5) : 0;
    if (nonneg(o, "bytes_in", &ev->bytes_in) || nonneg(o, "bytes_out", &ev->bytes_out) ||
        nonneg(o, "count", &ev->count)) {
        snprintf(why, cap, "bad bytes_in, bytes_out or count");
        goto out;
    }
    const char *tenant = json_string_value(json_object_get(o, "tenant"));
    if (tenant && strlen(tenant) >= sizeof ev->tenant) { /* cut, it could name another */
        snprintf(why, cap, "tenant longer than %zu bytes", sizeof ev->tenant - 1);
        goto out;
    }
    set(ev->request_id, sizeof ev->request_id, o, "request_id");
    set(ev->tenant, sizeof ev->tenant, o, "tenant");
    set(ev->key_id, sizeof ev->key_id, o, "key_id");
    set(ev->route, sizeof ev->route, o, "route");
    set(ev->method, sizeof ev->method, o, "method");
    set(ev->path, sizeof ev->path, o, "path");
    set(ev->reason, sizeof ev->reason, o, "reason");
    set(ev->upstream, sizeof ev->upstream, o, "upstream");
    set(ev->client_ip, sizeof ev->client_ip, o, "client_ip");
    /* An aggregate of refusals has no request id of its own: its line is its identity. */
    if (ev->request_id[0]) {
        rec.rid = ev->request_id;
        rec.rid_len = strlen(ev->request_id);
    }
    rec.raw = line;
    rec.raw_len = len;
    rc = emit(ud, &rec);
out:
    json_decref(o);
    return rc;
}
