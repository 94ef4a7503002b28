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

#include <jansson.h>

#include "cli/cli.h"
#include "cli/common.h"

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

static int tenant_exists(tg_store_t *store, const char *tenant)
{
    if (strcmp(tenant, "*") == 0) return TG_EXIT_OK;
    tg_err_t err = {{0}};
    tg_tenant_t t;
    int r = tg_store_tenant_get(store, tenant, &t, &err);
    if (r == TG_STORE_NOTFOUND) return tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", tenant);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    return TG_EXIT_OK;
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
    return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", r == -1 && !err.msg[0] ? "out of memory" : err.msg);
}

static int cmd_list(tg_store_t *store, int json)
{
    pauses_t ps = {0};
    int rc = load(store, &ps);
    if (rc != 0) return rc;
    int w = 0;
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < ps.n; i++) {
            char since[25];
            tg_cli_fmt_time(ps.v[i].created_us, since);
            json_t *o = json_object();
            if (!o || json_array_append_new(arr, o) != 0) {
                json_decref(arr);
                arr = NULL;
                break;
            }
            json_object_set_new(o, "tenant", tg_cli_json_text(ps.v[i].tenant));
            json_object_set_new(o, "reason", tg_cli_json_text(ps.v[i].reason));
            json_object_set_new(o, "since", json_string(since));
        }
        w = arr ? json_dumpf(arr, stdout, JSON_INDENT(2)) : -1;
        json_decref(arr);
        putchar('\n');
    } else {
        int wt = 6, wr = 6;
        for (size_t i = 0; i < ps.n; i++) {
            int l = (int)strlen(ps.v[i].tenant);
            wt = l > wt ? l : wt;
            l = (int)strlen(ps.v[i].reason);
            wr = l > wr ? l : wr;
        }
        printf("%-*s  %-*s  %s\n", wt, "TENANT", wr, "REASON", "SINCE");
        for (size_t i = 0; i < ps.n; i++) {
            char since[25];
            tg_cli_fmt_time(ps.v[i].created_us, since);
            printf("%-*s  %-*s  %s\n", wt, ps.v[i].tenant, wr,
                   ps.v[i].reason[0] ? ps.v[i].reason : "-", since);
        }
    }
    free(ps.v);
    if (w != 0 || fflush(stdout) != 0 || ferror(stdout))
        return tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the list");
    return TG_EXIT_OK;
}

static int cmd_pause(tg_store_t *store, const char *tenant, const char *reason)
{
    int rc = tenant_exists(store, tenant);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    if (tg_store_pause_set(store, tenant, reason, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (strcmp(tenant, "*") == 0)
        printf("all tenants paused%s%s\n", *reason ? ": " : "", reason);
    else
        printf("tenant %s paused%s%s\n", tenant, *reason ? ": " : "", reason);
    return TG_EXIT_OK;
}

static int cmd_resume(tg_store_t *store, const char *tenant)
{
    int rc = tenant_exists(store, tenant);
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
    int help = 0, npos = 0, json = 0;
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
    if (format) {
        if (strcmp(format, "json") == 0)
            json = 1;
        else if (strcmp(format, "table") != 0)
            return tg_cli_errorf(TG_EXIT_USAGE, "invalid --format \"%s\" (expected table or json)",
                                 format);
    }
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
    rc = list ? cmd_list(store, json) : cmd_pause(store, tenant, reason);
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
