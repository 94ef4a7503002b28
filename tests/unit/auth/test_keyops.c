/* Tests for src/auth/keyops.c (the store steps of key create, import and rotate) over a real
 * migrated store of either backend (store/backends.h), at fixed instants: a made key's row (expiry,
 * signing secret sealed for its id and opened again by the KEK), the refusals (no tenant, signing
 * without a KEK, an imported secret twice), and a rotation: new key for the same tenant and name,
 * per-key limits copied, the old key set to expire after the grace (or kept at a sooner expiry), an
 * unknown, revoked or expired key refused; --grace's forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth/keyops.h"
#include "store/backends.h"

#define SEC  1000000LL
#define WALL 1801439998000000LL /* 2027-01-31T23:59:58Z */

/* The store (either backend, store/backends.h) with tenant acme, and a fixed KEK. */
typedef struct fixture {
    tg_store_t *s;
    tg_kek_t kek;
} fixture_t;

static fixture_t fixture(void **state)
{
    tb_store_t *t = *state;
    fixture_t f = {.s = t->s};
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_tenant_add(f.s, "acme", "Acme", &err), 0);
    memset(f.kek.key, 0x5a, sizeof f.kek.key);
    memset(f.kek.id, 0x01, sizeof f.kek.id);
    return f;
}

static tg_key_t stored(const fixture_t *f, const char *id)
{
    tg_key_t k;
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_key_get(f->s, id, &k, &err), 0);
    return k;
}

static void test_make(void **state)
{
    fixture_t fx = fixture(state), *f = &fx;
    tg_key_made_t m;
    tg_err_t err = {{0}};
    tg_key_spec_t spec = {.tenant = "acme", .name = "ci", .expires_us = WALL + 86400 * SEC};
    assert_int_equal(tg_key_make(f->s, NULL, &spec, WALL, &m, &err), TG_KEYOP_OK);
    assert_memory_equal(m.secret, "tg_", 3);
    assert_string_equal(m.signing, "");
    assert_string_equal(m.tenant_status, "active");
    tg_key_t k = stored(f, m.key.id);
    assert_string_equal(k.tenant_id, "acme");
    assert_string_equal(k.name, "ci");
    assert_int_equal(k.created_us, WALL);
    assert_int_equal(k.expires_us, WALL + 86400 * SEC);
    assert_int_equal(k.signing, 0);
    tg_key_made_wipe(&m);
    assert_int_equal(m.secret[0], 0);

    spec = (tg_key_spec_t){.tenant = "nosuch"};
    assert_int_equal(tg_key_make(f->s, NULL, &spec, WALL, &m, &err), TG_KEYOP_NO_TENANT);
    spec = (tg_key_spec_t){.tenant = "acme", .signing = 1};
    assert_int_equal(tg_key_make(f->s, NULL, &spec, WALL, &m, &err), TG_KEYOP_NEED_KEK);
    assert_int_equal(tg_key_make(f->s, &f->kek, &spec, WALL, &m, &err), TG_KEYOP_OK);
    assert_memory_equal(m.signing, "tgs_", 4);
    assert_int_equal(m.key.signing, 1);
    /* Sealed for this key's id: the KEK opens it back to the secret shown. */
    unsigned char *pt = NULL;
    size_t n = 0;
    assert_int_equal(tg_crypt_open(&f->kek, m.key.signing_sealed, sizeof m.key.signing_sealed,
                                   m.key.id, strlen(m.key.id), &pt, &n, &err),
                     0);
    assert_int_equal(n, TG_SIGNING_SECRET_LEN);
    assert_memory_equal(pt, m.signing, n);
    tg_crypt_free(pt, n);
    assert_int_equal(stored(f, m.key.id).signing, 1);

    static const char secret[] = "legacy-secret-123";
    spec = (tg_key_spec_t){.tenant = "acme", .import = secret, .import_len = strlen(secret)};
    assert_int_equal(tg_key_make(f->s, NULL, &spec, WALL, &m, &err), TG_KEYOP_OK);
    assert_string_equal(m.secret, ""); /* an imported secret is never handed back */
    assert_string_equal(m.key.prefix, "legacy-s");
    assert_int_equal(tg_key_make(f->s, NULL, &spec, WALL, &m, &err), TG_KEYOP_EXISTS);
}

typedef struct limits {
    int n;
    tg_limit_row_t rows[8];
} limits_t;

static int on_limit(const tg_limit_row_t *r, void *ud)
{
    limits_t *l = ud;
    if (l->n < 8) l->rows[l->n++] = *r;
    return 0;
}

static void test_rotate(void **state)
{
    fixture_t fx = fixture(state), *f = &fx;
    tg_key_made_t m, m2;
    tg_key_rotated_t rot;
    tg_err_t err = {{0}};
    tg_key_spec_t spec = {.tenant = "acme", .name = "svc", .signing = 1};
    assert_int_equal(tg_key_make(f->s, &f->kek, &spec, WALL - 3600 * SEC, &m, &err), TG_KEYOP_OK);
    tg_limit_row_t lim = {.tenant = "acme", .scope = "key", .limit = 600, .period_s = 60};
    snprintf(lim.value, sizeof lim.value, "%s", m.key.id);
    assert_int_equal(tg_store_limit_set(f->s, &lim, &err), 0);

    assert_int_equal(tg_key_rotate(f->s, NULL, m.key.id, 3600, WALL, &m2, &rot, &err),
                     TG_KEYOP_NEED_KEK);
    assert_int_equal(tg_key_rotate(f->s, &f->kek, m.key.id, 3600, WALL, &m2, &rot, &err),
                     TG_KEYOP_OK);
    assert_string_not_equal(m2.key.id, m.key.id);
    assert_string_not_equal(m2.secret, m.secret);
    assert_string_not_equal(m2.signing, m.signing);
    assert_int_equal(rot.limits_copied, 1);
    assert_int_equal(rot.old_expires_us, WALL + 3600 * SEC);
    tg_key_t nk = stored(f, m2.key.id), ok = stored(f, m.key.id);
    assert_string_equal(nk.tenant_id, "acme");
    assert_string_equal(nk.name, "svc");
    assert_string_equal(nk.rotated_from, m.key.id);
    assert_int_equal(nk.signing, 1);
    assert_int_equal(nk.expires_us, 0);
    assert_int_equal(ok.expires_us, WALL + 3600 * SEC);
    limits_t l = {0};
    assert_int_equal(tg_store_limit_list(f->s, "acme", on_limit, &l, &err), 0);
    int found = 0;
    for (int i = 0; i < l.n; i++)
        if (strcmp(l.rows[i].value, m2.key.id) == 0 && l.rows[i].limit == 600 &&
            l.rows[i].period_s == 60)
            found = 1;
    assert_true(found);

    /* Rotated again while its successor is active (a client retrying after a timeout):
     * refused, naming the successor; no third key is made. */
    tg_key_made_t m3;
    assert_int_equal(tg_key_rotate(f->s, &f->kek, m.key.id, 7200, WALL, &m3, &rot, &err),
                     TG_KEYOP_ROTATED);
    assert_string_equal(rot.successor, m2.key.id);
    assert_string_equal(m3.secret, "");
    /* The successor revoked, it can be rotated again, with a longer grace than the old
     * already has: the old keeps its sooner expiry (rotating twice never lengthens a key's
     * life). */
    assert_int_equal(tg_store_key_revoke(f->s, m2.key.id, &err), 0);
    assert_int_equal(tg_key_rotate(f->s, &f->kek, m.key.id, 7200, WALL, &m3, &rot, &err),
                     TG_KEYOP_OK);
    assert_int_equal(rot.old_expires_us, WALL + 3600 * SEC);
    assert_int_equal(stored(f, m.key.id).expires_us, WALL + 3600 * SEC);
    tg_key_made_t m4;
    assert_int_equal(tg_store_key_revoke(f->s, m3.key.id, &err), 0);

    /* Past its expiry, revoked, unknown: nothing to rotate. */
    assert_int_equal(tg_key_rotate(f->s, &f->kek, m.key.id, 0, WALL + 3600 * SEC, &m4, &rot, &err),
                     TG_KEYOP_EXPIRED);
    assert_int_equal(tg_key_rotate(f->s, &f->kek, m2.key.id, 0, WALL, &m4, &rot, &err),
                     TG_KEYOP_INACTIVE);
    assert_string_equal(rot.old.status, "revoked");
    assert_string_equal(m4.secret, "");
    assert_int_equal(tg_key_rotate(f->s, &f->kek, "key_0000000000000000", 0, WALL, &m4, &rot, &err),
                     TG_KEYOP_NO_KEY);
}

static void test_grace(void **state)
{
    (void)state;
    int64_t s = -1;
    assert_int_equal(tg_key_parse_grace("24h", &s), 0);
    assert_int_equal(s, 86400);
    assert_int_equal(tg_key_parse_grace("30m", &s), 0);
    assert_int_equal(s, 1800);
    assert_int_equal(tg_key_parse_grace("0", &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(tg_key_parse_grace("365d", &s), 0);
    assert_int_equal(s, TG_KEY_GRACE_MAX_S);
    const char *bad[] = {"24", "366d", "-1h", "", "1x", "h", "1.5h", "99999999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tg_key_parse_grace(bad[i], &s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_make),
        TB_BOTH(test_rotate),
        cmocka_unit_test(test_grace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
