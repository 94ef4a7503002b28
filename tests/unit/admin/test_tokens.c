/* Tests for src/admin/tokens.c (the admin tokens' snapshot) over a real migrated SQLite
 * store: a known digest is OK with its role and scope, an unknown one (one bit off, all
 * zeros) is UNKNOWN, expiry at a fixed instant (the microsecond before is OK, the instant
 * itself and after are EXPIRED), revoked beats a valid expiry, a reload takes a revocation,
 * and last use is written back at most once a second. The comparison itself is
 * CRYPTO_memcmp over every entry: a digest one bit off at either end is UNKNOWN (no prefix
 * compare); its timing is not measured here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "admin/tokens.h"

#define SEC  1000000LL
#define WALL 1801439998000000LL /* 2027-01-31T23:59:58Z */

typedef struct fixture {
    char dir[64], path[128], url[160];
    tg_store_t *s;
    tg_admin_tokens_t *t;
} fixture_t;

static tg_admin_token_row_t token(const char *id, unsigned char fill, const char *role,
                                  const char *tenant, int64_t expires_us)
{
    tg_admin_token_row_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    memset(r.sha256, fill, sizeof r.sha256);
    snprintf(r.role, sizeof r.role, "%s", role);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    r.created_us = WALL - 3600 * SEC;
    r.expires_us = expires_us;
    return r;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tg_test_tokens_XXXXXX");
    if (!f || !mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    snprintf(f->url, sizeof f->url, "sqlite:%s", f->path);
    tg_err_t err = {{0}};
    if (tg_store_open(f->url, &f->s, &err) != 0) return -1;
    if (tg_store_tenant_add(f->s, "acme", "Acme", &err) != 0) return -1;
    const tg_admin_token_row_t rows[] = {
        token("adm_0000000000000001", 0x11, "admin", "", 0),
        token("adm_0000000000000002", 0x22, "read", "", WALL),
        token("adm_0000000000000003", 0x33, "read", "acme", 0),
        token("adm_0000000000000004", 0x44, "admin", "", WALL + 3600 * SEC),
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (tg_store_admin_token_add(f->s, &rows[i], &err) != 0) return -1;
    if (tg_store_admin_token_revoke(f->s, "adm_0000000000000004", WALL - SEC, &err) != 0) return -1;
    f->t = tg_admin_tokens_new();
    if (!f->t || tg_admin_tokens_load(f->t, f->s, &err) != 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tg_admin_tokens_free(f->t);
    tg_store_close(f->s);
    char p[160];
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static tg_admin_token_result_t check(fixture_t *f, unsigned char fill, int64_t now_us,
                                     tg_admin_principal_t *who)
{
    unsigned char d[32];
    memset(d, fill, sizeof d);
    memset(who, 0x5a, sizeof *who); /* what a refusal must leave alone */
    return tg_admin_tokens_check(f->t, d, now_us, who);
}

static void test_roles_and_scope(void **state)
{
    fixture_t *f = *state;
    tg_admin_principal_t who;
    assert_int_equal(check(f, 0x11, WALL, &who), TG_ADMIN_TOKEN_OK);
    assert_string_equal(who.actor, "admin-token:adm_0000000000000001");
    assert_int_equal(who.read_only, 0);
    assert_string_equal(who.tenant, "");
    assert_int_equal(check(f, 0x33, WALL, &who), TG_ADMIN_TOKEN_OK);
    assert_string_equal(who.actor, "admin-token:adm_0000000000000003");
    assert_int_equal(who.read_only, 1);
    assert_string_equal(who.tenant, "acme");
}

static void test_unknown(void **state)
{
    fixture_t *f = *state;
    tg_admin_principal_t who;
    assert_int_equal(check(f, 0x00, WALL, &who), TG_ADMIN_TOKEN_UNKNOWN);
    assert_int_equal(check(f, 0x55, WALL, &who), TG_ADMIN_TOKEN_UNKNOWN);
    /* One bit off in the last byte: every byte is compared, not a prefix. */
    unsigned char d[32];
    memset(d, 0x11, sizeof d);
    d[31] ^= 1;
    assert_int_equal(tg_admin_tokens_check(f->t, d, WALL, &who), TG_ADMIN_TOKEN_UNKNOWN);
    d[31] ^= 1;
    d[0] ^= 0x80;
    assert_int_equal(tg_admin_tokens_check(f->t, d, WALL, &who), TG_ADMIN_TOKEN_UNKNOWN);
}

/* expires_us is the first instant the token is refused. */
static void test_expiry_at_fixed_instant(void **state)
{
    fixture_t *f = *state;
    tg_admin_principal_t who;
    assert_int_equal(check(f, 0x22, WALL - 1, &who), TG_ADMIN_TOKEN_OK);
    assert_int_equal(who.read_only, 1);
    assert_int_equal(check(f, 0x22, WALL, &who), TG_ADMIN_TOKEN_EXPIRED);
    assert_int_equal((unsigned char)who.actor[0], 0x5a); /* nothing filled */
    assert_int_equal(check(f, 0x22, WALL + 86400 * SEC, &who), TG_ADMIN_TOKEN_EXPIRED);
    /* No expiry: valid at any instant. */
    assert_int_equal(check(f, 0x11, INT64_MAX, &who), TG_ADMIN_TOKEN_OK);
}

static void test_revoked(void **state)
{
    fixture_t *f = *state;
    tg_admin_principal_t who;
    /* Revoked, though its expiry is still ahead. */
    assert_int_equal(check(f, 0x44, WALL, &who), TG_ADMIN_TOKEN_REVOKED);
    assert_int_equal((unsigned char)who.actor[0], 0x5a);
    /* A revocation counts from the next load. */
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_admin_token_revoke(f->s, "adm_0000000000000001", WALL, &err), 0);
    assert_int_equal(check(f, 0x11, WALL, &who), TG_ADMIN_TOKEN_OK);
    assert_int_equal(tg_admin_tokens_load(f->t, f->s, &err), 0);
    assert_int_equal(check(f, 0x11, WALL, &who), TG_ADMIN_TOKEN_REVOKED);
}

typedef struct used {
    const char *id;
    int64_t last_used_us;
} used_t;

static int find_used(const tg_admin_token_row_t *r, void *ud)
{
    used_t *u = ud;
    if (strcmp(r->id, u->id) == 0) u->last_used_us = r->last_used_us;
    return 0;
}

static int64_t last_used(fixture_t *f, const char *id)
{
    used_t u = {id, -1};
    tg_err_t err = {{0}};
    assert_int_equal(tg_store_admin_token_list(f->s, find_used, &u, &err), 0);
    return u.last_used_us;
}

static void test_last_use_written_once_a_second(void **state)
{
    fixture_t *f = *state;
    tg_admin_principal_t who;
    tg_err_t err = {{0}};
    assert_int_equal(last_used(f, "adm_0000000000000003"), 0);
    assert_int_equal(check(f, 0x33, WALL, &who), TG_ADMIN_TOKEN_OK);
    assert_int_equal(tg_admin_tokens_flush(f->t, f->s, &err), 0);
    assert_int_equal(last_used(f, "adm_0000000000000003"), WALL);
    assert_int_equal(check(f, 0x33, WALL + SEC / 2, &who), TG_ADMIN_TOKEN_OK);
    assert_int_equal(tg_admin_tokens_flush(f->t, f->s, &err), 0);
    assert_int_equal(last_used(f, "adm_0000000000000003"), WALL);
    assert_int_equal(check(f, 0x33, WALL + SEC, &who), TG_ADMIN_TOKEN_OK);
    assert_int_equal(tg_admin_tokens_flush(f->t, f->s, &err), 0);
    assert_int_equal(last_used(f, "adm_0000000000000003"), WALL + SEC);
    /* A refused check is no use. */
    assert_int_equal(check(f, 0x22, WALL + 5 * SEC, &who), TG_ADMIN_TOKEN_EXPIRED);
    assert_int_equal(tg_admin_tokens_flush(f->t, f->s, &err), 0);
    assert_int_equal(last_used(f, "adm_0000000000000002"), 0);
}

/* An empty snapshot (no tokens, or before the first load) knows nobody. */
static void test_empty(void **state)
{
    (void)state;
    tg_admin_tokens_t *t = tg_admin_tokens_new();
    assert_non_null(t);
    unsigned char d[32] = {0};
    tg_admin_principal_t who;
    assert_int_equal(tg_admin_tokens_check(t, d, WALL, &who), TG_ADMIN_TOKEN_UNKNOWN);
    tg_admin_tokens_free(t);
    tg_admin_tokens_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roles_and_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_at_fixed_instant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_use_written_once_a_second, setup, teardown),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
