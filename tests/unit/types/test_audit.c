/* Tests src/types/audit.c: the canonical form (byte for byte), the chain's days and
 * sequence numbers, erasure leaving hashes unchanged, call records from events, and the
 * verifier finding each kind of tamper in records held in memory. Fixed instants only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include <yajl/yajl_gen.h>

#include "types/audit.h"

#define DAY1 1796256000000000LL /* 2026-12-03T00:00:00Z */
#define HOUR 3600000000LL
#define DAY  (24 * HOUR)

static tg_audit_rec_t admin(int64_t ts, const char *action, const char *after)
{
    tg_audit_rec_t r = {0};
    r.ts_us = ts;
    r.kind = "admin";
    r.actor = "alice";
    r.action = action;
    r.object = "acme";
    r.tenant = "acme";
    r.after = after;
    return r;
}

static void test_canonical_form(void **state)
{
    (void)state;
    tg_audit_head_t h;
    tg_audit_head_init(&h);
    tg_audit_rec_t r = admin(DAY1 + HOUR, "tenant.add", "{\"x\":\"é\\n\"}");
    r.data = "{\"a\":1}";
    r.client_ip = "10.0.0.1";
    r.format = 1; /* the records written before migration 16 */
    assert_int_equal(tg_audit_link(&h, &r), 0);
    size_t n;
    char *c = tg_audit_canonical(&r, &n);
    assert_non_null(c);
    /* The erasable values enter as the SHA-256 of their bytes (`printf %s VALUE |
     * sha256sum`), data as its text. */
    const char *expect =
        "[\"tg-audit-1\",\"2026-12-03\",1,1796259600000000,\"admin\",\"alice\",\"tenant.add\","
        "\"acme\",\"acme\",null,\"{\\\"a\\\":1}\",null,"
        "\"sha256:58ae2af58f5e780127ae8a7dd46110cfd7c1f2ff6651661bda431d4e0f47c3d7\","
        "\"sha256:f5047344122f0dee9974ba6761e61c6b8649e1f3968d13a635ebbf7be53a3a0d\",null,"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"]";
    assert_string_equal(c, expect);
    assert_int_equal(n, strlen(expect));
    free(c);
    /* The example of docs/audit.md: its hash is the SHA-256 of exactly these bytes. */
    assert_string_equal(r.hash, "c6267239ccd756ab1bed735f8108e95c8fba98aafb82c481d39594b49f6980d2");
}

/* Format 2, what tg_audit_link gives a record now: the same record's 16 values, each a
 * 4-byte big-endian length and its bytes. The example of docs/audit.md. */
static void test_canonical_form_2(void **state)
{
    (void)state;
    tg_audit_head_t h;
    tg_audit_head_init(&h);
    tg_audit_rec_t r = admin(DAY1 + HOUR, "tenant.add", "{\"x\":\"é\\n\"}");
    r.data = "{\"a\":1}";
    r.client_ip = "10.0.0.1";
    assert_int_equal(tg_audit_link(&h, &r), 0);
    assert_int_equal(r.format, 2);
    size_t n;
    char *c = tg_audit_canonical(&r, &n);
    assert_non_null(c);
    static const char expect[] =
        "\0\0\0\x0atg-audit-2"
        "\0\0\0\x0a"
        "2026-12-03"
        "\0\0\0\x01"
        "1"
        "\0\0\0\x10"
        "1796259600000000"
        "\0\0\0\x05"
        "admin"
        "\0\0\0\x05"
        "alice"
        "\0\0\0\x0a"
        "tenant.add"
        "\0\0\0\x04"
        "acme"
        "\0\0\0\x04"
        "acme"
        "\xff\xff\xff\xff"
        "\0\0\0\x07"
        "{\"a\":1}"
        "\xff\xff\xff\xff"
        "\0\0\0\x47"
        "sha256:58ae2af58f5e780127ae8a7dd46110cfd7c1f2ff6651661bda431d4e0f47c3d7"
        "\0\0\0\x47"
        "sha256:f5047344122f0dee9974ba6761e61c6b8649e1f3968d13a635ebbf7be53a3a0d"
        "\xff\xff\xff\xff"
        "\0\0\0\x40"
        "0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(n, sizeof expect - 1);
    assert_memory_equal(c, expect, n);
    free(c);
    assert_string_equal(r.hash, "875018cd62babb09c7dd563103cf5432f9b56ebc3aaa8b355912bd8b4288595d");
    /* A value's bytes cannot move into the next field: lengths, not separators. */
    tg_audit_rec_t x = r;
    x.actor = "alicet";
    x.action = "enant.add";
    char hx[TG_AUDIT_HEX];
    assert_int_equal(tg_audit_hash(&x, hx), 0);
    assert_string_not_equal(hx, r.hash);
    /* The format is part of what is hashed: the same record read as format 1 does not
     * match, and a format that is neither is refused. */
    x = r;
    x.format = 1;
    assert_int_equal(tg_audit_hash(&x, hx), 0);
    assert_string_not_equal(hx, r.hash);
    x.format = 3;
    assert_int_equal(tg_audit_hash(&x, hx), -1);
    assert_null(tg_audit_canonical(&x, &n));
}

static void test_link_days_and_seq(void **state)
{
    (void)state;
    tg_audit_head_t h;
    tg_audit_head_init(&h);
    tg_audit_rec_t r[4] = {admin(DAY1 + HOUR, "a", NULL), admin(DAY1 + 2 * HOUR, "b", NULL),
                           admin(DAY1 + DAY + HOUR, "c", NULL),
                           /* a clock behind the chain's day: stays on the later day */
                           admin(DAY1 + 3 * HOUR, "d", NULL)};
    for (int i = 0; i < 4; i++)
        assert_int_equal(tg_audit_link(&h, &r[i]), 0);
    assert_int_equal(r[0].id, 1);
    assert_int_equal(r[3].id, 4);
    assert_string_equal(r[1].day, "2026-12-03");
    assert_int_equal(r[1].seq, 2);
    assert_string_equal(r[2].day, "2026-12-04");
    assert_int_equal(r[2].seq, 1);
    assert_string_equal(r[3].day, "2026-12-04");
    assert_int_equal(r[3].seq, 2);
    /* The previous day's last hash opens the next day. */
    assert_string_equal(r[2].prev_hash, r[1].hash);
    assert_string_equal(h.last_hash, r[3].hash);
    assert_int_equal(h.last_id, 4);
}

static void test_erased_value_keeps_hash(void **state)
{
    (void)state;
    tg_audit_head_t h;
    tg_audit_head_init(&h);
    tg_audit_rec_t r = admin(DAY1, "key.create", "{\"name\":\"bob's laptop\"}");
    r.path = "/v1/chat?user=bob";
    assert_int_equal(tg_audit_link(&h, &r), 0);
    char e1[80], e2[80], again[80];
    tg_audit_erased(r.after, e1);
    tg_audit_erased(r.path, e2);
    tg_audit_erased(e1, again); /* erasing twice changes nothing */
    assert_string_equal(again, e1);
    assert_null(strstr(e1, "bob"));
    tg_audit_rec_t x = r;
    x.after = e1;
    x.path = e2;
    char hx[TG_AUDIT_HEX];
    assert_int_equal(tg_audit_hash(&x, hx), 0);
    assert_string_equal(hx, r.hash);
    /* ... while any other change of the value does change it. */
    x.after = "{\"name\":\"bob's laptop \"}";
    assert_int_equal(tg_audit_hash(&x, hx), 0);
    assert_string_not_equal(hx, r.hash);
}

static void test_call_from_event(void **state)
{
    (void)state;
    tg_event_t ev = {0};
    ev.id = 42;
    ev.ts_us = DAY1;
    ev.status = 200;
    ev.tokens_in = 10;
    ev.tokens_out = TG_TOKENS_UNKNOWN;
    ev.cost_micros = 7;
    strcpy(ev.tenant, "acme");
    strcpy(ev.key_id, "key_1");
    strcpy(ev.route, "openai");
    strcpy(ev.path, "/v1/chat/completions");
    tg_audit_rec_t r;
    char data[TG_AUDIT_DATA_MAX];
    assert_int_equal(tg_audit_from_event(&ev, &r, data, sizeof data), 0); /* no model: no */
    strcpy(ev.model, "gpt-4o");
    assert_int_equal(tg_audit_from_event(&ev, &r, data, sizeof data), 1);
    assert_string_equal(r.data, "{\"cost_micros\":7,\"decision\":\"billable\",\"key\":\"key_1\","
                                "\"model\":\"gpt-4o\",\"status\":200,\"tokens_in\":10}");
    assert_int_equal(r.event_id, 42);
    assert_string_equal(r.object, "openai");
    assert_null(r.client_ip);
    /* A hostile client's model name: quotes, a backslash, control characters. The data is
     * still one valid JSON object holding exactly that name, and its record hashes. */
    strcpy(ev.model, "m\"},\"x\":\"\\\n\x01");
    assert_int_equal(tg_audit_from_event(&ev, &r, data, sizeof data), 1);
    json_error_t je;
    json_t *o = json_loads(r.data, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "model")), ev.model);
    assert_null(json_object_get(o, "x"));
    json_decref(o);
    tg_audit_head_t h;
    tg_audit_head_init(&h);
    assert_int_equal(tg_audit_link(&h, &r), 0);
    /* audit.bodies: hash: the bodies' SHA-256 as hex, first in byte order; the state only
     * when the hash does not cover the whole answer. The record links and verifies. */
    tg_event_t hev = ev;
    strcpy(hev.model, "gpt-4o");
    memset(hev.body_sha_in, 0xab, 32);
    memset(hev.body_sha_out, 0x01, 32);
    hev.body_hashed = TG_BODY_IN | TG_BODY_OUT;
    assert_int_equal(tg_audit_from_event(&hev, &r, data, sizeof data), 1);
    assert_string_equal(r.data,
                        "{\"body_in_sha256\":\"abababababababababababababababababababababababab"
                        "abababababababab\",\"body_out_sha256\":\"0101010101010101010101010101"
                        "010101010101010101010101010101010101\",\"cost_micros\":7,\"decision\":"
                        "\"billable\",\"key\":\"key_1\",\"model\":\"gpt-4o\",\"status\":200,"
                        "\"tokens_in\":10}");
    hev.body_hashed = TG_BODY_OUT;
    hev.body_out = TG_BODY_CUT;
    assert_int_equal(tg_audit_from_event(&hev, &r, data, sizeof data), 1);
    assert_non_null(strstr(r.data, "\"body_out_sha256\":\"0101"));
    assert_non_null(strstr(r.data, "01\",\"body_out_state\":\"cut\",\"cost_micros\""));
    assert_null(strstr(r.data, "body_in"));
    tg_audit_head_t hh;
    tg_audit_head_init(&hh);
    assert_int_equal(tg_audit_link(&hh, &r), 0);
    tg_audit_verifier_t v;
    tg_audit_verify_init(&v, NULL, NULL);
    assert_int_equal(tg_audit_verify_next(&v, &r), TG_AUDIT_OK);
    /* Every text field at its longest, all control characters: it still fits. */
    tg_event_t big = ev;
    memset(big.model, 1, sizeof big.model - 1);
    memset(big.tool, 1, sizeof big.tool - 1);
    memset(big.rpc_method, 1, sizeof big.rpc_method - 1);
    memset(big.reason, 1, sizeof big.reason - 1);
    memset(big.key_id, 1, sizeof big.key_id - 1);
    memset(big.body_sha_in, 0xff, 32); /* and both hashes, the longest state */
    big.body_hashed = TG_BODY_IN | TG_BODY_OUT;
    big.body_out = TG_BODY_DECODE_ERROR;
    char large[TG_AUDIT_DATA_MAX];
    assert_int_equal(tg_audit_from_event(&big, &r, large, sizeof large), 1);
    /* A smaller buffer is refused outright, not filled part way. */
    assert_int_equal(tg_audit_from_event(&ev, &r, data, 512), -1);
    /* A path cut at 255 bytes inside a character: stored, and hashed, as '?'. */
    strcpy(ev.path, "/v1/caf\xc3");
    assert_int_equal(tg_audit_from_event(&ev, &r, data, sizeof data), 1);
    assert_string_equal(r.path, "/v1/caf?");
    /* Bytes that are not UTF-8 (an upstream's model name) still make a record. */
    strcpy(ev.model, "gpt\xff");
    assert_int_equal(tg_audit_from_event(&ev, &r, data, sizeof data), 1);
    assert_non_null(strstr(r.data, "gpt?"));
}

/* What yajl's generator writes for the data of ev (cost, decision, key, model, status,
 * tokens in and out, tool; no bodies): the record's data was written by it before, and
 * the text is still the same byte for byte. */
static char *yajl_data(const tg_event_t *ev, const char *decision)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
#define K(k) yajl_gen_string(g, (const unsigned char *)(k), strlen(k))
    yajl_gen_map_open(g);
    K("cost_micros");
    yajl_gen_integer(g, ev->cost_micros);
    K("decision");
    K(decision);
    K("key");
    K(ev->key_id);
    if (ev->model[0]) {
        K("model");
        K(ev->model);
    }
    K("status");
    yajl_gen_integer(g, ev->status);
    if (ev->tokens_in >= 0) {
        K("tokens_in");
        yajl_gen_integer(g, ev->tokens_in);
    }
    if (ev->tokens_out >= 0) {
        K("tokens_out");
        yajl_gen_integer(g, ev->tokens_out);
    }
    if (ev->tool[0]) {
        K("tool");
        K(ev->tool);
    }
#undef K
    yajl_gen_map_close(g);
    const unsigned char *b;
    size_t n;
    char *out = NULL;
    if (yajl_gen_get_buf(g, &b, &n) == yajl_gen_status_ok && (out = malloc(n + 1))) {
        memcpy(out, b, n);
        out[n] = '\0';
    }
    yajl_gen_free(g);
    return out;
}

static void test_call_data_as_yajl_wrote_it(void **state)
{
    (void)state;
    tg_event_t ev = {0};
    ev.id = 43;
    ev.ts_us = DAY1;
    ev.status = 200;
    ev.cost_micros = INT64_MAX;
    ev.tokens_in = 0;
    ev.tokens_out = 1234567890123LL;
    strcpy(ev.tenant, "acme");
    strcpy(ev.route, "mcp");
    const char *texts[] = {
        "gpt-4o",                      /* plain: copied */
        "m\"},\"x\":\"\\\n\x01\t\x7f", /* quotes, a backslash, control characters, DEL */
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", /* UTF-8 of 2, 3 and 4 bytes */
        "/slash/ and ~",                             /* '/' is not escaped, '~' is printable */
        "a \"quoted\" word",                         /* printable but for the quotes */
        "back\\slash",                               /* printable but for the backslash */
        "del\x7f",                                   /* DEL: not escaped by yajl */
        "",                                          /* empty */
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        snprintf(ev.model, sizeof ev.model, "%s", texts[i][0] ? texts[i] : "m");
        snprintf(ev.key_id, sizeof ev.key_id, "%s", texts[i]);
        snprintf(ev.tool, sizeof ev.tool, "%s", texts[i]);
        ev.status = i % 2 ? -1 : 200;
        tg_audit_rec_t r;
        char data[TG_AUDIT_DATA_MAX];
        assert_int_equal(tg_audit_from_event(&ev, &r, data, sizeof data), 1);
        char *want = yajl_data(&ev, "billable");
        assert_non_null(want);
        assert_string_equal(r.data, want);
        free(want);
    }
}

/* ---- the verifier over records in memory -------------------------------------------- */

#define N 6
typedef struct chain {
    tg_audit_rec_t r[N + 1];
    size_t n;
    tg_audit_head_t head;
} chain_t;

static void build(chain_t *c)
{
    memset(c, 0, sizeof *c);
    tg_audit_head_init(&c->head);
    static const char *const acts[N] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < N; i++) {
        c->r[i] = admin(DAY1 + i * 6 * HOUR, acts[i], NULL);
        assert_int_equal(tg_audit_link(&c->head, &c->r[i]), 0);
    }
    c->n = N;
}

static int64_t find(const char *hash, void *ud)
{
    chain_t *c = ud;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->r[i].hash, hash) == 0) return c->r[i].id;
    return 0;
}

static int run(chain_t *c, tg_audit_verifier_t *v)
{
    tg_audit_verify_init(v, find, c);
    for (size_t i = 0; i < c->n; i++)
        if (tg_audit_verify_next(v, &c->r[i]) != TG_AUDIT_OK) return v->fault;
    return tg_audit_verify_end(v, &c->head);
}

/* A store's records as tg_audit_day_bound sees them: ids with gaps (a purge, a deleted
 * record), days never going back. */
static const struct {
    int64_t id;
    const char *day;
} stored_days[] = {{5, "2026-12-01"},  {6, "2026-12-01"},  {9, "2026-12-02"},
                   {10, "2026-12-04"}, {11, "2026-12-04"}, {15, "2026-12-05"}};
#define NSTORED (sizeof stored_days / sizeof stored_days[0])

static int probes;

static int day_from(int64_t x, char day[11], void *ud)
{
    (void)ud;
    probes++;
    for (size_t i = 0; i < NSTORED; i++)
        if (stored_days[i].id >= x) {
            memcpy(day, stored_days[i].day, 11);
            return 0;
        }
    return -1; /* past the last id: the search never asks */
}

static int64_t bound(const char *day, int after)
{
    int64_t out = -1;
    assert_int_equal(tg_audit_day_bound(5, 15, day, after, day_from, NULL, &out), 0);
    return out;
}

static void test_day_bound(void **state)
{
    (void)state;
    assert_int_equal(bound("2026-11-30", 0), 5); /* every record */
    assert_int_equal(bound("2026-12-01", 0), 5);
    assert_int_equal(bound("2026-12-01", 1), 7); /* from 7: the first after day 1 is 9 */
    assert_int_equal(bound("2026-12-02", 0), 7);
    assert_int_equal(bound("2026-12-03", 0), 10); /* a day without records */
    assert_int_equal(bound("2026-12-03", 1), 10);
    assert_int_equal(bound("2026-12-04", 1), 12);
    assert_int_equal(bound("2026-12-05", 0), 12);
    assert_int_equal(bound("2026-12-05", 1), 16); /* none: one past the last */
    assert_int_equal(bound("2027-01-01", 0), 16);
    /* A binary search: a few probes for 11 ids, not one per id. */
    probes = 0;
    bound("2026-12-04", 0);
    assert_true(probes <= 4);
    /* No records (min and max are NULL): the bound is lo. */
    int64_t out = -1;
    assert_int_equal(tg_audit_day_bound(0, -1, "2026-12-01", 0, day_from, NULL, &out), 0);
    assert_int_equal(out, 0);
}

static void test_verify_each_tamper(void **state)
{
    (void)state;
    chain_t c;
    tg_audit_verifier_t v;
    build(&c);
    assert_int_equal(run(&c, &v), TG_AUDIT_OK);
    assert_int_equal(v.n, N);
    assert_string_equal(v.first_day, "2026-12-03");
    assert_string_equal(v.last_day, "2026-12-04");

    build(&c); /* edited */
    c.r[2].action = "z";
    assert_int_equal(run(&c, &v), TG_AUDIT_EDITED);
    assert_int_equal(v.fault_id, 3);

    build(&c); /* edited, and its hash rewritten to match */
    c.r[2].action = "z";
    assert_int_equal(tg_audit_hash(&c.r[2], c.r[2].hash), 0);
    assert_int_equal(run(&c, &v), TG_AUDIT_EDITED);
    assert_int_equal(v.fault_id, 3);

    build(&c); /* deleted: record 3 */
    memmove(&c.r[2], &c.r[3], 3 * sizeof c.r[0]);
    c.n--;
    assert_int_equal(run(&c, &v), TG_AUDIT_DELETED);
    assert_int_equal(v.fault_id, 4);
    assert_non_null(strstr(v.why, "3..3"));

    build(&c); /* deleted: the last record */
    c.n--;
    assert_int_equal(run(&c, &v), TG_AUDIT_DELETED);
    assert_int_equal(v.fault_id, N);

    build(&c); /* inserted: a forged record 3 linked to 2, the rest renumbered */
    memmove(&c.r[3], &c.r[2], 4 * sizeof c.r[0]);
    c.n++;
    for (size_t i = 3; i < c.n; i++)
        c.r[i].id++;
    c.r[2].action = "forged";
    assert_int_equal(tg_audit_hash(&c.r[2], c.r[2].hash), 0);
    assert_int_equal(run(&c, &v), TG_AUDIT_INSERTED);
    assert_int_equal(v.fault_id, 3);

    build(&c); /* inserted after the head */
    c.r[N] = admin(DAY1 + 2 * DAY, "late", NULL);
    tg_audit_head_t h2 = c.head;
    assert_int_equal(tg_audit_link(&h2, &c.r[N]), 0);
    c.n++;
    assert_int_equal(run(&c, &v), TG_AUDIT_INSERTED);
    assert_int_equal(v.fault_id, N + 1);

    build(&c); /* reordered: records 3 and 4 swapped (ids too) */
    tg_audit_rec_t t = c.r[2];
    c.r[2] = c.r[3];
    c.r[3] = t;
    c.r[2].id = 3;
    c.r[3].id = 4;
    assert_int_equal(run(&c, &v), TG_AUDIT_REORDERED);
    assert_int_equal(v.fault_id, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_form),
        cmocka_unit_test(test_canonical_form_2),
        cmocka_unit_test(test_link_days_and_seq),
        cmocka_unit_test(test_erased_value_keeps_hash),
        cmocka_unit_test(test_call_from_event),
        cmocka_unit_test(test_call_data_as_yajl_wrote_it),
        cmocka_unit_test(test_verify_each_tamper),
        cmocka_unit_test(test_day_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
