/* Tests for src/archive/archive.c: the round trip (events before a day exported, read
 * back with the same count and id checksum, purged; the daily aggregates and the newer
 * events kept), and that a failure at any step before the purge purges nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sys/stat.h>
#include <zstd.h>

#include "archive/archive.h"
#include "crypt/kek_fixture.h"
#include "store/sql_fixture.h"

static int64_t count(tg_store_t *s, const char *sql)
{
    fx_rows_t r;
    tg_sql_sink_t sink = fx_sink(&r);
    tg_err_t err;
    if (tg_store_query(s, sql, NULL, 0, &sink, &err) != 0) fail_msg("%s: %s", sql, err.msg);
    return strtoll(r.row[0], NULL, 10);
}

/* The whole file decompressed, malloc'd. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char in[1 << 16];
    size_t got = fread(in, 1, sizeof in, f);
    fclose(f);
    unsigned long long size = ZSTD_getFrameContentSize(in, got);
    size_t cap =
        size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR ? 1 << 20 : size;
    char *out = malloc(cap + 1);
    ZSTD_DCtx *z = ZSTD_createDCtx();
    ZSTD_inBuffer ib = {in, got, 0};
    ZSTD_outBuffer ob = {out, cap, 0};
    size_t rc = ZSTD_decompressStream(z, &ob, &ib);
    ZSTD_freeDCtx(z);
    assert_int_equal(rc, 0);
    out[ob.pos] = '\0';
    *n = ob.pos;
    return out;
}

static void test_round_trip(void **state)
{
    fx_t *f = *state;
    char out[160];
    snprintf(out, sizeof out, "%s/old.jsonl.zst", f->dir);
    tg_archive_stats_t st;
    tg_err_t err;
    /* Before 2026-12-01: events 1, 2 and 3 (the last at 23:59:59.999999). */
    if (tg_archive_run(f->s, FX_DEC01, out, NULL, &st, &err) != 0) fail_msg("archive: %s", err.msg);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.deleted, 3);
    assert_true(st.bytes > 0);
    assert_int_equal(count(f->s, "SELECT count(*) FROM events"), 3);
    assert_int_equal(count(f->s, "SELECT min(ts_us) FROM events"), FX_DEC01);
    /* The daily aggregates stay: the archived day still reports. */
    assert_int_equal(count(f->s, "SELECT requests FROM daily WHERE day = '2026-11-30'"), 3);

    int64_t n;
    char sha[65];
    int64_t *ids = NULL;
    size_t nids = 0;
    assert_int_equal(tg_archive_read(out, NULL, NULL, &n, sha, &ids, &nids, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(nids, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[2], 3);
    free(ids);
    assert_string_equal(sha, st.sha256);

    /* Every column, by name, with its value: event 3's line. */
    size_t len;
    char *text = slurp(out, &len);
    char *third = strchr(strchr(text, '\n') + 1, '\n') + 1;
    json_error_t je;
    json_t *o = json_loadb(third, strcspn(third, "\n"), 0, &je);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "ts_us")), FX_DEC01 - 1);
    assert_string_equal(json_string_value(json_object_get(o, "cache")), "RefreshHit");
    assert_string_equal(json_string_value(json_object_get(o, "path")), "/v1/models");
    assert_true(json_is_null(json_object_get(o, "tokens_in")));
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_out")), 2400);
    json_decref(o);
    free(text);

    /* Never overwritten: a second run to the same file is refused, nothing purged. */
    assert_int_equal(tg_archive_run(f->s, FX_DEC01 + 86400000000LL, out, NULL, &st, &err), -1);
    assert_non_null(strstr(err.msg, "already exists"));
    assert_int_equal(count(f->s, "SELECT count(*) FROM events"), 3);
}

static void test_failure_purges_nothing(void **state)
{
    fx_t *f = *state;
    tg_archive_stats_t st;
    tg_err_t err;
    char out[200];
    snprintf(out, sizeof out, "%s/no/such/dir/x.jsonl.zst", f->dir);
    assert_int_equal(tg_archive_run(f->s, FX_DEC01, out, NULL, &st, &err), -1);
    assert_int_equal(st.deleted, 0);
    assert_int_equal(count(f->s, "SELECT count(*) FROM events"), 6);
    /* No partial file is left where the archive would be. */
    snprintf(out, sizeof out, "%s/x.jsonl.zst", f->dir);
    char partial[220];
    snprintf(partial, sizeof partial, "%s.partial", out);
    FILE *fp = fopen(partial, "w"); /* a crashed run's leftover: refused, not reused */
    fclose(fp);
    assert_int_equal(tg_archive_run(f->s, FX_DEC01, out, NULL, &st, &err), -1);
    assert_int_equal(count(f->s, "SELECT count(*) FROM events"), 6);
    struct stat sb;
    assert_int_not_equal(stat(out, &sb), 0);
    assert_int_equal(stat(partial, &sb), 0); /* not ours to remove */
}

static void test_read_rejects_damage(void **state)
{
    fx_t *f = *state;
    char out[160], cut[170];
    snprintf(out, sizeof out, "%s/a.jsonl.zst", f->dir);
    tg_archive_stats_t st;
    tg_err_t err;
    assert_int_equal(tg_archive_run(f->s, FX_DEC01 + 86400000000LL, out, NULL, &st, &err), 0);
    assert_int_equal(st.events, 6);
    /* The file cut short: the frame is incomplete. */
    snprintf(cut, sizeof cut, "%s.cut", out);
    FILE *in = fopen(out, "rb"), *o = fopen(cut, "wb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n - 5, o);
    fclose(in);
    fclose(o);
    int64_t cnt;
    char sha[65];
    assert_int_equal(tg_archive_read(cut, NULL, NULL, &cnt, sha, NULL, NULL, &err), -1);
    /* A line that is not an event. */
    size_t len = 0;
    void *z = NULL;
    const char bad[] = "{\"id\":1}\n{\"no_id\":2}\n";
    len = ZSTD_compressBound(sizeof bad);
    z = malloc(len);
    len = ZSTD_compress(z, len, bad, sizeof bad - 1, 3);
    o = fopen(cut, "wb");
    fwrite(z, 1, len, o);
    fclose(o);
    free(z);
    assert_int_equal(tg_archive_read(cut, NULL, NULL, &cnt, sha, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "event 2: not an archived event (no integer id)"));
}

/* A path that is not UTF-8 is archived with '?' for its bad byte, not refused. */
static void test_not_utf8(void **state)
{
    fx_t *f = *state;
    tg_event_t e = fx_event(0);
    e.id = 100;
    snprintf(e.path, sizeof e.path,
             "/a\xff\x01"
             "b");
    size_t n = 0;
    tg_err_t err;
    assert_int_equal(tg_store_append(f->s, &e, 1, &n, &err), 0);
    char out[160];
    snprintf(out, sizeof out, "%s/u.jsonl.zst", f->dir);
    tg_archive_stats_t st;
    if (tg_archive_run(f->s, FX_DEC01, out, NULL, &st, &err) != 0) fail_msg("archive: %s", err.msg);
    assert_int_equal(st.events, 4);
    size_t len;
    char *text = slurp(out, &len);
    assert_non_null(strstr(text, "\"path\":\"/a?\\u0001b\""));
    free(text);
}

/* Values on their own, or an id that is not an integer, are not events. */
static void test_read_rejects_non_events(void **state)
{
    fx_t *f = *state;
    static const char *const bad[][2] = {
        {"[1]\n", "event 1: not an archived event (not a JSON object)"},
        {"{\"id\":1}\n{\"id\":\"2\"}\n", "event 2: not an archived event (its id is not"},
        {"{\"id\":1,\"id\":2}\n", "event 1: not an archived event (two ids)"},
        {"{\"id\":1}\n{\"id\":2", "event 2: not an archived event (cut short)"},
    };
    char path[160];
    snprintf(path, sizeof path, "%s/bad.zst", f->dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t cap = ZSTD_compressBound(strlen(bad[i][0]));
        void *z = malloc(cap);
        size_t zlen = ZSTD_compress(z, cap, bad[i][0], strlen(bad[i][0]), 3);
        FILE *o = fopen(path, "wb");
        fwrite(z, 1, zlen, o);
        fclose(o);
        free(z);
        int64_t cnt;
        char sha[65];
        tg_err_t err;
        assert_int_equal(tg_archive_read(path, NULL, NULL, &cnt, sha, NULL, NULL, &err), -1);
        if (!strstr(err.msg, bad[i][1])) fail_msg("case %zu: %s", i, err.msg);
    }
}

/* With a KEK the file is sealed: no event text in it, read back (and copied out as JSON
 * lines) with the KEK only; without it or with another, an error naming the KEK id. */
static void test_sealed(void **state)
{
    fx_t *f = *state;
    tg_kek_t a = fx_kek(FX_KEK_A), b = fx_kek(FX_KEK_B);
    tg_err_t err;
    char out[160], id[17];
    snprintf(out, sizeof out, "%s/sealed.jsonl.zst", f->dir);
    tg_archive_stats_t st;
    if (tg_archive_run(f->s, FX_DEC01, out, &a, &st, &err) != 0) fail_msg("archive: %s", err.msg);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.deleted, 3);

    FILE *fp = fopen(out, "rb");
    static char raw[1 << 16];
    size_t got = fread(raw, 1, sizeof raw, fp);
    fclose(fp);
    assert_memory_equal(raw, "TGSTRM", 6);
    assert_int_not_equal(ZSTD_getFrameContentSize(raw, got), 3); /* not a zstd frame */

    int64_t n;
    char sha[65], *copy = NULL;
    size_t clen = 0;
    FILE *cf = open_memstream(&copy, &clen);
    assert_int_equal(tg_archive_read(out, &a, cf, &n, sha, NULL, NULL, &err), 0);
    fclose(cf);
    assert_int_equal(n, 3);
    assert_string_equal(sha, st.sha256);
    assert_non_null(strstr(copy, "\"path\":\"/v1/models\""));
    assert_null(memmem(raw, got, "/v1/models", 10));
    free(copy);

    tg_kek_id_hex(&a, id);
    assert_int_equal(tg_archive_read(out, &b, NULL, &n, sha, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, id));
    assert_int_equal(tg_archive_read(out, NULL, NULL, &n, sha, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, id));

    /* A plain archive (before encryption was configured) still reads with a KEK. */
    snprintf(out, sizeof out, "%s/plain.jsonl.zst", f->dir);
    if (tg_archive_run(f->s, FX_DEC01 + 86400000000LL, out, NULL, &st, &err) != 0)
        fail_msg("archive: %s", err.msg);
    assert_int_equal(tg_archive_read(out, &a, NULL, &n, sha, NULL, NULL, &err), 0);
    assert_int_equal(n, st.events);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failure_purges_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_rejects_damage, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_not_utf8, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_rejects_non_events, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sealed, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
