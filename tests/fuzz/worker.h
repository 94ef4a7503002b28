/* The in-process gateway the connection-level targets (fuzz_request, fuzz_upstream) drive:
 * one worker built as server.c's worker_init builds one, on a loopback listener, over an
 * in-memory store with one tenant ("t1", key FUZZ_KEY, a budget) whose events are
 * discarded (memory stays flat over millions of inputs). Header-only, like fuzz.h. */
#ifndef TG_FUZZ_WORKER_H
#define TG_FUZZ_WORKER_H

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/apikey.h"
#include "gateway/conn.h"
#include "store/backend.h"
#include "util/clock.h"

/* The tenant's key (the seeds use it). */
#define FUZZ_KEY "tg_fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuz"

static void fz_die(const char *target, const char *what, const char *msg)
{
    fprintf(stderr, "%s: %s: %s\n", target, what, msg);
    exit(1);
}

/* Accepted sockets inherit SO_LINGER 0 from their listener: a closed connection ends with a
 * reset, never in TIME_WAIT, which would hold its port pair for a minute and run out of
 * ports after some 28,000 connections. */
static int fz_linger0(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

static int fz_discard_append(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted,
                             tg_err_t *err)
{
    (void)s, (void)evs, (void)err;
    *inserted = n;
    return 0;
}

static int fz_discard_purge(tg_store_t *s, int64_t events_before_us, const char *agg_before_day,
                            int64_t *deleted, tg_err_t *err)
{
    (void)s, (void)events_before_us, (void)agg_before_day, (void)err;
    if (deleted) *deleted = 0;
    return 0;
}

static void fz_on_connection(uv_stream_t *server, int status)
{
    if (status == 0) tg_conn_accept(server->data);
}

/* Parses yaml into srv->cfg, makes the store, key ring, policy, price book and recorder,
 * and starts worker w listening on 127.0.0.1; returns its port. target names the program
 * in the one line printed before exit(1) when any of it fails. */
static int fz_worker_start(const char *target, const char *yaml, size_t len, tg_server_t *srv,
                           tg_worker_t *w)
{
    static struct tg_store_event_ops ops; /* the SQLite store's, with append and purge discarding */
    tg_err_t err;
    if (tg_config_parse("fuzz.yaml", yaml, len, &srv->cfg, &err) != 0)
        fz_die(target, "config", err.msg);
    tg_store_t *store;
    if (tg_store_open("sqlite::memory:", &store, &err) != 0) fz_die(target, "store", err.msg);
    tg_key_t k = {.id = "key_fuzz",
                  .tenant_id = "t1",
                  .prefix = "tg_fuzzf",
                  .name = "fuzz",
                  .status = "active"};
    tg_apikey_hash(FUZZ_KEY, strlen(FUZZ_KEY), k.sha256);
    tg_budget_row_t b = {.tenant = "t1", .monthly_micros = INT64_C(1) << 50, .hard = 1};
    if (tg_store_tenant_add(store, "t1", "fuzz", &err) != 0 ||
        tg_store_key_add(store, &k, &err) != 0 || tg_store_budget_set(store, &b, &err) != 0)
        fz_die(target, "store", err.msg);
    srv->keys = tg_keyring_new();
    srv->policy = tg_policy_new();
    srv->prices = tg_pricebook_new();
    tg_policy_defaults_t pd = {
        .rate = {.limit = 1000000, .period_ns = 1000000000ull}, .has_rate = 1, .concurrency = 1000};
    tg_policy_set_defaults(srv->policy, &pd);
    if (tg_pricebook_set_defaults(srv->prices, srv->cfg->prices, srv->cfg->nprices, &err) != 0 ||
        tg_keyring_load(srv->keys, store, &err) != 0 ||
        tg_policy_load(srv->policy, store, tg_wall_us(), &err) != 0 ||
        tg_pricebook_load(srv->prices, store, &err) != 0)
        fz_die(target, "load", err.msg);
    ops = *store->events;
    ops.append = fz_discard_append;
    ops.purge = fz_discard_purge;
    store->events = &ops;
    tg_recorder_opts_t ro = {.access_log = "off", .queue_size = 4096, .flush_ms = 50};
    if (tg_recorder_start_with_store(&ro, store, &srv->rec, &err) != 0)
        fz_die(target, "recorder", err.msg);

    srv->workers = w;
    srv->nworkers = 1;
    w->srv = srv;
    w->cfg = tg_config_ref(srv->cfg);
    pthread_mutex_init(&w->mu, NULL);
    uv_loop_init(&w->loop);
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (uv_tcp_bind(&w->listener, (struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&w->listener, 128, fz_on_connection) != 0)
        fz_die(target, "listen", "cannot listen on 127.0.0.1");
    uv_os_fd_t lfd;
    if (uv_fileno((uv_handle_t *)&w->listener, &lfd) != 0 || fz_linger0(lfd) != 0)
        fz_die(target, "listen", "cannot set SO_LINGER");
    int alen = sizeof a;
    uv_tcp_getsockname(&w->listener, (struct sockaddr *)&a, &alen);
    w->proxy = tg_proxy_new(&w->loop);
    if (!w->proxy) fz_die(target, "proxy", "cannot create the upstream client");
    return ntohs(a.sin_port);
}

#endif
