/* `tollgate price set|list|rm`: effective-dated prices in the store (store.h,
 * tg_price_row_t; how a price applies to an event is src/meter/price.h).
 *
 * Three meters: a model (USD per 1M input, output, cached and cache-write tokens), a
 * route (USD per request and per GB of body bytes) and an MCP tool (USD per call); "*"
 * names the fallback model, every route or every tool. Every row has an effective time
 * (--from), so a new price is a new row and the old one keeps its history: `price list`
 * shows which row is in force now. Money is parsed with tg_money_parse and printed with
 * tg_money_format: integers end to end, no float ever holds a price. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "types/pricerow.h"
#include "util/clock.h"
#include "util/money.h"

#define USAGE                                                                                      \
    "usage: tollgate price set MODEL --input USD --output USD [--cached USD] "                     \
    "[--cache-write USD] [--from YYYY-MM-DD|now] | "                                               \
    "set --route NAME [--request USD] [--gb USD] [--from YYYY-MM-DD|now] | "                       \
    "set --tool NAME --call USD [--from YYYY-MM-DD|now] | "                                        \
    "list [--format table|json|csv] | rm MODEL|--route NAME|--tool NAME [--from DATE]"

/* The CLI's option for each amount (types/pricerow.h's order). */
#define NAMOUNTS TG_PRICE_NAMOUNTS
enum { A_INPUT, A_OUTPUT, A_CACHED, A_CACHE_WRITE, A_REQUEST, A_GB, A_CALL };
static const char *const amount_opt[NAMOUNTS] = {
    "--input", "--output", "--cached", "--cache-write", "--request", "--gb", "--call"};

typedef struct args {
    const char *route, *tool, *from, *format;
    const char *amount[NAMOUNTS];
    const char *model; /* the positional */
} args_t;

static int from_error(const char *s, int now_ok)
{
    return tg_cli_errorf(TG_EXIT_USAGE, "invalid --from \"%s\" (expected YYYY-MM-DD%s)", s,
                         now_ok ? " or now" : ", or YYYY-MM-DDTHH:MM:SSZ as price list shows");
}

/* The meter and name chosen by MODEL, --route or --tool: exactly one. */
static int meter_of(const args_t *a, const char *cmd, const char **meter, const char **name)
{
    const char *metres[3] = {"model", "route", "tool"};
    const char *vals[3] = {a->model, a->route, a->tool};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        if (!vals[i]) continue;
        if (n++)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "price %s takes one of MODEL, --route NAME and --tool NAME", cmd);
        *meter = metres[i];
        *name = vals[i];
    }
    if (!n)
        return tg_cli_errorf(
            TG_EXIT_USAGE, "price %s needs a MODEL, --route NAME or --tool NAME (%s)", cmd, USAGE);
    const char *what = *meter[0] == 'm' ? "MODEL" : *meter[0] == 'r' ? "--route" : "--tool";
    switch (tg_price_name_check(*name)) {
    case TG_PRICE_NAME_OK: break;
    case TG_PRICE_NAME_EMPTY: return tg_cli_errorf(TG_EXIT_USAGE, "%s must not be empty", what);
    case TG_PRICE_NAME_LONG:
        return tg_cli_errorf(TG_EXIT_USAGE, "%s is too long (at most %zu bytes)", what,
                             TG_PRICE_NAME_MAX);
    case TG_PRICE_NAME_TEXT:
        return tg_cli_errorf(TG_EXIT_USAGE, "%s must be UTF-8 text without control characters",
                             what);
    }
    return TG_EXIT_OK;
}

/* Everything `price set` can check without the store; fills row. */
static int check_set(const args_t *a, int64_t now_us, tg_price_row_t *row)
{
    memset(row, 0, sizeof *row);
    const char *meter = NULL, *name = NULL;
    int rc = meter_of(a, "set", &meter, &name);
    if (rc != 0) return rc;
    snprintf(row->meter, sizeof row->meter, "%s", meter);
    snprintf(row->name, sizeof row->name, "%s", name);
    int i = 0;
    switch (tg_price_set_amounts(row, meter, a->amount, &i)) {
    case TG_PRICE_SET_OK: break;
    case TG_PRICE_SET_METER:
        return tg_cli_errorf(TG_EXIT_USAGE, "%s prices a %s (%s), not a %s", amount_opt[i],
                             tg_price_amount_meter[i],
                             tg_price_amount_meter[i][0] == 'm'   ? "price set MODEL"
                             : tg_price_amount_meter[i][0] == 'r' ? "price set --route NAME"
                                                                  : "price set --tool NAME",
                             meter);
    case TG_PRICE_SET_AMOUNT: {
        int64_t v; /* refused again, for the CLI's one message on a bad amount */
        return tg_cli_parse_usd(amount_opt[i], a->amount[i], &v);
    }
    case TG_PRICE_SET_MISSING:
        if (meter[0] == 'm')
            return tg_cli_errorf(
                TG_EXIT_USAGE,
                "price set MODEL needs --input USD and --output USD (per 1M tokens)");
        if (meter[0] == 't')
            return tg_cli_errorf(TG_EXIT_USAGE, "price set --tool needs --call USD");
        return tg_cli_errorf(TG_EXIT_USAGE, "price set --route needs --request USD or --gb USD");
    }
    if (tg_price_parse_from(a->from ? a->from : "now", now_us, &row->effective_us) != 0)
        return from_error(a->from, 1);
    return TG_EXIT_OK;
}

static int cmd_set(tg_config_t *cfg, tg_store_t *store, tg_price_row_t *row)
{
    if (strcmp(row->meter, "route") == 0 && strcmp(row->name, "*") != 0) {
        size_t i = 0;
        while (i < cfg->nroutes && strcmp(cfg->routes[i].name, row->name) != 0)
            i++;
        /* Not an error: the route may be about to be added to the config. */
        if (i == cfg->nroutes)
            fprintf(stderr,
                    "tollgate: note: %s has no route \"%s\"; the price applies once it does\n",
                    cfg->path ? cfg->path : "the config", row->name);
    }
    tg_err_t err = {{0}};
    if (tg_store_price_set(store, row, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    char when[25];
    tg_price_fmt_when(row->effective_us, when);
    printf("price set: %s %s from %s:", row->meter, row->name, when);
    int n = 0;
    for (int i = 0; i < NAMOUNTS; i++) {
        int64_t v = tg_price_amount_get(row, i);
        if (v < 0) continue;
        char usd[32];
        tg_money_format(v, usd, sizeof usd);
        printf("%s %s %s", n++ ? "," : "", tg_price_amount_name[i], usd);
    }
    printf(" USD%s\n", row->meter[0] == 'm'   ? " per 1M tokens"
                       : row->meter[0] == 't' ? " per call"
                                              : "");
    return TG_EXIT_OK;
}

static int cmd_rm(tg_store_t *store, const char *meter, const char *name, int64_t from)
{
    tg_err_t err = {{0}};
    char when[25];
    tg_price_fmt_when(from, when);
    int r = tg_store_price_rm(store, meter, name, from, &err);
    if (r == TG_STORE_NOTFOUND && from >= 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "no price for %s \"%s\" from %s", meter, name, when);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (from >= 0)
        printf("price removed: %s %s from %s\n", meter, name, when);
    else
        printf("price removed: %s %s (every row)\n", meter, name);
    return TG_EXIT_OK;
}

typedef struct rows {
    tg_price_row_t *v;
    size_t n, cap;
} rows_t;

static int collect(const tg_price_row_t *r, void *ud)
{
    rows_t *rs = ud;
    return tg_cli_push((void **)&rs->v, &rs->n, &rs->cap, r, sizeof *r);
}

/* The amounts are text ("2.50"), none where a row does not set them; JSON has only the
 * row's own meter's amounts, and when the row was written. */
static const tg_cli_col_t cols[] = {
    {.name = "meter", .type = TG_CLI_COL_TEXT},
    {.name = "name", .type = TG_CLI_COL_TEXT},
    {.name = "from", .type = TG_CLI_COL_TEXT},
    {.name = "status", .type = TG_CLI_COL_TEXT},
    {.name = "input", .type = TG_CLI_COL_TEXT_OR_NONE},
    {.name = "output", .type = TG_CLI_COL_TEXT_OR_NONE},
    {.name = "cached", .type = TG_CLI_COL_TEXT_OR_NONE},
    {.name = "cache_write", .type = TG_CLI_COL_TEXT_OR_NONE},
    {.name = "request", .type = TG_CLI_COL_TEXT_OR_NONE},
    {.name = "gb", .type = TG_CLI_COL_TEXT_OR_NONE},
    {.name = "call", .type = TG_CLI_COL_TEXT_OR_NONE},
    {.name = "created", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_JSON_ONLY},
};

static void add_rows(tg_cli_rows_t *t, const rows_t *rs, const char *const *st)
{
    for (size_t r = 0; r < rs->n; r++) {
        const tg_price_row_t *p = &rs->v[r];
        char from[25];
        tg_price_fmt_when(p->effective_us, from);
        tg_cli_cell_text(t, p->meter);
        tg_cli_cell_text(t, p->name);
        tg_cli_cell_text(t, from);
        tg_cli_cell_text(t, st[r]);
        for (int i = 0; i < NAMOUNTS; i++) {
            int64_t v = tg_price_amount_get(p, i);
            char usd[32];
            if (v >= 0) tg_money_format(v, usd, sizeof usd);
            tg_cli_cell_text(t, v >= 0 ? usd : NULL);
            if (strcmp(tg_price_amount_meter[i], p->meter) != 0) tg_cli_cell_skip_json(t);
        }
        tg_cli_cell_time(t, p->created_us);
        tg_cli_row_done(t);
    }
}

static int cmd_list(tg_store_t *store, int64_t now_us, tg_cli_format_t fmt)
{
    rows_t rs = {0};
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    tg_err_t err = {{0}};
    int r = tg_store_price_list(store, collect, &rs, &err);
    const char **st = r == 0 ? calloc(rs.n + 1, sizeof *st) : NULL;
    if (st) {
        tg_price_statuses(rs.v, rs.n, now_us, st);
        add_rows(&t, &rs, st);
    } else {
        t.oom = 1;
    }
    free(st);
    free(rs.v);
    return tg_cli_rows_finish(&t, r, &err, fmt, "list");
}

int tg_cli_price(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "price needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    args_t a = {0};
    int64_t now = tg_wall_us(); /* "now" of --from and of the listed rows' status */
    /* set takes all of these; rm the first three. */
    const tg_cli_opt_t opts[] = {
        {"--route", &a.route},
        {"--tool", &a.tool},
        {"--from", &a.from},
        {"--input", &a.amount[A_INPUT]},
        {"--output", &a.amount[A_OUTPUT]},
        {"--cached", &a.amount[A_CACHED]},
        {"--cache-write", &a.amount[A_CACHE_WRITE]},
        {"--request", &a.amount[A_REQUEST]},
        {"--gb", &a.amount[A_GB]},
        {"--call", &a.amount[A_CALL]},
    };
    const tg_cli_opt_t list_opts[] = {{"--format", &a.format}};
    int help = 0, rc;
    tg_price_row_t row;
    const char *meter = NULL, *name = NULL;
    int64_t from = -1;
    tg_cli_format_t fmt = TG_CLI_TABLE;
    if (strcmp(sub, "set") == 0) {
        rc = tg_cli_parse(argc, argv, 2, opts, sizeof opts / sizeof opts[0], &a.model, 1, NULL,
                          &help, USAGE);
        if (rc == 0 && !help) rc = check_set(&a, now, &row);
    } else if (strcmp(sub, "rm") == 0) {
        rc = tg_cli_parse(argc, argv, 2, opts, 3, &a.model, 1, NULL, &help, USAGE);
        if (rc == 0 && !help) rc = meter_of(&a, "rm", &meter, &name);
        if (rc == 0 && !help && a.from && tg_price_parse_from(a.from, -1, &from) != 0)
            rc = from_error(a.from, 0);
    } else if (strcmp(sub, "list") == 0) {
        rc = tg_cli_parse(argc, argv, 2, list_opts, 1, NULL, 0, NULL, &help, USAGE);
        if (rc == 0 && !help) rc = tg_cli_parse_format(a.format, 1, &fmt);
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown price subcommand \"%s\" (%s)", sub, USAGE);
    }
    if (rc != 0) return rc;
    if (help) {
        puts(USAGE);
        return TG_EXIT_OK;
    }

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if (sub[0] == 's')
        rc = cmd_set(cfg, store, &row);
    else if (sub[0] == 'r')
        rc = cmd_rm(store, meter, name, from);
    else
        rc = cmd_list(store, now, fmt);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
