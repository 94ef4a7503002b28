/* Tests for the helpers of src/cli/common.c that the list and policy commands share:
 * the table/CSV printer, flags without a value, --format and USD options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"

static char *capture(tg_cli_format_t fmt, size_t ncols, const char *const *head,
                     const char *const *cells, size_t nrows)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(tg_cli_print_rows(f, fmt, ncols, head, cells, nrows), 0);
    fclose(f);
    return buf;
}

static void test_print_rows(void **state)
{
    (void)state;
    const char *head[3] = {"tenant", "pattern", "created"};
    const char *cells[6] = {"acme", "github_*", "2026-03-01T10:00:00Z", "b", NULL, "x,\"y\""};
    char *t = capture(TG_CLI_TABLE, 3, head, cells, 2);
    assert_string_equal(t, "TENANT  PATTERN   CREATED\n"
                           "acme    github_*  2026-03-01T10:00:00Z\n"
                           "b       -         x,\"y\"\n");
    free(t);
    char *c = capture(TG_CLI_CSV, 3, head, cells, 2);
    assert_string_equal(c, "tenant,pattern,created\n"
                           "acme,github_*,2026-03-01T10:00:00Z\n"
                           "b,,\"x,\"\"y\"\"\"\n");
    free(c);
    char *e = capture(TG_CLI_TABLE, 3, head, cells, 0);
    assert_string_equal(e, "TENANT  PATTERN  CREATED\n");
    free(e);
}

static void test_take_flag(void **state)
{
    (void)state;
    char *v[] = {"budget", "set", "--soft", "--tenant", "a", "--soft", "--", "--soft", NULL};
    int argc = 8;
    assert_int_equal(tg_cli_take_flag(&argc, v, 2, "--soft"), 2);
    assert_int_equal(argc, 6);
    assert_string_equal(v[2], "--tenant");
    assert_string_equal(v[3], "a");
    assert_string_equal(v[4], "--");
    assert_string_equal(v[5], "--soft"); /* after "--": a positional, kept */
    assert_null(v[6]);
    char *w[] = {"budget", "set", "--softer", "--soft=1", NULL};
    argc = 4;
    assert_int_equal(tg_cli_take_flag(&argc, w, 2, "--soft"), -1);
    char *x[] = {"budget", "set", "--softer", NULL};
    argc = 3;
    assert_int_equal(tg_cli_take_flag(&argc, x, 2, "--soft"), 0);
    assert_int_equal(argc, 3);
}

static void test_format_and_usd(void **state)
{
    (void)state;
    tg_cli_format_t f;
    assert_int_equal(tg_cli_parse_format(NULL, 0, &f), 0);
    assert_int_equal(f, TG_CLI_TABLE);
    assert_int_equal(tg_cli_parse_format("json", 0, &f), 0);
    assert_int_equal(f, TG_CLI_JSON);
    assert_int_equal(tg_cli_parse_format("csv", 1, &f), 0);
    assert_int_equal(f, TG_CLI_CSV);
    assert_int_equal(tg_cli_parse_format("csv", 0, &f), TG_EXIT_USAGE);
    assert_int_equal(tg_cli_parse_format("JSON", 1, &f), TG_EXIT_USAGE);
    int64_t m = 0;
    assert_int_equal(tg_cli_parse_usd("--call", "0.01", &m), 0);
    assert_int_equal(m, 10000);
    assert_int_equal(tg_cli_parse_usd("--call", "1.0000001", &m), TG_EXIT_USAGE);
    assert_int_equal(tg_cli_parse_usd("--call", "-1", &m), TG_EXIT_USAGE);
    assert_int_equal(tg_cli_check_tenant("*", 1), 0);
    assert_int_equal(tg_cli_check_tenant("*", 0), TG_EXIT_USAGE);
    assert_int_equal(tg_cli_check_tenant("acme-1", 0), 0);
    assert_int_equal(tg_cli_check_tenant("bad id", 1), TG_EXIT_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_print_rows),
        cmocka_unit_test(test_take_flag),
        cmocka_unit_test(test_format_and_usd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
