/* Tests for src/store/sqlite_admintok.c and pg_admintok.c: admin API tokens (migration 15),
 * against a fresh store of each backend (backends.h). Times are fixed instants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "backends.h"
#include "store/store.h"

#define SEC  1000000LL
#define WALL 1801439998000000LL /* 2027-01-31T23:59:58Z */

typedef tb_store_t fixture_t;

static tg_admin_token_row_t token(const char *id, unsigned char fill, const char *role,
                                  const char *tenant)
{
    tg_admin_token_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    memset(r.sha256, fill, sizeof r.sha256);
    snprintf(r.role, sizeof r.role, "%s", role);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    snprintf(r.name, sizeof r.name, "n-%s", id);
    r.created_us = WALL;
    return r;
}

typedef struct seen {
    tg_admin_token_row_t rows[8];
    int n;
} seen_t;

static int collect(const tg_admin_token_row_t *r, void *ud)
{
    seen_t *s = ud;
    if (s->n < 8) s->rows[s->n++] = *r;
    return 0;
}

static void test_add_list_revoke(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    int64_t v0, v1;
    assert_int_equal(tg_store_tenant_add(f->s, "acme", "", &err), 0);
    assert_int_equal(tg_store_auth_version(f->s, &v0, &err), 0);

    tg_admin_token_row_t a = token("adm_a", 1, "admin", "");
    a.expires_us = WALL + 3600 * SEC;
    assert_int_equal(tg_store_admin_token_add(f->s, &a, &err), 0);
    tg_admin_token_row_t b = token("adm_b", 2, "read", "acme");
    assert_int_equal(tg_store_admin_token_add(f->s, &b, &err), 0);
    assert_int_equal(tg_store_auth_version(f->s, &v1, &err), 0);
    assert_int_equal(v1, v0 + 2); /* a running gateway's snapshot reloads */

    /* The same id, the same secret, an unknown tenant, a role the table refuses. */
    tg_admin_token_row_t dup = token("adm_a", 3, "admin", "");
    assert_int_equal(tg_store_admin_token_add(f->s, &dup, &err), TG_STORE_EXISTS);
    dup = token("adm_c", 1, "admin", "");
    assert_int_equal(tg_store_admin_token_add(f->s, &dup, &err), TG_STORE_EXISTS);
    dup = token("adm_d", 4, "read", "nope");
    assert_int_equal(tg_store_admin_token_add(f->s, &dup, &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no tenant \"nope\"");
    dup = token("adm_e", 5, "root", "");
    assert_int_not_equal(tg_store_admin_token_add(f->s, &dup, &err), 0);

    seen_t s = {0};
    assert_int_equal(tg_store_admin_token_list(f->s, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.rows[0].id, "adm_a");
    assert_string_equal(s.rows[0].role, "admin");
    assert_string_equal(s.rows[0].tenant, "");
    assert_int_equal(s.rows[0].expires_us, WALL + 3600 * SEC);
    assert_int_equal(s.rows[0].sha256[31], 1);
    assert_string_equal(s.rows[1].tenant, "acme");
    assert_string_equal(s.rows[1].name, "n-adm_b");
    assert_int_equal(s.rows[1].expires_us, 0);
    assert_int_equal(s.rows[1].revoked_us, 0);

    /* Revoked once: a second revocation keeps the first time. */
    assert_int_equal(tg_store_admin_token_revoke(f->s, "adm_b", WALL + SEC, &err), 0);
    assert_int_equal(tg_store_admin_token_revoke(f->s, "adm_b", WALL + 9 * SEC, &err), 0);
    assert_int_equal(tg_store_admin_token_revoke(f->s, "adm_zz", WALL, &err), TG_STORE_NOTFOUND);
    assert_string_equal(err.msg, "no admin token \"adm_zz\"");
    s.n = 0;
    assert_int_equal(tg_store_admin_token_list(f->s, collect, &s, &err), 0);
    assert_int_equal(s.rows[1].revoked_us, WALL + SEC);
}

/* touch moves last_used forward only and bumps no version (every use would reload every
 * gateway's snapshot). */
static void test_touch(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_admin_token_row_t a = token("adm_a", 1, "admin", "");
    assert_int_equal(tg_store_admin_token_add(f->s, &a, &err), 0);
    int64_t v0, v1;
    assert_int_equal(tg_store_auth_version(f->s, &v0, &err), 0);
    assert_int_equal(tg_store_admin_token_touch(f->s, "adm_a", WALL + 5 * SEC, &err), 0);
    assert_int_equal(tg_store_admin_token_touch(f->s, "adm_a", WALL + 2 * SEC, &err), 0);
    assert_int_equal(tg_store_admin_token_touch(f->s, "adm_gone", WALL, &err), 0);
    assert_int_equal(tg_store_auth_version(f->s, &v1, &err), 0);
    assert_int_equal(v1, v0);
    seen_t s = {0};
    assert_int_equal(tg_store_admin_token_list(f->s, collect, &s, &err), 0);
    assert_int_equal(s.rows[0].last_used_us, WALL + 5 * SEC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_add_list_revoke),
        TB_BOTH(test_touch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
