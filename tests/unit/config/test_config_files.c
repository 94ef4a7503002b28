/* Tests for ${file:PATH} and upstreams[].credentials in src/config/config.c: the first line
 * of a file (newline and CR stripped), refusals that name the file and line but never show
 * what the file holds, and the {credential} template checks. Files live in a fresh
 * directory under /tmp, made per run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "config/parse.h"

static char dir[] = "/tmp/tg_config_files_XXXXXX";

/* dir/name holding len bytes of text; the path in out. */
static void put(const char *name, const char *text, size_t len, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

/* A config whose upstream has header value hv and, when creds, that credentials list. */
static void yaml_of(char *out, size_t cap, const char *hv, const char *creds)
{
    snprintf(out, cap,
             "upstreams:\n"
             "  - name: ai\n"
             "    targets: [http://127.0.0.1:9]\n"
             "    headers: { Authorization: \"%s\" }\n"
             "%s%s%s",
             hv, creds ? "    credentials: " : "", creds ? creds : "", creds ? "\n" : "");
}

static void test_file_first_line(void **state)
{
    (void)state;
    char k1[256], yaml[1024];
    put("k1", "sk-FIRST-line\r\nsecond line\n", 28, k1, sizeof k1);
    char hv[400];
    snprintf(hv, sizeof hv, "Bearer ${file:%s}", k1);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    tg_config_t *c = parse_ok(yaml);
    assert_string_equal(c->upstreams[0].headers[0].value, "Bearer sk-FIRST-line");
    assert_int_equal(c->upstreams[0].headers[0].cred_at, -1);
    assert_int_equal(c->upstreams[0].ncredentials, 0);
    tg_config_unref(c);

    /* Without a newline at all (a Kubernetes secret), and $${file: stays literal. */
    put("k1", "sk-no-newline", 13, k1, sizeof k1);
    snprintf(hv, sizeof hv, "${file:%s} $${file:x}", k1);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    c = parse_ok(yaml);
    assert_string_equal(c->upstreams[0].headers[0].value, "sk-no-newline ${file:x}");
    tg_config_unref(c);
}

static void test_credentials_list(void **state)
{
    (void)state;
    char k1[256], k2[256], creds[700], yaml[1024];
    put("c1", "sk-one\n", 7, k1, sizeof k1);
    put("c2", "sk-two\n", 7, k2, sizeof k2);
    setenv("TG_TEST_CRED3", "sk-three-longest", 1);
    snprintf(creds, sizeof creds, "[\"${file:%s}\", \"${file:%s}\", \"${TG_TEST_CRED3}\"]", k1, k2);
    yaml_of(yaml, sizeof yaml, "Bearer {credential}", creds);
    tg_config_t *c = parse_ok(yaml);
    tg_upstream_conf_t *u = &c->upstreams[0];
    assert_int_equal(u->ncredentials, 3);
    assert_string_equal(u->credentials[0], "sk-one");
    assert_string_equal(u->credentials[1], "sk-two");
    assert_string_equal(u->credentials[2], "sk-three-longest");
    assert_int_equal(u->credential_max, 16);
    assert_int_equal(u->headers[0].cred_at, 7);
    tg_config_unref(c);
}

/* Every refusal: FILE:LINE: KEY: problem, the file named, its text never shown. */
static void test_file_errors(void **state)
{
    (void)state;
    char f[256], hv[400], yaml[1024], want[600];

    snprintf(f, sizeof f, "%s/missing", dir);
    snprintf(hv, sizeof hv, "Bearer ${file:%s}", f);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    snprintf(want, sizeof want,
             "t.yaml:4: upstreams[0].headers.Authorization: cannot open %s: No such file or "
             "directory",
             f);
    expect_err(yaml, want);

    put("empty", "", 0, f, sizeof f);
    snprintf(hv, sizeof hv, "Bearer ${file:%s}", f);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    snprintf(want, sizeof want,
             "t.yaml:4: upstreams[0].headers.Authorization: %s: the file is empty", f);
    expect_err(yaml, want);

    put("blank", "\r\nsk-SECRET-on-line-2\n", 21, f, sizeof f);
    snprintf(hv, sizeof hv, "Bearer ${file:%s}", f);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    snprintf(want, sizeof want,
             "t.yaml:4: upstreams[0].headers.Authorization: %s: the first line is empty", f);
    expect_err(yaml, want);

    put("ctl", "sk-SECRET\x01x\n", 12, f, sizeof f);
    snprintf(hv, sizeof hv, "${file:%s}", f);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    snprintf(want, sizeof want,
             "t.yaml:4: upstreams[0].headers.Authorization: %s: the first line has a control "
             "character (at byte 10), not allowed in a header value",
             f);
    expect_err(yaml, want);

    char big[9000];
    memset(big, 'k', sizeof big);
    put("big", big, sizeof big, f, sizeof f);
    snprintf(hv, sizeof hv, "${file:%s}", f);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    snprintf(want, sizeof want,
             "t.yaml:4: upstreams[0].headers.Authorization: %s: the first line is longer than "
             "8192 bytes",
             f);
    expect_err(yaml, want);

    snprintf(hv, sizeof hv, "${file:%s}", dir);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    snprintf(want, sizeof want,
             "t.yaml:4: upstreams[0].headers.Authorization: %s is not a regular file", dir);
    expect_err(yaml, want);
    /* A FIFO: refused without blocking on it (opened O_NONBLOCK, no writer). */
    snprintf(f, sizeof f, "%s/fifo", dir);
    assert_int_equal(mkfifo(f, 0600), 0);
    snprintf(hv, sizeof hv, "${file:%s}", f);
    yaml_of(yaml, sizeof yaml, hv, NULL);
    snprintf(want, sizeof want,
             "t.yaml:4: upstreams[0].headers.Authorization: %s is not a regular file", f);
    expect_err(yaml, want);
    unlink(f);

    put("unreadable", "sk-SECRET\n", 10, f, sizeof f);
    if (geteuid() != 0) { /* root reads a 0000 file anyway */
        chmod(f, 0);
        snprintf(hv, sizeof hv, "${file:%s}", f);
        yaml_of(yaml, sizeof yaml, hv, NULL);
        snprintf(want, sizeof want,
                 "t.yaml:4: upstreams[0].headers.Authorization: cannot open %s: Permission "
                 "denied",
                 f);
        expect_err(yaml, want);
    }

    /* A /proc (or /sys) file says it is regular and holds 0 bytes, then reads as text:
     * never a secret (attack14: /proc/self/smaps, larger than the read's cap, passed the
     * "changed while it was read" check, and its first line went to the upstream). */
    yaml_of(yaml, sizeof yaml, "${file:/proc/self/smaps}", NULL);
    expect_err(yaml, "t.yaml:4: upstreams[0].headers.Authorization: /proc/self/smaps is not a "
                     "regular file (its size is 0 but it reads as text: a /proc or /sys file)");
    yaml_of(yaml, sizeof yaml, "${file:/proc/self/environ}", NULL);
    expect_err(yaml, "t.yaml:4: upstreams[0].headers.Authorization: /proc/self/environ is not a "
                     "regular file (its size is 0 but it reads as text: a /proc or /sys file)");
    yaml_of(yaml, sizeof yaml, "${file:/proc/self/comm}", NULL);
    expect_err(yaml, "t.yaml:4: upstreams[0].headers.Authorization: /proc/self/comm is not a "
                     "regular file (its size is 0 but it reads as text: a /proc or /sys file)");

    yaml_of(yaml, sizeof yaml, "${file:relative/key}", NULL);
    expect_err(yaml, "t.yaml:4: upstreams[0].headers.Authorization: ${file:PATH} needs an "
                     "absolute PATH");
    /* Only where a secret belongs: elsewhere a file's text could be echoed in a message. */
    expect_err("store: \"${file:/etc/hostname}\"\n",
               "t.yaml:1: store: ${file:...} is only read in an upstream's headers and "
               "credentials");
    expect_err("upstreams:\n  - { name: \"${file:/etc/hostname}\", targets: [http://a] }\n",
               "t.yaml:2: upstreams[0].name: ${file:...} is only read in an upstream's headers "
               "and credentials");

    /* A control character in a credential from the environment: refused, not shown. */
    setenv("TG_TEST_BADCRED", "sk-SECRET\x1b[2J", 1);
    yaml_of(yaml, sizeof yaml, "Bearer {credential}", "[\"${TG_TEST_BADCRED}\"]");
    expect_err(yaml, "t.yaml:5: upstreams[0].credentials[0]: has a control character (at byte "
                     "10)");
    yaml_of(yaml, sizeof yaml, "Bearer ${TG_TEST_BADCRED}", NULL);
    expect_err(yaml, "t.yaml:4: upstreams[0].headers.Authorization: value has a control "
                     "character (at byte 17)");
}

static void test_template_errors(void **state)
{
    (void)state;
    char yaml[1024];
    yaml_of(yaml, sizeof yaml, "Bearer static", "[a, b]");
    expect_err(yaml, "t.yaml:5: upstreams[0].credentials: no header takes them: write "
                     "{credential} in one, e.g. headers: { Authorization: \"Bearer "
                     "{credential}\" }");
    yaml_of(yaml, sizeof yaml, "Bearer {credential}", NULL);
    expect_err(yaml, "t.yaml:4: upstreams[0].headers: {credential} needs "
                     "upstreams[0].credentials: [...]");
    yaml_of(yaml, sizeof yaml, "{credential}{credential}", "[a]");
    expect_err(yaml, "t.yaml:4: upstreams[0].headers.Authorization: {credential} may appear "
                     "once in a value");
    yaml_of(yaml, sizeof yaml, "Bearer {credential}", "[]");
    expect_err(yaml, "t.yaml:5: upstreams[0].credentials: needs at least one credential");
    yaml_of(yaml, sizeof yaml, "Bearer {credential}", "[a, \"\"]");
    expect_err(yaml, "t.yaml:5: upstreams[0].credentials[1]: is empty");
    yaml_of(yaml, sizeof yaml, "Bearer {credential}", "{ a: b }");
    expect_err(yaml, "t.yaml:5: upstreams[0].credentials: expected a list of credentials, e.g. "
                     "[\"${file:/run/secrets/key1}\"], found a mapping");
}

/* Whatever fails, no message holds a byte of a file's secret. */
static void test_secret_never_echoed(void **state)
{
    (void)state;
    char f[256], hv[400], yaml[1024];
    const char *texts[] = {"\nsk-VERY-SECRET\n", "sk-VERY-SECRET\x7f\n"};
    for (size_t i = 0; i < 2; i++) {
        put("echo", texts[i], strlen(texts[i]), f, sizeof f);
        snprintf(hv, sizeof hv, "Bearer ${file:%s}", f);
        yaml_of(yaml, sizeof yaml, hv, NULL);
        tg_config_t *c = NULL;
        tg_err_t err = {{0}};
        assert_int_equal(tg_config_parse("t.yaml", yaml, strlen(yaml), &c, &err), -1);
        assert_null(strstr(err.msg, "VERY"));
    }
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"k1", "c1", "c2", "empty", "blank", "ctl", "big", "unreadable", "echo"};
    char f[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(f, sizeof f, "%s/%s", dir, names[i]);
        unlink(f);
    }
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_first_line),     cmocka_unit_test(test_credentials_list),
        cmocka_unit_test(test_file_errors),         cmocka_unit_test(test_template_errors),
        cmocka_unit_test(test_secret_never_echoed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
