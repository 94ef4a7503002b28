/* The admin API's internals shared by its files (not for other modules: adminapi.h is the
 * module's interface). adminapi.c routes a call and records it; a resource's file
 * (policy.c, ...) reads the call's body and query with these helpers, answers, and sets the
 * status and, for the audit record, the object, its tenant and what it was before and after.
 * Errors are {"error":{"type","message"}}, the message in the CLI's words. */
#ifndef TG_ADMINAPI_CALL_H
#define TG_ADMINAPI_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "adminapi/adminapi.h"
#include "util/sizes.h"

typedef struct tg_adminapi_call {
    tg_store_t *s;
    const tg_adminapi_req_t *req;
    int64_t now_us;
    const char
        *id;      /* the path's {id}, {name} or {model}, decoded ("" when the template has none) */
    json_t *body; /* the request's JSON object, or NULL */
    int status;
    char object[160];            /* what the call is about, for the audit record */
    char tenant[TG_TENANT_SIZE]; /* its tenant, for routes outside /tenants/{id}; "" = none */
    json_t *before, *after;      /* the object around a change, for the audit record */
} call_t;

/* Sets c->status and answers {"error":{type, message}}. */
json_t *tg_adminapi__error(call_t *c, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
json_t *tg_adminapi__store_error(call_t *c, const tg_err_t *err);

/* Formats c->object (the audit record's object), cut to its size between UTF-8 characters,
 * never through one: the record is text on PostgreSQL, which refuses a cut character. */
void tg_adminapi__object(call_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A JSON string of text that may hold bytes that are not UTF-8 (a row written by hand):
 * they become '?', as in the CLI's JSON. */
json_t *tg_adminapi__text(const char *s);

/* Parses the body into c->body and checks its member names against allowed (NULL-ended):
 * NULL when fine (c->body NULL for no body when !required), else the error answer. */
json_t *tg_adminapi__check_body(call_t *c, const char *const *allowed, int required);
/* An optional string member; NULL when absent; *bad set (an error answer) for another type. */
const char *tg_adminapi__member_text(call_t *c, const char *name, json_t **bad);
/* A string member checked as the CLI checks --name (cap bytes, no control characters). */
const char *tg_adminapi__member_name(call_t *c, size_t cap, json_t **bad);

/* A query string's members: name=value pairs, each value percent-decoded into its slot
 * (cap bytes); an unknown name or a repeated one is an error. */
typedef struct qparam {
    const char *name;
    char *slot;
    size_t cap;
    int seen;
} qparam_t;
json_t *tg_adminapi__read_query(call_t *c, qparam_t *ps, size_t n);

/* 0 when tenant exists, else the error answer (404 or 500) in *out. */
int tg_adminapi__need_tenant(call_t *c, const char *tenant, json_t **out);

/* The resources' handlers (the route table is adminapi.c's). */
json_t *tg_adminapi__keys_list(call_t *c); /* keys.c */
json_t *tg_adminapi__keys_create(call_t *c);
json_t *tg_adminapi__keys_revoke(call_t *c);
json_t *tg_adminapi__keys_rotate(call_t *c);
json_t *tg_adminapi__pauses_list(call_t *c);
json_t *tg_adminapi__pause_set(call_t *c);
json_t *tg_adminapi__pause_clear(call_t *c);
json_t *tg_adminapi__limits_list(call_t *c);
json_t *tg_adminapi__limit_set(call_t *c);
json_t *tg_adminapi__limit_rm(call_t *c);
json_t *tg_adminapi__ip_rules_list(call_t *c); /* rules.c */
json_t *tg_adminapi__ip_rule_add(call_t *c);
json_t *tg_adminapi__ip_rule_rm(call_t *c);
json_t *tg_adminapi__tool_rules_list(call_t *c);
json_t *tg_adminapi__tool_rule_add(call_t *c);
json_t *tg_adminapi__tool_rule_rm(call_t *c);
json_t *tg_adminapi__budget_set(call_t *c); /* budget.c */
json_t *tg_adminapi__budget_rm(call_t *c);
json_t *tg_adminapi__report(call_t *c);      /* report.c */
json_t *tg_adminapi__prices_list(call_t *c); /* prices.c */
json_t *tg_adminapi__price_set(call_t *c);
json_t *tg_adminapi__price_rm(call_t *c);
json_t *tg_adminapi__route_price_set(call_t *c);
json_t *tg_adminapi__route_price_rm(call_t *c);
json_t *tg_adminapi__tool_price_set(call_t *c);
json_t *tg_adminapi__tool_price_rm(call_t *c);
json_t *tg_adminapi__alarms_list(call_t *c); /* alarms.c */
json_t *tg_adminapi__alarms_history(call_t *c);

#endif
