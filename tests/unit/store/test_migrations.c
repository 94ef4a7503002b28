/* Tests for src/store/migrations.c: a released migration never changes. The SQLite texts
 * are frozen here by their SHA-256 (computed from the texts as released, before the
 * PostgreSQL dialect was added next to them), so moving them around the dialect macros of
 * migrations_text.h cannot change a byte unnoticed. A new migration adds its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "store/migrations.h"

static void sha256_hex(const char *text, char hex[65])
{
    unsigned char md[32];
    unsigned len = 0;
    assert_int_equal(EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void test_sqlite_texts_frozen(void **state)
{
    (void)state;
    static const char *const frozen[] = {
        "1364a04f60988fbeeb7396fe47e455cb205e572147298bfba630fdf4308bd5b2",
        "c7786a329116d5cb02ab8b73cf3b4103e781c32533a84ba1ac949f1f84da4fe0",
        "e5497233dfcf152bc1291b120376ea7722c1b7ef7902154938ce661e93bc1b8a",
        "1563c9e49b5b7ab1c3cada96706ede67244cc0d13bc712b6f0e855118704d6d0",
        "2ba48525cfccf58c8162d93796e6d77970718452f9dea132b230f702f3474abd",
        "30255b543bebe54e9706a1b3a576f11f9f3f69e5b94a8f0d6296f3a2353a37f7",
        "2598b4e6810c9db8aad14ae7d974392bde699a2bfc5fa5ae07bc17ebd30c0d14",
        "bc82395dd6a452e82859636540673c21a58e4937c2b44a7ffc44e9ce57c74e27",
        "e3a2aee90c0d831332976ffd1a5e85d9cba5cdbabd1ff9acc0dff9483a4af35d",
        "53f5685e3b2e25ec3b790d6b99aeded928299527fa8d580ec68b0e8ebff6659a",
        "871a2426dffa904fcca8830fca8c46678edf633751b5e0012faaae53c251d58b",
        "0e2355300f4b8849e34840e4ccbc5a47ed952ff96f6524100f607ffa49678887", /* 12 */
        "7524fda2568a6167b16a7709620420570035e40c667a9cecec04cb76f0813d3e", /* 13 */
        "bf13c9152f4b4a3eadf397a6ea2180f560d6c79031a0a9771f4ae45f954b6508", /* 14 */
        "adccae0ae5a84230242d40f9887e7ab1df6deb68b631ed098f978e7c684b0dab", /* 15 */
        "58199d4feee6aa27552cf68236b842bcc18e4b032afa97f8ffec3c4914fc2994", /* 16 */
        "e8965fe4c07e49cf995a1e73a8bd2e05893421e21d1e3531796fcf8dd7caafba", /* 17 */
        "c8454ab9a8e8cd4d1d9ada7b538bf75fafae0bdc940ac1e6723c0bea96c5bcf5", /* 18 */
    };
    char hex[65];
    sha256_hex(tg_store_migrations_bootstrap, hex);
    assert_string_equal(hex, "cf95eda38f46d431de6396c8b56b032f0d4f67e1f2df22f1c3a6983766e8b1ec");
    assert_true(tg_store_nmigrations >= sizeof frozen / sizeof frozen[0]);
    for (size_t i = 0; i < sizeof frozen / sizeof frozen[0]; i++) {
        sha256_hex(tg_store_migrations[i].sql, hex);
        if (strcmp(hex, frozen[i]) != 0)
            fail_msg("migration %d (%s): its SQLite text changed", tg_store_migrations[i].version,
                     tg_store_migrations[i].name);
    }
}

/* Both dialects of every step are there, in ascending order. */
static void test_every_step_has_both(void **state)
{
    (void)state;
    assert_true(tg_store_migrations_bootstrap_pg[0] != '\0');
    for (size_t i = 0; i < tg_store_nmigrations; i++) {
        assert_true(tg_store_migrations[i].sql && tg_store_migrations[i].sql[0]);
        assert_true(tg_store_migrations[i].pg && tg_store_migrations[i].pg[0]);
        assert_null(strstr(tg_store_migrations[i].pg, "WITHOUT ROWID"));
        if (i) assert_true(tg_store_migrations[i].version > tg_store_migrations[i - 1].version);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_texts_frozen),
        cmocka_unit_test(test_every_step_has_both),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
