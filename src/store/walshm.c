/* The guard of SQLite's WAL index file: see walshm.h for why and what it can and cannot
 * catch. Permission checks use faccessat(AT_EACCESS), never open(2): an open and close of
 * the -shm by this process would release the fcntl locks SQLite's other connections in
 * the process hold on it. faccessat() honours what root ignores only partly: mode bits
 * do not stop root, but an immutable file (EPERM) and a read-only mount (EROFS) do. */
#include "store/walshm.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

static char *shm_of(const char *db_path)
{
    size_t n = strlen(db_path);
    char *p = malloc(n + 5);
    if (p) {
        memcpy(p, db_path, n);
        memcpy(p + n, "-shm", sizeof "-shm");
    }
    return p;
}

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISLNK(m)) return "a symbolic link"; /* SQLite opens it with O_NOFOLLOW */
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
    return "not a regular file";
}

int tg_walshm_precheck(const char *db_path, tg_err_t *err)
{
    char *shm = shm_of(db_path);
    if (!shm) return tg_err_set(err, "out of memory");
    int ret = 0;
    struct stat st;
    if (lstat(shm, &st) != 0) {
        if (errno != ENOENT) {
            ret = tg_err_set(err, "WAL index %s: %s", shm, strerror(errno));
        } else {
            /* SQLite will create it next to the database. */
            char *dir = strdup(shm);
            if (!dir) {
                ret = tg_err_set(err, "out of memory");
            } else {
                const char *d = dirname(dir);
                if (faccessat(AT_FDCWD, d, W_OK | X_OK, AT_EACCESS) != 0)
                    ret = tg_err_set(err, "WAL index %s cannot be created: directory %s: %s", shm,
                                     d, strerror(errno));
                free(dir);
            }
        }
    } else if (!S_ISREG(st.st_mode)) {
        ret = tg_err_set(err,
                         "WAL index %s is %s; remove it (tollgate must be able to map it "
                         "for writing)",
                         shm, kind_of(st.st_mode));
    } else if (faccessat(AT_FDCWD, shm, R_OK | W_OK, AT_EACCESS) != 0) {
        ret = tg_err_set(err,
                         "WAL index %s cannot be written: %s (SQLite maps it for writing; fix "
                         "its owner, mode or attributes, or remove it while tollgate is stopped)",
                         shm, strerror(errno));
    }
    free(shm);
    return ret;
}

int tg_walshm_arm(tg_walshm_t *g, const char *db_path, tg_err_t *err)
{
    memset(g, 0, sizeof *g);
    char *shm = shm_of(db_path);
    if (!shm) return tg_err_set(err, "out of memory");
    struct stat st;
    if (stat(shm, &st) != 0) { /* no -shm: not a WAL database, nothing mapped */
        free(shm);
        return 0;
    }
    g->path = shm;
    g->dev = st.st_dev;
    g->ino = st.st_ino;
    g->seen = st.st_size;
    return 0;
}

int tg_walshm_check(tg_walshm_t *g, tg_err_t *err)
{
    if (!g->path) return 0;
    if (!g->lost) {
        struct stat st;
        if (stat(g->path, &st) != 0) {
            snprintf(g->why, sizeof g->why, "WAL index %s was removed while in use (%s)", g->path,
                     strerror(errno));
            g->lost = 1;
        } else if (st.st_dev != g->dev || st.st_ino != g->ino) {
            snprintf(g->why, sizeof g->why,
                     "WAL index %s was replaced by another file while in use", g->path);
            g->lost = 1;
        } else if (st.st_size < g->seen) {
            snprintf(g->why, sizeof g->why,
                     "WAL index %s was truncated while in use (%lld bytes, was %lld)", g->path,
                     (long long)st.st_size, (long long)g->seen);
            g->lost = 1;
        } else {
            g->seen = st.st_size;
            return 0;
        }
        /* Touching the mapping now could be SIGBUS: this connection is done. */
        TG_ERROR("store: %s; this connection no longer uses the store (events are spooled) "
                 "until tollgate restarts",
                 g->why);
    }
    return tg_err_set(err, "%s; restart tollgate", g->why);
}

void tg_walshm_release(tg_walshm_t *g)
{
    free(g->path);
    g->path = NULL;
}
