/* Tests migration 13's key columns through the store, on SQLite and PostgreSQL alike:
 * expires_us, rotated_from and the sealed signing secret written by key_add, read back by
 * key_get, key_list and auth_load; key_expire only ever brings an expiry closer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backends.h"

static tg_key_t key_make(const char *id, unsigned char fill)
{
    tg_key_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.id, sizeof k.id, "%s", id);
    snprintf(k.tenant_id, sizeof k.tenant_id, "acme");
    memset(k.sha256, fill, sizeof k.sha256);
    snprintf(k.prefix, sizeof k.prefix, "tg_x");
    snprintf(k.status, sizeof k.status, "active");
    k.created_us = 1000;
    return k;
}

typedef struct auths {
    size_t n;
    tg_auth_row_t row[4];
    char id[4][32];
} auths_t;

static int collect(const tg_auth_row_t *r, void *ud)
{
    auths_t *a = ud;
    if (a->n == 4) return -1;
    a->row[a->n] = *r;
    snprintf(a->id[a->n], sizeof a->id[0], "%s", r->key_id);
    a->n++;
    return 0;
}

static const tg_auth_row_t *find(const auths_t *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->id[i], id)) return &a->row[i];
    fail_msg("no auth row %s", id);
    return NULL;
}

static void test_key_columns(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    assert_int_equal(tg_store_tenant_add(t->s, "acme", "", &err), 0);
    tg_key_t a = key_make("key_a", 0x11), b = key_make("key_b", 0x22);
    b.expires_us = 1798761600000000; /* 2027-01-01 */
    snprintf(b.rotated_from, sizeof b.rotated_from, "key_a");
    b.signing = 1;
    for (size_t i = 0; i < sizeof b.signing_sealed; i++)
        b.signing_sealed[i] = (unsigned char)i;
    assert_int_equal(tg_store_key_add(t->s, &a, &err), 0);
    assert_int_equal(tg_store_key_add(t->s, &b, &err), 0);

    tg_key_t got;
    assert_int_equal(tg_store_key_get(t->s, "key_b", &got, &err), 0);
    assert_string_equal(got.tenant_id, "acme");
    assert_int_equal(got.expires_us, 1798761600000000);
    assert_string_equal(got.rotated_from, "key_a");
    assert_int_equal(got.signing, 1);
    assert_int_equal(tg_store_key_get(t->s, "key_a", &got, &err), 0);
    assert_int_equal(got.expires_us, 0);
    assert_string_equal(got.rotated_from, "");
    assert_int_equal(got.signing, 0);
    assert_int_equal(tg_store_key_get(t->s, "key_nope", &got, &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no key \"key_nope\"");

    auths_t au = {0};
    assert_int_equal(tg_store_auth_load(t->s, collect, &au, &err), 0);
    assert_int_equal(au.n, 2);
    const tg_auth_row_t *rb = find(&au, "key_b"), *ra = find(&au, "key_a");
    assert_int_equal(rb->expires_us, 1798761600000000);
    assert_int_equal(rb->signing, 1);
    assert_int_equal(rb->signing_sealed[0], 0);
    assert_int_equal(rb->signing_sealed[TG_SIGNING_SEALED_LEN - 1],
                     (TG_SIGNING_SEALED_LEN - 1) & 0xff);
    assert_int_equal(ra->expires_us, 0);
    assert_int_equal(ra->signing, 0);
}

static void test_key_expire(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    int64_t v0, v1;
    assert_int_equal(tg_store_tenant_add(t->s, "acme", "", &err), 0);
    tg_key_t a = key_make("key_a", 0x11);
    assert_int_equal(tg_store_key_add(t->s, &a, &err), 0);
    assert_int_equal(tg_store_auth_version(t->s, &v0, &err), 0);
    assert_int_equal(tg_store_key_expire(t->s, "key_a", 5000, &err), 0);
    assert_int_equal(tg_store_auth_version(t->s, &v1, &err), 0);
    assert_true(v1 != v0); /* running gateways notice */
    /* Later than the expiry it has: kept as it is. */
    assert_int_equal(tg_store_key_expire(t->s, "key_a", 9000, &err), TG_STORE_NOTFOUND);
    tg_key_t got;
    assert_int_equal(tg_store_key_get(t->s, "key_a", &got, &err), 0);
    assert_int_equal(got.expires_us, 5000);
    assert_int_equal(tg_store_key_expire(t->s, "key_a", 4000, &err), 0);
    assert_int_equal(tg_store_key_get(t->s, "key_a", &got, &err), 0);
    assert_int_equal(got.expires_us, 4000);
    /* A revoked key or none at all. */
    assert_int_equal(tg_store_key_revoke(t->s, "key_a", &err), 0);
    assert_int_equal(tg_store_key_expire(t->s, "key_a", 1000, &err), TG_STORE_NOTFOUND);
    assert_int_equal(tg_store_key_expire(t->s, "key_nope", 1000, &err), TG_STORE_NOTFOUND);
}

/* kek rotate's compare-and-swap: the new blob only replaces the one that was read. */
static void test_key_reseal(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    int64_t v0, v1;
    assert_int_equal(tg_store_tenant_add(t->s, "acme", "", &err), 0);
    tg_key_t a = key_make("key_a", 0x11);
    a.signing = 1;
    memset(a.signing_sealed, 0xa1, sizeof a.signing_sealed);
    assert_int_equal(tg_store_key_add(t->s, &a, &err), 0);
    unsigned char nb[TG_SIGNING_SEALED_LEN], other[TG_SIGNING_SEALED_LEN];
    memset(nb, 0xb2, sizeof nb);
    memset(other, 0xc3, sizeof other);
    assert_int_equal(tg_store_auth_version(t->s, &v0, &err), 0);
    /* Not the blob stored: nothing replaced. */
    assert_int_equal(tg_store_key_reseal(t->s, "key_a", other, nb, sizeof nb, &err),
                     TG_STORE_NOTFOUND);
    assert_int_equal(tg_store_key_reseal(t->s, "key_a", a.signing_sealed, nb, sizeof nb, &err), 0);
    assert_int_equal(tg_store_auth_version(t->s, &v1, &err), 0);
    assert_true(v1 != v0); /* running gateways reload */
    auths_t got = {0};
    assert_int_equal(tg_store_auth_load(t->s, collect, &got, &err), 0);
    assert_memory_equal(find(&got, "key_a")->signing_sealed, nb, sizeof nb);
    /* Run again with the old blob (a resumed rotation): nothing to replace. */
    assert_int_equal(tg_store_key_reseal(t->s, "key_a", a.signing_sealed, nb, sizeof nb, &err),
                     TG_STORE_NOTFOUND);
    assert_int_equal(tg_store_key_reseal(t->s, "key_nope", nb, other, sizeof nb, &err),
                     TG_STORE_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {TB_BOTH(test_key_columns), TB_BOTH(test_key_expire),
                                       TB_BOTH(test_key_reseal)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
