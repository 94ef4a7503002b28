/* The admin API's shared helpers: see call.h. */
#include "adminapi/call.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "types/text.h"
#include "util/pct.h"

json_t *tg_adminapi__error(call_t *c, int status, const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->status = status;
    /* The message may echo bytes of the path or query that are not UTF-8 (or a %.80s cut
     * through a character), which json_string refuses: they become '?' (an answer of NULL
     * would drop the connection). */
    return json_pack("{s:{s:s,s:o}}", "error", "type", type, "message", tg_adminapi__text(msg));
}

json_t *tg_adminapi__store_error(call_t *c, const tg_err_t *err)
{
    return tg_adminapi__error(c, 500, "store", "%s", err->msg[0] ? err->msg : "the store failed");
}

void tg_adminapi__object(call_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->object, sizeof c->object, fmt, ap);
    va_end(ap);
    size_t n = strlen(c->object);
    while (n && !tg_text_valid_utf8(c->object))
        c->object[--n] = '\0';
}

/* A JSON string of text that may hold bytes that are not UTF-8 (a row written by hand):
 * they become '?', as in the CLI's JSON. */
json_t *tg_adminapi__text(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    char buf[256];
    tg_text_ascii_only(s, buf, sizeof buf);
    return json_string(buf);
}

/* ---- reading the body ------------------------------------------------------------ */

/* The member names a body may have, NULL-ended. */
json_t *tg_adminapi__check_body(call_t *c, const char *const *allowed, int required)
{
    if (!c->req->body || c->req->body_len == 0) {
        if (!required) return NULL;
        return tg_adminapi__error(c, 400, "invalid_request", "a JSON object body is required");
    }
    json_error_t je;
    c->body = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!c->body)
        return tg_adminapi__error(c, 400, "invalid_json",
                                  "the body is not JSON: line %d, column %d: %s", je.line,
                                  je.column, je.text);
    if (!json_is_object(c->body))
        return tg_adminapi__error(c, 400, "invalid_request", "the body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(c->body, k, v)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], k) != 0)
            i++;
        if (!allowed[i])
            return tg_adminapi__error(c, 400, "invalid_request", "unknown member \"%.64s\"", k);
    }
    return NULL;
}

/* An optional string member; NULL when absent; *bad set (an error answer) for another type. */
const char *tg_adminapi__member_text(call_t *c, const char *name, json_t **bad)
{
    json_t *v = c->body ? json_object_get(c->body, name) : NULL;
    if (!v) return NULL;
    if (!json_is_string(v)) {
        *bad = tg_adminapi__error(c, 400, "invalid_request", "\"%s\" must be a string", name);
        return NULL;
    }
    return json_string_value(v);
}

/* A string member that is checked as the CLI checks --name: NULL = none; *bad on error. */
const char *tg_adminapi__member_name(call_t *c, size_t cap, json_t **bad)
{
    const char *name = tg_adminapi__member_text(c, "name", bad);
    if (*bad || !name) return name;
    if (strlen(name) >= cap) {
        *bad = tg_adminapi__error(c, 422, "invalid_value", "name is too long (at most %zu bytes)",
                                  cap - 1);
        return NULL;
    }
    if (!tg_text_valid_label(name)) {
        *bad =
            tg_adminapi__error(c, 422, "invalid_value", "name must not contain control characters");
        return NULL;
    }
    return name;
}

/* See call.h. */
int tg_adminapi__need_tenant(call_t *c, const char *tenant, json_t **out)
{
    tg_tenant_t t;
    tg_err_t err = {{0}};
    /* Bytes that are not UTF-8 name no tenant (and PostgreSQL would refuse them: a 500). */
    int r = tg_text_valid_utf8(tenant) ? tg_store_tenant_get(c->s, tenant, &t, &err)
                                       : TG_STORE_NOTFOUND;
    if (r == 0) return 0;
    *out = r == TG_STORE_NOTFOUND
               ? tg_adminapi__error(c, 404, "not_found", "no tenant \"%.80s\"", tenant)
               : tg_adminapi__store_error(c, &err);
    return -1;
}

/* A query string's members: name=value pairs, each value percent-decoded into its slot
 * (cap bytes); an unknown name or a repeated one is an error. */
json_t *tg_adminapi__read_query(call_t *c, qparam_t *ps, size_t n)
{
    const char *q = c->req->query;
    while (q && *q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t kl = eq ? (size_t)(eq - q) : len;
        size_t i = 0;
        while (i < n && !(strlen(ps[i].name) == kl && strncmp(ps[i].name, q, kl) == 0))
            i++;
        if (len == 0) { /* "a=1&&b=2" */
        } else if (i == n) {
            return tg_adminapi__error(c, 400, "invalid_request", "unknown query parameter \"%.*s\"",
                                      (int)(kl > 64 ? 64 : kl), q);
        } else if (ps[i].seen++) {
            return tg_adminapi__error(c, 400, "invalid_request",
                                      "query parameter \"%s\" given twice", ps[i].name);
        } else if (!eq || tg_pct_decode(eq + 1, len - kl - 1, ps[i].slot, ps[i].cap) != 0) {
            return tg_adminapi__error(c, 400, "invalid_request",
                                      "invalid value of query parameter \"%s\"", ps[i].name);
        }
        q += len;
        if (*q == '&') q++;
    }
    return NULL;
}
