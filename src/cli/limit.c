/* `tollgate limit set|list|rm`: rate limits, token limits and the in-flight cap, per
 * tenant and per tenant x route, tool, key or model (store.h, tg_limit_row_t).
 *
 * A row is one (tenant, scope, value); `set` replaces the whole row, so what
 * `limit list` shows is exactly what applies, with nothing merged from earlier
 * commands. Rates are whole requests per second, minute or hour, and whole tokens
 * (input + output) per minute or hour: integers end to end, the limiter turns them
 * into an emission interval (ratelimit.h).
 * Arguments are checked before the config is read, as in the other groups;
 * whether the tenant (and the key) exist is checked against the store. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"

#define USAGE                                                                                      \
    "usage: tollgate limit set --tenant ID [--route R | --tool T | --key K | --model M] "          \
    "[--rps N | --rpm N | --rph N] [--burst N] [--tpm N | --tph N] [--concurrency N] | "           \
    "list [--tenant ID] [--format table|json] | "                                                  \
    "rm --tenant ID [--route R | --tool T | --key K | --model M]"

/* Past a billion per period the emission interval of --rps drops below a
 * nanosecond: no limit worth writing down is that high. */
#define MAX_N 1000000000LL
/* Tokens come in larger numbers than requests (large accounts have tens of millions
 * per minute): a trillion per period is beyond any model's throughput. */
#define MAX_TOKENS 1000000000000LL

typedef struct args {
    const char *tenant, *route, *tool, *key, *model;
    const char *rate[3];   /* --rps, --rpm, --rph */
    const char *tokens[2]; /* --tpm, --tph */
    const char *burst, *concurrency, *format;
} args_t;

static const char *const rate_opt[3] = {"--rps", "--rpm", "--rph"};
static const int64_t rate_period[3] = {1, 60, 3600};
static const char *const tokens_opt[2] = {"--tpm", "--tph"};
static const int64_t tokens_period[2] = {60, 3600};

/* "100/min" */
static void fmt_rate(int64_t limit, int64_t period_s, char buf[32])
{
    const char *unit = period_s == 1 ? "s" : period_s == 60 ? "min" : period_s == 3600 ? "h" : "?";
    snprintf(buf, 32, "%lld/%s", (long long)limit, unit);
}

/* A tenant id that could exist (tenant add's rule); "*" is not one here:
 * every tenant's defaults come from the config (defaults.limits). */
static int check_tenant(const char *tenant)
{
    if (!tg_cli_valid_tenant_id(tenant))
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "invalid tenant id \"%s\": use 1-63 characters of A-Z a-z 0-9 . _ -",
                             tenant);
    return TG_EXIT_OK;
}

/* The scope chosen by --route/--tool/--key/--model (at most one), checked;
 * "tenant" with value "" when none. */
static int scope_of(const args_t *a, const char *cmd, const char **scope, const char **value)
{
    const char *names[4] = {"route", "tool", "key", "model"};
    const char *vals[4] = {a->route, a->tool, a->key, a->model};
    *scope = "tenant";
    *value = "";
    int n = 0;
    for (int i = 0; i < 4; i++) {
        if (!vals[i]) continue;
        if (n++)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "limit %s takes at most one of --route, --tool, "
                                 "--key and --model",
                                 cmd);
        *scope = names[i];
        *value = vals[i];
        if (!*vals[i]) return tg_cli_errorf(TG_EXIT_USAGE, "--%s must not be empty", names[i]);
        if (strlen(vals[i]) >= sizeof((tg_limit_row_t *)0)->value)
            return tg_cli_errorf(TG_EXIT_USAGE, "--%s is too long (at most %zu bytes)", names[i],
                                 sizeof((tg_limit_row_t *)0)->value - 1);
        if (!tg_cli_valid_text(vals[i]))
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "--%s must be UTF-8 text without control characters", names[i]);
    }
    return TG_EXIT_OK;
}

/* Everything `limit set` can check without the store; fills row. */
static int check_set(const args_t *a, tg_limit_row_t *row)
{
    memset(row, 0, sizeof *row);
    if (!a->tenant) return tg_cli_errorf(TG_EXIT_USAGE, "limit set needs --tenant ID (%s)", USAGE);
    int rc = check_tenant(a->tenant);
    if (rc != 0) return rc;
    const char *scope, *value;
    if ((rc = scope_of(a, "set", &scope, &value)) != 0) return rc;
    snprintf(row->tenant, sizeof row->tenant, "%s", a->tenant);
    snprintf(row->scope, sizeof row->scope, "%s", scope);
    snprintf(row->value, sizeof row->value, "%s", value);

    int which = -1;
    for (int i = 0; i < 3; i++) {
        if (!a->rate[i]) continue;
        if (which >= 0)
            return tg_cli_errorf(TG_EXIT_USAGE, "give one of --rps, --rpm and --rph, not %s and %s",
                                 rate_opt[which], rate_opt[i]);
        which = i;
        if (tg_cli_parse_count(a->rate[i], MAX_N, &row->limit) != 0)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "invalid %s \"%s\" (expected an integer from 0 to %lld)",
                                 rate_opt[i], a->rate[i], MAX_N);
        row->period_s = rate_period[i];
    }
    if (a->burst) {
        if (tg_cli_parse_count(a->burst, MAX_N, &row->burst) != 0 || row->burst < 1)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "invalid --burst \"%s\" (expected an integer from 1 to %lld)",
                                 a->burst, MAX_N);
        if (which < 0)
            return tg_cli_errorf(TG_EXIT_USAGE, "--burst needs a rate: --rps, --rpm or --rph");
    }
    int twhich = -1;
    for (int i = 0; i < 2; i++) {
        if (!a->tokens[i]) continue;
        if (twhich >= 0)
            return tg_cli_errorf(TG_EXIT_USAGE, "give one of --tpm and --tph, not both");
        twhich = i;
        if (tg_cli_parse_count(a->tokens[i], MAX_TOKENS, &row->tokens) != 0 || row->tokens < 1)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "invalid %s \"%s\" (expected an integer from 1 to %lld)",
                                 tokens_opt[i], a->tokens[i], MAX_TOKENS);
        row->tokens_period_s = tokens_period[i];
        /* An MCP tool call carries no tokens: such a limit could never count one. */
        if (strcmp(scope, "tool") == 0)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "%s does not go with --tool: tool calls have "
                                 "no tokens",
                                 tokens_opt[i]);
    }
    if (a->concurrency) {
        if (tg_cli_parse_count(a->concurrency, MAX_N, &row->concurrency) != 0 ||
            row->concurrency < 1)
            return tg_cli_errorf(
                TG_EXIT_USAGE, "invalid --concurrency \"%s\" (expected an integer from 1 to %lld)",
                a->concurrency, MAX_N);
        if (strcmp(scope, "tenant") != 0)
            return tg_cli_errorf(TG_EXIT_USAGE, "--concurrency caps the whole tenant: it does not "
                                                "go with --route, --tool, --key or --model");
    }
    if (which < 0 && twhich < 0 && !a->concurrency)
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "limit set needs --rps N, --rpm N or --rph N, --tpm N or --tph N, "
                             "or --concurrency N (%s)",
                             USAGE);
    return TG_EXIT_OK;
}

typedef struct key_find {
    const char *id;
    int found;
} key_find_t;

static int find_key(const tg_key_t *k, void *ud)
{
    key_find_t *f = ud;
    if (strcmp(k->id, f->id) == 0) f->found = 1;
    return 0;
}

static int cmd_set(tg_config_t *cfg, tg_store_t *store, tg_limit_row_t *row)
{
    tg_err_t err = {{0}};
    int rc = tg_cli_tenant_exists(store, row->tenant, 0);
    if (rc != 0) return rc;
    if (strcmp(row->scope, "key") == 0) {
        /* A key's limit is looked up under the key's own tenant, so a key
         * of another tenant could never match: refuse it here. */
        key_find_t f = {row->value, 0};
        if (tg_store_key_list(store, row->tenant, find_key, &f, &err) != 0)
            return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
        if (!f.found)
            return tg_cli_errorf(TG_EXIT_RUNTIME, "no key \"%s\" of tenant \"%s\"", row->value,
                                 row->tenant);
    }
    if (strcmp(row->scope, "route") == 0) {
        size_t i = 0;
        while (i < cfg->nroutes && strcmp(cfg->routes[i].name, row->value) != 0)
            i++;
        /* Not an error: the route may be about to be added to the config. */
        if (i == cfg->nroutes)
            fprintf(stderr,
                    "tollgate: note: %s has no route \"%s\"; the limit applies once it does\n",
                    cfg->path ? cfg->path : "the config", row->value);
    }
    int r = tg_store_limit_set(store, row, &err);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);

    printf("limit set: %s", row->tenant);
    if (strcmp(row->scope, "tenant") != 0) printf(" %s %s", row->scope, row->value);
    if (row->period_s) {
        char rate[32];
        fmt_rate(row->limit, row->period_s, rate);
        printf(" %s", rate);
    }
    if (row->burst) printf(" burst %lld", (long long)row->burst);
    if (row->tokens_period_s) {
        char rate[32];
        fmt_rate(row->tokens, row->tokens_period_s, rate);
        printf(" tokens %s", rate);
    }
    if (row->concurrency) printf(" concurrency %lld", (long long)row->concurrency);
    putchar('\n');
    return TG_EXIT_OK;
}

static int cmd_rm(tg_store_t *store, const char *tenant, const char *scope, const char *value)
{
    int rc = tg_cli_tenant_exists(store, tenant, 0);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    if (tg_store_limit_rm(store, tenant, scope, value, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (*value)
        printf("limit removed: %s %s %s\n", tenant, scope, value);
    else
        printf("limit removed: %s\n", tenant);
    return TG_EXIT_OK;
}

/* The table shows a rate as "100/min"; JSON has the count and the period apart, and
 * null for what a row does not set, so a script need not know the table's "-". */
static const tg_cli_col_t cols[] = {
    {.name = "tenant", .type = TG_CLI_COL_TEXT},
    {.name = "scope", .type = TG_CLI_COL_TEXT},
    {.name = "value", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
    {.name = "limit", .type = TG_CLI_COL_TEXT_OR_NONE, .flags = TG_CLI_COL_NO_JSON},
    {.name = "limit", .type = TG_CLI_COL_INT_OR_NONE, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "period_s", .type = TG_CLI_COL_INT_OR_NONE, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "burst", .type = TG_CLI_COL_INT_OR_NONE},
    {.name = "tokens", .type = TG_CLI_COL_TEXT_OR_NONE, .flags = TG_CLI_COL_NO_JSON},
    {.name = "tokens", .type = TG_CLI_COL_INT_OR_NONE, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "tokens_period_s", .type = TG_CLI_COL_INT_OR_NONE, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "concurrency", .type = TG_CLI_COL_INT_OR_NONE, .width = 11},
    {.name = "updated", .type = TG_CLI_COL_TEXT},
};

static int add_row(const tg_limit_row_t *r, void *ud)
{
    tg_cli_rows_t *t = ud;
    int rate = r->period_s > 0, tokens = r->tokens_period_s > 0;
    char rate_text[32], tokens_text[32];
    fmt_rate(r->limit, r->period_s, rate_text);
    fmt_rate(r->tokens, r->tokens_period_s, tokens_text);
    tg_cli_cell_text(t, r->tenant);
    tg_cli_cell_text(t, r->scope);
    tg_cli_cell_text(t, r->value);
    tg_cli_cell_text(t, rate ? rate_text : NULL);
    tg_cli_cell_int_or_none(t, rate, r->limit);
    tg_cli_cell_int_or_none(t, rate, r->period_s);
    /* The burst in effect: a row stored with burst 0 admits `limit` at once. */
    tg_cli_cell_int_or_none(t, rate, r->burst ? r->burst : r->limit);
    tg_cli_cell_text(t, tokens ? tokens_text : NULL);
    tg_cli_cell_int_or_none(t, tokens, r->tokens);
    tg_cli_cell_int_or_none(t, tokens, r->tokens_period_s);
    tg_cli_cell_int_or_none(t, r->concurrency > 0, r->concurrency);
    tg_cli_cell_time(t, r->updated_us);
    return tg_cli_row_done(t);
}

static int cmd_list(tg_store_t *store, const char *tenant, tg_cli_format_t fmt)
{
    if (tenant) {
        int rc = tg_cli_tenant_exists(store, tenant, 0);
        if (rc != 0) return rc;
    }
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    tg_err_t err = {{0}};
    int r = tg_store_limit_list(store, tenant, add_row, &t, &err);
    return tg_cli_rows_finish(&t, r, &err, fmt, "list");
}

int tg_cli_limit(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "limit needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    args_t a = {0};
    /* set takes all of these, rm the first five. */
    const tg_cli_opt_t set_opts[] = {
        {"--tenant", &a.tenant}, {"--route", &a.route},   {"--tool", &a.tool},
        {"--key", &a.key},       {"--model", &a.model},   {"--rps", &a.rate[0]},
        {"--rpm", &a.rate[1]},   {"--rph", &a.rate[2]},   {"--burst", &a.burst},
        {"--tpm", &a.tokens[0]}, {"--tph", &a.tokens[1]}, {"--concurrency", &a.concurrency},
    };
    const tg_cli_opt_t list_opts[] = {{"--tenant", &a.tenant}, {"--format", &a.format}};
    int help = 0, rc;
    tg_limit_row_t row;
    const char *scope = NULL, *value = NULL;
    tg_cli_format_t fmt = TG_CLI_TABLE;
    if (strcmp(sub, "set") == 0) {
        rc = tg_cli_parse(argc, argv, 2, set_opts, sizeof set_opts / sizeof set_opts[0], NULL, 0,
                          NULL, &help, USAGE);
        if (rc == 0 && !help) rc = check_set(&a, &row);
    } else if (strcmp(sub, "rm") == 0) {
        rc = tg_cli_parse(argc, argv, 2, set_opts, 5, NULL, 0, NULL, &help, USAGE);
        if (rc == 0 && !help && !a.tenant)
            rc = tg_cli_errorf(TG_EXIT_USAGE, "limit rm needs --tenant ID (%s)", USAGE);
        if (rc == 0 && !help) rc = check_tenant(a.tenant);
        if (rc == 0 && !help) rc = scope_of(&a, "rm", &scope, &value);
    } else if (strcmp(sub, "list") == 0) {
        rc = tg_cli_parse(argc, argv, 2, list_opts, 2, NULL, 0, NULL, &help, USAGE);
        if (rc == 0 && !help && a.tenant) rc = check_tenant(a.tenant);
        if (rc == 0 && !help) rc = tg_cli_parse_format(a.format, 0, &fmt);
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown limit subcommand \"%s\" (%s)", sub, USAGE);
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
        rc = cmd_rm(store, a.tenant, scope, value);
    else
        rc = cmd_list(store, a.tenant, fmt);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
