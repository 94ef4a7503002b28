/* `tollgate ip allow|deny CIDR [--tenant ID] | rm allow|deny CIDR [--tenant ID]
 *  | list [--tenant ID] [--format table|json]`: IP rules (policy/iprules.h).
 *
 * A CIDR is parsed by tg_cidr_parse, the gateway's own parser, so the CLI
 * accepts exactly what the gateway will match, and it is stored in one
 * normalized spelling ("10.0.0.0/8", "2001:db8::/32", a bare address as /32
 * or /128): `ip rm` then finds a rule however it was typed, and the unique
 * (tenant, action, cidr) key catches the same network written twice. No
 * --tenant is every tenant ("*"). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "types/cidr.h"

#define USAGE                                                                                      \
    "usage: tollgate ip allow|deny CIDR [--tenant ID] | rm allow|deny CIDR [--tenant ID] | "       \
    "list [--tenant ID] [--format table|json]"

static int check_tenant(const char **tenant)
{
    if (!*tenant) *tenant = "*";
    if (strcmp(*tenant, "*") == 0 || tg_cli_valid_tenant_id(*tenant)) return TG_EXIT_OK;
    return tg_cli_errorf(TG_EXIT_USAGE,
                         "invalid tenant id \"%s\": use 1-63 characters of A-Z a-z 0-9 . _ -",
                         *tenant);
}

/* An action is allow or deny, so 6 wide ("ACTION") is all it needs. */
static const tg_cli_col_t cols[] = {
    {.name = "tenant", .type = TG_CLI_COL_TEXT},
    {.name = "action", .type = TG_CLI_COL_TEXT, .width = 6},
    {.name = "cidr", .type = TG_CLI_COL_TEXT},
    {.name = "created", .type = TG_CLI_COL_TEXT},
};

static int add_row(const tg_ip_rule_row_t *r, void *ud)
{
    tg_cli_rows_t *t = ud;
    tg_cli_cell_text(t, r->tenant);
    tg_cli_cell_text(t, r->action);
    tg_cli_cell_text(t, r->cidr);
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
    int r = tg_store_ip_rule_list(store, tenant, add_row, &t, &err);
    return tg_cli_rows_finish(&t, r, &err, fmt, "list");
}

/* For rm: parse_err is set when the CIDR did not parse and is tried as
 * written (a row put into the store by other means); if that finds nothing,
 * the parse error is what the user needs to see. */
static int cmd_change(tg_store_t *store, int add, const char *tenant, const char *action,
                      const char *cidr, const char *parse_err)
{
    int rc = tg_cli_tenant_exists(store, tenant, 1);
    if (rc != 0) return rc;
    tg_err_t err = {{0}};
    char who[96];
    int r;
    if (add) {
        tg_ip_rule_row_t row;
        memset(&row, 0, sizeof row);
        snprintf(row.tenant, sizeof row.tenant, "%s", tenant);
        snprintf(row.action, sizeof row.action, "%s", action);
        snprintf(row.cidr, sizeof row.cidr, "%s", cidr);
        r = tg_store_ip_rule_add(store, &row, &err);
    } else {
        r = tg_store_ip_rule_rm(store, tenant, action, cidr, &err);
        if (r == TG_STORE_NOTFOUND && parse_err)
            return tg_cli_errorf(TG_EXIT_USAGE, "invalid CIDR %s", parse_err);
    }
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    printf("ip rule %s: %s %s %s\n", add ? "added" : "removed", action, cidr,
           tg_cli_rule_owner(tenant, who, sizeof who));
    return TG_EXIT_OK;
}

int tg_cli_ip(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "ip needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    const char *tenant = NULL, *format = NULL, *pos[2] = {NULL, NULL};
    const tg_cli_opt_t opts[] = {{"--tenant", &tenant}, {"--format", &format}};
    int help = 0, npos = 0, rc;
    int add = strcmp(sub, "allow") == 0 || strcmp(sub, "deny") == 0;
    int rm = strcmp(sub, "rm") == 0;
    if (!add && !rm && strcmp(sub, "list") != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown ip subcommand \"%s\" (%s)", sub, USAGE);
    /* --format goes with list only: the others see one option. */
    rc = tg_cli_parse(argc, argv, 2, opts, add || rm ? 1 : 2, pos,
                      add  ? 1
                      : rm ? 2
                           : 0,
                      &npos, &help, USAGE);
    if (rc != 0) return rc;
    if (help) {
        puts(USAGE);
        return TG_EXIT_OK;
    }

    const char *action = add ? sub : NULL, *text = NULL;
    char cidr[64], parse_err[sizeof((tg_err_t *)0)->msg + 8];
    int parsed = 0;
    tg_cli_format_t fmt = TG_CLI_TABLE;
    if (add || rm) {
        if (add && npos < 1)
            return tg_cli_errorf(TG_EXIT_USAGE, "ip %s needs a CIDR (%s)", sub, USAGE);
        if (rm && npos < 2)
            return tg_cli_errorf(TG_EXIT_USAGE, "ip rm needs allow or deny and a CIDR (%s)", USAGE);
        if (rm) {
            action = pos[0];
            if (strcmp(action, "allow") != 0 && strcmp(action, "deny") != 0)
                return tg_cli_errorf(TG_EXIT_USAGE,
                                     "invalid action \"%s\" (expected allow or deny)", action);
        }
        text = pos[npos - 1];
        tg_cidr_t c;
        tg_err_t err = {{0}};
        if (tg_cidr_parse(text, &c, &err) == 0) {
            tg_cidr_format(&c, cidr, sizeof cidr);
            parsed = 1;
        } else if (add || strlen(text) >= sizeof cidr) {
            return tg_cli_errorf(TG_EXIT_USAGE, "invalid CIDR %s", err.msg);
        } else {
            snprintf(cidr, sizeof cidr, "%s", text);
            snprintf(parse_err, sizeof parse_err, "%s", err.msg);
        }
    } else if ((rc = tg_cli_parse_format(format, 0, &fmt)) != 0) {
        return rc;
    }
    if ((add || rm || tenant) && (rc = check_tenant(&tenant)) != 0) return rc;

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if (add || rm)
        rc = cmd_change(store, add, tenant, action, cidr, parsed ? NULL : parse_err);
    else
        rc = cmd_list(store, tenant, fmt);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
