/* The guard of SQLite's WAL index file ("<db>-shm"), which every connection to a WAL
 * database maps with mmap(MAP_SHARED) and reads and writes as memory. A mapped page that
 * the file no longer backs (the file truncated, or a page that cannot be allocated) is not
 * an error code but SIGBUS, which kills the gateway. SQLite itself makes a full disk an
 * error (it writes one byte into every page of the file before mapping it), so what is
 * left are files that cannot be written from the start, and a file changed behind
 * SQLite's back while mapped. See docs/operations.md "The WAL index (-shm)".
 *
 *   tg_walshm_precheck(): before the connection first touches the database, refuse a
 *     -shm that exists but is not a regular file or cannot be opened for writing (a
 *     read-only mode for a non-root user, chattr +i even for root, a read-only mount).
 *     Without it SQLite opens such a file read-only and every write fails as "busy"
 *     forever, or SQLite maps something it cannot use.
 *   tg_walshm_arm() / tg_walshm_check(): once SQLite mapped the file, remember which
 *     file it is (device, inode) and the largest size seen; before each use of the
 *     connection, one stat(2): removed, replaced or shrunk means the mapping may no
 *     longer be backed, and the connection is never used again (its calls fail as
 *     "store busy", so the recorder spools) instead of being touched and dying.
 *
 * The check narrows the window to the time between the stat and SQLite's access; a
 * truncation inside one store call can still kill the process: nothing short of not
 * mapping the file closes that (locking_mode=EXCLUSIVE keeps the index in heap memory
 * but shuts every other connection out, the CLI included). No file descriptor of the
 * -shm is opened here: closing one would drop the POSIX locks SQLite holds on it. */
#ifndef TG_STORE_WALSHM_H
#define TG_STORE_WALSHM_H

#include <sys/types.h>

#include "util/err.h"

typedef struct tg_walshm {
    char *path;    /* "<db>-shm"; NULL: nothing guarded (in-memory or not in WAL mode) */
    dev_t dev;     /* the file SQLite mapped */
    ino_t ino;     /* (dev, ino) */
    off_t seen;    /* its largest size seen: the file only grows while a connection is open */
    int lost;      /* latched: the file was removed, replaced or shrunk */
    char why[384]; /* what happened, for every later error */
} tg_walshm_t;

/* 0 when db_path's -shm is absent (SQLite creates it, in a directory it can write) or a
 * regular file this process may read and write; else -1 with one line naming the file. */
int tg_walshm_precheck(const char *db_path, tg_err_t *err);

/* Starts guarding db_path's -shm as it is now. A -shm that does not exist (not a WAL
 * database) leaves g unarmed: tg_walshm_check() then always passes. */
int tg_walshm_arm(tg_walshm_t *g, const char *db_path, tg_err_t *err);

/* 0 while the guarded file is the one armed and no smaller than seen; else -1 (and every
 * call after it), err filled with why, logged once. */
int tg_walshm_check(tg_walshm_t *g, tg_err_t *err);

void tg_walshm_release(tg_walshm_t *g);

#endif
