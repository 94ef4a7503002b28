/* The kill switch: `tollgate pause [--tenant ID] [--reason TEXT]`,
 * `tollgate pause list`, `tollgate resume [--tenant ID]`.
 *
 * A pause is a row in the store (tenant "*" = every tenant); a running
 * gateway answers the paused tenant's requests with 503 and the reason within
 * a second of the change (policy_version). Both directions are idempotent,
 * like tenant disable/enable: pausing again replaces the reason, resuming
 * what is not paused says so and succeeds, so scripts can run them blindly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "util/clock.h"

#define USAGE_PAUSE                                                                                \
    "usage: tollgate pause [--tenant ID] [--reason TEXT] | pause list [--format table|json]"
#define USAGE_RESUME "usage: tollgate resume [--tenant ID]"

/* No --tenant (or "*") is every tenant; anything else must be a possible
 * tenant id (its existence is checked against the store). */
static int check_tenant(const char **tenant)
{
    if (!*tenant) *tenant = "*";
    if (strcmp(*tenant, "*") == 0 || tg_cli_valid_tenant_id(*tenant)) return TG_EXIT_OK;
    return tg_cli_errorf(TG_EXIT_USAGE,
                         "invalid tenant id \"%s\": use 1-63 characters of A-Z a-z 0-9 . _ -",
                         *tenant);
}

typedef struct pauses {
    tg_pause_row_t *v;
    size_t n, cap;
} pauses_t;

static int collect(const tg_pause_row_t *r, void *ud)
{
    pauses_t *ps = ud;
    return tg_cli_push((void **)&ps->v, &ps->n, &ps->cap, r, sizeof *r);
}

static int load(tg_store_t *store, pauses_t *ps)
{
    tg_err_t err = {{0}};
    int r = tg_store_pause_list(store, collect, ps, &err);
    if (r == 0) return TG_EXIT_OK;
    free(ps->v);
    ps->v = NULL;
    return tg_cli_list_error(r, &err);
}

static const tg_cli_col_t cols[] = {
    {.name = "tenant", .type = TG_CLI_COL_TEXT},
    {.name = "reason", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
    {.name = "since", .type = TG_CLI_COL_TEXT},
};

static int add_row(const tg_pause_row_t *p, void *ud)
{
    tg_cli_rows_t *t = ud;
    tg_cli_cell_text(t, p->tenant);
    tg_cli_cell_text(t, p->reason);
    tg_cli_cell_time(t, p->created_us);
    return tg_cli_row_done(t);
}

static int cmd_list(tg_store_t *store, tg_cli_format_t fmt)
{
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    tg_err_t err = {{0}};
    int r = tg_store_pause_list(store, add_row, &t, &err);
    return tg_cli_rows_finish(&t, r, &err, fmt, "list");
}

static int cmd_pause(tg_store_t *store, const char *tenant, const char *reason)
{
    int rc = tg_cli_tenant_exists(store, tenant, 1);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    if (tg_store_pause_set(store, tenant, reason, tg_wall_us(), &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (strcmp(tenant, "*") == 0)
        printf("all tenants paused%s%s\n", *reason ? ": " : "", reason);
    else
        printf("tenant %s paused%s%s\n", tenant, *reason ? ": " : "", reason);
    return TG_EXIT_OK;
}

static int cmd_resume(tg_store_t *store, const char *tenant)
{
    int rc = tg_cli_tenant_exists(store, tenant, 1);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    int global = strcmp(tenant, "*") == 0;
    int r = tg_store_pause_clear(store, tenant, &err);
    if (r == TG_STORE_NOTFOUND) {
        if (global)
            printf("no global pause was set\n");
        else
            printf("tenant %s was not paused\n", tenant);
    } else if (r != 0) {
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    } else if (global) {
        printf("global pause lifted\n");
    } else {
        printf("tenant %s resumed\n", tenant);
    }
    if (!global) return TG_EXIT_OK;

    /* "resume" with no tenant reads as "everything runs again": say which
     * tenant pauses still hold, since they do not end with the global one. */
    pauses_t ps = {0};
    if (load(store, &ps) != 0) return TG_EXIT_RUNTIME;
    if (ps.n) {
        fflush(stdout); /* the confirmation first, also when both go to one pipe */
        fputs("tollgate: note: still paused:", stderr);
        for (size_t i = 0; i < ps.n && i < 10; i++)
            fprintf(stderr, " %s", ps.v[i].tenant);
        fputs(ps.n > 10 ? " ... (tollgate pause list)\n" : " (tollgate resume --tenant ID)\n",
              stderr);
    }
    free(ps.v);
    return TG_EXIT_OK;
}

int tg_cli_pause(int argc, char **argv, const char *config_path)
{
    const char *tenant = NULL, *reason = NULL, *format = NULL, *pos = NULL;
    const tg_cli_opt_t opts[] = {
        {"--tenant", &tenant},
        {"--reason", &reason},
        {"--format", &format},
    };
    int help = 0, npos = 0;
    tg_cli_format_t fmt = TG_CLI_TABLE;
    int rc = tg_cli_parse(argc, argv, 1, opts, 3, &pos, 1, &npos, &help, USAGE_PAUSE);
    if (rc != 0) return rc;
    if (help || (pos && strcmp(pos, "help") == 0)) {
        puts(USAGE_PAUSE);
        return TG_EXIT_OK;
    }
    int list = pos != NULL;
    if (pos && strcmp(pos, "list") != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "unexpected argument \"%s\" (%s)", pos, USAGE_PAUSE);
    if (list && (tenant || reason))
        return tg_cli_errorf(TG_EXIT_USAGE, "pause list takes no %s (%s)",
                             tenant ? "--tenant" : "--reason", USAGE_PAUSE);
    if (!list && format)
        return tg_cli_errorf(TG_EXIT_USAGE, "--format goes with pause list (%s)", USAGE_PAUSE);
    if ((rc = tg_cli_parse_format(format, 0, &fmt)) != 0) return rc;
    if (!list) {
        if ((rc = check_tenant(&tenant)) != 0) return rc;
        if (!reason) reason = "";
        if (strlen(reason) >= sizeof((tg_pause_row_t *)0)->reason)
            return tg_cli_errorf(TG_EXIT_USAGE, "--reason is too long (at most %zu bytes)",
                                 sizeof((tg_pause_row_t *)0)->reason - 1);
        if (!tg_cli_valid_text(reason))
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "--reason must be UTF-8 text without control characters");
    }

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    rc = list ? cmd_list(store, fmt) : cmd_pause(store, tenant, reason);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}

int tg_cli_resume(int argc, char **argv, const char *config_path)
{
    const char *tenant = NULL;
    const tg_cli_opt_t opts[] = {{"--tenant", &tenant}};
    int help = 0;
    int rc = tg_cli_parse(argc, argv, 1, opts, 1, NULL, 0, NULL, &help, USAGE_RESUME);
    if (rc != 0) return rc;
    if (help) {
        puts(USAGE_RESUME);
        return TG_EXIT_OK;
    }
    if ((rc = check_tenant(&tenant)) != 0) return rc;

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    rc = cmd_resume(store, tenant);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
