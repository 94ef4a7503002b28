/* Tests src/gateway/wqueue.c: uv_try_write first, the remainder copied and
 * queued. A non-blocking pipe pair (64 KiB kernel buffer) whose reader starts
 * late makes the short writes happen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/wqueue.h"

static struct {
    uv_loop_t loop;
    uv_pipe_t rd, wr;
    uv_timer_t timer;
    char *got;
    size_t got_len, got_cap;
    int eof;
    int cbs[8]; /* the data of each callback, in order */
    int statuses[8];
    int ncbs;
} W;

static void on_cb(void *data, int status)
{
    if (W.ncbs < 8) {
        W.cbs[W.ncbs] = (int)(intptr_t)data;
        W.statuses[W.ncbs] = status;
    }
    W.ncbs++;
}

static void rd_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    static char b[16384];
    *buf = uv_buf_init(b, sizeof b);
}

static void rd_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        W.eof = 1;
        uv_read_stop(s);
        return;
    }
    if (W.got_len + (size_t)n > W.got_cap) {
        W.got_cap = (W.got_len + (size_t)n) * 2;
        W.got = realloc(W.got, W.got_cap);
    }
    memcpy(W.got + W.got_len, buf->base, (size_t)n);
    W.got_len += (size_t)n;
}

static void start_reader(uv_timer_t *t)
{
    (void)t;
    uv_read_start((uv_stream_t *)&W.rd, rd_alloc, rd_read);
}

static int setup(void **state)
{
    (void)state;
    memset(&W, 0, sizeof W);
    signal(SIGPIPE, SIG_IGN);
    uv_file fds[2];
    if (uv_loop_init(&W.loop) != 0) return -1;
    if (uv_pipe(fds, UV_NONBLOCK_PIPE, UV_NONBLOCK_PIPE) != 0) return -1;
    uv_pipe_init(&W.loop, &W.rd, 0);
    uv_pipe_init(&W.loop, &W.wr, 0);
    uv_timer_init(&W.loop, &W.timer);
    if (uv_pipe_open(&W.rd, fds[0]) != 0 || uv_pipe_open(&W.wr, fds[1]) != 0) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (!uv_is_closing((uv_handle_t *)&W.rd)) uv_close((uv_handle_t *)&W.rd, NULL);
    if (!uv_is_closing((uv_handle_t *)&W.wr)) uv_close((uv_handle_t *)&W.wr, NULL);
    uv_close((uv_handle_t *)&W.timer, NULL);
    uv_run(&W.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&W.loop);
    free(W.got);
    assert_int_equal(rc, 0);
    return 0;
}

/* Runs the loop until want bytes arrived and ncbs callbacks ran (2 s cap). */
static void run_until(size_t want, int ncbs)
{
    uint64_t end = uv_now(&W.loop) + 2000;
    while ((W.got_len < want || W.ncbs < ncbs) && uv_now(&W.loop) < end) {
        uv_run(&W.loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&W.loop);
    }
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 131u + (i >> 9) + seed * 7u) & 0xff);
}

static void test_small_write_completes_at_once(void **state)
{
    (void)state;
    uv_buf_t b[2] = {uv_buf_init("hello ", 6), uv_buf_init("world", 5)};
    assert_int_equal(tg_wq_write((uv_stream_t *)&W.wr, b, 2, on_cb, (void *)1), 0);
    uv_read_start((uv_stream_t *)&W.rd, rd_alloc, rd_read);
    run_until(11, 0);
    assert_int_equal(W.got_len, 11);
    assert_memory_equal(W.got, "hello world", 11);
    uv_run(&W.loop, UV_RUN_NOWAIT);
    assert_int_equal(W.ncbs, 0); /* nothing was queued: no callback */
}

static void test_nothing_to_write(void **state)
{
    (void)state;
    uv_buf_t b[2] = {uv_buf_init("", 0), uv_buf_init("", 0)};
    assert_int_equal(tg_wq_write((uv_stream_t *)&W.wr, b, 2, on_cb, (void *)1), 0);
    assert_int_equal(tg_wq_write((uv_stream_t *)&W.wr, b, 0, on_cb, (void *)2), 0);
    uv_run(&W.loop, UV_RUN_NOWAIT);
    assert_int_equal(W.ncbs, 0);
}

/* Three writes while the reader sleeps: the first is cut by the full pipe in
 * the middle of its second buffer, the others queue behind it (uv_try_write
 * must not jump the queue). All arrive, in order, and each queued write's
 * callback runs once, in order, with status 0. */
static void test_queued_when_reader_is_late(void **state)
{
    (void)state;
    size_t n1 = 40000, total;
    char *a = malloc(n1), *b = malloc(n1), *c = malloc(n1);
    fill(a, n1, 1);
    fill(b, n1, 2);
    fill(c, n1, 3);
    uv_buf_t w1[3] = {uv_buf_init(a, (unsigned)n1), uv_buf_init(b, (unsigned)n1),
                      uv_buf_init(c, (unsigned)n1)};
    uv_buf_t w2[1] = {uv_buf_init("0123456789", 10)};
    uv_buf_t w3[2] = {uv_buf_init("", 0), uv_buf_init("tail.", 5)};
    assert_int_equal(tg_wq_write((uv_stream_t *)&W.wr, w1, 3, on_cb, (void *)1), 0);
    assert_true(uv_stream_get_write_queue_size((uv_stream_t *)&W.wr) > 0); /* it was short */
    assert_int_equal(tg_wq_write((uv_stream_t *)&W.wr, w2, 1, on_cb, (void *)2), 0);
    assert_int_equal(tg_wq_write((uv_stream_t *)&W.wr, w3, 2, on_cb, (void *)3), 0);
    /* the caller's buffers may be reused at once: the rest was copied */
    memset(a, 'x', n1);
    memset(b, 'x', n1);
    memset(c, 'x', n1);
    uv_run(&W.loop, UV_RUN_NOWAIT);
    assert_int_equal(W.ncbs, 0); /* nobody reads yet */

    uv_timer_start(&W.timer, start_reader, 30, 0);
    total = 3 * n1 + 10 + 5;
    run_until(total, 3);
    assert_int_equal(W.got_len, total);
    fill(a, n1, 1);
    fill(b, n1, 2);
    fill(c, n1, 3);
    assert_memory_equal(W.got, a, n1);
    assert_memory_equal(W.got + n1, b, n1);
    assert_memory_equal(W.got + 2 * n1, c, n1);
    assert_memory_equal(W.got + 3 * n1, "0123456789tail.", 15);
    assert_int_equal(W.ncbs, 3);
    assert_int_equal(W.cbs[0], 1);
    assert_int_equal(W.cbs[1], 2);
    assert_int_equal(W.cbs[2], 3);
    assert_int_equal(W.statuses[0], 0);
    assert_int_equal(W.statuses[1], 0);
    assert_int_equal(W.statuses[2], 0);
    free(a);
    free(b);
    free(c);
}

/* The reader is gone: the error comes back from the call, no callback. */
static void test_error_returned(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&W.rd, NULL);
    uv_run(&W.loop, UV_RUN_NOWAIT);
    uv_buf_t b = uv_buf_init("x", 1);
    int rc = tg_wq_write((uv_stream_t *)&W.wr, &b, 1, on_cb, (void *)1);
    assert_int_equal(rc, UV_EPIPE);
    uv_run(&W.loop, UV_RUN_NOWAIT);
    assert_int_equal(W.ncbs, 0);
}

/* A queued remainder whose write fails later: the callback gets the error. */
static void test_queued_write_fails(void **state)
{
    (void)state;
    size_t n = 200000;
    char *a = malloc(n);
    fill(a, n, 9);
    uv_buf_t b = uv_buf_init(a, (unsigned)n);
    assert_int_equal(tg_wq_write((uv_stream_t *)&W.wr, &b, 1, on_cb, (void *)7), 0);
    free(a);
    assert_int_equal(W.ncbs, 0);
    uv_close((uv_handle_t *)&W.rd, NULL); /* the reader goes away unread */
    run_until(0, 1);
    assert_int_equal(W.ncbs, 1);
    assert_int_equal(W.cbs[0], 7);
    assert_true(W.statuses[0] < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_write_completes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_to_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_when_reader_is_late, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_write_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
