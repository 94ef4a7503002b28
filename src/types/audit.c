/* The audit record's canonical form, its hash chain and the verifier: see audit.h and
 * docs/audit.md. The canonical form is dumped by jansson (JSON_COMPACT: no spaces, strings
 * as UTF-8 with only '"', '\\' and control characters escaped), so any JSON library that
 * writes the same array byte for byte can check a chain without tollgate. */
#include "types/audit.h"

#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "util/clock.h"

static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";

void tg_audit_head_init(tg_audit_head_t *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->last_hash, zeros, sizeof zeros);
}

static void sha256_hex(const void *p, size_t n, char hex[TG_AUDIT_HEX])
{
    unsigned char md[32];
    unsigned len = 0;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

void tg_audit_erased(const char *v, char out[80])
{
    size_t pre = sizeof TG_AUDIT_ERASED - 1;
    if (strncmp(v, TG_AUDIT_ERASED, pre) == 0 && strlen(v) == pre + 64) {
        memcpy(out, v, pre + 65);
        return;
    }
    memcpy(out, TG_AUDIT_ERASED, pre);
    sha256_hex(v, strlen(v), out + pre);
}

/* An erasable value as the canonical form holds it: null, or "sha256:HEX" of the value
 * (of the value it stood for, once erased). */
static json_t *erasable(const char *v)
{
    if (!v) return json_null();
    char e[80], out[80];
    tg_audit_erased(v, e);
    snprintf(out, sizeof out, "sha256:%s", e + sizeof TG_AUDIT_ERASED - 1);
    return json_string(out);
}

/* Stored text as is (a row edited by hand may hold any bytes: they are hashed, not
 * refused). */
static json_t *text(const char *v)
{
    return v ? json_stringn_nocheck(v, strlen(v)) : json_null();
}

char *tg_audit_canonical(const tg_audit_rec_t *r, size_t *len)
{
    json_t *a = json_array();
    if (!a) return NULL;
    json_t *items[] = {
        json_string(TG_AUDIT_FORMAT),
        text(r->day),
        json_integer(r->seq),
        json_integer(r->ts_us),
        text(r->kind),
        text(r->actor),
        text(r->action),
        text(r->object),
        text(r->tenant),
        r->event_id ? json_integer(r->event_id) : json_null(),
        text(r->data),
        erasable(r->before),
        erasable(r->after),
        erasable(r->client_ip),
        erasable(r->path),
        text(r->prev_hash),
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
        ok &= items[i] && json_array_append_new(a, items[i]) == 0;
    char *s = ok ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(a);
    if (s && len) *len = strlen(s);
    return s;
}

int tg_audit_hash(const tg_audit_rec_t *rec, char hex[TG_AUDIT_HEX])
{
    size_t n;
    char *c = tg_audit_canonical(rec, &n);
    if (!c) return -1;
    sha256_hex(c, n, hex);
    free(c);
    return 0;
}

int tg_audit_link(tg_audit_head_t *head, tg_audit_rec_t *rec)
{
    char day[11];
    tg_utc_day(rec->ts_us, day);
    if (strcmp(day, head->last_day) < 0) memcpy(day, head->last_day, sizeof day);
    rec->id = head->last_id + 1;
    rec->seq = strcmp(day, head->last_day) == 0 ? head->last_seq + 1 : 1;
    memcpy(rec->day, day, sizeof day);
    memcpy(rec->prev_hash, head->last_hash, TG_AUDIT_HEX);
    if (tg_audit_hash(rec, rec->hash) != 0) return -1;
    head->last_id = rec->id;
    head->last_seq = rec->seq;
    memcpy(head->last_day, rec->day, sizeof day);
    memcpy(head->last_hash, rec->hash, TG_AUDIT_HEX);
    return 0;
}

/* ---- call records ---------------------------------------------------------------------- */

/* A JSON string of an event field; bytes an upstream sent that are not UTF-8 become '?'
 * (the field is metadata to read, not evidence of the bytes). */
static json_t *field(const char *f)
{
    json_t *j = json_string(f);
    if (j) return j;
    char tmp[256];
    size_t n = strnlen(f, sizeof tmp - 1);
    for (size_t i = 0; i < n; i++)
        tmp[i] = (unsigned char)f[i] < 0x80 ? f[i] : '?';
    tmp[n] = '\0';
    return json_string(tmp);
}

int tg_audit_from_event(const tg_event_t *ev, tg_audit_rec_t *rec, char *data, size_t cap)
{
    if (!ev->model[0] && !ev->tool[0] && !ev->rpc_method[0]) return 0;
    json_t *o = json_object();
    if (!o) return -1;
    json_object_set_new(o, "key", field(ev->key_id));
    if (ev->model[0]) json_object_set_new(o, "model", field(ev->model));
    if (ev->tool[0]) json_object_set_new(o, "tool", field(ev->tool));
    if (ev->rpc_method[0]) json_object_set_new(o, "rpc_method", field(ev->rpc_method));
    if (ev->tokens_in >= 0) json_object_set_new(o, "tokens_in", json_integer(ev->tokens_in));
    if (ev->tokens_out >= 0) json_object_set_new(o, "tokens_out", json_integer(ev->tokens_out));
    json_object_set_new(o, "cost_micros", json_integer(ev->cost_micros));
    json_object_set_new(o, "status", json_integer(ev->status));
    json_object_set_new(o, "decision", json_string(tg_outcome_name(ev->outcome)));
    if (ev->reason[0]) json_object_set_new(o, "reason", field(ev->reason));
    size_t n = json_dumpb(o, data, cap - 1, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (n == 0 || n >= cap) return -1;
    data[n] = '\0';
    memset(rec, 0, sizeof *rec);
    rec->ts_us = ev->ts_us;
    rec->kind = "call";
    rec->actor = ev->key_id;
    rec->action = "call";
    rec->object = ev->route;
    rec->tenant = ev->tenant;
    rec->event_id = ev->id;
    rec->data = data;
    rec->client_ip = ev->client_ip[0] ? ev->client_ip : NULL;
    rec->path = ev->path[0] ? ev->path : NULL;
    return 1;
}

/* ---- verification ---------------------------------------------------------------------- */

const char *tg_audit_fault_name(tg_audit_fault_t f)
{
    switch (f) {
    case TG_AUDIT_OK: return "ok";
    case TG_AUDIT_EDITED: return "edited";
    case TG_AUDIT_DELETED: return "deleted";
    case TG_AUDIT_INSERTED: return "inserted";
    case TG_AUDIT_REORDERED: return "reordered";
    case TG_AUDIT_HEAD: return "head";
    }
    return "unknown";
}

void tg_audit_verify_init(tg_audit_verifier_t *v, int64_t (*find)(const char *, void *), void *ud)
{
    memset(v, 0, sizeof *v);
    v->find = find;
    v->ud = ud;
}

static int fault(tg_audit_verifier_t *v, tg_audit_fault_t f, int64_t id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fault(tg_audit_verifier_t *v, tg_audit_fault_t f, int64_t id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof v->why, fmt, ap);
    va_end(ap);
    v->fault = f;
    v->fault_id = id;
    return f;
}

/* r does not follow the previous record: where does it come from? */
static int misplaced(tg_audit_verifier_t *v, const tg_audit_rec_t *r)
{
    int64_t x = v->find ? v->find(r->prev_hash, v->ud) : 0;
    if (x < 0) return -1;
    if (x > r->id)
        return fault(v, TG_AUDIT_REORDERED, r->id,
                     "record %" PRId64 ": out of order (the chain puts it after record %" PRId64
                     ")",
                     r->id, x);
    if (x > 0 && x < v->last_id)
        return fault(v, TG_AUDIT_INSERTED, x + 1,
                     "record %" PRId64 ": not part of the chain (record %" PRId64
                     " follows record %" PRId64 ")",
                     x + 1, r->id, x);
    if (r->id != v->last_id + 1)
        return fault(v, TG_AUDIT_DELETED, r->id,
                     "record %" PRId64 ": records %" PRId64 "..%" PRId64 " before it deleted",
                     r->id, v->last_id + 1, r->id - 1);
    return fault(v, TG_AUDIT_EDITED, v->last_id,
                 "record %" PRId64 ": edited (record %" PRId64
                 " does not follow its hash, which was rewritten)",
                 v->last_id, r->id);
}

int tg_audit_verify_next(tg_audit_verifier_t *v, const tg_audit_rec_t *r)
{
    if (v->fault) return v->fault;
    char h[TG_AUDIT_HEX];
    if (tg_audit_hash(r, h) != 0) return -1;
    if (strcmp(h, r->hash) != 0)
        return fault(v, TG_AUDIT_EDITED, r->id,
                     "record %" PRId64 ": edited (its content does not match its hash)", r->id);
    if (v->n == 0) {
        v->first_id = r->id;
        memcpy(v->first_day, r->day, sizeof v->first_day);
        memcpy(v->anchor, r->prev_hash, TG_AUDIT_HEX);
    } else if (strcmp(r->prev_hash, v->last_hash) != 0) {
        return misplaced(v, r);
    } else if (r->id != v->last_id + 1) {
        return fault(v, TG_AUDIT_REORDERED, r->id,
                     "record %" PRId64 ": renumbered (it follows record %" PRId64 ")", r->id,
                     v->last_id);
    } else if (strcmp(r->day, v->last_day) == 0 ? r->seq != v->last_seq + 1
                                                : strcmp(r->day, v->last_day) < 0 || r->seq != 1) {
        return fault(v, TG_AUDIT_REORDERED, r->id,
                     "record %" PRId64 ": day %s seq %" PRId64 " does not follow %s seq %" PRId64,
                     r->id, r->day, r->seq, v->last_day, v->last_seq);
    }
    v->n++;
    v->last_id = r->id;
    v->last_seq = r->seq;
    memcpy(v->last_day, r->day, sizeof v->last_day);
    memcpy(v->last_hash, r->hash, TG_AUDIT_HEX);
    return TG_AUDIT_OK;
}

int tg_audit_verify_end(tg_audit_verifier_t *v, const tg_audit_head_t *head)
{
    if (v->fault || !head) return v->fault;
    if (v->last_id > head->last_id)
        return fault(v, TG_AUDIT_INSERTED, head->last_id + 1,
                     "record %" PRId64 ": inserted after the chain head (record %" PRId64 ")",
                     head->last_id + 1, head->last_id);
    if (v->last_id < head->last_id)
        return fault(v, TG_AUDIT_DELETED, v->last_id + 1,
                     "record %" PRId64 ": deleted (the chain head is record %" PRId64 ")",
                     v->last_id + 1, head->last_id);
    if (v->n > 0 && strcmp(v->last_hash, head->last_hash) != 0)
        return fault(v, TG_AUDIT_EDITED, v->last_id,
                     "record %" PRId64 ": edited (its hash is not the chain head's)", v->last_id);
    return TG_AUDIT_OK;
}
