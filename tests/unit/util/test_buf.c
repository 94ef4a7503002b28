/* Tests for src/util/buf.c: the capped growing buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void test_nothing_allocated_until_bytes(void **state)
{
    (void)state;
    tg_buf_t b;
    tg_buf_init(&b, 100);
    assert_null(b.p);
    assert_int_equal(tg_buf_len(&b), 0);
    assert_string_equal(tg_buf_str(&b), "");
    /* Zero bytes: accepted, still nothing allocated. */
    assert_int_equal(tg_buf_add(&b, "x", 0), TG_BUF_OK);
    assert_int_equal(tg_buf_add(&b, NULL, 0), TG_BUF_OK);
    assert_null(b.p);
    assert_int_equal(tg_buf_len(&b), 0);
    assert_int_equal(tg_buf_add(&b, "ab", 2), TG_BUF_OK);
    assert_non_null(b.p);
    assert_string_equal(tg_buf_str(&b), "ab");
    /* Zero bytes on a buffer holding some: unchanged. */
    assert_int_equal(tg_buf_add(&b, "zz", 0), TG_BUF_OK);
    assert_int_equal(tg_buf_len(&b), 2);
    assert_string_equal(tg_buf_str(&b), "ab");
    tg_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(tg_buf_max(&b), 100);
}

static void test_cap_exact_boundary(void **state)
{
    (void)state;
    char src[128];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (char)('a' + i % 26);
    tg_buf_t b = TG_BUF_INIT(100);
    assert_int_equal(tg_buf_add(&b, src, 60), TG_BUF_OK);
    /* One past the max: refused, the buffer as it was. */
    char *before = b.p;
    assert_int_equal(tg_buf_add(&b, src + 60, 41), TG_BUF_TOOBIG);
    assert_int_equal(tg_buf_len(&b), 60);
    assert_ptr_equal(b.p, before);
    assert_memory_equal(b.p, src, 60);
    assert_int_equal(b.p[60], '\0');
    /* Exactly up to the max: taken. */
    assert_int_equal(tg_buf_add(&b, src + 60, 40), TG_BUF_OK);
    assert_int_equal(tg_buf_len(&b), 100);
    assert_memory_equal(b.p, src, 100);
    assert_int_equal(b.p[100], '\0');
    assert_true(b.cap <= 101); /* never memory for bytes it may not take */
    /* Full: one more byte refused, zero bytes still fine. */
    assert_int_equal(tg_buf_add(&b, "x", 1), TG_BUF_TOOBIG);
    assert_int_equal(tg_buf_add(&b, "x", 0), TG_BUF_OK);
    assert_int_equal(tg_buf_reserve(&b, 1), TG_BUF_TOOBIG);
    assert_int_equal(tg_buf_len(&b), 100);
    tg_buf_free(&b);

    /* A single add larger than the max on an empty buffer: nothing allocated. */
    tg_buf_init(&b, 10);
    assert_int_equal(tg_buf_add(&b, src, 11), TG_BUF_TOOBIG);
    assert_null(b.p);
    assert_int_equal(tg_buf_add(&b, src, 10), TG_BUF_OK);
    assert_int_equal(b.cap, 11);
    tg_buf_free(&b);

    /* max 0: only nothing fits. */
    tg_buf_init(&b, 0);
    assert_int_equal(tg_buf_add(&b, "x", 1), TG_BUF_TOOBIG);
    assert_int_equal(tg_buf_add(&b, "x", 0), TG_BUF_OK);
    assert_null(b.p);
}

static void test_growth(void **state)
{
    (void)state;
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    size_t reallocs = 0;
    char *last = NULL;
    size_t lastcap = 0;
    for (size_t i = 0; i < 100000; i++) {
        char c = (char)('0' + i % 10);
        assert_int_equal(tg_buf_add(&b, &c, 1), TG_BUF_OK);
        if (b.p != last || b.cap != lastcap) reallocs++;
        last = b.p;
        lastcap = b.cap;
        assert_true(b.cap > b.len);
    }
    /* Doubling from 64: 64 .. 131072 is 12 sizes. */
    assert_true(reallocs <= 12);
    assert_int_equal(tg_buf_len(&b), 100000);
    for (size_t i = 0; i < 100000; i++)
        if (b.p[i] != (char)('0' + i % 10)) fail_msg("byte %zu wrong", i);
    assert_int_equal(b.p[100000], '\0');
    assert_int_equal(strlen(tg_buf_str(&b)), 100000);
    /* A large add in one step. */
    static char big[300000];
    memset(big, 'z', sizeof big);
    assert_int_equal(tg_buf_add(&b, big, sizeof big), TG_BUF_OK);
    assert_int_equal(tg_buf_len(&b), 400000);
    assert_int_equal(b.p[399999], 'z');
    tg_buf_free(&b);
}

static void test_reset_reuse(void **state)
{
    (void)state;
    tg_buf_t b = TG_BUF_INIT(4096);
    assert_int_equal(tg_buf_add(&b, "hello world", 11), TG_BUF_OK);
    char *p = b.p;
    size_t cap = b.cap;
    tg_buf_reset(&b);
    assert_int_equal(tg_buf_len(&b), 0);
    assert_string_equal(tg_buf_str(&b), "");
    assert_ptr_equal(b.p, p); /* memory kept */
    assert_int_equal(b.cap, cap);
    assert_int_equal(tg_buf_add(&b, "again", 5), TG_BUF_OK);
    assert_ptr_equal(b.p, p); /* reused, no allocation */
    assert_string_equal(tg_buf_str(&b), "again");
    tg_buf_truncate(&b, 2);
    assert_string_equal(tg_buf_str(&b), "ag");
    tg_buf_truncate(&b, 10); /* longer than held: unchanged */
    assert_string_equal(tg_buf_str(&b), "ag");
    tg_buf_free(&b);
    /* Freed, then used again with the same max. */
    assert_int_equal(tg_buf_add(&b, "x", 1), TG_BUF_OK);
    assert_string_equal(tg_buf_str(&b), "x");
    tg_buf_free(&b);
}

static void test_size_overflow_refused(void **state)
{
    (void)state;
    /* A max beyond what doubling can reach is lowered. */
    tg_buf_t b = TG_BUF_INIT(SIZE_MAX);
    assert_int_equal(tg_buf_max(&b), TG_BUF_MAX_LIMIT);
    tg_buf_init(&b, SIZE_MAX - 1);
    assert_int_equal(tg_buf_max(&b), TG_BUF_MAX_LIMIT);
    assert_int_equal(tg_buf_add(&b, "0123456789", 10), TG_BUF_OK);
    char *p = b.p;
    /* len + n would wrap a size_t: refused without allocating or reading src (hidden
     * from the compiler, which would see a read past "x"). */
    const char *volatile src = "x";
    volatile size_t huge = SIZE_MAX;
    assert_int_equal(tg_buf_add(&b, src, huge), TG_BUF_TOOBIG);
    assert_int_equal(tg_buf_add(&b, src, huge - 5), TG_BUF_TOOBIG);
    huge = TG_BUF_MAX_LIMIT - 9; /* one past the max */
    assert_int_equal(tg_buf_add(&b, src, huge), TG_BUF_TOOBIG);
    assert_int_equal(tg_buf_reserve(&b, SIZE_MAX), TG_BUF_TOOBIG);
    assert_ptr_equal(b.p, p);
    assert_int_equal(tg_buf_len(&b), 10);
    assert_string_equal(tg_buf_str(&b), "0123456789");
    tg_buf_free(&b);
}

static void test_reset_trim(void **state)
{
    (void)state;
    tg_buf_t b = TG_BUF_INIT(1u << 20);
    assert_int_equal(tg_buf_add(&b, "small", 5), TG_BUF_OK);
    char *p = b.p;
    tg_buf_reset_trim(&b, 256); /* 64 bytes allocated: kept */
    assert_ptr_equal(b.p, p);
    assert_int_equal(tg_buf_len(&b), 0);
    static char big[1000];
    memset(big, 'b', sizeof big);
    assert_int_equal(tg_buf_add(&b, big, sizeof big), TG_BUF_OK);
    assert_true(b.cap > 256);
    tg_buf_reset_trim(&b, 256); /* above the bound: freed */
    assert_null(b.p);
    assert_int_equal(b.cap, 0);
    assert_int_equal(tg_buf_len(&b), 0);
    assert_string_equal(tg_buf_str(&b), "");
    assert_int_equal(tg_buf_max(&b), 1u << 20);
    assert_int_equal(tg_buf_add(&b, "x", 1), TG_BUF_OK);
    tg_buf_free(&b);
}

static void test_set_max(void **state)
{
    (void)state;
    tg_buf_t b = TG_BUF_INIT(1000);
    static char big[600];
    memset(big, 'm', sizeof big);
    assert_int_equal(tg_buf_add(&b, big, sizeof big), TG_BUF_OK);
    tg_buf_reset(&b);
    tg_buf_set_max(&b, 2000); /* larger: memory kept */
    assert_non_null(b.p);
    assert_int_equal(tg_buf_add(&b, big, sizeof big), TG_BUF_OK);
    assert_int_equal(tg_buf_add(&b, big, sizeof big), TG_BUF_OK);
    assert_int_equal(tg_buf_add(&b, big, sizeof big), TG_BUF_OK);
    assert_int_equal(tg_buf_add(&b, big, sizeof big), TG_BUF_TOOBIG);
    tg_buf_reset(&b);
    tg_buf_set_max(&b, 100); /* smaller than the memory: freed, so cap <= max + 1 holds */
    assert_null(b.p);
    assert_int_equal(tg_buf_add(&b, big, 101), TG_BUF_TOOBIG);
    assert_int_equal(tg_buf_add(&b, big, 100), TG_BUF_OK);
    assert_true(b.cap <= 101);
    tg_buf_free(&b);
}

static void test_reserve_take(void **state)
{
    (void)state;
    tg_buf_t b = TG_BUF_INIT(16);
    assert_int_equal(tg_buf_reserve(&b, 16), TG_BUF_OK);
    assert_int_equal(tg_buf_len(&b), 0);
    assert_string_equal(tg_buf_str(&b), "");
    memcpy(tg_buf_end(&b), "abc", 3);
    tg_buf_added(&b, 3);
    assert_string_equal(tg_buf_str(&b), "abc");
    assert_int_equal(tg_buf_reserve(&b, 14), TG_BUF_TOOBIG);
    assert_int_equal(tg_buf_reserve(&b, 13), TG_BUF_OK);
    char *s = tg_buf_take(&b);
    assert_string_equal(s, "abc");
    free(s);
    assert_null(b.p);
    assert_int_equal(tg_buf_len(&b), 0);
    s = tg_buf_take(&b); /* nothing added: "" */
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static void test_lit(void **state)
{
    (void)state;
    char out[16];
    char *o = tg_put(out, TG_LIT("a\r\n"));
    assert_int_equal(o - out, 3);
    tg_buf_t b = TG_BUF_INIT(8);
    assert_int_equal(tg_buf_add(&b, TG_LIT("12345678")), TG_BUF_OK);
    assert_int_equal(tg_buf_add(&b, TG_LIT("9")), TG_BUF_TOOBIG);
    assert_string_equal(tg_buf_str(&b), "12345678");
    tg_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_allocated_until_bytes),
        cmocka_unit_test(test_cap_exact_boundary),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_reset_reuse),
        cmocka_unit_test(test_size_overflow_refused),
        cmocka_unit_test(test_reset_trim),
        cmocka_unit_test(test_set_max),
        cmocka_unit_test(test_reserve_take),
        cmocka_unit_test(test_lit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
