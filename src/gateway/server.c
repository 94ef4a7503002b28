/* `tollgate serve`: see server.h for the threads and what they share.
 *
 * Start-up order matters for "nothing lost": the store is opened (and
 * migrated) and the recorder started before any listener accepts, and on
 * SIGTERM the listeners close first, in-flight requests finish (up to
 * server.drain_timeout), and only then is the recorder drained and stopped. */
#include "gateway/server.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "alarm/runner.h"
#include "adminapi/adminapi.h"
#include "admin/tokens.h"
#include "dash/dash.h"
#include "gateway/conn.h"
#include "gateway/listen.h"
#include "gateway/upstream.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sizes.h"

/* ---- worker threads --------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status)
{
    tg_worker_t *w = server->data;
    if (status < 0) {
        TG_WARN("accept: %s", uv_strerror(status));
        return;
    }
    tg_conn_accept(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    tg_worker_t *w = t->data;
    if (w->nconns) TG_WARN("worker %d: drain timeout, closing %zu connections", w->id, w->nconns);
    tg_conn_close_all(w);
}

static void worker_finish(tg_worker_t *w)
{
    uv_timer_stop(&w->drain_timer);
    tg_proxy_free(w->proxy);
    w->proxy = NULL;
    tg_redis_free(w->redis);
    w->redis = NULL;
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    uv_close((uv_handle_t *)&w->mailbox, NULL);
}

static void on_mailbox(uv_async_t *a)
{
    tg_worker_t *w = a->data;
    pthread_mutex_lock(&w->mu);
    tg_config_t *next = w->next_cfg;
    w->next_cfg = NULL;
    int drain = w->drain_requested;
    pthread_mutex_unlock(&w->mu);
    if (next) {
        tg_config_unref(w->cfg);
        w->cfg = next;
        tg_jwt_cache_clear(w->jwtcache); /* its tokens were verified under the old config */
    }
    if (drain && !w->draining) {
        w->draining = 1;
        uv_close((uv_handle_t *)&w->listener, NULL);
        tg_conn_drain_all(w);
        uv_timer_start(&w->drain_timer, on_drain_timeout, (uint64_t)w->cfg->server.drain_timeout_ms,
                       0);
    }
    if (w->draining && w->nconns == 0 && w->proxy) worker_finish(w);
}

static void *worker_main(void *arg)
{
    tg_worker_t *w = arg;
    char name[16]; /* what top -H, ps -L and perf show: "tg-worker-0" */
    snprintf(name, sizeof name, "tg-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    return NULL;
}

static int worker_init(tg_worker_t *w, tg_server_t *srv, int id, int fd, tg_err_t *err)
{
    w->id = id;
    w->srv = srv;
    w->listen_fd = fd;
    w->cfg = tg_config_ref(srv->cfg);
    pthread_mutex_init(&w->mu, NULL);
    uv_loop_init(&w->loop);
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    int rc = uv_tcp_open(&w->listener, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
    if (rc != 0) return tg_err_set(err, "listen: %s", uv_strerror(rc));
    uv_async_init(&w->loop, &w->mailbox, on_mailbox);
    w->mailbox.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    w->proxy = tg_proxy_new(&w->loop);
    if (!w->proxy) return tg_err_set(err, "cannot create the upstream client");
    const tg_config_t *c = srv->cfg;
    if (c->limits.redis) {
        /* (Connected from the worker's loop once it runs; down until then.) */
        tg_redis_addr_t addr = {c->limits.redis_host, c->limits.redis_port, c->limits.redis_db,
                                c->limits.redis_user, c->limits.redis_password};
        w->redis = tg_redis_new(&w->loop, &addr, c->limits.timeout_ms, c->limits.reservation_ttl_ms,
                                id, &srv->redis_stats);
        if (!w->redis) return tg_err_set(err, "cannot create the shared limiter's client");
        /* (Tests only: a settlement marker's life, to see a lost settlement too old to be
         * sent again without waiting a minute: tests/e2e/redis-settle.test.mjs.) */
        const char *op_ttl = getenv("TOLLGATE_TEST_SETTLE_MARKER_MS");
        if (op_ttl) tg_redis_set_op_ttl(w->redis, strtoll(op_ttl, NULL, 10));
    }
    w->metrics = tg_metrics_block_new(srv->metrics);
    w->jwtcache = tg_jwt_cache_new();
    if (!w->metrics || !w->jwtcache) return tg_err_set(err, "out of memory");
    return 0;
}

/* ---- readiness --------------------------------------------------------- */

int tg_server_ready(tg_server_t *srv, json_t *out)
{
    int ready = 1;
    tg_recorder_stats_t st;
    tg_recorder_stats(srv->rec, &st);
    json_t *store = json_object();
    json_object_set_new(store, "status", json_string(st.spooling ? "spooling" : "ok"));
    json_object_set_new(store, "queued", json_integer((json_int_t)st.queued));
    json_object_set_new(store, "spooled_total", json_integer((json_int_t)st.spooled));
    if (st.spooling) ready = 0;
    json_object_set_new(out, "store", store);

    json_t *ups = json_object();
    int64_t now = tg_mono_us();
    for (size_t i = 0; i < srv->cfg->nupstreams; i++) {
        tg_upstream_conf_t *u = &srv->cfg->upstreams[i];
        int healthy = tg_upstream_healthy(u, now);
        json_t *o = json_object();
        json_object_set_new(o, "healthy_targets", json_integer(healthy));
        json_object_set_new(o, "targets", json_integer((json_int_t)u->ntargets));
        json_object_set_new(ups, u->name, o);
        if (healthy == 0) ready = 0;
    }
    json_object_set_new(out, "upstreams", ups);
    /* The store versions this gateway runs on (-1: not loaded yet): after a CLI change, wait
     * until they reach the store's meta values instead of sleeping for the poll interval.
     * policy_version: limits, pauses, IP and tool rules, budgets (the policy) and prices
     * (the price book), the older of the two; auth_version: tenants and keys. */
    int64_t pv = tg_policy_loaded_version(srv->policy),
            bv = tg_pricebook_loaded_version(srv->prices);
    json_t *ver = json_object();
    json_object_set_new(ver, "policy_version", json_integer(pv < bv ? pv : bv));
    json_object_set_new(ver, "auth_version", json_integer(tg_keyring_loaded_version(srv->keys)));
    json_object_set_new(out, "loaded", ver);
    if (srv->cfg->limits.redis) {
        /* Redis down is not "not ready" (unless on_backend_down is deny): the gateway goes on
         * with its fallback, and taking every gateway out of the balancer would turn a
         * Redis outage into a full one. */
        tg_redis_stats_t *rs = &srv->redis_stats;
        int up = atomic_load_explicit(&rs->up, memory_order_relaxed);
        int all = atomic_load_explicit(&rs->workers, memory_order_relaxed);
        static const char *const down_names[] = {"local", "allow", "deny"};
        json_t *lim = json_object();
        json_object_set_new(lim, "backend", json_string("redis"));
        json_object_set_new(lim, "status", json_string(up == all && all > 0 ? "up" : "down"));
        json_object_set_new(lim, "workers_up", json_integer(up));
        json_object_set_new(lim, "on_backend_down",
                            json_string(down_names[srv->cfg->limits.on_down]));
        json_object_set_new(out, "limits", lim);
        if (up < all && srv->cfg->limits.on_down == TG_LIMITS_DOWN_DENY) ready = 0;
    }
    json_object_set_new(
        out, "inflight",
        json_integer((json_int_t)atomic_load_explicit(&srv->inflight, memory_order_relaxed)));
    json_object_set_new(out, "ready", json_boolean(ready));
    return ready;
}

/* name{upstream="..",target=".."} v: a target's URL is scheme://host[:port] (config.c
 * refuses credentials, paths and queries in it), escaped all the same. */
static int target_sample(tg_buf_t *out, const char *name, const tg_upstream_conf_t *u,
                         const tg_target_t *t, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof num, "\"} %lld\n", v);
    if (tg_buf_add(out, name, strlen(name)) < 0 || tg_buf_add(out, TG_LIT("{upstream=\"")) < 0 ||
        tg_metrics_escape(out, u->name, strlen(u->name)) < 0 ||
        tg_buf_add(out, TG_LIT("\",target=\"")) < 0 ||
        tg_metrics_escape(out, t->url, strlen(t->url)) < 0 || tg_buf_add(out, num, (size_t)n) < 0)
        return -1;
    return 0;
}

/* ---- alarms ------------------------------------------------------------ */

typedef struct util_ctx {
    tg_server_t *srv;
    tg_buf_t *out;
    uint64_t now_ns;
} util_ctx_t;

static int put_utilisation(const tg_metrics_tenant_totals_t *t, void *ud)
{
    util_ctx_t *c = ud;
    double u = tg_policy_tenant_utilisation(c->srv->policy, t->tenant, c->now_ns);
    if (u < 0) return 0; /* no rule applies: no sample */
    char num[40];
    int n = snprintf(num, sizeof num, "\"} %.6g\n", u);
    if (tg_buf_add(c->out, TG_LIT("tollgate_limit_utilisation{tenant=\"")) < 0 ||
        tg_metrics_escape(c->out, t->tenant, strlen(t->tenant)) < 0 ||
        tg_buf_add(c->out, num, (size_t)n) < 0)
        return -1;
    return 0;
}

/* The process families added with issue 11: each target's health, the writer's time per
 * batch, the spool's size. */
static int process_metrics(tg_server_t *srv, const tg_recorder_stats_t *st, int64_t now,
                           tg_buf_t *out)
{
    const char *upn = "tollgate_upstream_target_up";
    const char *fln = "tollgate_upstream_target_consecutive_failures";
    if (tg_metrics_family(out, upn, "gauge",
                          "1 when a target takes requests, 0 while it cools down after "
                          "max_fails failures in a row (upstreams.fail_timeout).") < 0)
        return -1;
    for (size_t i = 0; i < srv->cfg->nupstreams; i++) {
        tg_upstream_conf_t *u = &srv->cfg->upstreams[i];
        for (size_t k = 0; k < u->ntargets; k++) {
            tg_target_t *t = &u->targets[k];
            long long until = atomic_load_explicit(&t->down_until_us, memory_order_relaxed);
            if (target_sample(out, upn, u, t, until <= now) < 0) return -1;
        }
    }
    if (tg_metrics_family(out, fln, "gauge",
                          "Failed transfers to a target since its last answered one.") < 0)
        return -1;
    for (size_t i = 0; i < srv->cfg->nupstreams; i++) {
        tg_upstream_conf_t *u = &srv->cfg->upstreams[i];
        for (size_t k = 0; k < u->ntargets; k++) {
            tg_target_t *t = &u->targets[k];
            if (target_sample(out, fln, u, t,
                              atomic_load_explicit(&t->fail_streak, memory_order_relaxed)) < 0)
                return -1;
        }
    }
    const char *bn = "tollgate_writer_batch_duration_seconds";
    if (tg_metrics_family(out, bn, "histogram",
                          "Time the writer thread takes per batch of events: its access-log "
                          "lines, then one store transaction (or the spool write).") < 0 ||
        tg_metrics_histogram(out, bn, tg_recorder_batch_bucket_us, TG_RECORDER_BATCH_BUCKETS,
                             st->batch_buckets, st->batch_sum_us) < 0)
        return -1;
    const char *sn = "tollgate_spool_bytes";
    if (tg_metrics_family(out, sn, "gauge",
                          "Bytes of events in the spool file, written while the store was "
                          "unavailable (0 once replayed).") < 0 ||
        tg_metrics_sample(out, sn, (long long)st->spool_bytes) < 0)
        return -1;
    return 0;
}

/* tollgate_budget_utilisation: each budget's spend this month over the budget, as the
 * policy's budgets have it at the scrape's wall-clock time. */
static int budget_metrics(tg_server_t *srv, tg_buf_t *out)
{
    tg_budget_use_t *use;
    size_t n;
    if (tg_policy_budget_uses(srv->policy, tg_wall_us(), &use, &n) < 0) return -1;
    tg_metrics_ratio_t *v = n ? malloc(n * sizeof *v) : NULL;
    int rc = -1;
    if (!n || v) {
        for (size_t i = 0; i < n; i++)
            v[i] = (tg_metrics_ratio_t){use[i].tenant, use[i].spent, use[i].budget};
        rc = tg_metrics_tenant_ratio(
            srv->metrics, out, "tollgate_budget_utilisation",
            "Spend this UTC month over the monthly budget, by tenant with a budget (1 = all of "
            "it; above 1 when a soft budget is passed).",
            v, n);
    }
    free(v);
    free(use);
    return rc;
}

/* tollgate_limit_utilisation{tenant}: the quota alarm's input, for every tenant metrics
 * has a series of (observe cannot include policy: the server passes the values in). */
static int limit_utilisation(tg_server_t *srv, tg_buf_t *out)
{
    if (!srv->metrics || !srv->policy) return 0;
    if (tg_metrics_family(out, "tollgate_limit_utilisation", "gauge",
                          "Highest utilisation of the tenant's rate and token rules: units "
                          "counted in the rule's window over its limit (0..1, above 1 for a "
                          "token debt).") < 0)
        return -1;
    util_ctx_t c = {srv, out, (uint64_t)tg_mono_us() * 1000};
    return tg_metrics_tenant_totals(srv->metrics, put_utilisation, &c) ? -1 : 0;
}

/* The alarm engine's inputs of one tick, made by the main loop's timer. */
typedef struct alarm_gather {
    tg_server_t *srv;
    tg_alarm_tenant_in_t *in;
    char (*names)[TG_TENANT_SIZE];
    size_t n, cap;
    uint64_t now_ns;
} alarm_gather_t;

static int gather_tenant(const tg_metrics_tenant_totals_t *t, void *ud)
{
    alarm_gather_t *g = ud;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        tg_alarm_tenant_in_t *in = realloc(g->in, cap * sizeof *in);
        if (!in) return -1;
        g->in = in;
        char(*names)[TG_TENANT_SIZE] = realloc(g->names, cap * sizeof *names);
        if (!names) return -1;
        g->names = names;
        g->cap = cap;
    }
    tg_alarm_tenant_in_t *x = &g->in[g->n];
    snprintf(g->names[g->n], TG_TENANT_SIZE, "%s", t->tenant);
    x->requests = t->requests;
    x->errors = t->errors;
    x->cost_micros = t->cost_micros;
    memcpy(x->buckets, t->buckets, sizeof x->buckets);
    x->quota = tg_policy_tenant_utilisation(g->srv->policy, t->tenant, g->now_ns);
    g->n++;
    return 0;
}

/* Where each transition's notice goes once the runner has stored and logged it: the
 * notification outbox (notify/sender.h), on the runner's store connection (main thread),
 * as the budgets' hook does. Nonzero (the outbox could not be written): the runner keeps
 * the notice, with those after it, and tries again at its next evaluation. */
static int on_alarm_transition(void *ud, tg_store_t *store, const tg_notice_t *n, tg_err_t *err)
{
    tg_server_t *srv = ud;
    if (!srv->notify) return 0; /* no sender: the runner's log line is the notification */
    return tg_notify_enqueue(srv->notify, store, n, tg_wall_us(), err);
}

/* Every alarms_interval on the main loop (never a worker): inputs gathered, then the
 * runner evaluates, acts, stores and logs (alarm/runner.h). Store writes happen here, off
 * the request path; the connection waits at most 100 ms for a lock. */
static void alarm_tick(tg_server_t *srv, tg_alarm_runner_t *runner, const tg_config_t *cfg)
{
    if (!runner || cfg->nalarms == 0) return;
    alarm_gather_t g = {.srv = srv, .now_ns = (uint64_t)tg_mono_us() * 1000};
    if (tg_metrics_tenant_totals(srv->metrics, gather_tenant, &g) != 0)
        TG_ERROR("alarm: out of memory gathering the tenants' totals");
    for (size_t i = 0; i < g.n; i++)
        g.in[i].tenant = g.names[i];
    tg_recorder_stats_t st;
    tg_recorder_stats(srv->rec, &st);
    double q = cfg->recorder.queue_size ? (double)st.queued / (double)cfg->recorder.queue_size : 0;
    if (st.spooling) q = q > 1 ? q : 1; /* the store is not keeping up: as bad as full */
    tg_alarm_inputs_t in = {g.in, g.n, q, tg_mono_us()};
    tg_alarm_runner_tick(runner, &in, tg_wall_us(), on_alarm_transition, srv);
    free(g.in);
    free(g.names);
}

/* The shared limiter (limits.backend redis://): its state and what its clients did. */
static int shared_limit_metrics(tg_server_t *srv, tg_buf_t *out)
{
    tg_redis_stats_t *rs = &srv->redis_stats;
    int up = atomic_load_explicit(&rs->up, memory_order_relaxed);
    int all = atomic_load_explicit(&rs->workers, memory_order_relaxed);
#define LD(f) (long long)atomic_load_explicit(&rs->f, memory_order_relaxed)
    const struct {
        const char *name, *type, *help;
        long long v;
    } m[] = {
        {"tollgate_limits_backend_up", "gauge",
         "1 when every worker's connection to the shared limiter (Redis) is up, else 0 "
         "(limits.on_backend_down decides meanwhile).",
         (long long)(up == all && all > 0)},
        {"tollgate_limits_backend_admissions_total", "counter",
         "Admissions sent to the shared limiter.", LD(admits)},
        {"tollgate_limits_backend_timeouts_total", "counter",
         "Admissions the shared limiter did not answer within limits.timeout.", LD(timeouts)},
        {"tollgate_limits_backend_fallbacks_total", "counter",
         "Admissions decided by limits.on_backend_down.", LD(fallbacks)},
        {"tollgate_limits_backend_undone_total", "counter",
         "Admissions answered after their request stopped waiting, given back.", LD(undone)},
        {"tollgate_limits_backend_settles_total", "counter",
         "Settlements sent to the shared limiter.", LD(settles)},
        {"tollgate_limits_backend_settle_errors_total", "counter",
         "Settlements the shared limiter refused, or left unanswered at exit.", LD(settle_errors)},
        {"tollgate_limits_backend_settles_resent_total", "counter",
         "Settlements sent again after their connection dropped before the reply.",
         LD(settles_resent)},
        {"tollgate_limits_backend_settles_duplicate_total", "counter",
         "Settlements the shared limiter had run already (a resend): not counted again.",
         LD(settles_seen)},
        {"tollgate_limits_backend_settles_expired_total", "counter",
         "Settlements whose reply was lost, too old to be sent again (possibly not counted).",
         LD(settles_expired)},
        {"tollgate_limits_backend_journaled_total", "counter",
         "Commands kept for when the shared limiter is back: counts of local admissions, "
         "settlements it refused or whose reply was lost.",
         LD(journaled)},
        {"tollgate_limits_backend_replayed_total", "counter",
         "Journaled counts sent once the shared limiter was back.", LD(replayed)},
        {"tollgate_limits_backend_journal_dropped_total", "counter",
         "Journaled counts lost (journal full, or the gateway stopped while down).",
         LD(journal_dropped)},
        {"tollgate_replay_backend_claims_total", "counter",
         "Accepted signatures claimed in the shared replay cache (Redis).", LD(claims)},
        {"tollgate_replay_backend_replays_total", "counter",
         "Signatures the shared replay cache held already: replays refused.", LD(claims_taken)},
        {"tollgate_replay_backend_unanswered_total", "counter",
         "Signatures the shared replay cache could not check (down, or no answer within "
         "limits.timeout): limits.on_backend_down decided.",
         LD(claims_unanswered)},
    };
#undef LD
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (tg_metrics_family(out, m[i].name, m[i].type, m[i].help) < 0 ||
            tg_metrics_sample(out, m[i].name, m[i].v) < 0)
            return -1;
    return 0;
}

/* The process families first (their names are older than the per-tenant ones and kept
 * as they were), then the workers' counters summed (observe/metrics.h). */
char *tg_server_metrics(tg_server_t *srv)
{
    tg_recorder_stats_t st;
    tg_recorder_stats(srv->rec, &st);
    tg_buf_t out = TG_BUF_INIT(SIZE_MAX);
    const struct {
        const char *name, *type, *help;
        long long v;
    } proc[] = {
        {"tollgate_requests_inflight", "gauge", "Requests between head parsed and response done.",
         (long long)atomic_load_explicit(&srv->inflight, memory_order_relaxed)},
        {"tollgate_usage_unparsed_total", "counter",
         "AI/MCP responses forwarded whose usage or result could not be read.",
         (long long)atomic_load_explicit(&srv->unparsed, memory_order_relaxed)},
        {"tollgate_events_queued", "gauge", "Usage events waiting for the writer.",
         (long long)st.queued},
        {"tollgate_events_spooled_total", "counter", "Usage events written to the spool file.",
         (long long)st.spooled},
        {"tollgate_audit_bodies_dropped_total", "counter",
         "Calls whose bodies audit.bodies: encrypt did not keep (their event spooled, or sealing "
         "failed); each record says so in data.bodies.",
         (long long)st.bodies_dropped},
        {"tollgate_events_written_total", "counter",
         "Usage events committed to the store (spool replays included).", (long long)st.committed},
        {"tollgate_events_spooling", "gauge",
         "1 while the spool file holds events not yet in the store.", (long long)st.spooling},
    };
    for (size_t i = 0; i < sizeof proc / sizeof proc[0]; i++)
        if (tg_metrics_family(&out, proc[i].name, proc[i].type, proc[i].help) < 0 ||
            tg_metrics_sample(&out, proc[i].name, proc[i].v) < 0)
            goto oom;
    /* Upstream target health, as /readyz sees it (the main thread's config). */
    int64_t now = tg_mono_us();
    const char *up[2] = {"tollgate_upstream_targets", "tollgate_upstream_targets_healthy"};
    const char *uphelp[2] = {"Targets of an upstream.",
                             "Targets of an upstream not cooling down after failures."};
    for (int k = 0; k < 2; k++) {
        if (tg_metrics_family(&out, up[k], "gauge", uphelp[k]) < 0) goto oom;
        for (size_t i = 0; i < srv->cfg->nupstreams; i++) {
            tg_upstream_conf_t *u = &srv->cfg->upstreams[i];
            long long v = k ? tg_upstream_healthy(u, now) : (long long)u->ntargets;
            char num[32];
            int n = snprintf(num, sizeof num, "\"} %lld\n", v);
            if (tg_buf_add(&out, up[k], strlen(up[k])) < 0 ||
                tg_buf_add(&out, TG_LIT("{upstream=\"")) < 0 ||
                tg_metrics_escape(&out, u->name, strlen(u->name)) < 0 ||
                tg_buf_add(&out, num, (size_t)n) < 0)
                goto oom;
        }
    }
    if (process_metrics(srv, &st, now, &out) < 0) goto oom;
    if (srv->cfg->limits.redis && shared_limit_metrics(srv, &out) < 0) goto oom;
    if (limit_utilisation(srv, &out) < 0) goto oom;
    if (srv->metrics && tg_metrics_render(srv->metrics, &out) < 0) goto oom;
    if (srv->metrics && budget_metrics(srv, &out) < 0) goto oom;
    /* The admin adds the last newline. */
    if (tg_buf_len(&out) && tg_buf_str(&out)[tg_buf_len(&out) - 1] == '\n')
        tg_buf_truncate(&out, tg_buf_len(&out) - 1);
    return tg_buf_take(&out);
oom:
    tg_buf_free(&out);
    return NULL;
}

/* ---- the admin listener's view of the server (admin.h) ---------------- */

static int admin_ready(void *ctx, json_t *out)
{
    return tg_server_ready(ctx, out);
}

static char *admin_metrics(void *ctx)
{
    return tg_server_metrics(ctx);
}

/* The admin runs on the main thread, which owns srv->cfg (the current config). */
static long admin_header_timeout_ms(void *ctx)
{
    return ((tg_server_t *)ctx)->cfg->server.header_timeout_ms;
}

static long admin_idle_timeout_ms(void *ctx)
{
    return ((tg_server_t *)ctx)->cfg->server.idle_timeout_ms;
}

static const unsigned char *admin_token_sha256(void *ctx)
{
    const tg_config_t *c = ((tg_server_t *)ctx)->cfg;
    return c->server.admin_token_set ? c->server.admin_token_sha256 : NULL;
}

/* The dashboard's JSON, built by its own thread (dash/dash.h) with the wall clock read
 * here, the outer layer. */
static void *admin_dash_query(void *ctx, const char *what, const char *query,
                              void (*done)(void *arg, int status, json_t *body), void *arg)
{
    tg_server_t *srv = ctx;
    if (!srv->dash) return NULL;
    return tg_dash_submit(srv->dash, what, query, tg_wall_us(), done, arg);
}

static void admin_dash_cancel(void *ctx, void *handle)
{
    (void)ctx;
    tg_dash_cancel(handle);
}

/* The admin API (adminapi/adminapi.h): its tokens checked at the wall clock read here, its
 * calls answered by their own writer thread. */
static int admin_api_token(void *ctx, const unsigned char sha256[32], tg_admin_principal_t *who)
{
    tg_server_t *srv = ctx;
    return srv->admin_tokens &&
           tg_admin_tokens_check(srv->admin_tokens, sha256, tg_wall_us(), who) == TG_ADMIN_TOKEN_OK;
}

static void *admin_api_call(void *ctx, const char *method, const char *path, const char *query,
                            const char *body, size_t len, const tg_admin_principal_t *who,
                            void (*done)(void *arg, int status, json_t *body), void *arg)
{
    tg_server_t *srv = ctx;
    if (!srv->api) return NULL;
    /* The KEK seals a new key's signing secret: only a POST makes keys, and only its call
     * carries a copy (wiped with the call). */
    const tg_config_t *cfg = srv->cfg;
    const tg_kek_t *kek =
        cfg->encryption.has_kek && strcmp(method, "POST") == 0 ? &cfg->encryption.kek : NULL;
    tg_adminapi_req_t *req = tg_adminapi_req_new(method, path, query, body, len, who, kek);
    if (!req) return NULL;
    return tg_dash_submit_fn(srv->api, tg_adminapi_answer, req, tg_adminapi_req_free, tg_wall_us(),
                             done, arg);
}

/* The alarms firing now (for tenant, or all when NULL), from the alarm runner's memory:
 * the dashboard's "alarms" member. Main thread, as the runner. */
typedef struct firing_ctx {
    json_t *out;
    const char *tenant;
} firing_ctx_t;

static int put_firing(const tg_alarm_status_t *st, void *ud)
{
    firing_ctx_t *f = ud;
    if (st->state != TG_ALARM_FIRING) return 0;
    if (f->tenant && strcmp(f->tenant, st->tenant) != 0) return 0;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:f,s:f,s:f,s:I}", "name", st->rule, "tenant",
                          st->tenant, "kind", tg_alarm_kind_name(st->conf->kind), "state", "firing",
                          "value", st->value, "threshold", st->level, "baseline", st->baseline,
                          "since_us", (json_int_t)st->since_us);
    if (o) json_array_append_new(f->out, o);
    return 0;
}

static json_t *admin_alarms_firing(void *ctx, const char *tenant)
{
    tg_server_t *srv = ctx;
    firing_ctx_t f = {json_array(), tenant};
    if (f.out && srv->alarms) tg_alarm_runner_each(srv->alarms, 0, put_firing, &f);
    return f.out;
}

/* Said once at start (and at a reload that removes the token), never per request. */
static void warn_no_admin_token(const tg_config_t *c)
{
    if (c->server.admin_listen[0] && !c->server.admin_token_set)
        TG_WARN("admin: neither server.admin_token nor server.admin_token_file is set: %s "
                "answers 401 on every path but /healthz and /readyz",
                c->server.admin_listen);
}

static tg_admin_t *admin_start(uv_loop_t *loop, const char *listen, tg_server_t *srv, tg_err_t *err)
{
    static const tg_admin_ops_t ops = {
        .ready = admin_ready,
        .metrics = admin_metrics,
        .header_timeout_ms = admin_header_timeout_ms,
        .idle_timeout_ms = admin_idle_timeout_ms,
        .token_sha256 = admin_token_sha256,
        .dash_query = admin_dash_query,
        .dash_cancel = admin_dash_cancel,
        .alarms_firing = admin_alarms_firing,
        .api_token = admin_api_token,
        .api_call = admin_api_call,
        .api_cancel = admin_dash_cancel, /* the same kind of job (dash.h) */
    };
    struct sockaddr_storage addr;
    if (tg_listen_parse(listen, &addr, err) != 0) return NULL;
    int fd = tg_listen_socket(&addr, 0, err);
    if (fd < 0) return NULL;
    return tg_admin_start(loop, fd, listen, &ops, srv, err);
}

/* ---- notifications (notify/) ------------------------------------------ */

/* The sender's jitter: OpenSSL's generator, as key ids use (a repeated value only makes two
 * senders retry together). */
static uint64_t notify_random(void)
{
    uint64_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1) v = (uint64_t)tg_mono_us();
    return v;
}

/* The budgets' hook (policy/budget.h): a new threshold alert's notice into the outbox, on the
 * policy refresher's thread and store connection. */
static int budget_notice(void *ud, tg_store_t *store, const tg_notice_t *n, tg_err_t *err)
{
    return tg_notify_enqueue(ud, store, n, tg_wall_us(), err);
}

/* ---- main thread: signals and reload ---------------------------------- */

/* defaults.limits of a config, in the policy's terms. */
static void policy_defaults(const tg_config_t *c, tg_policy_defaults_t *d)
{
    memset(d, 0, sizeof *d);
    const struct {
        int v;
        uint64_t period_s;
    } r[3] = {
        {c->default_limits.rps, 1}, {c->default_limits.rpm, 60}, {c->default_limits.rph, 3600}};
    for (int i = 0; i < 3; i++)
        if (r[i].v >= 0) {
            d->has_rate = 1;
            d->rate.limit = (uint64_t)r[i].v;
            d->rate.period_ns = r[i].period_s * 1000000000ULL;
            d->rate.burst = (uint64_t)c->default_limits.burst;
        }
    d->concurrency = c->default_limits.concurrency;
}

typedef struct main_ctx {
    tg_server_t *srv;
    const char *config_path;
    uv_signal_t sigterm, sigint, sighup, sigusr1;
    tg_admin_t *admin;
    int stopping;
    tg_alarm_runner_t *alarms; /* main thread only, with its own store connection */
    uv_timer_t alarm_timer;    /* every alarms_interval */
    long alarm_interval_ms;
} main_ctx_t;

static void on_alarm_timer(uv_timer_t *t)
{
    main_ctx_t *m = t->data;
    alarm_tick(m->srv, m->alarms, m->srv->cfg);
}

/* 1 when a and b (either may be NULL) hold the same text. */
static int same_text(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

/* 1 when the shared limiter's address or credentials differ: each worker's client was made
 * with them at start (its connection authenticates with them at each reconnect). */
static int backend_changed(const tg_config_t *next, const tg_config_t *cur)
{
    if (next->limits.redis != cur->limits.redis) return 1;
    return next->limits.redis &&
           (strcmp(next->limits.redis_host, cur->limits.redis_host) ||
            next->limits.redis_port != cur->limits.redis_port ||
            next->limits.redis_db != cur->limits.redis_db ||
            !same_text(next->limits.redis_user, cur->limits.redis_user) ||
            !same_text(next->limits.redis_password, cur->limits.redis_password));
}

static void reload(main_ctx_t *m)
{
    tg_config_t *next;
    tg_err_t err;
    if (tg_config_load(m->config_path, &next, &err) != 0) {
        TG_ERROR("reload refused, keeping the running config: %s", err.msg);
        return;
    }
    tg_config_t *cur = m->srv->cfg;
    if (strcmp(next->server.listen, cur->server.listen) != 0 ||
        strcmp(next->server.admin_listen, cur->server.admin_listen) != 0 ||
        strcmp(next->store, cur->store) != 0 || next->server.workers != cur->server.workers ||
        backend_changed(next, cur))
        TG_WARN("reload: server.listen, admin_listen, workers, store and limits.backend (its "
                "password too) take effect on restart");
    /* The file's content is followed as it changes (auth/jwks.h); which file, is not. */
    if (strcmp(next->jwt.jwks_file ? next->jwt.jwks_file : "",
               m->srv->jwks ? tg_jwks_watch_path(m->srv->jwks) : ""))
        TG_WARN("reload: jwt.jwks_file (which file) takes effect on restart; its content is "
                "read again whenever it changes");
    tg_log_level_t lvl;
    if (tg_log_parse_level(next->log.level, &lvl) == 0) tg_log_level = lvl;
    /* The admin reads the token from m->srv->cfg per request: the swap below changes it. */
    if (next->server.admin_token_set != cur->server.admin_token_set ||
        memcmp(next->server.admin_token_sha256, cur->server.admin_token_sha256,
               sizeof cur->server.admin_token_sha256) != 0) {
        if (next->server.admin_token_set)
            TG_INFO("reload: the admin token changed (%s); the old one is refused from now on",
                    next->server.admin_token_file ? next->server.admin_token_file
                                                  : "server.admin_token");
        else
            warn_no_admin_token(next);
    }
    tg_policy_defaults_t pd;
    policy_defaults(next, &pd);
    tg_policy_set_defaults(m->srv->policy, &pd);
    if (m->srv->notify) tg_notify_set_config(m->srv->notify, next); /* notify: and its retry */
    if (tg_pricebook_set_defaults(m->srv->prices, next->prices, next->nprices, &err) != 0)
        TG_ERROR("reload: prices kept as they were: %s", err.msg);
    for (int i = 0; i < m->srv->nworkers; i++) {
        tg_worker_t *w = &m->srv->workers[i];
        pthread_mutex_lock(&w->mu);
        if (w->next_cfg) tg_config_unref(w->next_cfg);
        w->next_cfg = tg_config_ref(next);
        pthread_mutex_unlock(&w->mu);
        uv_async_send(&w->mailbox);
    }
    if (m->alarms && tg_alarm_runner_set_config(m->alarms, next) != 0)
        TG_ERROR("reload: alarms kept as they were: out of memory");
    if (m->alarms && next->alarms_interval_ms != m->alarm_interval_ms) {
        m->alarm_interval_ms = next->alarms_interval_ms;
        uv_timer_start(&m->alarm_timer, on_alarm_timer, (uint64_t)m->alarm_interval_ms,
                       (uint64_t)m->alarm_interval_ms);
    }
    m->srv->cfg = next;
    tg_config_unref(cur);
    TG_INFO("config reloaded from %s: %zu upstreams, %zu routes", m->config_path, next->nupstreams,
            next->nroutes);
}

static void on_signal(uv_signal_t *h, int signum)
{
    main_ctx_t *m = h->data;
    if (signum == SIGHUP) {
        reload(m);
        return;
    }
    if (signum == SIGUSR1) {
        tg_recorder_reopen_accesslog(m->srv->rec); /* after logrotate moved it */
        return;
    }
    if (m->stopping) return;
    m->stopping = 1;
    TG_INFO("%s: draining in-flight requests", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    for (int i = 0; i < m->srv->nworkers; i++) {
        tg_worker_t *w = &m->srv->workers[i];
        pthread_mutex_lock(&w->mu);
        w->drain_requested = 1;
        pthread_mutex_unlock(&w->mu);
        uv_async_send(&w->mailbox);
    }
    uv_signal_stop(&m->sigterm);
    uv_signal_stop(&m->sigint);
    uv_signal_stop(&m->sighup);
    uv_signal_stop(&m->sigusr1);
    if (m->alarms) {
        uv_timer_stop(&m->alarm_timer);
        uv_close((uv_handle_t *)&m->alarm_timer, NULL);
    }
    if (m->admin) tg_admin_stop(m->admin);
    m->admin = NULL;
    if (m->srv->dash) tg_dash_stop(m->srv->dash); /* after the admin: its jobs are cancelled */
    m->srv->dash = NULL;
    if (m->srv->api) tg_dash_stop(m->srv->api); /* the call it runs, if any, ends first */
    m->srv->api = NULL;
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sighup, NULL);
    uv_close((uv_handle_t *)&m->sigusr1, NULL);
}

int tg_server_run(const char *config_path)
{
    tg_err_t err;
    tg_server_t srv = {0};
    if (tg_config_load(config_path, &srv.cfg, &err) != 0) {
        fprintf(stderr, "tollgate: %s\n", err.msg);
        return 2;
    }
    tg_config_t *cfg = srv.cfg;
    tg_log_level_t lvl;
    if (tg_log_parse_level(cfg->log.level, &lvl) == 0) tg_log_level = lvl;
    if (tg_listen_parse(cfg->server.listen, &srv.listen_addr, &err) != 0) {
        fprintf(stderr, "tollgate: %s: server.listen: %s\n", cfg->path, err.msg);
        tg_config_unref(cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    int code = 1;
    int nfds = 0;
    int fds[TG_WORKERS_MAX];
    tg_store_t *store = NULL;
    srv.keys = tg_keyring_new();
    /* The KEK opens signing secrets; a KEK changed by a reload takes effect on restart. */
    if (srv.keys)
        tg_keyring_set_kek(srv.keys, cfg->encryption.has_kek ? &cfg->encryption.kek : NULL);
    srv.replay = tg_replay_new(cfg->signing.replay_cache); /* (its table: on first use) */
    srv.policy = tg_policy_new();
    srv.prices = tg_pricebook_new();
    srv.no_request_metrics = getenv("TOLLGATE_BENCH_NO_REQUEST_METRICS") != NULL;
    if (srv.no_request_metrics)
        TG_WARN("TOLLGATE_BENCH_NO_REQUEST_METRICS is set: requests are not counted on /metrics "
                "(a benchmark switch)");
    srv.metrics = tg_metrics_new(&(tg_metrics_caps_t){
        .max_tenants = (size_t)cfg->metrics.max_tenants,
        .max_models = (size_t)cfg->metrics.max_models,
        .max_tools = (size_t)cfg->metrics.max_tools,
    });
    tg_policy_defaults_t pd;
    policy_defaults(cfg, &pd);
    if (srv.policy) tg_policy_set_defaults(srv.policy, &pd);
    main_ctx_t m = {.srv = &srv, .config_path = config_path};
    uv_loop_t *loop = uv_default_loop();

    /* Store first: migrations, the key snapshot, then the recorder (which
     * replays any spool a previous run left). */
    if (!srv.keys || !srv.replay || !srv.policy || !srv.prices || !srv.metrics ||
        tg_pricebook_set_defaults(srv.prices, cfg->prices, cfg->nprices, &err) != 0) {
        fprintf(stderr, "tollgate: out of memory\n");
        goto out;
    }
    if (tg_store_open(cfg->store, &store, &err) != 0 ||
        tg_keyring_load(srv.keys, store, &err) != 0 ||
        tg_policy_load(srv.policy, store, tg_wall_us(), &err) != 0 ||
        tg_pricebook_load(srv.prices, store, &err) != 0) {
        fprintf(stderr, "tollgate: store: %s\n", err.msg);
        goto out;
    }
    tg_store_close(store);
    store = NULL;
    if (cfg->jwt.jwks_file && !(srv.jwks = tg_jwks_watch_new(cfg->jwt.jwks_file, &err))) {
        fprintf(stderr, "tollgate: %s: jwt.jwks_file: %s\n", cfg->path, err.msg);
        code = 2;
        goto out;
    }
    tg_recorder_opts_t ro = {
        .store_url = cfg->store,
        .spool_path = cfg->recorder.spool,
        .kek = cfg->encryption.has_kek ? &cfg->encryption.kek : NULL,
        .access_log = cfg->log.access,
        .queue_size = cfg->recorder.queue_size,
        .flush_ms = cfg->recorder.flush_ms,
        .retention_events_days = cfg->retention.events_days,
        .retention_aggregates_days = cfg->retention.aggregates_days,
        .retention_audit_days = cfg->retention.audit_days,
        .unauth_per_minute = cfg->log.unauthenticated_per_minute,
    };
    if (tg_recorder_start(&ro, &srv.rec, &err) != 0) {
        fprintf(stderr, "tollgate: recorder: %s\n", err.msg);
        goto out;
    }
    /* The outbox's sender before the policy refresher, whose flush hands it budget notices. */
    srv.notify = tg_notify_new(
        &(tg_notify_opts_t){.store_url = cfg->store,
                            .wall_clock = tg_wall_us,
                            .mono_clock = tg_mono_us,
                            .random = notify_random,
                            .kek = cfg->encryption.has_kek ? &cfg->encryption.kek : NULL},
        cfg);
    if (!srv.notify || tg_notify_start(srv.notify, &err) != 0) {
        fprintf(stderr, "tollgate: notify: %s\n", srv.notify ? err.msg : "out of memory");
        goto out;
    }
    tg_policy_set_notice(srv.policy, budget_notice, srv.notify);
    if (tg_keyring_start_refresh(srv.keys, cfg->store, TG_REFRESH_MS, &err) != 0 ||
        tg_policy_start_refresh(srv.policy, cfg->store, TG_REFRESH_MS, &err) != 0 ||
        tg_pricebook_start_refresh(srv.prices, cfg->store, TG_REFRESH_MS, &err) != 0) {
        fprintf(stderr, "tollgate: %s\n", err.msg);
        goto out;
    }

    srv.nworkers = cfg->server.workers > 0 ? cfg->server.workers : 1;
    if (srv.nworkers > TG_WORKERS_MAX) srv.nworkers = TG_WORKERS_MAX; /* (config refuses more) */
    for (nfds = 0; nfds < srv.nworkers; nfds++) {
        fds[nfds] = tg_listen_socket(&srv.listen_addr, 1, &err);
        if (fds[nfds] < 0) {
            fprintf(stderr, "tollgate: %s\n", err.msg);
            goto out;
        }
    }
    if (cfg->server.admin_listen[0] && !(srv.dash = tg_dash_start(loop, cfg->store, &err))) {
        fprintf(stderr, "tollgate: %s\n", err.msg);
        goto out;
    }
    if (cfg->server.admin_listen[0] &&
        (!(srv.admin_tokens = tg_admin_tokens_new()) ||
         tg_admin_tokens_start_refresh(srv.admin_tokens, cfg->store, TG_REFRESH_MS, &err) != 0 ||
         !(srv.api = tg_dash_start_writer(loop, cfg->store, &err)))) {
        fprintf(stderr, "tollgate: admin API: %s\n", err.msg[0] ? err.msg : "out of memory");
        goto out;
    }
    if (cfg->server.admin_listen[0]) {
        m.admin = admin_start(loop, cfg->server.admin_listen, &srv, &err);
        if (!m.admin) {
            fprintf(stderr, "tollgate: admin: %s\n", err.msg);
            goto out;
        }
        warn_no_admin_token(cfg);
    }
    /* The alarm runner: its own store connection, used by this (main) thread only. */
    tg_store_t *astore = NULL;
    if (tg_store_open(cfg->store, &astore, &err) != 0 ||
        tg_store_set_busy_timeout(astore, 100, &err) != 0) {
        tg_store_close(astore);
        fprintf(stderr, "tollgate: alarms: %s\n", err.msg);
        goto out;
    }
    m.alarms = tg_alarm_runner_new(cfg, astore, srv.policy, (size_t)cfg->metrics.max_tenants, &err);
    if (!m.alarms) { /* (the runner closed astore) */
        fprintf(stderr, "tollgate: alarms: %s\n", err.msg);
        goto out;
    }
    srv.alarms = m.alarms;
    uv_timer_init(loop, &m.alarm_timer);
    m.alarm_timer.data = &m;
    m.alarm_interval_ms = cfg->alarms_interval_ms;
    uv_timer_start(&m.alarm_timer, on_alarm_timer, (uint64_t)m.alarm_interval_ms,
                   (uint64_t)m.alarm_interval_ms);
    srv.workers = calloc((size_t)srv.nworkers, sizeof *srv.workers);
    for (int i = 0; i < srv.nworkers; i++) {
        if (worker_init(&srv.workers[i], &srv, i, fds[i], &err) != 0) {
            fprintf(stderr, "tollgate: %s\n", err.msg);
            exit(1); /* half-built loops: nothing was accepted yet */
        }
        fds[i] = -1;
    }
    for (int i = 0; i < srv.nworkers; i++)
        pthread_create(&srv.workers[i].thread, NULL, worker_main, &srv.workers[i]);

    uv_signal_init(loop, &m.sigterm);
    uv_signal_init(loop, &m.sigint);
    uv_signal_init(loop, &m.sighup);
    uv_signal_init(loop, &m.sigusr1);
    m.sigterm.data = m.sigint.data = m.sighup.data = m.sigusr1.data = &m;
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sighup, on_signal, SIGHUP);
    uv_signal_start(&m.sigusr1, on_signal, SIGUSR1);
    char addr[80];
    tg_listen_format(&srv.listen_addr, addr, sizeof addr);
    TG_INFO("tollgate serving on %s (admin %s), %d workers, store %s", addr,
            cfg->server.admin_listen[0] ? cfg->server.admin_listen : "off", srv.nworkers,
            strncmp(cfg->store, "sqlite:", 7) == 0 ? cfg->store : "postgres");

    uv_run(loop, UV_RUN_DEFAULT);

    for (int i = 0; i < srv.nworkers; i++) {
        pthread_join(srv.workers[i].thread, NULL);
        tg_jwt_cache_free(srv.workers[i].jwtcache);
        tg_config_unref(srv.workers[i].cfg);
        if (srv.workers[i].next_cfg) tg_config_unref(srv.workers[i].next_cfg);
        pthread_mutex_destroy(&srv.workers[i].mu);
    }
    code = 0;
out:
    for (int i = 0; i < nfds; i++)
        if (fds[i] >= 0) close(fds[i]);
    if (m.admin) tg_admin_stop(m.admin);
    if (m.alarms && !m.stopping) uv_close((uv_handle_t *)&m.alarm_timer, NULL);
    if (srv.dash) tg_dash_stop(srv.dash);
    if (srv.api) tg_dash_stop(srv.api);
    uv_run(loop, UV_RUN_NOWAIT);
    srv.alarms = NULL;
    tg_alarm_runner_free(m.alarms);
    uv_loop_close(loop);
    tg_keyring_stop_refresh(srv.keys);
    if (srv.policy) tg_policy_stop_refresh(srv.policy); /* its last flush may enqueue */
    tg_notify_free(srv.notify); /* after: a send in progress is aborted, stays pending */
    if (srv.prices) tg_pricebook_stop_refresh(srv.prices);
    if (srv.rec) tg_recorder_stop(srv.rec); /* drains the queue into the store or spool */
    tg_keyring_free(srv.keys);
    tg_jwks_watch_free(srv.jwks);
    tg_replay_free(srv.replay);
    tg_admin_tokens_free(srv.admin_tokens); /* stops its refresher: its last uses written */
    tg_policy_free(srv.policy);
    tg_pricebook_free(srv.prices);
    tg_metrics_free(srv.metrics); /* the workers are joined */
    tg_store_close(store);
    free(srv.workers);
    tg_config_unref(srv.cfg);
    curl_global_cleanup();
    if (code == 0) TG_INFO("stopped");
    return code;
}
