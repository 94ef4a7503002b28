/* `tollgate plan set|list|show|rm` and `tollgate tenant set-plan`: plans in the store
 * (types/plan.h; the arithmetic is src/invoice/, the rules docs/billing.md).
 *
 * A meter is one argument, `--meter "METER[:MATCH] MODEL PRICES [included=N]"`, so a plan
 * reads as it is written in docs/billing.md and `plan show` prints the same text back:
 *   billable unit 3.00                        USD 3.00 per 1M billable requests
 *   tokens_in:gpt-4o graduated 1M:2.50 -:2.00 first 1M tokens at 2.50 per 1M, rest 2.00
 *   gb volume 100:0.09 -:0.05 included=10     USD per GB; the tier reached prices all
 *   tool_calls:* flat 20                      USD 20 when any call is made
 *   ai_cost markup 20                         the AI cost plus 20%
 * Quantities are in the meter's unit: a count (with an optional k, M or G suffix), GB for
 * gb (decimal, down to the byte) and USD for ai_cost. Money is parsed with tg_money_parse:
 * no float ever holds an amount. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/plan.h"
#include "invoice/invoice.h"
#include "util/clock.h"
#include "util/money.h"

#define USAGE                                                                                      \
    "usage: tollgate plan set NAME [--base USD] [--from YYYY-MM] --meter SPEC [--meter SPEC]... "  \
    "| list [--format table|json|csv] | show NAME [--month YYYY-MM] [--format table|json] "        \
    "| rm NAME [--from YYYY-MM]; SPEC: \"METER[:MATCH] flat|unit|graduated|volume|markup PRICES "  \
    "[included=N]\" (docs/billing.md)"

#define GB_BYTES 1000000000LL

/* ---- quantities and specs ---------------------------------------------------------- */

/* A count with an optional k / M / G suffix ("1M" = 1000000), at most 10^18. */
static int parse_count(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    int64_t mul = 1;
    if (n > 1 && (s[n - 1] == 'k' || s[n - 1] == 'M' || s[n - 1] == 'G')) {
        mul = s[n - 1] == 'k' ? 1000 : s[n - 1] == 'M' ? 1000000 : 1000000000;
        n--;
    }
    char buf[32];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    int64_t v;
    if (tg_cli_parse_count(buf, 1000000000000000000LL, &v) != 0) return -1;
    if (__builtin_mul_overflow(v, mul, out) || *out > 1000000000000000000LL) return -1;
    return 0;
}

/* "12.5" GB to bytes: at most 9 decimals, exact. */
static int parse_gb(const char *s, int64_t *bytes)
{
    int64_t whole = 0, frac = 0;
    int nfrac = 0, any = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++, any = 1)
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, *p - '0', &whole))
            return -1;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, any = 1) {
            if (++nfrac > 9) return -1;
            frac = frac * 10 + (*p - '0');
        }
    if (*p || !any) return -1;
    for (; nfrac < 9; nfrac++)
        frac *= 10;
    if (__builtin_mul_overflow(whole, GB_BYTES, bytes) ||
        __builtin_add_overflow(*bytes, frac, bytes))
        return -1;
    return 0;
}

/* A quantity in the meter's unit. */
static int parse_qty(int meter, const char *s, int64_t *out)
{
    if (meter == TG_PMETER_GB) return parse_gb(s, out);
    if (meter == TG_PMETER_AI_COST) return tg_money_parse(s, out);
    return parse_count(s, out);
}

void tg_cli_plan_qty_text(int meter, int64_t q, char *buf, size_t cap)
{
    if (meter == TG_PMETER_AI_COST) {
        tg_money_format(q, buf, cap);
    } else if (meter == TG_PMETER_GB) {
        int n =
            snprintf(buf, cap, "%lld.%09lld", (long long)(q / GB_BYTES), (long long)(q % GB_BYTES));
        while (n > 0 && (size_t)n < cap && buf[n - 1] == '0')
            buf[--n] = '\0';
        if (n > 0 && (size_t)n < cap && buf[n - 1] == '.') buf[--n] = '\0';
    } else {
        snprintf(buf, cap, "%lld", (long long)q);
    }
}

static int spec_error(const char *spec, const char *why)
{
    return tg_cli_errorf(TG_EXIT_USAGE, "--meter \"%s\": %s", spec, why);
}

/* One price token "UPTO:USD" (tiers) into t. */
static int parse_tier(int meter, const char *tok, tg_plan_tier_t *t)
{
    const char *colon = strrchr(tok, ':');
    if (!colon) return -1;
    char bound[64];
    size_t n = (size_t)(colon - tok);
    if (n == 0 || n >= sizeof bound) return -1;
    memcpy(bound, tok, n);
    bound[n] = '\0';
    if (strcmp(bound, "-") == 0 || strcmp(bound, "inf") == 0)
        t->up_to = -1;
    else if (parse_qty(meter, bound, &t->up_to) != 0 || t->up_to <= 0)
        return -1;
    return tg_money_parse(colon + 1, &t->unit_micros);
}

int tg_cli_plan_parse_meter(const char *spec, tg_plan_meter_t *m)
{
    memset(m, 0, sizeof *m);
    char buf[1024];
    if (strlen(spec) >= sizeof buf) return spec_error(spec, "too long");
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL, *tok = strtok_r(buf, " \t", &save);
    if (!tok) return spec_error(spec, "empty");
    char *colon = strchr(tok, ':');
    if (colon) *colon = '\0';
    m->meter = tg_plan_name_parse(tg_plan_meter_name, TG_PMETER_COUNT, tok);
    if (m->meter < 0)
        return spec_error(spec, "unknown meter (requests, billable, gb, tokens_in, tokens_out, "
                                "tool_calls, ai_cost)");
    int matched = m->meter == TG_PMETER_TOKENS_IN || m->meter == TG_PMETER_TOKENS_OUT ||
                  m->meter == TG_PMETER_TOOL_CALLS;
    if (colon && !matched) return spec_error(spec, "only token and tool meters take :MATCH");
    const char *match = colon ? colon + 1 : matched ? "*" : "";
    if (strlen(match) >= sizeof m->match || (colon && !*match) || !tg_cli_valid_text(match))
        return spec_error(spec, "invalid model or tool after ':'");
    snprintf(m->match, sizeof m->match, "%s", match);
    char *model = strtok_r(NULL, " \t", &save);
    if (!model) return spec_error(spec, "needs a price model (flat, unit, graduated, volume)");
    int markup = strcmp(model, "markup") == 0;
    if (markup && m->meter != TG_PMETER_AI_COST) return spec_error(spec, "markup is for ai_cost");
    m->model =
        markup ? TG_PMODEL_UNIT : tg_plan_name_parse(tg_plan_model_name, TG_PMODEL_COUNT, model);
    if (m->model < 0)
        return spec_error(spec, "unknown price model (flat, unit, graduated, volume, markup)");
    int nprices = 0;
    while ((tok = strtok_r(NULL, " \t", &save))) {
        if (strncmp(tok, "included=", 9) == 0) {
            if (parse_qty(m->meter, tok + 9, &m->included) != 0)
                return spec_error(spec, "invalid included= quantity");
            continue;
        }
        nprices++;
        if (m->model == TG_PMODEL_FLAT) {
            if (nprices > 1 || tg_money_parse(tok, &m->flat_micros) != 0)
                return spec_error(spec, "flat takes one amount in USD");
        } else if (markup) {
            /* PCT with at most 4 decimals: 1 USD of cost is billed 1 + PCT/100 USD. */
            int64_t pct;
            if (nprices > 1 || tg_money_parse(tok, &pct) != 0 || pct % 100 != 0 ||
                pct > 100000LL * 1000000)
                return spec_error(spec, "markup takes one percentage (at most 4 decimals)");
            m->ntiers = 1;
            m->tiers[0] = (tg_plan_tier_t){.up_to = -1, .unit_micros = 1000000 + pct / 100};
        } else if (m->model == TG_PMODEL_UNIT) {
            if (nprices > 1 || tg_money_parse(tok, &m->tiers[0].unit_micros) != 0)
                return spec_error(spec, "unit takes one price in USD");
            m->ntiers = 1;
            m->tiers[0].up_to = -1;
        } else {
            if (m->ntiers >= TG_PLAN_TIERS) return spec_error(spec, "too many tiers (at most 8)");
            if (parse_tier(m->meter, tok, &m->tiers[m->ntiers]) != 0)
                return spec_error(spec, "a tier is UPTO:USD (UPTO a quantity, or - for the rest)");
            m->ntiers++;
        }
    }
    if (nprices == 0) return spec_error(spec, "needs a price");
    tg_plan_t one = {.name = "x", .nmeters = 1};
    one.meters[0] = *m;
    tg_err_t err = {{0}};
    if (tg_invoice_plan_check(&one, &err) != 0) return spec_error(spec, err.msg);
    return TG_EXIT_OK;
}

void tg_cli_plan_meter_text(const tg_plan_meter_t *m, char *buf, size_t cap)
{
    size_t o = 0;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        if (o < cap) o += (size_t)snprintf(buf + o, cap - o, __VA_ARGS__);                         \
    } while (0)
    OUT("%s%s%s %s", tg_plan_meter_name(m->meter), m->match[0] ? ":" : "", m->match,
        tg_plan_model_name(m->model));
    char a[48], b[48];
    if (m->model == TG_PMODEL_FLAT) {
        tg_money_format(m->flat_micros, a, sizeof a);
        OUT(" %s", a);
    }
    for (int t = 0; t < m->ntiers; t++) {
        tg_money_format(m->tiers[t].unit_micros, a, sizeof a);
        if (m->model == TG_PMODEL_UNIT) {
            OUT(" %s", a);
            continue;
        }
        if (m->tiers[t].up_to < 0)
            snprintf(b, sizeof b, "-");
        else
            tg_cli_plan_qty_text(m->meter, m->tiers[t].up_to, b, sizeof b);
        OUT(" %s:%s", b, a);
    }
    if (m->included > 0) {
        tg_cli_plan_qty_text(m->meter, m->included, a, sizeof a);
        OUT(" included=%s", a);
    }
#undef OUT
}

/* ---- months ------------------------------------------------------------------------ */

/* --from / --month: "YYYY-MM", or the month of now when s is NULL. */
static int month_arg(const char *opt, const char *s, int64_t now_us, char month[8], int64_t *start)
{
    if (!s) {
        tg_invoice_month_of(now_us, month);
    } else {
        if (strlen(s) != 7)
            return tg_cli_errorf(TG_EXIT_USAGE, "invalid %s \"%s\" (expected YYYY-MM)", opt, s);
        memcpy(month, s, 8);
    }
    int64_t next;
    if (tg_invoice_month(month, start, &next) != 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "invalid %s \"%s\" (expected YYYY-MM)", opt, s);
    return TG_EXIT_OK;
}

/* ---- set --------------------------------------------------------------------------- */

static int check_name(const char *name)
{
    if (!name) return tg_cli_errorf(TG_EXIT_USAGE, "plan needs a NAME (%s)", USAGE);
    if (!tg_cli_valid_tenant_id(name))
        return tg_cli_errorf(TG_EXIT_USAGE,
                             "invalid plan name \"%s\": use 1-63 characters of A-Z a-z 0-9 . _ -",
                             name);
    return TG_EXIT_OK;
}

/* Parses and checks `plan set` into *pp (nothing written yet). */
/* `plan set`'s arguments: --meter may be given many times, which tg_cli_parse (the last
 * one wins) does not do. "--opt VALUE" and "--opt=VALUE" both work, as everywhere. */
static int parse_set(int argc, char **argv, int64_t now, tg_plan_t *p, int *help)
{
    memset(p, 0, sizeof *p);
    const char *name = NULL, *base = NULL, *from = NULL;
    int rc;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        size_t n = a[0] == '-' && eq ? (size_t)(eq - a) : strlen(a);
        const char **slot = n == 6 && strncmp(a, "--base", n) == 0   ? &base
                            : n == 6 && strncmp(a, "--from", n) == 0 ? &from
                                                                     : NULL;
        int meter = n == 7 && strncmp(a, "--meter", n) == 0;
        if (slot || meter) {
            if (!eq && i + 1 >= argc) return tg_cli_errorf(TG_EXIT_USAGE, "%s needs a value", a);
            const char *v = eq && a[0] == '-' ? eq + 1 : argv[++i];
            if (slot) {
                *slot = v;
                continue;
            }
            if (p->nmeters >= TG_PLAN_METERS)
                return tg_cli_errorf(TG_EXIT_USAGE, "at most %d meters", TG_PLAN_METERS);
            if ((rc = tg_cli_plan_parse_meter(v, &p->meters[p->nmeters])) != 0) return rc;
            p->nmeters++;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = 1;
            return TG_EXIT_OK;
        } else if (a[0] == '-' && a[1]) {
            return tg_cli_errorf(TG_EXIT_USAGE, "unknown option %s (%s)", a, USAGE);
        } else if (name) {
            return tg_cli_errorf(TG_EXIT_USAGE, "unexpected argument \"%s\" (%s)", a, USAGE);
        } else {
            name = a;
        }
    }
    if ((rc = check_name(name)) != 0) return rc;
    snprintf(p->name, sizeof p->name, "%s", name);
    if (base && (rc = tg_cli_parse_usd("--base", base, &p->base_micros)) != 0) return rc;
    char month[8];
    if ((rc = month_arg("--from", from, now, month, &p->effective_us)) != 0) return rc;
    if (!base && p->nmeters == 0)
        return tg_cli_errorf(TG_EXIT_USAGE, "plan set needs --base USD or a --meter (%s)", USAGE);
    tg_err_t err = {{0}};
    if (tg_invoice_plan_check(p, &err) != 0) return tg_cli_errorf(TG_EXIT_USAGE, "%s", err.msg);
    return TG_EXIT_OK;
}

/* ---- list and show ----------------------------------------------------------------- */

typedef struct plans {
    tg_plan_t *v;
    size_t n, cap;
} plans_t;

static int collect(const tg_plan_t *p, void *ud)
{
    plans_t *ps = ud;
    return tg_cli_push((void **)&ps->v, &ps->n, &ps->cap, p, sizeof *p);
}

json_t *tg_cli_plan_json(const tg_plan_t *p)
{
    char when[25], usd[48], q[48];
    tg_cli_fmt_time(p->effective_us, when);
    tg_money_format(p->base_micros, usd, sizeof usd);
    char month[8];
    tg_invoice_month_of(p->effective_us, month);
    json_t *meters = json_array();
    for (int i = 0; i < p->nmeters; i++) {
        const tg_plan_meter_t *m = &p->meters[i];
        char spec[1024];
        tg_cli_plan_meter_text(m, spec, sizeof spec);
        json_t *tiers = json_array();
        for (int t = 0; t < m->ntiers; t++) {
            tg_money_format(m->tiers[t].unit_micros, usd, sizeof usd);
            json_t *up = json_null();
            if (m->tiers[t].up_to >= 0) up = json_integer(m->tiers[t].up_to);
            json_array_append_new(tiers,
                                  json_pack("{s:o, s:s, s:I}", "up_to", up, "unit_price", usd,
                                            "unit_micros", (json_int_t)m->tiers[t].unit_micros));
        }
        tg_money_format(m->flat_micros, usd, sizeof usd);
        tg_cli_plan_qty_text(m->meter, m->included, q, sizeof q);
        json_array_append_new(
            meters,
            json_pack("{s:s, s:o, s:s, s:I, s:s, s:I, s:o, s:I, s:o}", "meter",
                      tg_plan_meter_name(m->meter), "match",
                      m->match[0] ? tg_cli_json_text(m->match) : json_null(), "model",
                      tg_plan_model_name(m->model), "included", (json_int_t)m->included,
                      "flat_price", usd, "per", (json_int_t)tg_plan_scale(m->meter), "tiers", tiers,
                      "flat_micros", (json_int_t)m->flat_micros, "spec", tg_cli_json_text(spec)));
    }
    tg_money_format(p->base_micros, usd, sizeof usd);
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "name", p->name, "from", month, "effective",
                     when, "base", usd, "base_micros", (json_int_t)p->base_micros, "meters",
                     meters);
}

static const tg_cli_col_t list_cols[] = {
    {.name = "name", .type = TG_CLI_COL_TEXT},
    {.name = "from", .type = TG_CLI_COL_TEXT},
    {.name = "status", .type = TG_CLI_COL_TEXT},
    {.name = "base", .type = TG_CLI_COL_TEXT},
    {.name = "meters", .type = TG_CLI_COL_TEXT, .flags = TG_CLI_COL_NO_JSON},
    {.name = "plan", .type = TG_CLI_COL_JSON, .flags = TG_CLI_COL_JSON_ONLY},
};

static int cmd_list(tg_store_t *store, int64_t now, tg_cli_format_t fmt)
{
    plans_t ps = {0};
    tg_err_t err = {{0}};
    tg_cli_rows_t t = TG_CLI_ROWS(list_cols);
    int r = tg_store_plan_list(store, NULL, collect, &ps, &err);
    for (size_t i = 0; r == 0 && i < ps.n; i++) {
        const tg_plan_t *p = &ps.v[i];
        int last = i + 1 == ps.n || strcmp(ps.v[i + 1].name, p->name) != 0;
        const char *st = p->effective_us > now                    ? "scheduled"
                         : last || ps.v[i + 1].effective_us > now ? "current"
                                                                  : "superseded";
        char month[8], usd[48], specs[4096];
        tg_invoice_month_of(p->effective_us, month);
        tg_money_format(p->base_micros, usd, sizeof usd);
        size_t o = 0;
        specs[0] = '\0';
        for (int m = 0; m < p->nmeters && o < sizeof specs; m++) {
            char one[1024];
            tg_cli_plan_meter_text(&p->meters[m], one, sizeof one);
            o += (size_t)snprintf(specs + o, sizeof specs - o, "%s%s", m ? "; " : "", one);
        }
        tg_cli_cell_text(&t, p->name);
        tg_cli_cell_text(&t, month);
        tg_cli_cell_text(&t, st);
        tg_cli_cell_text(&t, usd);
        tg_cli_cell_text(&t, specs);
        tg_cli_cell_json(&t, tg_cli_plan_json(p));
        tg_cli_row_done(&t);
    }
    free(ps.v);
    return tg_cli_rows_finish(&t, r, &err, fmt, "list");
}

static int cmd_show(tg_store_t *store, const char *name, int64_t at, tg_cli_format_t fmt)
{
    static tg_plan_t p;
    tg_err_t err = {{0}};
    int r = tg_store_plan_get(store, name, at, &p, &err);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (fmt == TG_CLI_JSON)
        return tg_cli_print_json(tg_cli_plan_json(&p), 0) == 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
    char month[8], usd[48];
    tg_invoice_month_of(p.effective_us, month);
    tg_money_format(p.base_micros, usd, sizeof usd);
    printf("plan %s from %s: base %s USD a month\n", p.name, month, usd);
    for (int i = 0; i < p.nmeters; i++) {
        char spec[1024];
        tg_cli_plan_meter_text(&p.meters[i], spec, sizeof spec);
        printf("  --meter \"%s\"\n", spec);
    }
    return fflush(stdout) == 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
}

/* ---- tenant set-plan --------------------------------------------------------------- */

int tg_cli_tenant_set_plan(int argc, char **argv, const char *config_path)
{
    const char *usage = "usage: tollgate tenant set-plan ID PLAN [--from YYYY-MM]";
    const char *from = NULL, *pos[2] = {0};
    int npos = 0, help = 0;
    const tg_cli_opt_t opts[] = {{"--from", &from}};
    int rc = tg_cli_parse(argc, argv, 2, opts, 1, pos, 2, &npos, &help, usage);
    if (rc != 0) return rc;
    if (help) return puts(usage) >= 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
    if (npos != 2)
        return tg_cli_errorf(TG_EXIT_USAGE, "tenant set-plan needs ID and PLAN (%s)", usage);
    if ((rc = tg_cli_check_tenant(pos[0], 0)) != 0 || (rc = check_name(pos[1])) != 0) return rc;
    tg_tenant_plan_row_t row = {0};
    int64_t start;
    if ((rc = month_arg("--from", from, tg_wall_us(), row.from_month, &start)) != 0) return rc;
    snprintf(row.tenant, sizeof row.tenant, "%s", pos[0]);
    snprintf(row.plan, sizeof row.plan, "%s", pos[1]);
    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    tg_err_t err = {{0}};
    static tg_plan_t p;
    rc = tg_cli_tenant_exists(store, row.tenant, 0);
    if (rc == 0) {
        /* The plan must exist by the month (a version from then or earlier). */
        int64_t next;
        tg_invoice_month(row.from_month, &start, &next);
        int r = tg_store_plan_get(store, row.plan, start, &p, &err);
        if (r == TG_STORE_NOTFOUND)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "no plan \"%s\" in force in %s (plan set)",
                               row.plan, row.from_month);
        else if (r != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    }
    if (rc == 0 && tg_store_tenant_plan_set(store, &row, &err) != 0)
        rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (rc == 0) printf("tenant %s: plan %s from %s\n", row.tenant, row.plan, row.from_month);
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}

/* ---- versions that priced closed months ------------------------------------------- */

/* A closed invoice priced by plan name (version effective_us; -1 = any version). */
typedef struct used_by {
    const char *name;
    int64_t effective_us;
    tg_invoice_row_t first;
    int found;
} used_by_t;

static int find_use(const tg_invoice_row_t *r, void *ud)
{
    used_by_t *u = ud;
    if (strcmp(r->plan, u->name) != 0 ||
        (u->effective_us >= 0 && r->plan_effective_us != u->effective_us))
        return 0;
    u->first = *r;
    u->found = 1;
    return 1;
}

/* A version that priced a closed month stays as it was: its late events are priced by it
 * (docs/billing.md), so changing or removing it would reprice a frozen month. TG_EXIT_OK,
 * or the error line printed and TG_EXIT_RUNTIME. */
static int check_unused(tg_store_t *store, const char *name, int64_t effective_us, const char *what)
{
    used_by_t u = {.name = name, .effective_us = effective_us};
    tg_err_t err = {{0}};
    int r = tg_store_invoice_list(store, NULL, find_use, &u, &err);
    if (r < 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    if (!u.found) return TG_EXIT_OK;
    return tg_cli_errorf(TG_EXIT_RUNTIME,
                         "cannot %s plan %s: it priced the closed invoice of tenant %s for %s "
                         "(set a new version from a later month instead)",
                         what, name, u.first.tenant, u.first.month);
}

/* ---- dispatch ---------------------------------------------------------------------- */

int tg_cli_plan(int argc, char **argv, const char *config_path)
{
    if (argc < 2) return tg_cli_errorf(TG_EXIT_USAGE, "plan needs a subcommand (%s)", USAGE);
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        puts(USAGE);
        return TG_EXIT_OK;
    }
    int64_t now = tg_wall_us();
    static tg_plan_t p;
    const char *name = NULL, *from = NULL, *format = NULL, *month = NULL;
    int rc = 0, help = 0;
    tg_cli_format_t fmt = TG_CLI_TABLE;
    int64_t at = now;
    char mbuf[8];
    if (strcmp(sub, "set") == 0) {
        rc = parse_set(argc, argv, now, &p, &help);
    } else if (strcmp(sub, "list") == 0) {
        const tg_cli_opt_t o[] = {{"--format", &format}};
        rc = tg_cli_parse(argc, argv, 2, o, 1, NULL, 0, NULL, &help, USAGE);
        if (rc == 0 && !help) rc = tg_cli_parse_format(format, 1, &fmt);
    } else if (strcmp(sub, "show") == 0) {
        const tg_cli_opt_t o[] = {{"--format", &format}, {"--month", &month}};
        rc = tg_cli_parse(argc, argv, 2, o, 2, &name, 1, NULL, &help, USAGE);
        if (rc == 0 && !help) rc = tg_cli_parse_format(format, 0, &fmt);
        if (rc == 0 && !help) rc = check_name(name);
        if (rc == 0 && !help && month) rc = month_arg("--month", month, now, mbuf, &at);
    } else if (strcmp(sub, "rm") == 0) {
        const tg_cli_opt_t o[] = {{"--from", &from}};
        rc = tg_cli_parse(argc, argv, 2, o, 1, &name, 1, NULL, &help, USAGE);
        if (rc == 0 && !help) rc = check_name(name);
        if (rc == 0 && !help && from) rc = month_arg("--from", from, now, mbuf, &at);
    } else {
        return tg_cli_errorf(TG_EXIT_USAGE, "unknown plan subcommand \"%s\" (%s)", sub, USAGE);
    }
    if (rc != 0) return rc;
    if (help) return puts(USAGE) >= 0 ? TG_EXIT_OK : TG_EXIT_RUNTIME;
    tg_config_t *cfg;
    tg_store_t *store;
    if ((rc = tg_cli_open(config_path, &cfg, &store)) != 0) return rc;
    tg_err_t err = {{0}};
    if (strcmp(sub, "set") == 0) {
        const tg_plan_t *np = &p;
        rc = check_unused(store, np->name, np->effective_us, "replace this version of");
        if (rc != 0) {
            /* printed */
        } else if (tg_store_plan_set(store, np, &err) != 0) {
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
        } else {
            char m[8], usd[48];
            tg_invoice_month_of(np->effective_us, m);
            tg_money_format(np->base_micros, usd, sizeof usd);
            printf("plan set: %s from %s: base %s USD, %d meter%s\n", np->name, m, usd, np->nmeters,
                   np->nmeters == 1 ? "" : "s");
        }
    } else if (strcmp(sub, "list") == 0) {
        rc = cmd_list(store, now, fmt);
    } else if (strcmp(sub, "show") == 0) {
        rc = cmd_show(store, name, at, fmt);
    } else if ((rc = check_unused(store, name, from ? at : -1, "remove")) == 0) {
        int r = tg_store_plan_rm(store, name, from ? at : -1, &err);
        if (r != 0)
            rc = tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
        else if (from)
            printf("plan removed: %s from %s\n", name, mbuf);
        else
            printf("plan removed: %s (every version)\n", name);
    }
    tg_store_close(store);
    tg_config_unref(cfg);
    return rc;
}
