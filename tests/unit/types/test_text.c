/* Tests src/types/text.c's tg_text_ascii_only: what a JSON answer shows of text that is not
 * UTF-8 (every byte >= 0x80 as '?', cut to the buffer), shared by the usage report and the
 * admin API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "types/text.h"

static void test_ascii_only(void **state)
{
    (void)state;
    char out[8];
    tg_text_ascii_only("gpt\xff"
                       "4o",
                       out, sizeof out);
    assert_string_equal(out, "gpt?4o");
    tg_text_ascii_only("caf\xc3\xa9", out, sizeof out); /* valid UTF-8 too: byte for byte */
    assert_string_equal(out, "caf??");
    tg_text_ascii_only("0123456789", out, sizeof out); /* cut to the buffer, NUL-ended */
    assert_string_equal(out, "0123456");
    tg_text_ascii_only("", out, sizeof out);
    assert_string_equal(out, "");
    out[0] = 'x';
    tg_text_ascii_only("abc", out, 0); /* no room: nothing written */
    assert_int_equal(out[0], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ascii_only)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
