/* `tollgate query "SQL" [--format table|json|csv]` and
 * `tollgate report NAME [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--tenant ID] [--format ...]`.
 *
 * Both read through a read-only handle (tg_store_open_readonly: SQLite opened read-only,
 * query_only, and an authorizer); only a store from before the views is opened normally
 * first, to apply the migrations that create them. A missing store is not created. Rows are
 * streamed: each FLUSH_ROWS rows go out through the list writer of common.h (tg_cli_rows_flush), so
 * a query over millions of events holds one chunk in memory, never the result. A table's widths are
 * measured on the first chunk. Values keep their SQL type in JSON (integer, real, string, null); a
 * blob is shown as hex. docs/query.md lists the views and the reports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "report/report.h"
#include "util/clock.h"
#include "util/duration.h"

#define USAGE_QUERY "usage: tollgate query \"SQL\" [--format table|json|csv] [--timeout DURATION]"
#define USAGE_REPORT                                                                               \
    "usage: tollgate report NAME [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--tenant ID] "             \
    "[--format table|json|csv] [--timeout DURATION]"

#define TIMEOUT_MAX_MS (24LL * 3600 * 1000) /* --timeout: a day at most */

#define FLUSH_ROWS 1000 /* rows held before they are printed */

/* The writer a query's rows go through. */
typedef struct out {
    tg_cli_rows_t t;
    tg_cli_col_t *cols; /* names copied: the statement's are gone once it is finalized */
    tg_cli_format_t fmt;
    tg_err_t *err; /* where a callback's failure is said */
} out_t;

static int on_columns(const char *const *names, size_t n, void *ud)
{
    out_t *o = ud;
    if (n > TG_CLI_MAX_COLS)
        return tg_err_set(o->err, "the result has %zu columns (at most %d are printed)", n,
                          TG_CLI_MAX_COLS);
    if (!(o->cols = calloc(n, sizeof *o->cols))) return tg_err_set(o->err, "out of memory");
    o->t.cols = o->cols;
    o->t.ncols = n;
    for (size_t i = 0; i < n; i++) {
        o->cols[i].type = TG_CLI_COL_ANY;
        if (!(o->cols[i].name = strdup(names[i]))) return tg_err_set(o->err, "out of memory");
    }
    return 0;
}

/* A blob as lower-case hex, malloc'd. */
static char *hex(const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 * n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

static void add_value(tg_cli_rows_t *t, const tg_sql_value_t *v)
{
    char buf[40];
    switch (v->type) {
    case TG_SQL_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)v->i);
        tg_cli_cell_any(t, buf, json_integer(v->i));
        break;
    case TG_SQL_REAL:
        /* A real stays one in a table and CSV: 300.0, as sqlite3 shows it, not 300. */
        snprintf(buf, sizeof buf, "%.15g", v->r);
        if (!strpbrk(buf, ".eni")) strcat(buf, ".0");
        tg_cli_cell_any(t, buf, json_real(v->r));
        break;
    case TG_SQL_TEXT: tg_cli_cell_any(t, v->s, tg_cli_json_text(v->s)); break;
    case TG_SQL_BLOB: {
        char *h = hex((const unsigned char *)v->s, v->len);
        tg_cli_cell_any(t, h ? h : "", json_string(h ? h : ""));
        free(h);
        break;
    }
    default: tg_cli_cell_any(t, NULL, json_null());
    }
}

static int on_row(const tg_sql_value_t *vals, size_t n, void *ud)
{
    out_t *o = ud;
    for (size_t i = 0; i < n; i++)
        add_value(&o->t, &vals[i]);
    if (tg_cli_row_done(&o->t) != 0 ||
        (o->t.ncells >= FLUSH_ROWS * o->t.ncols && tg_cli_rows_flush(&o->t, stdout, o->fmt) != 0)) {
        return tg_err_set(o->err, "cannot write the rows (out of memory or stdout failed)");
    }
    return 0;
}

static int count_row(const tg_sql_value_t *v, size_t n, void *ud)
{
    *(int64_t *)ud = n && v[0].type == TG_SQL_INT ? v[0].i : 0;
    return 0;
}

/* A read-only handle on the store at url whose views exist: a store from before them
 * (migration 8) is opened once normally, which applies the migrations, and then again
 * read-only. A store that does not exist is not created. */
static int open_views(const char *url, tg_store_t **out, tg_err_t *err)
{
    for (int attempt = 0;; attempt++) {
        if (tg_store_open_readonly(url, out, err) != 0) return -1;
        int64_t views = 0;
        const tg_sql_sink_t sink = {NULL, count_row, &views};
        const char *has_views =
            strcmp(tg_store_dialect(*out), "postgres") == 0
                ? "SELECT count(*) FROM pg_views WHERE viewname = 'events' AND "
                  "schemaname = ANY (current_schemas(false))"
                : "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name = 'events'";
        if (tg_store_query(*out, has_views, NULL, 0, &sink, err) != 0) views = -1;
        if (views == 1 || attempt > 0) break;
        tg_store_close(*out);
        tg_store_t *rw;
        if (tg_store_open(url, &rw, err) != 0) return -1;
        tg_store_close(rw);
    }
    return 0;
}

/* Runs sql (or report r) through a read-only handle and prints it; the exit code. */
/* --timeout into *ms (the store's default when absent); an exit code. */
static int parse_timeout(const char *s, long long *ms)
{
    *ms = TG_STORE_QUERY_TIMEOUT_MS;
    if (!s) return 0;
    int rc = tg_duration_parse(s, TIMEOUT_MAX_MS, ms);
    if (rc == -2) return tg_cli_errorf(TG_EXIT_USAGE, "--timeout %s: at most 24h", s);
    if (rc != 0 || *ms == 0)
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "--timeout \"%s\": a positive duration, e.g. 500ms, 30s, 5m, 1h", s);
    return 0;
}

static int run(const char *config_path, const char *sql, const tg_report_t *r,
               const tg_report_query_t *q, tg_cli_format_t fmt, long long timeout_ms)
{
    tg_config_t *cfg;
    tg_store_t *store;
    tg_err_t err = {{0}};
    if (tg_config_load(config_path, &cfg, &err) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
    if (open_views(cfg->store, &store, &err) != 0) {
        tg_config_unref(cfg);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    }
    tg_store_set_query_timeout(store, timeout_ms);
    out_t o = {.fmt = fmt, .err = &err};
    const tg_sql_sink_t sink = {on_columns, on_row, &o};
    int r_ = r ? tg_report_run(store, r, q, &sink, &err)
               : tg_store_query(store, sql, NULL, 0, &sink, &err);
    tg_store_close(store);
    tg_config_unref(cfg);
    int code = TG_EXIT_OK;
    if (r_ == TG_STORE_REFUSED)
        code = tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
    else if (r_ != 0)
        code = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg[0] ? err.msg : "query failed");
    else if (tg_cli_rows_end(&o.t, stdout, fmt) != 0 || fflush(stdout) != 0)
        code = tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the rows");
    tg_cli_rows_free(&o.t);
    for (size_t i = 0; o.cols && i < o.t.ncols; i++)
        free((char *)o.cols[i].name);
    free(o.cols);
    return code;
}

int tg_cli_query(int argc, char **argv, const char *config_path)
{
    const char *format = NULL, *sql = NULL, *timeout = NULL;
    const tg_cli_opt_t opts[] = {{"--format", &format}, {"--timeout", &timeout}};
    int help = 0, npos = 0;
    int rc = tg_cli_parse(argc, argv, 1, opts, 2, &sql, 1, &npos, &help, USAGE_QUERY);
    if (rc != 0) return rc;
    if (help) {
        puts(USAGE_QUERY);
        return TG_EXIT_OK;
    }
    if (!sql) return tg_cli_errorf(TG_EXIT_USAGE, "%s", USAGE_QUERY);
    tg_cli_format_t fmt;
    if ((rc = tg_cli_parse_format(format, 1, &fmt)) != 0) return rc;
    long long ms;
    if ((rc = parse_timeout(timeout, &ms)) != 0) return rc;
    return run(config_path, sql, NULL, NULL, fmt, ms);
}

/* A --from or --to day, checked and written back as "YYYY-MM-DD" into buf. */
static int parse_day(const char *opt, const char *s, char buf[11])
{
    int64_t us;
    if (tg_parse_day(s, &us) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid %s \"%s\" (expected YYYY-MM-DD)", opt, s);
    tg_utc_day(us, buf);
    return 0;
}

int tg_cli_report(int argc, char **argv, const char *config_path)
{
    const char *format = NULL, *from = NULL, *to = NULL, *tenant = NULL, *name = NULL,
               *timeout = NULL;
    const tg_cli_opt_t opts[] = {{"--format", &format},
                                 {"--from", &from},
                                 {"--to", &to},
                                 {"--tenant", &tenant},
                                 {"--timeout", &timeout}};
    int help = 0, npos = 0;
    int rc = tg_cli_parse(argc, argv, 1, opts, 5, &name, 1, &npos, &help, USAGE_REPORT);
    if (rc != 0) return rc;
    char names[200];
    if (help) {
        printf("%s\nreports:\n", USAGE_REPORT);
        for (const tg_report_t *r = tg_reports; r->name; r++)
            printf("  %-10s %s (view %s)\n", r->name, r->summary, r->view);
        return TG_EXIT_OK;
    }
    if (!name)
        return tg_cli_errorf(TG_EXIT_USAGE, "%s (reports: %s)", USAGE_REPORT,
                             tg_report_names(names, sizeof names));
    const tg_report_t *r = tg_report_find(name);
    if (!r)
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown report \"%s\" (reports: %s)", name,
                             tg_report_names(names, sizeof names));
    char from_day[11], to_day[11];
    tg_report_query_t q = {.tenant = tenant};
    if (from && (rc = parse_day("--from", from, from_day)) != 0) return rc;
    if (to && (rc = parse_day("--to", to, to_day)) != 0) return rc;
    if (from) q.from_day = from_day;
    if (to) q.to_day = to_day;
    if (from && to && strcmp(from_day, to_day) > 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "--from %s is after --to %s", from_day, to_day);
    if (tenant && (rc = tg_cli_check_tenant(tenant, 0)) != 0) return rc;
    tg_cli_format_t fmt;
    if ((rc = tg_cli_parse_format(format, 1, &fmt)) != 0) return rc;
    long long ms;
    if ((rc = parse_timeout(timeout, &ms)) != 0) return rc;
    return run(config_path, NULL, r, &q, fmt, ms);
}
