/* The audit trail above the store: see audit.h and docs/audit.md.
 *
 * Before and after values come from snapshots, not from each command: the tables a command
 * group may change are read whole before and after it runs (tg_store_query, the same
 * read-only path as `tollgate query`), and the rows that differ are the record's before
 * and after. One mechanism covers every command, present and future, with no per-command
 * code that could forget a field; the tables are admin tables of hundreds of rows, read
 * twice per command. A change made by another process between the two snapshots would be
 * attributed to this command: commands are rare and the record says what changed, which
 * stays true. */
#include "audit/audit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

/* A copy of s (NULL: NULL) whose bytes that are not UTF-8 are '?', as a call record's
 * fields are (types/audit.c): an admin record's action, object and tenant may echo bytes
 * of a path or a value cut through a character ("tenant:%.63s"), which PostgreSQL refuses
 * (SQLSTATE 22021), and the record of the call was lost, though the call stood. *fail set
 * when out of memory. */
static char *clean(const char *s, int *fail)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (!d) {
        *fail = 1;
        return NULL;
    }
    tg_utf8_clean(d, s, n);
    d[n] = '\0';
    return d;
}

int tg_audit_admin(tg_store_t *s, const char *actor, const char *action, const char *object,
                   const char *tenant, const char *before, const char *after, int64_t now_us,
                   tg_err_t *err)
{
    int fail = 0;
    char *ac = clean(actor, &fail), *an = clean(action, &fail), *ob = clean(object, &fail),
         *te = clean(tenant, &fail);
    int rc;
    if (fail) {
        rc = tg_err_set(err, "out of memory");
    } else {
        tg_audit_rec_t r = {0};
        r.ts_us = now_us;
        r.kind = "admin";
        r.actor = ac;
        r.action = an;
        r.object = ob;
        r.tenant = te;
        r.before = before;
        r.after = after;
        rc = tg_store_audit_append(s, &r, 1, err);
    }
    free(ac);
    free(an);
    free(ob);
    free(te);
    return rc;
}

/* ---- snapshots -------------------------------------------------------------------------- */

typedef struct snap {
    const char *table;
    const char *const *skip;
    json_t *rows;
    char **names;
    size_t ncols;
} snap_t;

static int skipped(const snap_t *k, const char *col)
{
    size_t tl = strlen(k->table);
    for (const char *const *s = k->skip; s && *s; s++)
        if (strncmp(*s, k->table, tl) == 0 && (*s)[tl] == '.' && strcmp(*s + tl + 1, col) == 0)
            return 1;
    return 0;
}

static int snap_columns(const char *const *names, size_t n, void *ud)
{
    snap_t *k = ud;
    k->names = calloc(n ? n : 1, sizeof *k->names);
    if (!k->names) return -1;
    k->ncols = n;
    for (size_t i = 0; i < n; i++)
        if (!(k->names[i] = strdup(names[i]))) return -1;
    return 0;
}

/* A stored text as JSON; bytes that are not UTF-8 become '?' (a row written by hand). */
static json_t *text_json(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j) return j;
    char *c = malloc(n + 1);
    if (!c) return NULL;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)s[i] < 0x80 && s[i] ? s[i] : '?';
    j = json_stringn(c, n);
    free(c);
    return j;
}

static int snap_row(const tg_sql_value_t *v, size_t n, void *ud)
{
    snap_t *k = ud;
    json_t *o = json_object();
    if (!o) return -1;
    for (size_t i = 0; i < n && i < k->ncols; i++) {
        if (skipped(k, k->names[i])) continue;
        json_t *j = NULL;
        switch (v[i].type) {
        case TG_SQL_NULL: j = json_null(); break;
        case TG_SQL_INT: j = json_integer(v[i].i); break;
        case TG_SQL_REAL: j = json_real(v[i].r); break;
        case TG_SQL_TEXT: j = text_json(v[i].s, v[i].len); break;
        case TG_SQL_BLOB: {
            char hex[129];
            size_t m = v[i].len < 64 ? v[i].len : 64;
            for (size_t b = 0; b < m; b++)
                snprintf(hex + 2 * b, 3, "%02x", (unsigned char)v[i].s[b]);
            hex[2 * m] = '\0';
            j = json_string(hex);
            break;
        }
        }
        if (!j || json_object_set_new(o, k->names[i], j) != 0) {
            json_decref(o);
            return -1;
        }
    }
    return json_array_append_new(k->rows, o) == 0 ? 0 : -1;
}

static const char *order_of(const char *table)
{
    for (const tg_store_table_t *t = tg_store_tables; t->name; t++)
        if (strcmp(t->name, table) == 0) return t->order_by;
    return NULL;
}

int tg_audit_snapshot(tg_store_t *s, const char *const *tables, const char *const *skip, char **out,
                      tg_err_t *err)
{
    *out = NULL;
    json_t *all = json_object();
    if (!all) return tg_err_set(err, "audit snapshot: out of memory");
    int ret = 0;
    for (const char *const *t = tables; ret == 0 && *t; t++) {
        const char *order = order_of(*t);
        if (!order) {
            ret = tg_err_set(err, "audit snapshot: no table %s", *t);
            break;
        }
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY %s", *t, order);
        snap_t k = {*t, skip, json_array(), NULL, 0};
        tg_sql_sink_t sink = {snap_columns, snap_row, &k};
        if (!k.rows || tg_store_query(s, sql, NULL, 0, &sink, err) != 0) ret = -1;
        if (ret == 0) json_object_set(all, *t, k.rows);
        json_decref(k.rows);
        for (size_t i = 0; i < k.ncols; i++)
            free(k.names[i]);
        free(k.names);
    }
    if (ret == 0 && !(*out = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS)))
        ret = tg_err_set(err, "audit snapshot: out of memory");
    json_decref(all);
    return ret;
}

/* ---- diff ------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The rows of arr as sorted compact strings (each malloc'd); NULL when out of memory. */
static char **row_strings(json_t *arr, size_t *n)
{
    *n = json_is_array(arr) ? json_array_size(arr) : 0;
    char **v = calloc(*n ? *n : 1, sizeof *v);
    for (size_t i = 0; v && i < *n; i++)
        if (!(v[i] = json_dumps(json_array_get(arr, i), JSON_COMPACT | JSON_SORT_KEYS))) {
            for (size_t k = 0; k < i; k++)
                free(v[k]);
            free(v);
            v = NULL;
        }
    if (v) qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

/* Adds to out[table] the rows of a not in b (both sorted; a row twice in a and once in b
 * is added once). */
static void only_in(char **a, size_t na, char **b, size_t nb, const char *table, json_t *out)
{
    size_t j = 0;
    for (size_t i = 0; i < na; i++) {
        while (j < nb && strcmp(b[j], a[i]) < 0)
            j++;
        if (j < nb && strcmp(b[j], a[i]) == 0) {
            j++;
            continue;
        }
        json_t *rows = json_object_get(out, table);
        if (!rows) json_object_set_new(out, table, rows = json_array());
        json_array_append_new(rows, json_loads(a[i], 0, NULL));
    }
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int tg_audit_diff(const char *before, const char *after, char **bdiff, char **adiff, tg_err_t *err)
{
    *bdiff = *adiff = NULL;
    json_t *b = json_loads(before, 0, NULL), *a = json_loads(after, 0, NULL);
    json_t *ob = json_object(), *oa = json_object();
    int ret = b && a && ob && oa ? 0 : tg_err_set(err, "audit diff: bad snapshot");
    const char *table;
    json_t *rows;
    json_object_foreach(ret == 0 ? a : NULL, table, rows)
    {
        size_t nb, na;
        char **sb = row_strings(json_object_get(b, table), &nb), **sa = row_strings(rows, &na);
        if (sb && sa) {
            only_in(sb, nb, sa, na, table, ob);
            only_in(sa, na, sb, nb, table, oa);
        } else {
            ret = tg_err_set(err, "audit diff: out of memory");
        }
        free_strings(sb, nb);
        free_strings(sa, na);
    }
    if (ret == 0 && json_object_size(ob) &&
        !(*bdiff = json_dumps(ob, JSON_COMPACT | JSON_SORT_KEYS)))
        ret = tg_err_set(err, "audit diff: out of memory");
    if (ret == 0 && json_object_size(oa) &&
        !(*adiff = json_dumps(oa, JSON_COMPACT | JSON_SORT_KEYS)))
        ret = tg_err_set(err, "audit diff: out of memory");
    json_decref(a);
    json_decref(b);
    json_decref(ob);
    json_decref(oa);
    return ret;
}

/* ---- verification ---------------------------------------------------------------------- */

typedef struct vctx {
    tg_audit_verifier_t *v;
    tg_store_t *finder;
    tg_err_t *err;
    int failed; /* the finder's store failed */
    int whole;  /* from the chain's start: the first record opens its day */
} vctx_t;

static int64_t find(const char *hash, void *ud)
{
    vctx_t *c = ud;
    int64_t id = 0;
    if (tg_store_audit_find(c->finder, hash, &id, c->err) != 0) {
        c->failed = 1;
        return -1;
    }
    return id;
}

static int each(const tg_audit_rec_t *r, void *ud)
{
    vctx_t *c = ud;
    if (c->whole && c->v->n == 0 && r->seq != 1) {
        snprintf(c->v->why, sizeof c->v->why,
                 "record %lld: records before it deleted (seq %lld is not the first of day %s)",
                 (long long)r->id, (long long)r->seq, r->day);
        c->v->fault = TG_AUDIT_DELETED;
        c->v->fault_id = r->id;
        return 1;
    }
    int f = tg_audit_verify_next(c->v, r);
    if (f < 0) c->failed = 1;
    return f == TG_AUDIT_OK ? 0 : 1; /* stop at the first fault (or a failure) */
}

int tg_audit_verify(tg_store_t *s, tg_store_t *finder, const char *from_day, const char *to_day,
                    tg_audit_report_t *rep, tg_err_t *err)
{
    memset(rep, 0, sizeof *rep);
    vctx_t c = {&rep->v, finder, err, 0, from_day == NULL};
    tg_audit_verify_init(&rep->v, find, &c);
    if (tg_store_audit_head(s, &rep->head, err) != 0) return -1;
    int r = tg_store_audit_range(s, from_day, to_day, each, &c, err);
    if (c.failed || r < 0) return c.failed && !err->msg[0] ? tg_err_set(err, "out of memory") : -1;
    /* The head names the chain's last record: checked unless --to cut the chain short
     * (or --from found nothing to start from). */
    if (!rep->v.fault && !to_day && (rep->v.n > 0 || !from_day))
        tg_audit_verify_end(&rep->v, &rep->head);
    return 0;
}
