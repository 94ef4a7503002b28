/* `tollgate tenant add ID [--name NAME] | list | show ID | disable ID | enable ID`.
 *
 * Arguments are checked before the config is read, so a typo is reported as
 * a usage error (exit 2) even where no config exists yet. Changes bump the
 * store's auth_version, which is how a running gateway (any process) picks a
 * disabled tenant up within a second. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "types/text.h"

#define USAGE                                                                                      \
    "usage: tollgate tenant add ID [--name NAME] | list | show ID | disable ID | enable ID | "     \
    "set-plan ID PLAN [--from YYYY-MM] | erase ID"

/* Splits argv[2..] into at most one positional (the ID) and --name. */
static int parse(int argc, char **argv, const char **id, const char **name)
{
    int only_positional = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!only_positional && strcmp(a, "--") == 0) {
            only_positional = 1;
        } else if (!only_positional && name && strcmp(a, "--name") == 0) {
            if (i + 1 >= argc) return tg_cli_errorf(TG_EXIT_USAGE, "--name needs a value");
            *name = argv[++i];
        } else if (!only_positional && name && strncmp(a, "--name=", 7) == 0) {
            *name = a + 7;
        } else if (!only_positional && a[0] == '-' && a[1]) {
            return tg_cli_errorf(TG_EXIT_USAGE, "unknown option %s", a);
        } else if (id && !*id) {
            *id = a;
        } else {
            return tg_cli_errorf(TG_EXIT_USAGE, "unexpected argument \"%s\" (%s)", a, USAGE);
        }
    }
    if (id && !*id)
        return tg_cli_errorf(TG_EXIT_USAGE, "tenant %s needs an ID (%s)", argv[1], USAGE);
    return TG_EXIT_OK;
}

/* A status is active or disabled: 8 wide. */
static const tg_cli_col_t cols[] = {
    {.name = "id", .type = TG_CLI_COL_TEXT},
    {.name = "name", .type = TG_CLI_COL_TEXT},
    {.name = "status", .type = TG_CLI_COL_TEXT, .width = 8},
    {.name = "created", .type = TG_CLI_COL_TEXT},
};

static int add_row(const tg_tenant_t *tn, void *ud)
{
    tg_cli_rows_t *t = ud;
    tg_cli_cell_text(t, tn->id);
    tg_cli_cell_text(t, tn->name);
    tg_cli_cell_text(t, tn->status);
    tg_cli_cell_time(t, tn->created_us);
    return tg_cli_row_done(t);
}

/* Unlike the later lists, tenant list and key list have never reported a failed write
 * (exit 0 on a full disk): kept so, as scripts may rely on the exit code. */
static int cmd_list(tg_store_t *store)
{
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    tg_err_t err = {{0}};
    int r = tg_store_tenant_list(store, add_row, &t, &err);
    if (r == 0) tg_cli_rows_print(&t, stdout, TG_CLI_TABLE);
    tg_cli_rows_free(&t);
    return r == 0 ? TG_EXIT_OK : tg_cli_list_error(r, &err);
}

typedef struct key_count {
    int all, active;
} key_count_t;

static int count_key(const tg_key_t *k, void *ud)
{
    key_count_t *c = ud;
    c->all++;
    c->active += strcmp(k->status, "active") == 0;
    return 0;
}

static int cmd_show(tg_store_t *store, const char *id)
{
    tg_tenant_t t;
    tg_err_t err = {{0}};
    int rc = tg_store_tenant_get(store, id, &t, &err);
    if (rc == TG_STORE_NOTFOUND) return tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", id);
    if (rc != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    key_count_t kc = {0, 0};
    if (tg_store_key_list(store, id, count_key, &kc, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    char created[25];
    tg_cli_fmt_time(t.created_us, created);
    printf("id:       %s\n", t.id);
    printf("name:     %s\n", t.name);
    printf("status:   %s\n", t.status);
    printf("created:  %s\n", created);
    printf("keys:     %d (%d active)\n", kc.all, kc.active);
    return TG_EXIT_OK;
}

int tg_cli_tenant(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "tenant needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    if (strcmp(sub, "set-plan") == 0) return tg_cli_tenant_set_plan(argc, argv, config_path);
    if (strcmp(sub, "erase") == 0) return tg_cli_tenant_erase(argc, argv, config_path);

    const char *id = NULL, *name = NULL, *status = NULL;
    int rc;
    if (strcmp(sub, "add") == 0) {
        if ((rc = parse(argc, argv, &id, &name)) != 0) return rc;
        /* Only new tenants are refused "." and ".." (types/text.h). */
        if (!tg_text_new_tenant_id(id))
            return tg_cli_errorf(
                TG_EXIT_USAGE, "invalid tenant id \"%s\": " TG_TENANT_ID_RULE " (not . or ..)", id);
        if (name && strlen(name) >= sizeof((tg_tenant_t *)0)->name)
            return tg_cli_errorf(TG_EXIT_USAGE, "--name is too long (at most %zu bytes)",
                                 sizeof((tg_tenant_t *)0)->name - 1);
        if (name && !tg_cli_valid_label(name))
            return tg_cli_errorf(TG_EXIT_USAGE, "--name must not contain control characters");
    } else if (strcmp(sub, "list") == 0) {
        if ((rc = parse(argc, argv, NULL, NULL)) != 0) return rc;
    } else if (strcmp(sub, "show") == 0) {
        if ((rc = parse(argc, argv, &id, NULL)) != 0) return rc;
    } else if (strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) {
        if ((rc = parse(argc, argv, &id, NULL)) != 0) return rc;
        status = sub[0] == 'd' ? "disabled" : "active";
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown tenant subcommand \"%s\" (%s)", sub, USAGE);
    }

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    tg_err_t err = {{0}};
    if (strcmp(sub, "add") == 0) {
        int r = tg_store_tenant_add(store, id, name ? name : "", &err);
        if (r == TG_STORE_EXISTS)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "tenant \"%s\" already exists", id);
        else if (r != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
        else
            printf("tenant %s added\n", id);
    } else if (strcmp(sub, "list") == 0) {
        rc = cmd_list(store);
    } else if (strcmp(sub, "show") == 0) {
        rc = cmd_show(store, id);
    } else {
        int r = tg_store_tenant_set_status(store, id, status, &err);
        if (r == TG_STORE_NOTFOUND)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", id);
        else if (r != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
        else
            printf("tenant %s %s\n", id, status[0] == 'd' ? "disabled" : "enabled");
    }
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
