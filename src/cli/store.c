/* `tollgate store copy --to URL [--from URL]` (docs/cli.md, docs/operations.md "Moving a
 * SQLite store to PostgreSQL"): every row of every table of one store into a new, empty
 * store of either backend, then a check that both hold the same.
 *
 * Rows, not operations: tenant_add and key_add would stamp new creation times and the
 * writer's append would make new aggregates, so each table is read whole through
 * tg_store_query (SELECT * in key order, streamed) and written back through
 * tg_store_rows_put in batches of BATCH rows, each batch a transaction: every column as
 * it was, ids included. Tables go parents first (tg_store_tables), so the target's
 * foreign keys hold at every commit. Both stores are opened read-write, so both are
 * migrated to this build's schema first and their columns match.
 *
 * The target must be empty (no row in any table): a copy never merges into a store that
 * is in use. The copy reads the source table by table, not in one snapshot: stop the
 * gateways first; the final check (row counts of every table, events' and daily sums)
 * says whether what arrived is what is there, and fails the command if not. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"

#define USAGE_COPY "usage: tollgate store copy --to URL [--from URL]"
#define BATCH      2000   /* rows a transaction on the target */
#define PROGRESS   100000 /* rows between two progress lines of one table */

/* One table's rows on their way: the values of up to BATCH rows, text and blobs copied
 * out of the source's row (valid only during its callback). */
typedef struct copy {
    tg_store_t *dst;
    const char *table;
    const char **cols; /* the source's column names, owned */
    size_t ncols;
    tg_sql_value_t *vals; /* BATCH * ncols */
    size_t nrows;
    int64_t total;
    tg_err_t err;
    int failed; /* err holds the target's error */
} copy_t;

static void drop_values(copy_t *c)
{
    for (size_t i = 0; i < c->nrows * c->ncols; i++)
        if (c->vals[i].type == TG_SQL_TEXT || c->vals[i].type == TG_SQL_BLOB)
            free((void *)c->vals[i].s);
    c->nrows = 0;
}

static int flush(copy_t *c)
{
    if (c->nrows == 0) return 0;
    int ret = tg_store_rows_put(c->dst, c->table, c->cols, c->ncols, c->vals, c->nrows, &c->err);
    int64_t before = c->total;
    c->total += (int64_t)c->nrows;
    drop_values(c);
    if (ret != 0) {
        c->failed = 1;
        return -1;
    }
    if (c->total / PROGRESS != before / PROGRESS)
        fprintf(stderr, "store copy: %s: %" PRId64 " rows\n", c->table, c->total);
    return 0;
}

static int on_columns(const char *const *names, size_t n, void *ud)
{
    copy_t *c = ud;
    c->cols = calloc(n ? n : 1, sizeof *c->cols);
    c->vals = calloc((n ? n : 1) * BATCH, sizeof *c->vals);
    if (!c->cols || !c->vals) return tg_err_set(&c->err, "out of memory"), c->failed = 1, -1;
    for (size_t i = 0; i < n; i++) {
        c->cols[i] = strdup(names[i]);
        if (!c->cols[i]) return tg_err_set(&c->err, "out of memory"), c->failed = 1, -1;
        c->ncols = i + 1;
    }
    return 0;
}

static int on_row(const tg_sql_value_t *vals, size_t n, void *ud)
{
    copy_t *c = ud;
    tg_sql_value_t *dst = &c->vals[c->nrows * c->ncols];
    for (size_t i = 0; i < n && i < c->ncols; i++) {
        dst[i] = vals[i];
        if (vals[i].type == TG_SQL_TEXT || vals[i].type == TG_SQL_BLOB) {
            char *s = malloc(vals[i].len + 1);
            if (!s) {
                dst[i].type = TG_SQL_NULL;
                c->nrows++;
                tg_err_set(&c->err, "out of memory");
                c->failed = 1;
                return -1;
            }
            memcpy(s, vals[i].s, vals[i].len);
            s[vals[i].len] = '\0';
            dst[i].s = s;
        }
    }
    c->nrows++;
    return c->nrows == BATCH ? flush(c) : 0;
}

/* Copies one table; 0, or prints why and returns TG_EXIT_RUNTIME. */
static int copy_table(tg_store_t *src, tg_store_t *dst, const tg_store_table_t *t)
{
    copy_t c = {.dst = dst, .table = t->name};
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY %s", t->name, t->order_by);
    tg_sql_sink_t sink = {on_columns, on_row, &c};
    tg_err_t err = {{0}};
    int ret = tg_store_query(src, sql, NULL, 0, &sink, &err);
    if (ret == 0) ret = flush(&c);
    drop_values(&c);
    for (size_t i = 0; i < c.ncols; i++)
        free((void *)c.cols[i]);
    free(c.cols);
    free(c.vals);
    if (ret != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: %s: %s (%s store)", t->name,
                             c.failed ? c.err.msg : err.msg, c.failed ? "target" : "source");
    fprintf(stderr, "store copy: %s: %" PRId64 " rows copied\n", t->name, c.total);
    return 0;
}

/* ---- the checks ------------------------------------------------------------------ */

typedef struct nums {
    int64_t v[8];
    size_t n;
} nums_t;

static int on_nums(const tg_sql_value_t *vals, size_t n, void *ud)
{
    nums_t *x = ud;
    for (size_t i = 0; i < n && i < 8; i++)
        x->v[i] = vals[i].type == TG_SQL_INT    ? vals[i].i
                  : vals[i].type == TG_SQL_REAL ? (int64_t)vals[i].r
                                                : 0;
    x->n = n < 8 ? n : 8;
    return 0;
}

/* The integers of sql's one row into out. */
static int numbers(tg_store_t *s, const char *sql, nums_t *out, tg_err_t *err)
{
    memset(out, 0, sizeof *out);
    tg_sql_sink_t sink = {NULL, on_nums, out};
    return tg_store_query(s, sql, NULL, 0, &sink, err);
}

typedef struct names {
    char v[64][64];
    size_t n;
} names_t;

static int on_name(const tg_sql_value_t *vals, size_t n, void *ud)
{
    names_t *x = ud;
    if (n && vals[0].type == TG_SQL_TEXT && x->n < 64)
        snprintf(x->v[x->n++], sizeof x->v[0], "%s", vals[0].s);
    return 0;
}

/* Refuses a source holding a table tg_store_tables does not list: it would not be copied. */
static int known_tables(tg_store_t *src)
{
    const char *sql =
        strcmp(tg_store_dialect(src), "postgres") == 0
            ? "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
              "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = "
              "current_schema() ORDER BY 1"
            : "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
              "ORDER BY 1";
    names_t got = {0};
    tg_sql_sink_t sink = {NULL, on_name, &got};
    tg_err_t err = {{0}};
    if (tg_store_query(src, sql, NULL, 0, &sink, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: source: %s", err.msg);
    for (size_t i = 0; i < got.n; i++) {
        int known = !strcmp(got.v[i], "schema_migrations") || !strcmp(got.v[i], "meta");
        for (const tg_store_table_t *t = tg_store_tables; !known && t->name; t++)
            known = !strcmp(t->name, got.v[i]);
        if (!known)
            return tg_cli_errorf(TG_EXIT_RUNTIME,
                                 "store copy: the source has a table \"%s\" this tollgate does "
                                 "not copy: nothing was copied",
                                 got.v[i]);
    }
    return 0;
}

/* 0 when every table of dst is empty, else prints which is not. */
static int check_empty(tg_store_t *dst)
{
    for (const tg_store_table_t *t = tg_store_tables; t->name; t++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t->name);
        nums_t x;
        tg_err_t err = {{0}};
        if (numbers(dst, sql, &x, &err) != 0)
            return tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: target: %s", err.msg);
        if (x.v[0] > 0)
            return tg_cli_errorf(TG_EXIT_RUNTIME,
                                 "store copy: the target store is not empty (%s has %" PRId64
                                 " rows): copy into a new store only",
                                 t->name, x.v[0]);
    }
    return 0;
}

/* What the final check compares: each table's rows, then sums. */
static const struct {
    const char *label, *sql;
} sums[] = {
    {"usage_events: count, cost_micros, requests, bytes, tokens in, out",
     "SELECT count(*), coalesce(sum(cost_micros), 0), coalesce(sum(requests), 0), "
     "coalesce(sum(bytes_in + bytes_out), 0), coalesce(sum(tokens_in), 0), "
     "coalesce(sum(tokens_out), 0) FROM usage_events"},
    {"usage_daily: requests, billable, cost_micros, bytes, tokens in, out",
     "SELECT coalesce(sum(requests), 0), coalesce(sum(billable), 0), "
     "coalesce(sum(cost_micros), 0), coalesce(sum(bytes_in + bytes_out), 0), "
     "coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0) FROM usage_daily"},
    {"invoices: total_micros", "SELECT coalesce(sum(total_micros), 0) FROM invoices"},
};

static void print_nums(const char *who, const nums_t *x)
{
    printf("  %-7s", who);
    for (size_t i = 0; i < x->n; i++)
        printf(" %" PRId64, x->v[i]);
    printf("\n");
}

/* Compares src and dst; prints the figures; 0 when they agree. */
static int verify(tg_store_t *src, tg_store_t *dst)
{
    int bad = 0;
    tg_err_t err = {{0}};
    printf("check: rows per table (source = target)\n");
    for (const tg_store_table_t *t = tg_store_tables; t->name; t++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t->name);
        nums_t a, b;
        if (numbers(src, sql, &a, &err) != 0 || numbers(dst, sql, &b, &err) != 0)
            return tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: check: %s", err.msg);
        int same = a.v[0] == b.v[0];
        bad |= !same;
        printf("  %-20s %12" PRId64 " %12" PRId64 "%s\n", t->name, a.v[0], b.v[0],
               same ? "" : "  DIFFERENT");
    }
    for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++) {
        nums_t a, b;
        if (numbers(src, sums[i].sql, &a, &err) != 0 || numbers(dst, sums[i].sql, &b, &err) != 0)
            return tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: check: %s", err.msg);
        int same = a.n == b.n && memcmp(a.v, b.v, sizeof a.v) == 0;
        bad |= !same;
        printf("check: %s%s\n", sums[i].label, same ? "" : "  DIFFERENT");
        print_nums("source", &a);
        print_nums("target", &b);
    }
    if (bad)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: the target differs from the source "
                                              "(was a gateway writing to the source?)");
    printf("store copy: done, the target holds what the source holds\n");
    return 0;
}

/* Overwrites with 'x' the password a URL given on the command line holds (userinfo's
 * after its ':', a password= parameter): every local user reads a process's arguments
 * (ps, /proc/PID/cmdline) for as long as the copy runs. As mysql and curl do; the caller
 * keeps its own copy of the URL first. */
static void hide_password(char *arg)
{
    char *p = strstr(arg, "://");
    if (!p) return;
    p += 3;
    size_t auth = strcspn(p, "/?#");
    char *at = NULL;
    for (char *q = p; q < p + auth; q++)
        if (*q == '@') at = q;
    char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (colon) memset(colon + 1, 'x', (size_t)(at - colon - 1));
    for (char *q = strstr(p, "password="); q; q = strstr(q + 1, "password="))
        if (q[-1] == '?' || q[-1] == '&')
            for (q += 9; *q && *q != '&' && *q != '#'; q++)
                *q = 'x';
}

static int copy(int argc, char **argv, const char *config_path)
{
    const char *to_arg = NULL, *from_arg = NULL;
    tg_cli_opt_t opts[] = {{"--to", &to_arg}, {"--from", &from_arg}};
    int help = 0, npos = 0;
    int rc = tg_cli_parse(argc, argv, 2, opts, 2, NULL, 0, &npos, &help, USAGE_COPY);
    if (rc != 0) return rc;
    if (help) {
        puts(USAGE_COPY);
        return TG_EXIT_OK;
    }
    if (!to_arg || !*to_arg) return tg_cli_errorf(TG_EXIT_USAGE, "%s", USAGE_COPY);
    char *to_own = strdup(to_arg), *from_own = from_arg ? strdup(from_arg) : NULL;
    if (!to_own || (from_arg && !from_own)) {
        free(to_own);
        free(from_own);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: out of memory");
    }
    for (int i = 2; i < argc; i++)
        hide_password(argv[i]);
    const char *to = to_own, *from = from_own;
    tg_config_t *cfg = NULL;
    tg_err_t err = {{0}};
    if (!from) {
        if (tg_config_load(config_path, &cfg, &err) != 0)
            return tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
        from = cfg->store;
    }
    tg_store_t *src = NULL, *dst = NULL;
    if (strcmp(from, to) == 0) {
        rc = tg_cli_errorf(TG_EXIT_USAGE, "store copy: --to names the source store itself");
        goto out;
    }
    if (tg_store_open(from, &src, &err) != 0) {
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: source: %s", err.msg);
        goto out;
    }
    if (tg_store_open(to, &dst, &err) != 0) {
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "store copy: target: %s", err.msg);
        goto out;
    }
    if ((rc = known_tables(src)) != 0 || (rc = check_empty(dst)) != 0) goto out;
    fprintf(stderr, "store copy: from a %s store into a %s store\n", tg_store_dialect(src),
            tg_store_dialect(dst));
    for (const tg_store_table_t *t = tg_store_tables; t->name; t++)
        if ((rc = copy_table(src, dst, t)) != 0) goto out;
    rc = verify(src, dst);
out:
    tg_store_close(dst);
    tg_store_close(src);
    if (cfg) tg_config_unref(cfg);
    free(to_own);
    free(from_own);
    return rc;
}

int tg_cli_store(int argc, char **argv, const char *config_path)
{
    if (argc >= 2 && strcmp(argv[1], "copy") == 0) return copy(argc, argv, config_path);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts(USAGE_COPY);
        return TG_EXIT_OK;
    }
    return tg_cli_errorf(TG_EXIT_USAGE, "%s", USAGE_COPY);
}
