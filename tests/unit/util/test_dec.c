/* Tests tg_dec_i64 (src/util/dec.h): the digits printf's %lld gives, at both ends of the
 * range and around each power of ten. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "util/dec.h"

static void check(int64_t v)
{
    char want[32], buf[TG_DEC_MAX];
    snprintf(want, sizeof want, "%lld", (long long)v);
    const char *p = tg_dec_i64(v, buf);
    size_t n = (size_t)(buf + TG_DEC_MAX - p);
    if (n != strlen(want) || memcmp(p, want, n) != 0) fail_msg("%s: got %.*s", want, (int)n, p);
}

static void test_as_printf(void **state)
{
    (void)state;
    check(0);
    check(INT64_MAX);
    check(INT64_MIN);
    check(INT64_MIN + 1);
    for (int64_t p = 1; p <= INT64_MAX / 10; p *= 10) {
        check(p);
        check(p - 1);
        check(p + 1);
        check(-p);
        check(-p + 1);
        check(-p - 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_as_printf)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
