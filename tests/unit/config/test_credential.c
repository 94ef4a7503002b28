/* Tests for src/config/credential.c: credentials taken in turn (also across threads: every
 * one equally often), and the header value with the credential in place. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "config/credential.h"
#include "config/parse.h"

static tg_config_t *three(void)
{
    return parse_ok("upstreams:\n"
                    "  - name: ai\n"
                    "    targets: [http://127.0.0.1:9]\n"
                    "    credentials: [k-one, k-two, k-three]\n"
                    "    headers: { Authorization: \"Bearer {credential}\", X-Static: plain,\n"
                    "               X-Key: \"{credential}\" }\n"
                    "  - { name: plain, targets: [http://127.0.0.1:9], headers: { A: b } }\n");
}

static void test_round_robin(void **state)
{
    (void)state;
    tg_config_t *c = three();
    tg_upstream_conf_t *u = &c->upstreams[0];
    const char *want[] = {"k-one", "k-two", "k-three", "k-one", "k-two", "k-three", "k-one"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_string_equal(tg_cred_next(u), want[i]);
    assert_null(tg_cred_next(&c->upstreams[1])); /* none: nothing taken */
    tg_config_unref(c);
    /* A new config (a reload) starts from its first credential. */
    c = three();
    assert_string_equal(tg_cred_next(&c->upstreams[0]), "k-one");
    tg_config_unref(c);
}

typedef struct {
    tg_upstream_conf_t *u;
    int counts[3];
} share_t;

static void *taker(void *arg)
{
    share_t *s = arg;
    for (int i = 0; i < 30000; i++) {
        const char *k = tg_cred_next(s->u);
        s->counts[!strcmp(k, "k-one") ? 0 : !strcmp(k, "k-two") ? 1 : 2]++;
    }
    return NULL;
}

/* Four workers at once: 120000 requests, each credential taken exactly 40000 times. */
static void test_round_robin_threads(void **state)
{
    (void)state;
    tg_config_t *c = three();
    share_t s[4] = {{0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        s[i].u = &c->upstreams[0];
        assert_int_equal(pthread_create(&t[i], NULL, taker, &s[i]), 0);
    }
    int total[3] = {0};
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        for (int k = 0; k < 3; k++)
            total[k] += s[i].counts[k];
    }
    for (int k = 0; k < 3; k++)
        assert_int_equal(total[k], 40000);
    tg_config_unref(c);
}

static void check_value(const tg_header_conf_t *h, const char *cred, const char *want)
{
    char out[128];
    memset(out, '#', sizeof out);
    size_t n = tg_cred_value_len(h, cred);
    assert_int_equal(n, strlen(want));
    assert_ptr_equal(tg_cred_value(h, cred, out), out + n);
    assert_memory_equal(out, want, n);
    assert_int_equal(out[n], '#'); /* nothing written past the value */
}

static void test_value(void **state)
{
    (void)state;
    tg_config_t *c = three();
    tg_upstream_conf_t *u = &c->upstreams[0];
    check_value(&u->headers[0], "k-two", "Bearer k-two");
    check_value(&u->headers[1], "k-two", "plain"); /* no {credential}: as written */
    check_value(&u->headers[2], "k-three", "k-three");
    check_value(&c->upstreams[1].headers[0], NULL, "b");
    tg_config_unref(c);
}

int main(void)
{
    (void)expect_err; /* parse.h's other half: the refusals are test_config_files.c's */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_round_robin_threads),
        cmocka_unit_test(test_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
