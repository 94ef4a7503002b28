/* `tollgate usage [--tenant ID] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
 *                 [--by day|hour|route|key|model|tool] [--format table|json|csv]`
 *
 * --by day reads the daily aggregates (cheap, and kept longer than events);
 * every other grouping reads usage_events. Days are UTC and --to is
 * inclusive. Money is printed from integer micro-USD with integer arithmetic
 * ("1.500000"), never through a double, so a report adds up to the cent it
 * is billed at. The rows go through the list writer of common.h, as every
 * list's do; tests/unit/cli/test_usage_format.c prints them to a buffer. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "types/text.h"
#include "util/clock.h"

#define USAGE                                                                                      \
    "usage: tollgate usage [--tenant ID] [--from YYYY-MM-DD] [--to YYYY-MM-DD] "                   \
    "[--by day|hour|route|key|model|tool] [--format table|json|csv]"

#define DAY_US 86400000000LL

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

/* json_string() refuses invalid UTF-8 (a model name from a broken upstream):
 * such bytes become '?' rather than failing the report. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    char buf[256];
    tg_text_ascii_only(s, buf, sizeof buf);
    return json_string(buf);
}

/* The report's columns. The group's is named after --by (report_columns). Empty text
 * (the unauthenticated tenant; no route, key, model or tool) shows as "-" in a table;
 * numbers are right-aligned there; cost is both the exact integer and a USD string in
 * JSON. */
static const tg_cli_col_t columns[] = {
    {.name = "tenant", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH, .json_text = json_text},
    {.name = "group", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH, .json_text = json_text},
    {.name = "requests", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    {.name = "billable", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    {.name = "failed", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    {.name = "rejected", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    {.name = "bytes_in", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    {.name = "bytes_out", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    {.name = "tokens_in", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    {.name = "tokens_out", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    {.name = "cost_micros", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "cost_usd", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_RIGHT},
};

#define NCOLS (sizeof columns / sizeof columns[0])

static void report_columns(tg_usage_by_t by, tg_cli_col_t cols[NCOLS])
{
    memcpy(cols, columns, sizeof columns);
    cols[1].name = by_name(by);
}

/* One row of the report, from the store's callback. */
static int add_row(const tg_usage_row_t *r, void *ud)
{
    tg_cli_rows_t *t = ud;
    const int64_t v[8] = {r->requests, r->billable,  r->failed,    r->rejected,
                          r->bytes_in, r->bytes_out, r->tokens_in, r->tokens_out};
    char usd[32];
    fmt_usd(r->cost_micros, usd);
    tg_cli_cell_text(t, r->tenant);
    tg_cli_cell_text(t, r->group);
    for (int i = 0; i < 8; i++)
        tg_cli_cell_int(t, v[i]);
    tg_cli_cell_int(t, r->cost_micros);
    tg_cli_cell_text(t, usd);
    return tg_cli_row_done(t);
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
    tg_cli_format_t fmt = TG_CLI_TABLE;
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
    int rc = tg_cli_parse_format(val[4], 1, &fmt);
    if (rc != 0) return rc;

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    tg_cli_col_t cols[NCOLS];
    report_columns(q.by, cols);
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    tg_err_t err = {{0}};
    int r = tg_store_usage(store, &q, add_row, &t, &err);
    tg_store_close(store);
    tg_config_unref(cfg);
    return tg_cli_rows_finish(&t, r, &err, fmt, "report");
}
