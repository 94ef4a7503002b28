/* `tollgate export --format cloudevents|jsonl --from DAY --to DAY [--tenant ID]`: usage
 * events, one JSON object a line, streamed from the store (one event in memory at a time),
 * so a billing system (OpenMeter, Lago) or a warehouse can take them.
 *
 * cloudevents: a CloudEvents 1.0 structured-mode event per line (docs/billing.md):
 * specversion "1.0", type "dev.tollgate.usage", source "tollgate", subject the tenant, id
 * the event id (decimal: unique and stable, so a consumer that dedups by source + id counts
 * a re-export once), time RFC 3339 UTC with microseconds, datacontenttype
 * "application/json", and data the event's fields. jsonl: the data objects alone. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "util/clock.h"

#define USAGE                                                                                      \
    "usage: tollgate export --format cloudevents|jsonl --from YYYY-MM-DD --to YYYY-MM-DD "         \
    "[--tenant ID]"

#define DAY_US 86400000000LL

/* "2026-11-30T23:59:59.999999Z" */
static void rfc3339(int64_t us, char buf[32])
{
    time_t t = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
    long frac = (long)(us - (int64_t)t * 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, 32, "%.19s.%06ldZ", day, frac);
}

static json_t *text_or_null(const char *s)
{
    return s[0] ? tg_cli_json_text(s) : json_null();
}

static json_t *tokens(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

/* The event's fields, as the store holds them (migrations.c describes each). */
static json_t *event_data(const tg_event_t *e)
{
    char id[24], ts[32];
    snprintf(id, sizeof id, "%lld", (long long)e->id);
    rfc3339(e->ts_us, ts);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "ts_us", json_integer(e->ts_us));
    json_object_set_new(o, "tenant", tg_cli_json_text(e->tenant));
    json_object_set_new(o, "key_id", text_or_null(e->key_id));
    json_object_set_new(o, "route", text_or_null(e->route));
    json_object_set_new(o, "method", tg_cli_json_text(e->method));
    json_object_set_new(o, "path", tg_cli_json_text(e->path));
    json_object_set_new(o, "status", json_integer(e->status));
    json_object_set_new(o, "outcome", json_string(tg_outcome_name(e->outcome)));
    json_object_set_new(o, "reason", text_or_null(e->reason));
    json_object_set_new(o, "requests", json_integer(tg_event_count(e)));
    json_object_set_new(o, "latency_us", json_integer(e->latency_us));
    json_object_set_new(o, "bytes_in", json_integer(e->bytes_in));
    json_object_set_new(o, "bytes_out", json_integer(e->bytes_out));
    json_object_set_new(o, "model", text_or_null(e->model));
    json_object_set_new(o, "tokens_in", tokens(e->tokens_in));
    json_object_set_new(o, "tokens_out", tokens(e->tokens_out));
    json_object_set_new(o, "tokens_cached", tokens(e->tokens_cached));
    json_object_set_new(o, "tokens_cache_write", tokens(e->tokens_cache_write));
    json_object_set_new(o, "tool", text_or_null(e->tool));
    json_object_set_new(o, "rpc_method", text_or_null(e->rpc_method));
    json_object_set_new(o, "cost_micros", json_integer(e->cost_micros));
    json_object_set_new(o, "price_flag", text_or_null(e->price_flag));
    json_object_set_new(o, "cache", text_or_null(e->cache));
    json_object_set_new(o, "client_ip", text_or_null(e->client_ip));
    json_object_set_new(o, "request_id", text_or_null(e->request_id));
    json_object_set_new(o, "upstream", text_or_null(e->upstream));
    json_object_set_new(o, "source", tg_cli_json_text(e->source[0] ? e->source : "gateway"));
    json_object_set_new(o, "auth", text_or_null(e->auth));
    json_object_set_new(o, "subject", text_or_null(e->subject));
    return o;
}

typedef struct sink {
    int cloudevents;
    long long n;
    int failed;
} sink_t;

static int on_event(const tg_event_t *e, void *ud)
{
    sink_t *k = ud;
    json_t *data = event_data(e);
    json_t *o = data;
    if (data && k->cloudevents) {
        char id[24], ts[32];
        snprintf(id, sizeof id, "%lld", (long long)e->id);
        rfc3339(e->ts_us, ts);
        o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:o}", "specversion", "1.0", "type",
                      "dev.tollgate.usage", "source", "tollgate", "subject",
                      tg_cli_json_text(e->tenant), "id", id, "time", ts, "datacontenttype",
                      "application/json", "data", data);
    }
    if (!o) {
        k->failed = 1;
        return -1;
    }
    int r = json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (r != 0 || putchar('\n') == EOF) {
        k->failed = 1;
        return -1;
    }
    k->n++;
    return 0;
}

int tg_cli_export(int argc, char **argv, const char *config_path)
{
    const char *format = NULL, *from = NULL, *to = NULL, *tenant = NULL;
    int help = 0;
    const tg_cli_opt_t opts[] = {
        {"--format", &format}, {"--from", &from}, {"--to", &to}, {"--tenant", &tenant}};
    int rc = tg_cli_parse(argc, argv, 1, opts, 4, NULL, 0, NULL, &help, USAGE);
    if (rc != 0) return rc;
    if (help) return puts(USAGE) >= 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
    if (!format || (strcmp(format, "cloudevents") != 0 && strcmp(format, "jsonl") != 0))
        return tg_cli_errorf(TG_EXIT_USAGE, "export needs --format cloudevents or jsonl (%s)",
                             USAGE);
    int64_t from_us, to_us;
    if (!from || tg_parse_day(from, &from_us) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "export needs --from YYYY-MM-DD (%s)", USAGE);
    if (!to || tg_parse_day(to, &to_us) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "export needs --to YYYY-MM-DD (%s)", USAGE);
    to_us += DAY_US; /* --to is the last day exported, as usage's */
    if (to_us <= from_us) return tg_cli_errorf(TG_EXIT_USAGE, "--to is before --from");
    if (tenant && (rc = tg_cli_check_tenant(tenant, 0)) != 0) return rc;
    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    sink_t k = {.cloudevents = format[0] == 'c'};
    tg_err_t err = {{0}};
    int r = tg_store_event_range(store, tenant, from_us, to_us, on_event, &k, &err);
    if (k.failed)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the export (after %lld events)", k.n);
    else if (r != 0)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    else if (fflush(stdout) != 0)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the export");
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
