/* The audit record's canonical form, its hash chain and the verifier: see audit.h and
 * docs/audit.md ("Chain format"). Format 2's canonical form is each field as a 4-byte
 * length and its bytes; format 1's (records before migration 16) a compact JSON array (no
 * spaces; strings with only '"', '\\' and control characters escaped). Either can be
 * recomputed without tollgate from an export, byte for byte. */
#include "types/audit.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <yajl/yajl_gen.h>

#include "util/clock.h"
#include "util/dec.h"
#include "util/jplain.h"
#include "util/utf8.h"

static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";

void tg_audit_head_init(tg_audit_head_t *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->last_hash, zeros, sizeof zeros);
}

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up again on every
 * digest, which cost more than the digest of a record. And one digest context and one yajl
 * generator per thread, freed when it ends: EVP_Digest allocates and frees a context per
 * call (three a call record), and a generator per record was a tenth of its data's cost. */
static EVP_MD *sha256_md;
static pthread_key_t scratch_key;

typedef struct scratch {
    EVP_MD_CTX *md;
    yajl_gen gen;
} scratch_t;

static void scratch_free(void *p)
{
    scratch_t *s = p;
    EVP_MD_CTX_free(s->md);
    if (s->gen) yajl_gen_free(s->gen);
    free(s);
}

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    pthread_key_create(&scratch_key, scratch_free);
}

/* This thread's scratch, NULL when out of memory. */
static scratch_t *scratch(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sha256_fetch);
    scratch_t *s = pthread_getspecific(scratch_key);
    if (s) return s;
    if (!(s = calloc(1, sizeof *s))) return NULL;
    s->md = EVP_MD_CTX_new();
    s->gen = yajl_gen_alloc(NULL);
    if (s->gen) yajl_gen_config(s->gen, yajl_gen_validate_utf8, 1); /* the call data's escaper */
    if (!s->md || !s->gen || pthread_setspecific(scratch_key, s) != 0) {
        scratch_free(s);
        return NULL;
    }
    return s;
}

/* 32 bytes as 64 lowercase hex digits. Not snprintf: a call record hashes three values and
 * itself, on the writer's path, and 128 snprintf calls were a tenth of its CPU. */
static void to_hex(const unsigned char md[32], char hex[64])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
}

static void sha256_hex(const void *p, size_t n, char hex[TG_AUDIT_HEX])
{
    scratch_t *s = scratch();
    const EVP_MD *md_alg = sha256_md ? sha256_md : EVP_sha256();
    unsigned char md[32];
    unsigned len = 0;
    if (!s || EVP_DigestInit_ex2(s->md, md_alg, NULL) != 1 || EVP_DigestUpdate(s->md, p, n) != 1 ||
        EVP_DigestFinal_ex(s->md, md, &len) != 1)
        EVP_Digest(p, n, md, &len, md_alg, NULL);
    to_hex(md, hex);
    hex[64] = '\0';
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

/* The canonical form is written by yajl's generator (one buffer, no allocation per value:
 * it runs for every call record on the writer's path, where building it with jansson cost
 * a third of the writer's time). Strings go out as stored: yajl escapes '"', '\\' and the
 * control characters, and passes every other byte as it is. */
static int gen_text(yajl_gen g, const char *v)
{
    return v ? yajl_gen_string(g, (const unsigned char *)v, strlen(v)) : yajl_gen_null(g);
}

/* An erasable value as hashed: "sha256:HEX" of the value (of the value it stood for, once
 * erased), into out; its length. */
#define SHA_PREFIX "sha256:"
static size_t erasable(const char *v, char out[80])
{
    char e[80];
    tg_audit_erased(v, e);
    size_t pre = sizeof TG_AUDIT_ERASED - 1, n = sizeof SHA_PREFIX - 1;
    memcpy(out, SHA_PREFIX, n);
    memcpy(out + n, e + pre, 65);
    return n + 64;
}

static int gen_erasable(yajl_gen g, const char *v)
{
    if (!v) return yajl_gen_null(g);
    char out[80];
    size_t n = erasable(v, out);
    return yajl_gen_string(g, (const unsigned char *)out, n);
}

/* The canonical form of r into g's buffer: 0, or -1. */
static int canonical(yajl_gen g, const tg_audit_rec_t *r)
{
    int st = yajl_gen_array_open(g);
    st |= gen_text(g, TG_AUDIT_FORMAT);
    st |= gen_text(g, r->day);
    st |= yajl_gen_integer(g, r->seq);
    st |= yajl_gen_integer(g, r->ts_us);
    st |= gen_text(g, r->kind);
    st |= gen_text(g, r->actor);
    st |= gen_text(g, r->action);
    st |= gen_text(g, r->object);
    st |= gen_text(g, r->tenant);
    st |= r->event_id ? yajl_gen_integer(g, r->event_id) : yajl_gen_null(g);
    st |= gen_text(g, r->data);
    st |= gen_erasable(g, r->before);
    st |= gen_erasable(g, r->after);
    st |= gen_erasable(g, r->client_ip);
    st |= gen_erasable(g, r->path);
    st |= gen_text(g, r->prev_hash);
    st |= yajl_gen_array_close(g);
    return st == yajl_gen_status_ok ? 0 : -1;
}

/* Format 1: the JSON array, by yajl. NULL when out of memory. */
static char *canonical_v1(const tg_audit_rec_t *r, size_t *len)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    size_t n = 0;
    char *out = NULL;
    if (g && canonical(g, r) == 0 && yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok &&
        (out = malloc(n + 1)) != NULL) {
        memcpy(out, buf, n);
        out[n] = '\0';
        *len = n;
    }
    if (g) yajl_gen_free(g);
    return out;
}

/* ---- format 2: length-prefixed fields ----------------------------------------------------
 * Each of the 16 values of format 1, in the same order, as a 4-byte big-endian length and
 * its bytes (an integer as its decimal text; NULL as the length 0xFFFFFFFF and no bytes):
 * nothing to escape, so it is copied, not generated. Format 1's yajl generator was a fifth
 * of the writer's CPU on audited traffic (bench/RESULTS.md). */
#define V2_FIELDS 16
#define V2_NULL   0xFFFFFFFFu

typedef struct v2_field {
    const char *p;
    size_t n;
} v2_field_t;

static void v2_text(v2_field_t *f, const char *v)
{
    f->p = v;
    f->n = v ? strlen(v) : 0;
}

/* Decimal text of v into buf (not snprintf: this runs for every call record). */
static void v2_int(v2_field_t *f, int64_t v, char buf[TG_DEC_MAX])
{
    f->p = tg_dec_i64(v, buf);
    f->n = (size_t)(buf + TG_DEC_MAX - f->p);
}

/* Format 2's bytes into out (malloc'd when they do not fit in cap bytes: *heap set). */
static char *canonical_v2(const tg_audit_rec_t *r, char *out, size_t cap, size_t *len, int *heap)
{
    v2_field_t f[V2_FIELDS];
    char num[4][TG_DEC_MAX], er[4][80];
    v2_text(&f[0], TG_AUDIT_FORMAT_V2);
    v2_text(&f[1], r->day);
    v2_int(&f[2], r->seq, num[0]);
    v2_int(&f[3], r->ts_us, num[1]);
    v2_text(&f[4], r->kind);
    v2_text(&f[5], r->actor);
    v2_text(&f[6], r->action);
    v2_text(&f[7], r->object);
    v2_text(&f[8], r->tenant);
    if (r->event_id)
        v2_int(&f[9], r->event_id, num[2]);
    else
        v2_text(&f[9], NULL);
    v2_text(&f[10], r->data);
    const char *erasables[4] = {r->before, r->after, r->client_ip, r->path};
    for (int i = 0; i < 4; i++) {
        f[11 + i].p = erasables[i] ? er[i] : NULL;
        f[11 + i].n = erasables[i] ? erasable(erasables[i], er[i]) : 0;
    }
    v2_text(&f[15], r->prev_hash);
    size_t need = 1;
    for (int i = 0; i < V2_FIELDS; i++)
        need += 4 + f[i].n;
    *heap = need > cap;
    if (*heap && !(out = malloc(need))) return NULL;
    char *o = out;
    for (int i = 0; i < V2_FIELDS; i++) {
        uint32_t n = f[i].p ? (uint32_t)f[i].n : V2_NULL;
        *o++ = (char)(n >> 24);
        *o++ = (char)(n >> 16);
        *o++ = (char)(n >> 8);
        *o++ = (char)n;
        if (f[i].p) memcpy(o, f[i].p, f[i].n);
        o += f[i].p ? f[i].n : 0;
    }
    *o = '\0';
    *len = (size_t)(o - out);
    return out;
}

char *tg_audit_canonical(const tg_audit_rec_t *r, size_t *len)
{
    size_t n = 0;
    int heap;
    char *out = r->format == 1   ? canonical_v1(r, &n)
                : r->format == 2 ? canonical_v2(r, NULL, 0, &n, &heap)
                                 : NULL;
    if (out && len) *len = n;
    return out;
}

int tg_audit_hash(const tg_audit_rec_t *rec, char hex[TG_AUDIT_HEX])
{
    if (rec->format == 2) {
        char buf[2048], *c;
        size_t n;
        int heap;
        if (!(c = canonical_v2(rec, buf, sizeof buf, &n, &heap))) return -1;
        sha256_hex(c, n, hex);
        if (heap) free(c);
        return 0;
    }
    if (rec->format != 1) return -1;
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    size_t n = 0;
    int ret = -1;
    if (g && canonical(g, rec) == 0 && yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok) {
        sha256_hex(buf, n, hex);
        ret = 0;
    }
    if (g) yajl_gen_free(g);
    return ret;
}

int tg_audit_link(tg_audit_head_t *head, tg_audit_rec_t *rec)
{
    char day[11];
    tg_utc_day(rec->ts_us, day);
    if (strcmp(day, head->last_day) < 0) memcpy(day, head->last_day, sizeof day);
    if (rec->format == 0) rec->format = TG_AUDIT_FORMAT_NOW;
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

int tg_audit_day_bound(int64_t lo, int64_t hi, const char *day, int after,
                       int (*day_from)(int64_t x, char day[11], void *ud), void *ud, int64_t *out)
{
    /* f(x) = day of the first record with id >= x is non-decreasing in x whatever gaps
     * the ids have (a purge, a deleted record), so the search is on x, not on records. */
    int64_t end = hi + 1;
    while (lo < end) {
        int64_t mid = lo + (end - lo) / 2;
        char d[11];
        if (day_from(mid, d, ud) != 0) return -1;
        int c = strcmp(d, day);
        if (after ? c > 0 : c >= 0)
            end = mid;
        else
            lo = mid + 1;
    }
    *out = lo;
    return 0;
}

/* ---- call records ---------------------------------------------------------------------- */

/* The call data is written here rather than by yajl's generator: ten members, almost all
 * plain ASCII, where yajl's per-value state checks, UTF-8 validation and sprintf for each
 * integer were ~12k instructions a record on the writer (bench/proxy/profile.sh writer).
 * The text is yajl's byte for byte: no spaces, integers in decimal, and any string that is
 * not plain printable ASCII (or holds '"' or '\\') escaped by yajl itself. */
typedef struct jout {
    char *buf;
    size_t cap, len; /* len < cap always: room for the NUL */
    int bad, members;
    yajl_gen g; /* the escaper of the strings that need it */
} jout_t;

static void jo_put(jout_t *o, const char *p, size_t n)
{
    if (n >= o->cap - o->len) {
        o->bad = 1;
        return;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void jo_str(jout_t *o, const char *p, size_t n)
{
    if (tg_jplain_prefix(p, n) == n) {
        jo_put(o, "\"", 1);
        jo_put(o, p, n);
        jo_put(o, "\"", 1);
        return;
    }
    const unsigned char *b;
    size_t bn;
    if (yajl_gen_string(o->g, (const unsigned char *)p, n) == yajl_gen_status_ok &&
        yajl_gen_get_buf(o->g, &b, &bn) == yajl_gen_status_ok)
        jo_put(o, (const char *)b, bn);
    else
        o->bad = 1;
    yajl_gen_clear(o->g);
    yajl_gen_reset(o->g, NULL);
}

static void jo_key(jout_t *o, const char *key)
{
    if (o->members++) jo_put(o, ",", 1);
    jo_put(o, "\"", 1);
    jo_put(o, key, strlen(key));
    jo_put(o, "\":", 2);
}

/* An event field as a JSON string; bytes an upstream sent that are not UTF-8 become '?'
 * (the field is metadata to read, not evidence of the bytes). */
static void jo_field(jout_t *o, const char *key, const char *f)
{
    char tmp[256];
    size_t n = strnlen(f, sizeof tmp);
    tg_utf8_clean(tmp, f, n);
    jo_key(o, key);
    jo_str(o, tmp, n);
}

static void jo_int(jout_t *o, const char *key, int64_t v)
{
    char tmp[TG_DEC_MAX];
    const char *p = tg_dec_i64(v, tmp);
    jo_key(o, key);
    jo_put(o, p, (size_t)(tmp + TG_DEC_MAX - p));
}

/* A copy of field f (cap bytes) at *o, cleaned to UTF-8, NUL-terminated; NULL when empty
 * and opt. */
static const char *put_text(char **o, const char *f, size_t cap, int opt)
{
    size_t n = strnlen(f, cap);
    if (opt && n == 0) return NULL;
    char *r = *o;
    tg_utf8_clean(r, f, n);
    r[n] = '\0';
    *o += n + 1;
    return r;
}

/* A body's SHA-256 (audit.bodies: hash) as a member: lowercase hex. */
static void jo_sha(jout_t *o, const char *key, const unsigned char sha[32])
{
    char hex[64];
    to_hex(sha, hex);
    jo_key(o, key);
    jo_str(o, hex, sizeof hex);
}

/* The bodies' hashes (docs/audit.md, "Bodies"), first in byte order: body_in_sha256,
 * body_out_sha256, body_out_state (only when the hash does not cover the whole answer). */
static void jo_bodies(jout_t *o, const tg_event_t *ev)
{
    if (ev->body_hashed & TG_BODY_IN) jo_sha(o, "body_in_sha256", ev->body_sha_in);
    if (ev->body_hashed & TG_BODY_OUT) {
        jo_sha(o, "body_out_sha256", ev->body_sha_out);
        if (ev->body_out != TG_BODY_WHOLE)
            jo_field(o, "body_out_state", tg_body_out_name(ev->body_out));
    }
}

/* The data object, keys in byte order (as JSON_SORT_KEYS would write them). */
static int call_data(jout_t *o, const tg_event_t *ev)
{
    jo_put(o, "{", 1);
    if (ev->bodies_state) /* "bodies" sorts before "body_..." */
        jo_field(o, "bodies", tg_bodies_state_name(ev->bodies_state));
    if (ev->body_hashed) jo_bodies(o, ev);
    jo_int(o, "cost_micros", ev->cost_micros);
    jo_field(o, "decision", tg_outcome_name(ev->outcome));
    jo_field(o, "key", ev->key_id);
    if (ev->model[0]) jo_field(o, "model", ev->model);
    if (ev->reason[0]) jo_field(o, "reason", ev->reason);
    if (ev->rpc_method[0]) jo_field(o, "rpc_method", ev->rpc_method);
    jo_int(o, "status", ev->status);
    if (ev->tokens_in >= 0) jo_int(o, "tokens_in", ev->tokens_in);
    if (ev->tokens_out >= 0) jo_int(o, "tokens_out", ev->tokens_out);
    if (ev->tool[0]) jo_field(o, "tool", ev->tool);
    jo_put(o, "}", 1);
    return o->bad ? -1 : 0;
}

int tg_audit_from_event(const tg_event_t *ev, tg_audit_rec_t *rec, char *buf, size_t cap)
{
    if (!tg_audit_is_call(ev)) return 0;
    if (cap < TG_AUDIT_DATA_MAX) return -1;
    scratch_t *s = scratch();
    if (!s) return -1;
    /* The texts' room (464 bytes) is kept at the end whatever the data takes. */
    jout_t jo = {.buf = buf, .cap = cap - 464, .g = s->gen};
    if (call_data(&jo, ev) != 0) return -1;
    size_t n = jo.len;
    buf[n] = '\0';
    char *o = buf + n + 1;
    memset(rec, 0, sizeof *rec);
    rec->ts_us = ev->ts_us;
    rec->kind = "call";
    rec->action = "call";
    rec->event_id = ev->id;
    rec->data = buf;
    rec->actor = put_text(&o, ev->key_id, sizeof ev->key_id, 0);
    rec->object = put_text(&o, ev->route, sizeof ev->route, 0);
    rec->tenant = put_text(&o, ev->tenant, sizeof ev->tenant, 0);
    rec->client_ip = put_text(&o, ev->client_ip, sizeof ev->client_ip, 1);
    rec->path = put_text(&o, ev->path, sizeof ev->path, 1);
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
    if (r->format != 1 && r->format != 2)
        return fault(v, TG_AUDIT_EDITED, r->id, "record %" PRId64 ": edited (format %d is none)",
                     r->id, r->format);
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
