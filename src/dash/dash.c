/* Dashboard data: see dash.h. */
#include "dash/dash.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

#define MIN_US          (60LL * 1000000)
#define HOUR_US         (60 * MIN_US)
#define DAY_US          (24 * HOUR_US)
#define SERIES_MINUTES  60
#define SERIES_DAYS     30
#define REJECTIONS_LAST 20

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static json_t *error_body(const char *type, const char *msg)
{
    return json_pack("{s:{s:s,s:s}}", "error", "type", type, "message", msg);
}

/* A JSON string of text from the store that may not be UTF-8 (a request path is stored as
 * the client sent it; a name as the CLI got it): jansson refuses such text, and the row
 * would vanish from the answer (a client could hide its rejections with one 0xff in its
 * path). Then every byte from 0x80 up is shown as '?'. Never NULL but out of memory. */
static json_t *text(const char *s)
{
    if (!s) s = "";
    json_t *j = json_string(s);
    if (j) return j;
    char *c = strdup(s);
    if (!c) return NULL;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(c);
    free(c);
    return j;
}

/* ---- overview ----------------------------------------------------------------------- */

typedef struct range {
    const char *name;
    int64_t span_us; /* 0: today (the UTC day of now) */
} range_t;

static const range_t ranges[] = {
    {"today", 0}, {"1h", HOUR_US}, {"24h", DAY_US}, {"7d", 7 * DAY_US}, {"30d", 30 * DAY_US},
};

/* The value of key in a query string "a=1&b=2" into out (cap bytes); 0 when found. */
static int query_get(const char *query, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = n - kl - 1;
            if (vl >= cap) return -1;
            memcpy(out, p + kl + 1, vl);
            out[vl] = '\0';
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    return -1;
}

static json_t *totals_json(const tg_dash_totals_t *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "requests", json_integer(t->requests));
    json_object_set_new(o, "billable", json_integer(t->billable));
    json_object_set_new(o, "failed", json_integer(t->failed));
    json_object_set_new(o, "rejected", json_integer(t->rejected));
    json_object_set_new(o, "tokens_in", json_integer(t->tokens_in));
    json_object_set_new(o, "tokens_out", json_integer(t->tokens_out));
    json_object_set_new(o, "cost_micros", json_integer(t->cost_micros));
    json_object_set_new(o, "latency_p95_us",
                        t->latency_p95_us >= 0 ? json_integer(t->latency_p95_us) : json_null());
    return o;
}

static const tg_dash_totals_t zero_totals = {.latency_p95_us = -1};

/* Budget of tenant for the month of now: {monthly_micros, hard, spend_micros, used} or
 * null. used = spend / budget (a fraction; above 1 when over). */
static int budget_json(tg_store_t *s, const char *tenant, const tg_budget_row_t *b, int64_t now_us,
                       json_t **out, tg_err_t *err)
{
    *out = json_null();
    if (!b) return 0;
    char today[11], first[11];
    tg_utc_day(now_us, today);
    memcpy(first, today, 8);
    memcpy(first + 8, "01", 3);
    int64_t spend = 0;
    if (tg_store_spend(s, tenant, first, today, &spend, err) != 0) return -1;
    json_t *o = json_object();
    json_object_set_new(o, "monthly_micros", json_integer(b->monthly_micros));
    json_object_set_new(o, "hard", json_boolean(b->hard));
    json_object_set_new(o, "month", json_stringn(today, 7));
    json_object_set_new(o, "spend_micros", json_integer(spend));
    json_object_set_new(o, "used",
                        b->monthly_micros > 0 ? json_real((double)spend / (double)b->monthly_micros)
                                              : json_null());
    json_t *th = json_array();
    for (int i = 0; i < b->nthresholds && i < 8; i++)
        json_array_append_new(th, json_integer(b->thresholds[i]));
    json_object_set_new(o, "thresholds", th);
    json_decref(*out);
    *out = o;
    return 0;
}

typedef struct ov {
    json_t *rows;       /* id -> row object, in the answer's shape */
    tg_budget_row_t *b; /* every budget row, matched to the rows by tenant */
    size_t nb, capb;
} ov_t;

static json_t *ov_row(ov_t *o, const char *id)
{
    json_t *r = json_object_get(o->rows, id);
    if (r) return r;
    r = json_object();
    json_object_set_new(r, "id", json_string(id));
    json_object_set_new(r, "name", json_string(""));
    json_object_set_new(r, "status", json_string(id[0] ? "unknown" : "unauthenticated"));
    json_object_set_new(r, "range", totals_json(&zero_totals));
    json_object_set_new(o->rows, id, r);
    return r;
}

static int ov_tenant(const tg_tenant_t *t, void *ud)
{
    json_t *r = ov_row(ud, t->id);
    json_object_set_new(r, "name", text(t->name));
    json_object_set_new(r, "status", json_string(t->status));
    return 0;
}

static int ov_totals(const tg_dash_totals_t *t, void *ud)
{
    json_object_set_new(ov_row(ud, t->tenant), "range", totals_json(t));
    return 0;
}

static int ov_budget(const tg_budget_row_t *b, void *ud)
{
    ov_t *o = ud;
    if (o->nb == o->capb) {
        size_t nc = o->capb ? o->capb * 2 : 16;
        tg_budget_row_t *g = realloc(o->b, nc * sizeof *g);
        if (!g) return -1;
        o->b = g;
        o->capb = nc;
    }
    o->b[o->nb++] = *b;
    return 0;
}

static int by_id(const void *x, const void *y)
{
    const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    return strcmp(json_string_value(json_object_get(a, "id")),
                  json_string_value(json_object_get(b, "id")));
}

static json_t *overview(tg_store_t *s, const char *query, int64_t now_us, int *status)
{
    char rname[16] = "today";
    if (query && query_get(query, "range", rname, sizeof rname) != 0 && strstr(query, "range="))
        rname[0] = '\0';
    const range_t *rg = NULL;
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (strcmp(rname, ranges[i].name) == 0) rg = &ranges[i];
    if (!rg) {
        *status = 400;
        return error_body("invalid_request", "range: one of today, 1h, 24h, 7d, 30d");
    }
    int64_t to = now_us + 1; /* events up to now, included */
    int64_t from = rg->span_us ? now_us - rg->span_us : floor_div(now_us, DAY_US) * DAY_US;
    ov_t o = {.rows = json_object()};
    tg_err_t err = {0};
    int rc = tg_store_tenant_list(s, ov_tenant, &o, &err);
    if (rc == 0) rc = tg_store_dash_totals(s, NULL, from, to, ov_totals, &o, &err);
    if (rc == 0) rc = tg_store_budget_list(s, NULL, ov_budget, &o, &err);
    json_t *tenants = json_array();
    json_t *sum = json_object();
    int64_t sums[7] = {0};
    static const char *const keys[7] = {"requests",  "billable",   "failed",     "rejected",
                                        "tokens_in", "tokens_out", "cost_micros"};
    const char *id;
    json_t *r;
    json_object_foreach(o.rows, id, r)
    {
        if (rc != 0) break;
        const tg_budget_row_t *b = NULL;
        for (size_t i = 0; i < o.nb; i++)
            if (strcmp(o.b[i].tenant, id) == 0) b = &o.b[i];
        json_t *bj = NULL;
        rc = budget_json(s, id, b, now_us, &bj, &err);
        json_object_set_new(r, "budget", bj ? bj : json_null());
        json_t *t = json_object_get(r, "range");
        for (int k = 0; k < 7; k++)
            sums[k] += json_integer_value(json_object_get(t, keys[k]));
        json_array_append(tenants, r);
    }
    for (int k = 0; k < 7; k++)
        json_object_set_new(sum, keys[k], json_integer(sums[k]));
    free(o.b);
    json_decref(o.rows);
    if (rc != 0) {
        json_decref(tenants);
        json_decref(sum);
        *status = 500;
        return error_body("store", err.msg);
    }
    /* Ordered by id (json_object_foreach follows insertion order, which mixes the tenants
     * table's order with the events'). */
    size_t n = json_array_size(tenants);
    json_t **sorted = n ? malloc(n * sizeof *sorted) : NULL;
    if (n && !sorted) {
        json_decref(tenants);
        json_decref(sum);
        *status = 500;
        return error_body("store", "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = json_incref(json_array_get(tenants, i));
    if (n) qsort(sorted, n, sizeof *sorted, by_id); /* not with NULL, even for 0 rows (UB) */
    json_array_clear(tenants);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(tenants, sorted[i]);
    free(sorted);
    *status = 200;
    return json_pack("{s:I,s:s,s:I,s:I,s:o,s:o}", "now_us", (json_int_t)now_us, "range", rg->name,
                     "from_us", (json_int_t)from, "to_us", (json_int_t)to, "tenants", tenants,
                     "totals", sum);
}

/* ---- one tenant --------------------------------------------------------------------- */

typedef struct series {
    json_t *points; /* one object per bucket, zeros where no event */
} series_t;

static json_t *point(int64_t requests, int64_t failed, int64_t rejected, int64_t tin, int64_t tout,
                     int64_t cost)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "requests", (json_int_t)requests, "failed",
                     (json_int_t)failed, "rejected", (json_int_t)rejected, "tokens_in",
                     (json_int_t)tin, "tokens_out", (json_int_t)tout, "cost_micros",
                     (json_int_t)cost);
}

static int on_bucket(const tg_dash_bucket_t *b, void *ud)
{
    series_t *s = ud;
    json_t *p = json_array_get(s->points, (size_t)b->index);
    if (!p || b->index < 0) return 0;
    json_t *q =
        point(b->requests, b->failed, b->rejected, b->tokens_in, b->tokens_out, b->cost_micros);
    json_object_set(q, "t", json_object_get(p, "t"));
    json_array_set_new(s->points, (size_t)b->index, q);
    return 0;
}

static int on_day(const tg_usage_row_t *r, void *ud)
{
    series_t *s = ud;
    for (size_t i = 0; i < json_array_size(s->points); i++) {
        json_t *p = json_array_get(s->points, i);
        if (strcmp(json_string_value(json_object_get(p, "day")), r->group) != 0) continue;
        json_t *q =
            point(r->requests, r->failed, r->rejected, r->tokens_in, r->tokens_out, r->cost_micros);
        json_object_set_new(q, "day", json_string(r->group));
        json_array_set_new(s->points, i, q);
    }
    return 0;
}

static int on_one_totals(const tg_dash_totals_t *t, void *ud)
{
    *(tg_dash_totals_t *)ud = *t;
    return 0;
}

static int on_rejection(const tg_dash_rejection_t *r, void *ud)
{
    json_array_append_new(ud, json_pack("{s:I,s:i,s:o,s:o,s:o,s:o}", "ts_us", (json_int_t)r->ts_us,
                                        "status", r->status, "reason", text(r->reason), "route",
                                        text(r->route), "method", text(r->method), "path",
                                        text(r->path)));
    return 0;
}

/* The limit rows, copied while the store lists them: their use is read afterwards, as a
 * callback must not call the store (PostgreSQL streams a list on the connection the next
 * query would need: "another command is already in progress"). */
typedef struct lim {
    tg_limit_row_t *rows;
    size_t n, cap;
} lim_t;

static int on_limit(const tg_limit_row_t *l, void *ud)
{
    lim_t *c = ud;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        tg_limit_row_t *g = realloc(c->rows, nc * sizeof *g);
        if (!g) return -1;
        c->rows = g;
        c->cap = nc;
    }
    c->rows[c->n++] = *l;
    return 0;
}

/* One limit's JSON with its current use, appended to out. */
static int limit_json(tg_store_t *s, const char *tenant, const tg_limit_row_t *l, int64_t now_us,
                      json_t *out, tg_err_t *err)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "tenant", l->tenant, "scope",
                          l->scope, "value", l->value, "requests", (json_int_t)l->limit, "period_s",
                          (json_int_t)l->period_s, "burst", (json_int_t)l->burst, "concurrency",
                          (json_int_t)l->concurrency, "tokens", (json_int_t)l->tokens,
                          "tokens_period_s", (json_int_t)l->tokens_period_s);
    /* Current use, for the rules on the whole tenant: its admitted requests (billable and
     * failed: a rejected one took nothing from the limiter) and their tokens over the
     * rule's own period up to now; the limiter's own state (GCRA, burst) is in memory. */
    json_t *ur = json_null(), *ut = json_null();
    if (strcmp(l->scope, "tenant") == 0) {
        tg_dash_totals_t t = zero_totals;
        if (l->period_s > 0) {
            if (tg_store_dash_totals(s, tenant, now_us - l->period_s * 1000000LL, now_us + 1,
                                     on_one_totals, &t, err) != 0)
                return json_decref(o), json_decref(ur), -1;
            ur = json_integer(t.requests - t.rejected); /* admitted */
        }
        t = zero_totals;
        if (l->tokens_period_s > 0) {
            if (tg_store_dash_totals(s, tenant, now_us - l->tokens_period_s * 1000000LL, now_us + 1,
                                     on_one_totals, &t, err) != 0)
                return json_decref(o), json_decref(ur), -1;
            ut = json_integer(t.tokens_in + t.tokens_out);
        }
    }
    json_object_set_new(o, "used_requests", ur);
    json_object_set_new(o, "used_tokens", ut);
    json_array_append_new(out, o);
    return 0;
}

static int on_budget_one(const tg_budget_row_t *b, void *ud)
{
    *(tg_budget_row_t *)ud = *b;
    return 0;
}

static json_t *tenant_page(tg_store_t *s, const char *id, int64_t now_us, int *status)
{
    tg_err_t err = {0};
    tg_tenant_t t;
    memset(&t, 0, sizeof t);
    int rc = tg_store_tenant_get(s, id, &t, &err);
    int known = rc == 0;
    if (rc != 0 && rc != TG_STORE_NOTFOUND) goto fail;
    rc = 0;

    /* The last hour: the 60 whole UTC minutes ending with the current one. */
    int64_t m_to = (floor_div(now_us, MIN_US) + 1) * MIN_US;
    int64_t m_from = m_to - SERIES_MINUTES * MIN_US;
    series_t mins = {json_array()};
    for (int i = 0; i < SERIES_MINUTES; i++) {
        json_t *p = point(0, 0, 0, 0, 0, 0);
        json_object_set_new(p, "t", json_integer(m_from + i * MIN_US));
        json_array_append_new(mins.points, p);
    }
    /* The last 30 UTC days, today included, from usage_daily. */
    int64_t d_to = (floor_div(now_us, DAY_US) + 1) * DAY_US;
    int64_t d_from = d_to - SERIES_DAYS * DAY_US;
    series_t days = {json_array()};
    for (int i = 0; i < SERIES_DAYS; i++) {
        char day[11];
        tg_utc_day(d_from + i * DAY_US, day);
        json_t *p = point(0, 0, 0, 0, 0, 0);
        json_object_set_new(p, "day", json_string(day));
        json_array_append_new(days.points, p);
    }
    tg_dash_totals_t today = zero_totals;
    tg_budget_row_t b;
    int has_budget = 0;
    json_t *limits = json_array(), *rej = json_array(), *bj = NULL;
    lim_t lc = {0};
    tg_usage_query_t uq = {.tenant = id, .from_us = d_from, .to_us = d_to, .by = TG_BY_DAY};
    memset(&b, 0, sizeof b);
    rc = tg_store_dash_series(s, id, m_from, now_us + 1, MIN_US, on_bucket, &mins, &err);
    if (rc == 0) rc = tg_store_usage(s, &uq, on_day, &days, &err);
    if (rc == 0)
        rc = tg_store_dash_totals(s, id, floor_div(now_us, DAY_US) * DAY_US, now_us + 1,
                                  on_one_totals, &today, &err);
    if (rc == 0) rc = tg_store_budget_list(s, id, on_budget_one, &b, &err);
    if (rc == 0 && b.tenant[0]) has_budget = 1;
    if (rc == 0) rc = budget_json(s, id, has_budget ? &b : NULL, now_us, &bj, &err);
    if (rc == 0) rc = tg_store_limit_list(s, id, on_limit, &lc, &err);
    if (rc == 0 && strcmp(id, "*") != 0) rc = tg_store_limit_list(s, "*", on_limit, &lc, &err);
    for (size_t i = 0; rc == 0 && i < lc.n; i++)
        rc = limit_json(s, id, &lc.rows[i], now_us, limits, &err);
    free(lc.rows);
    if (rc == 0) rc = tg_store_dash_rejections(s, id, REJECTIONS_LAST, on_rejection, rej, &err);
    int seen = 0;
    for (int i = 0; i < SERIES_DAYS && !seen; i++)
        seen = json_integer_value(
                   json_object_get(json_array_get(days.points, (size_t)i), "requests")) > 0;
    if (rc == 0 && !known && !seen && today.requests == 0 && json_array_size(rej) == 0) {
        json_decref(mins.points);
        json_decref(days.points);
        json_decref(limits);
        json_decref(rej);
        json_decref(bj);
        *status = 404;
        return error_body("not_found", "no such tenant");
    }
    if (rc != 0) {
        json_decref(mins.points);
        json_decref(days.points);
        json_decref(limits);
        json_decref(rej);
        json_decref(bj);
        goto fail;
    }
    *status = 200;
    return json_pack("{s:I,s:{s:s,s:o,s:s},s:{s:I,s:I,s:o},s:{s:o},s:o,s:o,s:o,s:o}", "now_us",
                     (json_int_t)now_us, "tenant", "id", id, "name", text(t.name), "status",
                     known ? t.status : (id[0] ? "unknown" : "unauthenticated"), "minutes",
                     "from_us", (json_int_t)m_from, "bucket_us", (json_int_t)MIN_US, "points",
                     mins.points, "days", "points", days.points, "today", totals_json(&today),
                     "budget", bj ? bj : json_null(), "limits", limits, "rejections", rej);
fail:
    *status = 500;
    return error_body("store", err.msg);
}

json_t *tg_dash_answer(tg_store_t *s, const char *what, const char *query, int64_t now_us,
                       int *status)
{
    if (strcmp(what, "overview") == 0) return overview(s, query, now_us, status);
    if (strncmp(what, "tenant/", 7) == 0 && strlen(what + 7) < TG_TENANT_SIZE)
        return tenant_page(s, what + 7, now_us, status);
    *status = 404;
    return error_body("not_found", "no such dashboard endpoint");
}

/* ---- the builder thread ------------------------------------------------------------- */

struct tg_dash_job {
    tg_dash_job_t *next;
    tg_dash_done_fn done; /* NULL once cancelled (loop thread only) */
    void *arg;
    int64_t now_us;
    char *what, *query;
    tg_dash_fn fn; /* another kind of job (tg_dash_submit_fn); NULL: a dashboard one */
    void *req;     /* its argument, freed with req_free */
    void (*req_free)(void *);
    int status;   /* set by the thread */
    json_t *body; /* set by the thread */
};

struct tg_dash {
    uv_async_t async; /* first: the close callback frees the struct through it */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tg_dash_job_t *todo, *todo_tail, *done;
    int pending; /* jobs queued, running or finished but not yet handed back */
    int stop;
    int writable; /* tg_dash_start_writer: the connection is not made read-only */
    char *store_url;
};

static void job_free(tg_dash_job_t *j)
{
    free(j->what);
    free(j->query);
    if (j->req_free) j->req_free(j->req);
    json_decref(j->body);
    free(j);
}

static void *dash_main(void *arg)
{
    tg_dash_t *d = arg;
    pthread_setname_np(pthread_self(), "tg-dash");
    tg_store_t *s = NULL;
    tg_err_t err = {0};
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->todo && !d->stop)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop) {
            pthread_mutex_unlock(&d->mu);
            break;
        }
        tg_dash_job_t *j = d->todo;
        d->todo = j->next;
        if (!d->todo) d->todo_tail = NULL;
        pthread_mutex_unlock(&d->mu);

        /* Opened on first use, by this thread (a connection belongs to one thread), and
         * again after a failure. */
        if (!s && (tg_store_open(d->store_url, &s, &err) != 0 ||
                   (!d->writable && tg_store_dash_read_only(s, &err) != 0))) {
            tg_store_close(s);
            s = NULL;
            j->status = 503;
            j->body = error_body("store", err.msg);
        } else if (j->fn) {
            j->body = j->fn(s, j->req, j->now_us, &j->status);
        } else {
            j->body = tg_dash_answer(s, j->what, j->query, j->now_us, &j->status);
        }

        pthread_mutex_lock(&d->mu);
        j->next = d->done;
        d->done = j;
        pthread_mutex_unlock(&d->mu);
        uv_async_send(&d->async);
    }
    tg_store_close(s);
    return NULL;
}

static void on_async(uv_async_t *h)
{
    tg_dash_t *d = (tg_dash_t *)h;
    pthread_mutex_lock(&d->mu);
    tg_dash_job_t *list = d->done;
    d->done = NULL;
    pthread_mutex_unlock(&d->mu);
    while (list) {
        tg_dash_job_t *j = list;
        list = j->next;
        pthread_mutex_lock(&d->mu);
        d->pending--;
        pthread_mutex_unlock(&d->mu);
        if (j->done) {
            json_t *body = j->body;
            j->body = NULL;
            j->done(j->arg, j->status, body);
        }
        job_free(j);
    }
}

static tg_dash_t *start(uv_loop_t *loop, const char *store_url, int writable, tg_err_t *err)
{
    tg_dash_t *d = calloc(1, sizeof *d);
    if (!d || !(d->store_url = strdup(store_url))) {
        free(d);
        tg_err_set(err, "dashboard: out of memory");
        return NULL;
    }
    d->writable = writable;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    uv_async_init(loop, &d->async, on_async);
    if (pthread_create(&d->thread, NULL, dash_main, d) != 0) {
        tg_err_set(err, "dashboard: cannot start its thread");
        d->stop = -1; /* no thread to join */
        tg_dash_stop(d);
        return NULL;
    }
    return d;
}

tg_dash_t *tg_dash_start(uv_loop_t *loop, const char *store_url, tg_err_t *err)
{
    return start(loop, store_url, 0, err);
}

tg_dash_t *tg_dash_start_writer(uv_loop_t *loop, const char *store_url, tg_err_t *err)
{
    return start(loop, store_url, 1, err);
}

static tg_dash_job_t *enqueue(tg_dash_t *d, tg_dash_job_t *j);

tg_dash_job_t *tg_dash_submit(tg_dash_t *d, const char *what, const char *query, int64_t now_us,
                              tg_dash_done_fn done, void *arg)
{
    tg_dash_job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->done = done;
    j->arg = arg;
    j->now_us = now_us;
    j->what = strdup(what);
    j->query = query ? strdup(query) : NULL;
    if (!j->what || (query && !j->query)) {
        job_free(j);
        return NULL;
    }
    return enqueue(d, j);
}

tg_dash_job_t *tg_dash_submit_fn(tg_dash_t *d, tg_dash_fn fn, void *req, void (*req_free)(void *),
                                 int64_t now_us, tg_dash_done_fn done, void *arg)
{
    tg_dash_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        if (req_free) req_free(req);
        return NULL;
    }
    j->fn = fn;
    j->req = req;
    j->req_free = req_free;
    j->done = done;
    j->arg = arg;
    j->now_us = now_us;
    return enqueue(d, j);
}

/* Queues j, or frees it and returns NULL when TG_DASH_PENDING_MAX are pending. */
static tg_dash_job_t *enqueue(tg_dash_t *d, tg_dash_job_t *j)
{
    pthread_mutex_lock(&d->mu);
    if (d->pending >= TG_DASH_PENDING_MAX) {
        pthread_mutex_unlock(&d->mu);
        job_free(j);
        return NULL;
    }
    d->pending++;
    if (d->todo_tail)
        d->todo_tail->next = j;
    else
        d->todo = j;
    d->todo_tail = j;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return j;
}

void tg_dash_cancel(tg_dash_job_t *j)
{
    if (!j) return;
    j->done = NULL;
    j->arg = NULL;
}

static void on_dash_closed(uv_handle_t *h)
{
    tg_dash_t *d = (tg_dash_t *)h;
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->store_url);
    free(d);
}

void tg_dash_stop(tg_dash_t *d)
{
    int joined = d->stop != -1;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (joined) pthread_join(d->thread, NULL);
    tg_dash_job_t *lists[2] = {d->todo, d->done};
    d->todo = d->todo_tail = d->done = NULL;
    for (int i = 0; i < 2; i++)
        while (lists[i]) {
            tg_dash_job_t *j = lists[i];
            lists[i] = j->next;
            job_free(j);
        }
    uv_close((uv_handle_t *)&d->async, on_dash_closed);
}
