/* Tests src/ingest/ingest.c, the driver, against a real store: generated logs with known
 * totals (plain and gzip), keys matched to tenants and unknown keys bucketed, a month
 * boundary, malformed lines reported with file and line, and a second ingestion of the
 * same and of overlapping files counting nothing twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "auth/apikey.h"
#include "ingest/ingest.h"
#include "store/store.h"

#define FIELDS                                                                                     \
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem "             \
    "sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type "             \
    "x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for "             \
    "ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status "          \
    "fle-encrypted-fields\n"

typedef struct fixture {
    char dir[64];
    char db[128];
    tg_store_t *s;
    char bad[8][160]; /* malformed lines reported: "file:line: why" */
    int nbad;
} fixture_t;

static void add_key(tg_store_t *s, const char *tenant, const char *id, const char *secret)
{
    tg_err_t err;
    tg_key_t k;
    memset(&k, 0, sizeof k);
    snprintf(k.id, sizeof k.id, "%s", id);
    snprintf(k.tenant_id, sizeof k.tenant_id, "%s", tenant);
    snprintf(k.prefix, sizeof k.prefix, "%.8s", secret);
    snprintf(k.status, sizeof k.status, "active");
    k.created_us = 1;
    tg_apikey_hash(secret, strlen(secret), k.sha256);
    assert_int_equal(tg_store_key_add(s, &k, &err), 0);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tg_test_ingest_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->db, sizeof f->db, "%s/t.db", f->dir);
    char url[160];
    snprintf(url, sizeof url, "sqlite:%s", f->db);
    tg_err_t err;
    if (tg_store_open(url, &f->s, &err) != 0) return -1;
    if (tg_store_tenant_add(f->s, "acme", "", &err) ||
        tg_store_tenant_add(f->s, "globex", "", &err))
        return -1;
    add_key(f->s, "acme", "key_acme", "tg_acme+secret/1");
    add_key(f->s, "globex", "key_globex", "legacy-key-globex");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tg_store_close(f->s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int64_t q(const fixture_t *f, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void on_bad(void *ud, const char *file, uint64_t line, const char *why)
{
    fixture_t *f = ud;
    const char *base = strrchr(file, '/');
    if (f->nbad < 8)
        snprintf(f->bad[f->nbad], sizeof f->bad[0], "%s:%llu: %s", base ? base + 1 : file,
                 (unsigned long long)line, why);
    f->nbad++;
}

static tg_ingest_stats_t run(fixture_t *f, tg_ingest_format_t fmt, const char **files, int n)
{
    tg_ingest_opts_t o = {.format = fmt, .malformed = on_bad, .ud = f};
    tg_ingest_t *in;
    tg_err_t err;
    assert_int_equal(tg_ingest_new(f->s, NULL, &o, &in, &err), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(tg_ingest_file(in, files[i], &err), 0);
    assert_int_equal(tg_ingest_flush(in, &err), 0);
    tg_ingest_stats_t st = *tg_ingest_stats(in);
    tg_ingest_free(in);
    return st;
}

/* run() for clf files with the tenant in %u. */
static tg_ingest_stats_t run_user(fixture_t *f, const char **files)
{
    tg_ingest_opts_t o = {
        .format = TG_INGEST_CLF, .tenant_field = "user", .malformed = on_bad, .ud = f};
    tg_ingest_t *in;
    tg_err_t err;
    assert_int_equal(tg_ingest_new(f->s, NULL, &o, &in, &err), 0);
    assert_int_equal(tg_ingest_file(in, files[0], &err), 0);
    assert_int_equal(tg_ingest_flush(in, &err), 0);
    tg_ingest_stats_t st = *tg_ingest_stats(in);
    tg_ingest_free(in);
    return st;
}

/* CloudFront records i = from..to-1: the ones with i % 3 == 0 for acme (key encoded twice,
 * as CloudFront logs it), 1 for globex, 2 an unknown key; status 200 but every 10th 503;
 * 100 + i bytes out, 10 bytes in; the first half on 2026-11-30 23:59:xx, the rest on
 * 2026-12-01 00:00:xx (a month boundary). */
static void write_cf(const char *path, int from, int to, int gz, int total)
{
    char buf[1024];
    gzFile g = gz ? gzopen(path, "wb") : NULL;
    FILE *fp = gz ? NULL : fopen(path, "w");
    const char *keys[3] = {"tg_acme%252Bsecret%252F1", "legacy-key-globex", "sk_unknown_ZZZ9"};
    for (int i = from; i <= to; i++) {
        int len;
        if (i == from)
            len = snprintf(buf, sizeof buf, "#Version: 1.0\n" FIELDS);
        else {
            int j = i - 1, late = j >= total / 2;
            len = snprintf(buf, sizeof buf,
                           "2026-%s\t%s:%02d\tFRA56\t%d\t192.0.2.%d\tGET\td1.cloudfront.net\t/v1/"
                           "x\t%d\t-\tUA\tcf_api_key=%s\t-\tMiss\tRID-%05d\tapi.example.com\t"
                           "https\t10\t0.010\t-\t-\t-\tMiss\tHTTP/1.1\t-\t-\n",
                           late ? "12-01" : "11-30", late ? "00:00" : "23:59", j % 60, 100 + j,
                           j % 250, j % 10 == 0 ? 503 : 200, keys[j % 3], j);
        }
        if (g)
            gzwrite(g, buf, (unsigned)len);
        else
            fwrite(buf, 1, (size_t)len, fp);
    }
    if (g) gzclose(g);
    if (fp) fclose(fp);
}

static void test_generated_totals_twice(void **state)
{
    fixture_t *f = *state;
    enum { N = 300 };
    char a[160], b[160], c[160];
    snprintf(a, sizeof a, "%s/a.log", f->dir);
    snprintf(b, sizeof b, "%s/b.log.gz", f->dir);
    snprintf(c, sizeof c, "%s/overlap.log", f->dir);
    write_cf(a, 0, N / 2, 0, N);          /* records 0..149 */
    write_cf(b, N / 2, N, 1, N);          /* records 150..299, gzip */
    write_cf(c, N / 3, N / 2 + 50, 0, N); /* an overlap of both */
    const char *files[] = {a, b};
    tg_ingest_stats_t st = run(f, TG_INGEST_CLOUDFRONT, files, 2);
    assert_int_equal(st.files, 2);
    assert_int_equal(st.records, N);
    assert_int_equal(st.stored, N);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(st.malformed, 0);
    assert_int_equal(st.unknown, N / 3);

    /* acme: j % 3 == 0 -> 100 records, of which j % 10 == 0 (j % 30 == 0): 10 failed */
    assert_int_equal(q(f, "SELECT sum(requests) FROM usage_daily WHERE tenant_id = 'acme'"), 100);
    assert_int_equal(q(f, "SELECT sum(billable) FROM usage_daily WHERE tenant_id = 'acme'"), 90);
    assert_int_equal(q(f, "SELECT sum(failed) FROM usage_daily WHERE tenant_id = 'acme'"), 10);
    /* bytes out: sum over j % 3 == 0 of 100 + j = 100*100 + 3*(0+...+99) */
    assert_int_equal(q(f, "SELECT sum(bytes_out) FROM usage_daily WHERE tenant_id = 'acme'"),
                     100 * 100 + 3 * 4950);
    /* the month boundary: 50 of acme's records on each side */
    assert_int_equal(q(f, "SELECT requests FROM usage_daily WHERE tenant_id = 'acme' AND day = "
                          "'2026-11-30'"),
                     50);
    assert_int_equal(q(f, "SELECT requests FROM usage_daily WHERE tenant_id = 'acme' AND day = "
                          "'2026-12-01'"),
                     50);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE tenant = 'globex' AND key_id = "
                          "'key_globex' AND source = 'cloudfront'"),
                     100);
    /* the unknown key: its hash and prefix (7 of its 15 characters), never the secret */
    assert_int_equal(q(f, "SELECT records FROM ingest_unknown_keys WHERE prefix = 'sk_unkn'"), 100);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE tenant = '' AND reason = "
                          "'unknown_key' AND key_id LIKE 'unk_%'"),
                     100);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE path LIKE '%sk_unknown%' OR "
                          "key_id LIKE '%sk_unknown%' OR request_id LIKE '%sk_unknown%'"),
                     0);

    /* again, and an overlapping file: nothing counted twice */
    const char *again[] = {a, b, c};
    st = run(f, TG_INGEST_CLOUDFRONT, again, 3);
    assert_int_equal(st.stored, 0);
    assert_int_equal(st.duplicates, st.records);
    assert_int_equal(q(f, "SELECT sum(requests) FROM usage_daily"), N);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events"), N);
    assert_int_equal(q(f, "SELECT records FROM ingest_unknown_keys"), 100);
}

/* Malformed lines are reported with their file and line and skipped; the rest is stored. */
/* CLF has no request id and a time to the second: a client polling one URL logs the same
 * line several times in a second. Those are distinct requests; the bytes alone as identity
 * collapsed them into one billed record. Ingesting the file again still adds nothing. */
/* The log names one tenant and carries another tenant's key: billed to neither (tenant '',
 * reason tenant_mismatch, the key's id kept), counted; a line whose tenant holds its key is
 * billed as usual. */
static void test_tenant_key_mismatch(void **state)
{
    fixture_t *f = *state;
    char p[160];
    snprintf(p, sizeof p, "%s/mismatch.log", f->dir);
    FILE *fp = fopen(p, "w");
    fputs("192.0.2.9 - globex [30/Nov/2026:23:59:58 +0000] \"GET /v1/mm?api_key=tg_acme%2Bsecret/1 "
          "HTTP/1.1\" 200 7\n"
          "192.0.2.9 - acme [30/Nov/2026:23:59:59 +0000] \"GET /v1/ok?api_key=tg_acme%2Bsecret/1 "
          "HTTP/1.1\" 200 7\n",
          fp);
    fclose(fp);
    const char *files[] = {p};
    tg_ingest_stats_t st = run_user(f, files);
    assert_int_equal(st.stored, 2);
    assert_int_equal(st.mismatched, 1);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE path = '/v1/mm' AND tenant = '' "
                          "AND key_id = 'key_acme' AND reason = 'tenant_mismatch'"),
                     1);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE path = '/v1/ok' AND tenant = "
                          "'acme' AND key_id = 'key_acme' AND coalesce(reason, '') = ''"),
                     1);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE tenant = 'globex'"), 0);
}

static void test_identical_lines_are_distinct(void **state)
{
    fixture_t *f = *state;
    char p[160];
    snprintf(p, sizeof p, "%s/same.log", f->dir);
    FILE *fp = fopen(p, "w");
    for (int i = 0; i < 5; i++) {
        fputs("192.0.2.9 - acme [30/Nov/2026:23:59:59 +0000] \"GET /v1/poll HTTP/1.1\" 200 7\n",
              fp);
        if (i == 2)
            fputs("192.0.2.8 - acme [30/Nov/2026:23:59:59 +0000] \"GET / HTTP/1.1\" 200 1\n", fp);
    }
    fclose(fp);
    const char *files[] = {p};
    tg_ingest_opts_t o = {.format = TG_INGEST_CLF, .tenant_field = "user"};
    for (int round = 0; round < 2; round++) {
        tg_ingest_t *in;
        tg_err_t err;
        assert_int_equal(tg_ingest_new(f->s, NULL, &o, &in, &err), 0);
        assert_int_equal(tg_ingest_file(in, files[0], &err), 0);
        assert_int_equal(tg_ingest_flush(in, &err), 0);
        assert_int_equal(tg_ingest_stats(in)->stored, round ? 0 : 6);
        assert_int_equal(tg_ingest_stats(in)->duplicates, round ? 6 : 0);
        tg_ingest_free(in);
    }
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE path = '/v1/poll'"), 5);
}

/* A .gz cut short (a copy interrupted, an upload that failed) is an error naming the file,
 * not a run that looks complete; what it held up to the cut is stored. */
static void test_truncated_gzip(void **state)
{
    fixture_t *f = *state;
    char p[160];
    snprintf(p, sizeof p, "%s/cut.log.gz", f->dir);
    write_cf(p, 0, 2000, 1, 2000);
    FILE *fp = fopen(p, "r+");
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(p, size / 2), 0);
    tg_ingest_opts_t o = {.format = TG_INGEST_CLOUDFRONT, .malformed = on_bad, .ud = f};
    tg_ingest_t *in;
    tg_err_t err;
    assert_int_equal(tg_ingest_new(f->s, NULL, &o, &in, &err), 0);
    assert_int_equal(tg_ingest_file(in, p, &err), -1);
    assert_non_null(strstr(err.msg, "cut.log.gz"));
    assert_non_null(strstr(err.msg, "truncated"));
    assert_int_equal(tg_ingest_flush(in, &err), 0);
    assert_true(tg_ingest_stats(in)->stored > 0);
    tg_ingest_free(in);
}

/* A hostile log's byte counts: ten records of 999999999999999999 bytes saturated the
 * day's usage_daily sum and made every invoice of the tenant's month fail (integer
 * overflow). A record past TG_INGEST_BYTES_MAX is malformed, with its line. */
static void test_huge_byte_counts(void **state)
{
    fixture_t *f = *state;
    char p[160];
    snprintf(p, sizeof p, "%s/huge.log", f->dir);
    FILE *fp = fopen(p, "w");
    fputs("192.0.2.9 - acme [30/Nov/2026:23:59:59 +0000] \"GET /a HTTP/1.1\" 200 "
          "999999999999999999\n",
          fp);
    fputs("192.0.2.9 - acme [30/Nov/2026:23:59:59 +0000] \"GET /b HTTP/1.1\" 200 "
          "1099511627776\n",
          fp);
    fclose(fp);
    const char *files[] = {p};
    tg_ingest_stats_t st = run_user(f, files);
    assert_int_equal(st.stored, 1);
    assert_int_equal(st.malformed, 1);
    assert_non_null(strstr(f->bad[0], "huge.log:1: "));
    assert_int_equal(q(f, "SELECT sum(bytes_out) FROM usage_events"), 1099511627776LL);
}

/* A tenant id of 64 characters or more was cut to its first 63 (the event's field): a log
 * naming "<63 chars of another tenant's id>X" billed that tenant. Malformed instead. */
static void test_long_tenant_not_cut(void **state)
{
    fixture_t *f = *state;
    char long_id[70], p[160], j[160];
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    snprintf(p, sizeof p, "%s/long.log", f->dir);
    FILE *fp = fopen(p, "w");
    fprintf(fp, "192.0.2.9 - %s [30/Nov/2026:23:59:59 +0000] \"GET /a HTTP/1.1\" 200 1\n", long_id);
    fclose(fp);
    snprintf(j, sizeof j, "%s/long.jsonl", f->dir);
    fp = fopen(j, "w");
    fprintf(fp,
            "{\"time\":\"2026-11-30T23:59:59Z\",\"tenant\":\"%s\",\"status\":200,"
            "\"outcome\":\"billable\"}\n",
            long_id);
    fclose(fp);
    const char *files[] = {p};
    tg_ingest_stats_t st = run_user(f, files);
    assert_int_equal(st.malformed, 1);
    files[0] = j;
    st = run(f, TG_INGEST_JSONL, files, 1);
    assert_int_equal(st.malformed, 1);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events"), 0);
}

static void test_malformed_lines_reported(void **state)
{
    fixture_t *f = *state;
    char p[160];
    snprintf(p, sizeof p, "%s/m.log", f->dir);
    FILE *fp = fopen(p, "w");
    fputs("127.0.0.1 - - [30/Nov/2026:23:59:59 +0000] \"GET /?api_key=tg_acme%2Bsecret/1 "
          "HTTP/1.1\" 200 5\n",
          fp);
    fputs("this is not a log line\n", fp);
    /* a line of 1.5 MiB */
    for (int i = 0; i < 3 * 512 * 1024; i++)
        fputc('x', fp);
    fputc('\n', fp);
    fputs("127.0.0.1 - - [01/Dec/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 404 -\n", fp);
    fputs("127.0.0.1 - bad!tenant [01/Dec/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 -\n", fp);
    /* the file ends inside a line of 1.5 MiB */
    for (int i = 0; i < 3 * 512 * 1024; i++)
        fputc('y', fp);
    fclose(fp);
    tg_ingest_opts_t o = {
        .format = TG_INGEST_CLF, .tenant_field = "user", .malformed = on_bad, .ud = f};
    tg_ingest_t *in;
    tg_err_t err;
    assert_int_equal(tg_ingest_new(f->s, NULL, &o, &in, &err), 0);
    assert_int_equal(tg_ingest_file(in, p, &err), 0);
    assert_int_equal(tg_ingest_flush(in, &err), 0);
    const tg_ingest_stats_t *st = tg_ingest_stats(in);
    assert_int_equal(st->lines, 6);
    assert_int_equal(st->records, 2);
    assert_int_equal(st->malformed, 4);
    tg_ingest_free(in);
    assert_int_equal(f->nbad, 4);
    assert_non_null(strstr(f->bad[3], "m.log:6: line longer than 1 MiB"));
    assert_non_null(strstr(f->bad[0], "m.log:2: "));
    assert_non_null(strstr(f->bad[1], "m.log:3: line longer than 1 MiB"));
    assert_non_null(strstr(f->bad[2], "m.log:5: tenant \"bad!tenant\""));
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE tenant = 'acme' AND source = "
                          "'clf' AND outcome = 'billable'"),
                     1);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events WHERE tenant = '' AND status = 404 "
                          "AND outcome = 'failed' AND reason = 'no_key' AND request_id LIKE "
                          "'ingest-%'"),
                     1);
}

/* The store refuses a batch (another connection holds the write lock): the file stops
 * with TG_INGEST_STORE_FAILED, nothing is lost or overrun, and the same file again, once
 * the store is writable, completes the run counting each record once. */
static void test_store_refuses_a_batch(void **state)
{
    fixture_t *f = *state;
    enum { N = 9000 }; /* more than a batch (8192) */
    char a[160];
    snprintf(a, sizeof a, "%s/big.log", f->dir);
    write_cf(a, 0, N, 0, N);
    tg_err_t err;
    assert_int_equal(tg_store_set_busy_timeout(f->s, 20, &err), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    tg_ingest_opts_t o = {.format = TG_INGEST_CLOUDFRONT};
    tg_ingest_t *in;
    assert_int_equal(tg_ingest_new(f->s, NULL, &o, &in, &err), 0);
    assert_int_equal(tg_ingest_file(in, a, &err), TG_INGEST_STORE_FAILED);
    assert_int_equal(tg_ingest_stats(in)->stored, 0);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(tg_ingest_file(in, a, &err), 0);
    assert_int_equal(tg_ingest_flush(in, &err), 0);
    assert_int_equal(tg_ingest_stats(in)->stored, N);
    assert_int_equal(tg_ingest_stats(in)->duplicates, 8192);
    tg_ingest_free(in);
    assert_int_equal(q(f, "SELECT sum(requests) FROM usage_daily"), N);
}

/* Parse only (no store): records counted, nothing written. */
static void test_parse_only(void **state)
{
    fixture_t *f = *state;
    char a[160];
    snprintf(a, sizeof a, "%s/p.log", f->dir);
    write_cf(a, 0, 30, 0, 30);
    tg_ingest_opts_t o = {.format = TG_INGEST_CLOUDFRONT};
    tg_ingest_t *in;
    tg_err_t err;
    assert_int_equal(tg_ingest_new(NULL, NULL, &o, &in, &err), 0);
    assert_int_equal(tg_ingest_file(in, a, &err), 0);
    assert_int_equal(tg_ingest_stats(in)->records, 30);
    assert_int_equal(tg_ingest_stats(in)->stored, 0);
    char missing[200];
    snprintf(missing, sizeof missing, "%s/none.log", f->dir);
    assert_int_equal(tg_ingest_file(in, missing, &err), -1);
    assert_non_null(strstr(err.msg, "none.log"));
    tg_ingest_free(in);
    assert_int_equal(q(f, "SELECT count(*) FROM usage_events"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generated_totals_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_key_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identical_lines_are_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_byte_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_tenant_not_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_lines_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_refuses_a_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_only, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
