/* Admission policy: see policy.h. Order of checks, cheapest and most absolute
 * first: global pause, tenant pause, global IP rules, tenant IP rules, the
 * in-flight cap (a slot is taken), then every rate rule that applies
 * (tenant, route, key, tool) at once, all-or-nothing; a rate refusal gives
 * the slot back. */
#include "policy/policy.h"

#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/watch.h"
#include "types/text.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/modelname.h"
#include "util/sizes.h"
#include "util/rwlock.h"

#define NS          1000000000ULL
#define CONC_SHARDS 64

typedef struct lim_entry {
    uint64_t key;        /* tg_limit_key(tenant, scope, value); 0 = empty slot */
    uint64_t tenant_key; /* tg_limit_key(tenant, "", ""): the row's tenant, for utilisation */
    uint64_t tok_key;    /* the state key of its token rule (as tg_policy_admit makes it) */
    tg_limit_rule_t rule;
    int has_rate;
    int64_t concurrency;
    tg_limit_rule_t tokens; /* tokens per period; limit 0 with has_tokens 0 = none */
    int has_tokens;
} lim_entry_t;

/* MCP tool patterns (fnmatch globs), one list per action. */
typedef struct globs {
    char (*v)[128];
    size_t n, cap;
} globs_t;

typedef struct tenant_rules {
    char tenant[TG_TENANT_SIZE];
    char pause_reason[256];
    int paused;
    tg_cidr_list_t allow, deny;
    globs_t tool_allow, tool_deny;
} tenant_rules_t;

/* Immutable once built. Per-tenant pauses and IP rules are few (operator
 * actions), so a linear list; limits can be many (one per tenant, route,
 * key), so an open-addressing table. */
typedef struct snap {
    lim_entry_t *lims;
    size_t lim_mask, nlims;
    uint32_t *byt; /* indexes of lims' entries sorted by tenant_key: a tenant's rows for
                      its utilisation without a scan of every row */
    size_t nbyt;
    int paused_all;
    char paused_all_reason[256];
    tg_cidr_list_t gallow, gdeny;
    globs_t gtool_allow, gtool_deny;
    tenant_rules_t *tenants;
    size_t ntenants, tcap;
} snap_t;

typedef struct conc_slot {
    uint64_t key;
    int64_t count;
} conc_slot_t;

typedef struct conc_shard {
    pthread_mutex_t mu; /* guards the slots */
    conc_slot_t *slots;
    size_t mask, used;
} conc_shard_t;

struct tg_policy {
    pthread_rwlock_t lock; /* guards snap (the pointer) and defaults */
    snap_t *snap;
    tg_policy_defaults_t defaults;
    tg_limiter_t *limiter;
    conc_shard_t conc[CONC_SHARDS];
    tg_watch_t *watch; /* the refresher (store/watch.h); start/stop only */
    tg_budgets_t *budgets;
    /* Throttled tenants (alarm actions): few, a linear list; under lock (written with the
     * write lock, read by admissions under the read lock they already hold). */
    struct scale {
        char tenant[TG_TENANT_SIZE];
        double factor;
    } * scales;
    size_t nscales, scales_cap;
};

/* ---- snapshots --------------------------------------------------------- */

static void snap_free(snap_t *s)
{
    if (!s) return;
    free(s->lims);
    free(s->byt);
    tg_cidr_list_free(&s->gallow);
    tg_cidr_list_free(&s->gdeny);
    free(s->gtool_allow.v);
    free(s->gtool_deny.v);
    for (size_t i = 0; i < s->ntenants; i++) {
        tg_cidr_list_free(&s->tenants[i].allow);
        tg_cidr_list_free(&s->tenants[i].deny);
        free(s->tenants[i].tool_allow.v);
        free(s->tenants[i].tool_deny.v);
    }
    free(s->tenants);
    free(s);
}

static tenant_rules_t *tenant_of(snap_t *s, const char *tenant, int create)
{
    for (size_t i = 0; i < s->ntenants; i++)
        if (strcmp(s->tenants[i].tenant, tenant) == 0) return &s->tenants[i];
    if (!create) return NULL;
    if (s->ntenants == s->tcap) {
        size_t cap = s->tcap ? s->tcap * 2 : 8;
        tenant_rules_t *n = realloc(s->tenants, cap * sizeof *n);
        if (!n) return NULL;
        s->tenants = n;
        s->tcap = cap;
    }
    tenant_rules_t *t = &s->tenants[s->ntenants++];
    memset(t, 0, sizeof *t);
    snprintf(t->tenant, sizeof t->tenant, "%s", tenant);
    return t;
}

static const lim_entry_t *lim_find(const snap_t *s, uint64_t key)
{
    if (!s->lims) return NULL;
    for (size_t i = key & s->lim_mask; s->lims[i].key; i = (i + 1) & s->lim_mask)
        if (s->lims[i].key == key) return &s->lims[i];
    return NULL;
}

typedef struct build {
    snap_t *s;
    lim_entry_t *rows; /* collected first, then hashed once the count is known */
    size_t n, cap;
    int failed;
} build_t;

static int on_limit(const tg_limit_row_t *r, void *ud)
{
    build_t *b = ud;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        lim_entry_t *n = realloc(b->rows, cap * sizeof *n);
        if (!n) return -1;
        b->rows = n;
        b->cap = cap;
    }
    lim_entry_t *e = &b->rows[b->n++];
    memset(e, 0, sizeof *e);
    char tscope[16];
    snprintf(tscope, sizeof tscope, "tokens.%s", r->scope);
    if (strcmp(r->scope, "model") == 0) {
        /* Model names compare case-insensitively (util/modelname.h). */
        char folded[128];
        tg_modelname_fold(r->value, strlen(r->value), folded, sizeof folded);
        e->key = tg_limit_key(r->tenant, r->scope, folded);
        e->tok_key = tg_limit_key(r->tenant, tscope, folded);
    } else {
        e->key = tg_limit_key(r->tenant, r->scope, r->value);
        e->tok_key = tg_limit_key(r->tenant, tscope, r->value);
    }
    e->tenant_key = tg_limit_key(r->tenant, "", "");
    e->has_rate = r->period_s > 0;
    e->rule.limit = r->limit > 0 ? (uint64_t)r->limit : 0;
    e->rule.period_ns = r->period_s > 0 ? (uint64_t)r->period_s * NS : 0;
    e->rule.burst = r->burst > 0 ? (uint64_t)r->burst : 0;
    e->concurrency = r->concurrency;
    e->has_tokens = r->tokens_period_s > 0;
    e->tokens.limit = r->tokens > 0 ? (uint64_t)r->tokens : 0;
    e->tokens.period_ns = r->tokens_period_s > 0 ? (uint64_t)r->tokens_period_s * NS : 0;
    return 0;
}

static int on_pause(const tg_pause_row_t *r, void *ud)
{
    build_t *b = ud;
    if (strcmp(r->tenant, "*") == 0) {
        b->s->paused_all = 1;
        snprintf(b->s->paused_all_reason, sizeof b->s->paused_all_reason, "%s", r->reason);
        return 0;
    }
    tenant_rules_t *t = tenant_of(b->s, r->tenant, 1);
    if (!t) return -1;
    t->paused = 1;
    snprintf(t->pause_reason, sizeof t->pause_reason, "%s", r->reason);
    return 0;
}

static int on_ip_rule(const tg_ip_rule_row_t *r, void *ud)
{
    build_t *b = ud;
    tg_cidr_t c;
    if (tg_cidr_parse(r->cidr, &c, NULL) != 0) {
        TG_WARN("policy: ignoring unparsable ip rule \"%s\" of tenant %s", r->cidr, r->tenant);
        return 0;
    }
    int allow = strcmp(r->action, "allow") == 0;
    if (strcmp(r->tenant, "*") == 0)
        return tg_cidr_list_add(allow ? &b->s->gallow : &b->s->gdeny, &c);
    tenant_rules_t *t = tenant_of(b->s, r->tenant, 1);
    if (!t) return -1;
    return tg_cidr_list_add(allow ? &t->allow : &t->deny, &c);
}

static int globs_add(globs_t *g, const char *pattern)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4;
        char(*n)[128] = realloc(g->v, cap * sizeof *n);
        if (!n) return -1;
        g->v = n;
        g->cap = cap;
    }
    snprintf(g->v[g->n++], sizeof g->v[0], "%s", pattern);
    return 0;
}

static int globs_match(const globs_t *g, const char *name)
{
    for (size_t i = 0; i < g->n; i++)
        if (fnmatch(g->v[i], name, 0) == 0) return 1;
    return 0;
}

static int on_tool_rule(const tg_tool_rule_row_t *r, void *ud)
{
    build_t *b = ud;
    int allow = strcmp(r->action, "allow") == 0;
    if (strcmp(r->tenant, "*") == 0)
        return globs_add(allow ? &b->s->gtool_allow : &b->s->gtool_deny, r->pattern);
    tenant_rules_t *t = tenant_of(b->s, r->tenant, 1);
    if (!t) return -1;
    return globs_add(allow ? &t->tool_allow : &t->tool_deny, r->pattern);
}

static const snap_t *sort_snap; /* qsort has no context: set under sort_mu */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int cmp_tenant_key(const void *a, const void *b)
{
    uint64_t x = sort_snap->lims[*(const uint32_t *)a].tenant_key;
    uint64_t y = sort_snap->lims[*(const uint32_t *)b].tenant_key;
    return x < y ? -1 : x > y;
}

static int index_by_tenant(snap_t *s, tg_err_t *err)
{
    s->byt = malloc((s->nlims ? s->nlims : 1) * sizeof *s->byt);
    if (!s->byt) return tg_err_set(err, "out of memory loading limits");
    for (size_t i = 0; i <= s->lim_mask; i++)
        if (s->lims[i].key) s->byt[s->nbyt++] = (uint32_t)i;
    pthread_mutex_lock(&sort_mu);
    sort_snap = s;
    qsort(s->byt, s->nbyt, sizeof *s->byt, cmp_tenant_key);
    pthread_mutex_unlock(&sort_mu);
    return 0;
}

int tg_policy_load(tg_policy_t *p, tg_store_t *store, int64_t now_us, tg_err_t *err)
{
    build_t b = {.s = calloc(1, sizeof(snap_t))};
    if (!b.s) return tg_err_set(err, "out of memory loading the policy");
    int rc = tg_store_limit_list(store, NULL, on_limit, &b, err);
    if (rc == 0) rc = tg_store_pause_list(store, on_pause, &b, err);
    if (rc == 0) rc = tg_store_ip_rule_list(store, NULL, on_ip_rule, &b, err);
    if (rc == 0) rc = tg_store_tool_rule_list(store, NULL, on_tool_rule, &b, err);
    if (rc == 0) rc = tg_budgets_load(p->budgets, store, now_us, err);
    if (rc == 0 && b.n) {
        size_t cap = 16;
        while (cap < b.n * 2)
            cap <<= 1;
        b.s->lims = calloc(cap, sizeof *b.s->lims);
        if (!b.s->lims) rc = tg_err_set(err, "out of memory loading limits");
        b.s->lim_mask = cap - 1;
        for (size_t i = 0; rc == 0 && i < b.n; i++) {
            size_t j = b.rows[i].key & b.s->lim_mask;
            while (b.s->lims[j].key && b.s->lims[j].key != b.rows[i].key)
                j = (j + 1) & b.s->lim_mask;
            b.s->lims[j] = b.rows[i];
        }
        b.s->nlims = b.n;
        if (rc == 0) rc = index_by_tenant(b.s, err);
    }
    free(b.rows);
    if (rc != 0) {
        snap_free(b.s);
        return rc;
    }
    pthread_rwlock_wrlock(&p->lock);
    snap_t *old = p->snap;
    p->snap = b.s;
    pthread_rwlock_unlock(&p->lock);
    snap_free(old);
    return 0;
}

/* ---- in-flight counters ------------------------------------------------ */

static conc_shard_t *conc_shard(tg_policy_t *p, uint64_t key)
{
    return &p->conc[(key >> 58) % CONC_SHARDS];
}

static conc_slot_t *conc_find(conc_shard_t *sh, uint64_t key, int create)
{
    if (create && (sh->used + 1) * 2 > sh->mask + 1) {
        /* Grow, dropping idle counters (count 0 carries nothing). */
        size_t cap = (sh->mask + 1) * 2;
        conc_slot_t *n = calloc(cap, sizeof *n);
        if (!n) return NULL;
        size_t used = 0;
        for (size_t i = 0; i <= sh->mask; i++) {
            if (!sh->slots[i].key || sh->slots[i].count == 0) continue;
            size_t j = sh->slots[i].key & (cap - 1);
            while (n[j].key)
                j = (j + 1) & (cap - 1);
            n[j] = sh->slots[i];
            used++;
        }
        free(sh->slots);
        sh->slots = n;
        sh->mask = cap - 1;
        sh->used = used;
    }
    size_t i = key & sh->mask;
    for (; sh->slots[i].key; i = (i + 1) & sh->mask)
        if (sh->slots[i].key == key) return &sh->slots[i];
    if (!create) return NULL;
    sh->slots[i].key = key;
    sh->slots[i].count = 0;
    sh->used++;
    return &sh->slots[i];
}

/* Takes a slot when fewer than cap are held. */
static int conc_acquire(tg_policy_t *p, uint64_t key, int64_t cap)
{
    conc_shard_t *sh = conc_shard(p, key);
    pthread_mutex_lock(&sh->mu);
    conc_slot_t *s = conc_find(sh, key, 1);
    int ok = s && s->count < cap;
    if (ok) s->count++;
    pthread_mutex_unlock(&sh->mu);
    return ok;
}

void tg_policy_release(tg_policy_t *p, uint64_t key)
{
    if (!key) return;
    conc_shard_t *sh = conc_shard(p, key);
    pthread_mutex_lock(&sh->mu);
    conc_slot_t *s = conc_find(sh, key, 0);
    TG_ASSERT(s && s->count > 0); /* a release without its acquire: accounting bug */
    s->count--;
    pthread_mutex_unlock(&sh->mu);
}

int64_t tg_policy_inflight(tg_policy_t *p, const char *tenant)
{
    uint64_t key = tg_limit_key(tenant, "inflight", "");
    conc_shard_t *sh = conc_shard(p, key);
    pthread_mutex_lock(&sh->mu);
    conc_slot_t *s = conc_find(sh, key, 0);
    int64_t n = s ? s->count : 0;
    pthread_mutex_unlock(&sh->mu);
    return n;
}

/* ---- admission --------------------------------------------------------- */

int tg_policy_tool_pattern_check(const char *p, size_t cap, tg_err_t *err)
{
    if (!*p) return tg_err_set(err, "the tool pattern must not be empty");
    if (strlen(p) >= cap)
        return tg_err_set(err, "the tool pattern is too long (at most %zu bytes)", cap - 1);
    if (!tg_text_valid_utf8(p))
        return tg_err_set(err, "the tool pattern must be UTF-8 text without control characters");
    /* fnmatch reports a malformed pattern as neither match nor no-match. */
    int m = fnmatch(p, "tool", 0);
    if (m != 0 && m != FNM_NOMATCH)
        return tg_err_set(err, "invalid tool pattern \"%s\" (an fnmatch glob)", p);
    return 0;
}

int tg_policy_tool_allowed(tg_policy_t *p, const char *tenant, const char *tool)
{
    pthread_rwlock_rdlock(&p->lock);
    const snap_t *s = p->snap;
    const tenant_rules_t *t = NULL;
    for (size_t i = 0; i < s->ntenants; i++)
        if (strcmp(s->tenants[i].tenant, tenant) == 0) t = &s->tenants[i];
    int ok = !globs_match(&s->gtool_deny, tool) && !(t && globs_match(&t->tool_deny, tool));
    size_t nallow = s->gtool_allow.n + (t ? t->tool_allow.n : 0);
    if (ok && nallow)
        ok = globs_match(&s->gtool_allow, tool) || (t && globs_match(&t->tool_allow, tool));
    pthread_rwlock_unlock(&p->lock);
    return ok;
}

static uint64_t ceil_s(uint64_t ns)
{
    return (ns + NS - 1) / NS;
}

/* Gives back what an admission reserved (a refusal after the reservations). */
static void unreserve(tg_policy_t *p, tg_admission_t *a, const char *tenant, uint64_t now_ns,
                      int64_t wall_us)
{
    tg_policy_settle(p, a, tenant, 0, 0, now_ns, wall_us);
    tg_policy_release(p, a->conc_key);
    a->conc_key = 0;
}

/* The rules of one admission, gathered under the read lock: for each, its in-memory key,
 * the rule (a throttle and the local fallback's share applied; token rules charged their
 * cost), the name the RateLimit headers report, and the scope and value a shared limiter
 * names its counter by. Rate rules first (nrate of them), then token rules. */
typedef struct gathered {
    size_t n, nrate;
    uint64_t keys[8];
    tg_limit_rule_t rules[8];
    const char *names[8];  /* tenant, route, key, tool, model; tokens */
    const char *scopes[8]; /* rate: as names; tokens.tenant, tokens.model, tokens.key */
    const char *values[8]; /* "" for the tenant */
    int64_t cap;           /* the in-flight cap, 0 = none */
    char model[128];       /* the model the model rules are counted under, folded; "" */
} gathered_t;

/* rule's limit and burst / share, at least 1 (a limit of 0 refuses everything: kept). */
static void share_rule(tg_limit_rule_t *r, uint32_t share)
{
    if (share <= 1) return;
    if (r->limit) r->limit = r->limit / share ? r->limit / share : 1;
    if (r->burst) r->burst = r->burst / share ? r->burst / share : 1;
}

/* Pauses and IP rules (a refusal in *a: returns 1), then the rules that apply into *g.
 * Caller holds the read lock. Always inlined: tg_policy_admit runs on every request of the
 * default (in-memory) path, and the call with its struct cost it ~30 instructions a
 * request (callgrind, bench/proxy/profile.sh); tg_policy_plan is its only other caller. */
__attribute__((always_inline)) static inline int gather(tg_policy_t *p, const tg_admit_in_t *in,
                                                        const char *tenant, gathered_t *g,
                                                        tg_admission_t *a)
{
    const snap_t *s = p->snap;
    const tenant_rules_t *t = NULL;
    size_t n = 0;
    for (size_t i = 0; i < s->ntenants; i++)
        if (strcmp(s->tenants[i].tenant, tenant) == 0) t = &s->tenants[i];
    if (s->paused_all || (t && t->paused)) {
        const char *why = s->paused_all ? s->paused_all_reason : t->pause_reason;
        a->verdict = TG_ADMIT_PAUSED;
        a->reason = "paused";
        snprintf(a->message, sizeof a->message, "%s%s%s",
                 s->paused_all ? "service paused" : "tenant paused", *why ? ": " : "", why);
        return 1;
    }
    if (tg_ip_check(&s->gallow, &s->gdeny, in->client) != TG_IP_ALLOWED ||
        (t && tg_ip_check(&t->allow, &t->deny, in->client) != TG_IP_ALLOWED)) {
        a->verdict = TG_ADMIT_IP_DENIED;
        a->reason = "ip_denied";
        snprintf(a->message, sizeof a->message, "requests from this address are not allowed");
        return 1;
    }
#define ADD(key_, name_, scope_, value_, rule_)                                                    \
    (g->keys[n] = (key_), g->names[n] = (name_), g->scopes[n] = (scope_), g->values[n] = (value_), \
     g->rules[n++] = (rule_))
    uint64_t k = tg_limit_key(tenant, "tenant", "");
    const lim_entry_t *e = lim_find(s, k);
    const lim_entry_t *tenant_row = e;
    /* The tenant's own row overrides defaults.limits part by part: a row that
     * sets only a concurrency cap keeps the default rate, and the reverse. */
    if (e && e->has_rate)
        ADD(k, "tenant", "tenant", "", e->rule);
    else if (p->defaults.has_rate)
        ADD(k, "tenant", "tenant", "", p->defaults.rate);
    g->cap = e && e->concurrency > 0 ? e->concurrency : p->defaults.concurrency;
    const char *scopes[3][2] = {{"route", in->route}, {"key", in->key_id}, {"tool", in->tool}};
    for (size_t i = 0; i < 3; i++) {
        if (!scopes[i][1] || !scopes[i][1][0]) continue;
        k = tg_limit_key(tenant, scopes[i][0], scopes[i][1]);
        e = lim_find(s, k);
        if (e && e->has_rate) ADD(k, scopes[i][0], scopes[i][0], scopes[i][1], e->rule);
    }
    /* The model's rules: its own, else its base model's (a dated snapshot, a provider's
     * variant), looked up folded; counted under the name the rule is written for, so
     * every spelling of a model shares one counter. */
    char *model = g->model;
    model[0] = '\0';
    const lim_entry_t *model_row = NULL;
    if (in->model && in->model[0]) {
        size_t len = tg_modelname_fold(in->model, strlen(in->model), model, sizeof g->model);
        for (int i = 0; i < TG_MODELNAME_TRIES && len && !model_row; i++) {
            model[len] = '\0';
            e = lim_find(s, tg_limit_key(tenant, "model", model));
            if (e && (e->has_rate || e->has_tokens))
                model_row = e;
            else
                len = tg_modelname_base(model, len);
        }
        if (!model_row) model[0] = '\0';
    }
    if (model_row && model_row->has_rate)
        ADD(tg_limit_key(tenant, "model", model), "model", "model", model, model_row->rule);
    g->nrate = n;
    for (size_t i = 0; i < p->nscales; i++)
        if (strcmp(p->scales[i].tenant, tenant) == 0)
            for (size_t k = 0; k < g->nrate; k++) {
                tg_limit_rule_t *r = &g->rules[k];
                double f = p->scales[i].factor;
                uint64_t lim = (uint64_t)((double)r->limit * f);
                uint64_t burst = (uint64_t)((double)r->burst * f);
                if (r->limit) r->limit = lim ? lim : 1;
                if (r->burst) r->burst = burst ? burst : 1;
            }
    if (in->share > 1) {
        for (size_t k = 0; k < g->nrate; k++)
            share_rule(&g->rules[k], in->share);
        if (g->cap > 0) g->cap = g->cap / in->share ? g->cap / in->share : 1;
    }
    if (in->est_tokens > 0) {
        /* Token rules: the tenant's, the model's and the key's (keys distinct from the
         * request-rate keys of the same scope, so the two never share a state). */
        const char *tscopes[3][3] = {{"tenant", "", "tokens.tenant"},
                                     {"model", model, "tokens.model"},
                                     {"key", in->key_id, "tokens.key"}};
        for (size_t i = 0; i < 3; i++) {
            if (i > 0 && (!tscopes[i][1] || !tscopes[i][1][0])) continue;
            e = i == 0   ? tenant_row
                : i == 1 ? model_row
                         : lim_find(s, tg_limit_key(tenant, tscopes[i][0], tscopes[i][1]));
            if (!e || !e->has_tokens) continue;
            tg_limit_rule_t r = e->tokens;
            share_rule(&r, in->share);
            tg_limit_rule_t held = r;
            uint64_t est = (uint64_t)in->est_tokens;
            r.cost = r.limit && est > r.limit ? r.limit : est;
            a->tok_keys[a->ntok] = tg_limit_key(tenant, tscopes[i][2], tscopes[i][1]);
            a->tok_rules[a->ntok] = held;
            a->tok_charged[a->ntok] = (int64_t)r.cost;
            ADD(a->tok_keys[a->ntok++], "tokens", tscopes[i][2], tscopes[i][1], r);
        }
    }
#undef ADD
    g->n = n;
    return 0;
}

int tg_policy_plan(tg_policy_t *p, const tg_admit_in_t *in, tg_admit_plan_t *plan,
                   tg_admission_t *a)
{
    memset(a, 0, sizeof *a);
    const char *tenant = in->tenant ? in->tenant : "";
    gathered_t g;
    pthread_rwlock_rdlock(&p->lock);
    int refused = gather(p, in, tenant, &g, a);
    pthread_rwlock_unlock(&p->lock);
    /* The token reservations are the shared limiter's, not this process's. */
    a->ntok = 0;
    if (refused) return 1;
    memset(plan, 0, sizeof *plan);
    snprintf(plan->model, sizeof plan->model, "%s", g.model);
    for (size_t i = 0; i < g.n; i++) {
        tg_plan_rule_t *r = &plan->rules[i];
        r->name = g.names[i];
        r->scope = g.scopes[i];
        /* The model's value is the plan's own copy (g is gone when the caller reads it). */
        r->value = g.values[i] == g.model ? plan->model : g.values[i];
        r->rule = g.rules[i];
        r->tokens = i >= g.nrate;
    }
    plan->n = g.n;
    plan->nrate = g.nrate;
    plan->cap = g.cap;
    plan->est_cost = in->est_cost > 0 ? in->est_cost : 0;
    plan->has_budget = tg_budgets_terms(p->budgets, tenant, in->wall_us, &plan->budget, &plan->hard,
                                        &plan->spent) == 0;
    return 0;
}

int tg_policy_plan_tools(tg_policy_t *p, tg_admit_plan_t *plan, const char *tenant,
                         const char *const *tools, size_t n)
{
    pthread_rwlock_rdlock(&p->lock);
    for (size_t i = 0; i < n; i++) {
        const lim_entry_t *e = lim_find(p->snap, tg_limit_key(tenant, "tool", tools[i]));
        if (!e || !e->has_rate) continue;
        if (plan->n == TG_PLAN_MAX_RULES) {
            pthread_rwlock_unlock(&p->lock);
            return -1;
        }
        /* After the token rules: a batch's further calls never set the headers. */
        plan->rules[plan->n++] = (tg_plan_rule_t){"tool", "tool", tools[i], e->rule, 0};
    }
    pthread_rwlock_unlock(&p->lock);
    return 0;
}

void tg_policy_mirror(tg_policy_t *p, const char *tenant, const tg_admit_plan_t *plan,
                      const int64_t *ahead_us, int64_t stamp_us, uint64_t now_ns)
{
    for (size_t i = 0; i < plan->n; i++) {
        const tg_plan_rule_t *r = &plan->rules[i];
        /* The same keys tg_policy_admit counts under (token rules: "tokens.SCOPE"). */
        uint64_t key = tg_limit_key(tenant, r->scope, r->value);
        tg_limit_mirror(p->limiter, key, ahead_us[i] > 0 ? (uint64_t)ahead_us[i] * 1000 : 0,
                        stamp_us > 0 ? (uint64_t)stamp_us : 0, now_ns);
    }
}

void tg_policy_observe_spend(tg_policy_t *p, const char *tenant, int64_t spent, int64_t wall_us)
{
    tg_budgets_observe(p->budgets, tenant, spent, wall_us);
}

void tg_policy_admit(tg_policy_t *p, const tg_admit_in_t *in, uint64_t now_ns, tg_admission_t *a)
{
    memset(a, 0, sizeof *a);
    const char *tenant = in->tenant ? in->tenant : "";
    gathered_t g;
    pthread_rwlock_rdlock(&p->lock);
    if (gather(p, in, tenant, &g, a)) {
        pthread_rwlock_unlock(&p->lock);
        return;
    }
    uint64_t *keys = g.keys;
    tg_limit_rule_t *rules = g.rules;
    const char **names = g.names;
    size_t n = g.n, nrate = g.nrate;
    int64_t cap = g.cap;
    pthread_rwlock_unlock(&p->lock);

    if (cap > 0) {
        uint64_t ck = tg_limit_key(tenant, "inflight", "");
        if (!conc_acquire(p, ck, cap)) {
            a->verdict = TG_ADMIT_CONCURRENCY;
            a->reason = "concurrency_limit";
            a->retry_after_s = 1;
            a->ntok = 0;
            snprintf(a->message, sizeof a->message,
                     "too many requests in flight for this tenant (limit %lld)", (long long)cap);
            return;
        }
        a->conc_key = ck;
    }
    if (tg_budgets_reserve(p->budgets, tenant, in->est_cost, in->wall_us, &a->budget_reserved,
                           a->message, sizeof a->message) != 0) {
        a->ntok = 0;
        tg_policy_release(p, a->conc_key);
        a->conc_key = 0;
        a->verdict = TG_ADMIT_BUDGET;
        a->reason = "budget_exceeded";
        return;
    }
    if (n == 0) {
        a->ntok = 0;
        return;
    }
    tg_limit_info_t info[8];
    size_t which = 0;
    tg_limit_result_t r = tg_limit_check_all(p->limiter, keys, rules, n, now_ns, info, &which);
    /* The headers describe the request-rate rule closest to refusing, or the rule that
     * refused. */
    size_t w = r == TG_LIMIT_OK ? 0 : which;
    if (r == TG_LIMIT_OK)
        for (size_t i = 1, best = 0; i < nrate; i++)
            if (info[i].remaining < info[best].remaining) w = best = i;
    if (r == TG_LIMIT_REJECT || nrate > 0) {
        a->limited = 1;
        memcpy(a->policy, names[w], strlen(names[w]) + 1); /* "tenant" at most: fits */
        a->limit = info[w].limit;
        a->window_s = rules[w].period_ns / NS;
        a->remaining = info[w].remaining;
        a->reset_s = ceil_s(info[w].reset_ns);
    }
    if (r == TG_LIMIT_REJECT) {
        a->ntok = 0;
        unreserve(p, a, tenant, now_ns, in->wall_us);
        a->verdict = TG_ADMIT_RATE;
        a->retry_after_s = ceil_s(info[w].retry_after_ns);
        if (a->retry_after_s == 0) a->retry_after_s = 1;
        if (w >= nrate) {
            a->reason = "token_limited";
            snprintf(a->message, sizeof a->message, "token limit exceeded (%llu per %llu s)",
                     (unsigned long long)a->limit, (unsigned long long)a->window_s);
        } else {
            a->reason = "rate_limited";
            snprintf(a->message, sizeof a->message, "rate limit exceeded (%llu per %llu s)",
                     (unsigned long long)a->limit, (unsigned long long)a->window_s);
        }
    }
}

int tg_policy_admit_more_tools(tg_policy_t *p, tg_admission_t *a, const char *tenant,
                               const char *const *tools, size_t n, uint64_t now_ns, int64_t wall_us)
{
    uint64_t taken[64];
    tg_limit_rule_t rules[64];
    size_t ntaken = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t key = tg_limit_key(tenant, "tool", tools[i]);
        pthread_rwlock_rdlock(&p->lock);
        const lim_entry_t *e = lim_find(p->snap, key);
        int has = e && e->has_rate;
        tg_limit_rule_t rule = has ? e->rule : (tg_limit_rule_t){0};
        pthread_rwlock_unlock(&p->lock);
        if (!has) continue;
        tg_limit_info_t info = {0};
        if (ntaken < 64 && tg_limit_check(p->limiter, key, &rule, now_ns, &info) == TG_LIMIT_OK) {
            taken[ntaken] = key;
            rules[ntaken++] = rule;
            continue;
        }
        /* Refused (or more limited calls than can be undone): give everything back. */
        for (size_t k = 0; k < ntaken; k++)
            tg_limit_adjust(p->limiter, taken[k], &rules[k], -1, now_ns);
        unreserve(p, a, tenant, now_ns, wall_us);
        a->verdict = TG_ADMIT_RATE;
        a->reason = "rate_limited";
        a->limited = 1;
        memcpy(a->policy, "tool", sizeof "tool");
        a->limit = info.limit;
        a->window_s = rule.period_ns / NS;
        a->remaining = 0;
        a->reset_s = ceil_s(info.reset_ns);
        a->retry_after_s = ceil_s(info.retry_after_ns);
        if (a->retry_after_s == 0) a->retry_after_s = 1;
        snprintf(a->message, sizeof a->message,
                 "rate limit exceeded for tool \"%.64s\" (%llu per %llu s)", tools[i],
                 (unsigned long long)a->limit, (unsigned long long)a->window_s);
        return 0;
    }
    return 1;
}

void tg_policy_settle(tg_policy_t *p, tg_admission_t *a, const char *tenant, int64_t tokens,
                      int64_t cost_micros, uint64_t now_ns, int64_t wall_us)
{
    if (tokens >= 0)
        for (size_t i = 0; i < a->ntok; i++)
            if (tokens != a->tok_charged[i])
                tg_limit_adjust(p->limiter, a->tok_keys[i], &a->tok_rules[i],
                                tokens - a->tok_charged[i], now_ns);
    a->ntok = 0;
    if (a->budget_reserved || cost_micros)
        tg_budgets_settle(p->budgets, tenant, a->budget_reserved, cost_micros, wall_us);
    a->budget_reserved = 0;
}

int tg_policy_budget_state(tg_policy_t *p, const char *tenant, int64_t *spent, int64_t *reserved,
                           int64_t *budget)
{
    return tg_budgets_state(p->budgets, tenant, spent, reserved, budget);
}

int tg_policy_budget_uses(tg_policy_t *p, int64_t now_us, tg_budget_use_t **out, size_t *n)
{
    return tg_budgets_uses(p->budgets, now_us, out, n);
}

/* ---- lifecycle and refresh ------------------------------------------- */

tg_policy_t *tg_policy_new(void)
{
    tg_policy_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->snap = calloc(1, sizeof *p->snap);
    p->limiter = tg_limiter_new(64);
    p->budgets = tg_budgets_new();
    if (!p->snap || !p->limiter || !p->budgets) {
        free(p->snap);
        tg_limiter_free(p->limiter);
        tg_budgets_free(p->budgets);
        free(p);
        return NULL;
    }
    tg_rwlock_init(&p->lock);
    for (size_t i = 0; i < CONC_SHARDS; i++) {
        pthread_mutex_init(&p->conc[i].mu, NULL);
        p->conc[i].slots = calloc(16, sizeof(conc_slot_t));
        p->conc[i].mask = 15;
    }
    return p;
}

void tg_policy_free(tg_policy_t *p)
{
    if (!p) return;
    free(p->scales);
    tg_policy_stop_refresh(p);
    snap_free(p->snap);
    tg_limiter_free(p->limiter);
    tg_budgets_free(p->budgets);
    for (size_t i = 0; i < CONC_SHARDS; i++) {
        pthread_mutex_destroy(&p->conc[i].mu);
        free(p->conc[i].slots);
    }
    pthread_rwlock_destroy(&p->lock);
    free(p);
}

void tg_policy_set_defaults(tg_policy_t *p, const tg_policy_defaults_t *d)
{
    pthread_rwlock_wrlock(&p->lock);
    p->defaults = *d;
    pthread_rwlock_unlock(&p->lock);
}

static int reload_cb(void *ud, tg_store_t *store, int64_t now_us, tg_err_t *err)
{
    return tg_policy_load(ud, store, now_us, err);
}

static int version_cb(tg_store_t *s, int64_t *out, tg_err_t *err)
{
    return tg_store_policy_version(s, out, err);
}

void tg_policy_set_notice(tg_policy_t *p, tg_budget_notice_fn fn, void *ud)
{
    tg_budgets_set_notice(p->budgets, fn, ud);
}

int tg_policy_flush_alerts(tg_policy_t *p, tg_store_t *store, tg_err_t *err)
{
    return tg_budgets_flush(p->budgets, store, err);
}

static int tick_cb(void *ud, tg_store_t *store, int64_t now_us, tg_err_t *err)
{
    (void)now_us;
    return tg_policy_flush_alerts(ud, store, err);
}

int tg_policy_start_refresh(tg_policy_t *p, const char *store_url, long interval_ms, tg_err_t *err)
{
    p->watch = tg_watch_start_tick("policy", store_url, interval_ms, version_cb, reload_cb, tick_cb,
                                   p, err);
    return p->watch ? 0 : -1;
}

int64_t tg_policy_loaded_version(const tg_policy_t *p)
{
    return tg_watch_loaded(p->watch);
}

void tg_policy_stop_refresh(tg_policy_t *p)
{
    tg_watch_stop(p->watch);
    p->watch = NULL;
}

/* ---- alarms: utilisation and throttles ------------------------------------------------ */

double tg_policy_tenant_utilisation(tg_policy_t *p, const char *tenant, uint64_t now_ns)
{
    double best = -1;
    uint64_t tk = tg_limit_key(tenant, "", "");
    pthread_rwlock_rdlock(&p->lock);
    const snap_t *s = p->snap;
    uint64_t k = tg_limit_key(tenant, "tenant", "");
    const lim_entry_t *row = lim_find(s, k);
    tg_limit_rule_t rate = {0};
    int has_rate = 0;
    if (row && row->has_rate)
        rate = row->rule, has_rate = 1;
    else if (p->defaults.has_rate)
        rate = p->defaults.rate, has_rate = 1;
    for (size_t i = 0; i < p->nscales; i++) /* a throttle: the limit in force */
        if (has_rate && strcmp(p->scales[i].tenant, tenant) == 0) {
            uint64_t lim = (uint64_t)((double)rate.limit * p->scales[i].factor);
            if (rate.limit) rate.limit = lim ? lim : 1;
        }
    if (has_rate) best = tg_limit_usage(p->limiter, k, &rate, now_ns);
    size_t lo = 0, hi = s->nbyt; /* the first of the tenant's rows in byt */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->lims[s->byt[mid]].tenant_key < tk)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < s->nbyt && s->lims[s->byt[i]].tenant_key == tk; i++) {
        const lim_entry_t *e = &s->lims[s->byt[i]];
        double u;
        if (e->has_rate && e->key != k &&
            (u = tg_limit_usage(p->limiter, e->key, &e->rule, now_ns)) > best)
            best = u;
        if (e->has_tokens) {
            u = tg_limit_usage(p->limiter, e->tok_key, &e->tokens, now_ns);
            if (u > best) best = u;
        }
    }
    pthread_rwlock_unlock(&p->lock);
    return best;
}

int tg_policy_set_scale(tg_policy_t *p, const char *tenant, double factor)
{
    int rc = 0;
    pthread_rwlock_wrlock(&p->lock);
    size_t i = 0;
    while (i < p->nscales && strcmp(p->scales[i].tenant, tenant))
        i++;
    if (factor >= 1) {
        if (i < p->nscales) p->scales[i] = p->scales[--p->nscales];
    } else {
        if (i == p->nscales && p->nscales == p->scales_cap) {
            size_t cap = p->scales_cap ? p->scales_cap * 2 : 4;
            struct scale *n = realloc(p->scales, cap * sizeof *n);
            if (n) {
                p->scales = n;
                p->scales_cap = cap;
            } else {
                rc = -1;
            }
        }
        if (rc == 0) {
            if (i == p->nscales) p->nscales++;
            snprintf(p->scales[i].tenant, sizeof p->scales[i].tenant, "%s", tenant);
            p->scales[i].factor = factor > 0 ? factor : 0.0001;
        }
    }
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

double tg_policy_scale(tg_policy_t *p, const char *tenant)
{
    double f = 1;
    pthread_rwlock_rdlock(&p->lock);
    for (size_t i = 0; i < p->nscales; i++)
        if (strcmp(p->scales[i].tenant, tenant) == 0) f = p->scales[i].factor;
    pthread_rwlock_unlock(&p->lock);
    return f;
}
