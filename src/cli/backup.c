/* `tollgate backup FILE [--force]`, `tollgate restore FILE [--force]` and
 * `tollgate archive --before YYYY-MM-DD --out FILE.jsonl.zst` (docs/operations.md,
 * "Backup, restore and archive").
 *
 * backup runs beside a serving gateway: the store's online backup (tg_store_backup) is
 * written to FILE.partial and put in place only once its integrity check passed, so FILE
 * is never a half copy; without --force an existing FILE is refused (link(2) fails on it,
 * with no window between a check and the rename).
 *
 * restore wants the gateway stopped. A serving gateway holds an exclusive flock(2) on its
 * spool file (recorder.spool, src/meter/recorder.c) from start to exit: restore takes the
 * same lock, non-blocking, and refuses when it cannot; holding it, no gateway can start
 * until the restore is done. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "util/clock.h"

#define USAGE_BACKUP  "usage: tollgate backup FILE [--force]"
#define USAGE_RESTORE "usage: tollgate restore FILE"
#define USAGE_ARCHIVE                                                                              \
    "usage: tollgate archive --before YYYY-MM-DD --out FILE.jsonl.zst\n"                           \
    "       tollgate archive read FILE.jsonl.zst   (its events as JSON lines on stdout)"

#define BACKUP_PAGES 256 /* pages (4 KB each) per backup step */

/* At most one positional into *pos (pos NULL: none), --force into *force (NULL: not
 * taken), the options of opts. 0; -1 when help was printed; else the usage exit code. */
static int parse(int argc, char **argv, const char *usage, const char **pos, int *force,
                 const tg_cli_opt_t *opts, size_t nopts)
{
    if (force && (*force = tg_cli_take_flag(&argc, argv, 1, "--force")) < 0) return TG_EXIT_USAGE;
    int help = 0, npos = 0;
    int rc = tg_cli_parse(argc, argv, 1, opts, nopts, pos, pos ? 1 : 0, &npos, &help, usage);
    if (rc != 0) return rc;
    if (help) {
        puts(usage);
        return -1;
    }
    return 0;
}

int tg_cli_backup(int argc, char **argv, const char *config_path)
{
    const char *file = NULL;
    int force = 0;
    int rc = parse(argc, argv, USAGE_BACKUP, &file, &force, NULL, 0);
    if (rc != 0) return rc < 0 ? TG_EXIT_OK : rc;
    if (!file) return tg_cli_errorf(TG_EXIT_USAGE, "%s", USAGE_BACKUP);
    struct stat sb;
    if (!force && stat(file, &sb) == 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME, "%s already exists (--force to replace it)", file);
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.partial", file) >= sizeof tmp)
        return tg_cli_errorf(TG_EXIT_USAGE, "%s: path too long", file);

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    /* --force renames the copy over FILE: never over the live store, its WAL files or the
     * spool (a store replaced under a serving gateway cut it off the store, every event
     * spooled, until it was restarted). An existing FILE is refused without --force. */
    int own = tg_store_owns_file(cfg->store, file);
    struct stat spool;
    if (own || (stat(cfg->recorder.spool, &spool) == 0 && stat(file, &sb) == 0 &&
                spool.st_dev == sb.st_dev && spool.st_ino == sb.st_ino)) {
        tg_store_close(store);
        tg_config_unref(cfg);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "backup: %s is %s: back up to another file", file,
                             own == TG_STORE_OWN_DB     ? "the store itself"
                             : own == TG_STORE_OWN_SIDE ? "a file of the store (SQLite's)"
                                                        : "the recorder's spool");
    }
    tg_err_t err = {{0}};
    int64_t pages = 0;
    int r = tg_store_backup(store, tmp, BACKUP_PAGES, &pages, &err);
    tg_store_close(store);
    tg_config_unref(cfg);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "backup: %s", err.msg);
    if (force)
        r = rename(tmp, file);
    else if ((r = link(tmp, file)) == 0)
        unlink(tmp);
    if (r != 0) {
        int e = errno;
        unlink(tmp);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "backup: %s: %s", file,
                             e == EEXIST ? "already exists (--force to replace it)" : strerror(e));
    }
    printf("backup %s: %lld pages, integrity ok\n", file, (long long)pages);
    return TG_EXIT_OK;
}

int tg_cli_restore(int argc, char **argv, const char *config_path)
{
    const char *file = NULL;
    int rc = parse(argc, argv, USAGE_RESTORE, &file, NULL, NULL, 0);
    if (rc != 0) return rc < 0 ? TG_EXIT_OK : rc;
    if (!file) return tg_cli_errorf(TG_EXIT_USAGE, "%s", USAGE_RESTORE);
    tg_config_t *cfg;
    tg_err_t err = {{0}};
    if (tg_config_load(config_path, &cfg, &err) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
    if (tg_store_restorable(cfg->store, &err) != 0) {
        tg_config_unref(cfg);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "restore: %s", err.msg);
    }
    const char *spool = cfg->recorder.spool;
    int fd = open(spool, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        tg_cli_errorf(TG_EXIT_RUNTIME, "restore: spool %s: %s", spool, strerror(errno));
        tg_config_unref(cfg);
        return TG_EXIT_RUNTIME;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            tg_cli_errorf(TG_EXIT_RUNTIME,
                          "restore: a gateway is running on this store (it holds %s): stop it "
                          "first",
                          spool);
        else
            tg_cli_errorf(TG_EXIT_RUNTIME, "restore: lock %s: %s", spool, strerror(e));
        tg_config_unref(cfg); /* spool is the config's */
        return TG_EXIT_RUNTIME;
    }
    char bak[4200];
    int r = tg_store_restore(cfg->store, file, bak, sizeof bak, &err);
    close(fd); /* releases the lock */
    tg_config_unref(cfg);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "restore: %s", err.msg);
    if (bak[0])
        printf("restored %s; the previous store is kept in %s\n", file, bak);
    else
        printf("restored %s\n", file);
    return TG_EXIT_OK;
}

/* `archive read FILE`: the events as JSON lines on stdout, checked as archive does (a
 * sealed archive opened with the config's KEK); the count and checksum on stderr. Exit 1
 * when the file is damaged or cut (what was printed before is then not to be trusted). */
static int archive_read(int argc, char **argv, const char *config_path)
{
    const char *file = NULL;
    int rc = parse(argc - 1, argv + 1, USAGE_ARCHIVE, &file, NULL, NULL, 0);
    if (rc != 0) return rc < 0 ? TG_EXIT_OK : rc;
    if (!file) return tg_cli_errorf(TG_EXIT_USAGE, "%s", USAGE_ARCHIVE);
    tg_config_t *cfg;
    tg_err_t err = {{0}};
    if (tg_config_load(config_path, &cfg, &err) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
    int64_t n = 0;
    char sha[65];
    int r = tg_archive_read(file, cfg->encryption.has_kek ? &cfg->encryption.kek : NULL, stdout, &n,
                            sha, NULL, NULL, &err);
    tg_config_unref(cfg);
    if (fflush(stdout) != 0 && r == 0) r = tg_err_set(&err, "stdout: %s", strerror(errno));
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "archive read: %s", err.msg);
    fprintf(stderr, "%s: %lld events, sha256 of ids %s\n", file, (long long)n, sha);
    return TG_EXIT_OK;
}

int tg_cli_archive(int argc, char **argv, const char *config_path)
{
    if (argc > 1 && strcmp(argv[1], "read") == 0) return archive_read(argc, argv, config_path);
    const char *before = NULL, *out = NULL;
    const tg_cli_opt_t opts[] = {{"--before", &before}, {"--out", &out}};
    int rc = parse(argc, argv, USAGE_ARCHIVE, NULL, NULL, opts, 2);
    if (rc != 0) return rc < 0 ? TG_EXIT_OK : rc;
    if (!before || !out) return tg_cli_errorf(TG_EXIT_USAGE, "%s", USAGE_ARCHIVE);
    int64_t before_us;
    if (tg_parse_day(before, &before_us) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid --before \"%s\" (expected YYYY-MM-DD)",
                             before);
    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    tg_err_t err = {{0}};
    tg_archive_stats_t st;
    int r = tg_archive_run(store, before_us, out,
                           cfg->encryption.has_kek ? &cfg->encryption.kek : NULL, &st, &err);
    tg_store_close(store);
    tg_config_unref(cfg);
    if (r != 0 && st.events == 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "archive: %s", err.msg);
    if (r != 0)
        return tg_cli_errorf(TG_EXIT_RUNTIME,
                             "archive: %s holds %lld events, verified; the purge stopped after "
                             "%lld: %s (run archive again to a new file for the rest)",
                             out, (long long)st.events, (long long)st.deleted, err.msg);
    printf("archived %lld events before %s into %s (%lld bytes, sha256 of ids %s); purged %lld\n",
           (long long)st.events, before, out, (long long)st.bytes, st.sha256,
           (long long)st.deleted);
    return TG_EXIT_OK;
}
