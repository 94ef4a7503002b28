/* Tests for src/store/sqlite_ckpt.c: the WAL checkpoints of the writer's handle on a thread
 * of their own (tg_store_checkpoint_in_background), each against a fresh database file. */
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

static int setup(void **state)
{
    return tb_setup_sqlite(state);
}

static int teardown(void **state)
{
    return tb_teardown(state);
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

/* Past SQ_CKPT_PAGES frames of WAL a commit wakes the thread, which copies the WAL into the
 * database file; the writer's own connection checkpoints nothing. */
static void test_checkpoints_run_on_the_thread(void **state)
{
    tb_store_t *f = *state;
    sq_store_t *s = (sq_store_t *)f->s;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_checkpoint_in_background(f->s, &err), 0);
    assert_non_null(s->ckpt);
    off_t db0 = file_size(f->path);
    long rounds = 0, by_writer = 0, most = 0;
    int dead = 0, b = 0;
    for (; b < 400 && rounds == 0; b++) {
        append_batch(f->s, b);
        long frames = wal_frames(f);
        if (frames > most) most = frames;
        sq_ckpt_settle(s);
        sq_ckpt_stats(s, &rounds, &by_writer, &dead);
    }
    assert_true(rounds >= 1);
    assert_true(most >= SQ_CKPT_PAGES); /* it was asked for once the WAL got there, not before */
    assert_int_equal(by_writer, 0);
    assert_int_equal(dead, 0);
    /* The pages are in the database file now, copied by the thread. */
    assert_true(file_size(f->path) > db0 + (off_t)SQ_CKPT_PAGES / 2 * 4096);
    /* And the writer goes on; the next round starts the WAL again from its beginning. */
    for (int i = 0; i < 3; i++, b++)
        append_batch(f->s, b);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
