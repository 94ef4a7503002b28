/* Tests for the report formatters of src/cli/usage.c (table, CSV, JSON and
 * the micro-USD formatting). They are static there, so the file is included:
 * the test then links without usage.o, and tg_cli_usage is defined once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/usage.c"

#include <limits.h>

typedef struct capture {
    char *buf;
    size_t len;
    FILE *f;
} capture_t;

static void cap_open(capture_t *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
}

static const char *cap_text(capture_t *c)
{
    fclose(c->f);
    c->f = NULL;
    return c->buf;
}

static urow_t row(const char *tenant, const char *group, int64_t requests, int64_t cost)
{
    urow_t u;
    memset(&u, 0, sizeof u);
    snprintf(u.tenant, sizeof u.tenant, "%s", tenant);
    snprintf(u.group, sizeof u.group, "%s", group);
    u.r.requests = requests;
    u.r.billable = requests;
    u.r.bytes_in = 10 * requests;
    u.r.bytes_out = 1234567;
    u.r.tokens_in = 7;
    u.r.tokens_out = 9;
    u.r.cost_micros = cost;
    return u;
}

static void fix(urow_t *rows, size_t n)
{
    urows_t rs = {rows, n, n};
    fix_pointers(&rs);
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
    format_t f;
    assert_int_equal(parse_format("csv", &f), 0);
    assert_int_equal(f, FMT_CSV);
    assert_int_equal(parse_format("yaml", &f), -1);
}

static void test_empty_reports(void **state)
{
    (void)state;
    capture_t c;
    cap_open(&c);
    assert_int_equal(print_table(c.f, TG_BY_DAY, NULL, 0), 0);
    assert_string_equal(cap_text(&c),
                        "TENANT  DAY  REQUESTS  BILLABLE  FAILED  REJECTED  BYTES_IN  "
                        "BYTES_OUT  TOKENS_IN  TOKENS_OUT  COST_USD\n");
    free(c.buf);

    cap_open(&c);
    assert_int_equal(print_csv(c.f, TG_BY_ROUTE, NULL, 0), 0);
    assert_string_equal(cap_text(&c), "tenant,route,requests,billable,failed,rejected,bytes_in,"
                                      "bytes_out,tokens_in,tokens_out,cost_usd\n");
    free(c.buf);

    cap_open(&c);
    assert_int_equal(print_json(c.f, TG_BY_DAY, NULL, 0), 0);
    assert_string_equal(cap_text(&c), "[]\n");
    free(c.buf);
}

static void test_table_aligned(void **state)
{
    (void)state;
    urow_t rows[3] = {row("", "", 3, 0), row("acme", "chat", 12345, 1500),
                      row("a-much-longer-tenant", "tools", 1, 2000000)};
    fix(rows, 3);
    capture_t c;
    cap_open(&c);
    assert_int_equal(print_table(c.f, TG_BY_ROUTE, rows, 3), 0);
    const char *t = cap_text(&c);

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
    free(c.buf);
}

static void test_csv_quoting(void **state)
{
    (void)state;
    urow_t rows[2] = {row("acme", "a,\"b\"", 2, 1), row("", "", 1, 0)};
    fix(rows, 2);
    capture_t c;
    cap_open(&c);
    assert_int_equal(print_csv(c.f, TG_BY_TOOL, rows, 2), 0);
    assert_string_equal(cap_text(&c),
                        "tenant,tool,requests,billable,failed,rejected,bytes_in,bytes_out,"
                        "tokens_in,tokens_out,cost_usd\n"
                        "acme,\"a,\"\"b\"\"\",2,2,0,0,20,1234567,7,9,0.000001\n"
                        ",,1,1,0,0,10,1234567,7,9,0.000000\n");
    free(c.buf);
}

static void test_json_rows(void **state)
{
    (void)state;
    urow_t rows[2] = {row("acme", "key_0123456789abcdef", 2, 1500), row("beta", "bad\xff", 1, 0)};
    fix(rows, 2);
    capture_t c;
    cap_open(&c);
    assert_int_equal(print_json(c.f, TG_BY_KEY, rows, 2), 0);
    json_error_t jerr;
    json_t *arr = json_loads(cap_text(&c), 0, &jerr);
    free(c.buf);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 2);
    json_t *o = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(o, "key_id")), "key_0123456789abcdef");
    assert_int_equal(json_integer_value(json_object_get(o, "requests")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_out")), 1234567);
    assert_int_equal(json_integer_value(json_object_get(o, "cost_micros")), 1500);
    assert_string_equal(json_string_value(json_object_get(o, "cost_usd")), "0.001500");
    o = json_array_get(arr, 1);
    assert_string_equal(json_string_value(json_object_get(o, "key_id")), "bad?");
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
