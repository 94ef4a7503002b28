/* Recorder throughput, end to end: producer threads push usage events through
 * the real recorder into a real SQLite store in a temporary directory (access
 * log off), and the clock runs from the first push until tg_recorder_stop()
 * returns with everything committed. Then the store is opened read-only and
 * usage_events is counted (and usage_daily summed): a figure only counts if
 * every event arrived exactly once.
 *
 *   bench_recorder [-n EVENTS] [-p PRODUCERS] [-q QUEUE] [-f FLUSH_MS] [-s null|URL]
 *                  [-l ACCESS_LOG] [-k]
 *
 * -l sets the access log ("off" by default; a path, or "stdout").
 * -s null swaps SQLite for a store that only counts: the recorder's own
 * ceiling (ring, writer, batching), to tell its cost from the store's.
 * -s busy: a store that refuses every batch (TG_STORE_BUSY), so each goes to the spool:
 * the spool's throughput; -e seals the spool with a fixed KEK (encryption configured), to
 * compare. The check is then the spool's size: every event in it once.
 * -s postgres://... writes into that PostgreSQL database instead (an empty one: the
 * counts are of its whole usage_events; bench/recorder/run.sh starts a private server). The
 * batch sizes the writer committed are printed from the recorder's histogram.
 *
 * Prints `recorder: N events in S s = X events/s (target >= 200000)` (100000 into PostgreSQL);
 * exits 1 when the rows do not match (or the run fails), 0 otherwise. */
#include <getopt.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meter/recorder.h"
#include "store/backend.h"
#include "store/store.h"
#include "types/event.h"
#include "util/clock.h"
#include "util/log.h"

#define TARGET    200000.0 /* SQLite (the recorder's own target) */
#define TARGET_PG 100000.0 /* PostgreSQL, a local server (issue 13) */

struct producer {
    tg_recorder_t *r;
    pthread_barrier_t *go;
    long n;
    int t;
};

static const char *const tenants[] = {"acme",  "globex", "initech", "umbrella",  "hooli",
                                      "stark", "wayne",  "tyrell",  "cyberdyne", "wonka"};
static const char *const routes[] = {"chat", "embeddings", "tools", "files"};

static void *produce(void *arg)
{
    struct producer *p = arg;
    tg_event_t ev;
    memset(&ev, 0, sizeof ev);
    TG_EVENT_SET(&ev, method, "POST", 4);
    TG_EVENT_SET(&ev, model, "gpt-4o-mini", 11);
    TG_EVENT_SET(&ev, client_ip, "203.0.113.7", 11);
    TG_EVENT_SET(&ev, upstream, "https://api.openai.com", 22);
    pthread_barrier_wait(p->go);
    for (long i = 0; i < p->n; i++) {
        const char *tenant = tenants[i % 10];
        const char *route = routes[(i / 10) % 4];
        int64_t now = tg_wall_us();
        ev.id = tg_event_new_id(now);
        ev.ts_us = now;
        ev.latency_us = 1000 + i % 50000;
        ev.bytes_in = 512 + i % 4096;
        ev.bytes_out = 2048 + i % 16384;
        ev.tokens_in = 100 + i % 900;
        ev.tokens_out = 20 + i % 400;
        ev.tokens_cached = 0;
        ev.cost_micros = 15 + i % 300;
        ev.status = i % 50 == 0 ? 502 : 200;
        ev.outcome = i % 50 == 0 ? TG_OUTCOME_FAILED : TG_OUTCOME_BILLABLE;
        TG_EVENT_SET(&ev, tenant, tenant, strlen(tenant));
        TG_EVENT_SET(&ev, route, route, strlen(route));
        TG_EVENT_SET(&ev, key_id, "key_bench0001", 13);
        TG_EVENT_SET(&ev, path, "/v1/chat/completions", 20);
        snprintf(ev.request_id, sizeof ev.request_id, "req-%d-%ld", p->t, i);
        tg_recorder_push(p->r, &ev);
    }
    return NULL;
}

/* The null store: append counts and returns. Only the writer calls it. */
static long long null_rows;

static int null_append(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted,
                       tg_err_t *err)
{
    (void)s, (void)evs, (void)err;
    null_rows += (long long)n;
    *inserted = n;
    return 0;
}

static int null_purge(tg_store_t *s, int64_t before, const char *day, int64_t *deleted,
                      tg_err_t *err)
{
    (void)s, (void)before, (void)day, (void)err;
    if (deleted) *deleted = 0;
    return 0;
}

static const struct tg_store_event_ops null_ops = {.append = null_append, .purge = null_purge};
static struct tg_store null_store = {.events = &null_ops};

/* The busy store: refuses every batch, as a store locked by a backup would. */
static int busy_append(tg_store_t *s, const tg_event_t *evs, size_t n, size_t *inserted,
                       tg_err_t *err)
{
    (void)s, (void)evs, (void)n, (void)err;
    *inserted = 0;
    return TG_STORE_BUSY;
}

static const struct tg_store_event_ops busy_ops = {.append = busy_append, .purge = null_purge};
static struct tg_store busy_store = {.events = &busy_ops};

/* One number from a PostgreSQL database, or -1. */
static long long pg_query1(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    long long v = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                      ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                      : -1;
    if (v < 0) fprintf(stderr, "bench: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

static long long query1(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench: %s: %s\n", sql, sqlite3_errmsg(db));
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int main(int argc, char **argv)
{
    long total = 1000000, producers = 2, queue = 65536, flush_ms = 50;
    int keep = 0, null = 0, busy = 0, sealed = 0, c;
    const char *access_log = "off", *pg_url = NULL;
    while ((c = getopt(argc, argv, "n:p:q:f:s:l:ke")) != -1) {
        switch (c) {
        case 'n': total = atol(optarg); break;
        case 'p': producers = atol(optarg); break;
        case 'q': queue = atol(optarg); break;
        case 'f': flush_ms = atol(optarg); break;
        case 's':
            null = strcmp(optarg, "null") == 0;
            busy = strcmp(optarg, "busy") == 0;
            if (strncmp(optarg, "postgres", 8) == 0) pg_url = optarg;
            break;
        case 'l': access_log = optarg; break;
        case 'k': keep = 1; break;
        case 'e': sealed = 1; break;
        default:
            fprintf(
                stderr,
                "usage: %s [-n EVENTS] [-p PRODUCERS] [-q QUEUE] [-f FLUSH_MS] [-s null|busy|URL] "
                "[-l LOG] [-k] [-e]\n",
                argv[0]);
            return 2;
        }
    }
    if (total <= 0 || producers <= 0 || queue <= 0) {
        fprintf(stderr, "bench: -n, -p and -q must be positive\n");
        return 2;
    }
    tg_log_level = TG_LOG_WARN;

    char dir[] = "/tmp/tg_bench_recorder.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench: mkdtemp");
        return 1;
    }
    char url[160], db[128], spool[128];
    snprintf(db, sizeof db, "%s/bench.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", db);
    snprintf(spool, sizeof spool, "%s/spool", dir);

    tg_recorder_opts_t o = {
        .store_url = pg_url ? pg_url : url,
        .spool_path = spool,
        .access_log = access_log,
        .queue_size = (size_t)queue,
        .flush_ms = flush_ms,
    };
    tg_recorder_t *r;
    tg_err_t err = {{0}};
    tg_kek_t kek;
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    if (sealed && tg_kek_parse(hex, strlen(hex), "bench", &kek, &err) != 0) return 1;
    if (sealed) o.kek = &kek;
    if ((null || busy ? tg_recorder_start_with_store(&o, null ? &null_store : &busy_store, &r, &err)
                      : tg_recorder_start(&o, &r, &err)) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }

    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)producers + 1);
    pthread_t *th = calloc((size_t)producers, sizeof *th);
    struct producer *ps = calloc((size_t)producers, sizeof *ps);
    for (long t = 0; t < producers; t++) {
        ps[t] = (struct producer){
            .r = r, .go = &go, .t = (int)t, .n = total / producers + (t < total % producers)};
        pthread_create(&th[t], NULL, produce, &ps[t]);
    }
    pthread_barrier_wait(&go);
    int64_t t0 = tg_mono_us();
    for (long t = 0; t < producers; t++)
        pthread_join(th[t], NULL);
    int64_t t_pushed = tg_mono_us();
    tg_recorder_stats_t st;
    tg_recorder_stats(r, &st);
    tg_recorder_stop(r);
    int64_t t1 = tg_mono_us();

    sqlite3 *sdb = NULL;
    long long rows = -1, daily = -1;
    if (null) {
        rows = daily = null_rows;
    } else if (busy) {
        rows = daily = 0; /* nothing reaches it: the spool's size is checked below */
    } else if (pg_url) {
        rows = pg_query1(pg_url, "SELECT count(*) FROM usage_events");
        daily = pg_query1(pg_url, "SELECT sum(requests) FROM usage_daily");
    } else if (sqlite3_open_v2(db, &sdb, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        rows = query1(sdb, "SELECT COUNT(*) FROM usage_events");
        daily = query1(sdb, "SELECT SUM(requests) FROM usage_daily");
    }
    sqlite3_close(sdb);
    struct stat sst;
    long long spool_left = stat(spool, &sst) == 0 ? (long long)sst.st_size : -1;

    double secs = (double)(t1 - t0) / 1e6;
    double rate = (double)total / secs, target = pg_url ? TARGET_PG : TARGET;
    printf("recorder%s: %ld events in %.3f s = %.0f events/s (target >= %.0f)%s\n",
           null     ? " (null store)"
           : busy   ? sealed ? " (busy store: sealed spool)" : " (busy store: spool)"
           : pg_url ? " (postgres)"
                    : "",
           total, secs, rate, target, rate >= target ? "" : "  BELOW TARGET");
    printf(
        "recorder: %ld producers, queue %ld, flush %ld ms, access log %s; pushes done at %.3f s; "
        "queue full %llu times; spooled %llu; rows %lld, usage_daily requests %lld\n",
        producers, queue, flush_ms, access_log, (double)(t_pushed - t0) / 1e6,
        (unsigned long long)st.queue_full, (unsigned long long)st.spooled, rows, daily);

    uint64_t batches = 0;
    for (int b = 0; b <= TG_RECORDER_BATCH_BUCKETS; b++)
        batches += st.batch_buckets[b];
    printf("recorder: when the pushes ended: %llu events committed in %llu batches (%.0f events "
           "a batch, %.1f ms a batch)\n",
           (unsigned long long)st.committed, (unsigned long long)batches,
           batches ? (double)st.committed / (double)batches : 0.0,
           batches ? (double)st.batch_sum_us / 1e3 / (double)batches : 0.0);

    /* Busy: every event in the spool once (sealed: plus 24 + 104 bytes a frame). */
    long long events_bytes = (long long)total * (long long)sizeof(tg_event_t);
    int ok = busy ? sealed ? spool_left > 24 + events_bytes &&
                                 (spool_left - 24 - events_bytes) % 104 == 0
                           : spool_left == 16 + events_bytes
                  : rows == total && daily == total && spool_left == 16;
    if (!ok)
        fprintf(stderr,
                "bench: FAILED: expected %ld rows and an empty spool, found %lld rows, "
                "%lld in usage_daily, spool %lld bytes\n",
                total, rows, daily, spool_left);
    if (keep) {
        printf("recorder: kept %s\n", dir);
    } else {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "bench: could not remove %s\n", dir);
    }
    free(th);
    free(ps);
    pthread_barrier_destroy(&go);
    return ok ? 0 : 1;
}
