/* SQLite store, read-only SQL, the online backup, restore and the archive's purge (the
 * sql_ops of backend.h; issue 12).
 *
 * Read only, three locks deep: `tollgate query` opens the file SQLITE_OPEN_READONLY with
 * PRAGMA query_only (sqlite.c), every statement must pass sqlite3_stmt_readonly() and
 * return columns, and the read-only handle's authorizer (below) refuses what
 * stmt_readonly() lets through although it is not a plain read: ATTACH and DETACH (which
 * would read, or create, other files), REINDEX, ANALYZE, load_extension(), fts3_tokenizer()
 * (a pointer out of the process, or into it as code) and PRAGMAs that set something
 * (PRAGMA query_only = 0 is "read-only" to SQLite). One statement per call: a second result
 * set has no place in one table, CSV or JSON array, and refusing it means nothing after a
 * refused statement can run either.
 *
 * The backup holds one read transaction on the source from the first page to the last:
 * sqlite3_backup_step() otherwise takes a new snapshot per step and restarts from page 1
 * whenever another connection wrote in between, which with a serving gateway (a commit
 * every flush window) would never finish. Under WAL a reader blocks no writer, so the
 * snapshot costs the gateway nothing but a WAL that cannot be checkpointed past it until
 * the copy ends; the steps and the pause between them spread the copy's I/O. */
#include "store/sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/migrations.h"
#include "util/clock.h"

#define DELETE_CHUNK  5000  /* events per archive purge transaction, as tg_store_purge */
#define STEP_PAUSE_MS 1     /* between two backup steps */
#define BUSY_TRIES    500   /* a step refused as busy is tried again every 10 ms, 5 s at most */
#define PROGRESS_OPS  10000 /* virtual machine steps between two looks at the query's deadline */

static const sq_sql_t sql_delete_id = {
    .slot = ST_EV_DELETE_ID, .sql = "DELETE FROM usage_events WHERE id = ?1 AND ts_us < ?2"};

/* ---- the read-only authorizer ----------------------------------------------------- */

/* PRAGMAs that only describe the schema, whatever their argument (a table or index
 * name); every other one is refused, reading or not, rather than told apart by form. */
static int pragma_reads(const char *name)
{
    static const char *const ok[] = {"table_info",       "table_xinfo",   "table_list",
                                     "index_list",       "index_info",    "index_xinfo",
                                     "foreign_key_list", "database_list", "collation_list",
                                     "function_list",    "pragma_list"};
    for (size_t i = 0; name && i < sizeof ok / sizeof ok[0]; i++)
        if (strcasecmp(name, ok[i]) == 0) return 1;
    return 0;
}

static int authorize(void *ud, int action, const char *a, const char *b, const char *db,
                     const char *trigger)
{
    (void)db;
    (void)trigger;
    sq_store_t *s = ud;
    const char *what = NULL, *arg = "";
    switch (action) {
    case SQLITE_ATTACH: what = "ATTACH"; break;
    case SQLITE_DETACH: what = "DETACH"; break;
    case SQLITE_REINDEX: what = "REINDEX"; break;
    case SQLITE_ANALYZE: what = "ANALYZE"; break;
    case SQLITE_PRAGMA:
        if (!pragma_reads(a)) what = "PRAGMA ", arg = a ? a : "";
        break;
    case SQLITE_FUNCTION:
        /* fts3_tokenizer(NAME) returns a pointer into the process and (NAME, PTR) installs
         * one as a tokenizer's code: Debian's SQLite is built with it enabled. */
        if (b && strcasecmp(b, "load_extension") == 0) what = "load_extension()";
        if (b && strcasecmp(b, "fts3_tokenizer") == 0) what = "fts3_tokenizer()";
        break;
    }
    if (!what) return SQLITE_OK;
    snprintf(s->denied, sizeof s->denied, "%s%.60s", what, arg);
    return SQLITE_DENY;
}

void sq_sql_guard(sq_store_t *s)
{
    sqlite3_set_authorizer(s->db, authorize, s);
}

/* ---- query ------------------------------------------------------------------------ */

/* The one error line, with the SQL it quotes kept on that line (a newline or tab of a
 * multi-line statement becomes a space). */
static int refuse(tg_err_t *err, const char *fmt, const char *arg)
{
    tg_err_set(err, fmt, arg);
    for (char *p = err ? err->msg : NULL; p && *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    return TG_STORE_REFUSED;
}

/* Compiles sql into *out, refusing anything but one statement that reads and returns rows. */
static int prepare_read(sq_store_t *s, const char *sql, sqlite3_stmt **out, tg_err_t *err)
{
    *out = NULL;
    s->denied[0] = '\0';
    const char *tail = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, &tail);
    if (rc != SQLITE_OK) {
        if (s->denied[0])
            return refuse(err, "refused: %s is not allowed (tollgate query only reads)", s->denied);
        return refuse(err, "SQL error: %s", sqlite3_errmsg(s->db));
    }
    if (!st) return refuse(err, "no SQL statement in \"%.80s\"", sql);
    /* What follows the first statement must compile to nothing: spaces, comments, ';'. */
    sqlite3_stmt *more = NULL;
    rc = sqlite3_prepare_v2(s->db, tail, -1, &more, NULL);
    sqlite3_finalize(more);
    if (rc != SQLITE_OK || more) {
        sqlite3_finalize(st);
        return refuse(err,
                      "refused: one statement per query, and more follows the first: "
                      "\"%.60s\" (run each on its own)",
                      tail);
    }
    const char *text = sqlite3_sql(st);
    int ret = 0;
    if (!sqlite3_stmt_readonly(st))
        ret = refuse(err, "refused: \"%.80s\" could write to the store (tollgate query only reads)",
                     text ? text : sql);
    else if (sqlite3_column_count(st) == 0)
        ret = refuse(err,
                     "refused: \"%.80s\" returns no rows (tollgate query runs SELECT, WITH, "
                     "VALUES, EXPLAIN and schema PRAGMAs)",
                     text ? text : sql);
    if (ret != 0) {
        sqlite3_finalize(st); /* after the message: text is the statement's */
        return ret;
    }
    *out = st;
    return 0;
}

static void read_value(sqlite3_stmt *st, int i, tg_sql_value_t *v)
{
    memset(v, 0, sizeof *v);
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        v->type = TG_SQL_INT;
        v->i = sqlite3_column_int64(st, i);
        break;
    case SQLITE_FLOAT:
        v->type = TG_SQL_REAL;
        v->r = sqlite3_column_double(st, i);
        break;
    case SQLITE_TEXT:
        v->type = TG_SQL_TEXT;
        v->s = (const char *)sqlite3_column_text(st, i);
        v->len = (size_t)sqlite3_column_bytes(st, i);
        if (!v->s) v->s = "", v->len = 0;
        break;
    case SQLITE_BLOB:
        v->type = TG_SQL_BLOB;
        v->s = sqlite3_column_blob(st, i);
        v->len = (size_t)sqlite3_column_bytes(st, i);
        if (!v->s) v->s = "", v->len = 0;
        break;
    default: v->type = TG_SQL_NULL;
    }
}

/* Which value parameter i (1-based) takes: N for ?N and $N (so $N means what it means in
 * PostgreSQL, where SQLite would number "$2" by its first use), else its position. */
static size_t param_number(const char *name, int i)
{
    if (name && (name[0] == '$' || name[0] == '?') && name[1] >= '1' && name[1] <= '9' &&
        strspn(name + 1, "0123456789") == strlen(name + 1) && strlen(name + 1) < 6)
        return (size_t)strtoul(name + 1, NULL, 10);
    return (size_t)i;
}

/* The bound of a read-only handle's query (store.h, tg_store_set_query_timeout): SQLite
 * calls this every PROGRESS_OPS virtual machine steps (about 10 µs apart), and a non-zero
 * return interrupts the statement (SQLITE_INTERRUPT). */
typedef struct deadline {
    int64_t at_mono_us;
    int passed;
} deadline_t;

static int on_progress(void *ud)
{
    deadline_t *d = ud;
    if (tg_mono_us() < d->at_mono_us) return 0;
    d->passed = 1;
    return 1;
}

static int sq_query(tg_store_t *base, const char *sql, const char *const *params, size_t nparams,
                    const tg_sql_sink_t *sink, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    deadline_t deadline = {0};
    if (base->query_timeout_ms > 0)
        deadline.at_mono_us = tg_mono_us() + base->query_timeout_ms * 1000;
    if (tg_walshm_check(&s->shm, err) != 0) return TG_STORE_BUSY;
    sqlite3_stmt *st;
    int ret = prepare_read(s, sql, &st, err);
    if (ret != 0) return ret;
    for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++) {
        size_t k = param_number(sqlite3_bind_parameter_name(st, i), i);
        if (k == 0 || k > nparams) {
            sqlite3_finalize(st);
            return refuse(err, "SQL error: the statement has parameters (%s) no value is given for",
                          "?N, $N or :name");
        }
        if (params[k - 1])
            sqlite3_bind_text(st, i, params[k - 1], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, i);
    }
    int n = sqlite3_column_count(st);
    const char **names = calloc((size_t)n, sizeof *names);
    tg_sql_value_t *vals = calloc((size_t)n, sizeof *vals);
    if (!names || !vals) {
        ret = tg_err_set(err, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        names[i] = sqlite3_column_name(st, i);
        if (!names[i]) names[i] = "?";
    }
    if (sink->columns && (ret = sink->columns(names, (size_t)n, sink->ud)) != 0) goto out;
    /* Installed for the steps only, and removed before returning: it points at this frame. */
    if (base->query_timeout_ms > 0)
        sqlite3_progress_handler(s->db, PROGRESS_OPS, on_progress, &deadline);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++)
            read_value(st, i, &vals[i]);
        if ((ret = sink->row(vals, (size_t)n, sink->ud)) != 0) goto out;
    }
    /* A PRAGMA read as a table (pragma_optimize) is authorized when it runs, not compiled. */
    if (rc != SQLITE_DONE && s->denied[0])
        ret = refuse(err, "refused: %s is not allowed (tollgate query only reads)", s->denied);
    else if (rc != SQLITE_DONE && deadline.passed)
        ret = tg_store_query_timed_out(base, err);
    else if (rc != SQLITE_DONE)
        ret = sq_fail(s, rc, "query", err);
out:
    free(names);
    free(vals);
    sqlite3_finalize(st);
    if (base->query_timeout_ms > 0) sqlite3_progress_handler(s->db, 0, NULL, NULL);
    return ret;
}

/* ---- backup and restore ----------------------------------------------------------- */

/* The first row of PRAGMA integrity_check on db: 0 when it is "ok". */
static int check_integrity(sqlite3 *db, const char *name, tg_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    int ret = 0;
    if (rc != SQLITE_ROW)
        ret = tg_err_set(err, "%s: integrity check: %s", name, sqlite3_errmsg(db));
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
        ret = tg_err_set(err, "%s: integrity check failed: %.200s", name,
                         (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return ret;
}

/* Removes a database file that was being written, with its WAL and index. */
static void remove_db(const char *path)
{
    char side[4096];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-journal", path);
    unlink(side);
}

/* Opens dest_path as a new database: created here (O_EXCL), so an existing file is never
 * written over. */
static int open_new(const char *dest_path, sqlite3 **db, tg_err_t *err)
{
    *db = NULL;
    int fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return tg_err_set(err, "%s: %s", dest_path,
                          errno == EEXIST ? "already exists (move it away first)"
                                          : strerror(errno));
    close(fd);
    int rc = sqlite3_open_v2(dest_path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        tg_err_set(err, "%s: %s", dest_path, *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close_v2(*db);
        *db = NULL;
        unlink(dest_path);
        return -1;
    }
    sqlite3_busy_timeout(*db, TG_STORE_BUSY_TIMEOUT_MS);
    return 0;
}

/* Copies src into dst, pages per step (-1: all in one), pausing between steps. A source
 * busy for a moment (a checkpoint) is waited for. */
static int copy_db(sqlite3 *dst, sqlite3 *src, int pages, int64_t *npages, const char *what,
                   tg_err_t *err)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) return tg_err_set(err, "%s: %s", what, sqlite3_errmsg(dst));
    int rc, busy = 0;
    while ((rc = sqlite3_backup_step(b, pages)) == SQLITE_OK ||
           ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && ++busy < BUSY_TRIES)) {
        if (rc == SQLITE_OK) busy = 0;
        sqlite3_sleep(rc == SQLITE_OK ? STEP_PAUSE_MS : 10);
    }
    if (npages) *npages = sqlite3_backup_pagecount(b);
    int frc = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE || frc != SQLITE_OK)
        return tg_err_set(err, "%s: %s", what,
                          sqlite3_errstr(rc != SQLITE_DONE ? rc : sqlite3_errcode(dst)));
    return 0;
}

static int sq_backup(tg_store_t *base, const char *dest_path, int pages, int64_t *npages,
                     tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    if (tg_walshm_check(&s->shm, err) != 0) return TG_STORE_BUSY;
    sqlite3 *dst;
    if (open_new(dest_path, &dst, err) != 0) return -1;
    /* The snapshot: a deferred transaction becomes a read one at its first read. */
    int ret = -1;
    int rc = sqlite3_exec(s->db, "BEGIN; SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        ret = copy_db(dst, s->db, pages > 0 ? pages : 256, npages, "backup", err);
    else
        sq_fail(s, rc, "backup", err);
    sq_rollback(s); /* ends the snapshot (nothing was written in it) */
    if (ret == 0) ret = check_integrity(dst, dest_path, err);
    sqlite3_close_v2(dst);
    if (ret != 0) remove_db(dest_path);
    return ret;
}

/* 0 when db is a tollgate store of a schema version this build knows, that version into
 * *version. */
static int check_tollgate(sqlite3 *db, const char *name, int64_t *version, tg_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT (SELECT max(version) FROM schema_migrations), "
                                "(SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                "name IN ('tenants', 'api_keys', 'usage_events', 'usage_daily'))",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        int ret = tg_err_set(err, "%s: not a tollgate store (%s)", name, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return ret;
    }
    int ret = 0;
    if (sqlite3_step(st) != SQLITE_ROW)
        ret = tg_err_set(err, "%s: not a tollgate store (%s)", name, sqlite3_errmsg(db));
    else {
        int64_t v = *version = sqlite3_column_int64(st, 0), tables = sqlite3_column_int64(st, 1);
        if (tables != 4 || v < 1)
            ret = tg_err_set(err, "%s: not a tollgate store (tables missing)", name);
        else if (v > sq_schema_latest())
            ret = tg_err_set(err,
                             "%s: schema version %lld is newer than this tollgate knows (%d): "
                             "upgrade tollgate first",
                             name, (long long)v, sq_schema_latest());
    }
    sqlite3_finalize(st);
    return ret;
}

/* A store's schema objects, sorted by key: "type name", and what defines each (its table
 * and SQL, as JSON). ANALYZE's sqlite_stat1, the planner's statistics, is data, not code,
 * and left out, but only as SQLite creates it: a file can write any object into its
 * schema under that name (writable_schema), a trigger too. */
typedef struct obj {
    char *key, *def;
} obj_t;

typedef struct objs {
    obj_t *v;
    size_t n, cap;
} objs_t;

static void objs_free(objs_t *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].key);
        free(o->v[i].def);
    }
    free(o->v);
    memset(o, 0, sizeof *o);
}

/* db's objects into o (emptied first); SQLITE_OK or SQLite's error. */
static int objs_read(sqlite3 *db, objs_t *o)
{
    memset(o, 0, sizeof *o);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT coalesce(type || ' ' || name, ''), json_array(tbl_name, sql) FROM "
        "sqlite_schema WHERE NOT (type = 'table' AND name = 'sqlite_stat1' "
        "AND tbl_name = name AND sql = 'CREATE TABLE "
        "sqlite_stat1(tbl,idx,stat)') ORDER BY 1",
        -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (o->n == o->cap) {
            size_t cap = o->cap ? 2 * o->cap : 64;
            obj_t *v = realloc(o->v, cap * sizeof *v);
            if (!v) {
                rc = SQLITE_NOMEM;
                break;
            }
            o->v = v;
            o->cap = cap;
        }
        obj_t *x = &o->v[o->n++];
        x->key = strdup((const char *)sqlite3_column_text(st, 0));
        x->def = strdup((const char *)sqlite3_column_text(st, 1));
        if (!x->key || !x->def) rc = SQLITE_NOMEM;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return SQLITE_OK;
    objs_free(o);
    return rc;
}

/* Whether src's schema_migrations lists version v. */
static int applied(sqlite3 *src, int v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(src, "SELECT 1 FROM schema_migrations WHERE version = ?1", -1, &st,
                                NULL);
    if (rc == SQLITE_OK) sqlite3_bind_int(st, 1, v);
    int found = rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

/* The objects tollgate's migrations create for a store that applied those src lists, built
 * in a new in-memory database as a store is opened (sqlite.c: foreign keys on, then each
 * migration not applied yet, in list order; a store may lack one written in parallel and
 * merged after it was made). */
static int objs_expected(sqlite3 *src, int64_t v, objs_t *o, tg_err_t *err)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, tg_store_migrations_bootstrap, NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < tg_store_nmigrations; i++)
        if (applied(src, tg_store_migrations[i].version))
            rc = sqlite3_exec(db, tg_store_migrations[i].sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = objs_read(db, o);
    int ret = 0;
    if (rc != SQLITE_OK)
        ret = tg_err_set(err, "tollgate's schema version %lld: %s", (long long)v,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return ret;
}

/* 0 when db's schema is exactly the one the tollgate migrations it lists create (v: the
 * newest, for the messages). The schema is code that runs in the gateway: a trigger on
 * usage_events runs in its writer (RAISE(IGNORE) there drops a tenant's events unbilled;
 * an UPDATE revives revoked keys), a view in every query that reads it, a CHECK on every
 * insert. So a restored file brings its rows and nothing else: no object added, none
 * redefined, none missing. The message names the first difference, on one line (the
 * names are the file's). */
static int check_schema(sqlite3 *db, const char *name, int64_t v, tg_err_t *err)
{
    objs_t got, want;
    int rc = objs_read(db, &got);
    if (rc != SQLITE_OK)
        return tg_err_set(err, "%s: reading its schema: %s", name, sqlite3_errstr(rc));
    if (objs_expected(db, v, &want, err) != 0) {
        objs_free(&got);
        return -1;
    }
    int ret = 0;
    for (size_t i = 0, j = 0; ret == 0 && (i < got.n || j < want.n);) {
        int c = i == got.n ? 1 : j == want.n ? -1 : strcmp(got.v[i].key, want.v[j].key);
        if (c < 0)
            ret = tg_err_set(err,
                             "%s: %.80s is not part of tollgate's schema (version %lld); a "
                             "restored store brings rows only: drop it from the file first",
                             name, got.v[i].key, (long long)v);
        else if (c > 0)
            ret = tg_err_set(err, "%s: %.80s of tollgate's schema (version %lld) is missing", name,
                             want.v[j].key, (long long)v);
        else if (strcmp(got.v[i].def, want.v[j].def) != 0)
            ret = tg_err_set(err,
                             "%s: %.80s differs from tollgate's schema (version %lld); a "
                             "restored store brings rows only",
                             name, got.v[i].key, (long long)v);
        i += c <= 0;
        j += c >= 0;
    }
    for (char *p = err && ret ? err->msg : NULL; p && *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    objs_free(&got);
    objs_free(&want);
    return ret;
}

/* Whether path's -wal and -shm exist (bit 0, bit 1). */
static int sidecars(const char *path)
{
    char side[4096];
    struct stat sb;
    int have = 0;
    snprintf(side, sizeof side, "%s-wal", path);
    if (stat(side, &sb) == 0) have |= 1;
    snprintf(side, sizeof side, "%s-shm", path);
    if (stat(side, &sb) == 0) have |= 2;
    return have;
}

/* Whether a and b are the same existing file. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int tg_sqlite_owns_file(const char *path, const char *file)
{
    static const char *const sides[] = {"-wal", "-shm", "-journal"};
    char side[4096];
    if (same_file(path, file)) return TG_STORE_OWN_DB;
    for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
        snprintf(side, sizeof side, "%s%s", path, sides[i]);
        if (same_file(side, file)) return TG_STORE_OWN_SIDE;
    }
    return 0;
}

/* Removes the -wal and -shm a read-only connection to path left beside it (it cannot
 * checkpoint, so SQLite keeps them) when they were not there before: restore reads the
 * user's file and leaves nothing behind. */
static void drop_sidecars(const char *path, int had)
{
    char side[4096];
    struct stat sb;
    snprintf(side, sizeof side, "%s-wal", path);
    if (!(had & 1) && stat(side, &sb) == 0 && sb.st_size == 0) unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    if (!(had & 2) && !(sidecars(path) & 1)) unlink(side);
}

int tg_sqlite_restore(const char *path, const char *src_path, char *bak_out, size_t bak_cap,
                      tg_err_t *err)
{
    int had = sidecars(src_path);
    char bak_path[4096];
    if ((size_t)snprintf(bak_path, sizeof bak_path, "%s.bak", path) >= sizeof bak_path)
        return tg_err_set(err, "store %s: path too long", path);
    sqlite3 *src = NULL, *dst = NULL, *bak = NULL;
    int ret = -1;
    int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        tg_err_set(err, "%s: %s", src_path, src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        goto out;
    }
    /* The file is not trusted until its schema is checked: its views and CHECKs may call
     * only harmless functions meanwhile. The checks and the copy read one snapshot, so
     * what is copied is what was checked. */
    sqlite3_db_config(src, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    sqlite3_db_config(src, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    int64_t version = 0;
    if (sqlite3_exec(src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        check_integrity(src, src_path, err) != 0 ||
        check_tollgate(src, src_path, &version, err) != 0 ||
        check_schema(src, src_path, version, err) != 0)
        goto out;
    struct stat sb;
    int existed = stat(path, &sb) == 0 && sb.st_size > 0;
    if (existed && same_file(path, src_path)) {
        tg_err_set(err, "%s is the store itself", src_path);
        goto out;
    }
    rc = sqlite3_open_v2(path, &dst,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        tg_err_set(err, "store %s: %s", path, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        goto out;
    }
    /* The store to itself from its first read to the close: in WAL mode, EXCLUSIVE locking
     * takes the database file's lock outright, which no other connection may hold. The
     * caller's spool lock says no gateway with the same spool runs; this says no process
     * at all has the store open (a gateway whose config names another spool, a query),
     * and none can open it until the restore is done. Not waited for: a connection that
     * holds the store holds it for as long as it lives. A store that did not exist has no
     * one on it (and in rollback mode EXCLUSIVE would leave its -journal behind). */
    rc = !existed
             ? SQLITE_OK
             : sqlite3_exec(dst,
                            "PRAGMA locking_mode = EXCLUSIVE; SELECT count(*) FROM sqlite_schema",
                            NULL, NULL, NULL);
    sqlite3_busy_timeout(dst, TG_STORE_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK) {
        tg_err_set(err, "store %s: %s", path,
                   (rc & 0xff) == SQLITE_BUSY
                       ? "open in another process (a gateway, or a tollgate command): stop it "
                         "first"
                       : sqlite3_errmsg(dst));
        goto out;
    }
    if (existed) {
        if (open_new(bak_path, &bak, err) != 0) goto out;
        int b = copy_db(bak, dst, -1, NULL, "copy of the store", err);
        sqlite3_close_v2(bak);
        bak = NULL;
        if (b != 0) {
            remove_db(bak_path);
            goto out;
        }
        if (bak_cap) snprintf(bak_out, bak_cap, "%s", bak_path);
    }
    /* One step: the whole copy is one write transaction on the store. */
    if (copy_db(dst, src, -1, NULL, "restore", err) != 0) goto out;
    ret = check_integrity(dst, path, err);
out:
    if (ret != 0 && bak_cap && bak_out[0]) { /* the store is as it was: no copy needed */
        remove_db(bak_path);
        bak_out[0] = '\0';
    }
    sqlite3_close_v2(bak);
    sqlite3_close_v2(dst);
    sqlite3_close_v2(src);
    drop_sidecars(src_path, had);
    return ret;
}

/* ---- the archive's purge ---------------------------------------------------------- */

static int sq_events_delete(tg_store_t *base, const int64_t *ids, size_t n, int64_t before_us,
                            int64_t *deleted, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    int64_t total = 0;
    int ret = 0;
    sqlite3_stmt *st = sq_stmt(s, &sql_delete_id, err);
    if (!st) return -1;
    for (size_t i = 0; i < n && ret == 0;) {
        if ((ret = sq_begin(s, "archive purge", err)) != 0) break;
        int64_t chunk = 0;
        for (size_t end = i + DELETE_CHUNK < n ? i + DELETE_CHUNK : n; i < end; i++) {
            sqlite3_bind_int64(st, 1, ids[i]);
            sqlite3_bind_int64(st, 2, before_us);
            int rc = sq_run(st);
            if (rc != SQLITE_OK) {
                ret = sq_fail(s, rc, "archive purge", err);
                sq_rollback(s);
                break;
            }
            chunk += sqlite3_changes(s->db);
        }
        if (ret == 0 && (ret = sq_commit(s, "archive purge", err)) == 0) total += chunk;
    }
    if (deleted) *deleted = total;
    return ret;
}

/* ---- the copy's rows ---------------------------------------------------------------- */

static void bind_value(sqlite3_stmt *st, int i, const tg_sql_value_t *v)
{
    switch (v->type) {
    case TG_SQL_INT: sqlite3_bind_int64(st, i, v->i); break;
    case TG_SQL_REAL: sqlite3_bind_double(st, i, v->r); break;
    case TG_SQL_TEXT: sqlite3_bind_text(st, i, v->s, (int)v->len, SQLITE_STATIC); break;
    case TG_SQL_BLOB: sqlite3_bind_blob(st, i, v->s, (int)v->len, SQLITE_STATIC); break;
    default: sqlite3_bind_null(st, i);
    }
}

#define BUMP_BOTH                                                                                  \
    "UPDATE meta SET value = value + 1 WHERE key IN ('auth_version', 'policy_version')"

/* One statement prepared for the call (the tables and their columns vary), stepped per
 * row in one write transaction. table and cols are plain names (store.c checked them). */
static int sq_rows_put(tg_store_t *base, const char *table, const char *const *cols, size_t ncols,
                       const tg_sql_value_t *vals, size_t nrows, tg_err_t *err)
{
    sq_store_t *s = (sq_store_t *)base;
    sqlite3_str *q = sqlite3_str_new(s->db);
    sqlite3_str_appendf(q, "INSERT INTO %s (", table);
    for (size_t i = 0; i < ncols; i++)
        sqlite3_str_appendf(q, "%s%s", i ? ", " : "", cols[i]);
    sqlite3_str_appendall(q, ") VALUES (");
    for (size_t i = 0; i < ncols; i++)
        sqlite3_str_appendf(q, "%s?%d", i ? ", " : "", (int)i + 1);
    sqlite3_str_appendall(q, ")");
    char *sql = sqlite3_str_finish(q);
    if (!sql) return tg_err_set(err, "rows put %s: out of memory", table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        int ret = tg_err_set(err, "rows put %s: %s", table, sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return ret;
    }
    int ret = sq_begin(s, "rows put", err);
    for (size_t r = 0; ret == 0 && r < nrows; r++) {
        for (size_t i = 0; i < ncols; i++)
            bind_value(st, (int)i + 1, &vals[r * ncols + i]);
        rc = sq_run(st);
        int x = rc == SQLITE_OK ? rc : sqlite3_extended_errcode(s->db);
        if (x == SQLITE_CONSTRAINT_PRIMARYKEY || x == SQLITE_CONSTRAINT_UNIQUE) {
            tg_err_set(err, "rows put %s: a row is there already (%s)", table,
                       sqlite3_errmsg(s->db));
            ret = TG_STORE_EXISTS;
        } else if (rc != SQLITE_OK) {
            ret = sq_fail(s, rc, "rows put", err);
        }
    }
    sqlite3_finalize(st);
    /* A gateway already on this store reloads keys and policy (rows of any table may be
     * what it reads). */
    if (ret == 0 && (rc = sqlite3_exec(s->db, BUMP_BOTH, NULL, NULL, NULL)) != SQLITE_OK)
        ret = sq_fail(s, rc, "rows put", err);
    if (ret != 0) {
        sq_rollback(s);
        return ret;
    }
    return sq_commit(s, "rows put", err);
}

const struct tg_store_sql_ops sq_sql_ops = {
    .query = sq_query,
    .backup = sq_backup,
    .events_delete = sq_events_delete,
    .rows_put = sq_rows_put,
};
