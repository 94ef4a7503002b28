/* Tests for src/store/sqlite_ckpt.c: the WAL checkpoints of the writer's handle on a thread
 * of their own (tg_store_checkpoint_in_background), each against a fresh database file. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends.h"
#include "store/sqlite_int.h"
#include "store/store.h"
#include "types/event.h"

/* 2027-01-31T12:00:00Z */
#define T0    1801396800000000LL
#define BATCH 1000

/* The checkpointer's clock in these tests: moved by hand (sq_ckpt_set_clock). */
static int64_t g_now = 1000000000;
static int64_t fake_now(void)
{
    return __atomic_load_n(&g_now, __ATOMIC_SEQ_CST);
}
static void advance(int64_t us)
{
    __atomic_add_fetch(&g_now, us, __ATOMIC_SEQ_CST);
}

static int setup(void **state)
{
    return tb_setup_sqlite(state);
}

static int teardown(void **state)
{
    return tb_teardown(state);
}

static void gate_release(void);
static void gate_gone(void);

/* For the tests that use the gate: whatever failed, the thread is let go before the store
 * is closed (which joins it), and the gate is gone after. */
static int teardown_gate(void **state)
{
    gate_release();
    int rc = tb_teardown(state);
    gate_gone();
    return rc;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* The WAL's frames now, from its size (32-byte header, then 24 + 4096 bytes a frame). */
static long wal_frames(const tb_store_t *f)
{
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    off_t n = file_size(wal);
    return n > 32 ? (long)((n - 32) / (24 + 4096)) : 0;
}

/* Appends batch number b: BATCH events of one tenant, ids and times in order. */
static void append_batch(tg_store_t *s, int b)
{
    static tg_event_t evs[BATCH];
    memset(evs, 0, sizeof evs);
    for (int i = 0; i < BATCH; i++) {
        tg_event_t *e = &evs[i];
        int64_t k = (int64_t)b * BATCH + i;
        e->ts_us = T0 + k;
        e->id = k + 1;
        e->status = 200;
        e->outcome = TG_OUTCOME_BILLABLE;
        e->latency_us = 1000;
        e->tokens_in = e->tokens_out = e->tokens_cached = e->tokens_cache_write = TG_TOKENS_UNKNOWN;
        snprintf(e->tenant, sizeof e->tenant, "acme");
        snprintf(e->method, sizeof e->method, "GET");
        snprintf(e->path, sizeof e->path, "/v1/items/%lld?page=%d", (long long)k, i);
        snprintf(e->request_id, sizeof e->request_id, "req-%lld", (long long)k);
    }
    size_t inserted = 0;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_append(s, evs, BATCH, &inserted, &err), 0);
    assert_int_equal(inserted, BATCH);
}

static int64_t count_events(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM usage_events", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* ---- a gate on the checkpointer's connection ------------------------------------------
 * A VFS over the default one, made the default only while a test opens a connection
 * through it (every other connection goes straight to the default VFS). The writes into
 * the database file of the connection sq_ckpt_start() opens through it can be held at a
 * gate (the thread waits there inside its round, holding SQLite's checkpoint lock: a round
 * on a slow disk) or made to fail (EIO, a full disk). A connection of the test opened
 * through it can open the gate: the first time it is refused the checkpoint lock. */
typedef struct gfile {
    sqlite3_file base;
    sqlite3_file *real;
    int gated; /* the checkpointer's database file */
} gfile_t;

static sqlite3_vfs *g_under;
static sqlite3_vfs g_vfs;
static sqlite3_io_methods g_methods;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_hold;    /* the next write into the database file waits until released */
static int g_held;    /* a write waits at the gate */
static int g_fail;    /* writes into the database file fail (SQLITE_IOERR_WRITE) */
static long g_writes; /* writes into the database file through the gate */
static int g_opening; /* the connection being opened is the checkpointer's */
static int g_refused; /* a connection was refused the checkpoint lock (it opens the gate) */

#define REAL(f) (((gfile_t *)(f))->real)
static int g_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int g_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int g_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    if (((gfile_t *)f)->gated) {
        pthread_mutex_lock(&g_mu);
        g_writes++;
        int fail = g_fail;
        if (g_hold) {
            g_held = 1;
            pthread_cond_broadcast(&g_cv);
            while (g_hold)
                pthread_cond_wait(&g_cv, &g_mu);
            g_held = 0;
        }
        pthread_mutex_unlock(&g_mu);
        if (fail) return SQLITE_IOERR_WRITE;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int g_truncate(sqlite3_file *f, sqlite3_int64 n)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int g_sync(sqlite3_file *f, int fl)
{
    return REAL(f)->pMethods->xSync(REAL(f), fl);
}
static int g_size(sqlite3_file *f, sqlite3_int64 *n)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int g_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int g_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int g_reserved(sqlite3_file *f, int *r)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}
static int g_fcntl(sqlite3_file *f, int op, void *a)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int g_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int g_caps(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int g_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int g_shm_lock(sqlite3_file *f, int off, int n, int fl)
{
    int rc = REAL(f)->pMethods->xShmLock(REAL(f), off, n, fl);
    /* SQLite's checkpoint lock is WAL lock 1. */
    if (off == 1 && n == 1 && (fl & SQLITE_SHM_LOCK) && (fl & SQLITE_SHM_EXCLUSIVE) &&
        rc == SQLITE_BUSY && !((gfile_t *)f)->gated) {
        pthread_mutex_lock(&g_mu);
        g_refused++;
        g_hold = 0;
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
    }
    return rc;
}
static void g_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int g_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int g_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), o, n, pp);
}
static int g_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}
static int g_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    gfile_t *g = (gfile_t *)f;
    g->real = (sqlite3_file *)(g + 1);
    g->gated = g_opening && (flags & SQLITE_OPEN_MAIN_DB) != 0;
    int rc = g_under->xOpen(g_under, name, g->real, flags, out);
    if (g->real->pMethods) {
        g_methods = (sqlite3_io_methods){g->real->pMethods->iVersion,
                                         g_close,
                                         g_read,
                                         g_write,
                                         g_truncate,
                                         g_sync,
                                         g_size,
                                         g_lock,
                                         g_unlock,
                                         g_reserved,
                                         g_fcntl,
                                         g_sector,
                                         g_caps,
                                         g_shm_map,
                                         g_shm_lock,
                                         g_shm_barrier,
                                         g_shm_unmap,
                                         g_fetch,
                                         g_unfetch};
        f->pMethods = &g_methods;
    } else {
        f->pMethods = NULL;
    }
    return rc;
}

static void gate_use(int on)
{
    if (on) {
        g_under = sqlite3_vfs_find(NULL);
        g_vfs = *g_under;
        g_vfs.zName = "tg-test-gate";
        g_vfs.szOsFile = (int)sizeof(gfile_t) + g_under->szOsFile;
        g_vfs.xOpen = g_open;
        g_vfs.pNext = NULL;
    }
    assert_int_equal(sqlite3_vfs_register(on ? &g_vfs : g_under, 1), SQLITE_OK);
}

/* Starts s's checkpointer with its connection through the gate. */
static void start_gated(tg_store_t *s)
{
    g_hold = g_held = g_fail = 0;
    g_writes = g_refused = 0;
    gate_use(1);
    g_opening = 1;
    tg_err_t err = {{0}};
    int rc = tg_store_checkpoint_in_background(s, &err);
    g_opening = 0;
    gate_use(0);
    assert_int_equal(rc, 0);
    assert_non_null(((sq_store_t *)s)->ckpt);
}

/* Another handle on t's store, through the gate (after start_gated). */
static tg_store_t *open_through_gate(const tb_store_t *t)
{
    tg_store_t *s = NULL;
    tg_err_t err = {{0}};
    assert_int_equal(sqlite3_vfs_register(&g_vfs, 1), SQLITE_OK);
    int rc = tg_store_open(t->url, &s, &err);
    gate_use(0);
    assert_int_equal(rc, 0);
    return s;
}

/* Once the store is closed (the thread's connection with it). */
static void gate_gone(void)
{
    sqlite3_vfs_unregister(&g_vfs);
}

static void gate_release(void)
{
    pthread_mutex_lock(&g_mu);
    g_hold = 0;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static int gate_is_held(void)
{
    pthread_mutex_lock(&g_mu);
    int h = g_held;
    pthread_mutex_unlock(&g_mu);
    return h;
}

static int append_until_held(tg_store_t *s, int b);
static sq_ckpt_stats_t stats(sq_store_t *s);

/* Appends batch b, waits until the round it may have asked for is over, and says where the
 * checkpointer stands. */
static sq_ckpt_stats_t append_settled(tg_store_t *s, int b)
{
    append_batch(s, b);
    sq_ckpt_settle((sq_store_t *)s);
    return stats((sq_store_t *)s);
}

static sq_ckpt_stats_t stats(sq_store_t *s)
{
    sq_ckpt_stats_t st;
    sq_ckpt_stats(s, &st);
    return st;
}

/* Appends batches from b until the thread has run its first round (asked for by the commit
 * that takes the WAL to SQ_CKPT_PAGES frames); the WAL's largest frame count seen in *most. */
static int append_until_first_round(tb_store_t *f, int b, long *most)
{
    sq_store_t *s = (sq_store_t *)f->s;
    *most = 0;
    for (int end = b + 400; b < end && stats(s).rounds == 0; b++) {
        append_batch(f->s, b);
        long frames = wal_frames(f);
        if (frames > *most) *most = frames;
        sq_ckpt_settle(s);
    }
    assert_int_equal(stats(s).rounds, 1);
    return b;
}

/* Past SQ_CKPT_PAGES frames of WAL a commit wakes the thread, which copies the WAL into the
 * database file; the writer's own connection checkpoints nothing. A round that copied
 * everything lets the next commit start the WAL again from its beginning. */
static void test_checkpoints_run_on_the_thread(void **state)
{
    tb_store_t *f = *state;
    sq_store_t *s = (sq_store_t *)f->s;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_checkpoint_in_background(f->s, &err), 0);
    assert_non_null(s->ckpt);
    sq_ckpt_set_clock(s, fake_now);
    off_t db0 = file_size(f->path);
    long most = 0;
    int b = append_until_first_round(f, 0, &most);
    assert_true(most >= SQ_CKPT_PAGES); /* asked for once the WAL got there, not before */
    sq_ckpt_stats_t st = stats(s);
    assert_int_equal(st.by_writer, 0);
    assert_int_equal(st.dead, 0);
    assert_int_equal(st.failing, 0);
    /* The pages are in the database file now, copied by the thread. */
    assert_true(file_size(f->path) > db0 + (off_t)SQ_CKPT_PAGES / 2 * 4096);
    /* Nothing was written during the round: all copied, the next commit starts again. */
    st = append_settled(f->s, b++);
    assert_int_equal(st.restarts, 1);
    assert_true(st.frames < SQ_CKPT_PAGES);
    assert_int_equal(st.rounds, 1);
    assert_int_equal(st.by_writer, 0);
    assert_int_equal(count_events(f->path), (int64_t)b * BATCH);
}

/* Commits during a round (here it waits on its disk: the gate) leave frames it did not
 * copy, and the WAL past SQ_CKPT_PAGES. They get a round of their own a gap
 * (SQ_CKPT_GAP_US) after the last one ended, not one a commit: the clock standing still,
 * commits bring none; moved on by a gap, the next commit does, and the commit after that
 * round starts the WAL again. */
static void test_after_a_round_one_per_gap(void **state)
{
    tb_store_t *f = *state;
    sq_store_t *s = (sq_store_t *)f->s;
    start_gated(f->s);
    sq_ckpt_set_clock(s, fake_now);
    int b = append_until_held(f->s, 0);
    for (int i = 0; i < 3; i++) /* while the round waits */
        append_batch(f->s, b++);
    gate_release();
    sq_ckpt_settle(s);
    sq_ckpt_stats_t st = stats(s);
    assert_int_equal(st.rounds, 1);
    for (int i = 0; i < 5; i++, b++)
        st = append_settled(f->s, b);
    assert_int_equal(st.rounds, 1);
    assert_int_equal(st.restarts, 0);
    assert_true(st.frames > SQ_CKPT_PAGES);
    advance(SQ_CKPT_GAP_US);
    assert_int_equal(append_settled(f->s, b++).rounds, 2);
    st = append_settled(f->s, b++);
    assert_int_equal(st.restarts, 1);
    assert_true(st.frames < SQ_CKPT_PAGES);
    assert_int_equal(st.rounds, 2);
    assert_int_equal(st.by_writer, 0);
    assert_int_equal(count_events(f->path), (int64_t)b * BATCH);
}

/* Stopped at close, before the writer's connection: the last connection closed checkpoints
 * everything and removes the WAL, and every event is there at the next open. */
static void test_close_stops_it_and_keeps_everything(void **state)
{
    tb_store_t *f = *state;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_checkpoint_in_background(f->s, &err), 0);
    assert_int_equal(tg_store_checkpoint_in_background(f->s, &err), 0); /* once is enough */
    int b = 0;
    for (; b < 120; b++)
        append_batch(f->s, b);
    tg_store_close(f->s);
    f->s = NULL;
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(access(wal, F_OK), -1);
    assert_int_equal(count_events(f->path), (int64_t)b * BATCH);
    assert_int_equal(tg_store_open(f->url, &f->s, &err), 0);
}

/* Whether the file at path holds needle's bytes. */
static int file_holds(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t cap = 1 << 20, n = 0, k = strlen(needle);
    char *buf = malloc(cap);
    assert_non_null(buf);
    int found = 0;
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (!got) break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            assert_non_null(nb);
            buf = nb;
            cap *= 2;
        }
    }
    fclose(fp);
    found = memmem(buf, n, needle, k) != NULL;
    free(buf);
    return found;
}

/* Appends batches until the thread's round waits at the gate (the commit that asks for it
 * and the thread getting there are not in step: batches go on until it is). */
static int append_until_held(tg_store_t *s, int b)
{
    pthread_mutex_lock(&g_mu);
    g_hold = 1;
    pthread_mutex_unlock(&g_mu);
    for (int end = b + 400; b < end && !gate_is_held(); b++)
        append_batch(s, b);
    assert_true(gate_is_held());
    return b;
}

/* `tenant erase` ends with a TRUNCATE checkpoint so that the tenant's old values are in
 * neither the database file nor its WAL (docs/audit.md). SQLite refuses a checkpoint while
 * another holds the checkpoint lock, at once (no busy handler for that lock), and
 * tg-checkpoint holds it for each round: under load, a round every 20 ms.
 * Here a round waits on its disk while another connection (the admin API's, the CLI's)
 * erases "acme"; the gate opens as soon as the erase's checkpoint is refused, so an erase
 * that tries again once the round is over empties the WAL. One that does not says it
 * succeeded and leaves the query strings it erased in the WAL. */
static void test_erase_during_a_round_leaves_nothing_in_the_wal(void **state)
{
    tb_store_t *f = *state;
    tg_err_t err = {{0}};
    start_gated(f->s);
    tg_store_t *e = open_through_gate(f);
    int b = append_until_held(f->s, 0);
    int64_t changed = 0;
    int rc = tg_store_audit_erase(e, "acme", &changed, &err);
    tg_store_close(e);
    assert_int_equal(rc, 0);
    assert_true(changed >= (int64_t)b * BATCH);
    assert_true(g_refused >= 1); /* the round was in the way */
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_false(file_holds(wal, "?page="));
}

/* A round that fails (here its writes into the database file: EIO, a full disk) is said
 * once and tried again: the thread stays, the writer does not take over below
 * SQ_CKPT_FORCE_PAGES, and once the disk takes writes again the next round copies
 * everything and the WAL starts again from its beginning, every event kept. */
static void test_a_failed_round_is_tried_again(void **state)
{
    tb_store_t *f = *state;
    sq_store_t *s = (sq_store_t *)f->s;
    start_gated(f->s);
    sq_ckpt_set_clock(s, fake_now);
    pthread_mutex_lock(&g_mu);
    g_fail = 1;
    pthread_mutex_unlock(&g_mu);
    long most = 0;
    int b = append_until_first_round(f, 0, &most);
    sq_ckpt_stats_t st = stats(s);
    assert_int_equal(st.failing, 1);
    assert_int_equal(st.dead, 0);
    assert_int_equal(st.by_writer, 0);
    /* Still failing a gap later: tried again, still no writer checkpoint, no restart. */
    advance(SQ_CKPT_GAP_US);
    st = append_settled(f->s, b++);
    assert_int_equal(st.rounds, 2);
    assert_int_equal(st.failing, 1);
    assert_int_equal(st.restarts, 0);
    pthread_mutex_lock(&g_mu);
    g_fail = 0;
    pthread_mutex_unlock(&g_mu);
    advance(SQ_CKPT_GAP_US);
    st = append_settled(f->s, b++);
    assert_int_equal(st.rounds, 3);
    assert_int_equal(st.failing, 0);
    st = append_settled(f->s, b++);
    assert_int_equal(st.restarts, 1);
    assert_int_equal(st.by_writer, 0);
    assert_int_equal(count_events(f->path), (int64_t)b * BATCH);
}

/* Nothing to do without a WAL. */
static void test_in_memory_has_none(void **state)
{
    (void)state;
    tg_store_t *s = NULL;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_open("sqlite::memory:", &s, &err), 0);
    assert_int_equal(tg_store_checkpoint_in_background(s, &err), 0);
    assert_null(((sq_store_t *)s)->ckpt);
    append_batch(s, 0);
    tg_store_close(s);
}

/* A -shm removed under the handle (walshm.h): neither connection is touched again, closing
 * included (the thread is still stopped and joined; ASan would report what leaked). */
static void test_lost_index_closes_without_touching(void **state)
{
    tb_store_t *f = *state;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_checkpoint_in_background(f->s, &err), 0);
    append_batch(f->s, 0);
    char shm[160];
    snprintf(shm, sizeof shm, "%s-shm", f->path);
    assert_int_equal(unlink(shm), 0);
    tg_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.id = 1;
    ev.ts_us = T0;
    size_t inserted = 0;
    assert_int_equal(tg_store_append(f->s, &ev, 1, &inserted, &err), TG_STORE_BUSY);
    tg_store_close(f->s);
    f->s = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checkpoints_run_on_the_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_stops_it_and_keeps_everything, setup, teardown),
        cmocka_unit_test(test_in_memory_has_none),
        cmocka_unit_test_setup_teardown(test_lost_index_closes_without_touching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erase_during_a_round_leaves_nothing_in_the_wal, setup,
                                        teardown_gate),
        cmocka_unit_test_setup_teardown(test_after_a_round_one_per_gap, setup, teardown_gate),
        cmocka_unit_test_setup_teardown(test_a_failed_round_is_tried_again, setup, teardown_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
