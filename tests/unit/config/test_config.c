/* Tests for src/config/config.c: good configs parse into the expected struct,
 * bad ones fail with "FILE:LINE: KEY.PATH: problem" (the exact text is part of
 * the contract: users grep for it and docs quote it), routing picks the longest
 * prefix. Every error path also runs under ASan/LSan in `make unit-asan`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include "config/config.h"

static tg_config_t *parse_ok(const char *yaml)
{
    tg_config_t *c = NULL;
    tg_err_t err = {{0}};
    if (tg_config_parse("t.yaml", yaml, strlen(yaml), &c, &err) != 0)
        fail_msg("unexpected error: %s", err.msg);
    assert_non_null(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    return c;
}

/* The whole message, exactly. */
static void expect_err(const char *yaml, const char *want)
{
    tg_config_t *c = (tg_config_t *)&c;
    tg_err_t err = {{0}};
    int rc = tg_config_parse("t.yaml", yaml, strlen(yaml), &c, &err);
    if (rc == 0) {
        tg_config_unref(c);
        fail_msg("parsed, expected: %s", want);
    }
    assert_int_equal(rc, -1);
    assert_null(c);
    assert_string_equal(err.msg, want);
}

/* ---- good configs -------------------------------------------------------- */

static const char design_example[] =
    "server:   { listen: 127.0.0.1:8080, admin_listen: 127.0.0.1:9090, workers: auto }\n"
    "store:    sqlite:./tollgate.db          # or postgres://user@host/db\n"
    "log:      { access: stdout, level: info }\n"
    "upstreams:\n"
    "  - name: openai\n"
    "    targets: [https://api.openai.com]\n"
    "    headers: { Authorization: \"Bearer ${OPENAI_API_KEY}\" }\n"
    "routes:\n"
    "  - { name: chat, path_prefix: /v1/, upstream: openai, kind: openai }   # kind: "
    "http|openai|anthropic|mcp\n";

static void test_design_example(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-test-123", 1);
    tg_config_t *c = parse_ok(design_example);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_string_equal(c->server.listen, "127.0.0.1:8080");
    assert_string_equal(c->server.admin_listen, "127.0.0.1:9090");
    assert_int_equal(c->server.workers, cores < 1 ? 1 : cores);
    assert_string_equal(c->store, "sqlite:./tollgate.db");
    assert_string_equal(c->log.access, "stdout");
    assert_string_equal(c->log.level, "info");
    assert_string_equal(c->recorder.spool, "./tollgate.db.spool");
    assert_int_equal(c->nupstreams, 1);
    tg_upstream_conf_t *u = &c->upstreams[0];
    assert_string_equal(u->name, "openai");
    assert_int_equal(u->ntargets, 1);
    assert_string_equal(u->targets[0].url, "https://api.openai.com");
    assert_int_equal(u->nheaders, 1);
    assert_string_equal(u->headers[0].name, "Authorization");
    assert_string_equal(u->headers[0].value, "Bearer sk-test-123");
    assert_int_equal(c->nroutes, 1);
    assert_string_equal(c->routes[0].name, "chat");
    assert_string_equal(c->routes[0].path_prefix, "/v1/");
    assert_string_equal(c->routes[0].upstream, "openai");
    assert_ptr_equal(c->routes[0].up, u);
    assert_int_equal(c->routes[0].kind, TG_ROUTE_OPENAI);
    tg_config_unref(c);
    unsetenv("OPENAI_API_KEY");
}

static void test_full(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok("server:\n"
                              "  listen: 0.0.0.0:8000\n"
                              "  admin_listen: \"[::1]:9000\"\n"
                              "  workers: 4\n"
                              "  max_header_bytes: 32k\n"
                              "  max_body: 2m\n"
                              "  max_decoded_body: 48m\n"
                              "  idle_timeout: 2m\n"
                              "  header_timeout: 5s\n"
                              "  body_timeout: 20s\n"
                              "  drain_timeout: 1500\n"
                              "ai:\n"
                              "  drain_after_disconnect: 200ms\n"
                              "store: postgres://tg@db/tollgate\n"
                              "log:\n"
                              "  access: /var/log/tollgate/access.log\n"
                              "  level: debug\n"
                              "  unauthenticated_per_minute: 20\n"
                              "retention:\n"
                              "  events_days: 0\n"
                              "  aggregates_days: 365\n"
                              "recorder:\n"
                              "  queue_size: 1024\n"
                              "  flush_interval: 250ms\n"
                              "  spool: /var/lib/tollgate/spool\n"
                              "upstreams:\n"
                              "  - name: anthropic\n"
                              "    targets:\n"
                              "      - https://api.anthropic.com/\n"
                              "      - HTTP://10.0.0.2:8080\n"
                              "    headers:\n"
                              "      x-api-key: abc\n"
                              "      anthropic-version: \"2023-06-01\"\n"
                              "    connect_timeout: 1s\n"
                              "    timeout: 0\n"
                              "    idle_timeout: 1h\n"
                              "    max_fails: 5\n"
                              "    fail_timeout: 30s\n"
                              "  - name: tools\n"
                              "    targets: [\"http://[::1]:7000\"]\n"
                              "routes:\n"
                              "  - name: claude\n"
                              "    path_prefix: /v1/messages\n"
                              "    upstream: anthropic\n"
                              "    kind: anthropic\n"
                              "  - { name: mcp, path_prefix: /mcp, upstream: tools, kind: mcp }\n"
                              "  - { name: rest, path_prefix: /, upstream: tools }\n");
    assert_string_equal(c->path, "t.yaml");
    assert_string_equal(c->server.listen, "0.0.0.0:8000");
    assert_string_equal(c->server.admin_listen, "[::1]:9000");
    assert_int_equal(c->server.workers, 4);
    assert_int_equal(c->server.max_header_bytes, 32 * 1024);
    assert_int_equal(c->server.max_body, 2 * 1024 * 1024);
    assert_int_equal(c->server.max_decoded_body, 48 * 1024 * 1024);
    assert_int_equal(c->server.idle_timeout_ms, 120000);
    assert_int_equal(c->server.header_timeout_ms, 5000);
    assert_int_equal(c->server.body_timeout_ms, 20000);
    assert_int_equal(c->server.drain_timeout_ms, 1500);
    assert_int_equal(c->ai.drain_after_disconnect_ms, 200);
    assert_string_equal(c->store, "postgres://tg@db/tollgate");
    assert_string_equal(c->log.access, "/var/log/tollgate/access.log");
    assert_string_equal(c->log.level, "debug");
    assert_int_equal(c->log.unauthenticated_per_minute, 20);
    assert_int_equal(c->retention.events_days, 0);
    assert_int_equal(c->retention.aggregates_days, 365);
    assert_int_equal(c->recorder.queue_size, 1024);
    assert_int_equal(c->recorder.flush_ms, 250);
    assert_string_equal(c->recorder.spool, "/var/lib/tollgate/spool");
    assert_int_equal(c->nupstreams, 2);
    tg_upstream_conf_t *u = &c->upstreams[0];
    assert_int_equal(u->ntargets, 2);
    assert_string_equal(u->targets[0].url, "https://api.anthropic.com");
    assert_string_equal(u->targets[1].url, "http://10.0.0.2:8080");
    assert_int_equal(atomic_load(&u->targets[1].fails), 0);
    assert_int_equal(u->nheaders, 2);
    assert_string_equal(u->headers[1].name, "anthropic-version");
    assert_string_equal(u->headers[1].value, "2023-06-01");
    assert_int_equal(u->connect_timeout_ms, 1000);
    assert_int_equal(u->timeout_ms, 0);
    assert_int_equal(u->idle_timeout_ms, 3600000);
    assert_int_equal(u->max_fails, 5);
    assert_int_equal(u->fail_timeout_ms, 30000);
    assert_string_equal(c->upstreams[1].targets[0].url, "http://[::1]:7000");
    assert_int_equal(c->nroutes, 3);
    assert_int_equal(c->routes[0].kind, TG_ROUTE_ANTHROPIC);
    assert_int_equal(c->routes[1].kind, TG_ROUTE_MCP);
    assert_int_equal(c->routes[2].kind, TG_ROUTE_HTTP);
    assert_ptr_equal(c->routes[2].up, &c->upstreams[1]);
    tg_config_unref(c);
}

static void check_defaults(const tg_config_t *c)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_string_equal(c->server.listen, "127.0.0.1:8080");
    assert_string_equal(c->server.admin_listen, "127.0.0.1:9090");
    assert_int_equal(c->server.workers, cores < 1 ? 1 : cores);
    assert_int_equal(c->server.max_header_bytes, 16384);
    assert_int_equal(c->server.max_body, 10 * 1024 * 1024);
    assert_int_equal(c->server.max_decoded_body, 64 * 1024 * 1024);
    assert_int_equal(c->server.idle_timeout_ms, 60000);
    assert_int_equal(c->server.header_timeout_ms, 10000);
    assert_int_equal(c->server.body_timeout_ms, 60000);
    assert_int_equal(c->server.drain_timeout_ms, 30000);
    assert_int_equal(c->ai.drain_after_disconnect_ms, 30000);
    assert_string_equal(c->store, "sqlite:./tollgate.db");
    assert_string_equal(c->log.access, "stdout");
    assert_string_equal(c->log.level, "info");
    assert_int_equal(c->log.unauthenticated_per_minute, 100);
    assert_int_equal(c->retention.events_days, 90);
    assert_int_equal(c->retention.aggregates_days, 730);
    assert_int_equal(c->recorder.queue_size, 65536);
    assert_int_equal(c->recorder.flush_ms, 50);
    assert_string_equal(c->recorder.spool, "./tollgate.db.spool");
    assert_int_equal(c->metrics.max_tenants, 1000);
    assert_int_equal(c->metrics.max_models, 200);
    assert_int_equal(c->metrics.max_tools, 200);
    assert_int_equal(c->nupstreams, 0);
    assert_int_equal(c->nroutes, 0);
    assert_int_equal(c->max_output_tokens, 4096);
    assert_int_equal(c->nbudget_thresholds, 3);
    assert_int_equal(c->budget_thresholds[0], 80);
    assert_int_equal(c->budget_thresholds[1], 90);
    assert_int_equal(c->budget_thresholds[2], 100);
    assert_int_equal(c->nprices, 0);
    assert_null(c->prices);
}

static void test_minimal(void **state)
{
    (void)state;
    const char *docs[] = {"", "# nothing but a comment\n", "~\n",
                          "server:\nlog:\nupstreams:\nroutes:\n",
                          "server: {}\nupstreams: []\nroutes: []\n"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        tg_config_t *c = parse_ok(docs[i]);
        check_defaults(c);
        tg_config_unref(c);
    }
    tg_config_t *c = parse_ok("upstreams:\n"
                              "  - name: up\n"
                              "    targets: [http://127.0.0.1:8081]\n");
    tg_upstream_conf_t *u = &c->upstreams[0];
    assert_int_equal(u->nheaders, 0);
    assert_null(u->headers);
    assert_int_equal(u->connect_timeout_ms, 5000);
    assert_int_equal(u->timeout_ms, 60000);
    assert_int_equal(u->idle_timeout_ms, 30000);
    assert_int_equal(u->max_fails, 3);
    assert_int_equal(u->fail_timeout_ms, 10000);
    tg_config_unref(c);
}

static void test_flow_style(void **state)
{
    (void)state;
    tg_config_t *c =
        parse_ok("{ server: { listen: \"[::]:8080\", admin_listen: off, workers: 2 },"
                 "  store: \"sqlite:/tmp/t g.db\","
                 "  upstreams: [ { name: a, targets: [http://a:1, http://b:2/] } ],"
                 "  routes: [ { name: r, path_prefix: /x, upstream: a, kind: http } ] }\n");
    assert_string_equal(c->server.listen, "[::]:8080");
    assert_string_equal(c->server.admin_listen, "");
    assert_int_equal(c->server.workers, 2);
    assert_string_equal(c->recorder.spool, "/tmp/t g.db.spool");
    assert_string_equal(c->upstreams[0].targets[1].url, "http://b:2");
    assert_ptr_equal(c->routes[0].up, &c->upstreams[0]);
    tg_config_unref(c);

    c = parse_ok("server: { listen: localhost:0, admin_listen: \"\" }\n");
    assert_string_equal(c->server.listen, "localhost:0");
    assert_string_equal(c->server.admin_listen, "");
    tg_config_unref(c);
}

static void test_env(void **state)
{
    (void)state;
    setenv("TG_T_HOST", "10.1.2.3", 1);
    setenv("TG_T_PORT", "8443", 1);
    setenv("TG_T_WORKERS", "3", 1);
    setenv("TG_T_SECRET", "s3cr#t: {not yaml}", 1);
    setenv("TG_T_EMPTY", "", 1);
    tg_config_t *c = parse_ok("server:\n"
                              "  listen: ${TG_T_HOST}:${TG_T_PORT}\n"
                              "  workers: ${TG_T_WORKERS}\n"
                              "# ${TG_T_UNSET_IN_COMMENT} is never expanded\n"
                              "upstreams:\n"
                              "  - name: u\n"
                              "    targets: [\"https://${TG_T_HOST}\"]\n"
                              "    headers:\n"
                              "      X-Secret: ${TG_T_SECRET}\n"
                              "      X-Literal: \"$${TG_T_HOST} costs $5 ${TG_T_EMPTY}$\"\n");
    assert_string_equal(c->server.listen, "10.1.2.3:8443");
    assert_int_equal(c->server.workers, 3);
    assert_string_equal(c->upstreams[0].targets[0].url, "https://10.1.2.3");
    assert_string_equal(c->upstreams[0].headers[0].value, "s3cr#t: {not yaml}");
    assert_string_equal(c->upstreams[0].headers[1].value, "${TG_T_HOST} costs $5 $");
    tg_config_unref(c);

    setenv("TG_T_WORKERS", "auto", 1);
    c = parse_ok("server: { workers: \"${TG_T_WORKERS}\" }\n");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->server.workers, cores < 1 ? 1 : cores);
    tg_config_unref(c);
    unsetenv("TG_T_HOST");
    unsetenv("TG_T_PORT");
    unsetenv("TG_T_WORKERS");
    unsetenv("TG_T_SECRET");
    unsetenv("TG_T_EMPTY");
}

static void test_units(void **state)
{
    (void)state;
    static const struct {
        const char *size;
        size_t bytes;
    } sizes[] = {{"1", 1},           {"4096", 4096},   {"64k", 65536},  {"64K", 65536},
                 {"10m", 10u << 20}, {"1g", 1u << 30}, {"\"8k\"", 8192}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char y[128];
        snprintf(y, sizeof y, "server: { max_body: %s }\n", sizes[i].size);
        tg_config_t *c = parse_ok(y);
        assert_int_equal(c->server.max_body, sizes[i].bytes);
        tg_config_unref(c);
    }
    static const struct {
        const char *d;
        long ms;
    } durs[] = {{"1", 1},     {"250", 250},   {"250ms", 250},
                {"5s", 5000}, {"2m", 120000}, {"1h", 3600000}};
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
        char y[128];
        snprintf(y, sizeof y, "recorder: { flush_interval: %s }\n", durs[i].d);
        tg_config_t *c = parse_ok(y);
        assert_int_equal(c->recorder.flush_ms, durs[i].ms);
        tg_config_unref(c);
    }
}

static void test_store_and_spool(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok("store: sqlite:./.run/tollgate.db\n");
    assert_string_equal(c->recorder.spool, "./.run/tollgate.db.spool");
    tg_config_unref(c);
    c = parse_ok("store: \"sqlite::memory:\"\n");
    assert_string_equal(c->recorder.spool, "./tollgate.spool");
    tg_config_unref(c);
    c = parse_ok("store: postgres://u:p@h/db\n");
    assert_string_equal(c->recorder.spool, "./tollgate.spool");
    tg_config_unref(c);
    c = parse_ok("store: postgresql://u:p@h/db?sslmode=require\n");
    assert_string_equal(c->store, "postgresql://u:p@h/db?sslmode=require");
    tg_config_unref(c);
    c = parse_ok("store: sqlite:a.db\nrecorder: { spool: /tmp/s }\n");
    assert_string_equal(c->recorder.spool, "/tmp/s");
    tg_config_unref(c);
}

static void test_anchors(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok("upstreams:\n"
                              "  - { name: a, targets: &t [http://x:1, http://y:2] }\n"
                              "  - { name: b, targets: *t }\n");
    assert_string_equal(c->upstreams[1].targets[1].url, "http://y:2");
    tg_config_unref(c);
}

/* ---- bad configs: FILE:LINE: KEY: problem -------------------------------- */

/* audit.bodies: none (the default), hash and encrypt parse; encrypt without a KEK is refused
 * naming both keys; audit.max_body defaults to 256 KiB. */
static void test_audit_bodies(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok("store: sqlite:x\n");
    assert_int_equal(c->audit_bodies, TG_BODIES_NONE);
    tg_config_unref(c);
    c = parse_ok("store: sqlite:x\naudit:\n  bodies: hash\n");
    assert_int_equal(c->audit_bodies, TG_BODIES_HASH);
    assert_int_equal(c->audit_max_body, 256 * 1024);
    tg_config_unref(c);
    expect_err("store: sqlite:x\naudit:\n  bodies: encrypt\n",
               "t.yaml:3: audit.bodies: encrypt needs encryption.kek_file or encryption.kek_env "
               "(the bodies are sealed by the KEK)");
    setenv("TG_TEST_BODIES_KEK", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
           1);
    c = parse_ok("store: sqlite:x\nencryption: { kek_env: TG_TEST_BODIES_KEK }\n"
                 "audit: { bodies: encrypt, max_body: 1k }\n");
    assert_int_equal(c->audit_bodies, TG_BODIES_ENCRYPT);
    assert_int_equal(c->audit_max_body, 1024);
    tg_config_unref(c);
    unsetenv("TG_TEST_BODIES_KEK");
    expect_err("store: sqlite:x\naudit:\n  bodies: HASH\n",
               "t.yaml:3: audit.bodies: unknown value \"HASH\" (expected none, hash or encrypt)");
}

static void test_err_keys(void **state)
{
    (void)state;
    expect_err("servr:\n  listen: 127.0.0.1:1\n",
               "t.yaml:1: servr: unknown key (did you mean \"server\"?)");
    expect_err("server:\n  workers: 2\n  lisen: 127.0.0.1:1\n",
               "t.yaml:3: server.lisen: unknown key (did you mean \"listen\"?)");
    expect_err("store: sqlite:x\nfrobnicate: 1\n",
               "t.yaml:2: frobnicate: unknown key (expected one of: server, store, log, "
               "retention, recorder, upstreams, routes, defaults, prices, ai, metrics, alarms, "
               "alarms_interval, actions, notify, notify_retry, limits, auth, jwt, encryption, "
               "signing, audit)");
    expect_err("server:\n  idle_timeout_ms: 5000\n",
               "t.yaml:2: server.idle_timeout_ms: unknown key (write \"idle_timeout: 5s\"; "
               "durations take a unit, a plain number is milliseconds)");
    expect_err("log:\n  level: info\n  level: debug\n",
               "t.yaml:3: log.level: duplicate key (first at line 2)");
    expect_err("upstreams:\n  - name: a\n    targets: [http://a]\n    weight: 3\n",
               "t.yaml:4: upstreams[0].weight: unknown key (expected one of: name, targets, "
               "headers, connect_timeout, timeout, idle_timeout, max_fails, fail_timeout, ca_file, "
               "credentials)");
    expect_err("routes:\n  - { name: r, path_prefix: /, upstream: a, knd: http }\n",
               "t.yaml:2: routes[0].knd: unknown key (did you mean \"kind\"?)");
}

static void test_limits_and_proxies(void **state)
{
    (void)state;
    tg_config_t *c;
    tg_err_t err;
    const char *y = "server:\n  trusted_proxies: [10.0.0.0/8, \"::1\"]\n"
                    "defaults:\n  limits: { rpm: 600, burst: 50, concurrency: 8 }\n";
    assert_int_equal(tg_config_parse("t.yaml", y, strlen(y), &c, &err), 0);
    assert_int_equal(c->default_limits.rpm, 600);
    assert_int_equal(c->default_limits.rps, -1);
    assert_int_equal(c->default_limits.rph, -1);
    assert_int_equal(c->default_limits.burst, 50);
    assert_int_equal(c->default_limits.concurrency, 8);
    assert_int_equal(c->trusted_proxies.n, 2);
    tg_ip_t ip;
    assert_int_equal(tg_ip_parse("10.9.8.7", 8, &ip), 0);
    assert_true(tg_cidr_list_match(&c->trusted_proxies, &ip));
    tg_config_unref(c);
    const char *none = "store: sqlite:x\n";
    assert_int_equal(tg_config_parse("t.yaml", none, strlen(none), &c, &err), 0);
    assert_int_equal(c->default_limits.rpm, -1);
    assert_int_equal(c->trusted_proxies.n, 0);
    tg_config_unref(c);
    expect_err("defaults:\n  limits: { rpm: 1, rps: 2 }\n",
               "t.yaml:2: defaults.limits: give one of rps, rpm or rph, not 2");
    expect_err("defaults:\n  limits: { rpmm: 1 }\n",
               "t.yaml:2: defaults.limits.rpmm: unknown key (did you mean \"rpm\"?)");
    expect_err("server:\n  trusted_proxies: [10.0.0.1/8]\n",
               "t.yaml:2: server.trusted_proxies[0]: \"10.0.0.1/8\" has host bits set (did you "
               "mean 10.0.0.0/8?)");
}

static void test_err_types(void **state)
{
    (void)state;
    expect_err("- a\n- b\n",
               "t.yaml:1: expected a mapping (server:, store:, upstreams:, ...) at the top level, "
               "found a list");
    expect_err("server: [1, 2]\n", "t.yaml:1: server: expected a mapping, found a list");
    expect_err("server:\n  listen: { host: x }\n",
               "t.yaml:2: server.listen: expected a host:port address, found a mapping");
    expect_err("store:\n", "t.yaml:1: store: missing value (expected a store URL)");
    expect_err("upstreams: { name: a }\n",
               "t.yaml:1: upstreams: expected a list of upstreams, found a mapping");
    expect_err("upstreams:\n  - openai\n",
               "t.yaml:2: upstreams[0]: expected a mapping with name and targets, found a "
               "single value");
    expect_err("routes:\n  - chat\n",
               "t.yaml:2: routes[0]: expected a mapping with name, path_prefix and upstream, "
               "found a single value");
    expect_err("upstreams:\n  - name: a\n    targets: http://a\n",
               "t.yaml:3: upstreams[0].targets: expected a list of URLs, e.g. "
               "[https://api.example.com], found a single value");
    expect_err("upstreams:\n  - name: a\n    targets: [http://a]\n    headers: [x]\n",
               "t.yaml:4: upstreams[0].headers: expected a mapping of header names to values, "
               "found a list");
}

static void test_err_numbers(void **state)
{
    (void)state;
    expect_err("server:\n  workers: -1\n",
               "t.yaml:2: server.workers: must be a positive number or \"auto\" (got -1)");
    expect_err("server: { workers: 0 }\n",
               "t.yaml:1: server.workers: must be a positive number or \"auto\" (got 0)");
    expect_err("server: { workers: lots }\n",
               "t.yaml:1: server.workers: expected a positive number or \"auto\", got \"lots\"");
    expect_err("server: { workers: 5000 }\n",
               "t.yaml:1: server.workers: must be at most 256 (got 5000)");
    /* The server's own cap, not a larger one it would cut down without a word. */
    tg_config_t *c = parse_ok("server: { workers: 256 }\n");
    assert_int_equal(c->server.workers, 256);
    tg_config_unref(c);
    expect_err("server: { workers: 1024 }\n",
               "t.yaml:1: server.workers: must be at most 256 (got 1024)");
    expect_err("server:\n  listen: 127.0.0.1:1\n  workers: 257\n",
               "t.yaml:3: server.workers: must be at most 256 (got 257)");
    expect_err("server:\n\n  max_body: 10x\n",
               "t.yaml:3: server.max_body: bad size \"10x\" (bytes, or a number with k, m or g, "
               "e.g. 64k, 10m)");
    expect_err("server: { max_body: -5 }\n",
               "t.yaml:1: server.max_body: must not be negative (got -5)");
    expect_err("server: { max_header_bytes: 0 }\n",
               "t.yaml:1: server.max_header_bytes: must be positive (got 0)");
    expect_err("server: { max_body: 99999999999999999999999 }\n",
               "t.yaml:1: server.max_body: too large (got 99999999999999999999999)");
    expect_err("server: { idle_timeout: 5y }\n",
               "t.yaml:1: server.idle_timeout: bad duration \"5y\" (milliseconds, or a number "
               "with ms, s, m, h or d, e.g. 250ms, 5s)");
    expect_err("server: { idle_timeout: 1.5s }\n",
               "t.yaml:1: server.idle_timeout: bad duration \"1.5s\" (milliseconds, or a number "
               "with ms, s, m, h or d, e.g. 250ms, 5s)");
    expect_err("ai: { drain_after_disconnect: -1s }\n",
               "t.yaml:1: ai.drain_after_disconnect: must not be negative (got -1s)");
    expect_err("server: { header_timeout: -1s }\n",
               "t.yaml:1: server.header_timeout: must not be negative (got -1s)");
    expect_err("server: { drain_timeout: 0 }\n",
               "t.yaml:1: server.drain_timeout: must be positive (got 0)");
    expect_err("upstreams:\n  - name: a\n    targets: [http://a]\n    fail_timeout: 9999h\n",
               "t.yaml:4: upstreams[0].fail_timeout: too large (got 9999h; at most 7 days)");
    expect_err("retention:\n  events_days: -1\n",
               "t.yaml:2: retention.events_days: must not be negative (got -1)");
    expect_err("retention:\n  aggregates_days: 1e3\n",
               "t.yaml:2: retention.aggregates_days: expected a whole number, got \"1e3\"");
    expect_err("log:\n  unauthenticated_per_minute: 0\n",
               "t.yaml:2: log.unauthenticated_per_minute: must be positive (got 0)");
    expect_err(
        "log:\n  unauthenticated_per_minute: 2000000\n",
        "t.yaml:2: log.unauthenticated_per_minute: too large (got 2000000; at most 1000000)");
    expect_err("metrics:\n  max_tenants: -5\n",
               "t.yaml:2: metrics.max_tenants: must not be negative (got -5)");
    expect_err("metrics:\n  max_models: 2.5\n",
               "t.yaml:2: metrics.max_models: expected a whole number, got \"2.5\"");
    expect_err("metrics:\n  max_tools: many\n",
               "t.yaml:2: metrics.max_tools: expected a whole number, got \"many\"");
    expect_err("metrics:\n  max_tenants: 0\n",
               "t.yaml:2: metrics.max_tenants: must be positive (got 0)");
    expect_err("metrics:\n  max_tenants: 1000001\n",
               "t.yaml:2: metrics.max_tenants: too large (got 1000001; at most 1000000)");
    expect_err("metrics:\n  max_tenant: 5\n",
               "t.yaml:2: metrics.max_tenant: unknown key (did you mean \"max_tenants\"?)");
    tg_config_t *mc = parse_ok("metrics: { max_tenants: 7, max_models: 8, max_tools: 9 }\n");
    assert_int_equal(mc->metrics.max_tenants, 7);
    assert_int_equal(mc->metrics.max_models, 8);
    assert_int_equal(mc->metrics.max_tools, 9);
    tg_config_unref(mc);
    expect_err("recorder:\n  queue_size: 0\n",
               "t.yaml:2: recorder.queue_size: must be positive (got 0)");
    expect_err("upstreams:\n  - name: a\n    targets: [http://a]\n    max_fails: 0\n",
               "t.yaml:4: upstreams[0].max_fails: must be positive (got 0)");
}

static void test_err_listen(void **state)
{
    (void)state;
    expect_err("server:\n  listen: localhost\n",
               "t.yaml:2: server.listen: bad address \"localhost\": missing port (expected "
               "host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: ::1:8080\n",
               "t.yaml:2: server.listen: bad address \"::1:8080\": IPv6 addresses need brackets, "
               "e.g. [::1]:8080 (expected host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: \"[::1]8080\"\n",
               "t.yaml:2: server.listen: bad address \"[::1]8080\": expected \":PORT\" after "
               "\"]\" (expected host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: \"[fe80::zz]:80\"\n",
               "t.yaml:2: server.listen: bad address \"[fe80::zz]:80\": bad IPv6 address "
               "(expected host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: 127.0.0.1:http\n",
               "t.yaml:2: server.listen: bad address \"127.0.0.1:http\": bad port (expected "
               "host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: 127.0.0.1:99999999999999999999999\n",
               "t.yaml:2: server.listen: bad address \"127.0.0.1:99999999999999999999999\": port "
               "out of range (expected host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: 127.0.0.1:70000\n",
               "t.yaml:2: server.listen: bad address \"127.0.0.1:70000\": port out of range "
               "(expected host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  admin_listen: \":9090\"\n",
               "t.yaml:2: server.admin_listen: bad address \":9090\": missing host (expected "
               "host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: gateway.internal:8080\n",
               "t.yaml:2: server.listen: bad address \"gateway.internal:8080\": host must be an IP "
               "address or localhost (expected host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: 10.0.0.256:8080\n",
               "t.yaml:2: server.listen: bad address \"10.0.0.256:8080\": host must be an IP "
               "address or localhost (expected host:port, IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: \"\"\n",
               "t.yaml:2: server.listen: bad address \"\": missing host (expected host:port, "
               "IPv6 as [::1]:8080)");
    expect_err("server:\n  listen: 127.0.0.1:8080\n  admin_listen: 127.0.0.1:8080\n",
               "t.yaml:3: server.admin_listen: same address as server.listen");
}

static void test_err_targets(void **state)
{
    (void)state;
    const char *head = "upstreams:\n  - name: a\n    targets:\n      - http://ok\n      - ";
    static const struct {
        const char *target, *msg;
    } cases[] = {
        {"ftp://x", "bad target \"ftp://x\": must start with http:// or https://"},
        {"api.openai.com", "bad target \"api.openai.com\": must start with http:// or https://"},
        {"http://", "bad target \"http://\": missing host"},
        {"https:///v1", "bad target \"https:///v1\": missing host"},
        {"http://x/v1", "bad target \"http://x/v1\": no path allowed (targets are "
                        "scheme://host[:port]; the request path is forwarded as is)"},
        {"http://x?key=1", "bad target: no query or fragment allowed (not echoed: may hold a key)"},
        {"http://x/#frag", "bad target: no query or fragment allowed (not echoed: may hold a key)"},
        {"http://u:pw@x", "credentials in a target URL are not supported (use headers)"},
        {"http://x:0", "bad target \"http://x:0\": port out of range"},
        {"http://x:", "bad target \"http://x:\": missing port"},
        {"http://ok/", "duplicate target \"http://ok\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char y[256], want[512];
        snprintf(y, sizeof y, "%s\"%s\"\n", head, cases[i].target);
        snprintf(want, sizeof want, "t.yaml:5: upstreams[0].targets[1]: %s", cases[i].msg);
        expect_err(y, want);
    }
    expect_err("upstreams:\n  - name: a\n    targets: []\n",
               "t.yaml:3: upstreams[0].targets: needs at least one target");
    expect_err("upstreams:\n  - name: a\n    targets:\n",
               "t.yaml:3: upstreams[0].targets: expected a list of URLs, e.g. "
               "[https://api.example.com], found nothing");
    expect_err("upstreams:\n  - name: a\n  - targets: [http://x]\n",
               "t.yaml:2: upstreams[0].targets: required key is missing");
    expect_err("upstreams:\n  - name: a\n    targets: [http://x]\n  - targets: [http://x]\n",
               "t.yaml:4: upstreams[1].name: required key is missing");
    expect_err("upstreams:\n  - name: a b\n    targets: [http://x]\n",
               "t.yaml:2: upstreams[0].name: bad name \"a b\" (1-63 letters, digits, '.', '_' or "
               "'-')");
    expect_err("upstreams:\n"
               "  - name: openai\n"
               "    targets: [http://a]\n"
               "  - name: openai\n"
               "    targets: [http://b]\n",
               "t.yaml:4: upstreams[1].name: duplicate upstream name \"openai\" (first at line 2)");
    expect_err(
        "upstreams:\n  - name: a\n    targets: [https://x]\n    ca_file: /nonexistent/ca.pem\n",
        "t.yaml:4: upstreams[0].ca_file: cannot read \"/nonexistent/ca.pem\": No such file or "
        "directory");
}

static void test_err_headers(void **state)
{
    (void)state;
    const char *head = "upstreams:\n  - name: a\n    targets: [http://a]\n    headers:\n";
    char y[512];
    snprintf(y, sizeof y, "%s      Content-Length: 5\n", head);
    expect_err(y, "t.yaml:5: upstreams[0].headers.Content-Length: Content-Length is managed by "
                  "the proxy and cannot be set");
    snprintf(y, sizeof y, "%s      X-A: 1\n      x-a: 2\n", head);
    expect_err(y, "t.yaml:6: upstreams[0].headers.x-a: duplicate header (header names ignore "
                  "case)");
    snprintf(y, sizeof y, "%s      \"Bad Name\": 1\n", head);
    expect_err(y, "t.yaml:5: upstreams[0].headers.Bad Name: bad header name \"Bad Name\"");
    snprintf(y, sizeof y, "%s      X-A: \"line\\r\\nX-Injected: 1\"\n", head);
    expect_err(y, "t.yaml:5: upstreams[0].headers.X-A: value must not contain a line break");
    snprintf(y, sizeof y, "%s      X-A:\n", head);
    expect_err(y, "t.yaml:5: upstreams[0].headers.X-A: missing value (expected a header value)");
}

static void test_err_routes(void **state)
{
    (void)state;
    const char *ups = "upstreams:\n"
                      "  - name: openai\n"
                      "    targets: [https://api.openai.com]\n";
    char y[1024];
    /* The DESIGN.md example, to the letter. Routes may come before upstreams. */
    snprintf(y, sizeof y,
             "routes:\n"
             "  - { name: a, path_prefix: /a, upstream: openai }\n"
             "  - { name: b, path_prefix: /b, upstream: openai }\n"
             "  - name: c\n"
             "    path_prefix: /c\n"
             "    upstream: opanai\n"
             "%s",
             ups);
    expect_err(y, "t.yaml:6: routes[2].upstream: no upstream named \"opanai\"");
    snprintf(y, sizeof y,
             "%sroutes:\n  - { name: a, path_prefix: /a, upstream: openai, kind: grpc }\n", ups);
    expect_err(y, "t.yaml:5: routes[0].kind: unknown kind \"grpc\" (expected http, openai, "
                  "anthropic or mcp)");
    snprintf(y, sizeof y, "%sroutes:\n  - { name: a, path_prefix: v1/, upstream: openai }\n", ups);
    expect_err(y, "t.yaml:5: routes[0].path_prefix: must start with \"/\" (got \"v1/\")");
    snprintf(y, sizeof y, "%sroutes:\n  - { name: a, path_prefix: \"/a b\", upstream: openai }\n",
             ups);
    expect_err(y, "t.yaml:5: routes[0].path_prefix: must not contain spaces, control characters, "
                  "'?' or '#' (got \"/a b\")");
    snprintf(y, sizeof y,
             "%sroutes:\n"
             "  - { name: a, path_prefix: /a, upstream: openai }\n"
             "  - { name: a, path_prefix: /b, upstream: openai }\n",
             ups);
    expect_err(y, "t.yaml:6: routes[1].name: duplicate route name \"a\" (first at line 5)");
    snprintf(y, sizeof y,
             "%sroutes:\n"
             "  - { name: a, path_prefix: /v1/, upstream: openai }\n"
             "  - { name: b, path_prefix: /v1/, upstream: openai }\n",
             ups);
    expect_err(y, "t.yaml:6: routes[1].path_prefix: path_prefix \"/v1/\" is already used by route "
                  "\"a\"");
    snprintf(y, sizeof y,
             "%sroutes:\n"
             "  - { name: a, path_prefix: /v1/, upstream: openai }\n"
             "  - { name: b, path_prefix: /V1/, upstream: openai }\n",
             ups);
    expect_err(y, "t.yaml:6: routes[1].path_prefix: path_prefix \"/V1/\" is already used by route "
                  "\"a\"");
    snprintf(y, sizeof y, "%sroutes:\n  - name: a\n    upstream: openai\n", ups);
    expect_err(y, "t.yaml:5: routes[0].path_prefix: required key is missing");
    expect_err("routes:\n  - { name: a, path_prefix: /a, upstream: x }\n",
               "t.yaml:2: routes[0].upstream: no upstream named \"x\"");
}

static void test_err_misc(void **state)
{
    (void)state;
    expect_err("store: mysql://u:secret@h/db\n",
               "t.yaml:1: store: must be sqlite:PATH or postgres://...");
    expect_err("store: \"sqlite:\"\n",
               "t.yaml:1: store: sqlite: needs a path, e.g. sqlite:./tollgate.db");
    expect_err("log:\n  level: verbose\n",
               "t.yaml:2: log.level: unknown level \"verbose\" (expected debug, info, warn or "
               "error)");
    expect_err("log: { access: \"\" }\n", "t.yaml:1: log.access: must not be empty");
    expect_err("server:\n  listen: [127.0.0.1:8080\n",
               "t.yaml:3: YAML syntax error: did not find expected ',' or ']' (while parsing a "
               "flow sequence at line 2)");
    expect_err("server: {}\n---\nstore: sqlite:x\n", "t.yaml:3: only one YAML document is allowed");
    expect_err("upstreams:\n  - name: a\n    targets: *nope\n",
               "t.yaml:3: YAML syntax error: found undefined alias");
}

static void test_err_env(void **state)
{
    (void)state;
    /* A value is at most 4 MiB once expanded: 5 references to 1 MiB are refused, 3 pass. */
    char *big = malloc((1u << 20) + 1);
    assert_non_null(big);
    memset(big, 'a', 1u << 20);
    big[1u << 20] = '\0';
    setenv("TG_T_BIG", big, 1);
    free(big);
    expect_err("upstreams:\n"
               "  - name: a\n"
               "    targets: [http://127.0.0.1:1]\n"
               "    headers:\n"
               "      X-Big: \"${TG_T_BIG}${TG_T_BIG}${TG_T_BIG}${TG_T_BIG}${TG_T_BIG}\"\n",
               "t.yaml:5: upstreams[0].headers.X-Big: longer than 4 MiB with its variables "
               "expanded");
    tg_config_t *c = parse_ok("upstreams:\n"
                              "  - name: a\n"
                              "    targets: [http://127.0.0.1:1]\n"
                              "    headers:\n"
                              "      X-Big: \"${TG_T_BIG}$${TG_T_BIG}${TG_T_BIG}\"\n");
    tg_config_unref(c);
    unsetenv("TG_T_BIG");
    unsetenv("TG_T_MISSING");
    expect_err("upstreams:\n"
               "  - name: openai\n"
               "    targets: [https://api.openai.com]\n"
               "    headers:\n"
               "      Authorization: \"Bearer ${TG_T_MISSING}\"\n",
               "t.yaml:5: upstreams[0].headers.Authorization: environment variable TG_T_MISSING "
               "is not set");
    expect_err("server:\n  listen: \"${1BAD}:80\"\n",
               "t.yaml:2: server.listen: bad variable reference \"${1BAD}\" (names are letters, "
               "digits and _; write $${ for a literal ${)");
    expect_err("server:\n  listen: \"${HOST:-x}:80\"\n",
               "t.yaml:2: server.listen: bad variable reference \"${HOST:-x}\" (names are "
               "letters, digits and _; write $${ for a literal ${)");
    expect_err("store: sqlite:${TG_T_MISSING\n",
               "t.yaml:1: store: unterminated \"${\" (write $${ for a literal ${)");
    setenv("TG_T_NL", "a\nb", 1);
    expect_err("upstreams:\n"
               "  - name: u\n"
               "    targets: [http://u]\n"
               "    headers: { X-A: \"${TG_T_NL}\" }\n",
               "t.yaml:4: upstreams[0].headers.X-A: value must not contain a line break");
    unsetenv("TG_T_NL");
}

/* ---- prices and the AI defaults ------------------------------------------ */

static const tg_price_row_t *price_of(const tg_config_t *c, const char *meter, const char *name)
{
    for (size_t i = 0; i < c->nprices; i++)
        if (!strcmp(c->prices[i].meter, meter) && !strcmp(c->prices[i].name, name))
            return &c->prices[i];
    fail_msg("no %s price named %s", meter, name);
    return NULL;
}

static const char prices_example[] =
    "upstreams: [ { name: u, targets: [http://u] } ]\n"
    "routes: [ { name: api, path_prefix: /, upstream: u } ]\n"
    "prices:\n"
    "  models:                     # USD per 1M tokens\n"
    "    gpt-4o-mini: { input: 0.15, output: 0.60, cached: 0.075 }\n"
    "    claude-sonnet-4: { input: 3, output: 15, cached: 0.30, cache_write: 3.75 }\n"
    "    \"*\": { input: 10, output: 30 }   # fallback for models with no price (flagged)\n"
    "  routes:                     # per request and per GB (10^9 bytes, in + out)\n"
    "    api: { request: 0.0001, gb: 0.09 }\n"
    "  tools:                      # per MCP tools/call\n"
    "    search: { call: 0.002 }\n"
    "    \"*\": { call: 0.0005 }\n";

static void test_prices(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok(prices_example);
    assert_int_equal(c->nprices, 6);
    /* models, then routes, then tools, each in file order */
    assert_string_equal(c->prices[0].name, "gpt-4o-mini");
    assert_string_equal(c->prices[3].meter, "route");
    assert_string_equal(c->prices[5].name, "*");
    const tg_price_row_t *r = price_of(c, "model", "gpt-4o-mini");
    assert_int_equal(r->effective_us, 0);
    assert_int_equal(r->input_micros, 150000);
    assert_int_equal(r->output_micros, 600000);
    assert_int_equal(r->cached_micros, 75000);
    assert_int_equal(r->cache_write_micros, -1);
    assert_int_equal(r->request_micros, -1);
    assert_int_equal(r->gb_micros, -1);
    assert_int_equal(r->call_micros, -1);
    r = price_of(c, "model", "claude-sonnet-4");
    assert_int_equal(r->input_micros, 3000000);
    assert_int_equal(r->output_micros, 15000000);
    assert_int_equal(r->cached_micros, 300000);
    assert_int_equal(r->cache_write_micros, 3750000);
    r = price_of(c, "model", "*");
    assert_int_equal(r->input_micros, 10000000);
    assert_int_equal(r->cached_micros, -1);
    r = price_of(c, "route", "api");
    assert_int_equal(r->request_micros, 100);
    assert_int_equal(r->gb_micros, 90000);
    assert_int_equal(r->input_micros, -1);
    r = price_of(c, "tool", "search");
    assert_int_equal(r->call_micros, 2000);
    r = price_of(c, "tool", "*");
    assert_int_equal(r->call_micros, 500);
    tg_config_unref(c);

    /* Block style, quoted amounts, ${ENV}, an empty meter, a null section. */
    setenv("TG_T_PRICE", "0.000001", 1);
    c = parse_ok("prices:\n"
                 "  models:\n"
                 "    o1:\n"
                 "      input: \"15\"\n"
                 "      output: ${TG_T_PRICE}\n"
                 "      cached: 0\n"
                 "  routes:\n"
                 "  tools: {}\n");
    unsetenv("TG_T_PRICE");
    assert_int_equal(c->nprices, 1);
    r = price_of(c, "model", "o1");
    assert_int_equal(r->input_micros, 15000000);
    assert_int_equal(r->output_micros, 1);
    assert_int_equal(r->cached_micros, 0);
    tg_config_unref(c);
    c = parse_ok("prices:\n");
    assert_int_equal(c->nprices, 0);
    tg_config_unref(c);
    c = parse_ok("routes: []\nprices: { routes: { \"*\": { gb: 0.01 } } }\n");
    r = price_of(c, "route", "*");
    assert_int_equal(r->gb_micros, 10000);
    assert_int_equal(r->request_micros, -1);
    tg_config_unref(c);
}

static void test_err_prices(void **state)
{
    (void)state;
    expect_err("prices:\n"
               "  models:\n"
               "    gpt-4o: { input: abc, output: 1 }\n",
               "t.yaml:3: prices.models.gpt-4o.input: not a USD amount with at most 6 decimals: "
               "\"abc\"");
    expect_err("prices:\n  models:\n    m: { input: 0.0000001, output: 1 }\n",
               "t.yaml:3: prices.models.m.input: not a USD amount with at most 6 decimals: "
               "\"0.0000001\"");
    expect_err("prices:\n  models:\n    m: { input: -1, output: 1 }\n",
               "t.yaml:3: prices.models.m.input: not a USD amount with at most 6 decimals: \"-1\"");
    expect_err("prices:\n  models:\n    m: { input: 1e-6, output: 1 }\n",
               "t.yaml:3: prices.models.m.input: not a USD amount with at most 6 decimals: "
               "\"1e-6\"");
    expect_err("prices:\n  models:\n    m: { input: $1, output: 1 }\n",
               "t.yaml:3: prices.models.m.input: not a USD amount with at most 6 decimals: \"$1\"");
    expect_err("prices:\n  models:\n    m: { input: , output: 1 }\n",
               "t.yaml:3: prices.models.m.input: missing value (expected a USD amount)");
    expect_err("prices:\n  models:\n    m: { input: 1 }\n",
               "t.yaml:3: prices.models.m.output: required key is missing");
    expect_err("prices:\n  models:\n    m:\n      output: 1\n",
               "t.yaml:4: prices.models.m.input: required key is missing");
    expect_err("prices:\n  models:\n    m: { input: 1, output: 2, cache_read: 1 }\n",
               "t.yaml:3: prices.models.m.cache_read: unknown key (expected one of: input, output, "
               "cached, cache_write)");
    expect_err("prices:\n  models:\n    m: { input: 1, output: 2, cachd: 1 }\n",
               "t.yaml:3: prices.models.m.cachd: unknown key (did you mean \"cached\"?)");
    expect_err("prices:\n  model:\n    m: { input: 1, output: 2 }\n",
               "t.yaml:2: prices.model: unknown key (did you mean \"models\"?)");
    expect_err("prices:\n  models:\n    m: 0.15\n",
               "t.yaml:3: prices.models.m: expected a mapping of prices, e.g. { input: 0.15, "
               "output: 0.60 }, found a single value");
    expect_err("prices:\n  models:\n    m:\n",
               "t.yaml:3: prices.models.m: expected a mapping of prices, e.g. { input: 0.15, "
               "output: 0.60 }, found nothing");
    expect_err("prices:\n  models: [a, b]\n",
               "t.yaml:2: prices.models: expected a mapping of names to prices, e.g. NAME: { "
               "input: 0.15, output: 0.60 }, found a list");
    expect_err("prices: [1]\n", "t.yaml:1: prices: expected a mapping, found a list");
    expect_err("prices:\n"
               "  models:\n"
               "    m: { input: 1, output: 2 }\n"
               "    m: { input: 3, output: 4 }\n",
               "t.yaml:4: prices.models.m: duplicate key (first at line 3)");
    expect_err("prices:\n  models:\n    \"\": { input: 1, output: 2 }\n",
               "t.yaml:3: prices.models: empty name");
    char y[512];
    snprintf(y, sizeof y, "prices:\n  models:\n    %0128d: { input: 1, output: 2 }\n", 7);
    char want[512];
    snprintf(want, sizeof want,
             "t.yaml:3: prices.models.%0128d: name longer than 127 bytes (an event cannot hold "
             "it)",
             7);
    expect_err(y, want);
    expect_err("routes: []\nprices:\n  routes:\n    apii: { request: 0.01 }\n",
               "t.yaml:4: prices.routes.apii: no route named \"apii\" (or \"*\" for every "
               "route)");
    expect_err("upstreams: [ { name: u, targets: [http://u] } ]\n"
               "routes: [ { name: api, path_prefix: /, upstream: u } ]\n"
               "prices:\n  routes:\n    api: {}\n",
               "t.yaml:5: prices.routes.api: give request, gb or both");
    expect_err("prices:\n  tools:\n    search: { cal: 1 }\n",
               "t.yaml:3: prices.tools.search.cal: unknown key (did you mean \"call\"?)");
    expect_err("prices:\n  tools:\n    search: { }\n",
               "t.yaml:3: prices.tools.search.call: required key is missing");
    /* A later meter's problem is found after an earlier meter parsed fine (no leak). */
    expect_err("prices:\n"
               "  models: { m: { input: 1, output: 2 } }\n"
               "  tools: { t: { call: x } }\n",
               "t.yaml:3: prices.tools.t.call: not a USD amount with at most 6 decimals: \"x\"");
}

static void test_ai_defaults(void **state)
{
    (void)state;
    tg_config_t *c = parse_ok("defaults:\n"
                              "  max_output_tokens: 1024\n"
                              "  budget_thresholds: [50, 75, 100, 150]\n");
    assert_int_equal(c->max_output_tokens, 1024);
    assert_int_equal(c->nbudget_thresholds, 4);
    assert_int_equal(c->budget_thresholds[0], 50);
    assert_int_equal(c->budget_thresholds[3], 150);
    assert_int_equal(c->default_limits.rpm, -1); /* limits untouched */
    tg_config_unref(c);
    c = parse_ok("defaults: { budget_thresholds: [], limits: { rps: 5 } }\n");
    assert_int_equal(c->nbudget_thresholds, 0);
    assert_int_equal(c->max_output_tokens, 4096);
    assert_int_equal(c->default_limits.rps, 5);
    tg_config_unref(c);
    c = parse_ok("defaults: { budget_thresholds: [1, 2, 3, 4, 5, 6, 7, 1000] }\n");
    assert_int_equal(c->nbudget_thresholds, 8);
    assert_int_equal(c->budget_thresholds[7], 1000);
    tg_config_unref(c);

    expect_err("defaults:\n  max_output_tokens: 0\n",
               "t.yaml:2: defaults.max_output_tokens: must be positive (got 0)");
    expect_err("defaults:\n  max_output_tokens: many\n",
               "t.yaml:2: defaults.max_output_tokens: expected a whole number, got \"many\"");
    expect_err("defaults:\n  max_output_tokens: -5\n",
               "t.yaml:2: defaults.max_output_tokens: must not be negative (got -5)");
    expect_err("defaults:\n  max_output_token: 5\n",
               "t.yaml:2: defaults.max_output_token: unknown key (did you mean "
               "\"max_output_tokens\"?)");
    expect_err("defaults:\n  budget_thresholds: [80, 80]\n",
               "t.yaml:2: defaults.budget_thresholds[1]: must be greater than the one before it "
               "(80): thresholds are ascending percentages");
    expect_err("defaults:\n  budget_thresholds: [90, 80]\n",
               "t.yaml:2: defaults.budget_thresholds[1]: must be greater than the one before it "
               "(90): thresholds are ascending percentages");
    expect_err("defaults:\n  budget_thresholds: [0]\n",
               "t.yaml:2: defaults.budget_thresholds[0]: must be positive (got 0)");
    expect_err("defaults:\n  budget_thresholds: [80, 1001]\n",
               "t.yaml:2: defaults.budget_thresholds[1]: too large (got 1001; at most 1000)");
    expect_err("defaults:\n  budget_thresholds: [80, 9.5]\n",
               "t.yaml:2: defaults.budget_thresholds[1]: expected a whole number, got \"9.5\"");
    expect_err("defaults:\n  budget_thresholds: 80\n",
               "t.yaml:2: defaults.budget_thresholds: expected a list of percentages, e.g. [80, "
               "90, 100], found a single value");
    expect_err("defaults:\n  budget_thresholds:\n",
               "t.yaml:2: defaults.budget_thresholds: missing value (expected a list of "
               "percentages, e.g. [80, 90, 100])");
    expect_err("defaults:\n  budget_thresholds: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
               "t.yaml:2: defaults.budget_thresholds: at most 8 thresholds (got 9)");
}

/* ---- routing, lifecycle, paths ------------------------------------------- */

static void test_route(void **state)
{
    (void)state;
    tg_config_t *c =
        parse_ok("upstreams: [ { name: u, targets: [http://u] } ]\n"
                 "routes:\n"
                 "  - { name: v1, path_prefix: /v1/, upstream: u }\n"
                 "  - { name: chat, path_prefix: /v1/chat/, upstream: u, kind: openai }\n"
                 "  - { name: mcp, path_prefix: /mcp, upstream: u, kind: mcp }\n");
    const char *p = "/v1/chat/completions";
    assert_string_equal(tg_config_route(c, p, strlen(p))->name, "chat");
    p = "/v1/models";
    assert_string_equal(tg_config_route(c, p, strlen(p))->name, "v1");
    p = "/v1/chat/";
    assert_string_equal(tg_config_route(c, p, strlen(p))->name, "chat");
    p = "/v1/chat"; /* one byte short of /v1/chat/ */
    assert_string_equal(tg_config_route(c, p, strlen(p))->name, "v1");
    p = "/mcp?session=1";
    assert_int_equal(tg_config_route(c, p, strlen(p))->kind, TG_ROUTE_MCP);
    p = "/v1/chat/completions"; /* len bounds the match, not the NUL */
    assert_string_equal(tg_config_route(c, p, 5)->name, "v1");
    assert_null(tg_config_route(c, p, 3));
    p = "/v2/x";
    assert_null(tg_config_route(c, p, strlen(p)));
    p = "/mcpX";
    assert_null(tg_config_route(c, p, strlen(p)));
    p = "/mcp/x";
    assert_int_equal(tg_config_route(c, p, strlen(p))->kind, TG_ROUTE_MCP);
    assert_null(tg_config_route(c, "", 0));
    p = "/V1/Chat/x"; /* letters compared case-insensitively (target.h lower-cases the path) */
    assert_string_equal(tg_config_route(c, p, strlen(p))->name, "chat");
    tg_config_unref(c);

    c = parse_ok("upstreams: [ { name: u, targets: [http://u] } ]\n"
                 "routes: [ { name: all, path_prefix: /, upstream: u },"
                 "          { name: x, path_prefix: /x, upstream: u } ]\n");
    assert_string_equal(tg_config_route(c, "/anything", 9)->name, "all");
    /* A prefix matches on a segment boundary only. */
    assert_string_equal(tg_config_route(c, "/xyz", 4)->name, "all");
    assert_string_equal(tg_config_route(c, "/x", 2)->name, "x");
    assert_string_equal(tg_config_route(c, "/x/y", 4)->name, "x");
    assert_string_equal(tg_config_route(c, "/x?q", 4)->name, "x");
    tg_config_unref(c);

    c = parse_ok("");
    assert_null(tg_config_route(c, "/", 1));
    tg_config_unref(c);
}

static void test_ref_unref(void **state)
{
    (void)state;
    tg_config_t *c =
        parse_ok("upstreams: [ { name: u, targets: [http://u], headers: { A: b } } ]\n");
    assert_ptr_equal(tg_config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 2);
    tg_config_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    tg_config_unref(c); /* frees: LSan would report otherwise */
    tg_config_unref(NULL);
    assert_null(tg_config_ref(NULL));
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(tg_route_kind_name(TG_ROUTE_HTTP), "http");
    assert_string_equal(tg_route_kind_name(TG_ROUTE_OPENAI), "openai");
    assert_string_equal(tg_route_kind_name(TG_ROUTE_ANTHROPIC), "anthropic");
    assert_string_equal(tg_route_kind_name(TG_ROUTE_MCP), "mcp");
    assert_string_equal(tg_route_kind_name((tg_route_kind_t)42), "unknown");
}

static void test_default_path(void **state)
{
    (void)state;
    unsetenv("TOLLGATE_CONFIG");
    assert_string_equal(tg_config_default_path(NULL), "./tollgate.yaml");
    assert_string_equal(tg_config_default_path("x.yaml"), "x.yaml");
    setenv("TOLLGATE_CONFIG", "/etc/tollgate.yaml", 1);
    assert_string_equal(tg_config_default_path(NULL), "/etc/tollgate.yaml");
    assert_string_equal(tg_config_default_path("x.yaml"), "x.yaml");
    unsetenv("TOLLGATE_CONFIG");
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/tg_config_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char body[] = "server:\n  listen: 127.0.0.1:1234\n  workers: nope\n";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);

    tg_config_t *c = NULL;
    tg_err_t err = {{0}};
    assert_int_equal(tg_config_load(path, &c, &err), -1);
    assert_null(c);
    char want[256];
    snprintf(want, sizeof want,
             "%s:3: server.workers: expected a positive number or \"auto\", got \"nope\"", path);
    assert_string_equal(err.msg, want);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("server:\n  listen: 127.0.0.1:1234\n", f);
    fclose(f);
    assert_int_equal(tg_config_load(path, &c, &err), 0);
    assert_string_equal(c->path, path);
    assert_string_equal(c->server.listen, "127.0.0.1:1234");
    tg_config_unref(c);
    unlink(path);

    /* Under 4 MiB loads; 4 MiB (a runaway file) does not. */
    static char pad[4u << 20];
    static const char head[] = "server:\n  listen: 127.0.0.1:1234\n";
    memset(pad, '#', sizeof pad);
    for (size_t i = 99; i < sizeof pad; i += 100)
        pad[i] = '\n';
    memcpy(pad, head, sizeof head - 1);
    for (int k = 0; k < 2; k++) {
        size_t n = sizeof pad - (k == 0 ? 1 : 0);
        pad[n - 1] = '\n';
        f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(pad, 1, n, f), n);
        fclose(f);
        c = NULL;
        int rc = tg_config_load(path, &c, &err);
        if (k == 0) {
            assert_int_equal(rc, 0);
            assert_string_equal(c->server.listen, "127.0.0.1:1234");
            tg_config_unref(c);
        } else {
            assert_int_equal(rc, -1);
            snprintf(want, sizeof want, "%s: larger than 4 MiB; is this a config file?", path);
            assert_string_equal(err.msg, want);
        }
    }
    unlink(path);

    assert_int_equal(tg_config_load("/nonexistent/tollgate.yaml", &c, &err), -1);
    assert_null(c);
    assert_string_equal(err.msg,
                        "/nonexistent/tollgate.yaml: cannot open: No such file or directory");
}

static void test_example_file(void **state)
{
    (void)state;
    tg_config_t *c = NULL;
    tg_err_t err = {{0}};
    char example[4096], cwd[4096], dir[] = "/tmp/tg_config_example_XXXXXX";
    if (!realpath("examples/tollgate.yaml", example)) skip(); /* run from outside the repo root */
    /* Its admin token is the file scripts/run-demo.sh makes: ./.run/admin-token, relative to
     * where tollgate runs. Loaded from a directory holding one. */
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(mkdir(".run", 0700), 0);
    FILE *f = fopen(".run/admin-token", "w");
    assert_non_null(f);
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    int rc = tg_config_load(example, &c, &err);
    unlink(".run/admin-token");
    rmdir(".run");
    assert_int_equal(chdir(cwd), 0);
    rmdir(dir);
    if (rc != 0) fail_msg("%s", err.msg);
    unsigned char want[32];
    SHA256((const unsigned char *)"0123456789abcdef0123456789abcdef", 32, want);
    assert_int_equal(c->server.admin_token_set, 1);
    assert_memory_equal(c->server.admin_token_sha256, want, 32);
    assert_string_equal(c->server.admin_token_file, "./.run/admin-token");
    assert_string_equal(c->server.listen, "127.0.0.1:8080");
    assert_string_equal(c->server.admin_listen, "127.0.0.1:9090");
    assert_string_equal(c->store, "sqlite:./.run/tollgate.db");
    assert_string_equal(c->log.access, "stdout");
    assert_int_equal(c->nupstreams, 1);
    assert_string_equal(c->upstreams[0].name, "mock");
    assert_string_equal(c->upstreams[0].targets[0].url, "http://127.0.0.1:8081");
    const tg_route_conf_t *r = tg_config_route(c, "/anything", 9);
    assert_non_null(r);
    assert_string_equal(r->name, "api");
    assert_int_equal(r->kind, TG_ROUTE_HTTP);
    tg_config_unref(c);
}

/* ---- the admin token ------------------------------------------------------- */

static void expect_digest(const tg_config_t *c, const char *token)
{
    unsigned char want[32];
    SHA256((const unsigned char *)token, strlen(token), want);
    assert_int_equal(c->server.admin_token_set, 1);
    assert_memory_equal(c->server.admin_token_sha256, want, 32);
}

/* A temp file holding body (len bytes); path receives its name. */
static void token_file(char *path, const char *body, size_t len)
{
    strcpy(path, "/tmp/tg_admin_token_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, body, len), (ssize_t)len);
    close(fd);
}

static void test_admin_token(void **state)
{
    (void)state;
    /* Neither key: no token (the admin refuses every protected path). */
    tg_config_t *c = parse_ok("server: { listen: 127.0.0.1:1 }\n");
    assert_int_equal(c->server.admin_token_set, 0);
    assert_null(c->server.admin_token_file);
    tg_config_unref(c);

    /* A literal, and one from the environment; only the digest is kept. */
    c = parse_ok("server:\n  admin_token: 0123456789abcdef\n");
    expect_digest(c, "0123456789abcdef");
    assert_null(c->server.admin_token_file);
    tg_config_unref(c);
    setenv("TG_T_ADMIN", "s3cr3t-from-the-environment!", 1);
    c = parse_ok("server:\n  admin_token: ${TG_T_ADMIN}\n");
    expect_digest(c, "s3cr3t-from-the-environment!");
    tg_config_unref(c);
    unsetenv("TG_T_ADMIN");

    /* Errors name the key and never show the value. */
    expect_err("server:\n  admin_token: fifteen-chars15\n",
               "t.yaml:2: server.admin_token: too short (15 bytes; at least 16: `openssl rand "
               "-hex 32` makes one)");
    expect_err("server:\n  admin_token: \"0123456789 abcdef\"\n",
               "t.yaml:2: server.admin_token: must be visible ASCII characters, without spaces "
               "or control characters (it is sent in an Authorization header)");
    expect_err("server:\n  admin_token: \"0123456789abcdef\\u00e9\"\n",
               "t.yaml:2: server.admin_token: must be visible ASCII characters, without spaces "
               "or control characters (it is sent in an Authorization header)");
    expect_err("server:\n  admin_token:\n", "t.yaml:2: server.admin_token: missing value "
                                            "(expected a token of at least 16 characters)");
    expect_err("server:\n  admin_token: [a]\n",
               "t.yaml:2: server.admin_token: expected a token of at least 16 characters, found "
               "a list");
    char longer[TG_ADMIN_TOKEN_MAX + 64];
    int n = snprintf(longer, sizeof longer, "server:\n  admin_token: ");
    memset(longer + n, 'x', TG_ADMIN_TOKEN_MAX + 1);
    longer[n + TG_ADMIN_TOKEN_MAX + 1] = '\0';
    expect_err(longer, "t.yaml:2: server.admin_token: too long (1025 bytes; at most 1024)");
    longer[n + TG_ADMIN_TOKEN_MAX] = '\0';
    c = parse_ok(longer);
    assert_int_equal(c->server.admin_token_set, 1);
    tg_config_unref(c);
    unsetenv("TG_T_NO_TOKEN");
    expect_err("server:\n  admin_token: ${TG_T_NO_TOKEN}\n",
               "t.yaml:2: server.admin_token: environment variable TG_T_NO_TOKEN is not set");
    expect_err("server:\n  admin_token: 0123456789abcdef\n  admin_token_file: /x\n",
               "t.yaml:3: server.admin_token_file: give server.admin_token or "
               "server.admin_token_file, not both");
    expect_err("server:\n  admin_token_file: /x\n  admin_token: 0123456789abcdef\n",
               "t.yaml:3: server.admin_token: give server.admin_token or "
               "server.admin_token_file, not both");
}

static void test_admin_token_file(void **state)
{
    (void)state;
    char path[64], yaml[256], want[512];
    /* The first line, whitespace around it stripped (\r\n, spaces, tabs); the rest unread. */
    static const char body[] = " \t0123456789abcdef-from-a-file \t\r\nsecond line\n";
    token_file(path, body, sizeof body - 1);
    snprintf(yaml, sizeof yaml, "server:\n  admin_token_file: %s\n", path);
    tg_config_t *c = parse_ok(yaml);
    expect_digest(c, "0123456789abcdef-from-a-file");
    assert_string_equal(c->server.admin_token_file, path);
    tg_config_unref(c);
    /* Read again at every load (a SIGHUP reload): the new token, no newline at all. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("a-rotated-token-0000", f);
    fclose(f);
    c = parse_ok(yaml);
    expect_digest(c, "a-rotated-token-0000");
    tg_config_unref(c);

    const struct {
        const char *body, *problem;
    } bad[] = {
        {"", "the file is empty"},
        {"  \r\n0123456789abcdef\n", "the first line is empty"},
        {"short\n", "too short (5 bytes; at least 16: `openssl rand -hex 32` makes one)"},
        {"0123456789 abcdef\n", "must be visible ASCII characters, without spaces or control "
                                "characters (it is sent in an Authorization header)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(bad[i].body, f);
        fclose(f);
        snprintf(want, sizeof want, "t.yaml:2: server.admin_token_file: the token in %s: %s", path,
                 bad[i].problem);
        expect_err(yaml, want);
    }
    /* A first line past the cap. */
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < TG_ADMIN_TOKEN_MAX + 100; i++)
        fputc('x', f);
    fclose(f);
    snprintf(
        want, sizeof want,
        "t.yaml:2: server.admin_token_file: the token in %s: first line longer than 1024 bytes",
        path);
    expect_err(yaml, want);
    unlink(path);
    /* Unreadable: missing, a directory; an empty path. */
    snprintf(want, sizeof want,
             "t.yaml:2: server.admin_token_file: cannot open %s: No such file or directory", path);
    expect_err(yaml, want);
    expect_err("server:\n  admin_token_file: /tmp\n",
               "t.yaml:2: server.admin_token_file: /tmp is not a regular file");
    expect_err("server:\n  admin_token_file: \"\"\n",
               "t.yaml:2: server.admin_token_file: must not be empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_flow_style),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_store_and_spool),
        cmocka_unit_test(test_anchors),
        cmocka_unit_test(test_err_keys),
        cmocka_unit_test(test_audit_bodies),
        cmocka_unit_test(test_limits_and_proxies),
        cmocka_unit_test(test_err_types),
        cmocka_unit_test(test_err_numbers),
        cmocka_unit_test(test_err_listen),
        cmocka_unit_test(test_err_targets),
        cmocka_unit_test(test_err_headers),
        cmocka_unit_test(test_err_routes),
        cmocka_unit_test(test_err_misc),
        cmocka_unit_test(test_err_env),
        cmocka_unit_test(test_prices),
        cmocka_unit_test(test_err_prices),
        cmocka_unit_test(test_ai_defaults),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_ref_unref),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_admin_token),
        cmocka_unit_test(test_admin_token_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
