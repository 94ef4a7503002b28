/* Tests for src/admin/dashboard.c: which /dashboard path is what (tenant ids decoded and
 * checked, so no other byte reaches the store or a Location header), the embedded assets and
 * their types, the browser's cookie (the HMAC of the token's digest: accepted only for the
 * configured token, in any position of the Cookie header, never when no token is set) and
 * the ?token= log-in. The listener is driven end to end in tests/e2e/dashboard.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "admin/dashboard.h"

static const char token[] = "0123456789abcdef-admin-token";
static unsigned char digest[32], other[32];

static int setup(void **state)
{
    (void)state;
    SHA256((const unsigned char *)token, strlen(token), digest);
    SHA256((const unsigned char *)"another-admin-token-0000", 24, other);
    return 0;
}

static void test_routes(void **state)
{
    (void)state;
    char out[80];
    assert_int_equal(tg_admin_dash_route("/dashboard", out, sizeof out), TG_DASH_PAGE);
    assert_int_equal(tg_admin_dash_route("/dashboard/", out, sizeof out), TG_DASH_PAGE);
    assert_int_equal(tg_admin_dash_route("/dashboard/tenant/acme-1.x_y", out, sizeof out),
                     TG_DASH_PAGE);
    assert_int_equal(tg_admin_dash_route("/dashboard/api/overview", out, sizeof out), TG_DASH_API);
    assert_string_equal(out, "overview");
    assert_int_equal(tg_admin_dash_route("/dashboard/api/tenant/acme", out, sizeof out),
                     TG_DASH_API);
    assert_string_equal(out, "tenant/acme");
    assert_int_equal(tg_admin_dash_route("/dashboard/api/tenant/ac%6De", out, sizeof out),
                     TG_DASH_API);
    assert_string_equal(out, "tenant/acme");
    assert_int_equal(tg_admin_dash_route("/dashboard/app.js", out, sizeof out), TG_DASH_ASSET);
    assert_string_equal(out, "app.js");
    assert_int_equal(tg_admin_dash_route("/dashboard/app.css", out, sizeof out), TG_DASH_ASSET);
    /* Not dashboard paths at all. */
    assert_int_equal(tg_admin_dash_route("/metrics", out, sizeof out), TG_DASH_NONE);
    assert_int_equal(tg_admin_dash_route("/dashboardx", out, sizeof out), TG_DASH_NONE);
    /* Under /dashboard but nothing there: ids outside [A-Za-z0-9._-], bad escapes. */
    const char *bad[] = {
        "/dashboard/api/tenant/",
        "/dashboard/api/tenant/a%0d%0aX: y",
        "/dashboard/api/tenant/a%2fb",
        "/dashboard/api/tenant/%3Cimg%3E",
        "/dashboard/api/tenant/a%",
        "/dashboard/api/tenant/a%4",
        "/dashboard/tenant/a%0aLocation:",
        "/dashboard/tenant/",
        "/dashboard/index.html",
        "/dashboard/nope.js",
        "/dashboard/api/overview2",
        "/dashboard/../metrics",
        "/dashboard/api/tenant/0123456789012345678901234567890123456789012345678901234567890123",
        /* A %00 would cut the id: these stood for "a" (and the page's 303 echoed the rest). */
        "/dashboard/api/tenant/a%00zz",
        "/dashboard/tenant/a%00%3Cscript%3E",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tg_admin_dash_route(bad[i], out, sizeof out) != TG_DASH_UNKNOWN)
            fail_msg("%s: not refused", bad[i]);
    }
}

static void test_assets(void **state)
{
    (void)state;
    const char *names[] = {"index.html", "app.js", "app.css"};
    for (size_t i = 0; i < 3; i++) {
        const tg_asset_t *a = tg_admin_asset(names[i]);
        assert_non_null(a);
        assert_true(a->len > 100);
        assert_int_equal(strlen((const char *)a->data), a->len); /* NUL-terminated, no NUL */
    }
    assert_null(tg_admin_asset("missing.js"));
    assert_string_equal(tg_admin_asset_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(tg_admin_asset_type("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(tg_admin_asset_type("app.css"), "text/css; charset=utf-8");
    assert_string_equal(tg_admin_asset_type("x.bin"), "application/octet-stream");
    /* The page loads its script and style from files (the CSP has no 'unsafe-inline'). */
    const char *html = (const char *)tg_admin_asset("index.html")->data;
    assert_non_null(strstr(html, "src=\"/dashboard/app.js\""));
    assert_null(strstr(html, "<script>"));
    assert_null(strstr(html, "style="));
}

static void test_cookie(void **state)
{
    (void)state;
    char v[65], w[65], hdr[256];
    tg_admin_dash_cookie(digest, v);
    tg_admin_dash_cookie(other, w);
    assert_int_equal(strlen(v), 64);
    assert_string_not_equal(v, w);
    assert_null(strstr(v, token));
    snprintf(hdr, sizeof hdr, "tg_dash=%s", v);
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 1);
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), other), 0); /* token changed */
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), NULL), 0);  /* none configured */
    snprintf(hdr, sizeof hdr, "a=b; tg_dash=%s; c=d", v);
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 1);
    snprintf(hdr, sizeof hdr, "tg_dash=%s", w);
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 0);
    /* Ours (Path=/dashboard) first, then one tossed by another service of the same host
     * with Path=/, as a browser orders them: still logged in (the last pair used to win). */
    snprintf(hdr, sizeof hdr, "tg_dash=%s; tg_dash=garbage", v);
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 1);
    snprintf(hdr, sizeof hdr, "tg_dash=%s; tg_dash=%s", v, w);
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 1);
    snprintf(hdr, sizeof hdr, "tg_dash=garbage; tg_dash=%s", w); /* none right */
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 0);
    snprintf(hdr, sizeof hdr, "tg_dash=%.63s", v); /* one digit short */
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 0);
    snprintf(hdr, sizeof hdr, "tg_dash=%sX", v); /* one too many */
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 0);
    snprintf(hdr, sizeof hdr, "xtg_dash=%s", v); /* another cookie's name */
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 0);
    snprintf(hdr, sizeof hdr, "tg_dash=%s", token); /* the raw token is not the cookie */
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), digest), 0);
    assert_int_equal(tg_admin_check_cookie(NULL, 0, digest), 0);
    assert_int_equal(tg_admin_check_cookie("", 0, digest), 0);
    /* A zero digest's cookie is not accepted when nothing is configured. */
    static const unsigned char zero[32];
    tg_admin_dash_cookie(zero, w);
    snprintf(hdr, sizeof hdr, "tg_dash=%s", w);
    assert_int_equal(tg_admin_check_cookie(hdr, strlen(hdr), NULL), 0);
}

static void test_token_param(void **state)
{
    (void)state;
    char q[256];
    snprintf(q, sizeof q, "token=%s", token);
    assert_int_equal(tg_admin_check_token_param(q, digest), 1);
    assert_int_equal(tg_admin_check_token_param(q, other), 0);
    assert_int_equal(tg_admin_check_token_param(q, NULL), 0);
    snprintf(q, sizeof q, "a=1&token=%s&b=2", token);
    assert_int_equal(tg_admin_check_token_param(q, digest), 1);
    /* Percent-encoded as a browser may send it: "-" as %2D. */
    assert_int_equal(tg_admin_check_token_param("token=0123456789abcdef%2Dadmin%2dtoken", digest),
                     1);
    assert_int_equal(tg_admin_check_token_param("token=0123456789abcdef-admin-toke", digest), 0);
    assert_int_equal(tg_admin_check_token_param("token=", digest), 0);
    assert_int_equal(tg_admin_check_token_param("token=%zz", digest), 0);
    /* The token, then %00 and anything: the hash stopped at the NUL, so it was accepted. */
    snprintf(q, sizeof q, "token=%s%%00junk", token);
    assert_int_equal(tg_admin_check_token_param(q, digest), 0);
    assert_int_equal(tg_admin_check_token_param("", digest), 0);
    assert_int_equal(tg_admin_check_token_param(NULL, digest), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_assets),
        cmocka_unit_test(test_cookie),
        cmocka_unit_test(test_token_param),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
