/* Tests for the report of src/cli/usage.c (its columns and rows in table, CSV and
 * JSON, and the micro-USD formatting). They are static there, so the file is included:
 * the test then links without usage.o, and tg_cli_usage is defined once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/usage.c"

#include <limits.h>

/* The report of rows (n of them) in fmt, grouped by, as tg_cli_usage prints it. */
static char *report(tg_cli_format_t fmt, tg_usage_by_t by, const tg_usage_row_t *rows, size_t n)
{
    tg_cli_col_t cols[NCOLS];
    report_columns(by, cols);
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(add_row(&rows[i], &t), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(tg_cli_rows_print(&t, f, fmt), 0);
    fclose(f);
    tg_cli_rows_free(&t);
    return buf;
}

static tg_usage_row_t row(const char *tenant, const char *group, int64_t requests, int64_t cost)
{
    tg_usage_row_t r;
    memset(&r, 0, sizeof r);
    r.tenant = tenant;
    r.group = group;
    r.requests = requests;
    r.billable = requests;
    r.bytes_in = 10 * requests;
    r.bytes_out = 1234567;
    r.tokens_in = 7;
    r.tokens_out = 9;
    r.cost_micros = cost;
    return r;
}

static void test_fmt_usd(void **state)
{
    (void)state;
    char b[32];
    const struct {
        int64_t in;
        const char *out;
    } cases[] = {
        {0, "0.000000"},
        {1, "0.000001"},
        {1500, "0.001500"},
        {1000000, "1.000000"},
        {123456789, "123.456789"},
        {-1, "-0.000001"},
        {-2500000, "-2.500000"},
        {INT64_MAX, "9223372036854.775807"},
        {INT64_MIN, "-9223372036854.775808"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fmt_usd(cases[i].in, b);
        assert_string_equal(b, cases[i].out);
    }
}

static void test_parse_options(void **state)
{
    (void)state;
    tg_usage_by_t by;
    assert_int_equal(parse_by("hour", &by), 0);
    assert_int_equal(by, TG_BY_HOUR);
    assert_int_equal(parse_by("key", &by), 0);
    assert_int_equal(by, TG_BY_KEY);
    assert_int_equal(parse_by("tool", &by), 0);
    assert_int_equal(by, TG_BY_TOOL);
    assert_int_equal(parse_by("week", &by), -1);
}

static void test_empty_reports(void **state)
{
    (void)state;
    char *t = report(TG_CLI_TABLE, TG_BY_DAY, NULL, 0);
    assert_string_equal(t, "TENANT  DAY  REQUESTS  BILLABLE  FAILED  REJECTED  BYTES_IN  "
                           "BYTES_OUT  TOKENS_IN  TOKENS_OUT  COST_USD\n");
    free(t);
    t = report(TG_CLI_CSV, TG_BY_ROUTE, NULL, 0);
    assert_string_equal(t, "tenant,route,requests,billable,failed,rejected,bytes_in,"
                           "bytes_out,tokens_in,tokens_out,cost_usd\n");
    free(t);
    t = report(TG_CLI_JSON, TG_BY_DAY, NULL, 0);
    assert_string_equal(t, "[]\n");
    free(t);
}

static void test_table_aligned(void **state)
{
    (void)state;
    tg_usage_row_t rows[3] = {row("", "", 3, 0), row("acme", "chat", 12345, 1500),
                              row("a-much-longer-tenant", "tools", 1, 2000000)};
    char *t = report(TG_CLI_TABLE, TG_BY_ROUTE, rows, 3);

    /* Every line has the same width; columns start at the same offsets. */
    const char *lines[4];
    size_t len[4], n = 0;
    for (const char *p = t; *p && n < 4; n++) {
        const char *e = strchr(p, '\n');
        assert_non_null(e);
        lines[n] = p;
        len[n] = (size_t)(e - p);
        p = e + 1;
    }
    assert_int_equal(n, 4);
    for (size_t i = 1; i < 4; i++)
        assert_int_equal(len[i], len[0]);
    assert_memory_equal(lines[0], "TENANT                ROUTE  REQUESTS", 37);
    assert_memory_equal(lines[1], "-                     -             3",
                        37); /* unauthenticated */
    assert_memory_equal(lines[2], "acme                  chat      12345", 37);
    assert_non_null(strstr(lines[2], "  0.001500\n"));
    assert_non_null(strstr(lines[3], "  2.000000\n"));
    free(t);
}

static void test_csv_quoting(void **state)
{
    (void)state;
    tg_usage_row_t rows[2] = {row("acme", "a,\"b\"", 2, 1), row("", "", 1, 0)};
    char *t = report(TG_CLI_CSV, TG_BY_TOOL, rows, 2);
    assert_string_equal(t, "tenant,tool,requests,billable,failed,rejected,bytes_in,bytes_out,"
                           "tokens_in,tokens_out,cost_usd\n"
                           "acme,\"a,\"\"b\"\"\",2,2,0,0,20,1234567,7,9,0.000001\n"
                           ",,1,1,0,0,10,1234567,7,9,0.000000\n");
    free(t);
}

static void test_json_rows(void **state)
{
    (void)state;
    tg_usage_row_t rows[3] = {row("acme", "key_0123456789abcdef", 2, 1500),
                              row("beta", "bad\xff", 1, 0), row("\xc3\xa9\xff", "\xc3\xa9", 1, 0)};
    char *t = report(TG_CLI_JSON, TG_BY_KEY, rows, 3);
    json_error_t jerr;
    json_t *arr = json_loads(t, 0, &jerr);
    free(t);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 3);
    json_t *o = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(o, "key_id")), "key_0123456789abcdef");
    assert_int_equal(json_integer_value(json_object_get(o, "requests")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_out")), 1234567);
    assert_int_equal(json_integer_value(json_object_get(o, "cost_micros")), 1500);
    assert_string_equal(json_string_value(json_object_get(o, "cost_usd")), "0.001500");
    o = json_array_get(arr, 1);
    assert_string_equal(json_string_value(json_object_get(o, "key_id")), "bad?");
    /* Text that is not UTF-8 loses every byte past ASCII, the valid "é" too; valid
     * text keeps it. */
    o = json_array_get(arr, 2);
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "???");
    assert_string_equal(json_string_value(json_object_get(o, "key_id")), "\xc3\xa9");
    json_decref(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_usd),       cmocka_unit_test(test_parse_options),
        cmocka_unit_test(test_empty_reports), cmocka_unit_test(test_table_aligned),
        cmocka_unit_test(test_csv_quoting),   cmocka_unit_test(test_json_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
