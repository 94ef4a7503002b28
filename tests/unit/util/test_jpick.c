/* Tests src/util/jpick.c: which values match a path (and which never do: members of
 * objects in arrays, deeper or shallower keys), repeated keys, counts of members, strings,
 * integer edges, invalid documents, every split of a document into two pieces, the token
 * cap, deep nesting, and abandoning a parse (leaks show under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/jpick.h"

#define S(lit) lit, sizeof(lit) - 1

enum { P_MODEL, P_USAGE, P_IN, P_CACHED, P_LIST, P_FLAG, P_DEEP, P_OTHER_IN, P_N };
static const tg_jpath_t paths[P_N] = {
    [P_MODEL] = {{"model"}},
    [P_USAGE] = {{"usage"}},
    [P_IN] = {{"usage", "in"}},
    [P_CACHED] = {{"usage", "details", "cached"}},
    [P_LIST] = {{"list"}},
    [P_FLAG] = {{"flag"}},
    [P_DEEP] = {{"a", "b", "c", "d"}},
    [P_OTHER_IN] = {{"other", "in"}}, /* the same key as P_IN, under another parent */
};
static tg_jpick_spec_t spec = TG_JPICK_SPEC(paths);

static tg_jpick_t pk;

static int doc(const char *p, size_t n)
{
    return tg_jpick_doc(&pk, &spec, p, n);
}

static const tg_jval_t *at(int i)
{
    return tg_jpick_get(&pk, (size_t)i);
}

static void test_paths(void **state)
{
    (void)state;
    static const char d[] = "{\"model\":\"gpt-4o\",\"usage\":{\"in\":12,\"out\":3,\"details\":"
                            "{\"cached\":4}},\"list\":[1,{\"model\":\"no\"},[]],\"flag\":true,"
                            "\"a\":{\"b\":{\"c\":{\"d\":-7}}}}";
    assert_int_equal(doc(S(d)), 0);
    assert_int_equal(pk.root, TG_JT_OBJECT);
    assert_int_equal(pk.root_n, 5);
    assert_int_equal(at(P_MODEL)->type, TG_JT_STRING);
    assert_string_equal(at(P_MODEL)->s, "gpt-4o");
    assert_int_equal(at(P_USAGE)->type, TG_JT_OBJECT);
    assert_int_equal(at(P_USAGE)->n, 3);
    assert_int_equal(at(P_IN)->type, TG_JT_INT);
    assert_int_equal(at(P_IN)->i, 12);
    assert_int_equal(at(P_CACHED)->i, 4);
    assert_int_equal(at(P_LIST)->type, TG_JT_ARRAY);
    assert_int_equal(at(P_LIST)->n, 3);
    assert_int_equal(at(P_FLAG)->type, TG_JT_TRUE);
    assert_int_equal(at(P_DEEP)->type, TG_JT_INT);
    assert_int_equal(at(P_DEEP)->i, -7);
    assert_int_equal(at(P_OTHER_IN)->type, TG_JT_ABSENT);

    assert_int_equal(doc(S("{\"other\":{\"in\":5},\"usage\":{\"x\":{\"in\":6}}}")), 0);
    assert_int_equal(at(P_OTHER_IN)->i, 5);
    assert_int_equal(at(P_IN)->type, TG_JT_ABSENT);
}

/* The same names elsewhere never match: nested under other keys, inside arrays, one level
 * too deep or too shallow, or with a different type on the way. */
static void test_no_false_matches(void **state)
{
    (void)state;
    static const char d[] = "{\"meta\":{\"usage\":{\"in\":1},\"model\":\"m1\"},"
                            "\"arr\":[{\"usage\":{\"in\":2}},{\"model\":\"m2\"}],"
                            "\"usage\":[{\"in\":3}],\"x\":{\"usage\":{\"details\":{\"cached\":9}}},"
                            "\"a\":{\"b\":{\"c\":5}},\"s\":\"\\\"usage\\\":{\\\"in\\\":4}\"}";
    assert_int_equal(doc(S(d)), 0);
    assert_int_equal(at(P_MODEL)->type, TG_JT_ABSENT);
    assert_int_equal(at(P_USAGE)->type, TG_JT_ARRAY); /* the top-level one, an array */
    assert_int_equal(at(P_USAGE)->n, 1);
    assert_int_equal(at(P_IN)->type, TG_JT_ABSENT);
    assert_int_equal(at(P_CACHED)->type, TG_JT_ABSENT);
    assert_int_equal(at(P_DEEP)->type, TG_JT_ABSENT);
    assert_int_equal(pk.root_n, 6);

    /* A root that is an array holds no members. */
    assert_int_equal(doc(S("[{\"model\":\"m\"}]")), 0);
    assert_int_equal(pk.root, TG_JT_ARRAY);
    assert_int_equal(pk.root_n, 1);
    assert_int_equal(at(P_MODEL)->type, TG_JT_ABSENT);
}

/* As in jansson, a repeated key replaces the earlier value, and what was picked under it. */
static void test_repeated_keys(void **state)
{
    (void)state;
    assert_int_equal(doc(S("{\"usage\":{\"in\":1,\"details\":{\"cached\":2}},\"usage\":{}}")), 0);
    assert_int_equal(at(P_USAGE)->type, TG_JT_OBJECT);
    assert_int_equal(at(P_USAGE)->n, 0);
    assert_int_equal(at(P_IN)->type, TG_JT_ABSENT);
    assert_int_equal(at(P_CACHED)->type, TG_JT_ABSENT);

    assert_int_equal(doc(S("{\"usage\":{\"in\":1,\"in\":2},\"model\":\"a\",\"model\":null}")), 0);
    assert_int_equal(at(P_IN)->i, 2);
    assert_int_equal(at(P_MODEL)->type, TG_JT_NULL);
}

static void test_scalars(void **state)
{
    (void)state;
    assert_int_equal(doc(S("{\"usage\":{\"in\":9223372036854775807},\"model\":1.5,"
                           "\"flag\":false,\"list\":null}")),
                     0);
    assert_true(at(P_IN)->i == INT64_MAX);
    assert_int_equal(at(P_MODEL)->type, TG_JT_REAL);
    assert_int_equal(at(P_FLAG)->type, TG_JT_FALSE);
    assert_int_equal(at(P_LIST)->type, TG_JT_NULL);
    assert_int_equal(doc(S("{\"usage\":{\"in\":-9223372036854775808}}")), 0);
    assert_true(at(P_IN)->i == INT64_MIN);
    /* Out of int64, or beyond a double: not JSON tollgate reads (as in jansson). */
    assert_int_equal(doc(S("{\"usage\":{\"in\":9223372036854775808}}")), -1);
    assert_int_equal(doc(S("{\"x\":-9223372036854775809}")), -1);
    assert_int_equal(doc(S("{\"x\":1e400}")), -1);
    assert_int_equal(doc(S("{\"x\":-1e400}")), -1);
    assert_int_equal(doc(S("{\"x\":1e-400,\"usage\":{\"in\":-0}}")), 0);
    assert_int_equal(at(P_IN)->type, TG_JT_INT);
    assert_int_equal(at(P_IN)->i, 0);
    char longnum[200];
    memcpy(longnum, "{\"usage\":{\"in\":0.", 17);
    memset(longnum + 17, '5', 150); /* longer than on_number's stack copy */
    memcpy(longnum + 167, "}}", 2);
    assert_int_equal(doc(longnum, 169), 0);
    assert_int_equal(at(P_IN)->type, TG_JT_REAL);
    assert_int_equal(doc(S("{\"usage\":{\"in\":16.0}}")), 0);
    assert_int_equal(at(P_IN)->type, TG_JT_REAL);

    /* Escapes are decoded; a string stops at \u0000 and at 127 bytes. */
    assert_int_equal(doc(S("{\"model\":\"a\\u0062c\\u0000d\",\"\\u0066lag\":1}")), 0);
    assert_string_equal(at(P_MODEL)->s, "abc");
    assert_int_equal(at(P_FLAG)->type, TG_JT_INT);
    char big[400];
    memcpy(big, "{\"model\":\"", 10);
    memset(big + 10, 'm', 300);
    memcpy(big + 310, "\"}", 2);
    assert_int_equal(doc(big, 312), 0);
    assert_int_equal(strlen(at(P_MODEL)->s), TG_JPICK_STR - 1);

    /* Documents that are not objects. */
    assert_int_equal(doc(S(" 42 ")), 0);
    assert_int_equal(pk.root, TG_JT_INT);
    assert_int_equal(doc(S("\"s\"")), 0);
    assert_int_equal(pk.root, TG_JT_STRING);
}

static void test_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *d;
    } bad[] = {
        {""},
        {"   "},
        {"{"},
        {"{\"model\":}"},
        {"{\"model\":\"x\"} {}"},         /* trailing value */
        {"{\"model\":\"x\"}x"},           /* trailing garbage */
        {"{'model':1}"},                  /* not JSON */
        {"{\"a\":1,}"},                   /* trailing comma */
        {"{\"a\":01}"},                   /* leading zero */
        {"{\"a\":99999999999999999999}"}, /* beyond 64 bits */
        {"{\"a\":\"\xff\"}"},             /* invalid UTF-8 */
        {"{\"a\":1} /* c */"},            /* comment */
        {"{\"a\":[1,2}"},
        {"{\"a\":\"\\x\"}"}, /* bad escape */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (doc(bad[i].d, strlen(bad[i].d)) != -1) fail_msg("accepted: %s", bad[i].d);
        assert_int_equal(tg_jpick_feed(&pk, "{}", 2), -1); /* failed stays failed */
    }
    /* A NUL byte in the text (not an escape) is not JSON. */
    assert_int_equal(doc("{\"a\":\"x\0\"}", 10), -1);
}

/* Any split into two pieces gives what the whole document gives. */
static void test_every_split(void **state)
{
    (void)state;
    static const char d[] = "{\"model\":\"gpt-\\u00e9\",\"usage\":{\"in\":123456,\"details\":"
                            "{\"cached\":-4}},\"list\":[1.25e3,\"x\",true],\"flag\":null}";
    size_t n = sizeof d - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
        assert_int_equal(tg_jpick_feed(&pk, d, cut), 0);
        assert_int_equal(tg_jpick_feed(&pk, d + cut, n - cut), 0);
        assert_int_equal(tg_jpick_end(&pk), 0);
        assert_string_equal(at(P_MODEL)->s, "gpt-\xc3\xa9");
        assert_int_equal(at(P_IN)->i, 123456);
        assert_int_equal(at(P_CACHED)->i, -4);
        assert_int_equal(at(P_LIST)->n, 3);
        assert_int_equal(at(P_FLAG)->type, TG_JT_NULL);
        assert_int_equal(pk.root_n, 4);
    }
    /* One byte at a time. */
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tg_jpick_feed(&pk, d + i, 1), 0);
    assert_int_equal(tg_jpick_end(&pk), 0);
    assert_int_equal(at(P_IN)->i, 123456);
}

/* A token still in progress after more than TG_JPICK_TOKEN_MAX bytes stops the picker;
 * a document of many small tokens of any size does not. */
static void test_token_cap(void **state)
{
    (void)state;
    size_t piece = 65536;
    char *buf = malloc(piece);
    assert_non_null(buf);
    memset(buf, 'x', piece);

    size_t cap = 1u << 20; /* TG_JPICK_TOKEN_MAX is 64 MiB: the test sets its own */
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    pk.token_max = cap;
    assert_int_equal(tg_jpick_feed(&pk, S("{\"model\":\"")), 0);
    size_t fed = 0;
    int rc = 0;
    while (rc == 0 && fed <= cap + piece)
        if ((rc = tg_jpick_feed(&pk, buf, piece)) == 0) fed += piece;
    assert_int_equal(rc, -1);
    assert_true(tg_jpick_too_big(&pk));
    assert_true(fed >= cap - piece && fed <= cap + piece);
    assert_int_equal(tg_jpick_end(&pk), -1);

    /* 8 MiB of "1,1,1,...": fine. */
    for (size_t i = 0; i < piece; i += 2)
        memcpy(buf + i, "1,", 2);
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    assert_int_equal(tg_jpick_feed(&pk, S("{\"list\":[")), 0);
    for (size_t i = 0; i < 128; i++)
        assert_int_equal(tg_jpick_feed(&pk, buf, piece), 0);
    assert_int_equal(tg_jpick_feed(&pk, S("1],\"flag\":true}")), 0);
    assert_int_equal(tg_jpick_end(&pk), 0);
    assert_false(tg_jpick_too_big(&pk));
    assert_int_equal(at(P_LIST)->n, 128 * piece / 2 + 1);
    assert_int_equal(at(P_FLAG)->type, TG_JT_TRUE);
    free(buf);
}

/* Long escaped strings split across pieces: yajl's buffers outgrow the picker's arena and
 * move to malloc mid-token; the value is still right (and nothing leaks, under ASan). */
static void test_arena_overflow(void **state)
{
    (void)state;
    size_t reps = 20000;
    char *d = malloc(12 * reps + 64);
    assert_non_null(d);
    size_t n = (size_t)sprintf(d, "{\"list\":[\"");
    for (size_t i = 0; i < reps; i++) {
        memcpy(d + n, "\\u0041", 6);
        n += 6;
    }
    n += (size_t)sprintf(d + n, "\"],\"model\":\"");
    for (size_t i = 0; i < reps; i++) {
        memcpy(d + n, "\\u0042", 6);
        n += 6;
    }
    n += (size_t)sprintf(d + n, "\"}");
    static const size_t pieces[] = {1, 7, 1000, 4096, 70000};
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
        for (size_t off = 0; off < n; off += pieces[k])
            assert_int_equal(tg_jpick_feed(&pk, d + off, off + pieces[k] < n ? pieces[k] : n - off),
                             0);
        assert_int_equal(tg_jpick_end(&pk), 0);
        assert_int_equal(at(P_LIST)->n, 1);
        assert_int_equal(strlen(at(P_MODEL)->s), TG_JPICK_STR - 1);
        assert_int_equal(strspn(at(P_MODEL)->s, "B"), TG_JPICK_STR - 1);
    }
    free(d);
}

/* Nesting: up to TG_JPICK_NEST containers, as jansson; deeper is refused at once, so a
 * stream of '[' costs nothing however long. */
static void test_deep_nesting(void **state)
{
    (void)state;
    for (size_t depth = TG_JPICK_NEST - 1; depth <= TG_JPICK_NEST; depth++) {
        char *d = malloc(2 * depth + 64);
        assert_non_null(d);
        size_t n = 0;
        n += (size_t)sprintf(d, "{\"a\":");
        for (size_t i = 0; i < depth; i++)
            d[n++] = '[';
        for (size_t i = 0; i < depth; i++)
            d[n++] = ']';
        n += (size_t)sprintf(d + n, ",\"model\":\"m\"}");
        /* The root object is one container: depth + 1 in all. */
        assert_int_equal(doc(d, n), depth + 1 <= TG_JPICK_NEST ? 0 : -1);
        if (depth + 1 <= TG_JPICK_NEST) assert_string_equal(at(P_MODEL)->s, "m");
        free(d);
    }
    char *b = malloc(65536);
    assert_non_null(b);
    memset(b, '[', 65536);
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    assert_int_equal(tg_jpick_feed(&pk, b, 65536), -1);
    assert_false(tg_jpick_too_big(&pk));
    free(b);
}

/* Only whitespace may follow the value, also when what follows is a token still
 * arriving (an unterminated string) or comes in a later piece. */
static void test_trailing(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"a\":1} \"x", "{\"a\":1}\"", "{} x", "{}{}", "[] 1", "42 x", "\"s\" \"t", "{}\f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (doc(bad[i], strlen(bad[i])) != -1) fail_msg("accepted: %s", bad[i]);
    }
    static const char *const good[] = {"{\"a\":1}  \r\n\t", "42", " 42 ", "\"s\"\n", "[]"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (doc(good[i], strlen(good[i])) != 0) fail_msg("refused: %s", good[i]);
    /* In pieces: the value, then whitespace, then garbage. */
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    assert_int_equal(tg_jpick_feed(&pk, S("{\"model\":\"m\"}")), 0);
    assert_int_equal(tg_jpick_feed(&pk, S("  \n")), 0);
    assert_int_equal(tg_jpick_feed(&pk, S(" \"unterminated")), -1);
    assert_int_equal(tg_jpick_end(&pk), -1);
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    assert_int_equal(tg_jpick_feed(&pk, S("{\"model\":\"m\"} ")), 0);
    assert_int_equal(tg_jpick_feed(&pk, S("\n")), 0);
    assert_int_equal(tg_jpick_end(&pk), 0);
    assert_string_equal(at(P_MODEL)->s, "m");
}

/* A long string in small pieces: pieces are held while it is in progress, so yajl, which
 * re-reads its buffered token on every call, is called a logarithmic number of times. */
static void test_small_pieces(void **state)
{
    (void)state;
    size_t len = 4u << 20, piece = 1460;
    char *d = malloc(len + 64);
    assert_non_null(d);
    size_t n = (size_t)sprintf(d, "{\"list\":[\"");
    memset(d + n, 'q', len);
    n += len;
    n += (size_t)sprintf(d + n, "\"],\"model\":\"m\"}");
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    for (size_t off = 0; off < n; off += piece)
        assert_int_equal(tg_jpick_feed(&pk, d + off, off + piece < n ? piece : n - off), 0);
    size_t parses = pk.parses;
    assert_int_equal(tg_jpick_end(&pk), 0);
    assert_string_equal(at(P_MODEL)->s, "m");
    assert_int_equal(at(P_LIST)->n, 1);
    assert_true(parses < 64); /* 2,900 pieces */
    free(d);
}

/* A parse abandoned half way, or begun again before it ended, holds nothing (ASan). */
static void test_abandon(void **state)
{
    (void)state;
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    assert_int_equal(tg_jpick_feed(&pk, S("{\"model\":\"half")), 0);
    assert_int_equal(tg_jpick_begin(&pk, &spec), 0);
    assert_int_equal(tg_jpick_feed(&pk, S("{\"usage\":{\"in\":")), 0);
    tg_jpick_free(&pk);
    tg_jpick_free(&pk);
    assert_int_equal(tg_jpick_end(&pk), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),         cmocka_unit_test(test_no_false_matches),
        cmocka_unit_test(test_repeated_keys), cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_invalid),       cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_token_cap),     cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_abandon),       cmocka_unit_test(test_arena_overflow),
        cmocka_unit_test(test_trailing),      cmocka_unit_test(test_small_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
