/* Configuration: the YAML file, parsed with libyaml into one immutable
 * tg_config_t. `${NAME}` in any scalar is replaced by the environment variable
 * NAME (an unset variable is an error naming it); `${file:PATH}`, in an upstream's header
 * values and credentials only, by the first line of the file PATH (config.c). Every error names the
 * file, line and key: `tollgate.yaml:14: routes[2].upstream: no upstream named "opanai"`.
 *
 * A running server holds its config by reference count: SIGHUP loads a new one
 * and swaps it in, requests in flight keep the one they started with. */
#ifndef TG_CONFIG_CONFIG_H
#define TG_CONFIG_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "crypt/crypt.h"
#include "types/cidr.h"
#include "types/rows.h"
#include "util/err.h"

/* audit.bodies (docs/audit.md, "Bodies"): encrypt implies hash (>= TG_BODIES_HASH). */
#define TG_BODIES_NONE    0
#define TG_BODIES_HASH    1
#define TG_BODIES_ENCRYPT 2

typedef enum {
    TG_ROUTE_HTTP = 0,
    TG_ROUTE_OPENAI,
    TG_ROUTE_ANTHROPIC,
    TG_ROUTE_MCP,
} tg_route_kind_t;

/* routes[].signed: whether requests must carry a signature (auth/sign.h). off: never
 * checked (but a tenant in signing.required_tenants still must sign); optional: checked
 * when the request carries X-Tollgate-Signature; required: always. */
typedef enum {
    TG_SIGNED_OFF = 0,
    TG_SIGNED_OPTIONAL,
    TG_SIGNED_REQUIRED,
} tg_signed_mode_t;

typedef struct tg_header_conf {
    char *name;
    char *value; /* after ${ENV} and ${file:PATH} expansion; may hold a secret: never log it */
    int cred_at; /* offset of "{credential}" in value, or -1: where the upstream's next
                    credential goes (config/credential.h) */
} tg_header_conf_t;

/* Passive health of one target, shared by all workers. */
typedef struct tg_target {
    char *url;                  /* scheme://host[:port], no trailing slash */
    atomic_int fails;           /* consecutive failures; reset by a success */
    atomic_llong down_until_us; /* monotonic; skipped until then */
    atomic_int fail_streak;     /* failures since the last success (fails restarts at each
                                   cool-down; this does not): /metrics */
} tg_target_t;

typedef struct tg_upstream_conf {
    char *name;
    tg_target_t *targets;
    size_t ntargets;
    tg_header_conf_t *headers;
    size_t nheaders;
    long connect_timeout_ms; /* default 5000 */
    long timeout_ms;         /* whole response, default 60000; 0 = none */
    long idle_timeout_ms;    /* no byte from the upstream for this long: 504; default 30000;
                                0 = none */
    int max_fails;           /* failures in a row before a cool-down, default 3; >= 1 */
    char *ca_file;           /* PEM CA bundle to verify https:// targets; NULL = system's */
    long fail_timeout_ms;    /* cool-down, default 10000 */
    atomic_uint rr;          /* round-robin cursor */
    /* credentials: values taken in turn, one per upstream request, into the headers whose
     * value holds "{credential}" (config/credential.h). Read at every load (SIGHUP), so a
     * rotated ${file:} takes effect there; secrets: never logged, wiped when freed. */
    char **credentials;
    size_t ncredentials;
    size_t credential_max; /* the longest one's length */
    atomic_uint cred_rr;   /* the credentials' round-robin cursor */
} tg_upstream_conf_t;

/* ---- auth: how tenants authenticate (issue 14; docs/configuration.md "auth and jwt") ---- */

/* auth: [api_key, jwt]: the methods a request may authenticate with, a bit set. A
 * credential that looks like a JWT (three base64url parts) goes to jwt when jwt is listed,
 * anything else to api_key when it is listed. */
#define TG_AUTH_API_KEY 1u
#define TG_AUTH_JWT     2u

/* JWS algorithms tollgate verifies (auth/jwt.h), a bit set. */
#define TG_JWT_RS256 1u
#define TG_JWT_ES256 2u
#define TG_JWT_HS256 4u

typedef struct tg_jwt_conf {
    int set;               /* 1: a jwt: section was given */
    char *issuer;          /* jwt.issuer: the iss every token must carry (required) */
    char *audience;        /* jwt.audience: in aud (a string or an array), or NULL: not checked */
    char *tenant_claim;    /* jwt.tenant_claim, default "custom:tenant_id" */
    char *key_claim;       /* jwt.key_claim: a claim naming an API key id of the tenant whose
                              limits apply, or NULL */
    unsigned algorithms;   /* jwt.algorithms, TG_JWT_*; default: those with a key configured */
    char *jwks_file;       /* jwt.jwks_file: RS256 and ES256 keys (a JWKS), or NULL */
    unsigned char *secret; /* jwt.secret: the HS256 key (>= 32 bytes), or NULL; never logged,
                              wiped when freed */
    size_t secret_len;
    long leeway_ms; /* jwt.leeway: clock skew allowed on exp, nbf and iat; default 30000 */
} tg_jwt_conf_t;

typedef struct tg_route_conf {
    char *name;
    char *path_prefix;
    char *upstream;         /* name, as written */
    tg_upstream_conf_t *up; /* resolved */
    tg_route_kind_t kind;
    unsigned auth;                /* routes[i].auth, TG_AUTH_*; 0: the global auth */
    tg_signed_mode_t signed_mode; /* signed: off (default) | optional | required */
} tg_route_conf_t;

/* alarms: rules evaluated per tenant (process-wide for queue) by the alarm engine
 * (src/alarm/alarm.h, docs/operations.md "Alarms"). */
typedef enum {
    TG_ALARM_QUOTA = 0,  /* the tenant's highest rate/token rule utilisation, 0..1+ */
    TG_ALARM_ERROR_RATE, /* 5xx answers (not tollgate's refusals) / requests over window */
    TG_ALARM_LATENCY,    /* quantile of the latency histogram over window, ms */
    TG_ALARM_SPEND_RATE, /* cost over window, as micro-USD per hour */
    TG_ALARM_QUEUE,      /* event queue fill (or 1 while spooling), process-wide */
} tg_alarm_kind_t;

typedef struct tg_alarm_conf {
    char *name; /* unique; in notices, ids and the alarms table */
    tg_alarm_kind_t kind;
    double threshold;       /* the level that fires (0 = unset): quota and queue a ratio
                               (required), error_rate a ratio (0..1], latency ms,
                               spend_rate micro-USD per hour */
    long window_ms;         /* error_rate, latency, spend_rate: default 5m; 0 otherwise */
    double quantile;        /* latency: default 0.95, in (0, 1) */
    double baseline_factor; /* fires only at factor x the tenant's baseline; 0 = unset */
    int min_requests;       /* requests in the window below which nothing is judged;
                               default 20 (error_rate, latency, spend_rate) */
    long min_ms;            /* latency: never fires below this many ms; default 0 */
    int for_evals;          /* for: evaluations the condition must hold (pending ->
                               firing) or be clear (firing -> resolved); default 1 */
    double resolve_margin;  /* resolve_margin: clear means below (1 - margin) x the level
                               that fires; default 0.1, in [0, 1) */
    char *severity;         /* "warning" (default) or "critical" */
} tg_alarm_conf_t;

/* actions: what the gateway does itself while an alarm holds for a tenant. */
typedef enum { TG_ACTION_THROTTLE = 0, TG_ACTION_PAUSE } tg_action_do_t;

typedef struct tg_action_conf {
    char *alarm;   /* an alarms[].name (not a queue alarm: actions act on a tenant) */
    int at_firing; /* at: firing (1, default) or pending (0) */
    tg_action_do_t what;
    double factor; /* throttle: the tenant's rate limits x factor, in (0, 1] */
} tg_action_conf_t;

/* notify: where notices (alarms, budget thresholds, `alarms test`) are sent (notify/). */
typedef enum {
    TG_NOTIFIER_WEBHOOK = 0,  /* POST the notice as JSON, signed with HMAC-SHA256 */
    TG_NOTIFIER_ALERTMANAGER, /* POST /api/v2/alerts to a Prometheus Alertmanager */
    TG_NOTIFIER_EXEC,         /* run a program with the notice as JSON on its stdin */
} tg_notifier_type_t;

typedef struct tg_notifier_conf {
    char *name; /* notify[i].name, default TYPE-INDEX ("webhook-0"): the outbox
                   keys deliveries by it, so name notifiers you may reorder */
    tg_notifier_type_t type;
    char *url;    /* webhook: the URL posted to; alertmanager: its base URL (the
                     sender appends /api/v2/alerts); may hold a credential: never
                     logged or echoed */
    char *secret; /* webhook: the HMAC key (notify[i].secret, or the first line of
                     notify[i].secret_file); never logged; wiped when freed */
    size_t secret_len;
    char **argv; /* exec: argv[0] an absolute path, NULL-terminated; run without
                    a shell (notify[i].command: a path, or a list) */
    size_t argc;
    long timeout_ms; /* notify[i].timeout: a whole send (or the program's run), default
                        5000 */
    long resend_ms;  /* alertmanager: notify[i].resend, default 60000, 0 = never: how often
                        the alarms still firing are posted again (as Prometheus does), each
                        with endsAt = now + 4 x resend, so Alertmanager neither resolves
                        them while they fire nor keeps them when tollgate is gone */
} tg_notifier_conf_t;

/* limits.on_backend_down: what admission does while the shared limiter (Redis) cannot
 * answer within limits.timeout. */
typedef enum {
    TG_LIMITS_DOWN_LOCAL = 0, /* the in-memory limits, rates and caps / limits.instances */
    TG_LIMITS_DOWN_ALLOW,     /* admit without limits (budgets still reserve locally) */
    TG_LIMITS_DOWN_DENY,      /* 503 limits_unavailable */
} tg_limits_down_t;

typedef struct tg_config {
    atomic_int refs;
    char *path; /* the file it came from */
    struct {
        char *listen;            /* host:port, default 127.0.0.1:8080 */
        char *admin_listen;      /* host:port, default 127.0.0.1:9090; "" disables */
        int workers;             /* "auto" (the default) = number of online cores, 1..1024 */
        size_t max_header_bytes; /* default 16384 */
        size_t max_body;         /* default 10 MiB */
        size_t max_decoded_body; /* a compressed answer is metered up to this decoded size,
                                    default 256 MiB (meter/decode.h) */
        long idle_timeout_ms;    /* keep-alive idle close, default 60000 */
        long header_timeout_ms;  /* slowloris guard, default 10000 */
        long body_timeout_ms;    /* a body tollgate reads itself (held, discarded), whole;
                                    default 60000 */
        long drain_timeout_ms;   /* SIGTERM grace for in-flight requests, default 30000 */
        /* server.admin_token, or the first line of server.admin_token_file: what every admin
         * path but /healthz and /readyz asks for as `Authorization: Bearer TOKEN`. Only its
         * SHA-256 is kept; the text is wiped where tollgate held it once hashed. */
        int admin_token_set;                  /* 0: neither key given (admin answers 401) */
        unsigned char admin_token_sha256[32]; /* valid when admin_token_set */
        char *admin_token_file;               /* the path when the token came from a file */
    } server;
    tg_cidr_list_t trusted_proxies; /* server.trusted_proxies: peers whose
                                       X-Forwarded-For is believed */
    unsigned auth;                  /* auth: TG_AUTH_*, default TG_AUTH_API_KEY */
    int auth_per_route;             /* 1: some route has an auth of its own */
    tg_jwt_conf_t jwt;              /* jwt: (set when any auth lists jwt) */
    struct {
        /* limits.backend: "memory" (the default: limiter and budget state in this process)
         * or redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (state shared by every gateway on
         * that Redis). The password is a credential: no message, log line or page shows it
         * (only host, port and database are ever printed), and it is wiped when freed. */
        int redis;                /* 1: the Redis backend below */
        char *redis_host;         /* a name or an IP literal (IPv6 without brackets) */
        int redis_port;           /* default 6379 */
        int redis_db;             /* default 0 */
        char *redis_user;         /* an ACL user (Redis 6), percent-decoded, or NULL: default */
        char *redis_password;     /* percent-decoded from the URL or limits.password_file's
                                     first line, or NULL: no AUTH */
        char *redis_pw_file;      /* limits.password_file, or NULL */
        long timeout_ms;          /* limits.timeout: one admission's wait for Redis, default 20 */
        long reservation_ttl_ms;  /* limits.reservation_ttl: an in-flight slot's and a budget
                                     reservation's life in Redis, default 5m: what a gateway
                                     that dies without settling holds is free after it */
        tg_limits_down_t on_down; /* limits.on_backend_down, default local */
        int instances;            /* limits.instances: gateways sharing the limits, default 1; the
                                     local fallback divides rates and caps by it */
    } limits;
    struct {
        int rps, rpm, rph; /* defaults.limits: at most one >= 0; -1 = unset */
        int burst;         /* 0 = the limit */
        int concurrency;   /* in-flight requests per tenant; 0 = none */
    } default_limits;
    int max_output_tokens;    /* defaults.max_output_tokens: output tokens reserved against a
                                 budget when a request names no max_tokens; default 4096 */
    int budget_thresholds[8]; /* defaults.budget_thresholds: percent of a monthly budget at
                                 which an alert fires, strictly ascending, 1..1000; default
                                 80, 90, 100 (a budget row without its own uses these) */
    int nbudget_thresholds;   /* 0..8; 0 = no threshold alerts */
    tg_price_row_t *prices;   /* prices: as rows (meter, name, effective_us 0, unset amounts
                                 -1), models then routes then tools, in file order; the
                                 price book's config defaults (meter/price.h) */
    size_t nprices;
    char *store; /* "sqlite:PATH" or "postgres://...", default sqlite:./tollgate.db */
    struct {
        char *access;                   /* "stdout", "off", or a file path; default stdout */
        char *level;                    /* debug|info|warn|error; default info */
        int unauthenticated_per_minute; /* 401s recorded one by one per client address
                                           and minute, the rest aggregated; default 100 */
    } log;
    struct {
        int events_days;     /* default 90; 0 = keep forever */
        int aggregates_days; /* default 730; 0 = keep forever */
        int audit_days;      /* retention.audit (issue 14); default 0 = keep forever */
    } retention;
    int audit_bodies;      /* audit.bodies: TG_BODIES_NONE, _HASH or _ENCRYPT (docs/audit.md) */
    size_t audit_max_body; /* audit.max_body: bytes of each body kept by encrypt (default
                              256 KiB; past it the first max_body bytes, flagged truncated) */
    struct {
        long drain_after_disconnect_ms; /* ai.drain_after_disconnect: how long the upstream of
                                           a 2xx AI answer is still read for its usage once
                                           the client left; default 30000; 0 = not at all
                                           (the answer is charged on an estimate at once) */
    } ai;
    struct {
        size_t queue_size; /* events, default 65536 */
        long flush_ms;     /* default 50 */
        char *spool;       /* append-only file when the store cannot be written;
                              default: the sqlite path + ".spool", else
                              ./tollgate.spool */
    } recorder;
    struct {
        int max_tenants; /* metrics.max_tenants: tenants with label values of their own on
                            /metrics, the rest summed as "_other"; default 1000, 1..1000000 */
        int max_models;  /* metrics.max_models, the same for models; default 200 */
        int max_tools;   /* metrics.max_tools, the same for MCP tools; default 200 */
    } metrics;
    tg_upstream_conf_t *upstreams;
    size_t nupstreams;
    tg_route_conf_t *routes;
    size_t nroutes;
    tg_alarm_conf_t *alarms; /* alarms: in file order */
    size_t nalarms;
    long alarms_interval_ms;   /* alarms_interval: how often the rules are evaluated;
                                  default 10 s */
    tg_action_conf_t *actions; /* actions: in file order */
    size_t nactions;
    tg_notifier_conf_t *notifiers; /* notify: in file order */
    size_t nnotifiers;
    struct {
        long min_ms;     /* notify_retry.min: the first retry's wait, default 1000 */
        long max_ms;     /* notify_retry.max: the longest wait between tries, default 60000,
                            at most 10 minutes (a receiver back from an outage gets everything
                            within this) */
        long give_up_ms; /* notify_retry.give_up: a delivery still failing this long after
                            the notice was stored is marked failed; default 24 h */
    } notify_retry;
    /* ---- issue 14: keys (signed requests, the KEK) ---- */
    struct {
        char *kek_file; /* encryption.kek_file (read at load; its text never kept) */
        char *kek_env;  /* encryption.kek_env: the variable's name */
        int has_kek;    /* one of them gave a valid KEK */
        tg_kek_t kek;   /* wiped when the config is freed; a change takes effect on restart */
    } encryption;
    struct {
        long window_ms;          /* signing.window: X-Tollgate-Timestamp this far from the
                                    gateway's clock either way; default 300 s, 1 s..1 h */
        size_t replay_cache;     /* signing.replay_cache: signatures remembered within the
                                    window, default 100000 (auth/replay.h) */
        char **required_tenants; /* signing.required_tenants: these sign on every route */
        size_t nrequired_tenants;
    } signing;
} tg_config_t;

/* Loads and validates path. On error returns -1 and fills err with
 * "FILE:LINE: KEY: problem". The result has refs == 1. A server.admin_token_file is read
 * here too (and so again on every reload). */
int tg_config_load(const char *path, tg_config_t **out, tg_err_t *err);
/* Same, from a string (name is used in messages). */
int tg_config_parse(const char *name, const char *text, size_t len, tg_config_t **out,
                    tg_err_t *err);

tg_config_t *tg_config_ref(tg_config_t *c);
void tg_config_unref(tg_config_t *c); /* frees at zero */

/* The route whose path_prefix is the longest prefix of path ending on a segment
 * boundary, or NULL: "/v1/messages" matches "/v1/messages", "/v1/messages/x" and
 * "/v1/messages?q", never "/v1/messagesX"; a prefix ending in "/" ("/v1/") matches
 * what lies beneath it but not "/v1" itself. path is the canonical one (target.h). */
const tg_route_conf_t *tg_config_route(const tg_config_t *c, const char *path, size_t len);

const char *tg_route_kind_name(tg_route_kind_t k);

/* The auth methods (TG_AUTH_*) that apply to route (NULL: no route matched: the global). */
static inline unsigned tg_config_auth(const tg_config_t *c, const tg_route_conf_t *route)
{
    return route && route->auth ? route->auth : c->auth;
}
/* Whether tenant is in signing.required_tenants. */
int tg_config_tenant_signs(const tg_config_t *c, const char *tenant);
/* "quota", "error_rate", "latency", "spend_rate", "queue". */
const char *tg_alarm_kind_name(tg_alarm_kind_t k);

/* Admin tokens: at least TG_ADMIN_TOKEN_MIN bytes (16: 128 bits as hex, what a guess cannot
 * reach), at most TG_ADMIN_TOKEN_MAX, visible ASCII without spaces (a header value). */
#define TG_ADMIN_TOKEN_MIN 16
#define TG_ADMIN_TOKEN_MAX 1024

const char *tg_notifier_type_name(tg_notifier_type_t t); /* "webhook", ... */

/* The config path from -c, else $TOLLGATE_CONFIG, else ./tollgate.yaml. */
const char *tg_config_default_path(const char *flag);

#endif
