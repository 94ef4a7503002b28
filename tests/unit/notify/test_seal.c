/* Tests for src/notify/seal.c and the sender with a KEK (sender.c), against a fresh store of
 * each backend (store/backends.h): a notice is stored sealed (neither its tenant nor its
 * summary nor its id is in the SQLite file or the PostgreSQL rows), opens exactly as it was,
 * is sent plain; a notice of another KEK or a damaged one is never sent, says why and is
 * counted; a KEK rotated over the outbox still delivers. Fixed instants, fixed KEKs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt/kek_fixture.h"
#include "notify/seal.h"
#include "notify/sender.h"
#include "store/backends.h"

#define SEC     1000000LL
#define WALL    1796083200000000LL /* 2026-12-01T00:00:00Z */
#define TENANT  "zebracorp"
#define SUMMARY "error rate 12% over 5m for tenant zebracorp"

static int64_t now_us = WALL;
static int64_t wall(void)
{
    return now_us;
}
static uint64_t rnd(void)
{
    return 0;
}

static int sent;
static tg_notice_t last;
static void fake_send(const tg_notifier_conf_t *nc, const tg_notice_t *n, int64_t t,
                      const tg_notify_ctl_t *ctl, tg_notify_result_t *res)
{
    (void)nc, (void)t, (void)ctl;
    sent++;
    last = *n;
    memset(res, 0, sizeof *res);
    res->outcome = TG_NOTIFY_OK;
    res->http_status = 200;
}

static const char yaml[] = "notify:\n"
                           "  - { name: hook, type: webhook, url: \"http://127.0.0.1:1/h\", "
                           "secret: k }\n"
                           "notify_retry: { min: 2s, max: 20s, give_up: 1h }\n";

static tg_notice_t notice(void)
{
    tg_notice_t n;
    memset(&n, 0, sizeof n);
    snprintf(n.id, sizeof n.id, "alarm/errors/" TENANT "/12");
    snprintf(n.kind, sizeof n.kind, "alarm");
    snprintf(n.alarm, sizeof n.alarm, "errors");
    snprintf(n.alarm_kind, sizeof n.alarm_kind, "error_rate");
    snprintf(n.tenant, sizeof n.tenant, TENANT);
    snprintf(n.state, sizeof n.state, "firing");
    snprintf(n.severity, sizeof n.severity, "critical");
    n.value = 0.1234567890123;
    n.threshold = 0.05;
    n.baseline = 1.0 / 3;
    n.window_s = 300;
    n.time_us = WALL - 5 * SEC + 7;
    n.started_us = WALL - 10 * SEC + 3;
    snprintf(n.summary, sizeof n.summary, "%s", SUMMARY);
    return n;
}

/* A sender on t's store with kek (NULL: none). */
static tg_notify_t *sender(tb_store_t *t, const tg_kek_t *kek, tg_config_t **cfg)
{
    tg_err_t err;
    assert_int_equal(tg_config_parse("t.yaml", yaml, strlen(yaml), cfg, &err), 0);
    tg_notify_opts_t o = {.store_url = t->url,
                          .wall_clock = wall,
                          .mono_clock = wall,
                          .random = rnd,
                          .send = fake_send,
                          .kek = kek};
    tg_notify_t *s = tg_notify_new(&o, *cfg);
    assert_non_null(s);
    return s;
}

static int collect(const tg_notice_delivery_t *d, void *ud)
{
    *(tg_notice_delivery_t *)ud = *d;
    return 0;
}

static tg_notice_delivery_t *the_row(tb_store_t *t)
{
    static tg_notice_delivery_t d;
    tg_err_t err;
    memset(&d, 0, sizeof d);
    assert_int_equal(tg_store_outbox_list(t->s, NULL, collect, &d, &err), 0);
    return &d;
}

/* Every byte the store holds for the outbox: the SQLite file and its WAL, or the outbox
 * tables' rows as text. */
static char *stored_bytes(tb_store_t *t, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    if (!t->pg) {
        const char *suffix[] = {"", "-wal"};
        for (size_t i = 0; i < 2; i++) {
            char p[160], chunk[4096];
            snprintf(p, sizeof p, "%s%s", t->path, suffix[i]);
            FILE *f = fopen(p, "rb");
            size_t k;
            while (f && (k = fread(chunk, 1, sizeof chunk, f)) > 0)
                fwrite(chunk, 1, k, m);
            if (f) fclose(f);
        }
    } else {
        PGconn *c = PQconnectdb(t->url);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, "SELECT o::text FROM outbox o UNION ALL "
                                "SELECT d::text FROM outbox_deliveries d");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        for (int i = 0; i < PQntuples(r); i++)
            fprintf(m, "%s\n", PQgetvalue(r, i, 0));
        PQclear(r);
        PQfinish(c);
    }
    fclose(m);
    *len = n;
    return buf;
}

static void test_sealed_on_disk_sent_plain(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    tg_kek_t a = fx_kek(FX_KEK_A);
    tg_config_t *cfg;
    tg_notify_t *s = sender(t, &a, &cfg);
    tg_notice_t n = notice();
    sent = 0;
    assert_int_equal(tg_notify_enqueue(s, t->s, &n, WALL, &err), 0);
    assert_int_equal(tg_notify_enqueue(s, t->s, &n, WALL, &err), 0); /* same id: nothing more */
    tg_notice_delivery_t *d = the_row(t);
    assert_true(d->sealed[0]);
    assert_int_equal(strncmp(d->notice.id, TG_NOTICE_ROW_ID_PREFIX, 3), 0);
    assert_string_equal(d->notice.tenant, "");
    assert_string_equal(d->notice.summary, "");
    size_t len;
    char *bytes = stored_bytes(t, &len);
    assert_true(len > 0);
    assert_null(memmem(bytes, len, TENANT, strlen(TENANT)));
    assert_null(memmem(bytes, len, "error rate", 10));
    assert_null(memmem(bytes, len, "alarm/errors", 12));
    free(bytes);
    assert_int_equal(tg_notify_pass(s, t->s, &err), 1); /* one row: dedup held */
    assert_int_equal(sent, 1);
    assert_memory_equal(&last, &n, sizeof n); /* exactly as it was: reals, times, text */
    assert_string_equal(the_row(t)->status, "delivered");
    assert_int_equal(tg_notify_sealed_refused(s), 0);
    tg_notify_free(s);
    tg_config_unref(cfg);
}

/* A plain row written before encryption was turned on is still sent, and encryption off
 * stores plain as before. */
static void test_plain_rows_still_read(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    tg_config_t *c0, *c1;
    tg_notify_t *plain = sender(t, NULL, &c0);
    tg_notice_t n = notice();
    sent = 0;
    assert_int_equal(tg_notify_enqueue(plain, t->s, &n, WALL, &err), 0);
    assert_string_equal(the_row(t)->notice.tenant, TENANT);
    assert_string_equal(the_row(t)->sealed, "");
    tg_kek_t a = fx_kek(FX_KEK_A);
    tg_notify_t *s = sender(t, &a, &c1);
    assert_int_equal(tg_notify_pass(s, t->s, &err), 1);
    assert_int_equal(sent, 1);
    assert_string_equal(last.summary, SUMMARY);
    tg_notify_free(plain);
    tg_notify_free(s);
    tg_config_unref(c0);
    tg_config_unref(c1);
}

/* Sealed by KEK A, read by a sender with B or none: not sent, kept pending with an error
 * naming A's id, counted; given up only after give_up, as failed, never dropped. */
static void test_other_kek_refused(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    tg_kek_t a = fx_kek(FX_KEK_A), b = fx_kek(FX_KEK_B);
    char aid[17];
    tg_kek_id_hex(&a, aid);
    tg_config_t *ca, *cb, *cn;
    tg_notify_t *sa = sender(t, &a, &ca), *sb = sender(t, &b, &cb), *sn = sender(t, NULL, &cn);
    tg_notice_t n = notice();
    sent = 0;
    assert_int_equal(tg_notify_enqueue(sa, t->s, &n, WALL, &err), 0);
    assert_int_equal(tg_notify_pass(sb, t->s, &err), 1);
    assert_int_equal(sent, 0);
    tg_notice_delivery_t *d = the_row(t);
    assert_string_equal(d->status, "pending");
    assert_non_null(strstr(d->error, aid));
    assert_int_equal(d->next_us, WALL + 20 * SEC); /* notify_retry.max */
    assert_int_equal(tg_notify_sealed_refused(sb), 1);
    now_us = WALL + 20 * SEC;
    assert_int_equal(tg_notify_pass(sn, t->s, &err), 1);
    assert_int_equal(sent, 0);
    assert_non_null(strstr(the_row(t)->error, aid));
    assert_int_equal(tg_notify_sealed_refused(sn), 1);
    now_us = WALL + 3600 * SEC;
    assert_int_equal(tg_notify_pass(sb, t->s, &err), 1);
    d = the_row(t);
    assert_string_equal(d->status, "failed");
    assert_non_null(strstr(d->error, "gave up"));
    assert_non_null(strstr(d->error, aid));
    assert_int_equal(sent, 0);
    now_us = WALL;
    tg_notify_free(sa);
    tg_notify_free(sb);
    tg_notify_free(sn);
    tg_config_unref(ca);
    tg_config_unref(cb);
    tg_config_unref(cn);
}

typedef struct pick {
    const char *id;
    char text[TG_NOTICE_SEALED_SIZE];
} pick_t;

static int pick_cb(const char *id, const char *sealed, void *ud)
{
    pick_t *p = ud;
    if (!strcmp(id, p->id)) snprintf(p->text, sizeof p->text, "%s", sealed);
    return 0;
}

/* A sealed text moved to another row (a swap someone with the file could do) never opens
 * there: failed at once with why, counted, nothing sent garbled; the row it came from is
 * still sent. */
static void test_moved_refused(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    tg_kek_t a = fx_kek(FX_KEK_A);
    tg_config_t *cfg;
    tg_notify_t *s = sender(t, &a, &cfg);
    tg_notice_t n1 = notice(), n2 = notice(), r1, r2;
    snprintf(n2.id, sizeof n2.id, "alarm/errors/" TENANT "/13");
    sent = 0;
    assert_int_equal(tg_notify_enqueue(s, t->s, &n1, WALL, &err), 0);
    assert_int_equal(tg_notify_enqueue(s, t->s, &n2, WALL, &err), 0);
    static char s1[TG_NOTICE_SEALED_SIZE], s2[TG_NOTICE_SEALED_SIZE];
    assert_int_equal(tg_notice_seal(&a, &n1, &r1, s1, &err), 0);
    assert_int_equal(tg_notice_seal(&a, &n2, &r2, s2, &err), 0);
    static pick_t p1, p2;
    p1.id = r1.id, p2.id = r2.id;
    assert_int_equal(tg_store_outbox_sealed_each(t->s, pick_cb, &p1, &err), 0);
    assert_int_equal(tg_store_outbox_sealed_each(t->s, pick_cb, &p2, &err), 0);
    assert_true(p1.text[0] && p2.text[0]);
    assert_int_equal(tg_store_outbox_reseal(t->s, r2.id, p2.text, p1.text, &err), 0);
    assert_int_equal(tg_notify_pass(s, t->s, &err), 2);
    assert_int_equal(sent, 1); /* row 1 only */
    assert_string_equal(last.id, n1.id);
    assert_int_equal(tg_notify_sealed_refused(s), 1);
    static tg_notice_delivery_t failed;
    assert_int_equal(tg_store_outbox_list(t->s, "failed", collect, &failed, &err), 0);
    assert_string_equal(failed.notice.id, r2.id);
    assert_non_null(strstr(failed.error, "does not open"));
    tg_notify_free(s);
    tg_config_unref(cfg);
}

/* kek rotate's step: each sealed text re-wrapped from A to B and replaced while unchanged;
 * then a sender with B delivers it, one with A no longer can. */
static void test_rewrap_then_deliver(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    tg_kek_t a = fx_kek(FX_KEK_A), b = fx_kek(FX_KEK_B);
    tg_config_t *ca, *cb2;
    tg_notify_t *sa = sender(t, &a, &ca), *sb = sender(t, &b, &cb2);
    tg_notice_t n = notice();
    sent = 0;
    assert_int_equal(tg_notify_enqueue(sa, t->s, &n, WALL, &err), 0);
    tg_notice_delivery_t *d = the_row(t);
    char id[sizeof d->notice.id], before[TG_NOTICE_SEALED_SIZE], after[TG_NOTICE_SEALED_SIZE];
    memcpy(id, d->notice.id, sizeof id);
    snprintf(before, sizeof before, "%s", d->sealed);
    assert_int_equal(tg_notice_rewrap(&a, &b, before, after, &err), 0);
    assert_int_equal(tg_store_outbox_reseal(t->s, id, after, before, &err), TG_STORE_NOTFOUND);
    assert_int_equal(tg_store_outbox_reseal(t->s, id, before, after, &err), 0);
    assert_int_equal(tg_store_outbox_reseal(t->s, id, before, after, &err), TG_STORE_NOTFOUND);
    char kid[17], bid[17];
    assert_int_equal(tg_notice_sealed_kek_id(after, kid), 0);
    tg_kek_id_hex(&b, bid);
    assert_string_equal(kid, bid);
    assert_int_equal(tg_notify_pass(sb, t->s, &err), 1);
    assert_int_equal(sent, 1);
    assert_memory_equal(&last, &n, sizeof n);
    tg_notify_free(sa);
    tg_notify_free(sb);
    tg_config_unref(ca);
    tg_config_unref(cb2);
}

/* Bad sealed texts: not base64, cut, not a blob. */
static void test_open_garbage(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A);
    tg_notice_delivery_t d;
    tg_notice_t out;
    tg_err_t err;
    const char *bad[] = {"x", "!!!!", "QUJD", "VEdTAQ=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&d, 0, sizeof d);
        snprintf(d.notice.id, sizeof d.notice.id, "k1/00");
        snprintf(d.sealed, sizeof d.sealed, "%s", bad[i]);
        assert_int_equal(tg_notice_open(&a, &d, &out, &err), TG_NOTICE_DAMAGED);
    }
    /* A real text with one character changed in its data part. */
    tg_notice_t n = notice(), row;
    memset(&d, 0, sizeof d);
    assert_int_equal(tg_notice_seal(&a, &n, &row, d.sealed, &err), 0);
    d.notice = row;
    assert_int_equal(tg_notice_open(&a, &d, &out, &err), TG_NOTICE_OPENED);
    size_t k = strlen(d.sealed) - 8;
    d.sealed[k] = d.sealed[k] == 'A' ? 'B' : 'A';
    assert_int_equal(tg_notice_open(&a, &d, &out, &err), TG_NOTICE_DAMAGED);
}

/* The largest notice there is (every field full of characters JSON escapes as \u00XX) seals
 * and opens; text that is not UTF-8 opens as every payload sends it (bytes above 0x7f as
 * '?'); a value that is not a number opens as NaN. */
static void test_worst_notice_fits(void **state)
{
    (void)state;
    tg_kek_t a = fx_kek(FX_KEK_A);
    tg_notice_t n, row, out;
    tg_notice_delivery_t d;
    tg_err_t err;
    memset(&n, 0x01, sizeof n);
#define FILL(f) memset(n.f, 0x01, sizeof n.f - 1), n.f[sizeof n.f - 1] = '\0'
    FILL(id), FILL(kind), FILL(alarm), FILL(alarm_kind), FILL(tenant), FILL(state), FILL(severity),
        FILL(summary);
    n.value = NAN, n.threshold = -1e308, n.baseline = 5e-324;
    n.window_s = INT64_MAX, n.time_us = INT64_MIN, n.started_us = -1;
    memset(&d, 0, sizeof d);
    assert_int_equal(tg_notice_seal(&a, &n, &row, d.sealed, &err), 0);
    d.notice = row;
    assert_int_equal(tg_notice_open(&a, &d, &out, &err), TG_NOTICE_OPENED);
    assert_string_equal(out.summary, n.summary);
    assert_string_equal(out.tenant, n.tenant);
    assert_true(isnan(out.value));
    assert_true(out.threshold == -1e308 && out.baseline == 5e-324);
    assert_true(out.window_s == INT64_MAX && out.time_us == INT64_MIN && out.started_us == -1);
    n = notice();
    snprintf(n.summary, sizeof n.summary, "bad \xff\xfe utf-8 \"quoted\"\n");
    memset(&d, 0, sizeof d);
    assert_int_equal(tg_notice_seal(&a, &n, &row, d.sealed, &err), 0);
    d.notice = row;
    assert_int_equal(tg_notice_open(&a, &d, &out, &err), TG_NOTICE_OPENED);
    assert_string_equal(out.summary, "bad ?? utf-8 \"quoted\"\n");
}

/* A sealed text longer than the store hands back (someone wrote a megabyte into the column):
 * read cut to its cap, it is damaged, never sent, and the delivery is failed. */
static void test_oversized_text_refused(void **state)
{
    tb_store_t *t = *state;
    tg_err_t err;
    tg_kek_t a = fx_kek(FX_KEK_A);
    tg_config_t *cfg;
    tg_notify_t *s = sender(t, &a, &cfg);
    tg_notice_t n = notice();
    sent = 0;
    assert_int_equal(tg_notify_enqueue(s, t->s, &n, WALL, &err), 0);
    tg_notice_delivery_t *d = the_row(t);
    static char id[sizeof d->notice.id], before[TG_NOTICE_SEALED_SIZE];
    memcpy(id, d->notice.id, sizeof id);
    memcpy(before, d->sealed, sizeof before);
    size_t big = 1 << 20;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'A', big);
    huge[big] = '\0';
    assert_int_equal(tg_store_outbox_reseal(t->s, id, before, huge, &err), 0);
    free(huge);
    assert_int_equal(tg_notify_pass(s, t->s, &err), 1);
    assert_int_equal(sent, 0);
    assert_string_equal(the_row(t)->status, "failed");
    assert_int_equal(tg_notify_sealed_refused(s), 1);
    tg_notify_free(s);
    tg_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB_BOTH(test_sealed_on_disk_sent_plain),  TB_BOTH(test_plain_rows_still_read),
        TB_BOTH(test_other_kek_refused),          TB_BOTH(test_moved_refused),
        TB_BOTH(test_rewrap_then_deliver),        cmocka_unit_test(test_open_garbage),
        cmocka_unit_test(test_worst_notice_fits), TB_BOTH(test_oversized_text_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
