/* Admin listener: see admin.h. Requests are parsed with llhttp like the
 * gateway's, but kept tiny (4 KiB head cap; a body only for the admin API, at most
 * TG_ADMIN_BODY_MAX, refused from its Content-Length when that says more) and answered
 * with Connection: close. Each connection has a deadline, as on the gateway: its request
 * within server.header_timeout, then its answer taken by the client within
 * server.idle_timeout; a slow or silent client is closed, never held.
 *
 * Of the request's headers only Authorization is kept (in the connection, wiped with the
 * bytes read once the connection closes); the bearer check is tg_admin_check_bearer. */
#include "admin/admin.h"

#include <jansson.h>
#include <llhttp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/dashboard.h"
#include "util/log.h"

#define ADMIN_HEAD_MAX 4096
/* /metrics answers written but not yet taken by their clients, at most: each is a copy of
 * the whole scrape (megabytes with many tenants), held until its client reads it or the
 * idle timeout; scrapers that never read must not hold the gateway's memory. Past it, 503. */
#define METRICS_INFLIGHT_MAX 8
#define REALM                "tollgate-admin"

struct tg_admin {
    uv_tcp_t tcp;
    tg_admin_ops_t ops; /* the server's answers (admin.h) */
    void *ctx;          /* their argument */
    struct aconn *conns;
    /* Refusals for want of the token (main thread only, as everything here). */
    unsigned long long unauthorized; /* since start: tollgate_admin_unauthorized_total */
    unsigned long long unlogged;     /* refused since the last log line */
    int metrics_inflight;            /* /metrics answers not yet written (see its max) */
    uint64_t last_log_ms;            /* uv_now of that line; 0 = none yet */
};

typedef struct aconn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the deadline of the current phase (request, then answer) */
    int open_handles; /* freed when both handles are closed */
    tg_admin_t *a;
    struct aconn *prev, *next;
    llhttp_t parser;
    char url[1024]; /* /dashboard?token=... */
    size_t url_len, head_bytes;
    int head;           /* a HEAD request: the answer's head only */
    int metrics_answer; /* the answer being written is a /metrics one */
    char rbuf[2048];
    int done;
    /* The header being read: its name lower-cased (a longer one is not Authorization). */
    char field[16];
    size_t field_len;
    int in_field; /* the last callback was a header name */
    int is_auth;  /* the value being read is an Authorization header's */
    int nauth;    /* Authorization headers seen: two are refused (which one would count?) */
    char auth[ADMIN_HEAD_MAX];
    size_t auth_len; /* the head is capped at ADMIN_HEAD_MAX, so it always fits */
    /* The dashboard: the Cookie header (its tg_dash pair is the browser's credential) and
     * the answer being built off the loop (tg_admin_ops_t.dash_query), if any. */
    int is_cookie;
    char cookie[ADMIN_HEAD_MAX];
    size_t cookie_len;
    void *dash_job;
    char dash_what[80]; /* "overview" or "tenant/ID": the alarms are that tenant's */
    /* The admin API: the body read so far (malloc'd, at most TG_ADMIN_BODY_MAX bytes), the
     * head's end, a body past the cap, and the call being answered off the loop. */
    char *body;
    size_t body_len;
    int headers_done;
    int body_too_big;
    void *api_job;
} aconn_t;

typedef struct awrite {
    uv_write_t req;
    int metrics; /* a /metrics answer: counted in metrics_inflight until written */
    char data[];
} awrite_t;

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_aconn_closed(uv_handle_t *h)
{
    aconn_t *c = h->data;
    if (--c->open_handles == 0) {
        if (c->body) OPENSSL_cleanse(c->body, c->body_len); /* may hold a key's name, ... */
        free(c->body);
        OPENSSL_cleanse(c, sizeof *c); /* the bytes read and the header hold a credential */
        free(c);
    }
}

static void close_handles(aconn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (c->dash_job && c->a) c->a->ops.dash_cancel(c->a->ctx, c->dash_job);
    c->dash_job = NULL;
    if (c->api_job && c->a) c->a->ops.api_cancel(c->a->ctx, c->api_job);
    c->api_job = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_aconn_closed);
    uv_close((uv_handle_t *)&c->timer, on_aconn_closed);
}

static void aconn_close(aconn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->a)
        c->a->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    close_handles(c);
}

static void on_deadline(uv_timer_t *t)
{
    aconn_close(t->data);
}

/* ms from the server (tg_admin_ops_t): its current config, read on the main thread. */
static void arm(aconn_t *c, long ms)
{
    if (c->a && ms > 0) uv_timer_start(&c->timer, on_deadline, (uint64_t)ms, 0);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    aconn_t *c = req->handle->data;
    awrite_t *w = (awrite_t *)req;
    if (w->metrics && c->a) c->a->metrics_inflight--;
    free(w);
    aconn_close(c);
}

/* extra: more header lines, each ending in \r\n ("" for none; at most 128 bytes). */
static void respond_text_h(aconn_t *c, int status, const char *ctype, const char *extra, char *js)
{
    size_t bl = js ? strlen(js) : 0;
    size_t hcap = 256 + strlen(ctype) + strlen(extra);
    awrite_t *w = malloc(sizeof *w + bl + hcap + 1);
    if (!w) {
        free(js);
        aconn_close(c);
        return;
    }
    int hl = snprintf(w->data, hcap,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: "
                      "%zu\r\n%sConnection: close\r\n\r\n",
                      status,
                      status == 200   ? "OK"
                      : status == 201 ? "Created"
                      : status == 303 ? "See Other"
                      : status == 404 ? "Not Found"
                      : status == 400 ? "Bad Request"
                      : status == 401 ? "Unauthorized"
                      : status == 403 ? "Forbidden"
                      : status == 405 ? "Method Not Allowed"
                      : status == 409 ? "Conflict"
                      : status == 413 ? "Content Too Large"
                      : status == 422 ? "Unprocessable Content"
                      : status == 500 ? "Internal Server Error"
                                      : "Service Unavailable",
                      ctype, bl + 1, extra);
    memcpy(w->data + hl, js ? js : "", bl);
    w->data[hl + bl] = '\n';
    free(js);
    /* HEAD: the same head, Content-Length included, and no body (RFC 9110 9.3.2). */
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(hl + (c->head ? 0 : bl + 1)));
    w->metrics = c->metrics_answer && c->a;
    arm(c, c->a ? c->a->ops.idle_timeout_ms(c->a->ctx) : 0); /* a client that never reads */
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(w);
        aconn_close(c);
        return;
    }
    if (w->metrics) c->a->metrics_inflight++; /* until on_written */
}

static void respond_text(aconn_t *c, int status, const char *ctype, char *js)
{
    respond_text_h(c, status, ctype, "", js);
}

static void respond(aconn_t *c, int status, json_t *body)
{
    char *js = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    respond_text(c, status, "application/json", js);
}

/* ---- the bearer token -------------------------------------------------- */

static unsigned long compares;

unsigned long tg_admin__compares(void)
{
    return compares;
}

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

tg_admin_auth_t tg_admin_check_bearer(const char *value, size_t len, const unsigned char *want)
{
    unsigned char got[32];
    tg_admin_auth_t v = tg_admin_check_bearer_sha(value, len, want, got);
    OPENSSL_cleanse(got, sizeof got);
    return v;
}

tg_admin_auth_t tg_admin_check_bearer_sha(const char *value, size_t len, const unsigned char *want,
                                          unsigned char got[32])
{
    static const unsigned char none[32]; /* compared against when no token is configured */
    tg_admin_auth_t verdict = TG_ADMIN_AUTH_WRONG;
    const char *tok = "";
    size_t tlen = 0;
    if (!value) {
        verdict = TG_ADMIN_AUTH_MISSING;
    } else {
        /* RFC 9110 11.4: credentials = auth-scheme [ 1*SP token68 ]; the scheme is
         * case-insensitive. Tabs are taken as spaces; whitespace around is ignored. */
        size_t i = 0;
        while (i < len && is_ws(value[i]))
            i++;
        while (len > i && is_ws(value[len - 1]))
            len--;
        if (len - i > 6 && strncasecmp(value + i, "bearer", 6) == 0 && is_ws(value[i + 6])) {
            i += 6;
            while (i < len && is_ws(value[i]))
                i++;
            tok = value + i;
            tlen = len - i;
        } else {
            verdict = TG_ADMIN_AUTH_MALFORMED;
        }
    }
    /* Hashed and compared whatever came, once: the work does not depend on the token's
     * length or on how much of it is right, and the configured token's length is not in
     * the comparison at all (digests are 32 bytes). */
    unsigned int outlen = 32;
    if (EVP_Digest(tok, tlen, got, &outlen, EVP_sha256(), NULL) != 1) verdict = TG_ADMIN_AUTH_WRONG;
    int same = CRYPTO_memcmp(got, want ? want : none, 32) == 0;
    compares++;
    if (!want) return value ? TG_ADMIN_AUTH_UNSET : TG_ADMIN_AUTH_MISSING;
    if (verdict == TG_ADMIN_AUTH_WRONG && same) return TG_ADMIN_AUTH_OK;
    return verdict;
}

static const char *auth_problem(tg_admin_auth_t v)
{
    switch (v) {
    case TG_ADMIN_AUTH_MISSING: return "no Authorization header";
    case TG_ADMIN_AUTH_MALFORMED: return "an Authorization header that is not one Bearer token";
    case TG_ADMIN_AUTH_WRONG: return "a wrong admin token";
    case TG_ADMIN_AUTH_UNSET: return "a token, but no admin token is configured";
    default: return "";
    }
}

/* Counted always, logged at most once a second with how many came since the last line:
 * a client guessing tokens cannot fill the log. Never with what was presented. */
static void note_refusal(aconn_t *c, tg_admin_auth_t v)
{
    tg_admin_t *a = c->a;
    a->unauthorized++;
    a->unlogged++;
    uint64_t now = uv_now(c->tcp.loop);
    if (a->last_log_ms && now - a->last_log_ms < 1000) return;
    char peer[64] = "?";
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, peer, sizeof peer);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, peer, sizeof peer);
    }
    TG_WARN("admin: 401 for %s from %s (%llu refused since the last such line, %llu in all)",
            auth_problem(v), peer, a->unlogged, a->unauthorized);
    a->unlogged = 0;
    a->last_log_ms = now ? now : 1;
}

/* extra: header lines added to the challenge (the dashboard's, for its paths; else ""). */
static void respond_unauthorized_h(aconn_t *c, tg_admin_auth_t v, int configured, const char *extra)
{
    note_refusal(c, v);
    /* RFC 6750 3: a request without credentials gets the challenge alone; a bad one also
     * says invalid_token (malformed: invalid_request). */
    const char *hdr =
        v == TG_ADMIN_AUTH_MISSING ? "WWW-Authenticate: Bearer realm=\"" REALM "\"\r\n"
        : v == TG_ADMIN_AUTH_MALFORMED
            ? "WWW-Authenticate: Bearer realm=\"" REALM "\", error=\"invalid_request\"\r\n"
            : "WWW-Authenticate: Bearer realm=\"" REALM "\", error=\"invalid_token\"\r\n";
    json_t *body =
        json_pack("{s:{s:s,s:s}}", "error", "type", "unauthorized", "message",
                  !configured ? "no admin token is configured (server.admin_token)"
                              : "admin endpoints need Authorization: Bearer <admin token>");
    char *js = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char h[1024];
    snprintf(h, sizeof h, "%s%s", hdr, extra);
    respond_text_h(c, 401, "application/json", h, js);
}

static void respond_unauthorized(aconn_t *c, tg_admin_auth_t v, int configured)
{
    respond_unauthorized_h(c, v, configured, "");
}

/* /metrics: the server's text, then the admin's own counter. */
static char *metrics_text(tg_admin_t *a)
{
    char *text = a->ops.metrics(a->ctx);
    if (!text) return NULL;
    static const char fam[] =
        "# HELP tollgate_admin_unauthorized_total Admin requests refused for a missing or wrong "
        "admin token.\n# TYPE tollgate_admin_unauthorized_total counter\n"
        "tollgate_admin_unauthorized_total ";
    size_t tl = strlen(text);
    char *out = malloc(tl + 1 + sizeof fam + 24);
    if (!out) {
        free(text);
        return NULL;
    }
    /* The server's text has no last newline (respond_text adds it). */
    snprintf(out, tl + 1 + sizeof fam + 24, "%s%s%s%llu", text, tl ? "\n" : "", fam,
             a->unauthorized);
    free(text);
    return out;
}

/* ---- headers ------------------------------------------------------------ */

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    aconn_t *c = p->data;
    if (!c->in_field) {
        c->in_field = 1;
        c->field_len = 0;
    }
    for (size_t i = 0; i < n; i++, c->field_len++)
        if (c->field_len < sizeof c->field)
            c->field[c->field_len] = (char)((at[i] >= 'A' && at[i] <= 'Z') ? at[i] + 32 : at[i]);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    aconn_t *c = p->data;
    if (c->in_field) {
        if (c->field_len == 0) return -1; /* ": v", an empty name (llhttp passes it) */
        c->in_field = 0;
        c->is_auth = c->field_len == 13 && memcmp(c->field, "authorization", 13) == 0;
        c->nauth += c->is_auth;
        c->is_cookie = c->field_len == 6 && memcmp(c->field, "cookie", 6) == 0;
        if (c->is_cookie && c->cookie_len && c->cookie_len + 2 <= sizeof c->cookie) {
            memcpy(c->cookie + c->cookie_len, "; ", 2); /* two Cookie lines: one list */
            c->cookie_len += 2;
        }
    }
    if (c->is_cookie) {
        if (n > sizeof c->cookie - c->cookie_len) return -1; /* cannot be: the head is capped */
        memcpy(c->cookie + c->cookie_len, at, n);
        c->cookie_len += n;
        return 0;
    }
    if (!c->is_auth || c->nauth > 1) return 0;
    if (n > sizeof c->auth - c->auth_len) return -1; /* cannot be: the head is capped */
    memcpy(c->auth + c->auth_len, at, n);
    c->auth_len += n;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    aconn_t *c = p->data;
    if (c->url_len + n >= sizeof c->url) return -1;
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    aconn_t *c = p->data;
    c->headers_done = 1;
    /* Refused before a byte of it is read when it says it is too long. */
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > TG_ADMIN_BODY_MAX) {
        c->body_too_big = 1;
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    aconn_t *c = p->data;
    if (n > TG_ADMIN_BODY_MAX - c->body_len) { /* chunked: counted as it comes */
        c->body_too_big = 1;
        return -1;
    }
    if (!c->body && !(c->body = malloc(TG_ADMIN_BODY_MAX))) return -1;
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    return 0;
}

/* ---- the admin API (adminapi/adminapi.h) --------------------------------- */

static void on_api_done(void *arg, int status, json_t *body)
{
    aconn_t *c = arg;
    c->api_job = NULL;
    if (!c->a) {
        json_decref(body);
        return;
    }
    char *js = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!js) {
        aconn_close(c);
        return;
    }
    respond_text_h(c, status, "application/json", "Cache-Control: no-store\r\n", js);
}

static void respond_asset(aconn_t *c, int status, const tg_asset_t *a, const char *extra);

static const char *method_name(llhttp_t *p)
{
    return llhttp_method_name((llhttp_method_t)p->method);
}

/* /admin/v1[/...]: server.admin_token (a full admin), else an admin token; then the call,
 * answered off the loop. */
static void admin_api(aconn_t *c, llhttp_t *p, const char *query)
{
    tg_admin_t *a = c->a;
    const unsigned char *want = a->ops.token_sha256(a->ctx);
    unsigned char got[32];
    tg_admin_auth_t v =
        c->nauth > 1 ? TG_ADMIN_AUTH_MALFORMED
                     : tg_admin_check_bearer_sha(c->nauth ? c->auth : NULL, c->auth_len, want, got);
    tg_admin_principal_t who;
    memset(&who, 0, sizeof who);
    if (v == TG_ADMIN_AUTH_OK) {
        snprintf(who.actor, sizeof who.actor, "config-token");
    } else if ((v == TG_ADMIN_AUTH_WRONG || v == TG_ADMIN_AUTH_UNSET) && a->ops.api_token &&
               a->ops.api_token(a->ctx, got, &who)) {
        v = TG_ADMIN_AUTH_OK;
    } else if (v == TG_ADMIN_AUTH_UNSET) {
        v = TG_ADMIN_AUTH_WRONG; /* admin tokens may exist: not "none is configured" */
    }
    OPENSSL_cleanse(got, sizeof got);
    if (v != TG_ADMIN_AUTH_OK) {
        respond_unauthorized(c, v, 1);
        return;
    }
    if (!a->ops.api_call) {
        respond(c, 404,
                json_pack("{s:{s:s,s:s}}", "error", "type", "not_found", "message",
                          "no such admin endpoint"));
        return;
    }
    if (strcmp(c->url, "/admin/v1/openapi.json") == 0 &&
        (p->method == HTTP_GET || p->method == HTTP_HEAD)) {
        respond_asset(c, 200, tg_admin_asset("openapi.json"), "Cache-Control: no-store\r\n");
        return;
    }
    c->api_job = a->ops.api_call(a->ctx, method_name(p), c->url, query, c->body, c->body_len, &who,
                                 on_api_done, c);
    if (!c->api_job) {
        respond(c, 503,
                json_pack("{s:{s:s,s:s}}", "error", "type", "busy", "message",
                          "too many admin calls are running; retry"));
        return;
    }
    arm(c, a->ops.idle_timeout_ms(a->ctx)); /* the answer, then its reading */
}

/* ---- the dashboard (admin/dashboard.h) ---------------------------------- */

/* On every dashboard answer: never cached, never framed, scripts and styles only from
 * this origin (the page has no inline script or style), no referrer. */
#define DASH_HEADERS                                                                               \
    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"                               \
    "Referrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n"                                    \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "                    \
    "frame-ancestors 'none'\r\n"

static const char login_page[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tollgate: "
    "log in</title></head><body><h1>401: the dashboard needs the admin token</h1><p>Open "
    "<code>/dashboard?token=ADMIN_TOKEN</code> once (the token of server.admin_token or "
    "server.admin_token_file; <code>make run</code> prints this link). The token is then "
    "kept as a cookie for this path and removed from the address bar.</p></body></html>";

/* A JSON answer under /dashboard (errors included): with DASH_HEADERS, as every answer there. */
static void respond_dash(aconn_t *c, int status, json_t *body)
{
    char *js = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    respond_text_h(c, status, "application/json", DASH_HEADERS, js);
}

static void respond_asset(aconn_t *c, int status, const tg_asset_t *a, const char *extra)
{
    char *body = a ? strndup((const char *)a->data, a->len) : NULL;
    if (a && !body) {
        aconn_close(c);
        return;
    }
    respond_text_h(c, status, a ? tg_admin_asset_type(a->name) : "text/plain", extra, body);
}

static void on_dash_done(void *arg, int status, json_t *body)
{
    aconn_t *c = arg;
    c->dash_job = NULL;
    if (!c->a) {
        json_decref(body);
        return;
    }
    if (status == 200 && json_is_object(body)) {
        const char *tenant = strncmp(c->dash_what, "tenant/", 7) == 0 ? c->dash_what + 7 : NULL;
        json_t *al = c->a->ops.alarms_firing ? c->a->ops.alarms_firing(c->a->ctx, tenant) : NULL;
        json_object_set_new(body, "alarms", al ? al : json_array());
    }
    char *js = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!js) {
        aconn_close(c);
        return;
    }
    respond_text_h(c, status, "application/json", DASH_HEADERS, js);
}

static void dashboard(aconn_t *c, llhttp_t *p, tg_dash_route_t route, const char *what,
                      const char *query)
{
    tg_admin_t *a = c->a;
    const unsigned char *want = a->ops.token_sha256(a->ctx);
    /* The browser's log-in: the token in the query, once; then a cookie. */
    if (route == TG_DASH_PAGE && query &&
        (strncmp(query, "token=", 6) == 0 || strstr(query, "&token="))) {
        if (!tg_admin_check_token_param(query, want)) {
            note_refusal(c, want ? TG_ADMIN_AUTH_WRONG : TG_ADMIN_AUTH_UNSET);
            respond_text_h(c, 401, "text/html; charset=utf-8", DASH_HEADERS, strdup(login_page));
            return;
        }
        char cookie[65], extra[512 + sizeof c->url];
        tg_admin_dash_cookie(want, cookie);
        /* c->url is a dashboard page path (its tenant id checked): safe in a header. */
        snprintf(extra, sizeof extra,
                 "Location: %s\r\nSet-Cookie: " TG_DASH_COOKIE
                 "=%s; HttpOnly; SameSite=Strict; Path=/dashboard\r\n" DASH_HEADERS,
                 c->url, cookie);
        OPENSSL_cleanse(cookie, sizeof cookie);
        respond_text_h(c, 303, "text/plain", extra, NULL);
        OPENSSL_cleanse(extra, sizeof extra);
        return;
    }
    tg_admin_auth_t v = c->nauth > 1
                            ? TG_ADMIN_AUTH_MALFORMED
                            : tg_admin_check_bearer(c->nauth ? c->auth : NULL, c->auth_len, want);
    if (v != TG_ADMIN_AUTH_OK && tg_admin_check_cookie(c->cookie, c->cookie_len, want))
        v = TG_ADMIN_AUTH_OK;
    if (v != TG_ADMIN_AUTH_OK) {
        if (route == TG_DASH_PAGE) {
            note_refusal(c, v);
            respond_text_h(c, 401, "text/html; charset=utf-8",
                           DASH_HEADERS "WWW-Authenticate: Bearer realm=\"" REALM "\"\r\n",
                           strdup(login_page));
        } else {
            respond_unauthorized_h(c, v, want != NULL, DASH_HEADERS);
        }
        return;
    }
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        respond_dash(c, 404,
                     json_pack("{s:{s:s,s:s}}", "error", "type", "not_found", "message",
                               "admin endpoints answer GET"));
        return;
    }
    switch (route) {
    case TG_DASH_PAGE: respond_asset(c, 200, tg_admin_asset("index.html"), DASH_HEADERS); return;
    case TG_DASH_ASSET: respond_asset(c, 200, tg_admin_asset(what), DASH_HEADERS); return;
    case TG_DASH_API:
        if (a->ops.dash_query) {
            snprintf(c->dash_what, sizeof c->dash_what, "%s", what);
            c->dash_job = a->ops.dash_query(a->ctx, what, query, on_dash_done, c);
            if (!c->dash_job) {
                respond_dash(c, 503,
                             json_pack("{s:{s:s,s:s}}", "error", "type", "busy", "message",
                                       "too many dashboard queries are running; retry"));
                return;
            }
            arm(c, a->ops.idle_timeout_ms(a->ctx)); /* the answer, then its reading */
            return;
        }
        break;
    default: break;
    }
    respond_dash(c, 404,
                 json_pack("{s:{s:s,s:s}}", "error", "type", "not_found", "message",
                           "no such dashboard path"));
}

static int on_message_complete(llhttp_t *p)
{
    aconn_t *c = p->data;
    c->done = 1;
    c->head = p->method == HTTP_HEAD;
    char *q = strchr(c->url, '?');
    if (q) *q = '\0';
    char what[80];
    tg_dash_route_t route = tg_admin_dash_route(c->url, what, sizeof what);
    if (route != TG_DASH_NONE) {
        dashboard(c, p, route, what, q ? q + 1 : NULL);
        OPENSSL_cleanse(c->auth, c->auth_len);
        OPENSSL_cleanse(c->cookie, c->cookie_len);
        OPENSSL_cleanse(c->url, sizeof c->url); /* may hold ?token= */
        return HPE_PAUSED; /* one request a connection: nothing after it is read */
    }
    if (strcmp(c->url, "/admin/v1") == 0 || strncmp(c->url, "/admin/v1/", 10) == 0) {
        admin_api(c, p, q ? q + 1 : NULL);
        OPENSSL_cleanse(c->auth, c->auth_len);
        return HPE_PAUSED;
    }
    int open_path = !strcmp(c->url, "/healthz") || !strcmp(c->url, "/readyz");
    if (!open_path) {
        const unsigned char *want = c->a->ops.token_sha256(c->a->ctx);
        tg_admin_auth_t v =
            c->nauth > 1 ? TG_ADMIN_AUTH_MALFORMED
                         : tg_admin_check_bearer(c->nauth ? c->auth : NULL, c->auth_len, want);
        OPENSSL_cleanse(c->auth, c->auth_len);
        if (v != TG_ADMIN_AUTH_OK) {
            respond_unauthorized(c, v, want != NULL);
            return HPE_PAUSED;
        }
    }
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        respond(c, 404,
                json_pack("{s:{s:s,s:s}}", "error", "type", "not_found", "message",
                          "admin endpoints answer GET"));
    } else if (strcmp(c->url, "/healthz") == 0) {
        respond(c, 200, json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(c->url, "/readyz") == 0) {
        json_t *o = json_object();
        int ready = c->a->ops.ready(c->a->ctx, o);
        respond(c, ready ? 200 : 503, o);
    } else if (strcmp(c->url, "/metrics") == 0) {
        if (c->a->metrics_inflight >= METRICS_INFLIGHT_MAX) {
            respond(c, 503,
                    json_pack("{s:{s:s,s:s}}", "error", "type", "busy", "message",
                              "too many /metrics answers are still being read; retry"));
        } else {
            c->metrics_answer = 1;
            respond_text(c, 200, "text/plain; version=0.0.4", metrics_text(c->a));
        }
    } else {
        respond(c, 404,
                json_pack("{s:{s:s,s:s}}", "error", "type", "not_found", "message",
                          "no such admin endpoint"));
    }
    return HPE_PAUSED; /* one request a connection: nothing after it is read */
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    aconn_t *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    aconn_t *c = s->data;
    if (nread < 0) {
        aconn_close(c);
        return;
    }
    if (c->done || nread == 0) return;
    if (!c->headers_done) c->head_bytes += (size_t)nread;
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (c->done) {
        uv_read_stop(s);
        return;
    }
    if (c->body_too_big) {
        /* Answered without reading the rest: the connection closes after the answer. */
        c->done = 1;
        uv_read_stop(s);
        respond(c, 413,
                json_pack("{s:{s:s,s:s}}", "error", "type", "too_large", "message",
                          "the body is over 65536 bytes"));
        return;
    }
    if (e != HPE_OK || (!c->headers_done && c->head_bytes > ADMIN_HEAD_MAX)) {
        c->done = 1;
        uv_read_stop(s);
        respond(c, 400,
                json_pack("{s:{s:s,s:s}}", "error", "type", "invalid_request", "message",
                          "malformed request"));
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    tg_admin_t *a = server->data;
    if (status < 0) return;
    aconn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    c->a = a;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    uv_timer_init(server->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->a = NULL;
        close_handles(c);
        return;
    }
    arm(c, a->ops.header_timeout_ms(a->ctx)); /* slowloris: the request, whole */
    c->next = a->conns;
    if (a->conns) a->conns->prev = c;
    a->conns = c;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

tg_admin_t *tg_admin_start(uv_loop_t *loop, int fd, const char *listen, const tg_admin_ops_t *ops,
                           void *ctx, tg_err_t *err)
{
    tg_admin_t *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->ops = *ops;
    a->ctx = ctx;
    uv_tcp_init(loop, &a->tcp);
    a->tcp.data = a;
    int rc = uv_tcp_open(&a->tcp, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&a->tcp, 128, on_connection);
    if (rc != 0) {
        tg_err_set(err, "admin listen on %s: %s", listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&a->tcp, on_listener_closed);
        return NULL;
    }
    return a;
}

void tg_admin_stop(tg_admin_t *a)
{
    while (a->conns) {
        aconn_t *c = a->conns;
        a->conns = c->next;
        c->prev = NULL;
        c->next = NULL;
        if (c->dash_job) a->ops.dash_cancel(a->ctx, c->dash_job);
        c->dash_job = NULL;
        if (c->api_job) a->ops.api_cancel(a->ctx, c->api_job);
        c->api_job = NULL;
        c->a = NULL;
        close_handles(c);
    }
    uv_close((uv_handle_t *)&a->tcp, on_listener_closed);
}
