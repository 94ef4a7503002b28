/* Test helpers for CIDR texts and addresses, shared by tests/unit/types/test_cidr.c and
 * tests/unit/policy/test_iprules.c: each fails the test on a parse error, so a case reads
 * as data. Include after cmocka.h. */
#ifndef TG_TESTS_UNIT_TYPES_CIDR_CASES_H
#define TG_TESTS_UNIT_TYPES_CIDR_CASES_H

#include <string.h>

#include "types/cidr.h"

static inline tg_cidr_t cidr(const char *s)
{
    tg_cidr_t c;
    tg_err_t e = {{0}};
    if (tg_cidr_parse(s, &c, &e) != 0) fail_msg("tg_cidr_parse(\"%s\"): %s", s, e.msg);
    return c;
}

static inline tg_ip_t ip(const char *s)
{
    tg_ip_t a;
    if (tg_ip_parse(s, strlen(s), &a) != 0) fail_msg("tg_ip_parse(\"%s\") failed", s);
    return a;
}

/* A list from a NULL-terminated array of CIDR texts; free with tg_cidr_list_free. */
static inline tg_cidr_list_t list_of(const char *const *v)
{
    tg_cidr_list_t l = {0};
    for (; *v; v++) {
        tg_cidr_t c = cidr(*v);
        assert_int_equal(tg_cidr_list_add(&l, &c), 0);
    }
    return l;
}

#endif
