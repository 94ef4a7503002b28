/* What the tests of read-only SQL, the reports and the archive share (test_sqlite_sql.c,
 * report/test_report.c, archive/test_archive.c): a fresh store of either backend
 * (store/backends.h: a SQLite file in its own temporary directory, or a PostgreSQL schema),
 * filled with six known events at fixed instants around the month boundary
 * 2026-11-30 / 2026-12-01 (00:00:00 UTC), and a sink that writes each row as one line of
 * text ("a|b|NULL|1.5") so expected results read as literals. Header-only: each test is
 * its own program. FX_BOTH(test) runs a test on both backends. */
#ifndef TG_TEST_SQL_FIXTURE_H
#define TG_TEST_SQL_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/backends.h"
#include "store/store.h"
#include "types/event.h"
#include "util/clock.h"

#define FX_HOUR_US 3600000000LL
/* 2026-11-30T00:00:00Z and 2026-12-01T00:00:00Z. */
#define FX_NOV30 1795996800000000LL
#define FX_DEC01 1796083200000000LL

typedef struct fx {
    int pg;         /* 1: PostgreSQL */
    char dir[64];   /* sqlite: the temporary directory (tests may add files to it) */
    char path[128]; /* sqlite: the database file */
    char url[768];
    tb_store_t tb; /* what backends.h made */
    tg_store_t *s;
} fx_t;

static inline fx_t *fx_open_on(int pg)
{
    fx_t *f = calloc(1, sizeof *f);
    if (!f || tb_fresh(&f->tb, pg) != 0) {
        free(f);
        return NULL;
    }
    f->pg = pg;
    snprintf(f->dir, sizeof f->dir, "%s", f->tb.dir);
    snprintf(f->path, sizeof f->path, "%s", f->tb.path);
    snprintf(f->url, sizeof f->url, "%s", f->tb.url);
    tg_err_t err;
    if (tg_store_open(f->url, &f->s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        tb_remove(&f->tb);
        free(f);
        return NULL;
    }
    return f;
}

static inline fx_t *fx_open(void)
{
    return fx_open_on(0);
}

/* Closes the store and removes it (for SQLite every file of its directory). */
static inline void fx_close(fx_t *f)
{
    tg_store_close(f->s);
    if (f->pg) {
        tb_remove(&f->tb);
    } else {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->dir);
    }
    free(f);
}

typedef struct fx_ev {
    int64_t ts;
    const char *tenant, *key, *method, *path;
    int status, outcome;
    int64_t latency, in, out;
    const char *model;
    int64_t tin, tout;
    const char *tool, *cache;
    int64_t cost;
} fx_ev_t;

/* The six events (times UTC):
 *   1 acme key_a 2026-11-30 10:15:00 POST /v1/chat 200 gpt-4o 100/50 tokens, hit, 1500 µ$
 *   2 acme key_a 2026-11-30 10:45:00 POST /v1/chat 200 gpt-4o 300/150 tokens, miss, 4500 µ$
 *   3 acme key_b 2026-11-30 23:59:59.999999 GET /v1/models 200, RefreshHit
 *   4 acme key_a 2026-12-01 00:00:00 POST /mcp 200 tool search, 100 µ$
 *   5 beta key_c 2026-12-01 12:00:00 POST /v1/chat 502 claude, tokens unknown
 *   6 acme key_a 2026-12-01 00:30:00 POST /mcp 500 tool search */
static const fx_ev_t fx_events[] = {
    {FX_NOV30 + 10 * FX_HOUR_US + 15 * 60000000LL, "acme", "key_a", "POST", "/v1/chat", 200,
     TG_OUTCOME_BILLABLE, 100000, 1000, 2000000, "gpt-4o", 100, 50, NULL, "hit", 1500},
    {FX_NOV30 + 10 * FX_HOUR_US + 45 * 60000000LL, "acme", "key_a", "POST", "/v1/chat", 200,
     TG_OUTCOME_BILLABLE, 300000, 3000, 1000000, "gpt-4o", 300, 150, NULL, "miss", 4500},
    {FX_DEC01 - 1, "acme", "key_b", "GET", "/v1/models", 200, TG_OUTCOME_BILLABLE, 50000, 0, 2400,
     NULL, -1, -1, NULL, "RefreshHit", 0},
    {FX_DEC01, "acme", "key_a", "POST", "/mcp", 200, TG_OUTCOME_BILLABLE, 20000, 200, 800, NULL, -1,
     -1, "search", NULL, 100},
    {FX_DEC01 + 12 * FX_HOUR_US, "beta", "key_c", "POST", "/v1/chat", 502, TG_OUTCOME_FAILED,
     1000000, 10, 90, "claude", -1, -1, NULL, NULL, 0},
    {FX_DEC01 + 30 * 60000000LL, "acme", "key_a", "POST", "/mcp", 500, TG_OUTCOME_FAILED, 40000,
     100, 100, NULL, -1, -1, "search", NULL, 0},
};
#define FX_NEVENTS (sizeof fx_events / sizeof fx_events[0])

static inline tg_event_t fx_event(size_t i)
{
    const fx_ev_t *x = &fx_events[i];
    tg_event_t e;
    memset(&e, 0, sizeof e);
    e.id = (int64_t)i + 1;
    e.ts_us = x->ts;
    e.latency_us = x->latency;
    e.bytes_in = x->in;
    e.bytes_out = x->out;
    e.tokens_in = x->tin;
    e.tokens_out = x->tout;
    e.tokens_cached = e.tokens_cache_write = TG_TOKENS_UNKNOWN;
    e.cost_micros = x->cost;
    e.status = x->status;
    e.outcome = x->outcome;
    snprintf(e.tenant, sizeof e.tenant, "%s", x->tenant);
    snprintf(e.key_id, sizeof e.key_id, "%s", x->key);
    snprintf(e.method, sizeof e.method, "%s", x->method);
    snprintf(e.path, sizeof e.path, "%s", x->path);
    if (x->model) snprintf(e.model, sizeof e.model, "%s", x->model);
    if (x->tool) snprintf(e.tool, sizeof e.tool, "%s", x->tool);
    if (x->cache) snprintf(e.cache, sizeof e.cache, "%s", x->cache);
    return e;
}

/* Rows of one table read from a store, to be written into another (tg_store_rows_put). */
typedef struct fx_copy {
    const char *cols[64];
    char names[64][32];
    size_t ncols;
    tg_sql_value_t vals[64 * 32];
    char text[64 * 32][320];
    size_t nrows;
} fx_copy_t;

static inline int fx_copy_cols(const char *const *names, size_t n, void *ud)
{
    fx_copy_t *c = ud;
    for (size_t i = 0; i < n && i < 32; i++) {
        snprintf(c->names[i], sizeof c->names[i], "%s", names[i]);
        c->cols[i] = c->names[i];
    }
    c->ncols = n < 32 ? n : 32;
    return 0;
}

static inline int fx_copy_row(const tg_sql_value_t *v, size_t n, void *ud)
{
    fx_copy_t *c = ud;
    if (c->nrows == 64) return -1;
    for (size_t i = 0; i < n && i < c->ncols; i++) {
        size_t j = c->nrows * c->ncols + i;
        c->vals[j] = v[i];
        if (v[i].type == TG_SQL_TEXT || v[i].type == TG_SQL_BLOB) {
            size_t len = v[i].len < sizeof c->text[0] ? v[i].len : sizeof c->text[0] - 1;
            memcpy(c->text[j], v[i].s, len);
            c->text[j][len] = '\0';
            c->vals[j].s = c->text[j];
            c->vals[j].len = len;
        }
    }
    c->nrows++;
    return 0;
}

static inline int fx_fill(tg_store_t *s);

/* PostgreSQL while its event writer (pg_events.c) is not there: the events and daily rows
 * a SQLite store makes of the same events, copied in as rows. */
static inline int fx_fill_copied(tg_store_t *s, const tg_event_t *evs)
{
    (void)evs;
    fx_t *src = fx_open_on(0);
    if (!src || fx_fill(src->s) != 0) return -1;
    static const char *const tables[] = {"usage_events", "usage_daily"};
    static fx_copy_t c;
    int ret = 0;
    for (size_t t = 0; ret == 0 && t < 2; t++) {
        memset(&c, 0, sizeof c);
        char sql[80];
        snprintf(sql, sizeof sql, "SELECT * FROM %s", tables[t]);
        tg_sql_sink_t sink = {fx_copy_cols, fx_copy_row, &c};
        tg_err_t err;
        ret = tg_store_query(src->s, sql, NULL, 0, &sink, &err);
        if (ret == 0) ret = tg_store_rows_put(s, tables[t], c.cols, c.ncols, c.vals, c.nrows, &err);
        if (ret != 0) fprintf(stderr, "fill %s: %s\n", tables[t], err.msg);
    }
    fx_close(src);
    return ret;
}

/* Tenants acme and beta, keys key_a, key_b (acme) and key_c (beta), the six events. */
static inline int fx_fill(tg_store_t *s)
{
    tg_err_t err;
    static const char *const keys[][3] = {{"key_a", "acme", "tg_AAAAA"},
                                          {"key_b", "acme", "tg_BBBBB"},
                                          {"key_c", "beta", "tg_CCCCC"}};
    if (tg_store_tenant_add(s, "acme", "Acme", &err) != 0) return -1;
    if (tg_store_tenant_add(s, "beta", "Beta", &err) != 0) return -1;
    for (int i = 0; i < 3; i++) {
        tg_key_t k;
        memset(&k, 0, sizeof k);
        snprintf(k.id, sizeof k.id, "%s", keys[i][0]);
        snprintf(k.tenant_id, sizeof k.tenant_id, "%s", keys[i][1]);
        memset(k.sha256, 'a' + i, sizeof k.sha256);
        snprintf(k.prefix, sizeof k.prefix, "%s", keys[i][2]);
        snprintf(k.name, sizeof k.name, "n%d", i);
        if (tg_store_key_add(s, &k, &err) != 0) return -1;
    }
    tg_event_t evs[FX_NEVENTS];
    for (size_t i = 0; i < FX_NEVENTS; i++)
        evs[i] = fx_event(i);
    size_t inserted = 0;
    if (tg_store_append(s, evs, FX_NEVENTS, &inserted, &err) != 0) {
        if (strcmp(tg_store_dialect(s), "postgres") == 0) return fx_fill_copied(s, evs);
        fprintf(stderr, "append: %s\n", err.msg);
        return -1;
    }
    return inserted == FX_NEVENTS ? 0 : -1;
}

/* cmocka setup and teardown: *state is an fx_t with the store filled (fx_fill). */
static inline int fx_setup_on(void **state, int pg)
{
    fx_t *f = fx_open_on(pg);
    if (!f || fx_fill(f->s) != 0) return -1;
    *state = f;
    return 0;
}

static inline int fx_setup(void **state)
{
    return fx_setup_on(state, 0);
}

static inline int fx_setup_pg(void **state)
{
    return fx_setup_on(state, 1);
}

static inline int fx_teardown(void **state)
{
    if (*state) fx_close(*state);
    return 0;
}

#define FX_BOTH(f)                                                                                 \
    {#f " [sqlite]", (f), fx_setup, fx_teardown, NULL},                                            \
    {                                                                                              \
#f " [postgres]", (f), fx_setup_pg, fx_teardown, NULL                                      \
    }

/* Rows as text lines: values joined by '|', NULL as "NULL", reals by %.10g. */
typedef struct fx_rows {
    char cols[512];
    char row[64][512];
    size_t n;
    size_t stop_after; /* nonzero: the sink returns 7 after this many rows */
} fx_rows_t;

static inline int fx_on_cols(const char *const *names, size_t n, void *ud)
{
    fx_rows_t *r = ud;
    size_t o = 0;
    r->cols[0] = '\0';
    for (size_t i = 0; i < n && o < sizeof r->cols; i++)
        o += (size_t)snprintf(r->cols + o, sizeof r->cols - o, "%s%s", i ? "|" : "", names[i]);
    return 0;
}

static inline int fx_on_row(const tg_sql_value_t *v, size_t n, void *ud)
{
    fx_rows_t *r = ud;
    if (r->n >= sizeof r->row / sizeof r->row[0]) return -1;
    char *line = r->row[r->n++];
    size_t o = 0, cap = sizeof r->row[0];
    line[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        const char *sep = i ? "|" : "";
        switch (v[i].type) {
        case TG_SQL_INT:
            o += (size_t)snprintf(line + o, cap - o, "%s%lld", sep, (long long)v[i].i);
            break;
        case TG_SQL_REAL: o += (size_t)snprintf(line + o, cap - o, "%s%.10g", sep, v[i].r); break;
        case TG_SQL_TEXT:
        case TG_SQL_BLOB:
            o += (size_t)snprintf(line + o, cap - o, "%s%.*s", sep, (int)v[i].len, v[i].s);
            break;
        default: o += (size_t)snprintf(line + o, cap - o, "%sNULL", sep);
        }
    }
    return r->stop_after && r->n >= r->stop_after ? 7 : 0;
}

static inline tg_sql_sink_t fx_sink(fx_rows_t *r)
{
    memset(r, 0, sizeof *r);
    return (tg_sql_sink_t){fx_on_cols, fx_on_row, r};
}

#endif
