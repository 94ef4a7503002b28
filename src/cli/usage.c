/* `tollgate usage [--tenant ID] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
 *                 [--by day|hour|route|key|model|tool] [--format table|json|csv]`
 *
 * --by day reads the daily aggregates (cheap, and kept longer than events);
 * every other grouping reads usage_events. Days are UTC and --to is
 * inclusive. Money is printed from integer micro-USD with integer arithmetic
 * ("1.500000"), never through a double, so a report adds up to the cent it
 * is billed at. The formatters take a FILE * so tests can capture them
 * (tests/unit/cli/test_usage_format.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "util/clock.h"

#define USAGE                                                                                      \
    "usage: tollgate usage [--tenant ID] [--from YYYY-MM-DD] [--to YYYY-MM-DD] "                   \
    "[--by day|hour|route|key|model|tool] [--format table|json|csv]"

#define DAY_US 86400000000LL

typedef enum { FMT_TABLE, FMT_JSON, FMT_CSV } format_t;

/* One report row, with its strings copied out of the store's callback. */
typedef struct urow {
    char tenant[64];
    char group[160];
    tg_usage_row_t r; /* r.tenant and r.group point at the arrays above */
} urow_t;

typedef struct urows {
    urow_t *v;
    size_t n, cap;
} urows_t;

/* The name of the group column, in every format. */
static const char *by_name(tg_usage_by_t by)
{
    static const char *const names[] = {"day", "hour", "route", "key_id", "model", "tool"};
    return (unsigned)by < sizeof names / sizeof names[0] ? names[by] : "group";
}

/* micro-USD as dollars with 6 decimals: 1500 -> "0.001500", -1 -> "-0.000001".
 * Unsigned arithmetic so INT64_MIN has a magnitude. */
static void fmt_usd(int64_t micros, char buf[32])
{
    uint64_t mag = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    snprintf(buf, 32, "%s%llu.%06llu", micros < 0 ? "-" : "", (unsigned long long)(mag / 1000000),
             (unsigned long long)(mag % 1000000));
}

/* The eleven cells of a row, as text; numeric cells are right-aligned. */
#define NCOLS 11
static const char *const col_names[NCOLS] = {"tenant",    "",           "requests", "billable",
                                             "failed",    "rejected",   "bytes_in", "bytes_out",
                                             "tokens_in", "tokens_out", "cost_usd"};

static void row_cells(const tg_usage_row_t *r, char num[NCOLS][32], const char *cells[NCOLS])
{
    const int64_t v[8] = {r->requests, r->billable,  r->failed,    r->rejected,
                          r->bytes_in, r->bytes_out, r->tokens_in, r->tokens_out};
    cells[0] = r->tenant;
    cells[1] = r->group;
    for (int i = 0; i < 8; i++) {
        snprintf(num[2 + i], 32, "%lld", (long long)v[i]);
        cells[2 + i] = num[2 + i];
    }
    fmt_usd(r->cost_micros, num[10]);
    cells[10] = num[10];
}

/* Aligned columns under an upper-case header. Empty tenant (unauthenticated)
 * and empty group (no route, key, model, tool) print as "-". */
static int print_table(FILE *out, tg_usage_by_t by, const urow_t *rows, size_t n)
{
    char head[NCOLS][32];
    int w[NCOLS];
    for (int c = 0; c < NCOLS; c++) {
        const char *name = c == 1 ? by_name(by) : col_names[c];
        size_t i = 0;
        for (; name[i] && i < sizeof head[c] - 1; i++)
            head[c][i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
        head[c][i] = '\0';
        w[c] = (int)i;
    }
    char num[NCOLS][32];
    const char *cells[NCOLS];
    for (size_t i = 0; i < n; i++) {
        row_cells(&rows[i].r, num, cells);
        for (int c = 0; c < NCOLS; c++) {
            int l = cells[c][0] ? (int)strlen(cells[c]) : 1;
            if (l > w[c]) w[c] = l;
        }
    }
    for (int c = 0; c < NCOLS; c++)
        fprintf(out, c < 2 ? "%-*s%s" : "%*s%s", w[c], head[c], c == NCOLS - 1 ? "\n" : "  ");
    for (size_t i = 0; i < n; i++) {
        row_cells(&rows[i].r, num, cells);
        for (int c = 0; c < NCOLS; c++) {
            const char *s = cells[c][0] ? cells[c] : "-";
            /* The last text column is padded too: numbers follow it. */
            fprintf(out, c < 2 ? "%-*s%s" : "%*s%s", w[c], s, c == NCOLS - 1 ? "\n" : "  ");
        }
    }
    return ferror(out) ? -1 : 0;
}

/* RFC 4180: quote a field holding a comma, quote, CR or LF; double quotes. */
static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static int print_csv(FILE *out, tg_usage_by_t by, const urow_t *rows, size_t n)
{
    for (int c = 0; c < NCOLS; c++)
        fprintf(out, "%s%s", c == 1 ? by_name(by) : col_names[c], c == NCOLS - 1 ? "\n" : ",");
    char num[NCOLS][32];
    const char *cells[NCOLS];
    for (size_t i = 0; i < n; i++) {
        row_cells(&rows[i].r, num, cells);
        for (int c = 0; c < NCOLS; c++) {
            csv_field(out, cells[c]);
            fputc(c == NCOLS - 1 ? '\n' : ',', out);
        }
    }
    return ferror(out) ? -1 : 0;
}

/* json_string() refuses invalid UTF-8 (a model name from a broken upstream):
 * such bytes become '?' rather than failing the report. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    char buf[256];
    size_t i = 0;
    for (; s[i] && i < sizeof buf - 1; i++)
        buf[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    buf[i] = '\0';
    return json_string(buf);
}

/* An array of objects; cost both as the exact integer and as a USD string. */
static int print_json(FILE *out, tg_usage_by_t by, const urow_t *rows, size_t n)
{
    json_t *arr = json_array();
    if (!arr) return -1;
    for (size_t i = 0; i < n; i++) {
        const tg_usage_row_t *r = &rows[i].r;
        char usd[32];
        fmt_usd(r->cost_micros, usd);
        json_t *o = json_object();
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return -1;
        }
        json_object_set_new(o, "tenant", json_text(r->tenant));
        json_object_set_new(o, by_name(by), json_text(r->group));
        json_object_set_new(o, "requests", json_integer(r->requests));
        json_object_set_new(o, "billable", json_integer(r->billable));
        json_object_set_new(o, "failed", json_integer(r->failed));
        json_object_set_new(o, "rejected", json_integer(r->rejected));
        json_object_set_new(o, "bytes_in", json_integer(r->bytes_in));
        json_object_set_new(o, "bytes_out", json_integer(r->bytes_out));
        json_object_set_new(o, "tokens_in", json_integer(r->tokens_in));
        json_object_set_new(o, "tokens_out", json_integer(r->tokens_out));
        json_object_set_new(o, "cost_micros", json_integer(r->cost_micros));
        json_object_set_new(o, "cost_usd", json_string(usd));
    }
    int rc = json_dumpf(arr, out, JSON_INDENT(2));
    json_decref(arr);
    fputc('\n', out);
    return rc != 0 || ferror(out) ? -1 : 0;
}

static int collect(const tg_usage_row_t *r, void *ud)
{
    urows_t *rs = ud;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 64;
        urow_t *v = realloc(rs->v, cap * sizeof *v);
        if (!v) return -1;
        rs->v = v;
        rs->cap = cap;
    }
    urow_t *u = &rs->v[rs->n++];
    snprintf(u->tenant, sizeof u->tenant, "%s", r->tenant);
    snprintf(u->group, sizeof u->group, "%s", r->group);
    u->r = *r;
    return 0;
}

static void fix_pointers(urows_t *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        rs->v[i].r.tenant = rs->v[i].tenant;
        rs->v[i].r.group = rs->v[i].group;
    }
}

static int parse_by(const char *s, tg_usage_by_t *by)
{
    static const char *const names[] = {"day", "hour", "route", "key", "model", "tool"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0) {
            *by = (tg_usage_by_t)i;
            return 0;
        }
    return -1;
}

static int parse_format(const char *s, format_t *f)
{
    if (strcmp(s, "table") == 0)
        *f = FMT_TABLE;
    else if (strcmp(s, "json") == 0)
        *f = FMT_JSON;
    else if (strcmp(s, "csv") == 0)
        *f = FMT_CSV;
    else
        return -1;
    return 0;
}

int tg_cli_usage(int argc, char **argv, const char *config_path)
{
    static const char *const opt_names[] = {"--tenant", "--from", "--to", "--by", "--format"};
    const char *val[5] = {NULL, NULL, NULL, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            puts(USAGE);
            return TG_EXIT_OK;
        }
        if (s[0] != '-' || !s[1])
            return tg_cli_errorf(TG_EXIT_USAGE, "unexpected argument \"%s\" (%s)", s, USAGE);
        size_t klen = strcspn(s, "=");
        size_t o = 0;
        while (o < 5 && !(strlen(opt_names[o]) == klen && strncmp(s, opt_names[o], klen) == 0))
            o++;
        if (o == 5) return tg_cli_errorf(TG_EXIT_USAGE, "unknown option %.*s", (int)klen, s);
        if (s[klen] == '=')
            val[o] = s + klen + 1;
        else if (i + 1 < argc)
            val[o] = argv[++i];
        else
            return tg_cli_errorf(TG_EXIT_USAGE, "%s needs a value", s);
    }

    tg_usage_query_t q = {.tenant = val[0], .by = TG_BY_DAY};
    format_t fmt = FMT_TABLE;
    if (val[1] && tg_parse_day(val[1], &q.from_us) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid --from \"%s\" (expected YYYY-MM-DD)", val[1]);
    if (val[2]) {
        if (tg_parse_day(val[2], &q.to_us) != 0)
            return tg_cli_errorf(TG_EXIT_USAGE, "invalid --to \"%s\" (expected YYYY-MM-DD)",
                                 val[2]);
        q.to_us += DAY_US; /* inclusive day -> exclusive bound */
    }
    if (val[1] && val[2] && q.from_us >= q.to_us)
        return tg_cli_errorf(TG_EXIT_USAGE, "--from %s is after --to %s", val[1], val[2]);
    if (val[3] && parse_by(val[3], &q.by) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "invalid --by \"%s\" (expected day, hour, route, key, model or tool)",
                             val[3]);
    if (val[4] && parse_format(val[4], &fmt) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid --format \"%s\" (expected table, json or csv)",
                             val[4]);

    tg_config_t *cfg;
    tg_store_t *store;
    int rc = tg_cli_open(config_path, &cfg, &store);
    if (rc != 0) return rc;
    urows_t rows = {0};
    tg_err_t err = {{0}};
    int r = tg_store_usage(store, &q, collect, &rows, &err);
    tg_store_close(store);
    tg_config_unref(cfg);
    if (r != 0) {
        free(rows.v);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s",
                             r == -1 && !err.msg[0] ? "out of memory" : err.msg);
    }
    fix_pointers(&rows);
    int w = fmt == FMT_JSON  ? print_json(stdout, q.by, rows.v, rows.n)
            : fmt == FMT_CSV ? print_csv(stdout, q.by, rows.v, rows.n)
                             : print_table(stdout, q.by, rows.v, rows.n);
    free(rows.v);
    if (w != 0 || fflush(stdout) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the report");
    return TG_EXIT_OK;
}
