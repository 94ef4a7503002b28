/* The outbox's sender: see sender.h. One thread, one store connection; the in-memory state
 * is only each notifier's run of failures (the backoff's exponent and the time it is
 * blocked until), which a restart forgets: the first try after a restart is at once. */
#include "notify/sender.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify/retry.h"
#include "util/log.h"

#define BATCH       8
#define LEASE_EXTRA (10 * 1000000LL) /* a claim outlives a batch of the longest sends by this */
#define MAX_WAIT_US                                                                                \
    1000000LL /* look at the store at least once a second: another                                 \
                 process on it may have added notices */
#define PURGE_EVERY (3600 * 1000000LL)
#define KEEP_DONE_US                                                                               \
    (35LL * 24 * 3600 * 1000000) /* delivered notices are kept a month and                         \
                                    a bit: their ids still de-duplicate a                          \
                                    producer that adds them again */

typedef struct nstate {
    char name[64];
    int fails;                /* consecutive retryable failures */
    int64_t blocked_until_us; /* wall clock; 0 = not blocked */
    int64_t resent_us;        /* alertmanager: the last round of re-sends; 0 = none yet */
} nstate_t;

struct tg_notify {
    tg_notify_opts_t o;
    char *store_url;
    pthread_mutex_t mu; /* guards cfg and wake */
    pthread_cond_t cv;  /* signalled by enqueue, set_config and free */
    tg_config_t *cfg;
    int wake;
    atomic_int stop;
    pthread_t thread;
    int running;
    /* The sender thread's own (or the test's, without a thread). */
    nstate_t *ns;
    size_t nns;
    int64_t last_purge_us;
};

static tg_config_t *current(tg_notify_t *t)
{
    pthread_mutex_lock(&t->mu);
    tg_config_t *c = tg_config_ref(t->cfg);
    pthread_mutex_unlock(&t->mu);
    return c;
}

tg_notify_t *tg_notify_new(const tg_notify_opts_t *opts, tg_config_t *cfg)
{
    tg_notify_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->o = *opts;
    if (!t->o.send) t->o.send = tg_notify_send;
    t->store_url = opts->store_url ? strdup(opts->store_url) : NULL;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->cfg = tg_config_ref(cfg);
    atomic_init(&t->stop, 0);
    return t;
}

void tg_notify_set_config(tg_notify_t *t, tg_config_t *cfg)
{
    pthread_mutex_lock(&t->mu);
    tg_config_t *old = t->cfg;
    t->cfg = tg_config_ref(cfg);
    t->wake = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    tg_config_unref(old);
}

int tg_notify_enqueue(tg_notify_t *t, tg_store_t *store, const tg_notice_t *n, int64_t now_us,
                      tg_err_t *err)
{
    tg_config_t *c = current(t);
    const char *names[64];
    size_t k = 0;
    for (size_t i = 0; i < c->nnotifiers && k < 64; i++)
        names[k++] = c->notifiers[i].name;
    int inserted = 0;
    int rc = tg_store_outbox_add(store, n, names, k, now_us, &inserted, err);
    tg_config_unref(c);
    if (rc != 0) return rc;
    if (inserted) {
        TG_INFO("notify: notice %s (%s) stored for %zu notifier%s", n->id, n->state, k,
                k == 1 ? "" : "s");
        pthread_mutex_lock(&t->mu);
        t->wake = 1;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
    return 0;
}

static nstate_t *state_of(tg_notify_t *t, const char *name)
{
    for (size_t i = 0; i < t->nns; i++)
        if (!strcmp(t->ns[i].name, name)) return &t->ns[i];
    nstate_t *v = realloc(t->ns, (t->nns + 1) * sizeof *v);
    if (!v) return NULL;
    t->ns = v;
    nstate_t *s = &v[t->nns++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

typedef struct batch {
    tg_notice_delivery_t v[BATCH];
    size_t n;
} batch_t;

static int collect(const tg_notice_delivery_t *d, void *ud)
{
    batch_t *b = ud;
    if (b->n < BATCH) b->v[b->n++] = *d;
    return 0;
}

static int set(tg_store_t *store, const tg_notice_delivery_t *d, const char *status, int attempts,
               int64_t next_us, const char *error, int64_t now_us, tg_err_t *err)
{
    int rc = tg_store_outbox_set(store, d->notice.id, d->notifier, status, attempts, next_us, error,
                                 now_us, err);
    if (rc != 0)
        TG_WARN("notify: cannot record the delivery of %s to %s (%s); it is sent again once "
                "its claim ends: %s",
                d->notice.id, d->notifier, status, err ? err->msg : "");
    return rc;
}

/* Sends d and records the outcome. */
static void deliver(tg_notify_t *t, tg_store_t *store, const tg_config_t *c,
                    const tg_notice_delivery_t *d, tg_err_t *err)
{
    int64_t now = t->o.wall_clock();
    const tg_notifier_conf_t *nc = NULL;
    for (size_t i = 0; i < c->nnotifiers && !nc; i++)
        if (!strcmp(c->notifiers[i].name, d->notifier)) nc = &c->notifiers[i];
    if (!nc) { /* kept: a reload may bring it back; until give_up, as a receiver down */
        static const char why[] = "no notifier of this name in the config";
        if (now - d->created_us >= c->notify_retry.give_up_ms * 1000LL) {
            set(store, d, "failed", d->attempts, now,
                "gave up: no notifier of this name in the "
                "config",
                now, err);
            return;
        }
        int64_t until = now + c->notify_retry.max_ms * 1000LL;
        set(store, d, "pending", d->attempts, until, why, now, err);
        /* The rest of its deliveries with it: not claimed and rewritten a batch at a time. */
        tg_store_outbox_defer(store, d->notifier, until, now, NULL);
        return;
    }
    nstate_t *ns = state_of(t, d->notifier);
    if (ns && ns->blocked_until_us > now) { /* its receiver is down: wait with the others */
        set(store, d, "pending", d->attempts, ns->blocked_until_us, d->error, now, err);
        return;
    }
    tg_notify_ctl_t ctl = {.stop = &t->stop, .mono_us = t->o.mono_clock};
    tg_notify_result_t res;
    t->o.send(nc, &d->notice, now, &ctl, &res);
    now = t->o.wall_clock();
    int attempts = d->attempts + 1;
    switch (res.outcome) {
    case TG_NOTIFY_OK:
        if (ns) ns->fails = 0, ns->blocked_until_us = 0;
        set(store, d, "delivered", attempts, now, NULL, now, err);
        TG_DEBUG("notify: %s delivered to %s (%s)", d->notice.id, d->notifier, res.message);
        return;
    case TG_NOTIFY_ABORTED: /* not an attempt: the next sender tries at once */
        set(store, d, "pending", d->attempts, now, d->error, now, err);
        return;
    case TG_NOTIFY_PERMANENT:
        set(store, d, "failed", attempts, now, res.message, now, err);
        TG_WARN("notify: %s refused notice %s: %s; not retried (kept as failed in the outbox)",
                d->notifier, d->notice.id, res.message);
        return;
    case TG_NOTIFY_RETRY: break;
    }
    if (now - d->created_us >= c->notify_retry.give_up_ms * 1000LL) {
        char msg[300];
        snprintf(msg, sizeof msg, "gave up after %d attempts: %s", attempts, res.message);
        set(store, d, "failed", attempts, now, msg, now, err);
        TG_ERROR("notify: %s: notice %s %s", d->notifier, d->notice.id, msg);
        return;
    }
    int fails = ns ? ++ns->fails : attempts;
    int64_t wait_ms =
        tg_notify_backoff_ms(fails, c->notify_retry.min_ms, c->notify_retry.max_ms, t->o.random());
    int64_t until = now + wait_ms * 1000;
    if (ns) ns->blocked_until_us = until;
    set(store, d, "pending", attempts, until, res.message, now, err);
    tg_store_outbox_defer(store, d->notifier, until, now, NULL);
    TG_WARN("notify: %s: notice %s not delivered (%s); trying again in %lld ms", d->notifier,
            d->notice.id, res.message, (long long)wait_ms);
}

int tg_notify_pass(tg_notify_t *t, tg_store_t *store, tg_err_t *err)
{
    tg_config_t *c = current(t);
    long longest = 0;
    for (size_t i = 0; i < c->nnotifiers; i++)
        if (c->notifiers[i].timeout_ms > longest) longest = c->notifiers[i].timeout_ms;
    int64_t now = t->o.wall_clock();
    batch_t *b = calloc(1, sizeof *b);
    if (!b) {
        tg_config_unref(c);
        return tg_err_set(err, "notify: out of memory");
    }
    int rc = tg_store_outbox_claim(store, now, now + longest * 1000LL * BATCH + LEASE_EXTRA, BATCH,
                                   collect, b, err);
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        if (atomic_load(&t->stop)) { /* hand back the rest at once */
            set(store, &b->v[i], "pending", b->v[i].attempts, now, b->v[i].error, now, err);
            continue;
        }
        deliver(t, store, c, &b->v[i], err);
    }
    if (rc == 0) rc = (int)b->n;
    free(b);
    tg_config_unref(c);
    return rc;
}

/* ---- re-sending what still fires (alertmanager) ------------------------------------ */

typedef struct firing {
    tg_alarm_row_t *v;
    size_t n, cap;
} firing_t;

#define MAX_RESEND 100000 /* alarm rows re-sent in one round: more are left for the next */

static int collect_firing(const tg_alarm_row_t *row, void *ud)
{
    firing_t *f = ud;
    if (strncmp(row->state, "firing", sizeof row->state)) return 1; /* firing come first */
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        if (cap > MAX_RESEND) return 1;
        tg_alarm_row_t *v = realloc(f->v, cap * sizeof *v);
        if (!v) return 1;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = *row;
    return 0;
}

/* The notice re-sent for a stored firing row: the labels of the one sent when it began to
 * fire (alertname, tenant, severity from its rule now, alarm_kind), its id, start and last
 * values. NULL rule: the rule is gone from the config (nothing is re-sent). */
static void refire_notice(const tg_alarm_row_t *row, const tg_alarm_conf_t *rule, int64_t now,
                          tg_notice_t *n)
{
    memset(n, 0, sizeof *n);
    snprintf(n->id, sizeof n->id, "alarm/%s/%s/%lld", row->name, row->tenant[0] ? row->tenant : "-",
             (long long)row->seq);
    snprintf(n->kind, sizeof n->kind, "alarm");
    snprintf(n->alarm, sizeof n->alarm, "%s", row->name);
    snprintf(n->alarm_kind, sizeof n->alarm_kind, "%s", row->kind);
    snprintf(n->tenant, sizeof n->tenant, "%s", row->tenant);
    snprintf(n->state, sizeof n->state, "firing");
    snprintf(n->severity, sizeof n->severity, "%s", rule->severity ? rule->severity : "warning");
    n->value = row->value;
    n->threshold = row->threshold;
    n->baseline = row->baseline;
    n->window_s = rule->window_ms / 1000;
    n->time_us = now;
    n->started_us = row->started_us > 0 ? row->started_us : row->since_us;
    snprintf(n->summary, sizeof n->summary, "%s: still firing %s%s (last value %g, fires at %g)",
             row->name, row->tenant[0] ? "for tenant " : "process-wide", row->tenant, row->value,
             row->threshold);
}

static const tg_alarm_conf_t *rule_of(const tg_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nalarms; i++)
        if (!strcmp(c->alarms[i].name, name)) return &c->alarms[i];
    return NULL;
}

/* One alertmanager notifier's round: every firing row posted again. Stops at the first
 * failure, which blocks the notifier as a failed delivery does (its backlog waits too). */
static int resend_to(tg_notify_t *t, const tg_config_t *c, const tg_notifier_conf_t *nc,
                     nstate_t *ns, const firing_t *f)
{
    int sent = 0;
    for (size_t i = 0; i < f->n && !atomic_load(&t->stop); i++) {
        const tg_alarm_conf_t *rule = rule_of(c, f->v[i].name);
        if (!rule) continue;
        int64_t now = t->o.wall_clock();
        tg_notice_t n;
        refire_notice(&f->v[i], rule, now, &n);
        tg_notify_ctl_t ctl = {.stop = &t->stop, .mono_us = t->o.mono_clock};
        tg_notify_result_t res;
        t->o.send(nc, &n, now, &ctl, &res);
        if (res.outcome == TG_NOTIFY_OK) {
            sent++;
            continue;
        }
        if (res.outcome == TG_NOTIFY_RETRY) {
            now = t->o.wall_clock();
            int64_t wait_ms = tg_notify_backoff_ms(++ns->fails, c->notify_retry.min_ms,
                                                   c->notify_retry.max_ms, t->o.random());
            ns->blocked_until_us = now + wait_ms * 1000;
            ns->resent_us = 0; /* the next round as soon as it is back */
        }
        TG_WARN("notify: %s: re-sending firing alarm %s failed (%s)", nc->name, n.id, res.message);
        break;
    }
    if (sent) ns->fails = 0, ns->blocked_until_us = 0;
    return sent;
}

int tg_notify_resend(tg_notify_t *t, tg_store_t *store, tg_err_t *err)
{
    tg_config_t *c = current(t);
    int64_t now = t->o.wall_clock();
    firing_t f = {0};
    int listed = 0, sent = 0, rc = 0;
    for (size_t i = 0; rc == 0 && i < c->nnotifiers; i++) {
        const tg_notifier_conf_t *nc = &c->notifiers[i];
        if (nc->type != TG_NOTIFIER_ALERTMANAGER || nc->resend_ms <= 0) continue;
        nstate_t *ns = state_of(t, nc->name);
        if (!ns || ns->blocked_until_us > now) continue; /* down: its backlog comes first */
        if (ns->resent_us && now - ns->resent_us < nc->resend_ms * 1000LL) continue;
        if (!listed) {
            listed = 1;
            rc = tg_store_alarm_list(store, collect_firing, &f, err);
            if (rc == 1) rc = 0; /* stopped at the first row not firing */
            if (rc != 0) break;
        }
        ns->resent_us = now;
        sent += resend_to(t, c, nc, ns, &f);
    }
    free(f.v);
    tg_config_unref(c);
    return rc != 0 ? -1 : sent;
}

static void *sender_main(void *arg)
{
    tg_notify_t *t = arg;
    tg_store_t *store = NULL;
    tg_err_t err;
    while (!atomic_load(&t->stop)) {
        int64_t wait_us = MAX_WAIT_US;
        if (!store && tg_store_open(t->store_url, &store, &err) != 0) {
            TG_ERROR("notify: cannot open the store (trying again): %s", err.msg);
            store = NULL;
        }
        if (store) {
            int rc = tg_notify_pass(t, store, &err);
            if (rc < 0) TG_WARN("notify: outbox: %s", err.msg);
            if (tg_notify_resend(t, store, &err) < 0)
                TG_WARN("notify: cannot read the firing alarms to re-send: %s", err.msg);
            int64_t now = t->o.wall_clock(), next = 0;
            int found = 0;
            if (rc == BATCH)
                wait_us = 0; /* more may be due */
            else if (rc >= 0 && tg_store_outbox_next(store, &next, &found, &err) == 0 && found)
                wait_us = next <= now ? 0 : next - now < MAX_WAIT_US ? next - now : MAX_WAIT_US;
            if (now - t->last_purge_us >= PURGE_EVERY) {
                t->last_purge_us = now;
                int64_t deleted = 0;
                if (tg_store_outbox_purge(store, now - KEEP_DONE_US, &deleted, &err) == 0 &&
                    deleted)
                    TG_INFO("notify: purged %lld old notices from the outbox", (long long)deleted);
            }
        }
        pthread_mutex_lock(&t->mu);
        if (!t->wake && !atomic_load(&t->stop) && wait_us > 0) {
            int64_t at = t->o.mono_clock() + wait_us;
            struct timespec ts = {at / 1000000, (at % 1000000) * 1000};
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
        t->wake = 0;
        pthread_mutex_unlock(&t->mu);
    }
    tg_store_close(store);
    return NULL;
}

int tg_notify_start(tg_notify_t *t, tg_err_t *err)
{
    tg_store_t *probe;
    if (tg_store_open(t->store_url, &probe, err) != 0) return -1; /* say so at start */
    tg_store_close(probe);
    if (pthread_create(&t->thread, NULL, sender_main, t) != 0)
        return tg_err_set(err, "notify: cannot start the sender thread");
    t->running = 1;
    return 0;
}

void tg_notify_free(tg_notify_t *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->stop, 1);
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->running) pthread_join(t->thread, NULL);
    tg_config_unref(t->cfg);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->ns);
    free(t->store_url);
    free(t);
}
