/* Notifier payloads: see payload.h. jansson builds the JSON (it escapes and checks UTF-8),
 * OpenSSL computes the HMAC. */
#include "notify/payload.h"

#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

/* A JSON string of a fixed-size field: jansson refuses invalid UTF-8, so on refusal every
 * byte above 0x7f becomes '?' (receivers get valid JSON whatever a producer wrote). */
json_t *tg_notify_json_text(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    json_t *j = json_stringn(s, n);
    if (j) return j;
    char *copy = malloc(n + 1);
    if (!copy) return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)s[i] > 0x7f ? '?' : s[i];
    copy[n] = '\0';
    j = json_stringn(copy, n);
    free(copy);
    return j;
}
#define TEXT(n, f) tg_notify_json_text((n)->f, sizeof(n)->f)

static json_t *number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *when(int64_t us)
{
    char buf[25];
    if (us <= 0) return json_null();
    tg_utc_iso(us, buf);
    return json_string(buf);
}

/* Sets key to v, taking v; a NULL v (out of memory) fails the whole object. */
static int put(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1;
}

static char *dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(j);
    return s;
}

char *tg_notify_json(const tg_notice_t *n)
{
    json_t *o = json_object();
    if (!o) return NULL;
    if (put(o, "id", TEXT(n, id)) || put(o, "kind", TEXT(n, kind)) ||
        put(o, "alarm", TEXT(n, alarm)) || put(o, "alarm_kind", TEXT(n, alarm_kind)) ||
        put(o, "tenant", TEXT(n, tenant)) || put(o, "state", TEXT(n, state)) ||
        put(o, "severity", TEXT(n, severity)) || put(o, "value", number(n->value)) ||
        put(o, "threshold", number(n->threshold)) || put(o, "baseline", number(n->baseline)) ||
        put(o, "window", json_integer(n->window_s)) || put(o, "time", when(n->time_us)) ||
        put(o, "started", when(n->started_us)) || put(o, "summary", TEXT(n, summary))) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

int tg_notify_signature(const char *secret, size_t secret_len, const char *body, size_t len,
                        char out[TG_NOTIFY_SIG_SIZE])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)body, len, mac,
              &mlen) ||
        mlen != 32)
        return -1;
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < mlen; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[7 + 2 * mlen] = '\0';
    return 0;
}

/* A label or annotation: Alertmanager wants strings. */
static int put_str(json_t *o, const char *key, const char *v, size_t cap)
{
    if (!*v) return 0; /* an empty label is the same as none to Alertmanager */
    return put(o, key, tg_notify_json_text(v, cap));
}

static int put_num(json_t *o, const char *key, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.6g", isfinite(v) ? v : 0.0);
    return put(o, key, json_string(buf));
}

/* One alert of the list (tg_notify_alertmanager_json); NULL when out of memory. */
static json_t *am_alert(const tg_notice_t *n, const char *generator_url, int64_t ends_us)
{
    json_t *a = json_object(), *labels = json_object(), *ann = json_object();
    int bad = !a || !labels || !ann;
    if (!bad)
        bad = put_str(labels, "alertname", n->alarm[0] ? n->alarm : "tollgate", sizeof n->alarm) ||
              put_str(labels, "tenant", n->tenant, sizeof n->tenant) ||
              put_str(labels, "severity", n->severity[0] ? n->severity : "warning",
                      sizeof n->severity) ||
              put_str(labels, "alarm_kind", n->alarm_kind, sizeof n->alarm_kind) ||
              put(labels, "source", json_string("tollgate")) ||
              put_str(ann, "summary", n->summary, sizeof n->summary) ||
              put_num(ann, "value", n->value) || put_num(ann, "threshold", n->threshold) ||
              put_num(ann, "baseline", n->baseline) ||
              put_str(ann, "notice_id", n->id, sizeof n->id) ||
              put_str(ann, "state", n->state, sizeof n->state);
    if (!bad) {
        bad = json_object_set(a, "labels", labels) || json_object_set(a, "annotations", ann) ||
              put(a, "startsAt", when(n->started_us > 0 ? n->started_us : n->time_us));
        if (!bad && !strncmp(n->state, "resolved", sizeof n->state))
            bad = put(a, "endsAt", when(n->time_us));
        else if (!bad && ends_us > 0)
            bad = put(a, "endsAt", when(ends_us));
        if (!bad && generator_url && *generator_url)
            bad = put(a, "generatorURL", json_string(generator_url));
    }
    json_decref(labels);
    json_decref(ann);
    if (bad) {
        json_decref(a);
        return NULL;
    }
    return a;
}

char *tg_notify_alertmanager_json(const tg_notice_t *n, const char *generator_url, int64_t ends_us)
{
    return tg_notify_alertmanager_list_json(n, 1, generator_url, ends_us);
}

char *tg_notify_alertmanager_list_json(const tg_notice_t *v, size_t n, const char *generator_url,
                                       int64_t ends_us)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *a = am_alert(&v[i], generator_url, ends_us);
        if (!a || json_array_append_new(arr, a) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return dump(arr);
}
