/* The gateway server: worker threads, each with its own libuv loop, its own
 * SO_REUSEPORT listener and its own upstream client; a main thread that owns
 * signals (SIGTERM/SIGINT drain, SIGHUP reload) and the admin listener; the
 * keyring refresher thread; the recorder's writer thread.
 *
 * Shared between threads: the keyring (rwlock), the recorder (its mutex), the
 * upstream health atomics inside tg_config_t, each worker's mailbox, and the metrics
 * registry (each worker writes its own block; the admin's scrape reads them all). */
#ifndef TG_GATEWAY_SERVER_H
#define TG_GATEWAY_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <uv.h>

#include "auth/jwks.h"
#include "auth/jwtcache.h"
#include "auth/keyring.h"
#include "auth/replay.h"
#include "config/config.h"
#include "gateway/proxy.h"
#include "meter/price.h"
#include "meter/recorder.h"
#include "notify/sender.h"
#include "observe/metrics.h"
#include "policy/policy.h"
#include "redis/client.h"

typedef struct tg_server tg_server_t;
typedef struct tg_conn tg_conn_t;

typedef struct tg_worker {
    int id;
    tg_server_t *srv;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t mailbox;     /* wakes the loop for the fields under mu */
    uv_timer_t drain_timer; /* forces the last connections closed at drain_timeout */
    tg_proxy_t *proxy;
    tg_redis_t *redis;           /* the shared limiter's connection (limits.backend redis://),
                                    NULL: limits in memory; this worker's thread only */
    tg_metrics_block_t *metrics; /* this worker's counters: written by its thread only */
    tg_jwt_cache_t *jwtcache;    /* JWTs verified here (auth/jwtcache.h): this thread only */
    pthread_t thread;
    int listen_fd;
    /* Owned by this worker's thread only. */
    tg_config_t *cfg; /* the config new requests use (one reference) */
    tg_conn_t *conns; /* every open connection (doubly linked) */
    size_t nconns;
    int draining;
    char rbuf[65536]; /* read buffer: data is parsed before the next read */
    /* Mailbox, guarded by mu. */
    pthread_mutex_t mu;
    tg_config_t *next_cfg; /* a reloaded config to switch to */
    int drain_requested;
} tg_worker_t;

struct tg_server {
    tg_config_t *cfg; /* main thread's current config */
    tg_keyring_t *keys;
    tg_jwks_watch_t *jwks; /* jwt.jwks_file's keys (auth/jwks.h), or NULL: none at start */
    tg_replay_t *replay;   /* signed requests seen within the window (auth/replay.h; its mutex) */
    tg_policy_t *policy;
    tg_pricebook_t *prices;
    tg_recorder_t *rec;
    tg_metrics_t *metrics; /* the workers' blocks, summed by /metrics (observe/metrics.h) */
    /* TOLLGATE_BENCH_NO_REQUEST_METRICS=1 (benchmarks only: bench/proxy/metrics-cost.sh):
     * finished requests are not counted in the workers' blocks, so /metrics shows no
     * per-request series; what the counting costs is the difference. */
    int no_request_metrics;
    tg_worker_t *workers;
    int nworkers;
    struct sockaddr_storage listen_addr;
    atomic_llong inflight; /* requests between head parsed and response done */
    atomic_llong unparsed; /* AI/MCP responses whose usage or result could not be read */
    tg_notify_t *notify;   /* the outbox's sender thread (notify/sender.h); its enqueue is
                              what producers of notices call (budget thresholds now) */
    struct tg_dash *dash;  /* the dashboard's JSON builder (dash/dash.h); main thread */
    struct tg_dash *api;   /* the admin API's writer thread (adminapi.h); main thread */
    struct tg_admin_tokens *admin_tokens; /* the admin API's tokens (admin/tokens.h) */
    struct tg_alarm_runner *alarms;       /* the alarm runner (alarm/runner.h), main thread only:
                                             the dashboard reads its states there */
    tg_redis_stats_t redis_stats;         /* every worker's shared-limiter client (atomics) */
};

/* Runs `tollgate serve` until SIGTERM/SIGINT; returns the exit code. */
int tg_server_run(const char *config_path);

/* Readiness for /readyz: fills a JSON object; returns 1 when ready. */
struct json_t;
int tg_server_ready(tg_server_t *srv, struct json_t *out);

/* Counters in the Prometheus text format (malloc'd; NULL when out of memory). */
char *tg_server_metrics(tg_server_t *srv);

#endif
