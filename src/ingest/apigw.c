/* API Gateway JSON access logs: one JSON object per record, one per line or several
 * concatenated on one line (as Firehose delivers them), read with jansson one value at a
 * time (JSON_DISABLE_EOF_CHECK says where each ended). The fields are the $context
 * variables users put in their log format, by their usual names; values are strings
 * (numbers are accepted too) and "-" is a missing value:
 *   requestId                     the record's id
 *   requestTimeEpoch | requestTime  milliseconds since the epoch | "10/Oct/2000:13:55:36 +0000"
 *   httpMethod, path | resourcePath | routeKey's path, status, responseLength (bytes out),
 *   responseLatency | integrationLatency (ms), ip | sourceIp, apiKeyId (kept as key_id:
 *   it is an id, not a secret), and the tenant from --tenant-field (default tenant_id,
 *   e.g. $context.authorizer.tenant_id); --key-field names a field holding a raw key. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"

#define MAX_EPOCH_MS   253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define MAX_LATENCY_MS 100000000000LL    /* as the other formats: x 1000 fits in int64 */

/* The field's text ("-" and JSON null are missing: NULL); a number is formatted into
 * buf. */
static const char *text(json_t *o, const char *name, char *buf, size_t cap)
{
    json_t *v = json_object_get(o, name);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        return strcmp(s, "-") == 0 || !s[0] ? NULL : s;
    }
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, cap, "%.3f", json_real_value(v));
        return buf;
    }
    return NULL;
}

static int count(json_t *o, const char *name, int64_t *out)
{
    char buf[32];
    const char *s = text(o, name, buf, sizeof buf);
    *out = 0;
    return s ? tg_ingest__uint(s, strlen(s), out) : 0;
}

static int record(tg_ingest_parser_t *p, json_t *o, const char *raw, size_t raw_len,
                  tg_ingest_emit_fn emit, void *ud, char *why, size_t cap)
{
    if (!json_is_object(o)) {
        snprintf(why, cap, "not a JSON object");
        return -1;
    }
    tg_ingest_rec_t rec;
    memset(&rec, 0, sizeof rec);
    tg_event_t *ev = &rec.ev;
    char b1[32], b2[32];
    const char *ep = text(o, "requestTimeEpoch", b1, sizeof b1), *rt;
    int64_t ms;
    if (ep) {
        /* Past 9999-12-31 (the dates the other formats accept) ms * 1000 would overflow. */
        if (tg_ingest__uint(ep, strlen(ep), &ms) != 0 || ms > MAX_EPOCH_MS) {
            snprintf(why, cap, "bad requestTimeEpoch");
            return -1;
        }
        ev->ts_us = ms * 1000;
    } else if ((rt = text(o, "requestTime", b1, sizeof b1))) {
        if (tg_ingest__clf_time(rt, strlen(rt), &ev->ts_us) != 0) {
            snprintf(why, cap, "bad requestTime");
            return -1;
        }
    } else {
        snprintf(why, cap, "no requestTimeEpoch or requestTime");
        return -1;
    }
    const char *st = text(o, "status", b1, sizeof b1);
    int64_t status;
    if (!st || strlen(st) != 3 || tg_ingest__uint(st, 3, &status) != 0) {
        snprintf(why, cap, "bad or missing status");
        return -1;
    }
    ev->status = (int32_t)status;
    if (count(o, "responseLength", &ev->bytes_out) != 0) {
        snprintf(why, cap, "bad responseLength");
        return -1;
    }
    int64_t lat;
    if (count(o, "responseLatency", &lat) != 0 ||
        (lat == 0 && count(o, "integrationLatency", &lat) != 0) || lat > MAX_LATENCY_MS) {
        snprintf(why, cap, "bad responseLatency");
        return -1;
    }
    ev->latency_us = lat * 1000;
    const char *s;
    if ((s = text(o, "httpMethod", b1, sizeof b1))) TG_EVENT_SET(ev, method, s, strlen(s));
    const char *rk = text(o, "routeKey", b2, sizeof b2), *sp;
    if ((s = text(o, "path", b1, sizeof b1)) || (s = text(o, "resourcePath", b1, sizeof b1)) ||
        (rk && (sp = strchr(rk, ' ')) && (s = sp + 1))) { /* routeKey: "GET /pets" */
        const char *qm = strchr(s, '?');                  /* never a query: it may carry a key */
        TG_EVENT_SET(ev, path, s, qm ? (size_t)(qm - s) : strlen(s));
    }
    if ((s = text(o, "ip", b1, sizeof b1)) || (s = text(o, "sourceIp", b1, sizeof b1)))
        TG_EVENT_SET(ev, client_ip, s, strlen(s));
    if ((s = text(o, "apiKeyId", b1, sizeof b1))) TG_EVENT_SET(ev, key_id, s, strlen(s));
    if (p->tenant_field && (s = text(o, p->tenant_field, b2, sizeof b2))) {
        if (strlen(s) >= sizeof ev->tenant) {
            snprintf(why, cap, "%s longer than %zu bytes", p->tenant_field, sizeof ev->tenant - 1);
            return -1;
        }
        TG_EVENT_SET(ev, tenant, s, strlen(s));
    }
    if (p->key_field && (s = text(o, p->key_field, b2, sizeof b2)) &&
        tg_ingest__set_key(&rec, s, strlen(s), 0, why, cap) != 0)
        return -1;
    if ((s = text(o, "requestId", b1, sizeof b1))) {
        TG_EVENT_SET(ev, request_id, s, strlen(s));
        rec.rid = s;
        rec.rid_len = strlen(s);
    }
    rec.raw = raw;
    rec.raw_len = raw_len;
    return emit(ud, &rec);
}

int tg_ingest__apigw(tg_ingest_parser_t *p, const char *line, size_t len, tg_ingest_emit_fn emit,
                     void *ud, char *why, size_t cap)
{
    size_t off = 0;
    for (int nth = 1;; nth++) {
        while (off < len && (line[off] == ' ' || line[off] == '\t' || line[off] == ','))
            off++;
        if (off >= len) return 0;
        json_error_t je;
        /* Duplicate names are refused: API Gateway does not escape $context values, so a
         * client's header can inject a second "tenant_id", and jansson keeps the last. */
        json_t *o =
            json_loadb(line + off, len - off, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            snprintf(why, cap, "record %d: invalid JSON at byte %zu: %s", nth,
                     off + (size_t)je.position, je.text);
            return -1;
        }
        size_t used = (size_t)je.position;
        char sub[256];
        int rc = record(p, o, line + off, used, emit, ud, sub, sizeof sub);
        json_decref(o);
        if (rc < 0) {
            if (nth > 1 || off + used < len)
                snprintf(why, cap, "record %d: %s", nth, sub);
            else
                snprintf(why, cap, "%s", sub);
        }
        if (rc != 0) return rc;
        if (used == 0) return 0;
        off += used;
    }
}
