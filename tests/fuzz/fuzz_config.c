/* libFuzzer target: the config loader (src/config/config.c) from a buffer, through
 * tg_config_parse (the same code tg_config_load runs on a file's bytes). A config that
 * loads must answer route lookups; one that does not must say why. ${NAME} expansion reads
 * the environment: FUZZ_ENV is set so the seeds can use it. */
#include "config/config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("FUZZ_ENV", "sk-from-env", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_config_t *c = NULL;
    tg_err_t err;
    err.msg[0] = 0;
    if (tg_config_parse("fuzz.yaml", (const char *)data, size, &c, &err) != 0) {
        FZ_CHECK(c == NULL);
        FZ_CHECK(err.msg[0] != 0);
        return 0;
    }
    FZ_CHECK(c != NULL);
    static const char *paths[] = {"/", "/v1/chat/completions", "/mcp", "/x/y", ""};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const tg_route_conf_t *r = tg_config_route(c, paths[i], strlen(paths[i]));
        if (r) FZ_CHECK(r->up != NULL && r->up->ntargets > 0);
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        const tg_route_conf_t *r = &c->routes[i];
        FZ_CHECK(tg_config_route(c, r->path_prefix, strlen(r->path_prefix)) != NULL);
        (void)tg_route_kind_name(r->kind);
    }
    /* alarms: and actions: as loaded obey what the loader promises. */
    for (size_t i = 0; i < c->nalarms; i++) {
        const tg_alarm_conf_t *a = &c->alarms[i];
        int windowed = a->kind == TG_ALARM_ERROR_RATE || a->kind == TG_ALARM_LATENCY ||
                       a->kind == TG_ALARM_SPEND_RATE;
        FZ_CHECK(a->name && a->name[0] && a->severity);
        FZ_CHECK(windowed ? a->window_ms > 0 : a->window_ms == 0);
        FZ_CHECK(a->threshold > 0 || (windowed && a->baseline_factor >= 1));
        FZ_CHECK(a->for_evals >= 1 && a->resolve_margin >= 0 && a->resolve_margin < 1);
        for (size_t j = 0; j < i; j++)
            FZ_CHECK(strcmp(c->alarms[j].name, a->name) != 0);
        (void)tg_alarm_kind_name(a->kind);
    }
    for (size_t i = 0; i < c->nactions; i++) {
        const tg_action_conf_t *a = &c->actions[i];
        const tg_alarm_conf_t *rule = NULL;
        for (size_t j = 0; j < c->nalarms; j++)
            if (!strcmp(c->alarms[j].name, a->alarm)) rule = &c->alarms[j];
        FZ_CHECK(rule != NULL && rule->kind != TG_ALARM_QUEUE);
        if (a->what == TG_ACTION_THROTTLE) FZ_CHECK(a->factor > 0 && a->factor <= 1);
    }
    FZ_CHECK(c->alarms_interval_ms > 0);
    tg_config_unref(tg_config_ref(c));
    tg_config_unref(c);
    return 0;
}
