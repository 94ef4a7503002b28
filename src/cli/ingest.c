/* `tollgate ingest --format FORMAT [--key-field NAME] [--tenant-field NAME] [--strict]
 * [--dry-run] FILE...`: access logs into usage events (src/ingest/).
 *
 * A malformed line is reported (file:line: reason, on stderr; the first MAX_SHOWN of them)
 * and skipped; the run goes on. --strict reads every file once without writing and stores
 * nothing at all when any line is malformed (exit 1): a half-ingested log is worse than
 * none for a user who asked for strictness. Reading twice means stdin cannot be strict.
 * --dry-run parses and reports, writing nothing. On a terminal a progress line (lines/s,
 * bytes, ETA of the current file) is redrawn on stderr; the summary is one line on
 * stdout. An unreadable file is reported and the others are still read (exit 1). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "ingest/ingest.h"
#include "meter/price.h"
#include "util/clock.h"

#define USAGE                                                                                      \
    "usage: tollgate ingest --format cloudfront|apigw-json|clf|combined|jsonl [--key-field NAME] " \
    "[--tenant-field NAME] [--strict] [--dry-run] FILE... (- = stdin, .gz read as such)"
#define MAX_FILES 8192
#define MAX_SHOWN 100 /* malformed lines printed; the rest are counted */

typedef struct run {
    int tty;        /* stderr is a terminal: draw progress */
    int drawn;      /* a progress line is on screen */
    int quiet;      /* --strict's first pass prints no progress */
    uint64_t shown; /* malformed lines printed */
    int64_t t0;     /* monotonic start */
    int64_t last;   /* last redraw */
} run_t;

static void clear_line(run_t *r)
{
    if (r->drawn) fputs("\r\033[K", stderr);
    r->drawn = 0;
}

static void on_malformed(void *ud, const char *file, uint64_t line, const char *why)
{
    run_t *r = ud;
    if (++r->shown > MAX_SHOWN) return;
    clear_line(r);
    fprintf(stderr, "tollgate: %s:%llu: %s\n", file, (unsigned long long)line, why);
}

static void human_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b >= 1000000000ull)
        snprintf(buf, cap, "%.2f GB", b / 1e9);
    else if (b >= 1000000)
        snprintf(buf, cap, "%.1f MB", b / 1e6);
    else
        snprintf(buf, cap, "%.1f kB", b / 1e3);
}

static void on_progress(void *ud, const tg_ingest_stats_t *st, const char *file, uint64_t done,
                        uint64_t size)
{
    run_t *r = ud;
    if (!r->tty || r->quiet) return;
    int64_t now = tg_mono_us();
    if (now - r->last < 100000 && done < size) return; /* 10 redraws a second at most */
    r->last = now;
    double secs = (now - r->t0) / 1e6;
    double rate = secs > 0 ? st->lines / secs : 0;
    char d[32], s[32], eta[32] = "-";
    human_bytes(done, d, sizeof d);
    human_bytes(size, s, sizeof s);
    if (size && done && done < size && secs > 0.2) {
        double left = secs * (double)(size - done) / (double)done; /* this file's pace */
        snprintf(eta, sizeof eta, "%d:%02d", (int)left / 60, (int)left % 60);
    }
    fprintf(stderr, "\r\033[K%.40s  %s%s%s  %llu lines  %.0f lines/s  ETA %s", file, d,
            size ? " / " : "", size ? s : "", (unsigned long long)st->lines, rate, eta);
    r->drawn = 1;
}

/* Reads every file; 0, or TG_EXIT_RUNTIME when one could not be read or stored. */
static int run_files(tg_store_t *store, tg_pricebook_t *pb, const tg_ingest_opts_t *o,
                     const char **files, int nfiles, tg_ingest_stats_t *st)
{
    tg_err_t err = {{0}};
    tg_ingest_t *in;
    if (tg_ingest_new(store, pb, o, &in, &err) != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    int rc = TG_EXIT_OK;
    int r = 0;
    for (int i = 0; i < nfiles && r != TG_INGEST_STORE_FAILED; i++) {
        if ((r = tg_ingest_file(in, files[i], &err)) != 0) {
            clear_line(o->ud);
            tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
            rc = TG_EXIT_RUNTIME;
        }
    }
    /* The store refused a batch: the run stops there (what was stored stays; run it
     * again once the store is writable). */
    if (r == TG_INGEST_STORE_FAILED)
        fprintf(stderr, "tollgate: stopped: the records read since the last stored batch "
                        "are not stored; ingesting the same files again completes the run\n");
    else if (tg_ingest_flush(in, &err) != 0) {
        clear_line(o->ud);
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    }
    *st = *tg_ingest_stats(in);
    tg_ingest_free(in);
    return rc;
}

int tg_cli_ingest(int argc, char **argv, const char *config_path)
{
    /* The two flags first (tg_cli_parse takes options with values). */
    char *rest[MAX_FILES + 16];
    int nrest = 0, strict = 0, dry = 0, help = 0, dashdash = 0;
    if (argc > MAX_FILES + 8) return tg_cli_errorf(TG_EXIT_USAGE, "more than %d files", MAX_FILES);
    for (int i = 0; i < argc; i++) {
        if (!dashdash && strcmp(argv[i], "--strict") == 0)
            strict = 1;
        else if (!dashdash && strcmp(argv[i], "--dry-run") == 0)
            dry = 1;
        else {
            if (strcmp(argv[i], "--") == 0) dashdash = 1;
            rest[nrest++] = argv[i];
        }
    }
    const char *format = NULL, *key_field = NULL, *tenant_field = NULL;
    const char *files[MAX_FILES];
    int nfiles = 0;
    tg_cli_opt_t opts[] = {
        {"--format", &format}, {"--key-field", &key_field}, {"--tenant-field", &tenant_field}};
    int rc = tg_cli_parse(nrest, rest, 1, opts, 3, files, MAX_FILES, &nfiles, &help, USAGE);
    if (rc != 0) return rc;
    if (help) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    tg_ingest_opts_t o = {0};
    if (!format) return tg_cli_errorf(TG_EXIT_USAGE, "ingest needs --format (%s)", USAGE);
    if (tg_ingest_format_parse(format, &o.format) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "unknown --format \"%s\" (cloudfront, apigw-json, clf, combined, "
                             "jsonl)",
                             format);
    if (nfiles == 0) return tg_cli_errorf(TG_EXIT_USAGE, "ingest needs a FILE (%s)", USAGE);
    for (int i = 0; i < nfiles; i++)
        if (strict && strcmp(files[i], "-") == 0)
            return tg_cli_errorf(TG_EXIT_USAGE,
                                 "--strict reads its files twice (nothing is written unless "
                                 "every line is well-formed): it cannot read stdin");
    if (key_field && (!key_field[0] || strlen(key_field) > 100))
        return tg_cli_errorf(TG_EXIT_USAGE, "--key-field must be 1-100 characters");
    if (tenant_field && (!tenant_field[0] || strlen(tenant_field) > 100))
        return tg_cli_errorf(TG_EXIT_USAGE, "--tenant-field must be 1-100 characters");
    if (tenant_field && (o.format == TG_INGEST_CLF || o.format == TG_INGEST_COMBINED) &&
        strcmp(tenant_field, "user") != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "--tenant-field for %s can only be \"user\" (%%u)",
                             format);
    if (tenant_field && (o.format == TG_INGEST_CLOUDFRONT || o.format == TG_INGEST_JSONL))
        return tg_cli_errorf(TG_EXIT_USAGE, "--tenant-field does not apply to %s", format);
    if (key_field && o.format == TG_INGEST_JSONL)
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "--key-field does not apply to jsonl (its lines name the key)");
    o.key_field = key_field;
    o.tenant_field = tenant_field;

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    tg_err_t err = {{0}};
    tg_pricebook_t *pb = tg_pricebook_new();
    if (!pb || tg_pricebook_set_defaults(pb, cfg->prices, cfg->nprices, &err) != 0 ||
        tg_pricebook_load(pb, store, &err) != 0) {
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", pb ? err.msg : "out of memory");
        goto out;
    }
    run_t r = {.tty = isatty(2), .t0 = tg_mono_us()};
    o.malformed = on_malformed;
    o.progress = on_progress;
    o.ud = &r;
    tg_ingest_stats_t st;
    if (strict) {
        r.quiet = 1;
        rc = run_files(NULL, NULL, &o, files, nfiles, &st);
        r.quiet = 0;
        if (rc == 0 && st.malformed) {
            if (r.shown > MAX_SHOWN)
                fprintf(stderr, "tollgate: ... and %llu more malformed lines\n",
                        (unsigned long long)(r.shown - MAX_SHOWN));
            rc = tg_cli_errorf(TG_EXIT_RUNTIME,
                               "--strict: %llu malformed line%s in %llu lines; nothing was "
                               "stored",
                               (unsigned long long)st.malformed, st.malformed == 1 ? "" : "s",
                               (unsigned long long)st.lines);
            goto out;
        }
        if (rc != 0) goto out;
    }
    int rc2 = run_files(dry ? NULL : store, pb, &o, files, nfiles, &st);
    clear_line(&r);
    if (r.shown > MAX_SHOWN)
        fprintf(stderr, "tollgate: ... and %llu more malformed lines\n",
                (unsigned long long)(r.shown - MAX_SHOWN));
    double secs = (tg_mono_us() - r.t0) / 1e6;
    char b[32];
    human_bytes(st.bytes, b, sizeof b);
    printf("%s %llu file%s: %llu lines, %llu records, %llu stored, %llu duplicates skipped, "
           "%llu malformed, %llu with an unknown key (%s in %.2f s, %.0f lines/s)\n",
           dry ? "checked" : "ingested", (unsigned long long)st.files, st.files == 1 ? "" : "s",
           (unsigned long long)st.lines, (unsigned long long)st.records,
           (unsigned long long)st.stored, (unsigned long long)st.duplicates,
           (unsigned long long)st.malformed, (unsigned long long)st.unknown, b, secs,
           secs > 0 ? st.lines / secs : 0.0);
    if (st.mismatched)
        printf("%llu record%s named a tenant that does not hold the record's key: stored for "
               "no tenant, reason tenant_mismatch (docs/ingest.md)\n",
               (unsigned long long)st.mismatched, st.mismatched == 1 ? "" : "s");
    rc = rc2;
out:
    tg_pricebook_free(pb);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
