/* `tollgate admin-token create --role admin|read [--tenant ID] [--expires DATE|DURATION]
 * [--name N] | list | revoke ID`: the tokens of the admin API (docs/admin-api.md).
 *
 * A token is "tgadm_" + 43 base62 characters, from the API keys' generator (auth/apikey.h:
 * 256 bits from the system RNG), printed once; the store keeps its SHA-256 (admin/tokens.h
 * reads them). Only a read token may be scoped to a tenant: an admin token that could
 * change one tenant's objects only would need a scope on every write path, and nothing
 * asks for it. Adding and revoking bump auth_version: a running gateway counts the change
 * within a second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/tokens.h"
#include "auth/apikey.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "util/clock.h"
#include "util/duration.h"

#define USAGE                                                                                      \
    "usage: tollgate admin-token create --role admin|read [--tenant ID] "                          \
    "[--expires YYYY-MM-DD|DURATION] [--name NAME] | list | revoke ID"

#define DAY_US     86400000000LL
#define MAX_DAYS   36600 /* a hundred years: longer is a typo */
#define SECRET_MAX (sizeof TG_ADMIN_TOKEN_PREFIX + TG_APIKEY_SECRET_MAX)

/* --expires: a UTC day (the token ends as it begins), "30d", or a duration util/duration
 * reads ("12h"), from now_us. 0 and *at, or -1. */
static int parse_expires(const char *s, int64_t now_us, int64_t *at)
{
    size_t n = strlen(s);
    if (tg_parse_day(s, at) == 0) return *at > now_us ? 0 : -1;
    if (n > 1 && s[n - 1] == 'd') {
        char num[16];
        int64_t days;
        if (n - 1 >= sizeof num) return -1;
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        if (tg_cli_parse_count(num, MAX_DAYS, &days) != 0 || days == 0) return -1;
        *at = now_us + days * DAY_US;
        return 0;
    }
    long long ms;
    if (tg_duration_parse(s, (long long)MAX_DAYS * 86400000LL, &ms) != 0 || ms <= 0) return -1;
    *at = now_us + ms * 1000;
    return 0;
}

static int cmd_create(tg_store_t *store, const char *role, const char *tenant, int64_t expires_us,
                      const char *name, int64_t now_us)
{
    char raw[TG_APIKEY_SECRET_MAX], key_id[TG_APIKEY_ID_MAX], prefix[TG_APIKEY_PREFIX_LEN + 1];
    unsigned char sha[32];
    if (tg_apikey_generate(raw, key_id, prefix, sha) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME,
                             "cannot generate a token: the system random source failed");
    /* The generator's 43 random characters after "tg_", under the admin prefix; its key id's
     * 16 random hex digits after "key_", under "adm_". */
    char secret[SECRET_MAX];
    snprintf(secret, sizeof secret, TG_ADMIN_TOKEN_PREFIX "%s", raw + 3);
    tg_admin_token_row_t row;
    memset(&row, 0, sizeof row);
    snprintf(row.id, sizeof row.id, "adm_%s", key_id + 4);
    tg_apikey_hash(secret, strlen(secret), row.sha256);
    snprintf(row.role, sizeof row.role, "%s", role);
    snprintf(row.tenant, sizeof row.tenant, "%s", tenant ? tenant : "");
    snprintf(row.name, sizeof row.name, "%s", name ? name : "");
    row.created_us = now_us;
    row.expires_us = expires_us;
    tg_err_t err = {{0}};
    int rc = TG_EXIT_OK;
    int r = tg_store_admin_token_add(store, &row, &err);
    if (r == TG_STORE_NOTFOUND)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", tenant);
    else if (r != 0)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    else {
        printf("token_id: %s\n", row.id);
        printf("secret: %s\n", secret);
        fprintf(stderr, "tollgate: the secret is shown this once: store it now\n");
        fflush(stdout);
    }
    explicit_bzero(raw, sizeof raw);
    explicit_bzero(secret, sizeof secret);
    return rc;
}

static const tg_cli_col_t cols[] = {
    {.name = "id", .type = TG_CLI_COL_TEXT},
    {.name = "role", .type = TG_CLI_COL_TEXT, .width = 5},
    {.name = "tenant", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
    {.name = "name", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
    {.name = "status", .type = TG_CLI_COL_TEXT, .width = 7},
    {.name = "created", .type = TG_CLI_COL_TEXT, .width = 20},
    {.name = "expires", .type = TG_CLI_COL_TEXT, .width = 20},
    {.name = "last_used", .type = TG_CLI_COL_TEXT},
};

typedef struct list_ctx {
    tg_cli_rows_t *t;
    int64_t now_us;
} list_ctx_t;

/* Never the hash. */
static int add_row(const tg_admin_token_row_t *r, void *ud)
{
    list_ctx_t *c = ud;
    tg_cli_rows_t *t = c->t;
    tg_cli_cell_text(t, r->id);
    tg_cli_cell_text(t, r->role);
    tg_cli_cell_text(t, r->tenant);
    tg_cli_cell_text(t, r->name);
    tg_cli_cell_text(t, r->revoked_us                                 ? "revoked"
                        : r->expires_us && r->expires_us <= c->now_us ? "expired"
                                                                      : "active");
    tg_cli_cell_time(t, r->created_us);
    tg_cli_cell_time(t, r->expires_us);
    tg_cli_cell_time(t, r->last_used_us);
    return tg_cli_row_done(t);
}

int tg_cli_admin_token(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "admin-token needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    const char *role = NULL, *tenant = NULL, *expires = NULL, *name = NULL, *pos = NULL;
    int npos = 0, rc;
    int64_t now_us = tg_wall_us(), expires_us = 0;
    if (strcmp(sub, "create") == 0) {
        const tg_cli_opt_t opts[] = {
            {"--role", &role}, {"--tenant", &tenant}, {"--expires", &expires}, {"--name", &name}};
        if ((rc = tg_cli_parse(argc, argv, 2, opts, 4, NULL, 0, NULL, NULL, USAGE)) != 0) return rc;
        if (!role || (strcmp(role, "admin") != 0 && strcmp(role, "read") != 0))
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "admin-token create needs --role admin or read (%s)", USAGE);
        if (tenant && strcmp(role, "read") != 0)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "--tenant scopes read tokens only (an admin token sees every "
                                 "tenant)");
        if (tenant && (rc = tg_cli_check_tenant(tenant, 0)) != 0) return rc;
        if (expires && parse_expires(expires, now_us, &expires_us) != 0)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "invalid --expires \"%s\" (expected a future YYYY-MM-DD, Nd, or a "
                                 "duration such as 12h)",
                                 expires);
        if (name && strlen(name) >= sizeof((tg_admin_token_row_t *)0)->name)
            return tg_cli_errorf(TG_EXIT_USAGE, "--name is too long (at most %zu bytes)",
                                 sizeof((tg_admin_token_row_t *)0)->name - 1);
        if (name && !tg_cli_valid_label(name))
            return tg_cli_errorf(TG_EXIT_USAGE, "--name must not contain control characters");
    } else if (strcmp(sub, "list") == 0) {
        if ((rc = tg_cli_parse(argc, argv, 2, NULL, 0, NULL, 0, NULL, NULL, USAGE)) != 0) return rc;
    } else if (strcmp(sub, "revoke") == 0) {
        if ((rc = tg_cli_parse(argc, argv, 2, NULL, 0, &pos, 1, &npos, NULL, USAGE)) != 0)
            return rc;
        if (!pos) return tg_cli_errorf(TG_EXIT_USAGE, "admin-token revoke needs an ID (%s)", USAGE);
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown admin-token subcommand \"%s\" (%s)", sub,
                             USAGE);
    }

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    tg_err_t err = {{0}};
    if (strcmp(sub, "create") == 0) {
        rc = cmd_create(store, role, tenant, expires_us, name, now_us);
    } else if (strcmp(sub, "list") == 0) {
        tg_cli_rows_t t = TG_CLI_ROWS(cols);
        list_ctx_t c = {&t, now_us};
        int r = tg_store_admin_token_list(store, add_row, &c, &err);
        rc = tg_cli_rows_finish(&t, r, &err, TG_CLI_TABLE, "list");
    } else {
        int r = tg_store_admin_token_revoke(store, pos, now_us, &err);
        if (r == TG_STORE_NOTFOUND)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "no admin token \"%s\"", pos);
        else if (r != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
        else
            printf("admin token %s revoked\n", pos);
    }
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
