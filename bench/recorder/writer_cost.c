/* The writer thread's cost per event, phase by phase, for callgrind: what the recorder's
 * writer does with each batch (access-log lines, then one store append), taken apart so
 * each part can be counted in instructions. Run it under
 *
 *   valgrind --tool=callgrind --callgrind-out-file=DIR/wc.out writer_cost DIR
 *
 * (bench/proxy/profile.sh does, and prints the table). Each phase zeroes callgrind's
 * counters, runs, and dumps them under its name (CALLGRIND_DUMP_STATS_AT), so every dump
 * file holds one phase and its total divided by the phase's events is the cost per event.
 * Outside callgrind the macros do nothing and the program only runs the phases.
 *
 * The event is the openai route's chat event as tollgate records it in bench/proxy (tenant
 * bench, route chat, model bench, 7 + 16 tokens, priced, status 200, billable).
 *
 * Phases (EVENTS = 5120 each, ids new and increasing as the gateway makes them; each append
 * phase on a fresh store warmed with one batch):
 *   format          tg_accesslog_format into a buffer: the JSON line only
 *   log             tg_accesslog_write per event, tg_accesslog_flush per 256: the writer's
 *                   access-log work (format, stdio, write(2))
 *   append_b256     tg_store_append in batches of 256 (what the writer commits under load:
 *                   it wakes every 256 events), one tenant: one usage_daily upsert a batch
 *   append_b256_d16 16 (tenant, day) groups a batch, as runs of successive days of one
 *                   tenant: 16 upserts a batch, the inserts as in append_b256
 *   append_b256_d256 a group per event: one usage_daily upsert per event
 *   append_b256_t16 16 tenants a batch, cycling event by event: 16 upserts a batch, and
 *                   the (tenant, ts_us) index takes inserts at 16 places (many tenants)
 *   append_b1       batches of 1: a transaction per event
 *   append_b4096    batches of 4096 (BATCH_MAX)
 *   append_b256_nokey as append_b256 with no key_id (skips the api_keys last_used update)
 *   append_b256_get  as append_b256 with the GET route's event of bench/proxy (route api,
 *                    GET /, no model, tokens unknown, no cost): no audit record
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <valgrind/callgrind.h>

#include "types/event.h"
#include "observe/accesslog.h"
#include "store/store.h"

#define EVENTS 5120

static int64_t wall = 1764633600000000LL; /* 2025-12-02, advanced 30 us an event */
static int plain_get; /* make_event: the GET route's event instead of the chat one */

static void make_event(tg_event_t *ev, int tenant_no, int64_t day_shift, int with_key)
{
    memset(ev, 0, sizeof *ev);
    wall += 30;
    ev->ts_us = wall + day_shift * 86400000000LL;
    ev->id = tg_event_new_id(ev->ts_us);
    ev->latency_us = 1263;
    ev->bytes_in = 100;
    ev->bytes_out = 526;
    ev->tokens_in = 7;
    ev->tokens_out = 16;
    ev->tokens_cached = 0;
    ev->tokens_cache_write = TG_TOKENS_UNKNOWN;
    ev->cost_micros = 11;
    ev->status = 200;
    ev->outcome = TG_OUTCOME_BILLABLE;
    char tenant[64];
    int n = tenant_no ? snprintf(tenant, sizeof tenant, "bench%d", tenant_no)
                      : snprintf(tenant, sizeof tenant, "bench");
    TG_EVENT_SET(ev, tenant, tenant, (size_t)n);
    if (with_key) TG_EVENT_SET(ev, key_id, "key_b145031aa8f3bd0a", 20);
    if (plain_get) {
        ev->bytes_in = 0;
        ev->tokens_in = ev->tokens_out = ev->tokens_cached = TG_TOKENS_UNKNOWN;
        ev->cost_micros = 0;
        TG_EVENT_SET(ev, route, "api", 3);
        TG_EVENT_SET(ev, method, "GET", 3);
        TG_EVENT_SET(ev, path, "/", 1);
    } else {
        TG_EVENT_SET(ev, route, "chat", 4);
        TG_EVENT_SET(ev, method, "POST", 4);
        TG_EVENT_SET(ev, path, "/v1/chat/completions", 20);
        TG_EVENT_SET(ev, model, "bench", 5);
    }
    TG_EVENT_SET(ev, client_ip, "127.0.0.1", 9);
    TG_EVENT_SET(ev, upstream, "http://127.0.0.1:40123", 22);
    snprintf(ev->request_id, sizeof ev->request_id, "%016llx",
             (unsigned long long)(0x0cb6151c6fe997a5ULL + (unsigned long long)(ev->id & 0xffff)));
}

/* EVENTS events into evs, in batches of bsize: with ngroups > 1, each batch spans ngroups
 * (tenant, day) groups, either tenants cycling event by event (by_day 0: the index on
 * (tenant, ts_us) takes inserts at ngroups places) or consecutive runs of events on
 * ngroups successive days of one tenant (by_day 1: every insert still lands at the end of
 * both b-trees, so the difference from one group is the upserts alone). */
static int64_t day_base;
static void fill(tg_event_t *evs, int bsize, int ngroups, int by_day, int with_key)
{
    for (int i = 0; i < EVENTS; i++) {
        int j = i % bsize;
        if (ngroups > 1 && by_day) {
            if (j == 0 && i > 0) day_base += ngroups;
            make_event(&evs[i], 0, day_base + (int64_t)j * ngroups / bsize, with_key);
        } else {
            make_event(&evs[i], ngroups > 1 ? 1 + j % ngroups : 0, day_base, with_key);
        }
    }
    day_base += ngroups;
}

/* the first total events of evs, in batches of bsize */
static int append(tg_store_t *s, const tg_event_t *evs, int total, int bsize, const char *phase)
{
    for (int i = 0; i < total; i += bsize) {
        size_t n = (size_t)(total - i < bsize ? total - i : bsize), ins = 0;
        tg_err_t err = {{0}};
        if (tg_store_append(s, evs + i, n, &ins, &err) != 0 || ins != n) {
            fprintf(stderr, "writer_cost: %s: append failed: %s\n", phase, err.msg);
            return -1;
        }
    }
    return 0;
}

/* One append phase on a fresh store file DIR/PHASE.db (so no phase pays for the rows of
 * another: a bigger b-tree, a WAL checkpoint), warmed with one batch of 256 first. */
static int append_phase(const char *dir, tg_event_t *evs, const char *phase, int bsize, int ngroups,
                        int by_day, int with_key)
{
    char url[512];
    snprintf(url, sizeof url, "sqlite:%s/%s.db", dir, phase);
    tg_store_t *s = NULL;
    tg_err_t err = {{0}};
    if (tg_store_open(url, &s, &err) != 0) {
        fprintf(stderr, "writer_cost: %s\n", err.msg);
        return -1;
    }
    fill(evs, 256, ngroups, by_day, with_key);
    int rc = append(s, evs, 256, 256, "warm");
    fill(evs, bsize, ngroups, by_day, with_key);
    CALLGRIND_ZERO_STATS;
    if (rc == 0) rc = append(s, evs, EVENTS, bsize, phase);
    CALLGRIND_DUMP_STATS_AT(phase);
    if (rc == 0) printf("%s %d\n", phase, EVENTS);
    tg_store_close(s);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR (an empty directory for the store and the log)\n", argv[0]);
        return 2;
    }
    char logpath[512];
    snprintf(logpath, sizeof logpath, "%s/access.log", argv[1]);
    tg_accesslog_t *log = NULL;
    tg_err_t err = {{0}};
    if (tg_accesslog_open(logpath, &log, &err) != 0) {
        fprintf(stderr, "writer_cost: %s\n", err.msg);
        return 1;
    }
    tg_event_t *evs = calloc(EVENTS, sizeof *evs);
    if (!evs) return 1;

    fill(evs, 256, 1, 0, 1);
    char line[4096];
    long sum = 0;
    CALLGRIND_ZERO_STATS;
    for (int i = 0; i < EVENTS; i++)
        sum += tg_accesslog_format(&evs[i], line, sizeof line);
    CALLGRIND_DUMP_STATS_AT("format");
    printf("format %d (%ld bytes a line)\n", EVENTS, sum / EVENTS);

    CALLGRIND_ZERO_STATS;
    for (int i = 0; i < EVENTS; i++) {
        tg_accesslog_write(log, &evs[i]);
        if (i % 256 == 255) tg_accesslog_flush(log);
    }
    tg_accesslog_flush(log);
    CALLGRIND_DUMP_STATS_AT("log");
    printf("log %d\n", EVENTS);

    if (append_phase(argv[1], evs, "append_b256", 256, 1, 0, 1) != 0 ||
        append_phase(argv[1], evs, "append_b256_d16", 256, 16, 1, 1) != 0 ||
        append_phase(argv[1], evs, "append_b256_d256", 256, 256, 1, 1) != 0 ||
        append_phase(argv[1], evs, "append_b256_t16", 256, 16, 0, 1) != 0 ||
        append_phase(argv[1], evs, "append_b1", 1, 1, 0, 1) != 0 ||
        append_phase(argv[1], evs, "append_b4096", 4096, 1, 0, 1) != 0 ||
        append_phase(argv[1], evs, "append_b256_nokey", 256, 1, 0, 0) != 0)
        return 1;
    plain_get = 1;
    if (append_phase(argv[1], evs, "append_b256_get", 256, 1, 0, 1) != 0) return 1;

    free(evs);
    tg_accesslog_close(log);
    return 0;
}
