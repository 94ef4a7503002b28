/* Tests src/util/modelname.c: the base of a model name (provider qualifiers, dated
 * snapshots), the chain of names a lookup tries, and folding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/modelname.h"

static size_t base(const char *s)
{
    return tg_modelname_base(s, strlen(s));
}

static void test_base(void **state)
{
    (void)state;
    static const struct {
        const char *name, *base; /* base NULL: none */
    } cases[] = {
        {"gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
        {"claude-3-5-sonnet-20241022", "claude-3-5-sonnet"},
        {"claude-3-5-sonnet@20240620", "claude-3-5-sonnet"},
        {"anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1"},
        {"gpt-4o-mini:ft", "gpt-4o-mini"},
        {"gpt-4o@a:b", "gpt-4o"},
        {"gpt-4o-mini", NULL},
        {"gpt-4o", NULL},
        {"o1", NULL},
        {"", NULL},
        {"@x", NULL},           /* no name before the qualifier */
        {":0", NULL},           /* likewise */
        {"-2024-07-18", NULL},  /* a date alone is no name */
        {"m-12345678", NULL},   /* not a year */
        {"m-20241322", NULL},   /* not a month */
        {"m-2024-07-32", NULL}, /* not a day */
        {"m-2024-7-18", NULL},  /* not the format */
        {"m-2024-07-1x", NULL}, /* not digits */
        {"gpt-4-0613", NULL},   /* OpenAI's MMDD snapshots are models of their own */
        {"text-embedding-3-small", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = base(cases[i].name);
        if (!cases[i].base) {
            assert_int_equal(n, 0);
            continue;
        }
        assert_int_equal(n, strlen(cases[i].base));
        assert_memory_equal(cases[i].name, cases[i].base, n);
    }
}

/* A lookup walks the chain: the name, then each base in turn. */
static void test_chain(void **state)
{
    (void)state;
    const char *name = "claude-3-5-sonnet-20240620@vertex";
    size_t len = strlen(name);
    const char *want[] = {"claude-3-5-sonnet-20240620@vertex", "claude-3-5-sonnet-20240620",
                          "claude-3-5-sonnet"};
    int i = 0;
    for (; i < TG_MODELNAME_TRIES && len; i++) {
        assert_true(i < 3);
        assert_int_equal(len, strlen(want[i]));
        assert_memory_equal(name, want[i], len);
        len = tg_modelname_base(name, len);
    }
    assert_int_equal(i, 3);
}

static void test_fold(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(tg_modelname_fold("GPT-4o-Mini", 11, out, sizeof out), 11);
    assert_string_equal(out, "gpt-4o-mini");
    /* Truncated to the buffer, always terminated. */
    assert_int_equal(tg_modelname_fold("ABCDEFGHIJKLMNOPQRST", 20, out, sizeof out), 15);
    assert_string_equal(out, "abcdefghijklmno");
    /* Only ASCII letters change. */
    assert_int_equal(tg_modelname_fold("\xc3\x89-@Z", 5, out, sizeof out), 5);
    assert_string_equal(out, "\xc3\x89-@z");
    assert_int_equal(tg_modelname_fold("", 0, out, 1), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base),
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
