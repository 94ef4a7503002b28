/* The store's schema, as numbered migrations: see migrations.h.
 *
 * Conventions for every table:
 *   - times are INTEGER Unix microseconds (UTC), columns suffixed _us;
 *   - money is INTEGER micro-USD (cost_micros), never REAL;
 *   - days are TEXT 'YYYY-MM-DD' in UTC, which sort and compare as dates;
 *   - an optional text value is NULL when absent, not '' (tenant is the one
 *     exception: '' is the unauthenticated caller, a real grouping key).
 * The comments inside CREATE TABLE are kept by SQLite, so `sqlite3 tollgate.db
 * .schema` shows them too. */
#include "store/migrations.h"

const char tg_store_migrations_bootstrap[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "  version    INTEGER PRIMARY KEY, -- migration number, see migrations.c\n"
    "  name       TEXT NOT NULL,       -- its short description\n"
    "  applied_us INTEGER NOT NULL     -- when it was applied\n"
    ");\n";

static const char m1_core[] =
    /* Small facts about the store itself, one row per key. */
    "CREATE TABLE meta (\n"
    "  key   TEXT PRIMARY KEY, -- 'auth_version': see below\n"
    "  value INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    /* auth_version is bumped in the same transaction as every change to
     * tenants or api_keys, by any process; the gateway polls it (one indexed
     * read) and reloads its keyring when it moves. PRAGMA data_version would
     * also move on every event insert, so it cannot tell the two apart. */
    "INSERT INTO meta (key, value) VALUES ('auth_version', 1);\n"

    "CREATE TABLE tenants (\n"
    "  id         TEXT PRIMARY KEY, -- 1-63 chars of [A-Za-z0-9._-], chosen by the operator\n"
    "  name       TEXT NOT NULL DEFAULT '', -- display name, free text\n"
    "  status     TEXT NOT NULL DEFAULT 'active'\n"
    "             CHECK (status IN ('active', 'disabled')), -- disabled: every key refused\n"
    "  created_us INTEGER NOT NULL  -- when the tenant was added\n"
    ");\n"

    "CREATE TABLE api_keys (\n"
    "  id           TEXT PRIMARY KEY, -- public key id, 'key_' + 16 hex\n"
    "  tenant_id    TEXT NOT NULL REFERENCES tenants (id), -- owner\n"
    "  sha256       BLOB NOT NULL UNIQUE CHECK (length(sha256) = 32), -- SHA-256 of the\n"
    "                                 -- secret; the secret itself is never stored\n"
    "  prefix       TEXT NOT NULL,    -- first 8 chars of the secret, for display\n"
    "  name         TEXT NOT NULL DEFAULT '', -- operator's label for the key\n"
    "  status       TEXT NOT NULL DEFAULT 'active'\n"
    "               CHECK (status IN ('active', 'revoked')), -- revoked is final\n"
    "  created_us   INTEGER NOT NULL, -- when the key was created\n"
    "  last_used_us INTEGER           -- last authenticated request; NULL = never\n"
    ");\n"
    "CREATE INDEX api_keys_tenant ON api_keys (tenant_id);\n"

    /* One row per request, accepted or rejected: the source of truth that
     * every report is derived from. The outcome CHECK is spelled with OR: an
     * IN list of three makes SQLite build a temporary b-tree on every insert,
     * which more than halved the insert rate. No foreign key to tenants: events of the
     * unauthenticated ('') and of since-removed tenants must be kept, and a
     * check per insert would cost the writer. One secondary index only,
     * because every index is paid for on every insert. */
    "CREATE TABLE usage_events (\n"
    "  id            INTEGER PRIMARY KEY, -- tg_event_new_id(): time-ordered, unique;\n"
    "                                     -- a replayed batch is skipped by it\n"
    "  ts_us         INTEGER NOT NULL, -- wall clock at request start\n"
    "  tenant        TEXT NOT NULL,    -- tenant id; '' when unauthenticated\n"
    "  key_id        TEXT,             -- api_keys.id used, NULL when none\n"
    "  route         TEXT,             -- route name, NULL when no route matched\n"
    "  method        TEXT NOT NULL,    -- HTTP method as received\n"
    "  path          TEXT NOT NULL,    -- request path (first 255 bytes)\n"
    "  status        INTEGER NOT NULL, -- HTTP status sent to the client\n"
    "  outcome       TEXT NOT NULL     -- 'billable', 'failed' or 'rejected': see DESIGN.md\n"
    "                CHECK (outcome = 'billable' OR outcome = 'failed' OR outcome = 'rejected'),\n"
    "  reason        TEXT,             -- why failed/rejected ('no_route', ...), else NULL\n"
    "  latency_us    INTEGER NOT NULL, -- request start to last byte sent (monotonic)\n"
    "  bytes_in      INTEGER NOT NULL, -- request body bytes from the client\n"
    "  bytes_out     INTEGER NOT NULL, -- response body bytes to the client\n"
    "  model         TEXT,             -- AI model named by the request or response\n"
    "  tokens_in     INTEGER,          -- input tokens; NULL = unknown\n"
    "  tokens_out    INTEGER,          -- output tokens; NULL = unknown\n"
    "  tokens_cached INTEGER,          -- cached input tokens; NULL = unknown\n"
    "  tool          TEXT,             -- MCP tool called\n"
    "  cost_micros   INTEGER NOT NULL, -- price of this request, micro-USD (0 if not billable)\n"
    "  cache         TEXT,             -- cache status, e.g. 'hit', 'miss'\n"
    "  client_ip     TEXT,             -- peer address\n"
    "  request_id    TEXT,             -- x-request-id sent upstream\n"
    "  upstream      TEXT              -- target URL the request went to\n"
    ");\n"
    "CREATE INDEX usage_events_tenant_ts ON usage_events (tenant, ts_us);\n"

    /* Per tenant and UTC day, updated in the same transaction as the events
     * it counts, so it always equals an aggregate over usage_events (until the
     * events are purged: aggregates are kept longer). */
    "CREATE TABLE usage_daily (\n"
    "  tenant_id   TEXT NOT NULL,    -- as usage_events.tenant ('' = unauthenticated)\n"
    "  day         TEXT NOT NULL,    -- 'YYYY-MM-DD', UTC, of the events' ts_us\n"
    "  requests    INTEGER NOT NULL DEFAULT 0, -- all events\n"
    "  billable    INTEGER NOT NULL DEFAULT 0, -- outcome 'billable'\n"
    "  failed      INTEGER NOT NULL DEFAULT 0, -- outcome 'failed'\n"
    "  rejected    INTEGER NOT NULL DEFAULT 0, -- outcome 'rejected'\n"
    "  bytes_in    INTEGER NOT NULL DEFAULT 0, -- sum of bytes_in\n"
    "  bytes_out   INTEGER NOT NULL DEFAULT 0, -- sum of bytes_out\n"
    "  tokens_in   INTEGER NOT NULL DEFAULT 0, -- sum of known tokens_in\n"
    "  tokens_out  INTEGER NOT NULL DEFAULT 0, -- sum of known tokens_out\n"
    "  cost_micros INTEGER NOT NULL DEFAULT 0, -- sum of cost_micros\n"
    "  PRIMARY KEY (tenant_id, day)\n"
    ") WITHOUT ROWID;\n";

/* Admission policy (the limits issue): rate limits, concurrency caps, pauses
 * (the kill switch) and IP rules. The gateway holds all of it in memory and
 * reloads it when meta.policy_version moves, so these tables are read whole,
 * rarely, and need no secondary index. tenant_id has no foreign key to
 * tenants: '*' (every tenant) is not a tenant row, and the CLI checks that a
 * named tenant exists before it writes. */
static const char m2_policy[] =
    /* Bumped in the same transaction as every change to limits, pauses or
     * ip_rules, by any process; the gateway polls it like auth_version. */
    "INSERT INTO meta (key, value) VALUES ('policy_version', 1);\n"

    /* One row per (tenant, scope, value). A tenant-scope row replaces the
     * config's defaults.limits for that tenant, rate and concurrency alike.
     * Rates are integers per whole period, never a REAL requests/second. */
    "CREATE TABLE limits (\n"
    "  tenant_id   TEXT NOT NULL,     -- tenants.id ('*' is reserved for every tenant)\n"
    "  scope       TEXT NOT NULL      -- what is counted: 'tenant' (all its requests),\n"
    "              CHECK (scope IN ('tenant', 'route', 'tool', 'key')), -- or one route,\n"
    "                                 -- tool or key of the tenant\n"
    "  value       TEXT NOT NULL DEFAULT '', -- route name, tool name or api_keys.id;\n"
    "                                 -- '' for scope 'tenant'\n"
    "  requests    INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0), -- requests admitted per\n"
    "                                 -- period; 0 with a period = refuse every request\n"
    "  period_s    INTEGER NOT NULL DEFAULT 0 -- 1, 60 or 3600 (--rps, --rpm, --rph);\n"
    "              CHECK (period_s IN (0, 1, 60, 3600)), -- 0 = no rate limit in this row\n"
    "  burst       INTEGER NOT NULL DEFAULT 0 CHECK (burst >= 0), -- requests admitted at\n"
    "                                 -- once from idle; 0 = the same as requests\n"
    "  concurrency INTEGER NOT NULL DEFAULT 0 CHECK (concurrency >= 0), -- in-flight cap,\n"
    "                                 -- scope 'tenant' only; 0 = none\n"
    "  updated_us  INTEGER NOT NULL,  -- when the row was last set\n"
    "  PRIMARY KEY (tenant_id, scope, value),\n"
    "  CHECK ((scope = 'tenant') = (value = '')),\n"
    "  CHECK (period_s > 0 OR requests = 0),\n"
    "  CHECK (concurrency = 0 OR scope = 'tenant')\n"
    ") WITHOUT ROWID;\n"

    /* A row is a pause in force; resuming deletes it. */
    "CREATE TABLE pauses (\n"
    "  tenant_id  TEXT PRIMARY KEY, -- tenants.id, or '*' = every request, any tenant\n"
    "  reason     TEXT NOT NULL DEFAULT '', -- operator's text, sent in the 503 answer\n"
    "  created_us INTEGER NOT NULL  -- when the pause began (a re-pause keeps it)\n"
    ") WITHOUT ROWID;\n"

    /* Deny wins over allow; an allow list, once it has an entry, admits only
     * the addresses it matches (src/policy/iprules.h). */
    "CREATE TABLE ip_rules (\n"
    "  tenant_id  TEXT NOT NULL,    -- tenants.id, or '*' = every tenant (global)\n"
    "  action     TEXT NOT NULL CHECK (action IN ('allow', 'deny')), -- what a match means\n"
    "  cidr       TEXT NOT NULL,    -- normalized by the CLI ('10.0.0.0/8', '2001:db8::/32'),\n"
    "                               -- so one network has one spelling\n"
    "  created_us INTEGER NOT NULL, -- when the rule was added\n"
    "  PRIMARY KEY (tenant_id, action, cidr)\n"
    ") WITHOUT ROWID;\n";

const tg_migration_t tg_store_migrations[] = {
    {1, "tenants, api_keys, usage_events, usage_daily", m1_core},
    {2, "limits, pauses, ip_rules, policy_version", m2_policy},
};

const size_t tg_store_nmigrations = sizeof tg_store_migrations / sizeof tg_store_migrations[0];
