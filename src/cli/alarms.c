/* `tollgate alarms list | history | export-rules` (docs/operations.md, "Alarms").
 *
 * list and history read what the serving gateway's alarm runner stored (the alarms and
 * alarm_events tables); export-rules prints the configured alarms as Prometheus alerting
 * rules (alarm/promrules.h) and needs no store. `alarms test` is not here: it sends
 * through the notifiers and lives with them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarm/promrules.h"
#include "cli/cli.h"
#include "cli/common.h"

#define USAGE_ALARMS                                                                               \
    "usage: tollgate alarms list [--format table|json]\n"                                          \
    "       tollgate alarms history [--tenant ID] [--limit N] [--format table|json]\n"             \
    "       tollgate alarms export-rules"

static const tg_cli_col_t list_cols[] = {
    {.name = "alarm", .type = TG_CLI_COL_TEXT},
    {.name = "tenant", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
    {.name = "kind", .type = TG_CLI_COL_TEXT},
    {.name = "state", .type = TG_CLI_COL_TEXT},
    {.name = "value", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_NO_JSON | TG_CLI_COL_RIGHT},
    {.name = "fires_at", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_NO_JSON | TG_CLI_COL_RIGHT},
    {.name = "baseline", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_NO_JSON | TG_CLI_COL_RIGHT},
    {.name = "value", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "threshold", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "baseline", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "since", .type = TG_CLI_COL_TEXT},
    {.name = "seq", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "action", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
};

static void cell_num(tg_cli_rows_t *t, double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.4g", v);
    tg_cli_cell_text(t, buf);
}

static int add_alarm(const tg_alarm_row_t *r, void *ud)
{
    tg_cli_rows_t *t = ud;
    tg_cli_cell_text(t, r->name);
    tg_cli_cell_text(t, r->tenant);
    tg_cli_cell_text(t, r->kind);
    tg_cli_cell_text(t, r->state);
    cell_num(t, r->value);
    cell_num(t, r->threshold);
    cell_num(t, r->baseline);
    tg_cli_cell_json(t, json_real(r->value));
    tg_cli_cell_json(t, json_real(r->threshold));
    tg_cli_cell_json(t, json_real(r->baseline));
    tg_cli_cell_time(t, r->since_us);
    tg_cli_cell_int(t, r->seq);
    tg_cli_cell_text(t, r->action);
    return tg_cli_row_done(t);
}

static const tg_cli_col_t history_cols[] = {
    {.name = "time", .type = TG_CLI_COL_TEXT},
    {.name = "alarm", .type = TG_CLI_COL_TEXT},
    {.name = "tenant", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
    {.name = "from", .type = TG_CLI_COL_TEXT},
    {.name = "to", .type = TG_CLI_COL_TEXT},
    {.name = "value", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_NO_JSON | TG_CLI_COL_RIGHT},
    {.name = "fires_at", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_NO_JSON | TG_CLI_COL_RIGHT},
    {.name = "value", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "threshold", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "baseline", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "kind", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "window_s", .type = TG_CLI_COL_INT, .flags = TG_CLI_COL_JSON_ONLY},
    {.name = "id", .type = TG_CLI_COL_TEXT},
    {.name = "action", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_DASH},
    {.name = "summary", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_JSON_ONLY},
};

static int add_event(const tg_alarm_event_row_t *r, void *ud)
{
    tg_cli_rows_t *t = ud;
    tg_cli_cell_time(t, r->time_us);
    tg_cli_cell_text(t, r->name);
    tg_cli_cell_text(t, r->tenant);
    tg_cli_cell_text(t, r->from_state);
    tg_cli_cell_text(t, r->to_state);
    cell_num(t, r->value);
    cell_num(t, r->threshold);
    tg_cli_cell_json(t, json_real(r->value));
    tg_cli_cell_json(t, json_real(r->threshold));
    tg_cli_cell_json(t, json_real(r->baseline));
    tg_cli_cell_text(t, r->kind);
    tg_cli_cell_int(t, r->window_s);
    tg_cli_cell_text(t, r->notice_id);
    tg_cli_cell_text(t, r->action);
    tg_cli_cell_text(t, r->summary);
    return tg_cli_row_done(t);
}

static int cmd_export(const char *config_path)
{
    tg_config_t *cfg;
    tg_err_t err = {{0}};
    if (tg_config_load(config_path, &cfg, &err) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
    tg_buf_t out = TG_BUF_INIT(1u << 24);
    int rc = tg_alarm_prom_rules(cfg, &out);
    tg_config_unref(cfg);
    if (rc != 0) {
        tg_buf_free(&out);
        return tg_cli_errorf(TG_EXIT_RUNTIME, "out of memory");
    }
    int bad = fwrite(tg_buf_str(&out), 1, tg_buf_len(&out), stdout) != tg_buf_len(&out) ||
              fflush(stdout) != 0;
    tg_buf_free(&out);
    return bad ? tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the rules") : TG_EXIT_OK;
}

int tg_cli_alarms(int argc, char **argv, const char *config_path)
{
    const char *tenant = NULL, *limit = NULL, *format = NULL, *pos = NULL;
    const tg_cli_opt_t opts[] = {{"--tenant", &tenant}, {"--limit", &limit}, {"--format", &format}};
    int help = 0, npos = 0;
    int rc = tg_cli_parse(argc, argv, 1, opts, 3, &pos, 1, &npos, &help, USAGE_ALARMS);
    if (rc != 0) return rc;
    if (help || !pos || strcmp(pos, "help") == 0) {
        puts(USAGE_ALARMS);
        return pos || help ? TG_EXIT_OK : TG_EXIT_USAGE;
    }
    int list = !strcmp(pos, "list"), history = !strcmp(pos, "history"),
        exp = !strcmp(pos, "export-rules");
    if (!list && !history && !exp)
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown alarms command \"%s\" (%s)", pos,
                             USAGE_ALARMS);
    if (!history && (tenant || limit))
        return tg_cli_errorf(TG_EXIT_USAGE, "%s goes with alarms history",
                             tenant ? "--tenant" : "--limit");
    if (exp && format) return tg_cli_errorf(TG_EXIT_USAGE, "export-rules prints YAML only");
    if (exp) return cmd_export(config_path);
    tg_cli_format_t fmt = TG_CLI_TABLE;
    if ((rc = tg_cli_parse_format(format, 0, &fmt)) != 0) return rc;
    int64_t n = 50;
    if (limit && tg_cli_parse_count(limit, 1000000, &n) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid --limit \"%s\" (a count, 0 = all)", limit);
    if (tenant && *tenant && (rc = tg_cli_check_tenant(tenant, 0)) != 0) return rc;

    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    tg_err_t err = {{0}};
    if (list) {
        tg_cli_rows_t t = TG_CLI_ROWS(list_cols);
        t.json_flags = JSON_REAL_PRECISION(10);
        int r = tg_store_alarm_list(store, add_alarm, &t, &err);
        rc = tg_cli_rows_finish(&t, r, &err, fmt, "alarms");
    } else {
        tg_cli_rows_t t = TG_CLI_ROWS(history_cols);
        t.json_flags = JSON_REAL_PRECISION(10);
        int r = tg_store_alarm_events(store, tenant, n, add_event, &t, &err);
        rc = tg_cli_rows_finish(&t, r, &err, fmt, "history");
    }
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
