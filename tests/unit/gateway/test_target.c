/* Tests src/gateway/target.c: request-target normalisation (RFC 3986 §5.2.4 and
 * §6.2.2, RFC 9112 §3.2), the match path, and credential parameters in queries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/target.h"

/* Normalises in; the result as a string, or "ERR" when refused. */
static const char *norm(const char *in)
{
    static char out[512];
    tg_target_norm_t r;
    if (tg_target_normalize(in, strlen(in), out, &r) != 0) {
        assert_non_null(r.error);
        return "ERR";
    }
    assert_true(r.len <= strlen(in) + 1);
    assert_true(r.path_len <= r.len);
    out[r.len] = '\0';
    return out;
}

static size_t path_len(const char *in)
{
    char out[512];
    tg_target_norm_t r;
    assert_int_equal(tg_target_normalize(in, strlen(in), out, &r), 0);
    return r.path_len;
}

static void test_rfc3986_dot_segments(void **state)
{
    (void)state;
    /* RFC 3986 §5.2.4's own examples, and §5.4's abnormal ones as paths. */
    assert_string_equal(norm("/a/b/c/./../../g"), "/a/g");
    assert_string_equal(norm("/mid/content=5/../6"), "/mid/6");
    assert_string_equal(norm("/b/c/./g"), "/b/c/g");
    assert_string_equal(norm("/b/c/."), "/b/c/");
    assert_string_equal(norm("/b/c/./"), "/b/c/");
    assert_string_equal(norm("/b/c/.."), "/b/");
    assert_string_equal(norm("/b/c/../"), "/b/");
    assert_string_equal(norm("/b/c/../g"), "/b/g");
    assert_string_equal(norm("/b/c/../.."), "/");
    assert_string_equal(norm("/b/c/../../g"), "/g");
    assert_string_equal(norm("/b/g."), "/b/g.");
    assert_string_equal(norm("/b/.g"), "/b/.g");
    assert_string_equal(norm("/b/g.."), "/b/g..");
    assert_string_equal(norm("/b/..g"), "/b/..g");
    assert_string_equal(norm("/b/c/./../g"), "/b/g");
    assert_string_equal(norm("/b/c/./g/."), "/b/c/g/");
    assert_string_equal(norm("/b/c/g/./h"), "/b/c/g/h");
    assert_string_equal(norm("/b/c/g/../h"), "/b/c/h");
    /* The attack: a detour that ends on the billed endpoint. */
    assert_string_equal(norm("/x/../v1/chat/completions"), "/v1/chat/completions");
    assert_string_equal(norm("/v1/./chat/completions"), "/v1/chat/completions");
    assert_string_equal(norm("/"), "/");
    assert_string_equal(norm("//a//b"), "//a//b"); /* empty segments are not dot-segments */
}

static void test_above_root(void **state)
{
    (void)state;
    /* ".." above the root stays at the root (RFC 3986 §5.2.4), never an error. */
    assert_string_equal(norm("/.."), "/");
    assert_string_equal(norm("/../"), "/");
    assert_string_equal(norm("/../../v1/messages"), "/v1/messages");
    assert_string_equal(norm("/a/../../../b"), "/b");
    assert_string_equal(norm("/%2e%2E/v1"), "/v1");
}

static void test_percent(void **state)
{
    (void)state;
    /* Unreserved characters decoded, other escapes kept, upper-cased. */
    assert_string_equal(norm("/v1/chat/complet%69ons"), "/v1/chat/completions");
    assert_string_equal(norm("/%7Euser/%41%2d%5f%2E"), "/~user/A-_.");
    assert_string_equal(norm("/a%2fb"), "/a%2Fb");           /* never a "/" */
    assert_string_equal(norm("/a/%2E%2E%2fb"), "/a/..%2Fb"); /* "..%2Fb" is one segment */
    assert_string_equal(norm("/a%20b"), "/a%20b");
    assert_string_equal(norm("/%c3%a9"), "/%C3%A9");
    assert_string_equal(norm("/a%00b"), "ERR");
    assert_string_equal(norm("/a%2"), "ERR");
    assert_string_equal(norm("/a%zzb"), "ERR");
    assert_string_equal(norm("/a%"), "ERR");
    /* The query is kept as it came (only the byte checks apply). */
    assert_string_equal(norm("/v1/x?a=%69&b=/../c"), "/v1/x?a=%69&b=/../c");
    assert_string_equal(norm("/v1/x?a=%00"), "/v1/x?a=%00");
    assert_int_equal(path_len("/a/../b?x=1"), 2);
}

static void test_refused_bytes(void **state)
{
    (void)state;
    assert_string_equal(norm("/v1/chat/completions#x"), "ERR");
    assert_string_equal(norm("/v1/chat/completions?a#x"), "ERR");
    assert_string_equal(norm("/v1/chat\t/completions"), "ERR");
    assert_string_equal(norm("/a b"), "ERR");
    assert_string_equal(norm("/a\x7f"), "ERR");
    assert_string_equal(norm("/a\x01"), "ERR");
    assert_string_equal(norm("v1/chat"), "ERR");
    assert_string_equal(norm(""), "ERR");
    /* A backslash, which some servers read as "/": 400, not another route's path. */
    assert_string_equal(norm("/v1\\chat\\completions"), "ERR");
    assert_string_equal(norm("/v1/x?q=a\\b"), "/v1/x?q=a\\b"); /* (the query is the upstream's) */
    assert_string_equal(norm("/v1/chat%5Ccompletions"), "/v1/chat%5Ccompletions");
    /* Overlong UTF-8 (a lax decoder's "..", "/"): 400; well-formed UTF-8 is kept. */
    assert_string_equal(norm("/v1/x/%C0%AE%C0%AE/admin"), "ERR");
    assert_string_equal(norm("/v1/x%c1%9c"), "ERR");
    assert_string_equal(norm("/v1/x%E0%80%AF"), "ERR");
    assert_string_equal(norm("/v1/x%F0%80%80%AF"), "ERR");
    assert_string_equal(norm("/v1/caf%C3%A9"), "/v1/caf%C3%A9");
    assert_string_equal(norm("/v1/%E0%A4%85%F0%9F%98%80"), "/v1/%E0%A4%85%F0%9F%98%80");
    assert_string_equal(norm("/v1/x%E0"), "/v1/x%E0");
    assert_string_equal(norm("/v1/x?q=%C0%AE"), "/v1/x?q=%C0%AE"); /* (the query: the upstream's) */
}

static void test_forms(void **state)
{
    (void)state;
    assert_string_equal(norm("*"), "*");
    assert_string_equal(norm("http://example.com/v1/../v1/messages?x=1"), "/v1/messages?x=1");
    assert_string_equal(norm("HTTPS://example.com"), "/");
    assert_string_equal(norm("http://example.com?x"), "/?x");
    assert_int_equal(path_len("http://example.com?x"), 1);
}

static const char *match(const char *in)
{
    static char out[256];
    size_t n = tg_target_match_path(in, strlen(in), out);
    out[n] = '\0';
    return out;
}

static void test_match_path(void **state)
{
    (void)state;
    assert_string_equal(match("/v1/chat/completions;a=b"), "/v1/chat/completions");
    assert_string_equal(match("/v1/chat;x/completions;y=1;z"), "/v1/chat/completions");
    assert_string_equal(match("/v1/messages"), "/v1/messages");
    assert_string_equal(match("/;a"), "/");
    /* %2F as an upstream may decode it, then dot-segments again. */
    assert_string_equal(match("/v1/chat%2Fcompletions"), "/v1/chat/completions");
    assert_string_equal(match("/v1%2f..%2Fadmin"), "/admin");
    assert_string_equal(match("/v1/x;p=%2F../chat/completions"), "/v1/chat/completions");
    /* Empty segments merged, as nginx (merge_slashes) and others serve them. */
    assert_string_equal(match("/v1/chat/completions//"), "/v1/chat/completions/");
    assert_string_equal(match("/v1/chat/completions%2F%2F"), "/v1/chat/completions/");
    assert_string_equal(match("//v1//chat///completions"), "/v1/chat/completions");
    assert_string_equal(match("/v1/;a/chat/completions"), "/v1/chat/completions");
    assert_string_equal(match("/v1/x//..//chat/completions"), "/v1/chat/completions");
    assert_string_equal(match("//"), "/");
    /* Letters lower-cased, as case-insensitive routers (Express, Fiber) read them. */
    assert_string_equal(match("/V1/Chat/COMPLETIONS"), "/v1/chat/completions");
    assert_string_equal(match("/v1/chat/complet%C3%A9"), "/v1/chat/complet%c3%a9");
    char inplace[] = "/a;b/c";
    assert_int_equal(tg_target_match_path(inplace, strlen(inplace), inplace), 4);
    assert_memory_equal(inplace, "/a/c", 4);
}

static const char *redact(const char *in, size_t cap)
{
    static char out[256];
    tg_target_redact(in, strlen(in), out, cap);
    return out;
}

static void test_redact(void **state)
{
    (void)state;
    assert_string_equal(redact("/v1/x?api_key=tg_secret&a=1", 256), "/v1/x?api_key=REDACTED&a=1");
    assert_string_equal(redact("/v1/x?a=1&KEY=abc&Api-Key=z&apikey=", 256),
                        "/v1/x?a=1&KEY=REDACTED&Api-Key=REDACTED&apikey=REDACTED");
    assert_string_equal(redact("/v1/x?monkey=1&key", 256), "/v1/x?monkey=1&key");
    assert_string_equal(redact("/v1/x", 256), "/v1/x");
    assert_string_equal(redact("/v1/x?a=1&", 256), "/v1/x?a=1&");
    /* Cut at the cap, never past it, and a cut value is still redacted. */
    assert_string_equal(redact("/v1/x?key=tg_0123456789", 12), "/v1/x?key=R");
    assert_string_equal(redact("/v1/x?key=tg_0123456789", 1), "");
    /* Names as the upstream decodes them; other credential names; a tollgate key under
     * any name (or alone); a fragment in a refused target. */
    assert_string_equal(redact("/x?api%5Fkey=s1&%6Bey=s2&api%5fKEY=s3&%=s", 256),
                        "/x?api%5Fkey=REDACTED&%6Bey=REDACTED&api%5fKEY=REDACTED&%=s");
    assert_string_equal(redact("/x?access_token=s&Token=s&X-Api-Key=s&tokens=1", 256),
                        "/x?access_token=REDACTED&Token=REDACTED&X-Api-Key=REDACTED&tokens=1");
    assert_string_equal(redact("/x?q=tg_abc&r=%74g_abc&s=%74g&tg_abc&tg=1", 256),
                        "/x?q=REDACTED&r=REDACTED&s=%74g&REDACTED&tg=1");
    assert_string_equal(redact("/p#x&key=s", 256), "/p#REDACTED");
    assert_string_equal(redact("/p?a=1#key=s", 256), "/p?a=1#REDACTED");
    assert_string_equal(redact("/p?a=1&key=s#x", 256), "/p?a=1&key=REDACTED#REDACTED");
}

static const char *strip(const char *in)
{
    static char buf[256];
    strcpy(buf, in);
    size_t n = tg_target_strip_tollgate_keys(buf, strlen(buf));
    buf[n] = '\0';
    return buf;
}

static void test_strip(void **state)
{
    (void)state;
    assert_string_equal(strip("/v1/x?api_key=tg_abc&a=1"), "/v1/x?a=1");
    assert_string_equal(strip("/v1/x?a=1&KEY=tg_abc"), "/v1/x?a=1");
    assert_string_equal(strip("/v1/x?key=tg_abc"), "/v1/x");
    assert_string_equal(strip("/v1/x?key=AIzaUpstreamKey&a=1"), "/v1/x?key=AIzaUpstreamKey&a=1");
    assert_string_equal(strip("/v1/x?a=1&"), "/v1/x?a=1&");
    assert_string_equal(strip("/v1/x?b=tg_x&key=tg_y&c=3"), "/v1/x?b=tg_x&c=3");
    assert_string_equal(strip("/v1/x"), "/v1/x");
    /* Encoded names and values are what the upstream reads. */
    assert_string_equal(strip("/v1/x?api%5Fkey=tg_abc&a=1"), "/v1/x?a=1");
    assert_string_equal(strip("/v1/x?a=1&key=%74g%5Fabc"), "/v1/x?a=1");
    assert_string_equal(strip("/v1/x?key=%74"), "/v1/x?key=%74");
}

/* The common target takes a shortcut (copied as it is, or only lower-cased): random targets
 * over an alphabet that reaches both it and the full walk must give what the walk gives.
 * Canonical output is a fixed point (normalising it again, which takes the shortcut when
 * it can, changes nothing), a target without escapes, backslashes, segments starting with
 * a dot or a '#' is its own canonical form, and the match path of one without ';' or empty
 * segments is its lower-cased self, in place or not. */
static void test_shortcut_agrees(void **state)
{
    (void)state;
    static const char alpha[] = "/aZ.;%2Ff?=&-_~9";
    uint32_t seed = 12345;
    for (int round = 0; round < 20000; round++) {
        char in[40], once[64], twice[64];
        size_t n = 1 + (seed = seed * 1103515245u + 12345u) % 30;
        in[0] = '/';
        for (size_t i = 1; i < n; i++)
            in[i] = alpha[(seed = seed * 1103515245u + 12345u) >> 16 & 15];
        tg_target_norm_t r1, r2;
        if (tg_target_normalize(in, n, once, &r1) != 0) continue;
        assert_int_equal(tg_target_normalize(once, r1.len, twice, &r2), 0);
        assert_int_equal(r2.len, r1.len);
        assert_int_equal(r2.path_len, r1.path_len);
        assert_memory_equal(twice, once, r1.len);
        int plain = 1, lower_only = 1;
        for (size_t i = 0; i < n; i++) {
            if (in[i] == '%' || (in[i] == '.' && in[i - 1] == '/')) plain = 0;
            if (i < r1.path_len && (in[i] == ';' || (in[i] == '/' && i && in[i - 1] == '/')))
                lower_only = 0;
        }
        if (plain) {
            assert_int_equal(r1.len, n);
            assert_memory_equal(once, in, n);
        }
        char m[64], inplace[64];
        size_t ml = tg_target_match_path(once, r1.path_len, m);
        memcpy(inplace, once, r1.path_len);
        assert_int_equal(tg_target_match_path(inplace, r1.path_len, inplace), ml);
        assert_memory_equal(inplace, m, ml);
        if (plain && lower_only) {
            assert_int_equal(ml, r1.path_len);
            for (size_t i = 0; i < ml; i++)
                assert_int_equal(m[i],
                                 once[i] >= 'A' && once[i] <= 'Z' ? once[i] - 'A' + 'a' : once[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3986_dot_segments),
        cmocka_unit_test(test_above_root),
        cmocka_unit_test(test_percent),
        cmocka_unit_test(test_refused_bytes),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_match_path),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_strip),
        cmocka_unit_test(test_shortcut_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
