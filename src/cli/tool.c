/* `tollgate tool allow|deny --tenant ID PATTERN | rm --tenant ID allow|deny PATTERN
 *  | list [--tenant ID] [--format table|json|csv]`: MCP tool rules (store.h,
 * tg_tool_rule_row_t; the gateway's check is tg_policy_tool_allowed).
 *
 * A pattern is an fnmatch(3) glob on the tool name ("github_*", "delete_?", "[a-c]*"),
 * stored as given: `tool rm` takes it spelled as listed. Deny wins; once a tenant has an
 * allow rule (its own or a global one), only tools matching an allow rule get through.
 * --tenant is required, "*" meaning every tenant, so a global rule is never written by
 * forgetting an option. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "policy/policy.h"

#define USAGE                                                                                      \
    "usage: tollgate tool allow|deny --tenant ID|* PATTERN | "                                     \
    "rm --tenant ID|* allow|deny PATTERN | list [--tenant ID|*] [--format table|json|csv]"

#define PATTERN_CAP sizeof((tg_tool_rule_row_t *)0)->pattern

static int check_pattern(const char *p)
{
    tg_err_t err = {{0}};
    if (tg_policy_tool_pattern_check(p, PATTERN_CAP, &err) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
    return TG_EXIT_OK;
}

static int cmd_change(tg_store_t *store, int add, const char *tenant, const char *action,
                      const char *pattern)
{
    int rc = tg_cli_tenant_exists(store, tenant, 1);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    int r;
    if (add) {
        tg_tool_rule_row_t row;
        memset(&row, 0, sizeof row);
        snprintf(row.tenant, sizeof row.tenant, "%s", tenant);
        snprintf(row.action, sizeof row.action, "%s", action);
        snprintf(row.pattern, sizeof row.pattern, "%s", pattern);
        r = tg_store_tool_rule_add(store, &row, &err);
    } else {
        r = tg_store_tool_rule_rm(store, tenant, action, pattern, &err);
    }
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    char who[96];
    printf("tool rule %s: %s %s %s\n", add ? "added" : "removed", action, pattern,
           tg_cli_rule_owner(tenant, who, sizeof who));
    return TG_EXIT_OK;
}

static const tg_cli_col_t cols[] = {
    {.name = "tenant", .type = TG_CLI_COL_TEXT},
    {.name = "action", .type = TG_CLI_COL_TEXT},
    {.name = "pattern", .type = TG_CLI_COL_TEXT},
    {.name = "created", .type = TG_CLI_COL_TEXT},
};

static int add_row(const tg_tool_rule_row_t *r, void *ud)
{
    tg_cli_rows_t *t = ud;
    tg_cli_cell_text(t, r->tenant);
    tg_cli_cell_text(t, r->action);
    tg_cli_cell_text(t, r->pattern);
    tg_cli_cell_time(t, r->created_us);
    return tg_cli_row_done(t);
}

static int cmd_list(tg_store_t *store, const char *tenant, tg_cli_format_t fmt)
{
    if (tenant) {
        int rc = tg_cli_tenant_exists(store, tenant, 1);
        if (rc != 0) return rc;
    }
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    tg_err_t err = {{0}};
    int r = tg_store_tool_rule_list(store, tenant, add_row, &t, &err);
    return tg_cli_rows_finish(&t, r, &err, fmt, "list");
}

int tg_cli_tool(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "tool needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    int add = strcmp(sub, "allow") == 0 || strcmp(sub, "deny") == 0;
    int rm = strcmp(sub, "rm") == 0;
    if (!add && !rm && strcmp(sub, "list") != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown tool subcommand \"%s\" (%s)", sub, USAGE);
    const char *tenant = NULL, *format = NULL, *pos[2] = {NULL, NULL};
    const tg_cli_opt_t opts[] = {{"--tenant", &tenant}, {"--format", &format}};
    int help = 0, npos = 0;
    /* --format goes with list only. */
    int rc = tg_cli_parse(argc, argv, 2, opts, add || rm ? 1 : 2, pos,
                          add  ? 1
                          : rm ? 2
                               : 0,
                          &npos, &help, USAGE);
    if (rc != 0) return rc;
    if (help) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    const char *action = add ? sub : NULL, *pattern = NULL;
    tg_cli_format_t fmt = TG_CLI_TABLE;
    if (add || rm) {
        if (!tenant)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "tool %s needs --tenant ID (or --tenant '*' for "
                                 "every tenant)",
                                 sub);
        if (add && npos < 1)
            return tg_cli_errorf(TG_EXIT_USAGE, "tool %s needs a PATTERN (%s)", sub, USAGE);
        if (rm && npos < 2)
            return tg_cli_errorf(TG_EXIT_USAGE, "tool rm needs allow or deny and a PATTERN (%s)",
                                 USAGE);
        if (rm) {
            action = pos[0];
            if (strcmp(action, "allow") != 0 && strcmp(action, "deny") != 0)
                return tg_cli_errorf(TG_EXIT_USAGE,
                                     "invalid action \"%s\" (expected allow or deny)", action);
        }
        pattern = pos[npos - 1];
        if (add && (rc = check_pattern(pattern)) != 0) return rc;
    } else if ((rc = tg_cli_parse_format(format, 1, &fmt)) != 0) {
        return rc;
    }
    if (tenant && (rc = tg_cli_check_tenant(tenant, 1)) != 0) return rc;

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if (add || rm)
        rc = cmd_change(store, add, tenant, action, pattern);
    else
        rc = cmd_list(store, tenant, fmt);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
