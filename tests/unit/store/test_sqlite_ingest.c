/* Tests for the ingest side of src/store/sqlite_events.c and pg_events.c (tg_store_ingest)
 * and for usage_events.source (migration 7), each against a fresh SQLite file and a fresh
 * PostgreSQL schema (backends.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends.h"
#include "store/store.h"
#include "types/event.h"

#define DAY_US 86400000000LL
/* 2026-11-30T23:59:59Z and the next second, 2026-12-01T00:00:00Z: a month boundary. */
#define T_NOV 1796083199000000LL
#define T_DEC 1796083200000000LL

typedef tb_store_t fixture_t;

static int64_t raw_int(const fixture_t *f, const char *sql)
{
    return tb_int(f, sql);
}

static tg_ingest_item_t item(int64_t id, int64_t ts, const char *tenant, unsigned char tag)
{
    tg_ingest_item_t it;
    memset(&it, 0, sizeof it);
    it.ev.id = id;
    it.ev.ts_us = ts;
    it.ev.status = 200;
    it.ev.outcome = TG_OUTCOME_BILLABLE;
    it.ev.bytes_out = 1000;
    it.ev.tokens_in = it.ev.tokens_out = it.ev.tokens_cached = TG_TOKENS_UNKNOWN;
    it.ev.tokens_cache_write = TG_TOKENS_UNKNOWN;
    snprintf(it.ev.tenant, sizeof it.ev.tenant, "%s", tenant);
    snprintf(it.ev.method, sizeof it.ev.method, "GET");
    snprintf(it.ev.path, sizeof it.ev.path, "/x");
    snprintf(it.ev.source, sizeof it.ev.source, "cloudfront");
    snprintf(it.ev.request_id, sizeof it.ev.request_id, "r%u", tag);
    memset(it.digest, tag, sizeof it.digest);
    return it;
}

/* A gateway event ("" source) is stored as 'gateway', an ingested one by its source. */
static void test_source_column(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_ingest_item_t a = item(1, T_NOV, "acme", 1), b = item(2, T_NOV, "acme", 2);
    b.ev.source[0] = '\0';
    tg_event_t evs[2] = {a.ev, b.ev};
    size_t ins = 0;
    assert_int_equal(tg_store_append(f->s, evs, 2, &ins, &err), 0);
    assert_int_equal(ins, 2);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM usage_events WHERE id = 1 AND "
                                "source = 'cloudfront'"),
                     1);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM usage_events WHERE id = 2 AND "
                                "source = 'gateway'"),
                     1);
}

/* The same records again (and inside one batch) count once; usage_daily follows. */
static void test_ingest_twice_counts_once(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_ingest_item_t it[4] = {item(10, T_NOV, "acme", 1), item(11, T_DEC, "acme", 2),
                              item(12, T_DEC, "acme", 3), item(13, T_DEC, "acme", 3)};
    size_t ins = 0, dup = 0;
    assert_int_equal(tg_store_ingest(f->s, it, 4, &ins, &dup, &err), 0);
    assert_int_equal(ins, 3);
    assert_int_equal(dup, 1);
    /* a second ingestion: new event ids (a new run draws new ones), same digests */
    for (int i = 0; i < 4; i++)
        it[i].ev.id += 100;
    assert_int_equal(tg_store_ingest(f->s, it, 4, &ins, &dup, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(dup, 4);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM usage_events"), 3);
    assert_int_equal(raw_int(f, "SELECT billable FROM usage_daily WHERE tenant_id = 'acme' "
                                "AND day = '2026-11-30'"),
                     1);
    assert_int_equal(raw_int(f, "SELECT billable FROM usage_daily WHERE tenant_id = 'acme' "
                                "AND day = '2026-12-01'"),
                     2);
    assert_int_equal(raw_int(f, "SELECT sum(bytes_out) FROM usage_daily"), 3000);
}

/* Distinct records with the same event id and time are both kept: identity is the digest. */
static void test_ingest_same_id_distinct_records(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_ingest_item_t it[2] = {item(20, T_DEC, "acme", 7), item(20, T_DEC, "acme", 8)};
    size_t ins = 0, dup = 0;
    assert_int_equal(tg_store_ingest(f->s, it, 2, &ins, &dup, &err), 0);
    assert_int_equal(ins, 2);
    assert_int_equal(dup, 0);
    assert_int_equal(raw_int(f, "SELECT requests FROM usage_daily"), 2);
}

/* Batches past one multi-row statement (32 digests): repeats inside a chunk, across
 * chunks and in the one-by-one tail are each counted once, the others all kept. */
static void test_ingest_large_batch_repeats(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    enum { N = 100 };
    tg_ingest_item_t *it = calloc(N, sizeof *it);
    for (int i = 0; i < N; i++) {
        /* tags 0..69 once, then 70..99 repeat tags 0, 3, ... (in chunk 0 and later) */
        int tag = i < 70 ? i : (i - 70) * 3 % 70;
        it[i] = item(1000 + i, T_DEC + tag, "acme", (unsigned char)tag);
    }
    it[5] = it[4]; /* a repeat inside the first chunk, next to its original */
    it[5].ev.id = 2000;
    size_t ins = 0, dup = 0;
    assert_int_equal(tg_store_ingest(f->s, it, N, &ins, &dup, &err), 0);
    /* tags 0..69, each once: 5, replaced by a repeat of 4, comes back in the tail (i 95) */
    assert_int_equal(ins, 70);
    assert_int_equal(dup, N - 70);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM ingest_seen"), 70);
    assert_int_equal(raw_int(f, "SELECT requests FROM usage_daily"), 70);
    assert_int_equal(tg_store_ingest(f->s, it, N, &ins, &dup, &err), 0);
    assert_int_equal(ins, 0);
    assert_int_equal(dup, N);
    free(it);
}

/* A new run draws new event ids for the same records. */
static void renumber(tg_ingest_item_t *it, size_t n)
{
    for (size_t i = 0; i < n; i++)
        it[i].ev.id += 1000;
}

/* Overlapping runs: a 32-record chunk seen whole before, one all new, and one mixing old
 * and new records (decided again row by row, as are the batches after it) each count only
 * their new records. */
static void test_ingest_overlap_chunks(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    enum { N = 176 };
    tg_ingest_item_t *it = calloc(N, sizeof *it);
    for (int i = 0; i < N; i++)
        it[i] = item(5000 + i, T_DEC + i, "acme", (unsigned char)i);
    size_t ins = 0, dup = 0;
    assert_int_equal(tg_store_ingest(f->s, it, 32, &ins, &dup, &err), 0);
    assert_int_equal(ins, 32);
    /* only ingest_seen can tell a record already stored */
    renumber(it, N);
    /* 0..95: chunk 0 all seen, chunks 1 and 2 all new */
    assert_int_equal(tg_store_ingest(f->s, it, 96, &ins, &dup, &err), 0);
    assert_int_equal(ins, 64);
    assert_int_equal(dup, 32);
    renumber(it, N);
    /* 80..143: chunk 80..111 mixes 16 seen and 16 new; 112..143 all new */
    assert_int_equal(tg_store_ingest(f->s, it + 80, 64, &ins, &dup, &err), 0);
    assert_int_equal(ins, 48);
    assert_int_equal(dup, 16);
    renumber(it, N);
    /* after a mixed batch the next ones are marked row by row at once: 128..175 */
    assert_int_equal(tg_store_ingest(f->s, it + 128, 48, &ins, &dup, &err), 0);
    assert_int_equal(ins, 32);
    assert_int_equal(dup, 16);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM ingest_seen"), N);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM usage_events"), N);
    assert_int_equal(raw_int(f, "SELECT requests FROM usage_daily"), N);
    free(it);
}

/* An unknown key is kept as its hash and prefix, counted per record stored. */
static void test_ingest_unknown_key_bucket(void **state)
{
    fixture_t *f = *state;
    tg_err_t err;
    tg_ingest_item_t it[2] = {item(30, T_NOV, "", 1), item(31, T_DEC, "", 2)};
    for (int i = 0; i < 2; i++) {
        memset(it[i].key_sha256, 0xab, 32);
        snprintf(it[i].key_prefix, sizeof it[i].key_prefix, "sk_live_");
    }
    size_t ins = 0, dup = 0;
    assert_int_equal(tg_store_ingest(f->s, it, 2, &ins, &dup, &err), 0);
    assert_int_equal(tg_store_ingest(f->s, it, 2, &ins, &dup, &err), 0);
    assert_int_equal(raw_int(f, "SELECT records FROM ingest_unknown_keys WHERE prefix = "
                                "'sk_live_' AND source = 'cloudfront'"),
                     2);
    assert_int_equal(raw_int(f, "SELECT last_us - first_us FROM ingest_unknown_keys"),
                     T_DEC - T_NOV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_source_column),
        TB_BOTH(test_ingest_twice_counts_once),
        TB_BOTH(test_ingest_same_id_distinct_records),
        TB_BOTH(test_ingest_large_batch_repeats),
        TB_BOTH(test_ingest_overlap_chunks),
        TB_BOTH(test_ingest_unknown_key_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
