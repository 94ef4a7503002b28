/* PostgreSQL store, the audit trail (the audit_ops of backend.h), as sqlite_audit.c. The
 * chain's lock is the head row, read FOR UPDATE in the appending transaction: a second
 * appender (the CLI, another gateway's writer, the other half of a split batch) waits for
 * the first to commit and then reads the head it moved, so the chain never forks. The
 * writer takes it last in its append transaction (pg_audit_calls, after usage_daily and the
 * keys), so it holds nothing another half waits for while it waits on the head. */
#include "store/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REC_COLS                                                                                   \
    "id, day, seq, ts_us, kind, actor, action, object, tenant, event_id, data, before_json, "      \
    "after_json, client_ip, path, prev_hash, hash, format"

static const pg_sql_t sql_head = {
    .slot = PS_AUDIT_HEAD,
    .sql = "SELECT last_id, last_day, last_seq, last_hash FROM audit_head WHERE id = 1"};
static const pg_sql_t sql_head_lock = {.slot = PS_AUDIT_HEAD_LOCK,
                                       .sql = "SELECT last_id, last_day, last_seq, last_hash "
                                              "FROM audit_head WHERE id = 1 FOR UPDATE"};
/* The head row, made by the first append (a second waits on the first's insert, then finds
 * the row and waits on its lock). */
static const pg_sql_t sql_head_make = {
    .slot = PS_AUDIT_HEAD_MAKE,
    .sql = "INSERT INTO audit_head (id, last_id, last_day, last_seq, last_hash) VALUES (1, 0, '', "
           "0, '0000000000000000000000000000000000000000000000000000000000000000') "
           "ON CONFLICT (id) DO NOTHING"};
static const pg_sql_t sql_insert = {.slot = PS_AUDIT_INSERT,
                                    .sql = "INSERT INTO audit (" REC_COLS
                                           ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                                           "$11, $12, $13, $14, $15, $16, $17, $18)"};
static const pg_sql_t sql_head_set = {
    .slot = PS_AUDIT_HEAD_SET,
    .sql = "UPDATE audit_head SET last_id = $1, last_day = $2, last_seq = $3, last_hash = $4 "
           "WHERE id = 1"};
static const pg_sql_t sql_range = {.slot = PS_AUDIT_RANGE,
                                   .sql = "SELECT " REC_COLS
                                          " FROM audit WHERE id >= $1 AND id < $2 ORDER BY id"};
static const pg_sql_t sql_ids = {.slot = PS_AUDIT_IDS, .sql = "SELECT min(id), max(id) FROM audit"};
static const pg_sql_t sql_day_from = {
    .slot = PS_AUDIT_DAY_FROM, .sql = "SELECT day FROM audit WHERE id >= $1 ORDER BY id LIMIT 1"};
static const pg_sql_t sql_find = {.slot = PS_AUDIT_FIND,
                                  .sql = "SELECT id FROM audit WHERE hash = $1 LIMIT 1"};
/* audit.bodies: encrypt (types/bodies.h): a call record's sealed bodies; read as hex. */
#define BODY_PAGE    256 /* blobs a page of pg_audit_bodies_each */
#define BODY_STR_(x) #x
#define BODY_STR(x)  BODY_STR_(x)
static const pg_sql_t sql_body_put = {
    .slot = PS_AUDIT_BODY_PUT,
    .sql = "INSERT INTO audit_bodies (record_id, tenant, sealed) VALUES ($1, $2, $3)"};
static const pg_sql_t sql_body_get = {
    .slot = PS_AUDIT_BODY_GET,
    .sql = "SELECT encode(b.sealed, 'hex'), a.event_id, a.tenant FROM audit_bodies b JOIN audit a "
           "ON a.id = b.record_id WHERE b.record_id = $1"};
static const pg_sql_t sql_body_each = {
    .slot = PS_AUDIT_BODY_EACH,
    .sql = "SELECT record_id, encode(sealed, 'hex') FROM audit_bodies WHERE record_id > $1 "
           "ORDER BY record_id LIMIT " BODY_STR(BODY_PAGE)};
static const pg_sql_t sql_body_reseal = {
    .slot = PS_AUDIT_BODY_RESEAL,
    .sql = "UPDATE audit_bodies SET sealed = $3 WHERE record_id = $1 AND sealed = $2"};
static const pg_sql_t sql_body_erase = {.slot = PS_AUDIT_BODY_ERASE,
                                        .sql = "DELETE FROM audit_bodies WHERE tenant = $1"};
static const pg_sql_t sql_body_purge = {.slot = PS_AUDIT_BODY_PURGE,
                                        .sql = "DELETE FROM audit_bodies WHERE record_id < $1"};

static const pg_sql_t sql_erase_sel = {
    .slot = PS_AUDIT_ERASE_SEL,
    .sql = "SELECT id, before_json, after_json, client_ip, path FROM audit WHERE tenant = $1 "
           "ORDER BY id"};
static const pg_sql_t sql_erase_set = {
    .slot = PS_AUDIT_ERASE_SET,
    .sql = "UPDATE audit SET before_json = $2, after_json = $3, client_ip = $4, path = $5 "
           "WHERE id = $1"};
static const pg_sql_t sql_erase_events = {
    .slot = PS_AUDIT_ERASE_EVENTS,
    .sql = "UPDATE usage_events SET client_ip = NULL, path = split_part(path, '?', 1) "
           "WHERE tenant = $1 AND (client_ip IS NOT NULL OR position('?' in path) > 0)"};
static const pg_sql_t sql_erase_keys = {
    .slot = PS_AUDIT_ERASE_KEYS,
    .sql = "UPDATE api_keys SET name = '' WHERE tenant_id = $1 AND name <> ''"};
/* The records before id $1: whole days, found by tg_audit_day_bound. */
static const pg_sql_t sql_purge = {.slot = PS_AUDIT_PURGE,
                                   .sql = "DELETE FROM audit WHERE id < $1"};

static void copy_val(const PGresult *r, int j, char *dst, size_t cap)
{
    const char *v = pg_val(r, 0, j);
    snprintf(dst, cap, "%s", v ? v : "");
}

static int head_read(pg_store_t *s, const pg_sql_t *q, tg_audit_head_t *h, tg_err_t *err)
{
    PGresult *r;
    int ret = q == &sql_head_lock ? pg_exec(s, &sql_head_make, NULL, NULL, "audit head", err) : 0;
    if (ret == 0) ret = pg_exec(s, q, NULL, &r, "audit head", err);
    if (ret != 0) return ret;
    tg_audit_head_init(h);
    if (PQntuples(r) != 1) { /* no row: an empty chain */
        PQclear(r);
        return 0;
    }
    h->last_id = pg_get_int64(r, 0, 0);
    copy_val(r, 1, h->last_day, sizeof h->last_day);
    h->last_seq = pg_get_int64(r, 0, 2);
    copy_val(r, 3, h->last_hash, sizeof h->last_hash);
    PQclear(r);
    return 0;
}

static int head_write(pg_store_t *s, const tg_audit_head_t *h, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_int64(&p, h->last_id);
    pg_p_text(&p, h->last_day);
    pg_p_int64(&p, h->last_seq);
    pg_p_text(&p, h->last_hash);
    return pg_exec(s, &sql_head_set, &p, NULL, "audit head", err);
}

/* Links rec after *head and inserts it; *head moves once it is inserted. */
static int put(pg_store_t *s, tg_audit_head_t *head, tg_audit_rec_t *rec, tg_err_t *err)
{
    tg_audit_head_t next = *head;
    if (tg_audit_link(&next, rec) != 0) return tg_err_set(err, "audit: out of memory");
    pg_params_t p = {0};
    pg_p_int64(&p, rec->id);
    pg_p_text(&p, rec->day);
    pg_p_int64(&p, rec->seq);
    pg_p_int64(&p, rec->ts_us);
    pg_p_text(&p, rec->kind);
    pg_p_text(&p, rec->actor ? rec->actor : "");
    pg_p_text(&p, rec->action);
    pg_p_text(&p, rec->object ? rec->object : "");
    pg_p_text(&p, rec->tenant ? rec->tenant : "");
    if (rec->event_id)
        pg_p_int64(&p, rec->event_id);
    else
        pg_p_null(&p);
    pg_p_text(&p, rec->data);
    pg_p_text(&p, rec->before);
    pg_p_text(&p, rec->after);
    pg_p_text(&p, rec->client_ip);
    pg_p_text(&p, rec->path);
    pg_p_text(&p, rec->prev_hash);
    pg_p_text(&p, rec->hash);
    pg_p_int64(&p, rec->format);
    int ret = pg_exec(s, &sql_insert, &p, NULL, "audit append", err);
    if (ret == 0) *head = next;
    return ret;
}

static int pg_audit_append(tg_store_t *base, tg_audit_rec_t *recs, size_t n, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int ret = pg_begin(s, "audit append", err);
    if (ret != 0) return ret;
    tg_audit_head_t h;
    ret = head_read(s, &sql_head_lock, &h, err);
    for (size_t i = 0; ret == 0 && i < n; i++)
        ret = put(s, &h, &recs[i], err);
    if (ret == 0) ret = head_write(s, &h, err);
    if (ret != 0) {
        pg_rollback(s);
        return ret;
    }
    return pg_commit(s, "audit append", err);
}

/* ---- the writer's call records, in chunks -------------------------------------------------
 * One statement per record was a round trip per call: 10.9k events/s on the recorder bench;
 * a prepared 128-row INSERT 24-27k. A chunk of CHUNK records is one binary COPY, linked in
 * order, as the events themselves are copied. A replayed event adds no record because the
 * events' insert says which events it stored (stored[]), so no query asks which events
 * have one and no unique index on event_id is kept (migration 16). */
#define CHUNK 512

typedef struct chunk {
    tg_audit_rec_t rec[CHUNK];
    const tg_event_t *ev[CHUNK]; /* each record's event (its sealed bodies) */
    char buf[CHUNK][TG_AUDIT_DATA_MAX];
} chunk_t;

static char *copy_opt(char *o, const char *v)
{
    return v ? pg_copy_text(o, v, strlen(v)) : pg_copy_null(o);
}

/* Record i of the chunk as a COPY tuple, columns as REC_COLS. */
static size_t copy_line(char *dst, const void *ud, size_t i)
{
    const chunk_t *c = ud;
    const tg_audit_rec_t *r = &c->rec[i];
    char *o = pg_copy_be(dst, 18, 2);
    o = pg_copy_int8(o, r->id);
    o = copy_opt(o, r->day);
    o = pg_copy_int8(o, r->seq);
    o = pg_copy_int8(o, r->ts_us);
    o = copy_opt(o, r->kind);
    o = copy_opt(o, r->actor ? r->actor : "");
    o = copy_opt(o, r->action);
    o = copy_opt(o, r->object ? r->object : "");
    o = copy_opt(o, r->tenant ? r->tenant : "");
    o = r->event_id ? pg_copy_int8(o, r->event_id) : pg_copy_null(o);
    o = copy_opt(o, r->data);
    o = copy_opt(o, r->before);
    o = copy_opt(o, r->after);
    o = copy_opt(o, r->client_ip);
    o = copy_opt(o, r->path);
    o = copy_opt(o, r->prev_hash);
    o = copy_opt(o, r->hash);
    o = pg_copy_int8(o, r->format);
    return (size_t)(o - dst);
}

/* Links the records of c[0..n) after *h and copies them in. A record's texts are UTF-8
 * already (tg_audit_from_event), so the copy's cleaning changes no hashed byte. */
static int chunk_put(pg_store_t *s, chunk_t *c, size_t n, tg_audit_head_t *h, tg_err_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (tg_audit_link(h, &c->rec[i]) != 0)
            return tg_err_set(err, "audit append: out of memory");
    int ret = pg_copy_rows(s, "COPY audit (" REC_COLS ") FROM STDIN (FORMAT binary)", n, copy_line,
                           c, NULL, "audit append", err);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        if (!tg_audit_body_of(c->ev[i], c->rec[i].event_id)) continue;
        const tg_bodies_t *b = c->ev[i]->bodies;
        pg_params_t p = {0};
        pg_p_int64(&p, c->rec[i].id);
        pg_p_text(&p, c->rec[i].tenant);
        pg_p_bytea(&p, b->sealed, b->sealed_len);
        ret = pg_exec(s, &sql_body_put, &p, NULL, "audit bodies", err);
    }
    return ret;
}

int pg_audit_calls(pg_store_t *s, const ev_run_t *evs, const int64_t *stored, tg_err_t *err)
{
    tg_audit_head_t h;
    chunk_t *c = NULL;
    size_t n = 0;
    int ret = 0;
    for (size_t i = 0; ret == 0 && i <= evs->n; i++) {
        if (i < evs->n && !ev_skip(evs, i) && stored[i] != 0) {
            const tg_event_t *ev = ev_at(evs, i);
            if (!tg_audit_is_call(ev)) goto flush;
            if (!c) { /* the first call of the batch: the chain's lock, taken last */
                if (!(c = malloc(sizeof *c))) return tg_err_set(err, "audit: out of memory");
                if ((ret = head_read(s, &sql_head_lock, &h, err)) != 0) break;
            }
            int a = tg_audit_from_event(ev, &c->rec[n], c->buf[n], sizeof c->buf[n]);
            if (a < 0) ret = tg_err_set(err, "audit: call record of event %lld", (long long)ev->id);
            /* another id than its own when another event held that */
            if (a > 0) {
                c->ev[n] = ev;
                c->rec[n++].event_id = stored[i];
            }
        }
    flush:
        if (ret == 0 && c && n > 0 && (n == CHUNK || i == evs->n)) {
            ret = chunk_put(s, c, n, &h, err);
            n = 0;
        }
    }
    if (ret == 0 && c) ret = head_write(s, &h, err);
    free(c);
    return ret;
}

static int pg_audit_head(tg_store_t *base, tg_audit_head_t *out, tg_err_t *err)
{
    return head_read((pg_store_t *)base, &sql_head, out, err);
}

static int emit_rec(pg_store_t *s, const PGresult *r, int i, const sink_t *k)
{
    (void)s;
    tg_audit_rec_t a = {0};
    a.id = pg_get_int64(r, i, 0);
    snprintf(a.day, sizeof a.day, "%s", PQgetvalue(r, i, 1));
    a.seq = pg_get_int64(r, i, 2);
    a.ts_us = pg_get_int64(r, i, 3);
    a.kind = pg_val(r, i, 4);
    a.actor = pg_val(r, i, 5);
    a.action = pg_val(r, i, 6);
    a.object = pg_val(r, i, 7);
    a.tenant = pg_val(r, i, 8);
    a.event_id = pg_get_int64(r, i, 9);
    a.data = pg_val(r, i, 10);
    a.before = pg_val(r, i, 11);
    a.after = pg_val(r, i, 12);
    a.client_ip = pg_val(r, i, 13);
    a.path = pg_val(r, i, 14);
    snprintf(a.prev_hash, sizeof a.prev_hash, "%s", PQgetvalue(r, i, 15));
    snprintf(a.hash, sizeof a.hash, "%s", PQgetvalue(r, i, 16));
    a.format = (int)pg_get_int64(r, i, 17);
    return SINK_CALL(tg_audit_rec_t, k, &a);
}

typedef struct probe {
    pg_store_t *s;
    tg_err_t *err;
} probe_t;

static int day_from(int64_t x, char day[11], void *ud)
{
    probe_t *p = ud;
    pg_params_t q = {0};
    pg_p_int64(&q, x);
    PGresult *r;
    int ret = pg_exec(p->s, &sql_day_from, &q, &r, "audit days", p->err);
    if (ret != 0) return ret;
    if (PQntuples(r) == 1)
        copy_val(r, 0, day, 11);
    else
        ret = tg_err_set(p->err, "audit days: no record from id %lld", (long long)x);
    PQclear(r);
    return ret;
}

/* The id range [*lo, *hi) of the records of days from..to (NULL: unbounded). */
static int day_ids(pg_store_t *s, const char *from, const char *to, int64_t *lo, int64_t *hi,
                   tg_err_t *err)
{
    *lo = INT64_MIN;
    *hi = INT64_MAX;
    if (!from && !to) return 0;
    PGresult *r;
    int ret = pg_exec(s, &sql_ids, NULL, &r, "audit days", err);
    if (ret != 0) return ret;
    int empty = PQgetisnull(r, 0, 0);
    int64_t first = pg_get_int64(r, 0, 0), last = pg_get_int64(r, 0, 1);
    PQclear(r);
    if (empty) return 0;
    probe_t p = {s, err};
    if (from && tg_audit_day_bound(first, last, from, 0, day_from, &p, lo) != 0) return -1;
    if (to && tg_audit_day_bound(first, last, to, 1, day_from, &p, hi) != 0) return -1;
    return 0;
}

static int pg_audit_range(tg_store_t *base, const char *from_day, const char *to_day,
                          int (*cb)(const tg_audit_rec_t *, void *), void *ud, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    int64_t lo, hi;
    if (day_ids(s, from_day, to_day, &lo, &hi, err) != 0) return -1;
    pg_params_t p = {0};
    pg_p_int64(&p, lo);
    pg_p_int64(&p, hi);
    return pg_each_row(s, &sql_range, &p, emit_rec, SINK(tg_audit_rec_t, cb, ud), "audit range",
                       err);
}

static int pg_audit_find(tg_store_t *base, const char *hash, int64_t *id, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, hash);
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_find, &p, &r, "audit find", err);
    if (ret != 0) return ret;
    *id = PQntuples(r) > 0 ? pg_get_int64(r, 0, 0) : 0;
    PQclear(r);
    return 0;
}

/* The erased form of column j of row i (NULL stays NULL). */
static const char *erased_val(const PGresult *r, int i, int j, char out[80])
{
    const char *v = pg_val(r, i, j);
    if (!v) return NULL;
    tg_audit_erased(v, out);
    return out;
}

static int erase_txn(pg_store_t *s, const char *tenant, int64_t *changed, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_text(&p, tenant);
    PGresult *r;
    int ret = pg_exec(s, &sql_erase_sel, &p, &r, "tenant erase", err);
    if (ret != 0) return ret;
    for (int i = 0; ret == 0 && i < PQntuples(r); i++) {
        char e[4][80];
        pg_params_t u = {0};
        pg_p_int64(&u, pg_get_int64(r, i, 0));
        for (int c = 0; c < 4; c++)
            pg_p_text(&u, erased_val(r, i, 1 + c, e[c]));
        ret = pg_exec(s, &sql_erase_set, &u, NULL, "tenant erase", err);
        *changed += ret == 0;
    }
    PQclear(r);
    const pg_sql_t *more[] = {&sql_erase_events, &sql_erase_keys, &sql_body_erase};
    for (int i = 0; ret == 0 && i < 3; i++) {
        PGresult *m;
        if ((ret = pg_exec(s, more[i], &p, &m, "tenant erase", err)) != 0) break;
        *changed += pg_changes(m);
        PQclear(m);
    }
    return ret;
}

static int pg_audit_erase(tg_store_t *base, const char *tenant, int64_t *changed, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    *changed = 0;
    int ret = pg_begin(s, "tenant erase", err);
    if (ret != 0) return ret;
    if ((ret = erase_txn(s, tenant, changed, err)) != 0) {
        pg_rollback(s);
        return ret;
    }
    return pg_commit(s, "tenant erase", err);
}

static int pg_audit_purge(tg_store_t *base, const char *before_day, int64_t *deleted, tg_err_t *err)
{
    pg_store_t *s = (pg_store_t *)base;
    tg_audit_head_t h;
    int64_t lo, hi;
    *deleted = 0;
    int ret = head_read(s, &sql_head, &h, err);
    if (ret != 0) return ret;
    /* The head's day is always kept: the chain's last record anchors the next append. */
    const char *day = strcmp(before_day, h.last_day) < 0 ? before_day : h.last_day;
    if ((ret = day_ids(s, day, NULL, &lo, &hi, err)) != 0) return ret;
    pg_params_t p = {0};
    pg_p_int64(&p, lo);
    PGresult *r;
    ret = pg_exec(s, &sql_purge, &p, &r, "audit purge", err);
    if (ret != 0) return ret;
    *deleted = pg_changes(r);
    PQclear(r);
    /* Their bodies (and any left by a purge stopped between the two). */
    if ((ret = pg_exec(s, &sql_body_purge, &p, &r, "audit purge", err)) != 0) return ret;
    *deleted += pg_changes(r);
    PQclear(r);
    return 0;
}

/* Hex (encode(x, 'hex')) into a malloc'd buffer. */
static unsigned char *unhex(const char *h, size_t *n)
{
    size_t len = strlen(h) / 2;
    unsigned char *out = malloc(len ? len : 1);
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = h[2 * i + k];
            v = v << 4 | (unsigned)(ch <= '9' ? ch - '0' : (ch | 32) - 'a' + 10);
        }
        out[i] = (unsigned char)v;
    }
    *n = len;
    return out;
}

static int pg_audit_body_get(tg_store_t *base, int64_t record_id, tg_audit_body_t *out,
                             tg_err_t *err)
{
    memset(out, 0, sizeof *out);
    pg_params_t p = {0};
    pg_p_int64(&p, record_id);
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_body_get, &p, &r, "audit bodies", err);
    if (ret != 0) return ret;
    if (PQntuples(r) == 0) {
        ret = TG_STORE_NOTFOUND;
    } else {
        out->record_id = record_id;
        out->event_id = pg_get_int64(r, 0, 1);
        snprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(r, 0, 2));
        if (!(out->sealed = unhex(PQgetvalue(r, 0, 0), &out->len)))
            ret = tg_err_set(err, "audit bodies: out of memory");
    }
    PQclear(r);
    return ret;
}

/* A page of BODY_PAGE blobs at a time, by record id (each up to 2 x audit.max_body): a
 * whole audit_bodies table read at once would be held in memory by libpq. */
static int pg_audit_bodies_each(tg_store_t *base,
                                int (*cb)(int64_t, const unsigned char *, size_t, void *), void *ud,
                                tg_err_t *err)
{
    int64_t after = INT64_MIN;
    for (;;) {
        pg_params_t p = {0};
        pg_p_int64(&p, after);
        PGresult *r;
        int ret = pg_exec((pg_store_t *)base, &sql_body_each, &p, &r, "audit bodies", err);
        if (ret != 0) return ret;
        int rows = PQntuples(r);
        for (int i = 0; ret == 0 && i < rows; i++) {
            size_t n = 0;
            unsigned char *b = unhex(PQgetvalue(r, i, 1), &n);
            after = pg_get_int64(r, i, 0);
            ret = b ? cb(after, b, n, ud) : tg_err_set(err, "audit bodies: out of memory");
            free(b);
        }
        PQclear(r);
        if (ret != 0 || rows < BODY_PAGE) return ret;
    }
}

static int pg_audit_body_reseal(tg_store_t *base, int64_t record_id, const unsigned char *from,
                                const unsigned char *to, size_t n, tg_err_t *err)
{
    pg_params_t p = {0};
    pg_p_int64(&p, record_id);
    pg_p_bytea(&p, from, n);
    pg_p_bytea(&p, to, n);
    PGresult *r;
    int ret = pg_exec((pg_store_t *)base, &sql_body_reseal, &p, &r, "audit bodies reseal", err);
    if (ret != 0) return ret;
    int64_t changed = pg_changes(r);
    PQclear(r);
    if (changed == 0) {
        tg_err_set(err, "audit record %lld: its bodies changed meanwhile or are gone",
                   (long long)record_id);
        return TG_STORE_NOTFOUND;
    }
    return 0;
}

const struct tg_store_audit_ops pg_audit_ops = {
    .append = pg_audit_append,
    .head = pg_audit_head,
    .range = pg_audit_range,
    .find = pg_audit_find,
    .erase = pg_audit_erase,
    .purge = pg_audit_purge,
    .body_get = pg_audit_body_get,
    .bodies_each = pg_audit_bodies_each,
    .body_reseal = pg_audit_body_reseal,
};
