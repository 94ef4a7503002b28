/* Tests the request's phases (src/gateway/phase_*.c, pipeline.c) without a socket: a
 * request built by hand (its head in a tg_req_head_t, as the connection fills it, with the
 * target made canonical by target.c), the real keyring, config, policy and price book over
 * fake stores, and a fake connection (tg_req_ops_t) that records what it was asked to do.
 * Time is an argument. AUTH: a missing, unknown or revoked key is a 401 with its reason;
 * ROUTE: no route 404, a body over server.max_body 413, a coded body on an AI route 415,
 * an endpoint spending out of sight 403; BODY: a held body waits (timer, 100 Continue),
 * is read by the exchange when whole, an MCP body it cannot read is a JSON-RPC 400, a
 * denied tool a 403; ADMIT: the client address from every X-Forwarded-For line joined,
 * believed from trusted proxies only; the loop: ANSWER answers once and stops, WAIT stops
 * where it is and resumes there, FORWARD hands the request to the connection; METER's end
 * and SETTLE: the outcome and the estimate billing gives a failed or a drained answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "auth/apikey.h"
#include "auth/keyring.h"
#include "gateway/phases.h"
#include "gateway/target.h"
#include "store/backend.h"

#define WALL 1795000000000000LL /* 2026-11-18T07:33:20Z */
#define MONO 5000000000LL       /* the monotonic clock, µs */

/* ---- fake stores: keys and tool rules ------------------------------------------------ */

typedef struct fake_key {
    const char *secret, *id, *tenant;
    int key_active, tenant_active;
} fake_key_t;

static const fake_key_t keys[] = {
    {"tg_good", "key_1", "acme", 1, 1},
    {"tg_revoked", "key_2", "acme", 0, 1},
    {"tg_disabled", "key_3", "globex", 1, 0},
};

static int f_auth_load(tg_store_t *s, int (*cb)(const tg_auth_row_t *, void *), void *ud,
                       tg_err_t *err)
{
    (void)s, (void)err;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        unsigned char sha[32];
        tg_apikey_hash(keys[i].secret, strlen(keys[i].secret), sha);
        tg_auth_row_t row = {.sha256 = sha,
                             .key_id = keys[i].id,
                             .tenant_id = keys[i].tenant,
                             .key_active = keys[i].key_active,
                             .tenant_active = keys[i].tenant_active};
        if (cb(&row, ud) != 0) return -1;
    }
    return 0;
}

static int f_limit_list(tg_store_t *s, const char *tenant,
                        int (*cb)(const tg_limit_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)cb, (void)ud, (void)err;
    return 0;
}

static int f_pause_list(tg_store_t *s, int (*cb)(const tg_pause_row_t *, void *), void *ud,
                        tg_err_t *err)
{
    (void)s, (void)cb, (void)ud, (void)err;
    return 0;
}

static int f_ip_list(tg_store_t *s, const char *tenant, int (*cb)(const tg_ip_rule_row_t *, void *),
                     void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)cb, (void)ud, (void)err;
    return 0;
}

/* acme may not call the tool "rm_rf". */
static int f_tool_list(tg_store_t *s, const char *tenant,
                       int (*cb)(const tg_tool_rule_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)err;
    tg_tool_rule_row_t row;
    memset(&row, 0, sizeof row);
    snprintf(row.tenant, sizeof row.tenant, "acme");
    snprintf(row.action, sizeof row.action, "deny");
    snprintf(row.pattern, sizeof row.pattern, "rm_rf");
    return cb(&row, ud) ? -1 : 0;
}

static int f_budget_list(tg_store_t *s, const char *tenant,
                         int (*cb)(const tg_budget_row_t *, void *), void *ud, tg_err_t *err)
{
    (void)s, (void)tenant, (void)cb, (void)ud, (void)err;
    return 0;
}

/* The keys' tenants (the keyring keeps them for JWTs), one row per key: duplicates are harmless. */
static int f_tenant_list(tg_store_t *s, int (*cb)(const tg_tenant_t *, void *), void *ud,
                         tg_err_t *err)
{
    (void)s, (void)err;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        tg_tenant_t t = {0};
        snprintf(t.id, sizeof t.id, "%s", keys[i].tenant);
        snprintf(t.status, sizeof t.status, "%s", keys[i].tenant_active ? "active" : "disabled");
        if (cb(&t, ud) != 0) return -1;
    }
    return 0;
}

static const struct tg_store_tenant_ops tenant_ops = {.auth_load = f_auth_load,
                                                      .tenant_list = f_tenant_list};
static const struct tg_store_policy_ops policy_ops = {.limit_list = f_limit_list,
                                                      .pause_list = f_pause_list,
                                                      .ip_rule_list = f_ip_list,
                                                      .tool_rule_list = f_tool_list};
static const struct tg_store_price_ops price_ops = {.budget_list = f_budget_list};
static tg_store_t store = {.tenants = &tenant_ops, .policy = &policy_ops, .prices = &price_ops};

/* ---- a fake connection ---------------------------------------------------------------- */

typedef struct calls {
    int answers, json_answers, continues, body_timers, upstreams;
    int status;
    const char *type, *message, *reason;
    char json[4096];
} calls_t;

static calls_t calls;

static void op_answer_error(tg_req_t *r, int status, const char *type, const char *message,
                            const char *reason)
{
    calls.answers++;
    calls.status = status;
    calls.type = type;
    calls.message = message;
    calls.reason = reason;
    r->ev.outcome = TG_OUTCOME_REJECTED;
    TG_EVENT_SET(&r->ev, reason, reason, strlen(reason));
}

static void op_answer_json(tg_req_t *r, int status, const char *body, size_t len,
                           const char *reason)
{
    calls.json_answers++;
    calls.status = status;
    calls.reason = reason;
    snprintf(calls.json, sizeof calls.json, "%.*s", (int)len, body);
    r->ev.outcome = TG_OUTCOME_REJECTED;
    TG_EVENT_SET(&r->ev, reason, reason, strlen(reason));
}

static void op_send_continue(tg_req_t *r)
{
    (void)r;
    calls.continues++;
}

static void op_arm_body_timer(tg_req_t *r)
{
    (void)r;
    calls.body_timers++;
}

static void op_start_upstream(tg_req_t *r)
{
    (void)r;
    calls.upstreams++;
}

static tg_buf_t body = TG_BUF_INIT(1 << 20);

static int op_set_body(tg_req_t *r, const char *p, size_t n)
{
    (void)r;
    tg_buf_reset(&body);
    return tg_buf_add(&body, p, n) == 0 ? 0 : -1;
}

static const tg_req_ops_t ops = {
    .answer_error = op_answer_error,
    .answer_json = op_answer_json,
    .send_continue = op_send_continue,
    .arm_body_timer = op_arm_body_timer,
    .start_upstream = op_start_upstream,
    .set_body = op_set_body,
};

/* ---- the fixture ---------------------------------------------------------------------- */

static const char yaml[] = "server:\n"
                           "  max_body: 1k\n"
                           "  body_timeout: 20s\n"
                           "  trusted_proxies: [10.0.0.0/8]\n"
                           "store: sqlite:x\n"
                           "upstreams:\n"
                           "  - { name: up, targets: [\"http://127.0.0.1:9\"] }\n"
                           "routes:\n"
                           "  - { name: ai, path_prefix: /v1/, upstream: up, kind: openai }\n"
                           "  - { name: tools, path_prefix: /mcp, upstream: up, kind: mcp }\n"
                           "  - { name: web, path_prefix: /web/, upstream: up }\n";

static struct {
    tg_config_t *cfg;
    tg_keyring_t *keys;
    tg_policy_t *policy;
    tg_pricebook_t *prices;
    tg_keycache_t keycache;
    atomic_llong unparsed;
    tg_ip_t peer;
    tg_req_head_t head;
    tg_buf_t scratch;
    tg_req_ctx_t cx;
    tg_req_t r;
} fx;

static int setup(void **state)
{
    (void)state;
    tg_err_t err = {{0}};
    if (tg_config_parse("t.yaml", yaml, strlen(yaml), &fx.cfg, &err) != 0) {
        fprintf(stderr, "config: %s\n", err.msg);
        return -1;
    }
    fx.keys = tg_keyring_new();
    if (tg_keyring_load(fx.keys, &store, NULL) != 0) return -1;
    fx.policy = tg_policy_new();
    tg_policy_defaults_t d = {0};
    tg_policy_set_defaults(fx.policy, &d);
    if (tg_policy_load(fx.policy, &store, WALL, NULL) != 0) return -1;
    fx.prices = tg_pricebook_new();
    tg_buf_init(&fx.head.bytes, 8192);
    tg_buf_init(&fx.head.target, 2 * 8192 + 2);
    tg_buf_init(&fx.scratch, SIZE_MAX);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tg_xchg_free(fx.cx.xchg);
    fx.cx.xchg = NULL;
    tg_keycache_clear(&fx.keycache);
    tg_pricebook_free(fx.prices);
    tg_policy_free(fx.policy);
    tg_keyring_free(fx.keys);
    tg_config_unref(fx.cfg);
    tg_buf_free(&fx.head.bytes);
    tg_buf_free(&fx.head.target);
    tg_buf_free(&fx.scratch);
    tg_buf_free(&body);
    return 0;
}

static void add_header(const char *name, const char *value)
{
    tg_req_head_t *hd = &fx.head;
    tg_hdr_t *h = &hd->hdrs[hd->nhdrs++];
    h->no = (uint32_t)tg_buf_len(&hd->bytes);
    h->nl = (uint32_t)strlen(name);
    assert_int_equal(tg_buf_add(&hd->bytes, name, h->nl), 0);
    h->vo = (uint32_t)tg_buf_len(&hd->bytes);
    h->vl = (uint32_t)strlen(value);
    assert_int_equal(tg_buf_add(&hd->bytes, value, h->vl), 0);
}

/* A request whose head was read (the connection's headers-complete done): target, then
 * header lines as "Name", "value" pairs ending with NULL; from peer; a declared body of
 * content_length bytes (-1: none). */
static tg_req_t *request(const char *peer, const char *target, int64_t content_length, ...)
{
    memset(&calls, 0, sizeof calls);
    tg_buf_reset(&fx.head.bytes);
    tg_buf_reset(&fx.head.target);
    tg_buf_reset(&body);
    fx.head.nhdrs = 0;
    assert_int_equal(tg_ip_parse(peer, strlen(peer), &fx.peer), 0);
    fx.cx = (tg_req_ctx_t){.ops = &ops,
                           .keys = fx.keys,
                           .policy = fx.policy,
                           .prices = fx.prices,
                           .unparsed = &fx.unparsed,
                           .keycache = &fx.keycache,
                           .peer = &fx.peer,
                           .head = &fx.head,
                           .body = &body,
                           .scratch = &fx.scratch,
                           .xchg = fx.cx.xchg};
    tg_req_t *r = &fx.r;
    tg_req_reset(r, NULL, peer, MONO, WALL);
    r->cx = &fx.cx;
    /* The target as sent, then made canonical as conn.c does. */
    size_t n = strlen(target);
    r->url_off = 0;
    r->url_len = (uint32_t)n;
    assert_int_equal(tg_buf_add(&fx.head.bytes, target, n), 0);
    va_list ap;
    va_start(ap, content_length);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL)
        add_header(name, va_arg(ap, const char *));
    va_end(ap);
    assert_int_equal(tg_buf_reserve(&fx.head.target, 2 * n + 2), 0);
    char *out = tg_buf_end(&fx.head.target);
    tg_target_norm_t tn;
    assert_int_equal(tg_target_normalize(target, n, out, &tn), 0);
    size_t len = tg_target_strip_tollgate_keys(out, tn.len);
    r->match_len = (uint32_t)tg_target_match_path(out, tn.path_len, out + len);
    r->url_len = (uint32_t)len;
    r->match_off = (uint32_t)len;
    tg_buf_added(&fx.head.target, len + r->match_len);
    r->headers_done = 1;
    r->cfg = fx.cfg;
    r->content_length = content_length;
    r->has_body = content_length > 0;
    r->body_limit = (int64_t)fx.cfg->server.max_body;
    TG_EVENT_SET(&r->ev, method, "POST", 4);
    return r;
}

#define REQ(peer, target, cl, ...) request(peer, target, cl, __VA_ARGS__, (const char *)NULL)

static void assert_refused(tg_phase_res_t res, int status, const char *reason)
{
    assert_int_equal(res.rc, TG_PHASE_ANSWER);
    assert_int_equal(res.status, status);
    assert_string_equal(res.reason, reason);
}

/* ---- AUTH ----------------------------------------------------------------------------- */

static void test_auth(void **state)
{
    (void)state;
    tg_req_t *r = REQ("192.0.2.1", "/v1/chat/completions", -1, "Host", "x");
    tg_phase_res_t res = tg_ph_auth(r, MONO);
    assert_refused(res, 401, "missing_key");
    assert_string_equal(res.type, "unauthorized");
    assert_non_null(strstr(res.message, "missing API key"));
    assert_string_equal(r->ev.tenant, "");

    r = REQ("192.0.2.1", "/v1/chat/completions", -1, "Authorization", "Bearer tg_nope");
    res = tg_ph_auth(r, MONO);
    assert_refused(res, 401, "unknown_key");
    assert_string_equal(res.message, "invalid API key");
    assert_string_equal(r->ev.tenant, ""); /* an unknown key names no tenant */

    r = REQ("192.0.2.1", "/v1/chat/completions", -1, "x-api-key", "tg_revoked");
    res = tg_ph_auth(r, MONO);
    assert_refused(res, 401, "revoked_key");
    assert_string_equal(res.message, "API key revoked");
    assert_string_equal(r->ev.tenant, "acme"); /* a revoked key's refusal is the tenant's */
    assert_string_equal(r->ev.key_id, "key_2");

    r = REQ("192.0.2.1", "/v1/chat/completions", -1, "x-api-key", "tg_disabled");
    assert_refused(tg_ph_auth(r, MONO), 401, "tenant_disabled");

    /* "Bearer" in any case, spaces after it skipped; the first credential line counts. */
    r = REQ("192.0.2.1", "/v1/chat/completions", -1, "AUTHORIZATION", "bEaReR   tg_good",
            "x-api-key", "tg_revoked");
    res = tg_ph_auth(r, MONO);
    assert_int_equal(res.rc, TG_PHASE_NEXT);
    assert_string_equal(r->ev.tenant, "acme");
    assert_string_equal(r->ev.key_id, "key_1");
    assert_int_equal(calls.answers + calls.json_answers, 0); /* a phase never answers itself */
}

/* ---- ROUTE ---------------------------------------------------------------------------- */

static void test_route(void **state)
{
    (void)state;
    tg_req_t *r = REQ("192.0.2.1", "/nowhere", -1, "Host", "x");
    /* AUTH's copy of the key's signing secret: wiped by every refusal too, not left in
     * the connection's memory until the next request (or after its free). */
#define GIVE_SECRET(r) (memcpy((r)->signing, "tgs_secret", 10), (r)->signing_len = 10)
#define ASSERT_WIPED(r)                                                                            \
    (assert_int_equal((r)->signing_len, 0), assert_int_equal((r)->signing[0], 0))
    GIVE_SECRET(r);
    tg_phase_res_t res = tg_ph_route(r, MONO);
    assert_refused(res, 404, "no_route");
    assert_string_equal(res.type, "not_found");
    ASSERT_WIPED(r);

    r = REQ("192.0.2.1", "/web/upload", 1025, "Host", "x");
    GIVE_SECRET(r);
    res = tg_ph_route(r, MONO);
    assert_refused(res, 413, "body_too_large");
    assert_string_equal(r->ev.route, "web");
    ASSERT_WIPED(r);

    r = REQ("192.0.2.1", "/web/upload", 1024, "Content-Encoding", "gzip");
    assert_int_equal(tg_ph_route(r, MONO).rc, TG_PHASE_NEXT); /* plain route: passed on */
    assert_int_equal(r->metered, 0);
    assert_int_equal(r->hold_body, 0);

    r = REQ("192.0.2.1", "/v1/chat/completions", 10, "Host", "x", "content-encoding", "gzip");
    GIVE_SECRET(r);
    assert_refused(tg_ph_route(r, MONO), 415, "content_encoding");
    ASSERT_WIPED(r);
    r = REQ("192.0.2.1", "/v1/chat/completions", 10, "Content-Encoding", "identity");
    assert_int_equal(tg_ph_route(r, MONO).rc, TG_PHASE_NEXT);

    /* An endpoint that mints a credential of the upstream's account: 403, on the path as
     * forwarded and on the path as matched (%-escapes and case). */
    r = REQ("192.0.2.1", "/v1/realtime/sessions", 10, "Host", "x");
    assert_refused(tg_ph_route(r, MONO), 403, "endpoint_not_metered");
    r = REQ("192.0.2.1", "/v1/Realtime/%73essions", 10, "Host", "x");
    GIVE_SECRET(r);
    assert_refused(tg_ph_route(r, MONO), 403, "endpoint_not_metered");
    ASSERT_WIPED(r);

    r = REQ("192.0.2.1", "/v1/chat/completions", 10, "Host", "x");
    assert_int_equal(tg_ph_route(r, MONO).rc, TG_PHASE_NEXT);
    assert_string_equal(r->ev.route, "ai");
    assert_int_equal(r->metered, 1);
    assert_int_equal(r->hold_body, 1); /* admission waits for the body */
    assert_non_null(fx.cx.xchg);       /* the exchange, made once and kept */
    tg_xchg_t *x = fx.cx.xchg;
    r = REQ("192.0.2.1", "/v1/models", -1, "Host", "x");
    assert_int_equal(tg_ph_route(r, MONO).rc, TG_PHASE_NEXT);
    assert_ptr_equal(fx.cx.xchg, x);
    assert_int_equal(r->hold_body, 0); /* nothing to hold */
}

/* ---- BODY ----------------------------------------------------------------------------- */

static void test_body_waits_then_reads(void **state)
{
    (void)state;
    static const char chat[] = "{\"model\":\"gpt-4o\",\"messages\":[],\"max_tokens\":5}";
    tg_req_t *r = REQ("192.0.2.1", "/v1/chat/completions", (int64_t)strlen(chat), "Host", "x");
    assert_int_equal(tg_ph_route(r, MONO).rc, TG_PHASE_NEXT);
    assert_int_equal(tg_ph_body(r, MONO).rc, TG_PHASE_WAIT);
    assert_int_equal(calls.body_timers, 1);
    assert_int_equal(calls.continues, 1);
    assert_int_equal(r->body_deadline_us, MONO + 20 * 1000000LL); /* server.body_timeout */
    /* The body came whole. */
    assert_int_equal(tg_buf_add(&body, chat, strlen(chat)), 0);
    r->msg_done = 1;
    assert_int_equal(tg_ph_body(r, MONO + 7).rc, TG_PHASE_NEXT);
    assert_string_equal(r->ev.model, "gpt-4o");
    assert_int_equal(r->content_length, (int64_t)tg_buf_len(&body));
    assert_int_equal(calls.body_timers, 1); /* not armed again */
}

static void test_body_mcp(void **state)
{
    (void)state;
    static const char junk[] = "{not json";
    tg_req_t *r = REQ("192.0.2.1", "/mcp", (int64_t)strlen(junk), "x-api-key", "tg_good");
    assert_int_equal(tg_ph_auth(r, MONO).rc, TG_PHASE_NEXT);
    assert_int_equal(tg_ph_route(r, MONO).rc, TG_PHASE_NEXT);
    assert_int_equal(tg_buf_add(&body, junk, strlen(junk)), 0);
    r->msg_done = 1;
    assert_int_equal(tg_ph_body(r, MONO).rc, TG_PHASE_DONE);
    assert_int_equal(calls.json_answers, 1);
    assert_int_equal(calls.status, 400);
    assert_string_equal(calls.reason, "malformed_request");
    assert_non_null(strstr(calls.json, "\"code\":-32700"));

    static const char call[] = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
                               "\"params\":{\"name\":\"rm_rf\",\"arguments\":{}}}";
    r = REQ("192.0.2.1", "/mcp", (int64_t)strlen(call), "x-api-key", "tg_good");
    assert_int_equal(tg_ph_auth(r, MONO).rc, TG_PHASE_NEXT);
    assert_int_equal(tg_ph_route(r, MONO).rc, TG_PHASE_NEXT);
    assert_int_equal(tg_buf_add(&body, call, strlen(call)), 0);
    r->msg_done = 1;
    assert_int_equal(tg_ph_body(r, MONO).rc, TG_PHASE_DONE);
    assert_int_equal(calls.json_answers, 1);
    assert_int_equal(calls.status, 403);
    assert_string_equal(calls.reason, "tool_denied");
    assert_string_equal(r->ev.tool, "rm_rf");
    assert_non_null(strstr(calls.json, "\"id\":7")); /* the JSON-RPC error answers the call */
}

/* ---- ADMIT ---------------------------------------------------------------------------- */

static void admit_ok(tg_req_t *r)
{
    TG_EVENT_SET(&r->ev, tenant, "acme", 4);
    assert_int_equal(tg_ph_route(r, MONO).rc, TG_PHASE_NEXT);
    assert_int_equal(tg_ph_admit(r, MONO).rc, TG_PHASE_NEXT);
    tg_ph_settle(r, MONO); /* the in-flight slot and reservations given back */
}

static void test_admit_client_address(void **state)
{
    (void)state;
    /* A trusted proxy appended its own X-Forwarded-For line after the client's forged
     * one: the lines are joined, the client is the last address no trusted proxy stands
     * for. (One line alone would believe the forged 6.6.6.6, or the proxy itself.) */
    tg_req_t *r = REQ("10.0.0.5", "/web/x", -1, "X-Forwarded-For", "6.6.6.6", "Host", "x",
                      "x-forwarded-for", "198.51.100.7, 10.0.0.9");
    admit_ok(r);
    assert_string_equal(r->ev.client_ip, "198.51.100.7");

    r = REQ("10.0.0.5", "/web/x", -1, "X-Forwarded-For", "198.51.100.7", "X-Forwarded-For",
            "10.1.2.3");
    admit_ok(r);
    assert_string_equal(r->ev.client_ip, "198.51.100.7");

    /* From a peer that is not a trusted proxy the header is not believed. */
    r = REQ("203.0.113.4", "/web/x", -1, "X-Forwarded-For", "198.51.100.7");
    admit_ok(r);
    assert_string_equal(r->ev.client_ip, "203.0.113.4");

    /* A trusted peer without the header is the client. */
    r = REQ("10.0.0.5", "/web/x", -1, "Host", "x");
    admit_ok(r);
    assert_string_equal(r->ev.client_ip, "10.0.0.5");
}

/* ---- the loop ------------------------------------------------------------------------- */

static void test_run_answers_once_and_stops(void **state)
{
    (void)state;
    tg_req_t *r = REQ("192.0.2.1", "/v1/chat/completions", -1, "Host", "x");
    r->phase = TG_PHASE_AUTH;
    tg_req_run(r, MONO);
    assert_int_equal(calls.answers, 1);
    assert_int_equal(calls.status, 401);
    assert_string_equal(calls.type, "unauthorized");
    assert_string_equal(calls.reason, "missing_key");
    assert_string_equal(r->ev.reason, "missing_key");
    assert_int_equal(r->phase, TG_PHASE_METER);
    assert_int_equal(calls.upstreams, 0);
    assert_int_equal(r->route == NULL, 1); /* ROUTE never ran */
    assert_int_equal(r->up_start_mono, 0); /* no upstream call to time */
}

static void test_run_waits_and_resumes(void **state)
{
    (void)state;
    static const char chat[] = "{\"model\":\"gpt-4o-mini\",\"messages\":[]}";
    tg_req_t *r = REQ("192.0.2.1", "/v1/chat/completions", (int64_t)strlen(chat), "Authorization",
                      "Bearer tg_good", "Expect", "100-continue");
    r->phase = TG_PHASE_AUTH;
    tg_req_run(r, MONO);
    assert_int_equal(r->phase, TG_PHASE_BODY); /* waiting for the body */
    assert_int_equal(calls.upstreams, 0);
    assert_int_equal(calls.continues, 1);
    assert_int_equal(tg_buf_add(&body, chat, strlen(chat)), 0);
    r->msg_done = 1;
    tg_req_run(r, MONO + 1000);
    assert_int_equal(r->phase, TG_PHASE_METER);
    assert_int_equal(calls.upstreams, 1); /* FORWARD handed it to the connection */
    assert_int_equal(calls.continues, 1); /* (a held body's 100 was sent by BODY) */
    assert_int_equal(calls.answers + calls.json_answers, 0);
    assert_string_equal(r->ev.model, "gpt-4o-mini");
    tg_ph_settle(r, MONO + 2000);
}

/* A streamed (not held) body: FORWARD sends the 100 Continue, then starts the upstream (and
 * its time is the upstream call's start). */
static void test_run_streams_plain_route(void **state)
{
    (void)state;
    tg_req_t *r = REQ("192.0.2.1", "/web/put", 100, "x-api-key", "tg_good");
    r->phase = TG_PHASE_AUTH;
    tg_req_run(r, MONO);
    assert_int_equal(r->phase, TG_PHASE_METER);
    assert_int_equal(calls.continues, 1);
    assert_int_equal(calls.upstreams, 1);
    assert_int_equal(calls.body_timers, 0);
    /* FORWARD's time starts the upstream latency (event.h): 1 at least, so 0 says "none". */
    assert_int_equal(r->up_start_mono, MONO);
    assert_int_equal(tg_req_upstream_us(r, MONO + 250), 250);
    assert_int_equal(tg_req_upstream_us(r, MONO), 1);
    tg_ph_settle(r, MONO);
}

/* ---- the answer's phases ------------------------------------------------------------- */

/* METER's end and SETTLE through billing: an upstream error is a failure with nothing
 * estimated; a 2xx AI answer whose client left before its usage came (drained) is
 * billable on an estimate (input: a token per 4 body bytes); a refusal stays one. */
static void test_meter_settle(void **state)
{
    (void)state;
    static const char chat[] = "{\"model\":\"gpt-4o\",\"messages\":[],\"max_tokens\":5}";
    for (int drained = 0; drained <= 1; drained++) {
        tg_req_t *r =
            REQ("192.0.2.1", "/v1/chat/completions", (int64_t)strlen(chat), "x-api-key", "tg_good");
        r->phase = TG_PHASE_AUTH;
        tg_req_run(r, MONO);
        assert_int_equal(tg_buf_add(&body, chat, strlen(chat)), 0);
        r->msg_done = 1;
        r->ev.bytes_in = (int64_t)strlen(chat);
        tg_req_run(r, MONO);
        assert_int_equal(calls.upstreams, 1);
        if (drained) {
            r->drain = 1;
            r->ev.status = 200;
            TG_EVENT_SET(&r->ev, reason, "client_closed", 13);
        } else {
            r->ev.status = 502;
            TG_EVENT_SET(&r->ev, reason, "upstream_unreachable", 20);
        }
        tg_ph_meter(r, MONO + 10);
        assert_int_equal(r->phase, TG_PHASE_METER);
        tg_ph_settle(r, MONO + 10);
        assert_int_equal(r->phase, TG_PHASE_SETTLE);
        assert_int_equal(r->metered, 0); /* the exchange follows no request now */
        if (drained) {
            assert_int_equal(r->ev.outcome, TG_OUTCOME_BILLABLE);
            assert_int_equal(r->ev.tokens_in, ((int64_t)strlen(chat) + 3) / 4);
        } else {
            assert_int_equal(r->ev.outcome, TG_OUTCOME_FAILED);
            assert_int_equal(r->ev.tokens_in, TG_TOKENS_UNKNOWN);
        }
    }
    tg_req_t *r = REQ("192.0.2.1", "/v1/chat/completions", -1, "Host", "x");
    r->phase = TG_PHASE_AUTH;
    tg_req_run(r, MONO);
    r->ev.status = 401;
    tg_ph_meter(r, MONO);
    tg_ph_settle(r, MONO);
    assert_int_equal(r->ev.outcome, TG_OUTCOME_REJECTED);
    assert_string_equal(r->ev.reason, "missing_key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_body_waits_then_reads),
        cmocka_unit_test(test_body_mcp),
        cmocka_unit_test(test_admit_client_address),
        cmocka_unit_test(test_run_answers_once_and_stops),
        cmocka_unit_test(test_run_waits_and_resumes),
        cmocka_unit_test(test_run_streams_plain_route),
        cmocka_unit_test(test_meter_settle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
