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
 * outage) and the error says so. */
#include <stdio.h>
#include <string.h>

#include "auth/apikey.h"
#include "cli/cli.h"
#include "crypt/crypt.h"
#include "cli/common.h"
#include "util/clock.h"
#include "util/duration.h"
#include "util/log.h"

#define USAGE                                                                                      \
    "usage: tollgate key create --tenant ID [--name NAME] [--signing] [--expires DATE] | import "  \
    "--tenant ID [--name NAME] (secret on stdin) | list [--tenant ID] | revoke KEY_ID | rotate "   \
    "KEY_ID [--grace 24h]"
#define GRACE_DEFAULT_S (24 * 3600)
#define GRACE_MAX_S     (365 * 24 * 3600)
#define IMPORT_MIN      8   /* shorter is no secret; and the display prefix would be all of it */
#define IMPORT_MAX      255 /* what `tollgate ingest` reads of a key in a log */

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

/* --grace: a whole number with s, m, h or d ("24h"), or 0. */
static int parse_grace(const char *s, int64_t *out_s)
{
    long long ms;
    /* A unit is needed (a bare number would be milliseconds), except for 0. */
    if (strspn(s, "0123456789") == strlen(s) && strcmp(s, "0") != 0) return -1;
    if (tg_duration_parse(s, GRACE_MAX_S * 1000LL, &ms) != 0) return -1;
    *out_s = ms / 1000;
    return 0;
}

/* A fresh signing secret into secret, sealed for key k (AAD: its id) into k. */
static int make_signing(const tg_config_t *cfg, tg_key_t *k, char secret[TG_SIGNING_SECRET_LEN + 1])
{
    unsigned char *blob = NULL;
    size_t bl = 0;
    tg_err_t err = {{0}};
    if (tg_apikey_signing_secret(secret) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME,
                             "cannot make a signing secret: the system random source failed");
    if (tg_crypt_seal(&cfg->encryption.kek, secret, TG_SIGNING_SECRET_LEN, k->id, strlen(k->id),
                      &blob, &bl, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "cannot seal the signing secret: %s", err.msg);
    TG_ASSERT(bl == sizeof k->signing_sealed);
    memcpy(k->signing_sealed, blob, bl);
    k->signing = 1;
    tg_crypt_free(blob, bl);
    return 0;
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

/* Makes and prints a key for a->tenant; from: the key it replaces (`key rotate`), whose id
 * the new row names. The new key's id into new_id (may be NULL). */
static int cmd_create(tg_store_t *store, const tg_config_t *cfg, const args_t *a, int imported,
                      const tg_key_t *from, char new_id[32])
{
    tg_err_t err = {{0}};
    tg_tenant_t t;
    int r = tg_store_tenant_get(store, a->tenant, &t, &err);
    if (r == TG_STORE_NOTFOUND)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", a->tenant);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);

    char secret[IMPORT_MAX + 2], prefix[TG_APIKEY_PREFIX_LEN + 1];
    char signing[TG_SIGNING_SECRET_LEN + 1] = "";
    tg_key_t k;
    memset(&k, 0, sizeof k);
    int64_t now = tg_wall_us();
    if (a->expires && (tg_parse_instant(a->expires, &k.expires_us) != 0 || k.expires_us <= now))
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "--expires \"%s\": expected a future UTC date (YYYY-MM-DD) or RFC "
                             "3339 time (2027-01-31T12:00:00Z)",
                             a->expires);
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
    k.created_us = now;
    if (from) snprintf(k.rotated_from, sizeof k.rotated_from, "%s", from->id);
    int rc = TG_EXIT_OK;
    if (a->signing && (rc = make_signing(cfg, &k, signing)) != 0) {
        explicit_bzero(secret, sizeof secret);
        return rc;
    }
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
        if (k.signing) printf("signing_secret: %s\n", signing);
        if (k.expires_us) {
            char iso[25];
            tg_utc_iso(k.expires_us, iso);
            printf("expires: %s\n", iso);
        }
        fprintf(stderr, "tollgate: the secret%s shown this once: store %s now\n",
                k.signing ? "s are" : " is", k.signing ? "them" : "it");
        fflush(stdout);
        if (strcmp(t.status, "active") != 0)
            fprintf(stderr,
                    "tollgate: note: tenant \"%s\" is %s; the key works once it is enabled\n", t.id,
                    t.status);
    }
    explicit_bzero(secret, sizeof secret);
    explicit_bzero(signing, sizeof signing);
    if (new_id) memcpy(new_id, k.id, sizeof k.id);
    explicit_bzero(&k, sizeof k);
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

/* The old key's own limits (scope key) for the new key too, so a rotation changes nothing
 * but the secret. */
typedef struct copy_limits {
    tg_store_t *store;
    const char *from, *to;
    int failed;
    tg_err_t err;
} copy_limits_t;

static int copy_limit(const tg_limit_row_t *row, void *ud)
{
    copy_limits_t *c = ud;
    if (strcmp(row->scope, "key") != 0 || strcmp(row->value, c->from) != 0) return 0;
    tg_limit_row_t n = *row;
    snprintf(n.value, sizeof n.value, "%s", c->to);
    if (tg_store_limit_set(c->store, &n, &c->err) != 0) c->failed = 1;
    return 0;
}

static int cmd_rotate(tg_store_t *store, const tg_config_t *cfg, const args_t *a)
{
    tg_err_t err = {{0}};
    int64_t grace_s = GRACE_DEFAULT_S;
    if (a->grace && parse_grace(a->grace, &grace_s) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "--grace \"%s\": expected a duration such as 30m, 24h or 7d (at most "
                             "365d), or 0",
                             a->grace);
    tg_key_t old;
    int r = tg_store_key_get(store, a->pos, &old, &err);
    if (r == TG_STORE_NOTFOUND) return tg_cli_errorf(TG_EXIT_RUNTIME, "no key \"%s\"", a->pos);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    int64_t now = tg_wall_us(), until = now + grace_s * 1000000;
    if (strcmp(old.status, "active") != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "key %s is %s: nothing to rotate", old.id,
                             old.status);
    if (old.expires_us && old.expires_us <= now)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "key %s has expired: nothing to rotate", old.id);
    if (old.signing && need_kek(cfg, "rotating a signing key") != 0) return TG_EXIT_USAGE;
    args_t na = {.tenant = old.tenant_id, .name = old.name, .signing = old.signing};
    char new_id[32];
    int rc = cmd_create(store, cfg, &na, 0, &old, new_id);
    if (rc != TG_EXIT_OK) return rc;
    copy_limits_t c = {.store = store, .from = old.id, .to = new_id};
    if (tg_store_limit_list(store, old.tenant_id, copy_limit, &c, &err) != 0 || c.failed)
        fprintf(stderr, "tollgate: warning: the limits of %s were not all copied to %s: %s\n",
                old.id, new_id, c.failed ? c.err.msg : err.msg);
    r = tg_store_key_expire(store, old.id, until, &err);
    char iso[25];
    if (r == TG_STORE_NOTFOUND) { /* it expires sooner already (or was revoked meanwhile) */
        tg_store_key_get(store, old.id, &old, &err);
        tg_utc_iso(old.expires_us, iso);
        printf("old_key: %s (%s%s)\n", old.id, old.expires_us ? "expires " : old.status,
               old.expires_us ? iso : "");
        return TG_EXIT_OK;
    }
    if (r != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME,
                             "%s was made, but %s could not be set to expire (%s): both work; "
                             "revoke %s when its clients have moved",
                             new_id, old.id, err.msg, old.id);
    tg_utc_iso(until, iso);
    printf("old_key: %s (expires %s)\n", old.id, iso);
    return TG_EXIT_OK;
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
        rc = cmd_create(store, cfg, &a, strcmp(sub, "import") == 0, NULL, NULL);
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
