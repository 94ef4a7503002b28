/* The audit trail from the CLI (docs/audit.md):
 *   - tg_cli_audited wraps every command group that can change something: the tables the
 *     group may change are snapshotted before and after it runs (audit/audit.h), and when a
 *     command succeeded and changed rows, one admin record says who (the OS user), what
 *     ("tenant.disable"), on what, and the rows before and after;
 *   - `tollgate audit verify [--from DAY] [--to DAY]`, `audit export --format jsonl|csv
 *     [--from DAY] [--to DAY]` and `audit purge` (the audit retention, now);
 *   - `tollgate audit bodies RECORD_ID [--out PREFIX]`: a call's bodies (audit.bodies:
 *     encrypt), opened with the KEK;
 *   - `tollgate tenant erase ID` (handed over by tenant.c).
 * The clock is read here, the outermost layer: the record's instant. */
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "types/bodies.h"
#include "util/clock.h"

#define USAGE                                                                                      \
    "usage: tollgate audit verify [--from YYYY-MM-DD] [--to YYYY-MM-DD] | "                        \
    "export --format jsonl|csv [--from YYYY-MM-DD] [--to YYYY-MM-DD] | purge | "                   \
    "bodies RECORD_ID [--out PREFIX]"

#define DAY_US 86400000000LL

/* What each group may change. Secrets' hashes and what the gateway itself moves (a key's
 * last use) are left out of the snapshots. A group with no tables (ingest, archive, alarms
 * test) is recorded by its action alone. Not restore: it replaces the store, chain
 * included, and must find no other connection open on it. */
typedef struct group {
    const char *name;
    const char *tables[4];
} group_t;

static const group_t groups[] = {
    {"tenant", {"tenants", "tenant_plans", NULL}},
    {"key", {"api_keys", NULL}},
    {"limit", {"limits", NULL}},
    {"pause", {"pauses", NULL}},
    {"resume", {"pauses", NULL}},
    {"ip", {"ip_rules", NULL}},
    {"price", {"prices", NULL}},
    {"budget", {"budgets", NULL}},
    {"tool", {"tool_rules", NULL}},
    {"plan", {"plans", "plan_meters", "plan_tiers", NULL}},
    {"invoice", {"invoices", NULL}},
    {"alarms", {NULL}},
    {"ingest", {NULL}},
    {"archive", {NULL}},
    {"kek", {"api_keys", NULL}},
    {"admin-token", {"admin_tokens", NULL}},
};
static const char *const skip_cols[] = {"api_keys.sha256", "api_keys.last_used_us",
                                        "admin_tokens.sha256", "admin_tokens.last_used_us", NULL};

/* The OS user running the command (the effective uid's name; "uid:N" without one). */
static void actor_of(char *buf, size_t cap)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name && pw->pw_name[0])
        snprintf(buf, cap, "%s", pw->pw_name);
    else
        snprintf(buf, cap, "uid:%ld", (long)geteuid());
}

/* The value of option name ("--tenant") in argv, either spelling, or NULL. */
static const char *opt_value(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    const char *v = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], name) == 0 && i + 1 < argc)
            v = argv[++i];
        else if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
            v = argv[i] + n + 1;
    }
    return v;
}

/* The first positional argument after the subcommand (options and their values skipped:
 * every option of the audited groups takes a value except a few flags). */
static const char *first_positional(int argc, char **argv, int from)
{
    static const char *const flags[] = {"--soft",    "--close", "--strict",
                                        "--dry-run", "--force", NULL};
    for (int i = from; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return i + 1 < argc ? argv[i + 1] : NULL;
        if (argv[i][0] != '-' || !argv[i][1]) return argv[i];
        int flag = strchr(argv[i], '=') != NULL;
        for (const char *const *f = flags; *f && !flag; f++)
            flag = strcmp(argv[i], *f) == 0;
        if (!flag) i++; /* its value */
    }
    return NULL;
}

/* The tenant_id of the first changed row (a key revoked by its id names no tenant). */
static void tenant_of_rows(const char *rows, char *buf, size_t cap)
{
    json_t *o = rows ? json_loads(rows, 0, NULL) : NULL;
    const char *table;
    json_t *arr;
    json_object_foreach(o, table, arr)
    {
        json_t *t = json_object_get(json_array_get(arr, 0), "tenant_id");
        if (json_is_string(t)) {
            snprintf(buf, cap, "%s", json_string_value(t));
            break;
        }
    }
    json_decref(o);
}

/* tg_cli_open without its error line: a usage error or a missing config is the command's
 * own to report (it runs either way). 1 when open. */
static int quiet_open(const char *config_path, tg_config_t **cfg, tg_store_t **store)
{
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0) dup2(null, 2);
    int ok = tg_cli_open(config_path, cfg, store) == 0;
    fflush(stderr);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    if (null >= 0) close(null);
    if (!ok) *cfg = NULL, *store = NULL;
    return ok;
}

/* --help or -h before any "--": the command prints its usage and changes nothing (and needs
 * no store, which may not exist yet). */
static int asks_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

int tg_cli_audited(int (*run)(int, char **, const char *), int argc, char **argv,
                   const char *config_path)
{
    const group_t *g = NULL;
    for (size_t i = 0; i < sizeof groups / sizeof groups[0] && !g; i++)
        if (strcmp(groups[i].name, argv[0]) == 0) g = &groups[i];
    const char *sub = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    if (!g || (sub && (strcmp(sub, "help") == 0)) || asks_help(argc, argv))
        return run(argc, argv, config_path);
    /* Read-only subcommands of the groups recorded by their action alone. */
    if (!g->tables[0] && strcmp(argv[0], "alarms") == 0 && (!sub || strcmp(sub, "test") != 0))
        return run(argc, argv, config_path);

    tg_config_t *cfg = NULL;
    tg_store_t *store = NULL;
    char *before = NULL;
    tg_err_t err = {{0}};
    int opened = g->tables[0] && quiet_open(config_path, &cfg, &store);
    if (opened && tg_audit_snapshot(store, g->tables, skip_cols, &before, &err) != 0)
        fprintf(stderr, "tollgate: audit: %s\n", err.msg);

    /* The command may rearrange argv (tg_cli_take_flag takes --close out): what it was given
     * is read from a copy. */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (args) memcpy(args, argv, (size_t)argc * sizeof *args);
    int rc = run(argc, argv, config_path);
    if (!args) {
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "audit: out of memory");
        goto done;
    }
    argv = args;
    if (rc != TG_EXIT_OK) goto done;
    if (!opened && g->tables[0]) { /* the command opened the store where this could not */
        rc = tg_cli_errorf(TG_EXIT_RUNTIME,
                           "audit: the change was made but not recorded (the store could not "
                           "be read before it)");
        goto done;
    }
    if (!g->tables[0] && !(opened = quiet_open(config_path, &cfg, &store))) {
        rc = tg_cli_errorf(TG_EXIT_RUNTIME,
                           "audit: the change was made but not recorded (cannot open the store)");
        goto done;
    }

    char *after = NULL, *bdiff = NULL, *adiff = NULL;
    if (g->tables[0]) {
        if (!before || tg_audit_snapshot(store, g->tables, skip_cols, &after, &err) != 0 ||
            tg_audit_diff(before, after, &bdiff, &adiff, &err) != 0) {
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "audit: the change was made but not recorded: %s",
                               err.msg);
            goto out;
        }
        if (!bdiff && !adiff) goto out; /* nothing changed: a list, a show, a no-op */
    }
    char action[96], actor[64], tenant[TG_TENANT_SIZE] = "";
    snprintf(action, sizeof action, "%s%s%s", argv[0], sub ? "." : "", sub ? sub : "");
    actor_of(actor, sizeof actor);
    const char *t = opt_value(argc, argv, "--tenant");
    const char *object = first_positional(argc, argv, sub ? 2 : 1);
    if (t && strcmp(t, "*") != 0)
        snprintf(tenant, sizeof tenant, "%s", t);
    else if (strcmp(argv[0], "tenant") == 0 && object)
        snprintf(tenant, sizeof tenant, "%s", object);
    else
        tenant_of_rows(adiff ? adiff : bdiff, tenant, sizeof tenant);
    if (!object) object = t ? t : "";
    if (tg_audit_admin(store, actor, action, object, tenant, bdiff, adiff, tg_wall_us(), &err))
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "audit: the change was made but not recorded: %s",
                           err.msg);
out:
    free(after);
    free(bdiff);
    free(adiff);
done:
    free(args);
    free(before);
    if (store) tg_store_close(store);
    if (cfg) tg_config_unref(cfg);
    return rc;
}

/* ---- verify ----------------------------------------------------------------------------- */

static int check_day(const char *opt, const char *v)
{
    int64_t us;
    if (v && tg_parse_day(v, &us) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid %s \"%s\" (expected YYYY-MM-DD)", opt, v);
    return TG_EXIT_OK;
}

static int cmd_verify(tg_config_t *cfg, tg_store_t *store, const char *from, const char *to)
{
    tg_store_t *finder;
    tg_err_t err = {{0}};
    if (tg_store_open_readonly(cfg->store, &finder, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    tg_audit_report_t rep;
    int r = tg_audit_verify(store, finder, from, to, &rep, &err);
    tg_store_close(finder);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (rep.v.fault)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "audit chain broken: %s: %s",
                             tg_audit_fault_name(rep.v.fault), rep.v.why);
    if (rep.v.n == 0) {
        printf("audit: no records%s\n", from || to ? " in the range" : "");
        return TG_EXIT_OK;
    }
    printf("audit: %lld records verified, ids %lld..%lld, days %s..%s\n", (long long)rep.v.n,
           (long long)rep.v.first_id, (long long)rep.v.last_id, rep.v.first_day, rep.v.last_day);
    printf("starts at record %lld, whose prev_hash is %s%s\n", (long long)rep.v.first_id,
           rep.v.anchor,
           strspn(rep.v.anchor, "0") == 64 ? " (the chain's start)" : " (the anchor)");
    printf("last hash %s%s\n", rep.v.last_hash, to ? "" : " (the chain head)");
    return TG_EXIT_OK;
}

/* ---- export ----------------------------------------------------------------------------- */

typedef struct xsink {
    int csv;
    long long n;
    int failed;
} xsink_t;

static const char *const xcols[] = {"id",       "day",       "seq",    "time",   "ts_us",
                                    "kind",     "actor",     "action", "object", "tenant",
                                    "event_id", "data",      "before", "after",  "client_ip",
                                    "path",     "prev_hash", "hash",   "format"};
#define NXCOLS (sizeof xcols / sizeof xcols[0])

/* The record's values as text, in xcols order (NULL: none). Text columns are exported as
 * stored, byte for byte, so the export can be verified without tollgate. */
static void rec_values(const tg_audit_rec_t *r, char num[5][24], char time[25],
                       const char *out[NXCOLS])
{
    snprintf(num[0], 24, "%lld", (long long)r->id);
    snprintf(num[1], 24, "%lld", (long long)r->seq);
    snprintf(num[2], 24, "%lld", (long long)r->ts_us);
    snprintf(num[3], 24, "%lld", (long long)r->event_id);
    snprintf(num[4], 24, "%d", r->format);
    tg_cli_fmt_time(r->ts_us, time);
    const char *v[NXCOLS] = {num[0],
                             r->day,
                             num[1],
                             time,
                             num[2],
                             r->kind,
                             r->actor,
                             r->action,
                             r->object,
                             r->tenant,
                             r->event_id ? num[3] : NULL,
                             r->data,
                             r->before,
                             r->after,
                             r->client_ip,
                             r->path,
                             r->prev_hash,
                             r->hash,
                             num[4]};
    memcpy(out, v, sizeof v);
}

static int on_rec(const tg_audit_rec_t *r, void *ud)
{
    xsink_t *k = ud;
    char num[5][24], time[25];
    const char *v[NXCOLS];
    rec_values(r, num, time, v);
    if (k->csv) {
        for (size_t i = 0; i < NXCOLS; i++) {
            if (i) putchar(',');
            tg_cli_csv_field(stdout, v[i] ? v[i] : "");
        }
    } else {
        json_t *o = json_object();
        for (size_t i = 0; o && i < NXCOLS; i++) {
            json_t *j = !v[i] ? json_null()
                        : (i == 0 || i == 2 || i == 4 || i == 10 || i == 18)
                            ? json_integer(atoll(v[i]))
                            : tg_cli_json_text(v[i]);
            json_object_set_new(o, xcols[i], j);
        }
        int r2 = o ? json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) : -1;
        json_decref(o);
        if (r2 != 0) k->failed = 1;
    }
    if (putchar('\n') == EOF) k->failed = 1;
    k->n++;
    return k->failed ? -1 : 0;
}

static int cmd_export(tg_store_t *store, const char *format, const char *from, const char *to)
{
    xsink_t k = {.csv = strcmp(format, "csv") == 0};
    if (k.csv) {
        for (size_t i = 0; i < NXCOLS; i++)
            printf("%s%s", i ? "," : "", xcols[i]);
        putchar('\n');
    }
    tg_err_t err = {{0}};
    int r = tg_store_audit_range(store, from, to, on_rec, &k, &err);
    if (k.failed)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the export (after %lld records)", k.n);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (fflush(stdout) != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the export");
    return TG_EXIT_OK;
}

static int cmd_purge(tg_config_t *cfg, tg_store_t *store)
{
    if (cfg->retention.audit_days <= 0) {
        printf("audit: kept forever (retention.audit is not set)\n");
        return TG_EXIT_OK;
    }
    char day[11];
    tg_utc_day(tg_wall_us() - (int64_t)cfg->retention.audit_days * DAY_US, day);
    int64_t deleted = 0;
    tg_err_t err = {{0}};
    if (tg_store_audit_purge(store, day, &deleted, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    printf("audit: %lld records of days before %s purged\n", (long long)deleted, day);
    return TG_EXIT_OK;
}

/* ---- audit bodies ------------------------------------------------------------------------ */

/* Writes n bytes to PREFIX.SUFFIX (created 0600: plain bodies). */
static int write_body(const char *prefix, const char *suffix, const unsigned char *p, size_t n)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s.%s", prefix, suffix) >= (int)sizeof path)
        return tg_cli_errorf(TG_EXIT_USAGE, "--out: path too long");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s: cannot write it", path);
    }
    int bad = n && fwrite(p, 1, n, f) != n;
    if (fclose(f) != 0) bad = 1; /* closed in any case */
    return bad ? tg_cli_errorf(TG_EXIT_RUNTIME, "%s: write failed", path) : TG_EXIT_OK;
}

static const char *trunc_word(uint32_t flags, uint32_t bit)
{
    return flags & bit ? " (truncated: the first audit.max_body bytes)" : "";
}

/* Opens record id's sealed bodies with the config's KEK, bound to the record's event id and
 * tenant (types/bodies.h), and prints them, or writes them to PREFIX.request and
 * PREFIX.answer. */
static int cmd_bodies(tg_config_t *cfg, tg_store_t *store, int64_t id, const char *prefix)
{
    if (!cfg->encryption.has_kek)
        return tg_cli_errorf(TG_EXIT_USAGE, "audit bodies: no encryption configured (encryption."
                                            "kek_file or kek_env): the bodies are sealed by it");
    tg_audit_body_t b;
    tg_err_t err = {{0}};
    int rc = tg_store_audit_body_get(store, id, &b, &err);
    if (rc == TG_STORE_NOTFOUND)
        return tg_cli_errorf(TG_EXIT_RUNTIME,
                             "audit record %lld has no bodies (not a call, not kept: see its "
                             "data.bodies, erased, or purged)",
                             (long long)id);
    if (rc != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    unsigned char aad[TG_BODIES_AAD_MAX], *pt = NULL;
    size_t alen = tg_bodies_aad(b.event_id, b.tenant, aad), pn = 0;
    rc = tg_crypt_open(&cfg->encryption.kek, b.sealed, b.len, aad, alen, &pt, &pn, &err);
    free(b.sealed);
    if (rc != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "audit record %lld: its bodies do not open: %s",
                             (long long)id, err.msg);
    uint32_t flags;
    const unsigned char *in, *out;
    size_t in_len, out_len;
    if (tg_bodies_parse(pt, pn, &flags, &in, &in_len, &out, &out_len) != 0) {
        tg_crypt_free(pt, pn);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "audit record %lld: its bodies are malformed",
                             (long long)id);
    }
    rc = TG_EXIT_OK;
    if (prefix) {
        if ((rc = write_body(prefix, "request", in, in_len)) == TG_EXIT_OK &&
            (rc = write_body(prefix, "answer", out, out_len)) == TG_EXIT_OK)
            printf("record %lld: request %zu bytes%s to %s.request; answer %zu bytes%s%s to "
                   "%s.answer\n",
                   (long long)id, in_len, trunc_word(flags, TG_BODIES_IN_TRUNC), prefix, out_len,
                   trunc_word(flags, TG_BODIES_OUT_TRUNC),
                   flags & TG_BODIES_HAS_OUT ? "" : " (no answer came)", prefix);
    } else {
        printf("--- request: %zu bytes%s\n", in_len, trunc_word(flags, TG_BODIES_IN_TRUNC));
        fwrite(in, 1, in_len, stdout);
        printf("\n--- answer: %zu bytes%s%s\n", out_len, trunc_word(flags, TG_BODIES_OUT_TRUNC),
               flags & TG_BODIES_HAS_OUT ? "" : " (no answer came)");
        fwrite(out, 1, out_len, stdout);
        printf("\n");
        if (fflush(stdout) != 0) rc = TG_EXIT_RUNTIME;
    }
    tg_crypt_free(pt, pn);
    return rc;
}

int tg_cli_audit(int argc, char **argv, const char *config_path)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (!sub) return tg_cli_errorf(TG_EXIT_USAGE, "audit needs a subcommand (%s)", USAGE);
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0)
        return puts(USAGE) >= 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
    const char *from = NULL, *to = NULL, *format = NULL, *outp = NULL, *rec = NULL;
    int help = 0, rc, npos = 0;
    int64_t rec_id = 0;
    const tg_cli_opt_t opts[] = {{"--from", &from}, {"--to", &to}, {"--format", &format}};
    const tg_cli_opt_t bopts[] = {{"--out", &outp}};
    if (strcmp(sub, "bodies") == 0) {
        if ((rc = tg_cli_parse(argc, argv, 2, bopts, 1, &rec, 1, &npos, &help, USAGE)) != 0)
            return rc;
        if (!help && (!rec || tg_cli_parse_count(rec, INT64_MAX, &rec_id) != 0 || rec_id == 0))
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "audit bodies needs a RECORD_ID (a record's id, from audit "
                                 "export) (%s)",
                                 USAGE);
    } else if (strcmp(sub, "verify") == 0 || strcmp(sub, "purge") == 0) {
        size_t nopts = sub[0] == 'v' ? 2 : 0;
        if ((rc = tg_cli_parse(argc, argv, 2, opts, nopts, NULL, 0, NULL, &help, USAGE)) != 0)
            return rc;
    } else if (strcmp(sub, "export") == 0) {
        if ((rc = tg_cli_parse(argc, argv, 2, opts, 3, NULL, 0, NULL, &help, USAGE)) != 0)
            return rc;
        if (!help && (!format || (strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0)))
            return tg_cli_errorf(TG_EXIT_USAGE, "audit export needs --format jsonl or csv (%s)",
                                 USAGE);
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown audit subcommand \"%s\" (%s)", sub, USAGE);
    }
    if (help) return puts(USAGE) >= 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
    if ((rc = check_day("--from", from)) != 0 || (rc = check_day("--to", to)) != 0) return rc;
    if (from && to && strcmp(to, from) < 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "--to is before --from");

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if (sub[0] == 'v')
        rc = cmd_verify(cfg, store, from, to);
    else if (sub[0] == 'e')
        rc = cmd_export(store, format, from, to);
    else if (sub[0] == 'b')
        rc = cmd_bodies(cfg, store, rec_id, outp);
    else
        rc = cmd_purge(cfg, store);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}

/* ---- tenant erase ----------------------------------------------------------------------- */

int tg_cli_tenant_erase(int argc, char **argv, const char *config_path)
{
    const char *id = NULL;
    int help = 0, npos = 0;
    int rc = tg_cli_parse(argc, argv, 2, NULL, 0, &id, 1, &npos, &help,
                          "usage: tollgate tenant erase ID");
    if (rc != 0) return rc;
    if (help) return puts("usage: tollgate tenant erase ID") >= 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
    if (!id) return tg_cli_errorf(TG_EXIT_USAGE, "tenant erase needs an ID");
    if ((rc = tg_cli_check_tenant(id, 0)) != 0) return rc;
    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    if ((rc = tg_cli_tenant_exists(store, id, 0)) == TG_EXIT_OK) {
        int64_t changed = 0;
        tg_err_t err = {{0}};
        char actor[64];
        actor_of(actor, sizeof actor);
        if (tg_store_audit_erase(store, id, &changed, &err) != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
        else if (tg_audit_admin(store, actor, "tenant.erase", id, id, NULL, NULL, tg_wall_us(),
                                &err) != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME,
                               "audit: the tenant was erased but that was not recorded: %s",
                               err.msg);
        else
            printf("tenant %s erased: %lld rows changed\n", id, (long long)changed);
    }
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
