/* Tests for the helpers of src/cli/common.c that the list and policy commands share:
 * the list writer (table, CSV and JSON), flags without a value, --format and USD options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/common.h"

static char *capture(const tg_cli_rows_t *t, tg_cli_format_t fmt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(tg_cli_rows_print(t, f, fmt), 0);
    fclose(f);
    return buf;
}

/* Text cells, none as "-" in the table and an empty CSV field; CSV quoting. */
/* Counts up to max, INT64_MAX included, refused past it without overflowing on the way. */
static void test_parse_count(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(tg_cli_parse_count("5", 5, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(tg_cli_parse_count("6", 5, &v), -1);
    assert_int_equal(tg_cli_parse_count("7", 5, &v), -1);
    assert_int_equal(tg_cli_parse_count("0", 0, &v), 0);
    assert_int_equal(tg_cli_parse_count("1", 0, &v), -1);
    assert_int_equal(tg_cli_parse_count("9223372036854775807", INT64_MAX, &v), 0);
    assert_int_equal(v, INT64_MAX);
    assert_int_equal(tg_cli_parse_count("9223372036854775808", INT64_MAX, &v), -1);
    assert_int_equal(tg_cli_parse_count("99999999999999999999", INT64_MAX, &v), -1);
    assert_int_equal(tg_cli_parse_count("999999999999999999", 1000000000000000000LL, &v), 0);
    assert_int_equal(tg_cli_parse_count("9999999999999999999", 1000000000000000000LL, &v), -1);
    assert_int_equal(tg_cli_parse_count("", 10, &v), -1);
    assert_int_equal(tg_cli_parse_count("1a", 10, &v), -1);
    assert_int_equal(tg_cli_parse_count("-1", 10, &v), -1);
}

static void test_rows_text(void **state)
{
    (void)state;
    static const tg_cli_col_t cols[] = {
        {.name = "tenant", .type = TG_CLI_COL_TEXT},
        {.name = "pattern", .type = TG_CLI_COL_TEXT_OR_NONE},
        {.name = "created", .type = TG_CLI_COL_TEXT},
    };
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    char *e = capture(&t, TG_CLI_TABLE);
    assert_string_equal(e, "TENANT  PATTERN  CREATED\n");
    free(e);
    e = capture(&t, TG_CLI_JSON);
    assert_string_equal(e, "[]\n");
    free(e);
    const char *cells[6] = {"acme", "github_*", "2026-03-01T10:00:00Z", "b", NULL, "x,\"y\""};
    for (size_t i = 0; i < 6; i++) {
        tg_cli_cell_text(&t, cells[i]);
        if (i % 3 == 2) assert_int_equal(tg_cli_row_done(&t), 0);
    }
    char *s = capture(&t, TG_CLI_TABLE);
    assert_string_equal(s, "TENANT  PATTERN   CREATED\n"
                           "acme    github_*  2026-03-01T10:00:00Z\n"
                           "b       -         x,\"y\"\n");
    free(s);
    s = capture(&t, TG_CLI_CSV);
    assert_string_equal(s, "tenant,pattern,created\n"
                           "acme,github_*,2026-03-01T10:00:00Z\n"
                           "b,,\"x,\"\"y\"\"\"\n");
    free(s);
    s = capture(&t, TG_CLI_JSON);
    assert_string_equal(s, "[\n"
                           "  {\n"
                           "    \"tenant\": \"acme\",\n"
                           "    \"pattern\": \"github_*\",\n"
                           "    \"created\": \"2026-03-01T10:00:00Z\"\n"
                           "  },\n"
                           "  {\n"
                           "    \"tenant\": \"b\",\n"
                           "    \"pattern\": null,\n"
                           "    \"created\": \"x,\\\"y\\\"\"\n"
                           "  }\n"
                           "]\n");
    free(s);
    tg_cli_rows_free(&t);
}

/* A table goes to a terminal: control characters (C0, DEL, C1 as UTF-8) and the
 * bidirectional controls a tenant could put in a model name are shown as '?', one for each
 * byte; other UTF-8 is kept; CSV keeps the value. */
static void test_rows_unsafe_text(void **state)
{
    (void)state;
    static const tg_cli_col_t cols[] = {{.name = "model", .type = TG_CLI_COL_TEXT}};
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    const char *cells[] = {"a\x1b]0;x\x07"
                           "b",
                           "c\xc2\x9b"
                           "d",
                           "gpt\xe2\x80\xae"
                           "evil",
                           "x\xe2\x81\xa6y\xe2\x81\xa9",
                           "l\xe2\x80\x8fr",
                           "caf\xc3\xa9 \xe2\x80\x94 ok"};
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
        tg_cli_cell_text(&t, cells[i]);
        assert_int_equal(tg_cli_row_done(&t), 0);
    }
    char *s = capture(&t, TG_CLI_TABLE);
    assert_string_equal(s, "MODEL\n"
                           "a?]0;x?b\n"
                           "c??d\n"
                           "gpt???evil\n"
                           "x???y???\n"
                           "l???r\n"
                           "caf\xc3\xa9 \xe2\x80\x94 ok\n");
    free(s);
    s = capture(&t, TG_CLI_CSV);
    assert_non_null(strstr(s, "gpt\xe2\x80\xae"
                              "evil"));
    free(s);
    tg_cli_rows_free(&t);
}

static json_t *shout(const char *s)
{
    (void)s;
    return json_string("SHOUT");
}

/* Integers, "-" for empty text, right alignment, fixed widths, columns of one format,
 * cells left out of JSON, JSON values the caller builds, and a column's own text-to-JSON. */
static void test_rows_types(void **state)
{
    (void)state;
    static const tg_cli_col_t cols[] = {
        {.name = "name", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH, .json_text = shout},
        {.name = "st", .type = TG_CLI_COL_TEXT, .width = 4},
        {.name = "rate", .type = TG_CLI_COL_TEXT_OR_NONE, .flags = TG_CLI_COL_NO_JSON},
        {.name = "rate", .type = TG_CLI_COL_INT_OR_NONE, .flags = TG_CLI_COL_JSON_ONLY},
        {.name = "list", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
        {.name = "opt", .type = TG_CLI_COL_TEXT_OR_NONE},
        {.name = "n", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_RIGHT},
    };
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    tg_cli_cell_text(&t, "");
    tg_cli_cell_text(&t, "ok");
    tg_cli_cell_text(&t, "5/s");
    tg_cli_cell_int_or_none(&t, 1, 5);
    tg_cli_cell_json(&t, json_pack("[i]", 1));
    tg_cli_cell_text(&t, "x");
    tg_cli_cell_skip_json(&t);
    tg_cli_cell_int(&t, -12345);
    assert_int_equal(tg_cli_row_done(&t), 0);
    tg_cli_cell_text(&t, "longer");
    tg_cli_cell_text(&t, "toolong"); /* past the fixed width: pushes its line right */
    tg_cli_cell_none(&t);
    tg_cli_cell_int_or_none(&t, 0, 7);
    tg_cli_cell_json(&t, json_real(0));
    tg_cli_cell_none(&t);
    tg_cli_cell_int(&t, 3);
    assert_int_equal(tg_cli_row_done(&t), 0);
    char *s = capture(&t, TG_CLI_TABLE);
    assert_string_equal(s, "NAME    ST    RATE  OPT       N\n"
                           "-       ok    5/s   x    -12345\n"
                           "longer  toolong  -     -         3\n");
    free(s);
    s = capture(&t, TG_CLI_CSV);
    assert_string_equal(s, "name,st,rate,opt,n\n"
                           ",ok,5/s,x,-12345\n"
                           "longer,toolong,,,3\n");
    free(s);
    t.json_flags = JSON_COMPACT;
    s = capture(&t, TG_CLI_JSON);
    assert_string_equal(s, "[\n"
                           "  {\n"
                           "    \"name\":\"SHOUT\",\n"
                           "    \"st\":\"ok\",\n"
                           "    \"rate\":5,\n"
                           "    \"list\":[\n"
                           "      1\n"
                           "    ],\n"
                           "    \"n\":-12345\n"
                           "  },\n"
                           "  {\n"
                           "    \"name\":\"SHOUT\",\n"
                           "    \"st\":\"toolong\",\n"
                           "    \"rate\":null,\n"
                           "    \"list\":0.0,\n"
                           "    \"opt\":null,\n"
                           "    \"n\":3\n"
                           "  }\n"
                           "]\n");
    free(s);
    tg_cli_rows_free(&t);
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

/* tg_cli_push: rows kept in order through the growth; a row that would pass the cap is
 * refused and the array left as it was. */
static void test_push(void **state)
{
    (void)state;
    struct row {
        int64_t a;
        char name[20];
    };
    struct {
        struct row *v;
        size_t n, cap;
    } rs = {0};
    for (int i = 0; i < 1000; i++) {
        struct row r = {i, {0}};
        snprintf(r.name, sizeof r.name, "row %d", i);
        assert_int_equal(tg_cli_push((void **)&rs.v, &rs.n, &rs.cap, &r, sizeof r), 0);
    }
    assert_int_equal(rs.n, 1000);
    for (int i = 0; i < 1000; i++) {
        char want[20];
        snprintf(want, sizeof want, "row %d", i);
        assert_int_equal(rs.v[i].a, i);
        assert_string_equal(rs.v[i].name, want);
    }
    /* A row larger than the cap: refused, nothing allocated. */
    struct {
        char *v;
        size_t n, cap;
    } empty = {0};
    static const char big[1];
    volatile size_t huge = TG_CLI_ROWS_MAX + 1; /* (hidden from the compiler: never read) */
    assert_int_equal(tg_cli_push((void **)&empty.v, &empty.n, &empty.cap, big, huge), -1);
    assert_null(empty.v);
    assert_int_equal(empty.n, 0);
    free(rs.v);
}

/* A CSV cell a spreadsheet would run as a formula gets a leading ' (quoted); numbers and
 * ordinary text are as they were; a value that starts with ' gets one more, so stripping
 * one leading ' always gives the value back. */
static void test_csv_field(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"gpt-4o", "gpt-4o"},
        {"-12", "-12"},
        {"-0.25", "-0.25"},
        {"12", "12"},
        {"", ""},
        {"a,b", "\"a,b\""},
        {"say \"hi\"", "\"say \"\"hi\"\"\""},
        {"=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""},
        {"+1+1", "\"'+1+1\""},
        {"-1+1", "\"'-1+1\""},
        {"-", "\"'-\""},
        {"@SUM(A1)", "\"'@SUM(A1)\""},
        {"\tcmd", "\"'\tcmd\""},
        {"'quoted", "\"''quoted\""},
        {"-12.", "\"'-12.\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        tg_cli_csv_field(f, cases[i][0]);
        fclose(f);
        assert_string_equal(buf, cases[i][1]);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_count),    cmocka_unit_test(test_rows_text),
        cmocka_unit_test(test_rows_types),     cmocka_unit_test(test_take_flag),
        cmocka_unit_test(test_format_and_usd), cmocka_unit_test(test_push),
        cmocka_unit_test(test_csv_field),      cmocka_unit_test(test_rows_unsafe_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
