/* The outbox's sender: see sender.h. A supervisor thread keeps one lane (a thread with its
 * own store connection) per configured notifier and handles the deliveries to notifiers no
 * longer configured (no network there); each lane claims and sends its notifier's deliveries
 * only, so a receiver that never answers holds up its own lane and no other. The in-memory
 * state is only each lane's run of failures (the backoff's exponent and the time it is
 * blocked until) and its last re-send round, which a restart forgets: the first try after a
 * restart is at once. */
#include "notify/sender.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify/retry.h"
#include "notify/seal.h"
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

/* One notifier's sending thread. Only the supervisor creates, stops, joins and frees lanes;
 * a lane touches its own struct and what the notifier shares under its mutex. */
typedef struct lane {
    struct tg_notify *t;
    nstate_t ns; /* ns.name is the notifier's */
    pthread_t thread;
    atomic_int stop; /* set by the supervisor: the notifier left the config */
    atomic_int done; /* set by the lane as its thread ends: to be joined */
} lane_t;

#define MAX_LANES 64 /* notify: takes at most 64 notifiers */

struct tg_notify {
    tg_notify_opts_t o;
    char *store_url;
    pthread_mutex_t mu; /* guards cfg and gen */
    pthread_cond_t cv;  /* broadcast with gen bumped: enqueue, set_config, stopping */
    tg_config_t *cfg;
    uint64_t gen; /* a thread that saw it change since its last look goes round at once */
    atomic_int stop;
    pthread_t thread; /* the supervisor */
    int running;
    lane_t *lanes[2 * MAX_LANES]; /* the supervisor's (a stopping lane and its successor
                                     for one name may overlap) */
    size_t nlanes;
    /* Without threads (the tests' tg_notify_pass and tg_notify_resend) and for the
     * supervisor's deliveries to notifiers gone from the config. */
    nstate_t *ns;
    size_t nns;
    int64_t last_purge_us;
    int has_kek;          /* set at new, read-only after */
    tg_kek_t kek;         /* wiped at free */
    atomic_ulong refused; /* deliveries whose notice did not open */
};

static void wake_all(tg_notify_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->gen++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static uint64_t generation(tg_notify_t *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t g = t->gen;
    pthread_mutex_unlock(&t->mu);
    return g;
}

/* Waits up to wait_us (monotonic) unless gen moved past seen or *also (may be NULL) is set. */
static void wait_for(tg_notify_t *t, uint64_t seen, int64_t wait_us, atomic_int *also)
{
    pthread_mutex_lock(&t->mu);
    int64_t at = t->o.mono_clock() + wait_us;
    struct timespec ts = {at / 1000000, (at % 1000000) * 1000};
    while (wait_us > 0 && t->gen == seen && !atomic_load(&t->stop) && !(also && atomic_load(also)))
        if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) != 0) break;
    pthread_mutex_unlock(&t->mu);
}

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
    if (!t->o.send_alerts) t->o.send_alerts = tg_notify_send_alerts;
    t->store_url = opts->store_url ? strdup(opts->store_url) : NULL;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->cfg = tg_config_ref(cfg);
    atomic_init(&t->stop, 0);
    atomic_init(&t->refused, 0);
    t->o.kek = NULL; /* the copy below: the caller's may go */
    if (opts->kek) t->kek = *opts->kek, t->has_kek = 1;
    return t;
}

void tg_notify_set_config(tg_notify_t *t, tg_config_t *cfg)
{
    pthread_mutex_lock(&t->mu);
    tg_config_t *old = t->cfg;
    t->cfg = tg_config_ref(cfg);
    t->gen++;
    pthread_cond_broadcast(&t->cv);
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
    int inserted = 0, rc;
    if (t->has_kek) {
        tg_notice_t row;
        char *sealed = malloc(TG_NOTICE_SEALED_SIZE);
        rc = !sealed ? tg_err_set(err, "notify: out of memory")
                     : tg_notice_seal(&t->kek, n, &row, sealed, err);
        if (rc == 0)
            rc = tg_store_outbox_add_sealed(store, &row, sealed, names, k, now_us, &inserted, err);
        free(sealed);
    } else {
        rc = tg_store_outbox_add(store, n, names, k, now_us, &inserted, err);
    }
    tg_config_unref(c);
    if (rc != 0) return rc;
    if (inserted) {
        TG_INFO("notify: notice %s (%s) stored for %zu notifier%s", n->id, n->state, k,
                k == 1 ? "" : "s");
        wake_all(t);
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

#define SET_TRIES 5 /* a busy store: each try waits the store's busy timeout (5 s) */

/* Records d's outcome. A busy store is tried again (the row is still ours, under its claim):
 * with 2 x 64 lanes on one store the write lock can stay out of reach past one busy
 * timeout, and a delivery made but not recorded is sent again once its claim ends. */
static int set(tg_store_t *store, const tg_notice_delivery_t *d, const char *status, int attempts,
               int64_t next_us, const char *error, int64_t now_us, tg_err_t *err)
{
    int rc = TG_STORE_BUSY;
    for (int i = 0; i < SET_TRIES && rc == TG_STORE_BUSY; i++)
        rc = tg_store_outbox_set(store, d->notice.id, d->notifier, status, attempts, next_us, error,
                                 now_us, err);
    if (rc != 0)
        TG_WARN("notify: cannot record the delivery of %s to %s (%s); it is sent again once "
                "its claim ends: %s",
                d->notice.id, d->notifier, status, err ? err->msg : "");
    return rc;
}

/* The notice of d, opened (notify/seal.h), or 0 when it cannot be: d is then kept and says
 * why, never sent garbled and never dropped. A KEK that is not configured may be configured
 * later: pending, tried again every notify_retry.max until give_up, as for a notifier gone
 * from the config. Damage does not heal: failed at once. Each is counted and logged. */
static int opened(tg_notify_t *t, tg_store_t *store, const tg_config_t *c,
                  const tg_notice_delivery_t *d, tg_notice_t *out, int64_t now, tg_err_t *err)
{
    tg_err_t why;
    tg_notice_open_result_t r = tg_notice_open(t->has_kek ? &t->kek : NULL, d, out, &why);
    if (r == TG_NOTICE_OPENED) return 1;
    atomic_fetch_add(&t->refused, 1);
    TG_ERROR("notify: %s: %s", d->notifier, why.msg);
    if (r == TG_NOTICE_DAMAGED || now - d->created_us >= c->notify_retry.give_up_ms * 1000LL) {
        char msg[sizeof why.msg + 16];
        snprintf(msg, sizeof msg, "%s%s", r == TG_NOTICE_DAMAGED ? "" : "gave up: ", why.msg);
        set(store, d, "failed", d->attempts, now, msg, now, err);
        return 0;
    }
    set(store, d, "pending", d->attempts, now + c->notify_retry.max_ms * 1000LL, why.msg, now, err);
    return 0;
}

/* Sends d and records the outcome. ns: its notifier's state (NULL: looked up in t's own).
 * quit (may be NULL): its lane's stop, which aborts the send as t->stop does. */
static void deliver(tg_notify_t *t, tg_store_t *store, const tg_config_t *c,
                    const tg_notice_delivery_t *d, nstate_t *ns, atomic_int *quit, tg_err_t *err)
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
    if (!ns) ns = state_of(t, d->notifier);
    if (ns && ns->blocked_until_us > now) { /* its receiver is down: wait with the others */
        set(store, d, "pending", d->attempts, ns->blocked_until_us, d->error, now, err);
        return;
    }
    tg_notice_t notice;
    if (!opened(t, store, c, d, &notice, now, err)) return;
    /* A removed notifier's send in progress is given up (pending, no attempt counted) rather
     * than held up to its timeout: 2 x 64 lanes are the most there are, so lanes waiting out
     * hung sends to receivers the operator removed kept renamed notifiers from getting one. */
    tg_notify_ctl_t ctl = {.stop = &t->stop, .also = quit, .mono_us = t->o.mono_clock};
    tg_notify_result_t res;
    t->o.send(nc, &notice, now, &ctl, &res);
    now = t->o.wall_clock();
    int attempts = d->attempts + 1;
    switch (res.outcome) {
    case TG_NOTIFY_OK:
        if (ns) ns->fails = 0, ns->blocked_until_us = 0;
        set(store, d, "delivered", attempts, now, NULL, now, err);
        TG_DEBUG("notify: %s delivered to %s (%s)", notice.id, d->notifier, res.message);
        return;
    case TG_NOTIFY_ABORTED: /* not an attempt: the next sender tries at once */
        set(store, d, "pending", d->attempts, now, d->error, now, err);
        return;
    case TG_NOTIFY_PERMANENT:
        set(store, d, "failed", attempts, now, res.message, now, err);
        TG_WARN("notify: %s refused notice %s: %s; not retried (kept as failed in the outbox)",
                d->notifier, notice.id, res.message);
        return;
    case TG_NOTIFY_RETRY: break;
    }
    if (now - d->created_us >= c->notify_retry.give_up_ms * 1000LL) {
        char msg[300];
        snprintf(msg, sizeof msg, "gave up after %d attempts: %s", attempts, res.message);
        set(store, d, "failed", attempts, now, msg, now, err);
        TG_ERROR("notify: %s: notice %s %s", d->notifier, notice.id, msg);
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
            notice.id, res.message, (long long)wait_ms);
}

/* Claims up to BATCH due deliveries to notifier (NULL = to any) and delivers each. quit (may
 * be NULL): its lane's stop; once set (its notifier left the config) the rest of the batch is
 * handed back unsent, as on t->stop, instead of one send after another to a receiver the
 * operator removed (each up to its timeout). */
static int pass_of(tg_notify_t *t, tg_store_t *store, const tg_config_t *c, const char *notifier,
                   nstate_t *ns, atomic_int *quit, tg_err_t *err)
{
    long longest = 0;
    for (size_t i = 0; i < c->nnotifiers; i++)
        if ((!notifier || !strcmp(c->notifiers[i].name, notifier)) &&
            c->notifiers[i].timeout_ms > longest)
            longest = c->notifiers[i].timeout_ms;
    int64_t now = t->o.wall_clock(), next = 0;
    int found = 0;
    /* A read first: a claim takes the write lock (against the event writer), and an idle
     * lane looks every second. */
    if (tg_store_outbox_next(store, notifier, &next, &found, err) != 0) return -1;
    if (!found || next > now) return 0;
    batch_t *b = calloc(1, sizeof *b);
    if (!b) return tg_err_set(err, "notify: out of memory");
    int rc = tg_store_outbox_claim(store, now, now + longest * 1000LL * BATCH + LEASE_EXTRA, BATCH,
                                   notifier, collect, b, err);
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        if (atomic_load(&t->stop) || (quit && atomic_load(quit))) { /* the rest back at once */
            set(store, &b->v[i], "pending", b->v[i].attempts, now, b->v[i].error, now, err);
            continue;
        }
        deliver(t, store, c, &b->v[i], ns, quit, err);
    }
    if (rc == 0) rc = (int)b->n;
    free(b);
    return rc;
}

uint64_t tg_notify_sealed_refused(tg_notify_t *t)
{
    return atomic_load(&t->refused);
}

int tg_notify_pass(tg_notify_t *t, tg_store_t *store, tg_err_t *err)
{
    tg_config_t *c = current(t);
    int rc = pass_of(t, store, c, NULL, NULL, NULL, err);
    tg_config_unref(c);
    return rc;
}

/* ---- re-sending what still fires (alertmanager) ------------------------------------ */

typedef struct firing {
    tg_alarm_row_t *v;
    size_t n, cap;
    int cut; /* more rows fire than were read (MAX_RESEND, or out of memory) */
} firing_t;

#define MAX_RESEND 100000 /* alarm rows re-sent in one round (30 MB): more are not */

static int collect_firing(const tg_alarm_row_t *row, void *ud)
{
    firing_t *f = ud;
    if (strncmp(row->state, "firing", sizeof row->state)) return 1; /* firing come first */
    if (f->n == f->cap) {
        /* Up to MAX_RESEND exactly: doubling alone stopped at 65536. */
        size_t cap = f->cap ? f->cap * 2 : 16;
        if (cap > MAX_RESEND) cap = MAX_RESEND;
        tg_alarm_row_t *v = cap > f->cap ? realloc(f->v, cap * sizeof *v) : NULL;
        if (!v) {
            f->cut = 1;
            return 1;
        }
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

#define RESEND_BATCH 256 /* alerts in one request, as Prometheus's notifier posts them */

/* One alertmanager notifier's round: every firing row posted again, RESEND_BATCH alerts a
 * request (one request an alert took 5 ms each: 3000 firing alarms held up the notifier's
 * own deliveries for 16 s, and a round over 50000 outlasted the 4 x resend lease, so the
 * last alarms expired in Alertmanager while they fired). A list refused (4xx) is that
 * list's alone: the round goes on (Alertmanager keeps the valid alerts of a list it answers
 * 400 to). A retryable failure ends the round and blocks the notifier as a failed delivery
 * does (its backlog waits too), whatever was posted before it: a receiver failing halfway
 * through is backed off, not given a new round at once. quit (may be NULL): its lane's stop
 * (the notifier left the config). */
static int resend_to(tg_notify_t *t, const tg_config_t *c, const tg_notifier_conf_t *nc,
                     nstate_t *ns, const firing_t *f, atomic_int *quit)
{
    tg_notice_t *v = malloc(RESEND_BATCH * sizeof *v);
    if (!v) return 0; /* the next round */
    int sent = 0, refused = 0, down = 0;
    tg_notify_result_t res;
    char first[sizeof v->id + sizeof res.message + 4] = ""; /* "ID (why)" */
    size_t i = 0;
    while (i < f->n && !down && !atomic_load(&t->stop) && !(quit && atomic_load(quit))) {
        int64_t now = t->o.wall_clock();
        size_t k = 0;
        for (; i < f->n && k < RESEND_BATCH; i++) {
            const tg_alarm_conf_t *rule = rule_of(c, f->v[i].name);
            if (rule) refire_notice(&f->v[i], rule, now, &v[k++]);
        }
        if (k == 0) break;
        tg_notify_ctl_t ctl = {.stop = &t->stop, .also = quit, .mono_us = t->o.mono_clock};
        t->o.send_alerts(nc, v, k, now, &ctl, &res);
        if (res.outcome == TG_NOTIFY_OK) {
            sent += (int)k;
            continue;
        }
        if (res.outcome == TG_NOTIFY_PERMANENT) { /* logged once a round, with the count */
            if (!refused) snprintf(first, sizeof first, "%s (%s)", v[0].id, res.message);
            refused += (int)k;
            continue;
        }
        if (res.outcome == TG_NOTIFY_RETRY) {
            down = 1;
            now = t->o.wall_clock();
            int64_t wait_ms = tg_notify_backoff_ms(++ns->fails, c->notify_retry.min_ms,
                                                   c->notify_retry.max_ms, t->o.random());
            ns->blocked_until_us = now + wait_ms * 1000;
            ns->resent_us = 0; /* the next round as soon as it is back */
        }
        TG_WARN("notify: %s: re-sending %zu firing alarms from %s failed (%s)", nc->name, k,
                v[0].id, res.message);
        break;
    }
    if (refused)
        TG_WARN("notify: %s refused lists of %d firing alarms re-sent (it keeps their valid "
                "alerts), the first from %s; the others were sent",
                nc->name, refused, first);
    if (sent && !down) ns->fails = 0, ns->blocked_until_us = 0;
    free(v);
    return sent;
}

/* nc's re-send round if one is due (ns its state). Returns the alerts posted, or -1 with
 * err set. */
static int resend_of(tg_notify_t *t, tg_store_t *store, const tg_config_t *c,
                     const tg_notifier_conf_t *nc, nstate_t *ns, atomic_int *quit, tg_err_t *err)
{
    int64_t now = t->o.wall_clock();
    if (nc->type != TG_NOTIFIER_ALERTMANAGER || nc->resend_ms <= 0) return 0;
    if (ns->blocked_until_us > now) return 0; /* down: its backlog comes first */
    if (ns->resent_us && now - ns->resent_us < nc->resend_ms * 1000LL) return 0;
    firing_t f = {0};
    int rc = tg_store_alarm_list(store, collect_firing, &f, err);
    if (rc != 0 && rc != 1) { /* 1: stopped at the first row not firing */
        free(f.v);
        return -1;
    }
    ns->resent_us = now;
    if (f.cut)
        TG_WARN("notify: %s: more than %zu alarms fire; only the first %zu (by name and tenant) "
                "are re-sent",
                nc->name, f.n, f.n);
    int sent = resend_to(t, c, nc, ns, &f, quit);
    free(f.v);
    return sent;
}

int tg_notify_resend(tg_notify_t *t, tg_store_t *store, tg_err_t *err)
{
    tg_config_t *c = current(t);
    int sent = 0;
    for (size_t i = 0; i < c->nnotifiers; i++) {
        nstate_t *ns = state_of(t, c->notifiers[i].name);
        int n = ns ? resend_of(t, store, c, &c->notifiers[i], ns, NULL, err) : 0;
        if (n < 0) {
            sent = -1;
            break;
        }
        sent += n;
    }
    tg_config_unref(c);
    return sent;
}

/* ---- threads ---------------------------------------------------------------------- */

static const tg_notifier_conf_t *notifier_of(const tg_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nnotifiers; i++)
        if (!strcmp(c->notifiers[i].name, name)) return &c->notifiers[i];
    return NULL;
}

/* How long a loop may sleep: at once when a full batch was claimed (more may be due), else
 * until the earliest pending delivery of notifier (NULL = any), at most MAX_WAIT_US. */
static int64_t next_wait(tg_notify_t *t, tg_store_t *store, const char *notifier, int claimed)
{
    if (claimed == BATCH) return 0;
    int64_t next = 0, now = t->o.wall_clock();
    int found = 0;
    tg_err_t err;
    if (claimed < 0 || tg_store_outbox_next(store, notifier, &next, &found, &err) != 0 || !found)
        return MAX_WAIT_US;
    return next <= now ? 0 : next - now < MAX_WAIT_US ? next - now : MAX_WAIT_US;
}

static void *lane_main(void *arg)
{
    lane_t *l = arg;
    pthread_setname_np(pthread_self(), "tg-notify-lane");
    tg_notify_t *t = l->t;
    tg_store_t *store = NULL;
    tg_err_t err;
    int reported = 0;
    while (!atomic_load(&t->stop) && !atomic_load(&l->stop)) {
        uint64_t seen = generation(t); /* before the work: a wake during it is not lost */
        int64_t wait_us = MAX_WAIT_US;
        if (!store && tg_store_open(t->store_url, &store, &err) != 0) {
            if (!reported++)
                TG_ERROR("notify: %s: cannot open the store (trying again): %s", l->ns.name,
                         err.msg);
            store = NULL;
        }
        tg_config_t *c = store ? current(t) : NULL;
        const tg_notifier_conf_t *nc = c ? notifier_of(c, l->ns.name) : NULL;
        if (nc) {
            reported = 0;
            int rc = pass_of(t, store, c, l->ns.name, &l->ns, &l->stop, &err);
            if (rc < 0) TG_WARN("notify: %s: outbox: %s", l->ns.name, err.msg);
            if (resend_of(t, store, c, nc, &l->ns, &l->stop, &err) < 0)
                TG_WARN("notify: %s: cannot read the firing alarms to re-send: %s", l->ns.name,
                        err.msg);
            wait_us = next_wait(t, store, l->ns.name, rc);
        }
        tg_config_unref(c);
        wait_for(t, seen, wait_us, &l->stop);
    }
    tg_store_close(store);
    atomic_store(&l->done, 1);
    return NULL;
}

/* Joins the lanes that ended, asks those whose notifier left c to end, starts one for each
 * notifier of c without a live lane. */
static void sync_lanes(tg_notify_t *t, const tg_config_t *c)
{
    int told = 0;
    for (size_t i = 0; i < t->nlanes;) {
        lane_t *l = t->lanes[i];
        if (atomic_load(&l->done)) {
            pthread_join(l->thread, NULL);
            free(l);
            t->lanes[i] = t->lanes[--t->nlanes];
            continue;
        }
        if (!atomic_load(&l->stop) && !notifier_of(c, l->ns.name)) {
            atomic_store(&l->stop, 1);
            told = 1;
        }
        i++;
    }
    if (told) wake_all(t);
    for (size_t k = 0; k < c->nnotifiers; k++) {
        int live = 0;
        for (size_t i = 0; i < t->nlanes && !live; i++)
            live = !atomic_load(&t->lanes[i]->stop) &&
                   !strcmp(t->lanes[i]->ns.name, c->notifiers[k].name);
        if (live || t->nlanes == sizeof t->lanes / sizeof t->lanes[0]) continue;
        lane_t *l = calloc(1, sizeof *l);
        if (!l) continue; /* tried again at the next round */
        l->t = t;
        snprintf(l->ns.name, sizeof l->ns.name, "%s", c->notifiers[k].name);
        atomic_init(&l->stop, 0);
        atomic_init(&l->done, 0);
        if (pthread_create(&l->thread, NULL, lane_main, l) != 0) {
            TG_ERROR("notify: cannot start the thread of notifier %s (trying again)", l->ns.name);
            free(l);
            continue;
        }
        t->lanes[t->nlanes++] = l;
    }
}

typedef struct names {
    char v[MAX_LANES][64];
    size_t n;
    const tg_config_t *c;
} names_t;

static int collect_orphan(const char *name, void *ud)
{
    names_t *o = ud;
    if (notifier_of(o->c, name)) return 0;
    snprintf(o->v[o->n++], sizeof o->v[0], "%s", name);
    return o->n == MAX_LANES; /* the rest at the next round */
}

/* The supervisor: the lanes, the deliveries to notifiers gone from the config (kept until a
 * reload brings them back or give_up: no send), the hourly purge. */
static void *sender_main(void *arg)
{
    tg_notify_t *t = arg;
    pthread_setname_np(pthread_self(), "tg-notify");
    tg_store_t *store = NULL;
    tg_err_t err;
    while (!atomic_load(&t->stop)) {
        uint64_t seen = generation(t);
        tg_config_t *c = current(t);
        sync_lanes(t, c);
        if (!store && tg_store_open(t->store_url, &store, &err) != 0) {
            TG_ERROR("notify: cannot open the store (trying again): %s", err.msg);
            store = NULL;
        }
        if (store) {
            names_t *o = calloc(1, sizeof *o);
            if (o) {
                o->c = c;
                if (tg_store_outbox_notifiers(store, collect_orphan, o, &err) < 0)
                    TG_WARN("notify: outbox: %s", err.msg);
                for (size_t i = 0; i < o->n && !atomic_load(&t->stop); i++)
                    if (pass_of(t, store, c, o->v[i], NULL, NULL, &err) < 0)
                        TG_WARN("notify: outbox: %s", err.msg);
                free(o);
            }
            int64_t now = t->o.wall_clock();
            if (now - t->last_purge_us >= PURGE_EVERY) {
                t->last_purge_us = now;
                int64_t deleted = 0;
                if (tg_store_outbox_purge(store, now - KEEP_DONE_US, &deleted, &err) == 0 &&
                    deleted)
                    TG_INFO("notify: purged %lld old notices from the outbox", (long long)deleted);
            }
        }
        tg_config_unref(c);
        wait_for(t, seen, MAX_WAIT_US, NULL);
    }
    for (size_t i = 0; i < t->nlanes; i++) /* t->stop is set: each ends its send and goes */
        atomic_store(&t->lanes[i]->stop, 1);
    wake_all(t);
    for (size_t i = 0; i < t->nlanes; i++) {
        pthread_join(t->lanes[i]->thread, NULL);
        free(t->lanes[i]);
    }
    t->nlanes = 0;
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
    t->gen++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->running) pthread_join(t->thread, NULL); /* it joins the lanes */
    tg_config_unref(t->cfg);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->ns);
    free(t->store_url);
    tg_kek_wipe(&t->kek);
    free(t);
}
