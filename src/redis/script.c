/* The shared limiter's script and its arguments: see script.h.
 *
 * Numbers cross into Lua as decimal text and come back as integers. Lua 5.1 (Redis's) holds
 * numbers as doubles: every value here (microseconds since 1970, about 2^51; micro-USD) is
 * below 2^53 and exact, and the script formats what it stores with %d, since tostring()
 * would write 1.7e+15. Time is Redis's TIME, so gateways on several machines share one
 * clock; only a journal entry carries the instant of an admission made elsewhere. */
#include "redis/script.h"

#include <stdio.h>
#include <string.h>

/* KEYS[1] in-flight set, [2] spend, [3] reservations (zset: id -> expiry), [4] their
 * amounts (hash), [5] their sum; KEYS[6..] GCRA states.
 * A: ARGV id ttl_ms cap has_budget hard budget seed est n {t tau cost limit} x n
 *    -> {verdict, which (1-based), retry_us, spend (-1: no budget), {remaining, reset_us} x n,
 *        now_us} (a refusal by the cap or the budget: the first four only)
 * S: KEYS[6 + n] the settlement's marker; ARGV id cost inflight reserved n marker_ttl_ms
 *    {t units at} x n -> {0} (done), or {1} when the marker was set already: this very
 *    settlement ran before (a resend whose first reply was lost) and nothing is done again.
 *    The marker is the first write, so a script refused at it (OOM...) changed nothing.
 *    A positive adjustment is stored even when its TAT is already past (an admission
 *    journaled seconds ago): the journal's entries are separate calls, and the next one
 *    builds on it, as the admissions did one after the other. */
const char tg_redis_lua[] =
    "local function s(x) return string.format('%d', x) end\n"
    "local tm = redis.call('TIME')\n"
    "local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])\n"
    "local month = 3456000000\n"
    "local id = ARGV[2]\n"
    "if ARGV[1] == 'A' then\n"
    "  local ttl = tonumber(ARGV[3]) * 1000\n"
    "  local cap = tonumber(ARGV[4])\n"
    "  local hasb = ARGV[5] == '1'\n"
    "  local n = tonumber(ARGV[10])\n"
    "  local out = {0, 0, 0, -1}\n"
    "  if cap > 0 then\n"
    "    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', s(now))\n"
    "    if redis.call('ZCARD', KEYS[1]) >= cap then out[1] = 2 return out end\n"
    "  end\n"
    "  local sum = 0\n"
    "  if hasb then\n"
    "    local sp = redis.call('GET', KEYS[2])\n"
    "    if not sp then redis.call('SET', KEYS[2], ARGV[8], 'PX', month) sp = ARGV[8] end\n"
    "    out[4] = tonumber(sp)\n"
    "    sum = tonumber(redis.call('GET', KEYS[5]) or '0')\n"
    "    local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', s(now))\n"
    "    for _, g in ipairs(gone) do\n"
    "      sum = sum - tonumber(redis.call('HGET', KEYS[4], g) or '0')\n"
    "      redis.call('HDEL', KEYS[4], g)\n"
    "    end\n"
    "    if #gone > 0 then\n"
    "      redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', s(now))\n"
    "      if sum < 0 then sum = 0 end\n"
    "      redis.call('SET', KEYS[5], s(sum), 'PX', month)\n"
    "    end\n"
    "    if ARGV[6] == '1' and out[4] + sum >= tonumber(ARGV[7]) then out[1] = 3 return out end\n"
    "  end\n"
    "  local tats, worst, wretry = {}, 0, 0\n"
    "  for i = 1, n do\n"
    "    local b = 10 + (i - 1) * 4\n"
    "    local t, tau = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])\n"
    "    local cost, limit = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])\n"
    "    local k = KEYS[5 + i]\n"
    "    local tat = tats[k] or tonumber(redis.call('GET', k) or '0')\n"
    "    local d = tat - now\n"
    "    if d < 0 then d = 0 end\n"
    "    local rem, reset, retry = 0, d, 0\n"
    "    if limit == 0 then reset, retry = t, t\n"
    "    elseif d > tau then retry = d - tau\n"
    "    else\n"
    "      local d2 = d + t * cost\n"
    "      tats[k] = now + d2\n"
    "      if d2 <= tau then rem = math.floor((tau - d2) / t) + 1 end\n"
    "      reset = d2\n"
    "    end\n"
    "    if retry > wretry then worst, wretry = i, retry end\n"
    "    out[#out + 1] = rem\n"
    "    out[#out + 1] = reset\n"
    "  end\n"
    "  out[#out + 1] = now\n"
    "  if worst > 0 then out[1], out[2], out[3] = 1, worst, wretry return out end\n"
    "  for k, tat in pairs(tats) do\n"
    "    redis.call('SET', k, s(tat), 'PX', s(math.floor((tat - now) / 1000) + 1000))\n"
    "  end\n"
    "  if cap > 0 then\n"
    "    redis.call('ZADD', KEYS[1], s(now + ttl), id)\n"
    "    redis.call('PEXPIRE', KEYS[1], s(ttl / 1000 + 1000))\n"
    "  end\n"
    "  if hasb then\n"
    "    redis.call('ZADD', KEYS[3], s(now + ttl), id)\n"
    "    redis.call('HSET', KEYS[4], id, ARGV[9])\n"
    "    redis.call('SET', KEYS[5], s(sum + tonumber(ARGV[9])), 'PX', month)\n"
    "    redis.call('PEXPIRE', KEYS[3], month)\n"
    "    redis.call('PEXPIRE', KEYS[4], month)\n"
    "  end\n"
    "  return out\n"
    "end\n"
    "if ARGV[1] == 'S' then\n"
    "  local n = tonumber(ARGV[6])\n"
    "  if not redis.call('SET', KEYS[6 + n], '1', 'NX', 'PX', ARGV[7]) then return {1} end\n"
    "  if ARGV[4] == '1' then redis.call('ZREM', KEYS[1], id) end\n"
    "  if ARGV[5] == '1' then\n"
    "    local amt = redis.call('HGET', KEYS[4], id)\n"
    "    if amt then\n"
    "      redis.call('HDEL', KEYS[4], id)\n"
    "      redis.call('ZREM', KEYS[3], id)\n"
    "      local sum = tonumber(redis.call('GET', KEYS[5]) or '0') - tonumber(amt)\n"
    "      if sum < 0 then sum = 0 end\n"
    "      redis.call('SET', KEYS[5], s(sum), 'PX', month)\n"
    "    end\n"
    "  end\n"
    "  local cost = tonumber(ARGV[3])\n"
    "  if cost > 0 and redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "    redis.call('INCRBY', KEYS[2], s(cost))\n"
    "  end\n"
    "  for i = 1, n do\n"
    "    local b = 7 + (i - 1) * 3\n"
    "    local t, units, at = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])\n"
    "    if at == 0 or at > now then at = now end\n"
    "    local k = KEYS[5 + i]\n"
    "    local tat = tonumber(redis.call('GET', k) or '0')\n"
    "    if units > 0 then\n"
    "      if tat < at then tat = at end\n"
    "      tat = tat + units * t\n"
    "      local px = math.floor((tat - now) / 1000) + 1000\n"
    "      if px < 1000 then px = 1000 end\n"
    "      redis.call('SET', k, s(tat), 'PX', s(px))\n"
    "    elseif tat > now then\n"
    "      tat = tat + units * t\n"
    "      if tat > now then\n"
    "        redis.call('SET', k, s(tat), 'PX', s(math.floor((tat - now) / 1000) + 1000))\n"
    "      else\n"
    "        redis.call('DEL', k)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  return {0}\n"
    "end\n"
    "return redis.error_reply('tollgate: unknown mode')\n";

size_t tg_redis_key(char *out, size_t cap, const char *tenant, const char *what, const char *value)
{
    int n = value ? snprintf(out, cap, "tg:{%s}:%s:%s", tenant, what, value)
                  : snprintf(out, cap, "tg:{%s}:%s", tenant, what);
    if (n < 0) n = 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ---- building a command ---------------------------------------------------------------- */

static void arg(tg_redis_cmd_t *c, const char *p, size_t n)
{
    if (c->argc == TG_REDIS_CMD_ARGS || n > sizeof c->buf - c->used) {
        c->overflow = 1;
        return;
    }
    memcpy(c->buf + c->used, p, n);
    c->argv[c->argc] = c->buf + c->used;
    c->argvlen[c->argc++] = n;
    c->used += n;
}

static void arg_s(tg_redis_cmd_t *c, const char *s)
{
    arg(c, s, strlen(s));
}

static void arg_i(tg_redis_cmd_t *c, long long v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", v);
    arg(c, num, (size_t)n);
}

static void arg_key(tg_redis_cmd_t *c, const char *tenant, const char *what, const char *value)
{
    char k[TG_REDIS_KEY_MAX];
    arg(c, k, tg_redis_key(k, sizeof k, tenant, what, value));
}

/* EVALSHA sha numkeys and the five fixed keys of tenant in month. */
static void begin(tg_redis_cmd_t *c, const char *sha, const char *tenant, const char *month,
                  size_t nkeys)
{
    c->argc = 0;
    c->used = 0;
    c->overflow = 0;
    char spend[32], resv[32], amt[32], sum[32];
    snprintf(spend, sizeof spend, "spend:%s", month);
    snprintf(resv, sizeof resv, "resv:%s", month);
    snprintf(amt, sizeof amt, "resvamt:%s", month);
    snprintf(sum, sizeof sum, "resvsum:%s", month);
    arg_s(c, "EVALSHA");
    arg_s(c, sha);
    arg_i(c, (long long)(TG_REDIS_FIXED_KEYS + nkeys));
    arg_key(c, tenant, "inflight", NULL);
    arg_key(c, tenant, spend, NULL);
    arg_key(c, tenant, resv, NULL);
    arg_key(c, tenant, amt, NULL);
    arg_key(c, tenant, sum, NULL);
}

void tg_redis_gcra(const tg_limit_rule_t *r, int64_t *t_us, int64_t *tau_us)
{
    uint64_t period = r->period_ns / 1000;
    if (period == 0) period = 1;
    if (period > (UINT64_C(1) << 52)) period = UINT64_C(1) << 52; /* exact in a double */
    if (r->limit == 0) {
        *t_us = (int64_t)period;
        *tau_us = 0;
        return;
    }
    uint64_t t = period / r->limit + (period % r->limit != 0);
    if (t == 0) t = 1;
    uint64_t b1 = (r->burst ? r->burst : r->limit) - 1;
    uint64_t tau = b1 > (UINT64_C(1) << 52) / t ? UINT64_C(1) << 52 : t * b1;
    *t_us = (int64_t)t;
    *tau_us = (int64_t)tau;
}

int tg_redis_admit_cmd(tg_redis_cmd_t *c, const char *sha, const char *tenant, const char *month,
                       const tg_admit_plan_t *plan, const char *id, int64_t ttl_ms,
                       tg_redis_hold_t *hold)
{
    memset(hold, 0, sizeof *hold);
    begin(c, sha, tenant, month, plan->n);
    for (size_t i = 0; i < plan->n; i++)
        arg_key(c, tenant, plan->rules[i].scope, plan->rules[i].value);
    arg_s(c, "A");
    arg_s(c, id);
    arg_i(c, ttl_ms);
    arg_i(c, plan->cap);
    arg_s(c, plan->has_budget ? "1" : "0");
    arg_s(c, plan->hard ? "1" : "0");
    arg_i(c, plan->budget);
    arg_i(c, plan->spent);
    arg_i(c, plan->est_cost);
    arg_i(c, (long long)plan->n);
    hold->mode = TG_REDIS_HELD;
    snprintf(hold->tenant, sizeof hold->tenant, "%s", tenant);
    snprintf(hold->month, sizeof hold->month, "%s", month);
    snprintf(hold->id, sizeof hold->id, "%s", id);
    hold->inflight = plan->cap > 0;
    hold->reserved = plan->has_budget;
    hold->budget = plan->has_budget;
    for (size_t i = 0; i < plan->n; i++) {
        const tg_plan_rule_t *r = &plan->rules[i];
        int64_t t, tau;
        tg_redis_gcra(&r->rule, &t, &tau);
        uint64_t cost = r->rule.cost ? r->rule.cost : 1;
        arg_i(c, t);
        arg_i(c, tau);
        arg_i(c, (long long)cost);
        arg_i(c, (long long)r->rule.limit);
        if (r->tokens && hold->ntok < 3) {
            tg_redis_adj_t *a = &hold->tok[hold->ntok++];
            tg_redis_key(a->key, sizeof a->key, tenant, r->scope, r->value);
            a->t_us = t;
            a->units = (int64_t)cost;
            a->at_us = 0;
        }
    }
    return c->overflow ? -1 : 0;
}

int tg_redis_settle_cmd(tg_redis_cmd_t *c, const char *sha, const tg_redis_hold_t *hold,
                        const char *op, int64_t op_ttl_ms, int64_t cost, const tg_redis_adj_t *adj,
                        size_t n)
{
    begin(c, sha, hold->tenant, hold->month, n + 1);
    for (size_t i = 0; i < n; i++)
        arg_s(c, adj[i].key);
    arg_key(c, hold->tenant, "op", op);
    arg_s(c, "S");
    arg_s(c, hold->id);
    arg_i(c, cost > 0 ? cost : 0);
    arg_s(c, hold->inflight ? "1" : "0");
    arg_s(c, hold->reserved ? "1" : "0");
    arg_i(c, (long long)n);
    arg_i(c, op_ttl_ms > 0 ? op_ttl_ms : 1);
    for (size_t i = 0; i < n; i++) {
        arg_i(c, adj[i].t_us);
        arg_i(c, adj[i].units);
        arg_i(c, adj[i].at_us);
    }
    return c->overflow ? -1 : 0;
}

size_t tg_redis_token_adj(const tg_redis_hold_t *hold, int64_t tokens, tg_redis_adj_t *adj)
{
    size_t n = 0;
    if (tokens < 0) return 0;
    for (size_t i = 0; i < hold->ntok; i++) {
        if (tokens == hold->tok[i].units) continue;
        adj[n] = hold->tok[i];
        adj[n++].units = tokens - hold->tok[i].units;
    }
    return n;
}

size_t tg_redis_plan_adj(const tg_admit_plan_t *plan, const char *tenant, int sign, int64_t at_us,
                         tg_redis_adj_t *adj)
{
    size_t n = 0;
    for (size_t i = 0; i < plan->n; i++) {
        const tg_plan_rule_t *r = &plan->rules[i];
        if (r->rule.limit == 0) continue; /* refuses everything: nothing was counted */
        int64_t tau;
        tg_redis_gcra(&r->rule, &adj[n].t_us, &tau);
        tg_redis_key(adj[n].key, sizeof adj[n].key, tenant, r->scope, r->value);
        adj[n].units = sign * (int64_t)(r->rule.cost ? r->rule.cost : 1);
        adj[n++].at_us = at_us;
    }
    return n;
}

int tg_redis_resend_ok(uint64_t sent_ms, uint64_t now_ms, int64_t op_ttl_ms)
{
    uint64_t age = now_ms > sent_ms ? now_ms - sent_ms : 0;
    return op_ttl_ms > TG_REDIS_RESEND_MARGIN_MS &&
           age < (uint64_t)(op_ttl_ms - TG_REDIS_RESEND_MARGIN_MS);
}

/* ---- the reply ------------------------------------------------------------------------- */

static uint64_t ceil_s(long long us)
{
    return us <= 0 ? 0 : (uint64_t)((us + 999999) / 1000000);
}

int tg_redis_admit_reply(const long long *v, size_t n, const tg_admit_plan_t *plan,
                         tg_admission_t *a, int64_t *spend, int64_t *ahead_us, int64_t *stamp_us)
{
    memset(a, 0, sizeof *a);
    *spend = -1;
    if (stamp_us) *stamp_us = 0;
    if (n < 4) return -1;
    long long verdict = v[0];
    *spend = v[3];
    if (verdict == TG_REDIS_CONC) {
        a->verdict = TG_ADMIT_CONCURRENCY;
        a->reason = "concurrency_limit";
        a->retry_after_s = 1;
        snprintf(a->message, sizeof a->message,
                 "too many requests in flight for this tenant (limit %lld)", (long long)plan->cap);
        return 0;
    }
    if (verdict == TG_REDIS_BUDGET) {
        a->verdict = TG_ADMIT_BUDGET;
        a->reason = "budget_exceeded";
        snprintf(a->message, sizeof a->message,
                 "monthly budget reached (shared: %lld of %lld micro-USD)", v[3],
                 (long long)plan->budget);
        return 0;
    }
    if ((verdict != TG_REDIS_OK && verdict != TG_REDIS_RATE) || n != 5 + 2 * plan->n) return -1;
    if (verdict == TG_REDIS_RATE && (v[1] < 1 || (size_t)v[1] > plan->n)) return -1;
    if (ahead_us)
        for (size_t i = 0; i < plan->n; i++)
            ahead_us[i] = v[5 + 2 * i];
    if (stamp_us) *stamp_us = v[n - 1];
    /* The headers describe the request-rate rule closest to refusing, or the rule that
     * refused (as tg_policy_admit). */
    size_t w = verdict == TG_REDIS_RATE ? (size_t)v[1] - 1 : 0;
    if (verdict == TG_REDIS_OK)
        for (size_t i = 1; i < plan->nrate; i++)
            if (v[4 + 2 * i] < v[4 + 2 * w]) w = i;
    if (verdict == TG_REDIS_RATE || plan->nrate > 0) {
        const tg_plan_rule_t *r = &plan->rules[w];
        a->limited = 1;
        snprintf(a->policy, sizeof a->policy, "%s", r->name);
        a->limit = r->rule.limit;
        a->window_s = r->rule.period_ns / 1000000000ULL;
        a->remaining = v[4 + 2 * w] > 0 ? (uint64_t)v[4 + 2 * w] : 0;
        a->reset_s = ceil_s(v[5 + 2 * w]);
    }
    if (verdict == TG_REDIS_RATE) {
        a->verdict = TG_ADMIT_RATE;
        a->retry_after_s = ceil_s(v[2]);
        if (a->retry_after_s == 0) a->retry_after_s = 1;
        const tg_plan_rule_t *r = &plan->rules[w];
        if (r->tokens) {
            a->reason = "token_limited";
            snprintf(a->message, sizeof a->message, "token limit exceeded (%llu per %llu s)",
                     (unsigned long long)a->limit, (unsigned long long)a->window_s);
        } else {
            a->reason = "rate_limited";
            if (w >= plan->nrate && !r->tokens)
                snprintf(a->message, sizeof a->message,
                         "rate limit exceeded for tool \"%.64s\" (%llu per %llu s)", r->value,
                         (unsigned long long)a->limit, (unsigned long long)a->window_s);
            else
                snprintf(a->message, sizeof a->message, "rate limit exceeded (%llu per %llu s)",
                         (unsigned long long)a->limit, (unsigned long long)a->window_s);
        }
    }
    return (int)plan->n;
}

int tg_redis_settle_reply(const long long *v, size_t n)
{
    if (n != 1 || (v[0] != TG_REDIS_SETTLED && v[0] != TG_REDIS_SEEN)) return -1;
    return (int)v[0];
}
