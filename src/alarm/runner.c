/* The alarm runner: see runner.h for the order of things at a tick. Applied actions are a
 * small list (rule, tenant, what); the state rows' action column is written from it. */
#include "alarm/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define BACKLOG_MAX 1024

typedef struct applied {
    char rule[64];
    char tenant[TG_TENANT_SIZE];
    tg_action_do_t what;
    double factor;
} applied_t;

struct tg_alarm_runner {
    tg_alarm_engine_t *engine;
    tg_store_t *store;
    tg_policy_t *policy;
    tg_action_conf_t *actions; /* copies of the config's (alarm names strdup'd) */
    size_t nactions;
    applied_t *applied;
    size_t napplied, applied_cap;
    /* What one evaluation writes, in one transaction; kept when the write fails and
     * written with the next one (rows replaced by newer ones of their (rule, tenant)). */
    tg_alarm_row_t *rows;
    size_t nrows, rows_cap;
    tg_alarm_event_row_t *evs; /* at most BACKLOG_MAX, oldest dropped past it (logged) */
    tg_notice_t *notices;      /* [BACKLOG_MAX]: evs[i]'s notice, sent once it is stored */
    unsigned char *send;       /* [BACKLOG_MAX]: 1 when notices[i] goes to the notifiers */
    size_t nevs;
    int failing;       /* the last write failed (logged once until one succeeds) */
    tg_notice_t *outq; /* [BACKLOG_MAX]: stored, not yet taken by notify, in order */
    size_t nout;
    int notify_failing;
};

/* ---- actions ------------------------------------------------------------------------- */

static void actions_free(tg_action_conf_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i].alarm);
    free(a);
}

static int applied_find(const tg_alarm_runner_t *r, const char *rule, const char *tenant,
                        tg_action_do_t what)
{
    for (size_t i = 0; i < r->napplied; i++)
        if (r->applied[i].what == what && !strcmp(r->applied[i].rule, rule) &&
            !strcmp(r->applied[i].tenant, tenant))
            return (int)i;
    return -1;
}

static int applied_add(tg_alarm_runner_t *r, const char *rule, const char *tenant,
                       tg_action_do_t what, double factor)
{
    if (applied_find(r, rule, tenant, what) >= 0) return 0;
    if (r->napplied == r->applied_cap) {
        size_t cap = r->applied_cap ? r->applied_cap * 2 : 8;
        applied_t *n = realloc(r->applied, cap * sizeof *n);
        if (!n) return -1;
        r->applied = n;
        r->applied_cap = cap;
    }
    applied_t *a = &r->applied[r->napplied++];
    snprintf(a->rule, sizeof a->rule, "%s", rule);
    snprintf(a->tenant, sizeof a->tenant, "%s", tenant);
    a->what = what;
    a->factor = factor;
    return 0;
}

/* The tenant's throttle now: the lowest factor of its applied throttles, 1 when none. */
static void rescale(tg_alarm_runner_t *r, const char *tenant)
{
    double f = 1;
    for (size_t i = 0; i < r->napplied; i++)
        if (r->applied[i].what == TG_ACTION_THROTTLE && !strcmp(r->applied[i].tenant, tenant) &&
            r->applied[i].factor < f)
            f = r->applied[i].factor;
    if (r->policy && tg_policy_set_scale(r->policy, tenant, f) != 0)
        TG_ERROR("alarm: out of memory throttling tenant %s", tenant);
}

/* What (rule, tenant) holds now, for the state row: "throttle 0.5", "pause", both. */
static void applied_text(const tg_alarm_runner_t *r, const char *rule, const char *tenant,
                         char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->napplied && used < cap; i++) {
        const applied_t *a = &r->applied[i];
        if (strcmp(a->rule, rule) || strcmp(a->tenant, tenant)) continue;
        if (a->what == TG_ACTION_THROTTLE)
            used += (size_t)snprintf(out + used, cap - used, "%sthrottle %g", used ? ", " : "",
                                     a->factor);
        else
            used += (size_t)snprintf(out + used, cap - used, "%spause", used ? ", " : "");
    }
}

typedef struct pause_find {
    const char *tenant;
    int found;
    char reason[256];
} pause_find_t;

static int on_pause(const tg_pause_row_t *p, void *ud)
{
    pause_find_t *f = ud;
    if (strcmp(p->tenant, f->tenant)) return 0;
    f->found = 1;
    snprintf(f->reason, sizeof f->reason, "%s", p->reason);
    return 1;
}

/* -1 when the store could not say. */
static int paused(tg_alarm_runner_t *r, const char *tenant, char *reason, size_t cap)
{
    pause_find_t f = {.tenant = tenant};
    tg_err_t err;
    int rc = tg_store_pause_list(r->store, on_pause, &f, &err);
    if (rc < 0) {
        TG_ERROR("alarm: reading pauses: %s", err.msg);
        return -1;
    }
    snprintf(reason, cap, "%s", f.reason);
    return f.found;
}

/* Appends "; " and text to done[cap], cut to fit. */
static void note(char *done, size_t cap, const char *text)
{
    size_t n = strlen(done);
    if (n && n + 2 < cap) {
        memcpy(done + n, "; ", 2);
        n += 2;
    }
    size_t t = strlen(text);
    if (t > cap - 1 - n) t = cap - 1 - n;
    memcpy(done + n, text, t);
    done[n + t] = '\0';
}

static void apply(tg_alarm_runner_t *r, const tg_action_conf_t *a, const char *rule,
                  const char *tenant, int64_t now, char *done, size_t cap)
{
    char text[128], reason[256], why[80];
    if (a->what == TG_ACTION_THROTTLE) {
        if (applied_find(r, rule, tenant, TG_ACTION_THROTTLE) >= 0) return;
        if (applied_add(r, rule, tenant, TG_ACTION_THROTTLE, a->factor) != 0) {
            note(done, cap, "throttle failed: out of memory");
            return;
        }
        rescale(r, tenant);
        snprintf(text, sizeof text, "throttle %g", a->factor);
        note(done, cap, text);
        return;
    }
    if (applied_find(r, rule, tenant, TG_ACTION_PAUSE) >= 0) return;
    snprintf(why, sizeof why, "alarm:%s", rule);
    int p = paused(r, tenant, reason, sizeof reason);
    if (p != 0) {
        note(done, cap, p < 0 ? "pause failed: store unreadable" : "pause left: already paused");
        return;
    }
    tg_err_t err;
    int rc = tg_store_pause_set(r->store, tenant, why, now, &err);
    if (rc != 0 || applied_add(r, rule, tenant, TG_ACTION_PAUSE, 0) != 0) {
        if (rc != 0) TG_ERROR("alarm: pausing tenant %s: %s", tenant, err.msg);
        note(done, cap, "pause failed");
        return;
    }
    note(done, cap, "pause");
}

static void undo(tg_alarm_runner_t *r, const char *rule, const char *tenant, char *done, size_t cap)
{
    int i = applied_find(r, rule, tenant, TG_ACTION_THROTTLE);
    if (i >= 0) {
        r->applied[i] = r->applied[--r->napplied];
        rescale(r, tenant);
        note(done, cap, "unthrottle");
    }
    i = applied_find(r, rule, tenant, TG_ACTION_PAUSE);
    if (i < 0) return;
    char reason[256], why[80];
    snprintf(why, sizeof why, "alarm:%s", rule);
    int p = paused(r, tenant, reason, sizeof reason);
    if (p < 0) return; /* kept: tried again when the alarm next resolves or at restart */
    r->applied[i] = r->applied[--r->napplied];
    if (p == 0 || strcmp(reason, why)) {
        note(done, cap, "pause left: an operator changed it");
        return;
    }
    tg_err_t err;
    if (tg_store_pause_clear(r->store, tenant, &err) != 0) {
        TG_ERROR("alarm: resuming tenant %s: %s", tenant, err.msg);
        note(done, cap, "resume failed");
        return;
    }
    note(done, cap, "resume");
}

/* ---- the store ----------------------------------------------------------------------- */

static void row_of(const tg_alarm_runner_t *r, const tg_alarm_status_t *st, int64_t now,
                   tg_alarm_row_t *row)
{
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "%s", st->rule);
    snprintf(row->tenant, sizeof row->tenant, "%s", st->tenant);
    snprintf(row->kind, sizeof row->kind, "%s", tg_alarm_kind_name(st->conf->kind));
    snprintf(row->state, sizeof row->state, "%s", tg_alarm_state_name(st->state));
    row->value = st->value;
    row->threshold = st->level;
    row->baseline = st->baseline;
    row->since_us = st->since_us;
    row->started_us = st->started_us;
    row->updated_us = now;
    row->seq = st->seq;
    applied_text(r, st->rule, st->tenant, row->action, sizeof row->action);
}

static void queue_row(tg_alarm_runner_t *r, const tg_alarm_row_t *row)
{
    for (size_t i = 0; i < r->nrows; i++)
        if (!strcmp(r->rows[i].name, row->name) && !strcmp(r->rows[i].tenant, row->tenant)) {
            r->rows[i] = *row;
            return;
        }
    if (r->nrows == r->rows_cap) {
        size_t cap = r->rows_cap ? r->rows_cap * 2 : 16;
        tg_alarm_row_t *n = realloc(r->rows, cap * sizeof *n);
        if (!n) { /* rewritten from the engine's state at a later tick */
            TG_ERROR("alarm: out of memory: state row %s/%s not stored", row->name, row->tenant);
            return;
        }
        r->rows = n;
        r->rows_cap = cap;
    }
    r->rows[r->nrows++] = *row;
}

static void queue_event(tg_alarm_runner_t *r, const tg_alarm_event_row_t *ev, const tg_notice_t *nt,
                        int send)
{
    if (r->nevs == BACKLOG_MAX) {
        TG_ERROR("alarm: %d transitions wait for the store: dropping %s", BACKLOG_MAX,
                 r->evs[0].notice_id);
        memmove(r->evs, r->evs + 1, (BACKLOG_MAX - 1) * sizeof *r->evs);
        memmove(r->notices, r->notices + 1, (BACKLOG_MAX - 1) * sizeof *r->notices);
        memmove(r->send, r->send + 1, BACKLOG_MAX - 1);
        r->nevs--;
    }
    r->notices[r->nevs] = *nt;
    r->send[r->nevs] = (unsigned char)send;
    r->evs[r->nevs++] = *ev;
}

static void outq_push(tg_alarm_runner_t *r, const tg_notice_t *n)
{
    if (r->nout == BACKLOG_MAX) {
        TG_ERROR("alarm: %d notices wait for the notifiers: dropping %s", BACKLOG_MAX,
                 r->outq[0].id);
        memmove(r->outq, r->outq + 1, (BACKLOG_MAX - 1) * sizeof *r->outq);
        r->nout--;
    }
    r->outq[r->nout++] = *n;
}

/* Hands the stored notices on, in order, up to the first that is refused. */
static void send_out(tg_alarm_runner_t *r, tg_alarm_notify_fn notify, void *ud)
{
    size_t done = 0;
    tg_err_t err;
    while (notify && done < r->nout) {
        if (notify(ud, r->store, &r->outq[done], &err) != 0) {
            if (!r->notify_failing)
                TG_WARN("alarm: notice %s not taken, kept for the next evaluation: %s",
                        r->outq[done].id, err.msg);
            r->notify_failing = 1;
            break;
        }
        r->notify_failing = 0;
        done++;
    }
    if (!notify) done = r->nout; /* nobody to tell */
    memmove(r->outq, r->outq + done, (r->nout - done) * sizeof *r->outq);
    r->nout -= done;
}

/* Writes what waits; once it is stored, its notices join the queue for the notifiers. */
static void flush(tg_alarm_runner_t *r)
{
    tg_err_t err;
    if (!r->nrows && !r->nevs) return;
    if (tg_store_alarm_put(r->store, r->rows, r->nrows, r->evs, r->nevs, &err) == 0) {
        if (r->failing) TG_INFO("alarm: store writes succeed again (%zu transitions)", r->nevs);
        for (size_t i = 0; i < r->nevs; i++)
            if (r->send[i]) outq_push(r, &r->notices[i]);
        r->nrows = r->nevs = 0;
        r->failing = 0;
        return;
    }
    if (!r->failing)
        TG_WARN("alarm: store write failed, kept for the next evaluation: %s", err.msg);
    r->failing = 1;
}

typedef struct tick_ctx {
    tg_alarm_runner_t *r;
    int64_t now;
    const tg_alarm_transition_t *x; /* this tick's transitions: those rows are written */
    size_t nx;
} tick_ctx_t;

static int put_state(const tg_alarm_status_t *st, void *ud)
{
    tick_ctx_t *c = ud;
    for (size_t i = 0; i < c->nx; i++) /* written with its transition */
        if (c->x[i].rule == st->rule_idx && c->x[i].tenant_id == st->tenant_id) return 0;
    tg_alarm_row_t row;
    row_of(c->r, st, c->now, &row);
    queue_row(c->r, &row);
    return 0;
}

/* ---- the runner ---------------------------------------------------------------------- */

size_t tg_alarm_runner_tick(tg_alarm_runner_t *r, const tg_alarm_inputs_t *in, int64_t now_us,
                            tg_alarm_notify_fn notify, void *ud)
{
    const tg_alarm_transition_t *x;
    size_t n = tg_alarm_tick(r->engine, in, now_us, &x);
    for (size_t i = 0; i < n; i++) {
        const tg_notice_t *nt = &x[i].notice;
        char done[sizeof((tg_alarm_event_row_t *)0)->action] = "";
        for (size_t k = 0; k < r->nactions; k++) {
            const tg_action_conf_t *a = &r->actions[k];
            if (strcmp(a->alarm, nt->alarm) || !nt->tenant[0]) continue;
            tg_alarm_state_t at = a->at_firing ? TG_ALARM_FIRING : TG_ALARM_PENDING;
            if (x[i].to == at) apply(r, a, nt->alarm, nt->tenant, now_us, done, sizeof done);
        }
        if (x[i].to == TG_ALARM_RESOLVED || x[i].to == TG_ALARM_OK)
            undo(r, nt->alarm, nt->tenant, done, sizeof done);

        tg_alarm_status_t st;
        tg_alarm_row_t row;
        int found = tg_alarm_status_of(r->engine, x[i].rule, x[i].tenant_id, &st) == 0;
        if (found) {
            row_of(r, &st, now_us, &row);
            /* The row as of this transition (the engine is one at most per rule and
             * tenant and tick, so it is also the state now). */
            row.seq = x[i].seq;
        }
        tg_alarm_event_row_t ev;
        memset(&ev, 0, sizeof ev);
        snprintf(ev.notice_id, sizeof ev.notice_id, "%s", nt->id);
        snprintf(ev.name, sizeof ev.name, "%s", nt->alarm);
        snprintf(ev.tenant, sizeof ev.tenant, "%s", nt->tenant);
        snprintf(ev.kind, sizeof ev.kind, "%s", nt->alarm_kind);
        snprintf(ev.from_state, sizeof ev.from_state, "%s", tg_alarm_state_name(x[i].from));
        snprintf(ev.to_state, sizeof ev.to_state, "%s", tg_alarm_state_name(x[i].to));
        ev.value = nt->value;
        ev.threshold = nt->threshold;
        ev.baseline = nt->baseline;
        ev.window_s = nt->window_s;
        ev.time_us = nt->time_us;
        ev.seq = x[i].seq;
        snprintf(ev.action, sizeof ev.action, "%s", done);
        snprintf(ev.summary, sizeof ev.summary, "%s", nt->summary);
        queue_event(r, &ev, nt, x[i].to != TG_ALARM_OK);
        if (found) queue_row(r, &row);

        if (x[i].to == TG_ALARM_FIRING)
            TG_WARN("alarm %s tenant=%s %s -> %s value=%g threshold=%g baseline=%g id=%s%s%s",
                    nt->alarm, nt->tenant[0] ? nt->tenant : "-", tg_alarm_state_name(x[i].from),
                    nt->state, nt->value, nt->threshold, nt->baseline, nt->id,
                    done[0] ? " action=" : "", done);
        else
            TG_INFO("alarm %s tenant=%s %s -> %s value=%g threshold=%g baseline=%g id=%s%s%s",
                    nt->alarm, nt->tenant[0] ? nt->tenant : "-", tg_alarm_state_name(x[i].from),
                    nt->state, nt->value, nt->threshold, nt->baseline, nt->id,
                    done[0] ? " action=" : "", done);
    }
    tick_ctx_t c = {r, now_us, x, n};
    tg_alarm_each(r->engine, 0, put_state, &c);
    flush(r);
    send_out(r, notify, ud);
    return n;
}

static int copy_actions(tg_alarm_runner_t *r, const tg_config_t *cfg)
{
    tg_action_conf_t *a = calloc(cfg->nactions ? cfg->nactions : 1, sizeof *a);
    if (!a) return -1;
    for (size_t i = 0; i < cfg->nactions; i++) {
        a[i] = cfg->actions[i];
        if (!(a[i].alarm = strdup(cfg->actions[i].alarm))) {
            actions_free(a, i);
            return -1;
        }
    }
    actions_free(r->actions, r->nactions);
    r->actions = a;
    r->nactions = cfg->nactions;
    return 0;
}

/* Actions held for rules the config no longer has are undone now: those alarms can never
 * resolve. (Their state rows stay as last written.) */
static void drop_orphans(tg_alarm_runner_t *r)
{
    size_t n = r->napplied;
    applied_t *copy = n ? malloc(n * sizeof *copy) : NULL;
    if (n && !copy) return; /* tried again at the next reload */
    if (n) memcpy(copy, r->applied, n * sizeof *copy);
    for (size_t i = 0; i < n; i++) {
        if (tg_alarm_rule_index(r->engine, copy[i].rule) >= 0) continue;
        char done[sizeof((tg_alarm_event_row_t *)0)->action] = "";
        undo(r, copy[i].rule, copy[i].tenant, done, sizeof done);
        if (done[0])
            TG_INFO("alarm %s tenant=%s: the rule is no longer configured: %s", copy[i].rule,
                    copy[i].tenant, done);
    }
    free(copy);
}

static int raise_seq(const tg_alarm_row_t *row, void *ud)
{
    tg_alarm_runner_t *r = ud;
    tg_alarm_raise_seq(r->engine, row->name, row->tenant, row->seq);
    return 0;
}

int tg_alarm_runner_set_config(tg_alarm_runner_t *r, const tg_config_t *cfg)
{
    if (tg_alarm_set_rules(r->engine, cfg->alarms, cfg->nalarms) != 0) return -1;
    if (copy_actions(r, cfg) != 0) return -1;
    /* A rule back after a reload without it (or with another kind) restarts at ok, but its
     * transitions go on counting from the store's: their ids must not be those already in
     * alarm_events and the outbox, which would drop them as seen. Rows not yet stored
     * (the backlog) carry higher numbers than the store's and are in the engine still. */
    tg_err_t err;
    if (tg_store_alarm_list(r->store, raise_seq, r, &err) != 0)
        TG_WARN("alarm: cannot read the stored sequence numbers on reload: %s", err.msg);
    drop_orphans(r);
    return 0;
}

static int on_row(const tg_alarm_row_t *row, void *ud)
{
    tg_alarm_runner_t *r = ud;
    int st = tg_alarm_state_parse(row->state);
    if (st < 0) return 0;
    if (tg_alarm_restore(r->engine, row->name, row->tenant, (tg_alarm_state_t)st, row->seq,
                         row->since_us, row->started_us) != 0)
        return 0;
    /* Actions still held when the last run stopped. */
    const char *t = strstr(row->action, "throttle ");
    double f = t ? strtod(t + 9, NULL) : 0;
    if (t && f > 0 && f < 1) {
        applied_add(r, row->name, row->tenant, TG_ACTION_THROTTLE, f);
        rescale(r, row->tenant);
    }
    if (strstr(row->action, "pause")) applied_add(r, row->name, row->tenant, TG_ACTION_PAUSE, 0);
    return 0;
}

tg_alarm_runner_t *tg_alarm_runner_new(const tg_config_t *cfg, tg_store_t *store,
                                       tg_policy_t *policy, size_t max_tenants, tg_err_t *err)
{
    tg_alarm_runner_t *r = calloc(1, sizeof *r);
    if (!r) {
        tg_store_close(store);
        tg_err_set(err, "out of memory");
        return NULL;
    }
    r->store = store;
    r->policy = policy;
    r->engine = tg_alarm_new(max_tenants);
    r->evs = calloc(BACKLOG_MAX, sizeof *r->evs);
    r->notices = calloc(BACKLOG_MAX, sizeof *r->notices);
    r->send = calloc(BACKLOG_MAX, 1);
    r->outq = calloc(BACKLOG_MAX, sizeof *r->outq);
    if (!r->engine || !r->evs || !r->notices || !r->send || !r->outq ||
        tg_alarm_runner_set_config(r, cfg) != 0) {
        tg_alarm_runner_free(r);
        tg_err_set(err, "out of memory");
        return NULL;
    }
    if (tg_store_alarm_list(store, on_row, r, err) != 0) {
        tg_alarm_runner_free(r);
        return NULL;
    }
    drop_orphans(r); /* restored for rules removed while the gateway was down */
    return r;
}

void tg_alarm_runner_free(tg_alarm_runner_t *r)
{
    if (!r) return;
    tg_alarm_free(r->engine);
    tg_store_close(r->store);
    actions_free(r->actions, r->nactions);
    free(r->applied);
    free(r->rows);
    free(r->evs);
    free(r->notices);
    free(r->send);
    free(r->outq);
    free(r);
}

size_t tg_alarm_runner_backlog(const tg_alarm_runner_t *r)
{
    return r->nevs;
}

size_t tg_alarm_runner_unsent(const tg_alarm_runner_t *r)
{
    return r->nout;
}

int tg_alarm_runner_each(tg_alarm_runner_t *r, int all,
                         int (*cb)(const tg_alarm_status_t *, void *), void *ud)
{
    return tg_alarm_each(r->engine, all, cb, ud);
}
