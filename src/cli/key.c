/* `tollgate key create --tenant ID [--name NAME] [--signing] [--expires DATE] |
 * import --tenant ID [--name NAME] | list [--tenant ID] | revoke KEY_ID |
 * rotate KEY_ID [--grace 24h]`.
 *
 * The secret exists only in this process, for as long as it takes to print
 * it: the store gets its SHA-256 and display prefix (auth/apikey.h), and the
 * buffer is wiped before exit. `key list` shows ids and prefixes, never a
 * secret or a hash. `key import` reads an existing secret (made by another gateway, any
 * printable form) from stdin, so its holder's requests and old logs (tollgate ingest)
 * map to the tenant; it is never echoed, and the buffer is wiped.
 *
 * --signing makes a signing secret too (signed requests, auth/sign.h), printed once beside
 * the key and stored sealed by the config's KEK (crypt/crypt.h), which it therefore needs.
 * `key rotate` makes a new key for the old one's tenant and name (with a new signing
 * secret if the old had one, and the old key's per-key limits), then sets the old key to
 * expire when the grace ends: both work meanwhile, and the events name each by its id.
 * The two steps are not one transaction: if the second fails, both keys stay valid (no
 * outage) and the error says so. The store steps of create, import and rotate are
 * auth/keyops.h's, which the admin API calls too; this file reads options and prints. */
#include <stdio.h>
#include <string.h>

#include "auth/apikey.h"
#include "auth/keyops.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "util/clock.h"

#define USAGE                                                                                      \
    "usage: tollgate key create --tenant ID [--name NAME] [--signing] [--expires DATE] | import "  \
    "--tenant ID [--name NAME] (secret on stdin) | list [--tenant ID] | revoke KEY_ID | rotate "   \
    "KEY_ID [--grace 24h]"
#define IMPORT_MIN 8   /* shorter is no secret; and the display prefix would be all of it */
#define IMPORT_MAX 255 /* what `tollgate ingest` reads of a key in a log */

typedef struct args {
    const char *pos;     /* the one positional: KEY_ID for revoke and rotate */
    const char *tenant;  /* --tenant */
    const char *name;    /* --name */
    const char *expires; /* --expires (create) */
    const char *grace;   /* --grace (rotate) */
    int signing;         /* --signing (create) */
} args_t;

enum { A_POS = 1, A_TENANT = 2, A_NAME = 4, A_CREATE = 8, A_GRACE = 16 };

/* Parses argv[2..]; allow says which parts the subcommand takes. --signing, a flag, is
 * taken out before tg_cli_parse (which knows options with values only). */
static int parse(int argc, char **argv, int allow, args_t *a)
{
    tg_cli_opt_t opts[4];
    size_t n = 0;
    if (allow & A_TENANT) opts[n++] = (tg_cli_opt_t){"--tenant", &a->tenant};
    if (allow & A_NAME) opts[n++] = (tg_cli_opt_t){"--name", &a->name};
    if (allow & A_CREATE) opts[n++] = (tg_cli_opt_t){"--expires", &a->expires};
    if (allow & A_GRACE) opts[n++] = (tg_cli_opt_t){"--grace", &a->grace};
    char *rest[64];
    int m = 0;
    for (int i = 0; i < argc && m < 64; i++) {
        if ((allow & A_CREATE) && i >= 2 && strcmp(argv[i], "--signing") == 0) {
            a->signing = 1;
            continue;
        }
        if (strcmp(argv[i], "--") == 0) allow &= ~A_CREATE; /* a positional from here on */
        rest[m++] = argv[i];
    }
    if (m == 64) return tg_cli_errorf(TG_EXIT_USAGE, "too many arguments (%s)", USAGE);
    return tg_cli_parse(m, rest, 2, opts, n, &a->pos, (allow & A_POS) ? 1 : 0, NULL, NULL, USAGE);
}

static int need_kek(const tg_config_t *cfg, const char *what)
{
    if (cfg->encryption.has_kek) return 0;
    return tg_cli_errorf(TG_EXIT_USAGE,
                         "%s needs encryption.kek_file or encryption.kek_env in %s: signing "
                         "secrets are stored sealed by that key (docs/signing.md)",
                         what, cfg->path ? cfg->path : "the config");
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

/* The CLI's words for what tg_key_make or tg_key_rotate refused. */
static int keyop_error(tg_keyop_t rc, const char *tenant, const tg_err_t *err)
{
    switch (rc) {
    case TG_KEYOP_NO_TENANT: return tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", tenant);
    case TG_KEYOP_EXISTS:
        return tg_cli_errorf(TG_EXIT_RUNTIME, "key import: this secret is already a key");
    case TG_KEYOP_RANDOM:
        return tg_cli_errorf(TG_EXIT_RUNTIME, "cannot make a key: the system random source failed");
    default: return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err->msg);
    }
}

/* Prints a key just made (the secrets this once) and a note if its tenant is not active. */
static void print_made(const tg_key_made_t *m, int imported)
{
    const tg_key_t *k = &m->key;
    printf("key_id: %s\n", k->id);
    if (imported) {
        printf("prefix: %s\n", k->prefix);
        return;
    }
    printf("secret: %s\n", m->secret);
    if (k->signing) printf("signing_secret: %s\n", m->signing);
    if (k->expires_us) {
        char iso[25];
        tg_utc_iso(k->expires_us, iso);
        printf("expires: %s\n", iso);
    }
    fprintf(stderr, "tollgate: the secret%s shown this once: store %s now\n",
            k->signing ? "s are" : " is", k->signing ? "them" : "it");
    fflush(stdout);
    if (strcmp(m->tenant_status, "active") != 0)
        fprintf(stderr, "tollgate: note: tenant \"%s\" is %s; the key works once it is enabled\n",
                k->tenant_id, m->tenant_status);
}

/* Makes and prints a key for a->tenant (tg_key_make). */
static int cmd_create(tg_store_t *store, const tg_config_t *cfg, const args_t *a, int imported)
{
    char secret[IMPORT_MAX + 2];
    tg_key_spec_t spec = {.tenant = a->tenant, .name = a->name, .signing = a->signing};
    int64_t now = tg_wall_us();
    if (a->expires &&
        (tg_parse_instant(a->expires, &spec.expires_us) != 0 || spec.expires_us <= now))
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "--expires \"%s\": expected a future UTC date (YYYY-MM-DD) or RFC "
                             "3339 time (2027-01-31T12:00:00Z)",
                             a->expires);
    if (imported) {
        int rc = read_secret(secret, sizeof secret);
        if (rc != 0) {
            explicit_bzero(secret, sizeof secret);
            return rc;
        }
        spec.import = secret;
        spec.import_len = strlen(secret);
    }
    tg_key_made_t m;
    tg_err_t err = {{0}};
    tg_keyop_t r = tg_key_make(store, cfg->encryption.has_kek ? &cfg->encryption.kek : NULL, &spec,
                               now, &m, &err);
    explicit_bzero(secret, sizeof secret);
    int rc = r == TG_KEYOP_OK ? TG_EXIT_OK : keyop_error(r, a->tenant, &err);
    if (rc == TG_EXIT_OK) print_made(&m, imported);
    tg_key_made_wipe(&m);
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
    {.name = "expires", .type = TG_CLI_COL_TEXT},
    {.name = "signing", .type = TG_CLI_COL_TEXT},
    {.name = "rotated_from", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
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
    tg_cli_cell_time(t, k->expires_us);
    tg_cli_cell_text(t, k->signing ? "yes" : "no");
    tg_cli_cell_text(t, k->rotated_from);
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

static int cmd_rotate(tg_store_t *store, const tg_config_t *cfg, const args_t *a)
{
    int64_t grace_s = TG_KEY_GRACE_DEFAULT_S;
    if (a->grace && tg_key_parse_grace(a->grace, &grace_s) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "--grace \"%s\": expected a duration such as 30m, 24h or 7d (at most "
                             "365d), or 0",
                             a->grace);
    tg_key_made_t m;
    tg_key_rotated_t rot;
    tg_err_t err = {{0}};
    tg_keyop_t r = tg_key_rotate(store, cfg->encryption.has_kek ? &cfg->encryption.kek : NULL,
                                 a->pos, grace_s, tg_wall_us(), &m, &rot, &err);
    int rc = TG_EXIT_OK;
    switch (r) {
    case TG_KEYOP_OK:
    case TG_KEYOP_HALF: break;
    case TG_KEYOP_NO_KEY: return tg_cli_errorf(TG_EXIT_RUNTIME, "no key \"%s\"", a->pos);
    case TG_KEYOP_INACTIVE:
        return tg_cli_errorf(TG_EXIT_RUNTIME, "key %s is %s: nothing to rotate", rot.old.id,
                             rot.old.status);
    case TG_KEYOP_EXPIRED:
        return tg_cli_errorf(TG_EXIT_RUNTIME, "key %s has expired: nothing to rotate", rot.old.id);
    case TG_KEYOP_ROTATED:
        return tg_cli_errorf(TG_EXIT_RUNTIME,
                             "key %s was rotated already: its successor %s is active (its "
                             "secret was shown once); revoke %s to rotate again",
                             rot.old.id, rot.successor, rot.successor);
    case TG_KEYOP_NEED_KEK: return need_kek(cfg, "rotating a signing key");
    default: return keyop_error(r, rot.old.tenant_id, &err);
    }
    print_made(&m, 0);
    if (!rot.limits_copied)
        fprintf(stderr, "tollgate: warning: the limits of %s were not all copied to %s: %s\n",
                rot.old.id, m.key.id, rot.err_limits.msg);
    char iso[25];
    if (r == TG_KEYOP_HALF) {
        rc = tg_cli_errorf(TG_EXIT_RUNTIME,
                           "%s was made, but %s could not be set to expire (%s): both work; "
                           "revoke %s when its clients have moved",
                           m.key.id, rot.old.id, err.msg, rot.old.id);
    } else if (rot.old_expires_us) {
        tg_utc_iso(rot.old_expires_us, iso);
        printf("old_key: %s (expires %s)\n", rot.old.id, iso);
    } else { /* revoked meanwhile */
        printf("old_key: %s (%s)\n", rot.old.id, rot.old.status);
    }
    tg_key_made_wipe(&m);
    return rc;
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
        int create = strcmp(sub, "create") == 0;
        if ((rc = parse(argc, argv, A_TENANT | A_NAME | (create ? A_CREATE : 0), &a)) != 0)
            return rc;
        if (!a.tenant)
            return tg_cli_errorf(TG_EXIT_USAGE, "key %s needs --tenant ID (%s)", sub, USAGE);
        if (a.name && strlen(a.name) >= sizeof((tg_key_t *)0)->name)
            return tg_cli_errorf(TG_EXIT_USAGE, "--name is too long (at most %zu bytes)",
                                 sizeof((tg_key_t *)0)->name - 1);
        if (a.name && !tg_cli_valid_label(a.name))
            return tg_cli_errorf(TG_EXIT_USAGE, "--name must not contain control characters");
    } else if (strcmp(sub, "list") == 0) {
        if ((rc = parse(argc, argv, A_TENANT, &a)) != 0) return rc;
    } else if (strcmp(sub, "revoke") == 0 || strcmp(sub, "rotate") == 0) {
        int rotate = strcmp(sub, "rotate") == 0;
        if ((rc = parse(argc, argv, A_POS | (rotate ? A_GRACE : 0), &a)) != 0) return rc;
        if (!a.pos) return tg_cli_errorf(TG_EXIT_USAGE, "key %s needs a KEY_ID (%s)", sub, USAGE);
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown key subcommand \"%s\" (%s)", sub, USAGE);
    }

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if (a.signing && (rc = need_kek(cfg, "key create --signing")) != 0) {
        /* refused before anything is made */
    } else if (strcmp(sub, "create") == 0 || strcmp(sub, "import") == 0) {
        rc = cmd_create(store, cfg, &a, strcmp(sub, "import") == 0);
    } else if (strcmp(sub, "rotate") == 0) {
        rc = cmd_rotate(store, cfg, &a);
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
