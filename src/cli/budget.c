/* `tollgate budget set|show|list|rm`: a tenant's monthly budget (store.h,
 * tg_budget_row_t; how the gateway enforces it is src/policy/budget.h).
 *
 * A budget is per UTC calendar month. Spend is read, never kept here: the sum of the
 * tenant's usage_daily.cost_micros over the month's days (tg_store_spend), the same
 * number the gateway starts from. A hard budget refuses requests with 402 once spent;
 * --soft only alerts. Thresholds are percents of the budget at which an alert fires,
 * once per month (the alerts table). Amounts go through tg_money_parse and
 * tg_money_format; the percentage used is integer tenths, never a float's rounding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "policy/budget.h"
#include "types/thresholds.h"
#include "util/clock.h"
#include "util/money.h"

#define USAGE                                                                                      \
    "usage: tollgate budget set --tenant ID --monthly USD [--soft] [--thresholds 80,90,100] | "    \
    "show --tenant ID [--month YYYY-MM] [--format table|json] | "                                  \
    "list [--month YYYY-MM] [--format table|json|csv] | rm --tenant ID"

#define MAX_THRESHOLD TG_THRESHOLD_MAX_PCT
#define NTHRESHOLDS   ((int)(sizeof((tg_budget_row_t *)0)->thresholds / sizeof(int)))
_Static_assert(NTHRESHOLDS == TG_THRESHOLDS_MAX, "types/thresholds.h counts the row's slots");

/* "80,90,100": 1 to NTHRESHOLDS integers from 1 to MAX_THRESHOLD, strictly ascending
 * (tg_threshold_check). */
static int parse_thresholds(const char *s, tg_budget_row_t *row)
{
    row->nthresholds = 0;
    const char *p = s;
    for (;;) {
        size_t len = strcspn(p, ",");
        char num[8];
        int64_t v;
        if (len == 0 || len >= sizeof num) goto bad;
        memcpy(num, p, len);
        num[len] = '\0';
        if (tg_cli_parse_count(num, MAX_THRESHOLD, &v) != 0) goto bad;
        switch (tg_threshold_check(row->thresholds, (size_t)row->nthresholds, v)) {
        case TG_THRESHOLD_OK: break;
        case TG_THRESHOLD_RANGE: goto bad;
        case TG_THRESHOLD_TOO_MANY:
            return tg_cli_errorf(TG_EXIT_USAGE, "invalid --thresholds \"%s\": at most %d", s,
                                 NTHRESHOLDS);
        case TG_THRESHOLD_ORDER:
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "invalid --thresholds \"%s\": percents must ascend (%lld after "
                                 "%d)",
                                 s, (long long)v, row->thresholds[row->nthresholds - 1]);
        }
        row->thresholds[row->nthresholds++] = (int)v;
        if (!p[len]) return TG_EXIT_OK;
        p += len + 1;
    }
bad:
    return tg_cli_errorf(TG_EXIT_USAGE,
                         "invalid --thresholds \"%s\" (expected ascending percents from 1 to %d, "
                         "comma-separated, e.g. 80,90,100)",
                         s, MAX_THRESHOLD);
}

static void thresholds_text(const tg_budget_row_t *r, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->nthresholds && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? "," : "", r->thresholds[i]);
    if (!r->nthresholds) snprintf(buf, cap, "none");
}

/* This UTC month: "YYYY-MM" and its first and last day. */
typedef struct month {
    char period[8], first[11], last[11];
} month_t;

/* "YYYY-MM" (a real month) into the wall time of its first day, 00:00 UTC. */
static int parse_month(const char *s, int64_t *us)
{
    char day[11];
    if (strlen(s) != 7 || s[4] != '-') return -1;
    snprintf(day, sizeof day, "%s-01", s);
    return tg_parse_day(day, us);
}

/* The UTC month holding now_us, as the gateway's budgets count it. */
static void this_month(int64_t now_us, month_t *m)
{
    tg_budget_period(now_us, m->period, m->first, m->last);
}

/* What show and list print about one budget this month. */
typedef struct status {
    int64_t spend, remaining;
    int64_t tenths; /* percent used, in tenths of a percent */
    char monthly[32], spend_usd[32], remaining_usd[32], used[32], thresholds[64];
} status_t;

static void budget_status(const tg_budget_row_t *b, int64_t spend, status_t *s)
{
    s->spend = spend;
    s->remaining = spend < b->monthly_micros ? b->monthly_micros - spend : 0;
    /* 128-bit: spend * 1000 overflows int64 past 9.2e15 micro-USD. */
    __int128 t = b->monthly_micros > 0 ? (__int128)spend * 1000 / b->monthly_micros : 0;
    s->tenths = t > INT64_MAX ? INT64_MAX : (int64_t)t;
    tg_money_format(b->monthly_micros, s->monthly, sizeof s->monthly);
    tg_money_format(spend, s->spend_usd, sizeof s->spend_usd);
    tg_money_format(s->remaining, s->remaining_usd, sizeof s->remaining_usd);
    snprintf(s->used, sizeof s->used, "%lld.%lld%%", (long long)(s->tenths / 10),
             (long long)(s->tenths % 10));
    thresholds_text(b, s->thresholds, sizeof s->thresholds);
}

static int spend_of(tg_store_t *store, const char *tenant, const month_t *m, int64_t *spend)
{
    tg_err_t err = {{0}};
    if (tg_store_spend(store, tenant, m->first, m->last, spend, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    return TG_EXIT_OK;
}

static int cmd_set(tg_store_t *store, tg_budget_row_t *row)
{
    int rc = tg_cli_tenant_exists(store, row->tenant, 0);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    if (tg_store_budget_set(store, row, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    status_t s;
    budget_status(row, 0, &s);
    printf("budget set: %s %s USD per month, %s, alerts at %s%%\n", row->tenant, s.monthly,
           row->hard ? "hard (402 once spent)" : "soft (alerts only)", s.thresholds);
    return TG_EXIT_OK;
}

static int cmd_rm(tg_store_t *store, const char *tenant)
{
    int rc = tg_cli_tenant_exists(store, tenant, 0);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    if (tg_store_budget_rm(store, tenant, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    printf("budget removed: %s\n", tenant);
    return TG_EXIT_OK;
}

typedef struct budgets {
    tg_budget_row_t *v;
    size_t n, cap;
} budgets_t;

static int collect_budget(const tg_budget_row_t *r, void *ud)
{
    budgets_t *bs = ud;
    return tg_cli_push((void **)&bs->v, &bs->n, &bs->cap, r, sizeof *r);
}

/* The alerts of one tenant in one period, oldest first. */
typedef struct alerts {
    const char *period;
    tg_alert_row_t *v;
    size_t n, cap;
} alerts_t;

static int collect_alert(const tg_alert_row_t *r, void *ud)
{
    alerts_t *as = ud;
    if (strcmp(r->period, as->period) != 0 || strcmp(r->kind, "budget") != 0) return 0;
    return tg_cli_push((void **)&as->v, &as->n, &as->cap, r, sizeof *r);
}

static json_t *thresholds_json(const tg_budget_row_t *b)
{
    json_t *a = json_array();
    for (int i = 0; a && i < b->nthresholds; i++)
        json_array_append_new(a, json_integer(b->thresholds[i]));
    return a;
}

/* What list prints of a budget, and what show prints in JSON before the period and the
 * alerts. The table has the thresholds and the percent used as text ("80,90,100",
 * "42.5%"); JSON has them as numbers, and the exact micro-USD. */
static const tg_cli_col_t cols[] = {
    {.name = "tenant", .type = TG_CLI_COL_TEXT},
    {.name = "monthly", .type = TG_CLI_COL_TEXT},
    {.name = "mode", .type = TG_CLI_COL_TEXT},
    {.name = "thresholds", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_NO_JSON},
    {.name = "thresholds", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "spend", .type = TG_CLI_COL_TEXT},
    {.name = "used", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_NO_JSON},
    {.name = "used_percent", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "remaining", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "monthly_micros", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "spend_micros", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "remaining_micros", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "updated", .type = TG_CLI_COL_TEXT},
};

static int add_budget(tg_cli_rows_t *t, const tg_budget_row_t *b, const status_t *s)
{
    tg_cli_cell_text(t, b->tenant);
    tg_cli_cell_text(t, s->monthly);
    tg_cli_cell_text(t, b->hard ? "hard" : "soft");
    tg_cli_cell_text(t, s->thresholds);
    tg_cli_cell_json(t, thresholds_json(b));
    tg_cli_cell_text(t, s->spend_usd);
    tg_cli_cell_text(t, s->used);
    tg_cli_cell_json(t, json_real((double)s->tenths / 10));
    tg_cli_cell_text(t, s->remaining_usd);
    tg_cli_cell_int(t, b->monthly_micros);
    tg_cli_cell_int(t, s->spend);
    tg_cli_cell_int(t, s->remaining);
    tg_cli_cell_time(t, b->updated_us);
    return tg_cli_row_done(t);
}

static const tg_cli_col_t alert_cols[] = {
    {.name = "threshold", .type = TG_CLI_COL_INT},
    {.name = "fired", .type = TG_CLI_COL_TEXT},
    {.name = "spend", .type = TG_CLI_COL_TEXT},
    {.name = "budget", .type = TG_CLI_COL_TEXT},
};

/* show --format json: the budget's list row, then "period" and "alerts". */
static json_t *show_json(const tg_budget_row_t *b, const status_t *s, const month_t *m,
                         const alerts_t *as)
{
    tg_cli_rows_t bt = TG_CLI_ROWS(cols), at = TG_CLI_ROWS(alert_cols);
    add_budget(&bt, b, s);
    for (size_t i = 0; i < as->n; i++) {
        char at_usd[32], of_usd[32];
        tg_money_format(as->v[i].spend_micros, at_usd, sizeof at_usd);
        tg_money_format(as->v[i].budget_micros, of_usd, sizeof of_usd);
        tg_cli_cell_int(&at, as->v[i].threshold);
        tg_cli_cell_time(&at, as->v[i].fired_us);
        tg_cli_cell_text(&at, at_usd);
        tg_cli_cell_text(&at, of_usd);
        tg_cli_row_done(&at);
    }
    json_t *arr = tg_cli_rows_json(&bt), *alerts = tg_cli_rows_json(&at);
    json_t *o = arr ? json_incref(json_array_get(arr, 0)) : NULL;
    json_decref(arr);
    tg_cli_rows_free(&bt);
    tg_cli_rows_free(&at);
    int ok = o && alerts && json_object_set_new(o, "period", json_string(m->period)) == 0;
    if (ok) {
        ok = json_object_set_new(o, "alerts", alerts) == 0; /* takes alerts, also on failure */
        alerts = NULL;
    }
    json_decref(alerts);
    if (ok) return o;
    json_decref(o);
    return NULL;
}

static int cmd_show(tg_store_t *store, const char *tenant, int64_t now_us, tg_cli_format_t fmt)
{
    int rc = tg_cli_tenant_exists(store, tenant, 0);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    budgets_t bs = {0};
    int r = tg_store_budget_list(store, tenant, collect_budget, &bs, &err);
    if (r != 0) {
        free(bs.v);
        return tg_cli_list_error(r, &err);
    }
    if (bs.n == 0) {
        free(bs.v);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "no budget for tenant \"%s\"", tenant);
    }
    tg_budget_row_t b = bs.v[0];
    free(bs.v);
    month_t m;
    this_month(now_us, &m);
    int64_t spend;
    if ((rc = spend_of(store, tenant, &m, &spend)) != 0) return rc;
    alerts_t as = {.period = m.period};
    if ((r = tg_store_alert_list(store, tenant, collect_alert, &as, &err)) != 0) {
        free(as.v);
        return tg_cli_list_error(r, &err);
    }
    status_t s;
    budget_status(&b, spend, &s);

    int w = 0;
    if (fmt == TG_CLI_JSON) {
        w = tg_cli_print_json(show_json(&b, &s, &m, &as), JSON_REAL_PRECISION(15));
    } else {
        char updated[25];
        tg_cli_fmt_time(b.updated_us, updated);
        printf("tenant:      %s\n", b.tenant);
        printf("budget:      %s USD per month, %s\n", s.monthly,
               b.hard ? "hard (requests refused with 402 once spent)" : "soft (alerts only)");
        printf("period:      %s (UTC, %s to %s)\n", m.period, m.first, m.last);
        printf("spend:       %s\n", s.spend_usd);
        printf("used:        %s\n", s.used);
        printf("remaining:   %s\n", s.remaining_usd);
        printf("thresholds:  %s%s\n", s.thresholds, b.nthresholds ? "%" : "");
        if (as.n == 0) printf("alerts:      none this period\n");
        for (size_t i = 0; i < as.n; i++) {
            char fired[25], at[32];
            tg_cli_fmt_time(as.v[i].fired_us, fired);
            tg_money_format(as.v[i].spend_micros, at, sizeof at);
            printf("%s%d%% at %s, spend %s\n",
                   i ? "             " : "alerts:      ", as.v[i].threshold, fired, at);
        }
        printf("updated:     %s\n", updated);
    }
    free(as.v);
    if (w != 0 || fflush(stdout) != 0 || ferror(stdout))
        return tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the budget");
    return TG_EXIT_OK;
}

static int cmd_list(tg_store_t *store, int64_t now_us, tg_cli_format_t fmt)
{
    tg_err_t err = {{0}};
    budgets_t bs = {0};
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    t.json_flags = JSON_REAL_PRECISION(15);
    int r = tg_store_budget_list(store, NULL, collect_budget, &bs, &err);
    month_t m;
    this_month(now_us, &m);
    for (size_t i = 0; r == 0 && i < bs.n; i++) {
        int64_t spend;
        status_t s;
        int rc = spend_of(store, bs.v[i].tenant, &m, &spend);
        if (rc != 0) {
            tg_cli_rows_free(&t);
            free(bs.v);
            return rc;
        }
        budget_status(&bs.v[i], spend, &s);
        add_budget(&t, &bs.v[i], &s);
    }
    free(bs.v);
    return tg_cli_rows_finish(&t, r, &err, fmt, "list");
}

int tg_cli_budget(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "budget needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    const char *tenant = NULL, *monthly = NULL, *thresholds = NULL, *format = NULL, *month = NULL;
    /* set takes the first three, show --tenant, --format and --month, rm --tenant, list the
     * last two. */
    const tg_cli_opt_t opts[] = {{"--tenant", &tenant},
                                 {"--monthly", &monthly},
                                 {"--thresholds", &thresholds},
                                 {"--format", &format},
                                 {"--month", &month}};
    const tg_cli_opt_t show_opts[] = {opts[0], opts[3], opts[4]};
    int help = 0, rc, soft = 0;
    tg_cli_format_t fmt = TG_CLI_TABLE;
    tg_budget_row_t row;
    memset(&row, 0, sizeof row);
    if (strcmp(sub, "set") == 0) {
        if ((soft = tg_cli_take_flag(&argc, argv, 2, "--soft")) < 0) return TG_EXIT_USAGE;
        rc = tg_cli_parse(argc, argv, 2, opts, 3, NULL, 0, NULL, &help, USAGE);
        if (rc == 0 && !help && !tenant)
            rc = tg_cli_errorf(TG_EXIT_USAGE, "budget set needs --tenant ID (%s)", USAGE);
        if (rc == 0 && !help && !monthly)
            rc = tg_cli_errorf(TG_EXIT_USAGE, "budget set needs --monthly USD (%s)", USAGE);
        if (rc == 0 && !help) rc = tg_cli_check_tenant(tenant, 0);
        if (rc == 0 && !help) rc = tg_cli_parse_usd("--monthly", monthly, &row.monthly_micros);
        if (rc == 0 && !help && row.monthly_micros == 0)
            rc = tg_cli_errorf(TG_EXIT_USAGE, "--monthly must be more than 0 (to stop a "
                                              "tenant, use tollgate pause)");
        /* Without --thresholds, the config's defaults.budget_thresholds (80,90,100). */
        if (rc == 0 && !help && thresholds) rc = parse_thresholds(thresholds, &row);
        if (rc == 0 && !help) {
            snprintf(row.tenant, sizeof row.tenant, "%s", tenant);
            row.hard = !soft;
        }
    } else if (strcmp(sub, "show") == 0 || strcmp(sub, "rm") == 0) {
        int show = sub[0] == 's';
        rc = tg_cli_parse(argc, argv, 2, show_opts, show ? 3 : 1, NULL, 0, NULL, &help, USAGE);
        if (rc == 0 && !help && !tenant)
            rc = tg_cli_errorf(TG_EXIT_USAGE, "budget %s needs --tenant ID (%s)", sub, USAGE);
        if (rc == 0 && !help) rc = tg_cli_check_tenant(tenant, 0);
        if (rc == 0 && !help && show) rc = tg_cli_parse_format(format, 0, &fmt);
    } else if (strcmp(sub, "list") == 0) {
        rc = tg_cli_parse(argc, argv, 2, opts + 3, 2, NULL, 0, NULL, &help, USAGE);
        if (rc == 0 && !help) rc = tg_cli_parse_format(format, 1, &fmt);
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown budget subcommand \"%s\" (%s)", sub, USAGE);
    }
    if (rc != 0) return rc;
    if (help) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    /* The month shown: --month YYYY-MM, or the UTC month of now (the one clock read). */
    int64_t when = 0;
    if (month && parse_month(month, &when) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid --month \"%s\" (YYYY-MM)", month);
    if (!month) when = tg_wall_us();

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if (strcmp(sub, "set") == 0 && !thresholds) {
        row.nthresholds =
            cfg->nbudget_thresholds < NTHRESHOLDS ? cfg->nbudget_thresholds : NTHRESHOLDS;
        memcpy(row.thresholds, cfg->budget_thresholds,
               (size_t)row.nthresholds * sizeof row.thresholds[0]);
    }
    if (strcmp(sub, "set") == 0)
        rc = cmd_set(store, &row);
    else if (strcmp(sub, "show") == 0)
        rc = cmd_show(store, tenant, when, fmt);
    else if (strcmp(sub, "rm") == 0)
        rc = cmd_rm(store, tenant);
    else
        rc = cmd_list(store, when, fmt);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
