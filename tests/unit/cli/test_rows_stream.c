/* Tests for the streaming list writer of src/cli/common.c (tg_cli_rows_flush/_end, the ANY
 * cells of `query`): printed in one chunk it writes exactly what tg_cli_rows_print writes;
 * in many chunks the JSON is still one array, the CSV has one header, and the table keeps
 * the widths of its first chunk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/common.h"

static const tg_cli_col_t cols[] = {
    {.name = "n", .type = TG_CLI_COL_ANY},
    {.name = "s", .type = TG_CLI_COL_ANY},
};

/* Row i: an integer, then text (or NULL for every third row). */
static void add(tg_cli_rows_t *t, int i)
{
    char b[32];
    snprintf(b, sizeof b, "%d", i);
    tg_cli_cell_any(t, b, json_integer(i));
    snprintf(b, sizeof b, "v,%d", i * 111);
    if (i % 3 == 2)
        tg_cli_cell_any(t, NULL, json_null());
    else
        tg_cli_cell_any(t, b, json_string(b));
    assert_int_equal(tg_cli_row_done(t), 0);
}

/* rows 0..n-1, flushed every chunk rows (0: printed at once with tg_cli_rows_print). */
static char *render(int n, int chunk, tg_cli_format_t fmt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tg_cli_rows_t t = TG_CLI_ROWS(cols);
    for (int i = 0; i < n; i++) {
        add(&t, i);
        if (chunk && (i + 1) % chunk == 0) assert_int_equal(tg_cli_rows_flush(&t, f, fmt), 0);
    }
    if (chunk)
        assert_int_equal(tg_cli_rows_end(&t, f, fmt), 0);
    else
        assert_int_equal(tg_cli_rows_print(&t, f, fmt), 0);
    tg_cli_rows_free(&t);
    fclose(f);
    return buf;
}

static void test_one_chunk_is_print(void **state)
{
    (void)state;
    for (int fmt = TG_CLI_TABLE; fmt <= TG_CLI_CSV; fmt++)
        for (int n = 0; n < 5; n++) {
            char *a = render(n, 0, (tg_cli_format_t)fmt), *b = render(n, 100, (tg_cli_format_t)fmt);
            assert_string_equal(a, b);
            free(a);
            free(b);
        }
}

static void test_chunks(void **state)
{
    (void)state;
    /* JSON: one array of 10 objects, typed, whatever the chunking. */
    char *j = render(10, 3, TG_CLI_JSON), *whole = render(10, 0, TG_CLI_JSON);
    assert_string_equal(j, whole);
    json_error_t je;
    json_t *arr = json_loads(j, 0, &je);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 10);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 9), "n")), 9);
    assert_true(json_is_null(json_object_get(json_array_get(arr, 2), "s")));
    json_decref(arr);
    free(j);
    free(whole);
    /* CSV: one header, every row, quoted. */
    char *c = render(10, 4, TG_CLI_CSV);
    assert_int_equal(strncmp(c, "n,s\n0,\"v,0\"\n", 12), 0);
    assert_null(strstr(c + 1, "n,s"));
    assert_non_null(strstr(c, "\n9,\"v,999\"\n"));
    free(c);
    /* Table: widths from the first chunk ("v,111" is 5 wide); a longer cell later pushes
     * its line, the header is printed once. */
    char *tb = render(12, 2, TG_CLI_TABLE);
    assert_int_equal(strncmp(tb, "N  S\n0  v,0\n1  v,111\n", 21), 0);
    assert_non_null(strstr(tb, "\n10  v,1110\n"));
    assert_null(strstr(tb + 1, "N  S"));
    free(tb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_chunk_is_print),
        cmocka_unit_test(test_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
