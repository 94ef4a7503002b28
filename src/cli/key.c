/* `tollgate key create --tenant ID [--name NAME] | import --tenant ID [--name NAME] |
 * list [--tenant ID] | revoke KEY_ID`.
 *
 * The secret exists only in this process, for as long as it takes to print
 * it: the store gets its SHA-256 and display prefix (auth/apikey.h), and the
 * buffer is wiped before exit. `key list` shows ids and prefixes, never a
 * secret or a hash. `key import` reads an existing secret (made by another gateway, any
 * printable form) from stdin, so its holder's requests and old logs (tollgate ingest)
 * map to the tenant; it is never echoed, and the buffer is wiped. */
#include <stdio.h>
#include <string.h>

#include "auth/apikey.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "util/clock.h"

#define USAGE                                                                                      \
    "usage: tollgate key create --tenant ID [--name NAME] | import --tenant ID [--name NAME] "     \
    "(secret on stdin) | list [--tenant ID] | revoke KEY_ID"
#define IMPORT_MIN 8   /* shorter is no secret; and the display prefix would be all of it */
#define IMPORT_MAX 255 /* what `tollgate ingest` reads of a key in a log */

typedef struct args {
    const char *pos;    /* the one positional: KEY_ID for revoke */
    const char *tenant; /* --tenant */
    const char *name;   /* --name */
} args_t;

/* Parses argv[2..]; allow_* say which parts the subcommand takes. */
static int parse(int argc, char **argv, int allow_pos, int allow_tenant, int allow_name, args_t *a)
{
    tg_cli_opt_t opts[2] = {{NULL, NULL}, {NULL, NULL}};
    size_t n = 0;
    if (allow_tenant) opts[n++] = (tg_cli_opt_t){"--tenant", &a->tenant};
    if (allow_name) opts[n++] = (tg_cli_opt_t){"--name", &a->name};
    return tg_cli_parse(argc, argv, 2, opts, n, &a->pos, allow_pos, NULL, NULL, USAGE);
}

/* The secret on stdin: one line (a final newline, CR LF too, and surrounding blanks are
 * not part of it), printable ASCII, IMPORT_MIN..IMPORT_MAX characters. Error messages
 * never quote it. */
static int read_secret(char *buf, size_t cap)
{
    size_t n = fread(buf, 1, cap - 1, stdin);
    int more = n == cap - 1 && fgetc(stdin) != EOF;
    buf[n] = '\0';
    while (n &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    size_t b = 0;
    while (b < n && (buf[b] == ' ' || buf[b] == '\t'))
        b++;
    memmove(buf, buf + b, n - b + 1);
    n -= b;
    if (more || n > IMPORT_MAX)
        return tg_cli_errorf(TG_EXIT_USAGE, "key import: the secret is longer than %d characters",
                             IMPORT_MAX);
    if (n < IMPORT_MIN)
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "key import: no secret on stdin, or shorter than %d characters",
                             IMPORT_MIN);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "key import: the secret must be one line of printable ASCII "
                                 "(character %zu is not)",
                                 i + 1);
    return 0;
}

static int cmd_create(tg_store_t *store, const args_t *a, int imported)
{
    tg_err_t err = {{0}};
    tg_tenant_t t;
    int r = tg_store_tenant_get(store, a->tenant, &t, &err);
    if (r == TG_STORE_NOTFOUND)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", a->tenant);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);

    char secret[IMPORT_MAX + 2], prefix[TG_APIKEY_PREFIX_LEN + 1];
    tg_key_t k;
    memset(&k, 0, sizeof k);
    if (imported) {
        int rc = read_secret(secret, sizeof secret);
        if (rc == 0 && tg_apikey_import(secret, strlen(secret), k.id, prefix, k.sha256) != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME,
                               "cannot make a key id: the system random source failed");
        if (rc != 0) {
            explicit_bzero(secret, sizeof secret);
            return rc;
        }
    } else if (tg_apikey_generate(secret, k.id, prefix, k.sha256) != 0) {
        return tg_cli_errorf(TG_EXIT_RUNTIME,
                             "cannot generate a key: the system random source failed");
    }
    snprintf(k.tenant_id, sizeof k.tenant_id, "%s", t.id);
    snprintf(k.prefix, sizeof k.prefix, "%s", prefix);
    snprintf(k.name, sizeof k.name, "%s", a->name ? a->name : "");
    snprintf(k.status, sizeof k.status, "active");
    k.created_us = tg_wall_us();

    int rc = TG_EXIT_OK;
    r = tg_store_key_add(store, &k, &err);
    if (r == TG_STORE_NOTFOUND) /* removed since we looked */
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", a->tenant);
    else if (r == TG_STORE_EXISTS && imported)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "key import: this secret is already a key");
    else if (r != 0)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    else if (imported) {
        printf("key_id: %s\n", k.id);
        printf("prefix: %s\n", k.prefix);
    } else {
        printf("key_id: %s\n", k.id);
        printf("secret: %s\n", secret);
        fprintf(stderr, "tollgate: the secret is shown this once: store it now\n");
        fflush(stdout);
        if (strcmp(t.status, "active") != 0)
            fprintf(stderr,
                    "tollgate: note: tenant \"%s\" is %s; the key works once it is enabled\n", t.id,
                    t.status);
    }
    explicit_bzero(secret, sizeof secret);
    return rc;
}

/* Prefixes are 8 characters, statuses active or revoked, times 20 (or "-"). */
static const tg_cli_col_t cols[] = {
    {.name = "id", .type = TG_CLI_COL_TEXT},
    {.name = "tenant", .type = TG_CLI_COL_TEXT},
    {.name = "prefix", .type = TG_CLI_COL_TEXT, .width = 8},
    {.name = "name", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
    {.name = "status", .type = TG_CLI_COL_TEXT, .width = 7},
    {.name = "created", .type = TG_CLI_COL_TEXT, .width = 20},
    {.name = "last_used", .type = TG_CLI_COL_TEXT},
};

/* Copies what is shown, never the hash. */
static int add_row(const tg_key_t *k, void *ud)
{
    tg_cli_rows_t *t = ud;
    tg_cli_cell_text(t, k->id);
    tg_cli_cell_text(t, k->tenant_id);
    tg_cli_cell_text(t, k->prefix);
    tg_cli_cell_text(t, k->name);
    tg_cli_cell_text(t, k->status);
    tg_cli_cell_time(t, k->created_us);
    tg_cli_cell_time(t, k->last_used_us);
    return tg_cli_row_done(t);
}

/* As tenant list, a failed write is not reported (see tenant.c). */
static int cmd_list(tg_store_t *store, const char *tenant)
{
    if (tenant) {
        int rc = tg_cli_tenant_exists(store, tenant, 0);
        if (rc != 0) return rc;
    }
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    tg_err_t err = {{0}};
    int r = tg_store_key_list(store, tenant, add_row, &t, &err);
    if (r == 0) tg_cli_rows_print(&t, stdout, TG_CLI_TABLE);
    tg_cli_rows_free(&t);
    return r == 0 ? TG_EXIT_OK : tg_cli_list_error(r, &err);
}

int tg_cli_key(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "key needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    args_t a = {0};
    int rc;
    if (strcmp(sub, "create") == 0 || strcmp(sub, "import") == 0) {
        if ((rc = parse(argc, argv, 0, 1, 1, &a)) != 0) return rc;
        if (!a.tenant)
            return tg_cli_errorf(TG_EXIT_USAGE, "key %s needs --tenant ID (%s)", sub, USAGE);
        if (a.name && strlen(a.name) >= sizeof((tg_key_t *)0)->name)
            return tg_cli_errorf(TG_EXIT_USAGE, "--name is too long (at most %zu bytes)",
                                 sizeof((tg_key_t *)0)->name - 1);
        if (a.name && !tg_cli_valid_label(a.name))
            return tg_cli_errorf(TG_EXIT_USAGE, "--name must not contain control characters");
    } else if (strcmp(sub, "list") == 0) {
        if ((rc = parse(argc, argv, 0, 1, 0, &a)) != 0) return rc;
    } else if (strcmp(sub, "revoke") == 0) {
        if ((rc = parse(argc, argv, 1, 0, 0, &a)) != 0) return rc;
        if (!a.pos) return tg_cli_errorf(TG_EXIT_USAGE, "key revoke needs a KEY_ID (%s)", USAGE);
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown key subcommand \"%s\" (%s)", sub, USAGE);
    }

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if (strcmp(sub, "create") == 0 || strcmp(sub, "import") == 0) {
        rc = cmd_create(store, &a, strcmp(sub, "import") == 0);
    } else if (strcmp(sub, "list") == 0) {
        rc = cmd_list(store, a.tenant);
    } else {
        tg_err_t err = {{0}};
        int r = tg_store_key_revoke(store, a.pos, &err);
        if (r == TG_STORE_NOTFOUND)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "no key \"%s\"", a.pos);
        else if (r != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
        else
            printf("key %s revoked\n", a.pos);
    }
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
