/* The store's schema in both dialects, written once: included twice by migrations.c, which
 * defines the dialect's words first (see there). Conventions for every table:
 *   - times are INTEGER Unix microseconds (UTC), columns suffixed _us;
 *   - money is INTEGER micro-USD (cost_micros), never REAL;
 *   - days are TEXT 'YYYY-MM-DD' in UTC, which sort and compare as dates;
 *   - an optional text value is NULL when absent, not '' (tenant is the one
 *     exception: '' is the unauthenticated caller, a real grouping key).
 * The comments inside CREATE TABLE are kept by SQLite, so `sqlite3 tollgate.db
 * .schema` shows them too (PostgreSQL accepts and drops them).
 *
 * The SQLite text of a released migration never changes, byte for byte (their SHA-256
 * are in tests/unit/store/test_migrations.c); test_migrations_pg.c there compares the
 * schemas the two dialects build. No include guard: included once per
 * dialect. clang-format is off: it cannot lay out string literals interleaved with the
 * dialect's macros, and this is data, laid out as SQL. */

// clang-format off
const char BOOTSTRAP[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "  version    " SQL_INT " PRIMARY KEY, -- migration number, see migrations.c\n"
    "  name       TEXT NOT NULL,       -- its short description\n"
    "  applied_us " SQL_INT " NOT NULL     -- when it was applied\n"
    ");\n";

static const char DIALECT(m1_core)[] =
    /* Small facts about the store itself, one row per key. */
    "CREATE TABLE meta (\n"
    "  key   TEXT PRIMARY KEY, -- 'auth_version': see below\n"
    "  value " SQL_INT " NOT NULL\n"
    ")" SQL_NO_ROWID ";\n"
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
    "  created_us " SQL_INT " NOT NULL  -- when the tenant was added\n"
    ");\n"

    "CREATE TABLE api_keys (\n"
    "  id           TEXT PRIMARY KEY, -- public key id, 'key_' + 16 hex\n"
    "  tenant_id    TEXT NOT NULL REFERENCES tenants (id), -- owner\n"
    "  sha256       " SQL_BLOB " NOT NULL UNIQUE CHECK (" SQL_OCTETS "(sha256) = 32),"
    " -- SHA-256 of the\n"
    "                                 -- secret; the secret itself is never stored\n"
    "  prefix       TEXT NOT NULL,    -- first 8 chars of the secret, for display\n"
    "  name         TEXT NOT NULL DEFAULT '', -- operator's label for the key\n"
    "  status       TEXT NOT NULL DEFAULT 'active'\n"
    "               CHECK (status IN ('active', 'revoked')), -- revoked is final\n"
    "  created_us   " SQL_INT " NOT NULL, -- when the key was created\n"
    "  last_used_us " SQL_INT "           -- last authenticated request; NULL = never\n"
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
    "  id            " SQL_INT " PRIMARY KEY, -- tg_event_new_id(): time-ordered, unique;\n"
    "                                     -- a replayed batch is skipped by it\n"
    "  ts_us         " SQL_INT " NOT NULL, -- wall clock at request start\n"
    "  tenant        TEXT NOT NULL,    -- tenant id; '' when unauthenticated\n"
    "  key_id        TEXT,             -- api_keys.id used, NULL when none\n"
    "  route         TEXT,             -- route name, NULL when no route matched\n"
    "  method        TEXT NOT NULL,    -- HTTP method as received\n"
    "  path          TEXT NOT NULL,    -- request path (first 255 bytes)\n"
    "  status        " SQL_INT " NOT NULL, -- HTTP status sent to the client\n"
    "  outcome       TEXT NOT NULL     -- 'billable', 'failed' or 'rejected': see DESIGN.md\n"
    "                CHECK (outcome = 'billable' OR outcome = 'failed' OR outcome = 'rejected'),\n"
    "  reason        TEXT,             -- why failed/rejected ('no_route', ...), else NULL\n"
    "  latency_us    " SQL_INT " NOT NULL, -- request start to last byte sent (monotonic)\n"
    "  bytes_in      " SQL_INT " NOT NULL, -- request body bytes from the client\n"
    "  bytes_out     " SQL_INT " NOT NULL, -- response body bytes to the client\n"
    "  model         TEXT,             -- AI model named by the request or response\n"
    "  tokens_in     " SQL_INT ",          -- input tokens; NULL = unknown\n"
    "  tokens_out    " SQL_INT ",          -- output tokens; NULL = unknown\n"
    "  tokens_cached " SQL_INT ",          -- cached input tokens; NULL = unknown\n"
    "  tool          TEXT,             -- MCP tool called\n"
    "  cost_micros   " SQL_INT " NOT NULL,"
    " -- price of this request, micro-USD (0 if not billable)\n"
    "  cache         TEXT,             -- cache status, e.g. 'hit', 'miss'\n"
    "  client_ip     TEXT,             -- peer address\n"
    "  request_id    TEXT,             -- x-request-id sent upstream\n"
    "  upstream      TEXT              -- target URL the request went to\n"
    ")" PG_ONLY(" PARTITION BY RANGE (id)") ";\n"
    "CREATE INDEX usage_events_tenant_ts ON usage_events (tenant, ts_us);\n"
    /* PostgreSQL: usage_events is partitioned by month of its id, so retention drops a
     * month's partition instead of deleting its rows. An id is (milliseconds since
     * 2020-01-01 UTC) << 22 | 22 low bits (tg_event_new_id, from the event's ts_us), so a
     * range of ids is a range of time: month M holds [ms(M) << 22, ms(M + 1) << 22). There
     * is no DEFAULT partition (it would have to be scanned, and emptied, before each new
     * month could be created): the writer calls tg_usage_partition() for every month a
     * batch touches before inserting it; a row of a month without a partition is refused
     * (23514), never lost silently. Events before 2020 (a wrong clock) have negative ids. */
    PG_ONLY(
        "CREATE TABLE usage_events_pre2020 PARTITION OF usage_events\n"
        "  FOR VALUES FROM (MINVALUE) TO (0);\n"
        /* The first id of a UTC instant (a timestamp without time zone read as UTC). */
        "CREATE FUNCTION tg_usage_id_at(t timestamp) RETURNS bigint\n"
        "  LANGUAGE sql IMMUTABLE STRICT AS $$\n"
        "  SELECT CAST(extract(epoch FROM t - timestamp '2020-01-01') * 1000 AS bigint) << 22\n"
        "$$;\n"
        /* Creates the partition of the UTC month holding at_us if it is missing and
         * answers its name. Two processes may race to create a month: the creation is
         * serialized by an advisory lock (key 'tollgate' in ASCII, held to the end of the
         * caller's transaction, so call it in a short transaction of its own, ahead of
         * time), the check before the lock keeps the common case lock-free. */
        "CREATE FUNCTION tg_usage_partition(at_us bigint) RETURNS text\n"
        "  LANGUAGE plpgsql STRICT AS $$\n"
        "DECLARE\n"
        "  m timestamp := date_trunc('month',\n"
        "    to_timestamp(floor(at_us / 1000000.0)) AT TIME ZONE 'UTC');\n"
        "  part text := 'usage_events_' || to_char(m, 'YYYYMM');\n"
        "BEGIN\n"
        "  IF m < timestamp '2020-01-01' THEN\n"
        "    RETURN 'usage_events_pre2020';\n"
        "  END IF;\n"
        "  IF to_regclass(part) IS NULL THEN\n"
        "    PERFORM pg_advisory_xact_lock(8390043843661231205);\n"
        "    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF usage_events'\n"
        "      ' FOR VALUES FROM (%s) TO (%s)', part, tg_usage_id_at(m),\n"
        "      tg_usage_id_at(m + interval '1 month'));\n"
        "  END IF;\n"
        "  RETURN part;\n"
        "END\n"
        "$$;\n"
        /* Retention: drops every monthly partition whose ids all lie before the first id
         * of cutoff_us and answers how many rows they held. usage_daily keeps the
         * totals; usage_events_pre2020 is kept (it is where pre-2020 rows go). */
        "CREATE FUNCTION tg_usage_drop_before(cutoff_us bigint) RETURNS bigint\n"
        "  LANGUAGE plpgsql STRICT AS $$\n"
        "DECLARE\n"
        "  cutoff bigint;\n"
        "  p record;\n"
        "  n bigint;\n"
        "  total bigint := 0;\n"
        "BEGIN\n"
        "  IF cutoff_us < 1577836800000000 THEN\n"
        "    RETURN 0;\n"
        "  END IF;\n"
        "  cutoff := (floor(cutoff_us / 1000.0)::bigint - 1577836800000) << 22;\n"
        "  PERFORM pg_advisory_xact_lock(8390043843661231205);\n"
        "  FOR p IN SELECT c.oid::regclass AS part, CAST(substring(pg_get_expr(c.relpartbound,\n"
        "      c.oid) FROM 'TO \\(''?(-?[0-9]+)''?\\)') AS bigint) AS hi\n"
        "    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid\n"
        "    WHERE i.inhparent = 'usage_events'::regclass AND c.relname <> 'usage_events_pre2020'\n"
        "  LOOP\n"
        "    CONTINUE WHEN p.hi IS NULL OR p.hi > cutoff;\n"
        "    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', p.part);\n"
        "    EXECUTE format('SELECT count(*) FROM %s', p.part) INTO n;\n"
        "    EXECUTE format('DROP TABLE %s', p.part);\n"
        "    total := total + n;\n"
        "  END LOOP;\n"
        "  RETURN total;\n"
        "END\n"
        "$$;\n")

    /* Per tenant and UTC day, updated in the same transaction as the events
     * it counts, so it always equals an aggregate over usage_events (until the
     * events are purged: aggregates are kept longer). */
    "CREATE TABLE usage_daily (\n"
    "  tenant_id   TEXT NOT NULL,    -- as usage_events.tenant ('' = unauthenticated)\n"
    "  day         TEXT NOT NULL,    -- 'YYYY-MM-DD', UTC, of the events' ts_us\n"
    "  requests    " SQL_INT " NOT NULL DEFAULT 0, -- all events\n"
    "  billable    " SQL_INT " NOT NULL DEFAULT 0, -- outcome 'billable'\n"
    "  failed      " SQL_INT " NOT NULL DEFAULT 0, -- outcome 'failed'\n"
    "  rejected    " SQL_INT " NOT NULL DEFAULT 0, -- outcome 'rejected'\n"
    "  bytes_in    " SQL_INT " NOT NULL DEFAULT 0, -- sum of bytes_in\n"
    "  bytes_out   " SQL_INT " NOT NULL DEFAULT 0, -- sum of bytes_out\n"
    "  tokens_in   " SQL_INT " NOT NULL DEFAULT 0, -- sum of known tokens_in\n"
    "  tokens_out  " SQL_INT " NOT NULL DEFAULT 0, -- sum of known tokens_out\n"
    "  cost_micros " SQL_INT " NOT NULL DEFAULT 0, -- sum of cost_micros\n"
    "  PRIMARY KEY (tenant_id, day)\n"
    ")" SQL_NO_ROWID ";\n";

/* Admission policy (the limits issue): rate limits, concurrency caps, pauses
 * (the kill switch) and IP rules. The gateway holds all of it in memory and
 * reloads it when meta.policy_version moves, so these tables are read whole,
 * rarely, and need no secondary index. tenant_id has no foreign key to
 * tenants: '*' (every tenant) is not a tenant row, and the CLI checks that a
 * named tenant exists before it writes. */
static const char DIALECT(m2_policy)[] =
    /* Bumped in the same transaction as every change to limits, pauses or
     * ip_rules (and, from migration 3, prices, budgets and tool_rules), by any
     * process; the gateway polls it like auth_version. */
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
    "  requests    " SQL_INT " NOT NULL DEFAULT 0 CHECK (requests >= 0), -- requests admitted per\n"
    "                                 -- period; 0 with a period = refuse every request\n"
    "  period_s    " SQL_INT " NOT NULL DEFAULT 0 -- 1, 60 or 3600 (--rps, --rpm, --rph);\n"
    "              CHECK (period_s IN (0, 1, 60, 3600)), -- 0 = no rate limit in this row\n"
    "  burst       " SQL_INT " NOT NULL DEFAULT 0 CHECK (burst >= 0), -- requests admitted at\n"
    "                                 -- once from idle; 0 = the same as requests\n"
    "  concurrency " SQL_INT " NOT NULL DEFAULT 0 CHECK (concurrency >= 0), -- in-flight cap,\n"
    "                                 -- scope 'tenant' only; 0 = none\n"
    "  updated_us  " SQL_INT " NOT NULL,  -- when the row was last set\n"
    "  PRIMARY KEY (tenant_id, scope, value),\n"
    "  CHECK ((scope = 'tenant') = (value = '')),\n"
    "  CHECK (period_s > 0 OR requests = 0),\n"
    "  CHECK (concurrency = 0 OR scope = 'tenant')\n"
    ")" SQL_NO_ROWID ";\n"

    /* A row is a pause in force; resuming deletes it. */
    "CREATE TABLE pauses (\n"
    "  tenant_id  TEXT PRIMARY KEY, -- tenants.id, or '*' = every request, any tenant\n"
    "  reason     TEXT NOT NULL DEFAULT '', -- operator's text, sent in the 503 answer\n"
    "  created_us " SQL_INT " NOT NULL  -- when the pause began (a re-pause keeps it)\n"
    ")" SQL_NO_ROWID ";\n"

    /* Deny wins over allow; an allow list, once it has an entry, admits only
     * the addresses it matches (src/policy/iprules.h). */
    "CREATE TABLE ip_rules (\n"
    "  tenant_id  TEXT NOT NULL,    -- tenants.id, or '*' = every tenant (global)\n"
    "  action     TEXT NOT NULL CHECK (action IN ('allow', 'deny')), -- what a match means\n"
    "  cidr       TEXT NOT NULL,    -- normalized by the CLI ('10.0.0.0/8', '2001:db8::/32'),\n"
    "                               -- so one network has one spelling\n"
    "  created_us " SQL_INT " NOT NULL, -- when the rule was added\n"
    "  PRIMARY KEY (tenant_id, action, cidr)\n"
    ")" SQL_NO_ROWID ";\n";

/* AI metering (the pricing and budgets issue): what a model call used and cost, token
 * limits, prices, budgets and their alerts, and per-tenant MCP tool rules. Prices, budgets
 * and tool_rules are policy like limits: every change bumps meta.policy_version in the same
 * transaction, and a running gateway reloads them when it moves. */
static const char DIALECT(m3_metering)[] =
    /* usage_events can hold millions of rows, so it is altered, not rebuilt: the new
     * columns are NULL in the rows already there, which is what "unknown" means for
     * each. SQLite appends a column's text to the CREATE TABLE that .schema shows, up
     * to its last token: the comments therefore stand inside the definitions. */
    "ALTER TABLE usage_events ADD COLUMN tokens_cache_write /* cache-creation input\n"
    "  tokens (Anthropic); NULL = unknown */ " SQL_INT ";\n"
    "ALTER TABLE usage_events ADD COLUMN rpc_method /* MCP: the JSON-RPC method (of the\n"
    "  first request of a batch), else NULL */ TEXT;\n"
    "ALTER TABLE usage_events ADD COLUMN price_flag /* how cost_micros was found:\n"
    "  'fallback' (the model '*' price), 'unpriced', 'tokens_unknown'; NULL = by its own\n"
    "  price, or nothing to price */ TEXT;\n"

    /* usage_daily is small (tenants x days) and rebuilt, like limits below, so its one
     * CREATE TABLE stays readable. tokens_cached of the rows copied is the sum over the
     * events still stored, which keeps "equal to a sum over usage_events" true; a day
     * whose events are purged gets 0 (no writer recorded cached tokens before this
     * migration anyway). */
    "ALTER TABLE usage_daily RENAME TO usage_daily_v2;\n"
    /* PostgreSQL names a primary key's index after the table, once, in the schema's one
     * namespace of relations: the old one must move out of the new table's way. */
    PG_ONLY("ALTER INDEX usage_daily_pkey RENAME TO usage_daily_v2_pkey;\n")
    "CREATE TABLE usage_daily (\n"
    "  tenant_id     TEXT NOT NULL,    -- as usage_events.tenant ('' = unauthenticated)\n"
    "  day           TEXT NOT NULL,    -- 'YYYY-MM-DD', UTC, of the events' ts_us\n"
    "  requests      " SQL_INT " NOT NULL DEFAULT 0, -- all events\n"
    "  billable      " SQL_INT " NOT NULL DEFAULT 0, -- outcome 'billable'\n"
    "  failed        " SQL_INT " NOT NULL DEFAULT 0, -- outcome 'failed'\n"
    "  rejected      " SQL_INT " NOT NULL DEFAULT 0, -- outcome 'rejected'\n"
    "  bytes_in      " SQL_INT " NOT NULL DEFAULT 0, -- sum of bytes_in\n"
    "  bytes_out     " SQL_INT " NOT NULL DEFAULT 0, -- sum of bytes_out\n"
    "  tokens_in     " SQL_INT " NOT NULL DEFAULT 0, -- sum of known tokens_in\n"
    "  tokens_out    " SQL_INT " NOT NULL DEFAULT 0, -- sum of known tokens_out\n"
    "  cost_micros   " SQL_INT " NOT NULL DEFAULT 0, -- sum of cost_micros\n"
    "  tokens_cached " SQL_INT " NOT NULL DEFAULT 0, -- sum of known tokens_cached\n"
    "  PRIMARY KEY (tenant_id, day)\n"
    ")" SQL_NO_ROWID ";\n"
    "INSERT INTO usage_daily (tenant_id, day, requests, billable, failed, rejected, bytes_in,\n"
    "  bytes_out, tokens_in, tokens_out, cost_micros, tokens_cached)\n"
    "  SELECT d.tenant_id, d.day, d.requests, d.billable, d.failed, d.rejected, d.bytes_in,\n"
    "  d.bytes_out, d.tokens_in, d.tokens_out, d.cost_micros,\n"
    "  (SELECT coalesce(sum(e.tokens_cached), 0) FROM usage_events e\n"
    "   WHERE e.tenant = d.tenant_id AND e.tokens_cached > 0\n"
    "   AND e.ts_us >= " SQL_DAY_EPOCH_S("d.day") " * 1000000\n"
    "   AND e.ts_us < (" SQL_DAY_EPOCH_S("d.day") " + 86400) * 1000000)\n"
    "  FROM usage_daily_v2 d;\n"
    "DROP TABLE usage_daily_v2;\n"

    /* SQLite cannot change a CHECK in place: limits is rebuilt (a new table under the
     * old name, the rows copied over), so .schema shows one clean definition. Nothing
     * refers to limits (no foreign key, view or trigger), so the rename is safe. */
    "ALTER TABLE limits RENAME TO limits_v2;\n"
    PG_ONLY("ALTER INDEX limits_pkey RENAME TO limits_v2_pkey;\n")
    "CREATE TABLE limits (\n"
    "  tenant_id   TEXT NOT NULL,     -- tenants.id ('*' is reserved for every tenant)\n"
    "  scope       TEXT NOT NULL      -- what is counted: 'tenant' (all its requests),\n"
    "              CHECK (scope IN ('tenant', 'route', 'tool', 'key', 'model')), -- or\n"
    "                                 -- one route, tool, key or model of the tenant\n"
    "  value       TEXT NOT NULL DEFAULT '', -- route name, tool name, api_keys.id or\n"
    "                                 -- model as requested; '' for scope 'tenant'\n"
    "  requests    " SQL_INT " NOT NULL DEFAULT 0 CHECK (requests >= 0), -- requests admitted per\n"
    "                                 -- period; 0 with a period = refuse every request\n"
    "  period_s    " SQL_INT " NOT NULL DEFAULT 0 -- 1, 60 or 3600 (--rps, --rpm, --rph);\n"
    "              CHECK (period_s IN (0, 1, 60, 3600)), -- 0 = no rate limit in this row\n"
    "  burst       " SQL_INT " NOT NULL DEFAULT 0 CHECK (burst >= 0), -- requests admitted at\n"
    "                                 -- once from idle; 0 = the same as requests\n"
    "  concurrency " SQL_INT " NOT NULL DEFAULT 0 CHECK (concurrency >= 0), -- in-flight cap,\n"
    "                                 -- scope 'tenant' only; 0 = none\n"
    "  tokens      " SQL_INT " NOT NULL DEFAULT 0 CHECK (tokens >= 0), -- tokens (input +\n"
    "                                 -- output) per tokens_period_s\n"
    "  tokens_period_s " SQL_INT " NOT NULL DEFAULT 0 -- 60 or 3600 (--tpm, --tph);\n"
    "              CHECK (tokens_period_s IN (0, 60, 3600)), -- 0 = no token limit\n"
    "  updated_us  " SQL_INT " NOT NULL,  -- when the row was last set\n"
    "  PRIMARY KEY (tenant_id, scope, value),\n"
    "  CHECK ((scope = 'tenant') = (value = '')),\n"
    "  CHECK (period_s > 0 OR requests = 0),\n"
    "  CHECK (tokens_period_s > 0 OR tokens = 0),\n"
    "  CHECK (concurrency = 0 OR scope = 'tenant')\n"
    ")" SQL_NO_ROWID ";\n"
    "INSERT INTO limits (tenant_id, scope, value, requests, period_s, burst, concurrency,\n"
    "  updated_us) SELECT tenant_id, scope, value, requests, period_s, burst, concurrency,\n"
    "  updated_us FROM limits_v2;\n"
    "DROP TABLE limits_v2;\n"

    /* Effective-dated prices (src/meter/price.h says which row applies to an event).
     * A row sets some amounts and leaves the others NULL, meaning "the config's value";
     * each meter has its own amounts (the CHECKs). Amounts are micro-USD, integers. */
    "CREATE TABLE prices (\n"
    "  meter        TEXT NOT NULL     -- what is priced: 'model' (tokens), 'route'\n"
    "               CHECK (meter IN ('model', 'route', 'tool')), -- (requests, bytes) or\n"
    "                                 -- 'tool' (MCP tools/call)\n"
    "  name         TEXT NOT NULL,    -- the model as requested, route name or tool name;\n"
    "                                 -- '*' = the fallback model, every route, every tool\n"
    "  effective_us " SQL_INT " NOT NULL, -- in force from this time on (until a later row)\n"
    "  input_micros       " SQL_INT " CHECK (input_micros >= 0),       -- per 1M input tokens\n"
    "  output_micros      " SQL_INT " CHECK (output_micros >= 0),      -- per 1M output tokens\n"
    "  cached_micros      " SQL_INT " CHECK (cached_micros >= 0),      -- per 1M cached input\n"
    "                                 -- tokens (cache reads); NULL = the input price\n"
    "  cache_write_micros " SQL_INT " CHECK (cache_write_micros >= 0), -- per 1M cache-write\n"
    "                                 -- tokens; NULL = the input price\n"
    "  request_micros     " SQL_INT " CHECK (request_micros >= 0),     -- per request\n"
    "  gb_micros          " SQL_INT " CHECK (gb_micros >= 0), -- per 10^9 body bytes, in + out\n"
    "  call_micros        " SQL_INT " CHECK (call_micros >= 0),        -- per tools/call\n"
    "  created_us   " SQL_INT " NOT NULL, -- when the row was written\n"
    "  PRIMARY KEY (meter, name, effective_us),\n"
    "  CHECK (meter = 'model' OR (input_micros IS NULL AND output_micros IS NULL\n"
    "         AND cached_micros IS NULL AND cache_write_micros IS NULL)),\n"
    "  CHECK (meter = 'route' OR (request_micros IS NULL AND gb_micros IS NULL)),\n"
    "  CHECK (meter = 'tool' OR call_micros IS NULL)\n"
    ")" SQL_NO_ROWID ";\n"

    /* A tenant's spend per UTC calendar month is the sum of usage_daily.cost_micros of
     * the month's days: no counter of its own to drift. */
    "CREATE TABLE budgets (\n"
    "  tenant_id      TEXT PRIMARY KEY, -- tenants.id\n"
    "  monthly_micros " SQL_INT " NOT NULL CHECK (monthly_micros > 0), -- budget per UTC\n"
    "                                 -- calendar month, micro-USD\n"
    "  hard           " SQL_INT " NOT NULL DEFAULT 1 CHECK (hard IN (0, 1)), -- 1: requests\n"
    "                                 -- refused (402) once it is spent; 0: alerts only\n"
    "  thresholds     TEXT NOT NULL DEFAULT '80,90,100', -- percents that fire an alert,\n"
    "                                 -- ascending, 1 to 1000, comma-separated\n"
    "  updated_us     " SQL_INT " NOT NULL  -- when the row was last set\n"
    ")" SQL_NO_ROWID ";\n"

    /* Alerts that fired. The UNIQUE key makes recording one idempotent: every process
     * that sees a crossing may insert it, the first one wins, the others change
     * nothing. Not policy: no version bump. */
    "CREATE TABLE alerts (\n"
    "  id            " SQL_ROWID_PK ", -- in firing order\n"
    "  kind          TEXT NOT NULL,    -- 'budget'\n"
    "  tenant_id     TEXT NOT NULL,    -- tenants.id\n"
    "  threshold     " SQL_INT " NOT NULL, -- percent of the budget crossed\n"
    "  period        TEXT NOT NULL,    -- 'YYYY-MM' (UTC) the spend belongs to\n"
    "  spend_micros  " SQL_INT " NOT NULL, -- spend of the period when it fired\n"
    "  budget_micros " SQL_INT " NOT NULL, -- the budget then\n"
    "  fired_us      " SQL_INT " NOT NULL, -- when it fired\n"
    "  UNIQUE (kind, tenant_id, threshold, period)\n"
    ");\n"

    /* MCP tool policy (deny wins; once a tenant has an allow pattern, only matching
     * tools are allowed). Patterns are fnmatch(3) globs, stored as given. */
    "CREATE TABLE tool_rules (\n"
    "  tenant_id  TEXT NOT NULL,    -- tenants.id, or '*' = every tenant\n"
    "  action     TEXT NOT NULL CHECK (action IN ('allow', 'deny')), -- what a match means\n"
    "  pattern    TEXT NOT NULL,    -- glob on the tool name, e.g. 'github_*'\n"
    "  created_us " SQL_INT " NOT NULL, -- when the rule was added\n"
    "  PRIMARY KEY (tenant_id, action, pattern)\n"
    ")" SQL_NO_ROWID ";\n";

/* Unauthenticated floods (issue 9): past log.unauthenticated_per_minute refusals without
 * a valid key from one address in one minute, the rest are one aggregate row (reason
 * 'unauthenticated_aggregate', ts_us = the minute's start) whose requests column says how
 * many refusals it stands for; every other row stands for one. usage_daily counts
 * requests, so reports stay exact: rows of usage_events summed by requests = requests.
 * The partial index finds the aggregates without scanning the events. */
static const char DIALECT(m4_flood)[] =
    "ALTER TABLE usage_events ADD COLUMN requests /* requests this row stands for: 1, or\n"
    "  N in an aggregate of refusals without a valid key (reason\n"
    "  'unauthenticated_aggregate') */ " SQL_INT " NOT NULL DEFAULT 1 CHECK (requests >= 1);\n"
    "CREATE INDEX usage_events_aggregates ON usage_events (ts_us)\n"
    "  WHERE reason = 'unauthenticated_aggregate';\n";

/* Alarms (issue 11): the state of each rule per tenant and every transition. Written by
 * the serving gateway's alarm timer (src/alarm/runner.c), read by `tollgate alarms`. Not
 * policy: no version bump. */
static const char DIALECT(m5_alarms)[] =
    "CREATE TABLE alarms (\n"
    "  name       TEXT NOT NULL,    -- alarms[].name in the config\n"
    "  tenant_id  TEXT NOT NULL,    -- tenants.id (or '_other', the tenants past\n"
    "                               -- metrics.max_tenants); '' = process-wide (queue)\n"
    "  kind       TEXT NOT NULL,    -- quota, error_rate, latency, spend_rate, queue\n"
    "  state      TEXT NOT NULL CHECK (state IN ('ok', 'pending', 'firing', 'resolved')),\n"
    "  value      " SQL_REAL " NOT NULL,    -- what was measured at the last evaluation stored\n"
    "                               -- (ratio, ms, micro-USD per hour)\n"
    "  threshold  " SQL_REAL " NOT NULL,    -- the level that fires then (baseline included)\n"
    "  baseline   " SQL_REAL " NOT NULL,    -- the tenant's own baseline then; 0 = none yet\n"
    "  since_us   " SQL_INT " NOT NULL, -- when it entered the state\n"
    "  started_us " SQL_INT " NOT NULL, -- when it last began firing; 0 = never\n"
    "  updated_us " SQL_INT " NOT NULL, -- when the row was last written\n"
    "  seq        " SQL_INT " NOT NULL, -- transitions so far: the notice ids' counter, kept\n"
    "                               -- so an id is never reused after a restart\n"
    "  action     TEXT NOT NULL DEFAULT '', -- what tollgate did and has not undone:\n"
    "                               -- 'throttle 0.5', 'pause' or ''\n"
    "  PRIMARY KEY (name, tenant_id)\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE alarm_events (\n"
    "  id         " SQL_ROWID_PK ", -- in the order stored\n"
    "  notice_id  TEXT NOT NULL UNIQUE, -- the notice's id, 'alarm/NAME/TENANT/SEQ'\n"
    "                               -- (TENANT '-' = process-wide): storing it twice\n"
    "                               -- changes nothing\n"
    "  name       TEXT NOT NULL,    -- alarms.name\n"
    "  tenant_id  TEXT NOT NULL,    -- alarms.tenant_id\n"
    "  kind       TEXT NOT NULL,    -- alarms.kind\n"
    "  from_state TEXT NOT NULL,    -- the state it left\n"
    "  to_state   TEXT NOT NULL,    -- the state it entered\n"
    "  value      " SQL_REAL " NOT NULL,    -- what was measured\n"
    "  threshold  " SQL_REAL " NOT NULL,    -- the level that fires\n"
    "  baseline   " SQL_REAL " NOT NULL,    -- the tenant's baseline; 0 = none\n"
    "  window_s   " SQL_INT " NOT NULL, -- the rule's window; 0 = none (quota, queue)\n"
    "  time_us    " SQL_INT " NOT NULL, -- when it happened\n"
    "  seq        " SQL_INT " NOT NULL, -- the transition's number for (name, tenant_id)\n"
    "  action     TEXT NOT NULL DEFAULT '', -- what tollgate did: 'throttle 0.5', 'pause',\n"
    "                               -- 'unthrottle', 'resume', or why it left a pause\n"
    "  summary    TEXT NOT NULL     -- one human sentence\n"
    ");\n"
    "CREATE INDEX alarm_events_tenant ON alarm_events (tenant_id, id);\n";

/* The notification outbox (issue 11, src/notify/): a notice is written here, with one
 * delivery row per configured notifier, before any send is tried; a delivery is marked
 * delivered only once its receiver accepted it, so a crash or restart loses none. The
 * notice's id is the primary key: a producer that adds the same notice again (a retry
 * after a crash, a second process crossing the same budget threshold) adds nothing.
 * Numbered 6: migration 5 is the alarm tables (written in parallel); the runner applies
 * what is above the database's version in list order and needs no consecutive numbers. */
static const char DIALECT(m6_outbox)[] =
    "CREATE TABLE outbox (\n"
    "  id         TEXT PRIMARY KEY, -- the notice's stable id ('budget/acme/2026-12/80')\n"
    "  kind       TEXT NOT NULL,    -- 'alarm' | 'budget' | 'test'\n"
    "  alarm      TEXT NOT NULL,    -- rule name ('budget' for budget thresholds)\n"
    "  alarm_kind TEXT NOT NULL,    -- quota, error_rate, latency, spend_rate, queue, budget\n"
    "  tenant_id  TEXT NOT NULL,    -- tenants.id; '' = process-wide\n"
    "  state      TEXT NOT NULL,    -- 'pending' | 'firing' | 'resolved'\n"
    "  severity   TEXT NOT NULL,    -- 'warning' | 'critical'\n"
    "  value      " SQL_REAL " NOT NULL,    -- what was measured\n"
    "  threshold  " SQL_REAL " NOT NULL,    -- what it was compared with\n"
    "  baseline   " SQL_REAL " NOT NULL,    -- the tenant's baseline then; 0 = none\n"
    "  window_s   " SQL_INT " NOT NULL, -- the rule's window in seconds; 0 = none\n"
    "  time_us    " SQL_INT " NOT NULL, -- when it happened\n"
    "  started_us " SQL_INT " NOT NULL, -- when the alarm started firing\n"
    "  summary    TEXT NOT NULL,    -- one human sentence\n"
    "  created_us " SQL_INT " NOT NULL  -- when it entered the outbox\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE outbox_deliveries (\n"
    "  notice_id  TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE, -- outbox.id\n"
    "  notifier   TEXT NOT NULL,    -- notify[].name (or TYPE-INDEX) it goes to\n"
    "  status     TEXT NOT NULL DEFAULT 'pending' -- pending: to send at next_us;\n"
    "             CHECK (status IN ('pending', 'delivered', 'failed')), -- failed: refused\n"
    "                               -- for good (a 4xx) or given up; see error\n"
    "  attempts   " SQL_INT " NOT NULL DEFAULT 0, -- sends tried\n"
    "  next_us    " SQL_INT " NOT NULL, -- pending: not before this; while a sender holds it,\n"
    "                               -- the end of its claim (another sender waits)\n"
    "  updated_us " SQL_INT " NOT NULL, -- last change\n"
    "  error      TEXT,             -- the last failure, NULL if none\n"
    "  PRIMARY KEY (notice_id, notifier)\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE INDEX outbox_due ON outbox_deliveries (next_us) WHERE status = 'pending';\n";

/* Ingested access logs (issue 12, src/ingest/). Every event says where it came from; the
 * column's default makes the rows written before it 'gateway' without rewriting them.
 *
 * ingest_seen is what makes `tollgate ingest` idempotent: one row per record ever stored,
 * keyed by the record's time and the SHA-256 of (source, record id), written in the
 * transaction of the record's event, so a record is in both or in neither. The time leads
 * the key because logs run in time order: inserts then land at the b-tree's right edge,
 * where a key of the digest alone put each batch's rows on every leaf page of the table
 * and rewrote all of them at each commit. A record's time is part of it, so the same
 * record ingested again has the same key. It is not usage_events.id: that id is
 * time-ordered (tg_event_new_id) with 22 bits per millisecond, and a content hash squeezed
 * into it could collide and silently drop a distinct record as a "replay"; 256 bits do not
 * collide. Rows are kept when events are purged, so a log ingested again after its events
 * were purged is still counted once (usage_daily keeps its totals).
 *
 * ingest_unknown_keys: a key found in a log that matches no api_keys row, kept as its
 * SHA-256 and display prefix, never the secret; its events carry tenant '' and key_id
 * 'unk_' + the first 16 hex digits of that hash. */
static const char DIALECT(m7_ingest)[] =
    "ALTER TABLE usage_events ADD COLUMN source /* 'gateway' = proxied by tollgate; else\n"
    "  the log it was ingested from: 'cloudfront', 'apigw', 'clf', 'accesslog' */\n"
    "  TEXT NOT NULL DEFAULT 'gateway';\n"
    "CREATE TABLE ingest_seen (\n"
    "  ts_us  " SQL_INT " NOT NULL, -- the record's time, as its event's ts_us\n"
    "  digest " SQL_BLOB " NOT NULL CHECK (" SQL_OCTETS "(digest) = 32),"
    " -- SHA-256 of source, NUL, record id\n"
    "  PRIMARY KEY (ts_us, digest)\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE ingest_unknown_keys (\n"
    "  sha256     " SQL_BLOB " PRIMARY KEY CHECK (" SQL_OCTETS "(sha256) = 32),"
    " -- SHA-256 of the secret\n"
    "  prefix     TEXT NOT NULL,    -- its first 8 characters, for display\n"
    "  source     TEXT NOT NULL,    -- the log it was first seen in ('cloudfront', ...)\n"
    "  records    " SQL_INT " NOT NULL, -- ingested records that carried it\n"
    "  first_us   " SQL_INT " NOT NULL, -- the earliest such record's time\n"
    "  last_us    " SQL_INT " NOT NULL  -- the latest such record's time\n"
    ")" SQL_NO_ROWID ";\n";

/* Stable views for `tollgate query` and the reports (issue 12, docs/query.md): what a user
 * writes SQL against, so the tables under them can change without breaking their queries.
 * No secret is shown: api_keys.sha256 is in no view. `tenants` is the table itself (it
 * holds nothing secret), so it has no view of its own. Days and hours are UTC, from ts_us
 * (integer division: whole seconds). Numbered 8: migrations 7 and 9 are written in
 * parallel; the runner applies them in list order. A later change to a view is a new
 * migration (DROP VIEW, CREATE VIEW). */
static const char DIALECT(m8_views)[] =
    /* One row per usage event (an aggregate of unauthenticated refusals stands for
     * `requests` of them). */
    "CREATE VIEW events AS SELECT id, ts_us,\n"
    "  " SQL_TIME("ts_us") " AS time,\n"
    "  " SQL_DAY("ts_us") " AS day,\n"
    "  tenant, key_id, route, method, path, status, outcome, reason, requests, latency_us,\n"
    "  bytes_in, bytes_out, model, tokens_in, tokens_out, tokens_cached, tokens_cache_write,\n"
    "  tool, rpc_method, cost_micros, price_flag, cache, client_ip, request_id, upstream\n"
    "  FROM usage_events;\n"
    /* The daily aggregates: kept when events are purged or archived. */
    "CREATE VIEW daily AS SELECT day, tenant_id AS tenant, requests, billable, failed,\n"
    "  rejected, bytes_in, bytes_out, tokens_in, tokens_out, tokens_cached, cost_micros\n"
    "  FROM usage_daily;\n"
    /* The same sums per UTC hour, from the events still stored. */
    "CREATE VIEW hourly AS SELECT\n"
    "  " SQL_HOUR("ts_us") " AS hour,\n"
    "  " SQL_DAY("ts_us") " AS day, tenant, sum(requests) AS requests,\n"
    "  sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END) AS billable,\n"
    "  sum(CASE WHEN outcome = 'failed' THEN requests ELSE 0 END) AS failed,\n"
    "  sum(CASE WHEN outcome = 'rejected' THEN requests ELSE 0 END) AS rejected,\n"
    "  sum(bytes_in) AS bytes_in, sum(bytes_out) AS bytes_out,\n"
    "  coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,\n"
    "  coalesce(sum(tokens_cached), 0) AS tokens_cached, sum(cost_micros) AS cost_micros\n"
    "  FROM usage_events GROUP BY tenant, hour, day;\n"
    /* API keys without their hash. */
    "CREATE VIEW keys AS SELECT id, tenant_id AS tenant, prefix, name, status, created_us,\n"
    "  " SQL_TIME("created_us") " AS created,\n"
    "  last_used_us FROM api_keys;\n"

    /* The reports (`tollgate report NAME`): one row per UTC day and what each groups by;
     * `report` filters them on day and tenant. Sent = to the client (bytes_out), received
     * = from it (bytes_in); KB, MB, GB are 10^3, 10^6, 10^9 bytes. avg_tokens_per_request
     * counts every request of the row. */
    "CREATE VIEW report_daily AS SELECT day, tenant, requests, billable, tokens_in,\n"
    "  tokens_out, CASE WHEN requests > 0\n"
    "  THEN round(CAST(tokens_in + tokens_out AS " SQL_NUMERIC ") / requests, 2) END\n"
    "  AS avg_tokens_per_request FROM daily;\n"
    "CREATE VIEW report_hourly AS SELECT hour, day, tenant, requests, billable, tokens_in,\n"
    "  tokens_out, CASE WHEN requests > 0\n"
    "  THEN round(CAST(tokens_in + tokens_out AS " SQL_NUMERIC ") / requests, 2) END\n"
    "  AS avg_tokens_per_request FROM hourly;\n"
    "CREATE VIEW report_keys AS SELECT " SQL_DAY("e.ts_us") " AS day,\n"
    "  e.tenant AS tenant, e.key_id AS key_id, k.prefix AS key_prefix, k.name AS key_name,\n"
    "  sum(e.requests) AS requests, sum(e.bytes_out) AS bytes_sent,\n"
    "  sum(e.bytes_in) AS bytes_received, round(sum(e.bytes_out) / 1e6, 3) AS mb_sent,\n"
    "  round(sum(e.bytes_in) / 1e6, 3) AS mb_received,\n"
    "  round(avg(e.latency_us) / 1e3, 3) AS avg_response_ms\n"
    "  FROM usage_events e LEFT JOIN api_keys k ON k.id = e.key_id\n"
    "  GROUP BY 1, e.tenant, e.key_id" PG_ONLY(", k.prefix, k.name") ";\n"
    "CREATE VIEW report_endpoints AS SELECT " SQL_DAY("ts_us") " AS day,\n"
    "  tenant, key_id, method, path, sum(requests) AS requests, sum(bytes_out) AS bytes_sent,\n"
    "  round(sum(bytes_out) / 1e3, 3) AS kb_sent\n"
    "  FROM usage_events GROUP BY 1, tenant, key_id, method, path;\n"
    "CREATE VIEW report_transfer AS SELECT day, tenant, key_id, key_prefix, bytes_sent,\n"
    "  bytes_received, round(bytes_sent / 1e9, 6) AS gb_sent,\n"
    "  round(bytes_received / 1e9, 6) AS gb_received,\n"
    "  round((bytes_sent + bytes_received) / 1e9, 6) AS gb_total FROM report_keys;\n"
    /* hit: cache 'hit' or 'refreshhit' (any case), miss: 'miss'; the shares are of the
     * requests with either, NULL when there is none. */
    "CREATE VIEW report_cache AS SELECT day, tenant, key_id, requests, hits, misses,\n"
    "  CASE WHEN hits + misses > 0"
    " THEN round(CAST(hits AS " SQL_NUMERIC ") / (hits + misses), 4) END\n"
    "  AS hit_share,\n"
    "  CASE WHEN hits + misses > 0"
    " THEN round(CAST(misses AS " SQL_NUMERIC ") / (hits + misses), 4) END\n"
    "  AS miss_share\n"
    "  FROM (SELECT " SQL_DAY("ts_us") " AS day, tenant, key_id,\n"
    "  sum(requests) AS requests,\n"
    "  sum(CASE WHEN lower(cache) IN ('hit', 'refreshhit') THEN requests ELSE 0 END) AS hits,\n"
    "  sum(CASE WHEN lower(cache) = 'miss' THEN requests ELSE 0 END) AS misses\n"
    "  FROM usage_events GROUP BY 1, tenant, key_id)" PG_ONLY(" AS g") ";\n"
    "CREATE VIEW report_models AS SELECT day, tenant, model, requests, billable, tokens_in,\n"
    "  tokens_out, tokens_cached, cost_micros, CASE WHEN requests > 0\n"
    "  THEN round(CAST(tokens_in + tokens_out AS " SQL_NUMERIC ") / requests, 2) END\n"
    "  AS avg_tokens_per_request\n"
    "  FROM (SELECT " SQL_DAY("ts_us") " AS day, tenant, model,\n"
    "  sum(requests) AS requests,\n"
    "  sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END) AS billable,\n"
    "  coalesce(sum(tokens_in), 0) AS tokens_in, coalesce(sum(tokens_out), 0) AS tokens_out,\n"
    "  coalesce(sum(tokens_cached), 0) AS tokens_cached, sum(cost_micros) AS cost_micros\n"
    "  FROM usage_events WHERE model IS NOT NULL GROUP BY 1, tenant, model)" PG_ONLY(" AS g") ";\n"
    "CREATE VIEW report_tools AS SELECT " SQL_DAY("ts_us") " AS day, tenant,\n"
    "  tool, sum(requests) AS calls,\n"
    "  sum(CASE WHEN outcome = 'billable' THEN requests ELSE 0 END) AS billable,\n"
    "  sum(CASE WHEN outcome = 'failed' THEN requests ELSE 0 END) AS failed,\n"
    "  sum(cost_micros) AS cost_micros, round(avg(latency_us) / 1e3, 3) AS avg_response_ms\n"
    "  FROM usage_events WHERE tool IS NOT NULL GROUP BY 1, tenant, tool;\n";
/* Plans and invoices (issue 12, src/invoice/, docs/billing.md). A plan version is a row of
 * plans with its meters and their tiers; the version in force at a month's first instant
 * prices that whole month. tenant_plans says which plan a tenant is on from a month on.
 * invoices, invoice_lines and invoice_meters hold closed months, frozen: late events for a
 * closed month never change its rows, they are billed by an adjustment line of a later
 * invoice, which moves invoice_meters (what has been billed for the month) to the events'
 * values when that later month is closed. Plans are not policy: no version bump, the
 * gateway never reads them. No foreign key to tenants (as limits): the CLI checks.
 * Numbered 9: migrations 7 and 8 are written in parallel. */
static const char DIALECT(m9_plans)[] =
    "CREATE TABLE plans (\n"
    "  name         TEXT NOT NULL,    -- the plan's name, chosen by the operator\n"
    "  effective_us " SQL_INT " NOT NULL, -- first instant of the UTC month it applies from\n"
    "  base_micros  " SQL_INT " NOT NULL CHECK (base_micros >= 0), -- monthly fee, micro-USD\n"
    "  created_us   " SQL_INT " NOT NULL, -- when the row was written\n"
    "  PRIMARY KEY (name, effective_us)\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE plan_meters (\n"
    "  plan         TEXT NOT NULL,    -- plans.name\n"
    "  effective_us " SQL_INT " NOT NULL, -- plans.effective_us\n"
    "  seq          " SQL_INT " NOT NULL, -- order on the invoice, from 0\n"
    "  meter        TEXT NOT NULL CHECK (meter IN ('requests', 'billable', 'gb', 'tokens_in',\n"
    "               'tokens_out', 'tool_calls', 'ai_cost')), -- what it counts\n"
    "  match        TEXT NOT NULL DEFAULT '', -- tokens: model, tool_calls: tool, '*' = the\n"
    "                                 -- rest; '' for the other meters\n"
    "  model        TEXT NOT NULL CHECK (model IN ('flat', 'unit', 'graduated', 'volume')),\n"
    "  included     " SQL_INT " NOT NULL DEFAULT 0 CHECK (included >= 0), -- free units a month\n"
    "  flat_micros  " SQL_INT " NOT NULL DEFAULT 0 CHECK (flat_micros >= 0), -- model 'flat'\n"
    "  PRIMARY KEY (plan, effective_us, seq),\n"
    "  FOREIGN KEY (plan, effective_us) REFERENCES plans (name, effective_us) ON DELETE CASCADE\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE plan_tiers (\n"
    "  plan         TEXT NOT NULL,    -- plan_meters.plan\n"
    "  effective_us " SQL_INT " NOT NULL, -- plan_meters.effective_us\n"
    "  seq          " SQL_INT " NOT NULL, -- plan_meters.seq\n"
    "  tier         " SQL_INT " NOT NULL, -- from 1\n"
    "  up_to        " SQL_INT ",          -- units (after the included ones) where it ends;\n"
    "                                 -- NULL = no end (the last tier)\n"
    "  unit_micros  " SQL_INT " NOT NULL CHECK (unit_micros >= 0), -- micro-USD per 1M units\n"
    "                                 -- (per GB = 10^9 bytes for meter 'gb')\n"
    "  PRIMARY KEY (plan, effective_us, seq, tier),\n"
    "  FOREIGN KEY (plan, effective_us, seq) REFERENCES plan_meters (plan, effective_us, seq)\n"
    "    ON DELETE CASCADE\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE tenant_plans (\n"
    "  tenant_id    TEXT NOT NULL,    -- tenants.id\n"
    "  from_month   TEXT NOT NULL,    -- 'YYYY-MM': the plan applies from this month on\n"
    "  plan         TEXT NOT NULL,    -- plans.name\n"
    "  updated_us   " SQL_INT " NOT NULL, -- when the row was written\n"
    "  PRIMARY KEY (tenant_id, from_month)\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE invoices (\n"
    "  tenant_id    TEXT NOT NULL,    -- tenants.id\n"
    "  month        TEXT NOT NULL,    -- 'YYYY-MM', UTC\n"
    "  plan         TEXT NOT NULL,    -- plans.name that priced it\n"
    "  plan_effective_us " SQL_INT " NOT NULL, -- and its version\n"
    "  total_micros " SQL_INT " NOT NULL, -- the invoice's total, adjustments included\n"
    "  closed_us    " SQL_INT " NOT NULL, -- when it was closed (frozen)\n"
    "  PRIMARY KEY (tenant_id, month)\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE invoice_lines (\n"
    "  tenant_id    TEXT NOT NULL,    -- invoices.tenant_id\n"
    "  month        TEXT NOT NULL,    -- invoices.month\n"
    "  seq          " SQL_INT " NOT NULL, -- order on the invoice\n"
    "  kind         TEXT NOT NULL CHECK (kind IN ('base', 'included', 'flat', 'tier',\n"
    "               'volume', 'adjustment')), -- volume: every unit at the tier reached\n"
    "  meter        TEXT,             -- plan_meters.meter; NULL for the base fee\n"
    "  match        TEXT NOT NULL DEFAULT '', -- plan_meters.match\n"
    "  tier         " SQL_INT " NOT NULL DEFAULT 0, -- tier number; 0 = not a tier\n"
    "  tier_from    " SQL_INT " NOT NULL DEFAULT 0, -- where the tier starts\n"
    "  tier_to      " SQL_INT ",          -- where it ends; NULL = no end\n"
    "  quantity     " SQL_INT " NOT NULL, -- units on the line (adjustment: the change)\n"
    "  unit_micros  " SQL_INT " NOT NULL DEFAULT 0, -- micro-USD per scale units\n"
    "  scale        " SQL_INT " NOT NULL DEFAULT 0, -- 10^6, or 10^9 for gb; 0 = no unit price\n"
    "  subtotal_micros " SQL_INT " NOT NULL, -- rounded half up, once per line\n"
    "  for_month    TEXT,             -- adjustment: the closed month it corrects\n"
    "  PRIMARY KEY (tenant_id, month, seq),\n"
    "  FOREIGN KEY (tenant_id, month) REFERENCES invoices (tenant_id, month) ON DELETE CASCADE\n"
    ")" SQL_NO_ROWID ";\n"
    "CREATE TABLE invoice_meters (\n"
    "  tenant_id    TEXT NOT NULL,    -- invoices.tenant_id\n"
    "  month        TEXT NOT NULL,    -- invoices.month: the month used\n"
    "  meter        TEXT NOT NULL,    -- plan_meters.meter\n"
    "  match        TEXT NOT NULL DEFAULT '', -- plan_meters.match\n"
    "  closed_measured " SQL_INT " NOT NULL, -- units measured when the month was closed\n"
    "  closed_amount_micros " SQL_INT " NOT NULL, -- and what they came to, both frozen\n"
    "  measured     " SQL_INT " NOT NULL, -- units billed so far for the month (closed plus\n"
    "                                 -- the adjustments of later invoices)\n"
    "  amount_micros " SQL_INT " NOT NULL, -- what they were billed so far\n"
    "  updated_us   " SQL_INT " NOT NULL, -- close, or the adjustment that last moved it\n"
    "  PRIMARY KEY (tenant_id, month, meter, match),\n"
    "  FOREIGN KEY (tenant_id, month) REFERENCES invoices (tenant_id, month) ON DELETE CASCADE\n"
    ")" SQL_NO_ROWID ";\n";

/* usage_events.source (migration 7) in the `events` view (migration 8; the two were
 * written in parallel): a view lists its columns, so it is made again with the column,
 * last, the others as they were. Numbered 10, after the parallel 8 and 9. */
static const char DIALECT(m10_events_source)[] =
    "DROP VIEW events;\n"
    "CREATE VIEW events AS SELECT id, ts_us,\n"
    "  " SQL_TIME("ts_us") " AS time,\n"
    "  " SQL_DAY("ts_us") " AS day,\n"
    "  tenant, key_id, route, method, path, status, outcome, reason, requests, latency_us,\n"
    "  bytes_in, bytes_out, model, tokens_in, tokens_out, tokens_cached, tokens_cache_write,\n"
    "  tool, rpc_method, cost_micros, price_flag, cache, client_ip, request_id, upstream,\n"
    "  source FROM usage_events;\n";

/* PostgreSQL: a month's partition is made as a table of its own and then attached, instead
 * of CREATE TABLE ... PARTITION OF, which takes an ACCESS EXCLUSIVE lock on usage_events:
 * it waits for every query reading the events (a long report) and holds every reader and
 * writer behind it meanwhile. ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE, which neither
 * reads nor inserts wait for; the new table is empty, so checking it against the range is
 * instant, and the partitioned indexes are built on it as it is attached. The writer makes
 * the next month's partition ahead of time (pg_events.c), so a month's first events do not
 * wait for it. SQLite: nothing. */
static const char DIALECT(m11_partition_attach)[] =
    PG_ONLY(
        "CREATE OR REPLACE FUNCTION tg_usage_partition(at_us bigint) RETURNS text\n"
        "  LANGUAGE plpgsql STRICT AS $$\n"
        "DECLARE\n"
        "  m timestamp := date_trunc('month',\n"
        "    to_timestamp(floor(at_us / 1000000.0)) AT TIME ZONE 'UTC');\n"
        "  part text := 'usage_events_' || to_char(m, 'YYYYMM');\n"
        "BEGIN\n"
        "  IF m < timestamp '2020-01-01' THEN\n"
        "    RETURN 'usage_events_pre2020';\n"
        "  END IF;\n"
        "  IF to_regclass(part) IS NULL THEN\n"
        "    PERFORM pg_advisory_xact_lock(8390043843661231205);\n"
        /* The lock ATTACH takes anyway, taken first: locking a table reads the catalog
         * changes of the session that held the advisory lock before this one (waiting
         * on an advisory lock does not), so the check below sees its partition. */
        "    LOCK TABLE usage_events IN SHARE UPDATE EXCLUSIVE MODE;\n"
        "    IF to_regclass(part) IS NULL THEN\n"
        "      EXECUTE format('CREATE TABLE %I (LIKE usage_events INCLUDING DEFAULTS'\n"
        "        ' INCLUDING CONSTRAINTS)', part);\n"
        "      EXECUTE format('ALTER TABLE usage_events ATTACH PARTITION %I'\n"
        "        ' FOR VALUES FROM (%s) TO (%s)', part, tg_usage_id_at(m),\n"
        "        tg_usage_id_at(m + interval '1 month'));\n"
        "    END IF;\n"
        "  END IF;\n"
        "  RETURN part;\n"
        "END\n"
        "$$;\n")
    SQLITE_ONLY("-- PostgreSQL only: monthly partitions of usage_events attached\n");

/* JWT tenants (issue 14, src/auth/jwt.h): how each request authenticated and, for a JWT,
 * its sub claim. NULL on the rows written before (and on a refusal before any credential
 * was read); no default, so adding them rewrites nothing. The events view is made again
 * with both, last. */
static const char DIALECT(m12_event_auth)[] =
    "ALTER TABLE usage_events ADD COLUMN auth TEXT; -- 'api_key' | 'jwt'\n"
    "ALTER TABLE usage_events ADD COLUMN subject TEXT; -- a JWT's sub, truncated to 127 bytes\n"
    "DROP VIEW events;\n"
    "CREATE VIEW events AS SELECT id, ts_us,\n"
    "  " SQL_TIME("ts_us") " AS time,\n"
    "  " SQL_DAY("ts_us") " AS day,\n"
    "  tenant, key_id, route, method, path, status, outcome, reason, requests, latency_us,\n"
    "  bytes_in, bytes_out, model, tokens_in, tokens_out, tokens_cached, tokens_cache_write,\n"
    "  tool, rpc_method, cost_micros, price_flag, cache, client_ip, request_id, upstream,\n"
    "  source, auth, subject FROM usage_events;\n";
/* Key expiry, rotation and signing secrets (issue 14). expires_us: the key is refused from
 * this instant on (`key create --expires`; `key rotate` sets it on the old key to the end
 * of its grace). rotated_from: the key this one replaced. signing_secret: the HMAC secret
 * of signed requests, sealed by the KEK (crypt/crypt.h, AAD = the key's id): HMAC needs
 * the secret itself, so it cannot be hashed like the key. The keys view gains the first two
 * (never the secret). */
static const char DIALECT(m13_key_rotation)[] =
    "ALTER TABLE api_keys ADD COLUMN expires_us " SQL_INT "; -- refused from then; NULL = never\n"
    "ALTER TABLE api_keys ADD COLUMN rotated_from TEXT; -- the key this one replaced\n"
    "ALTER TABLE api_keys ADD COLUMN signing_secret " SQL_BLOB "; -- sealed; NULL = none\n"
    "DROP VIEW keys;\n"
    "CREATE VIEW keys AS SELECT id, tenant_id AS tenant, prefix, name, status, created_us,\n"
    "  " SQL_TIME("created_us") " AS created,\n"
    "  last_used_us, expires_us, rotated_from,\n"
    "  CASE WHEN signing_secret IS NULL THEN 0 ELSE 1 END AS signing FROM api_keys;\n";
/* The audit trail (issue 14, docs/audit.md): admin actions and the calls of AI and MCP
 * routes, each record hash-chained to the one before it (types/audit.h defines the
 * canonical form). audit_head is the chain's last record, one row: every append reads and
 * moves it in its own transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: SELECT ... FOR
 * UPDATE on it), so two processes appending at once never fork the chain. The row is made by
 * the first append (none: the chain is empty), so `store copy` can copy it like any row. Ids are given
 * by the appender (head + 1), never by the database. No index on tenant: every AI call adds a
 * record on the writer's path, and only `tenant erase`, rare, looks records up by tenant.
 * The erasable columns hold the value,
 * or 'erased:sha256:' and its hash once `tenant erase` removed it. PostgreSQL: a plain
 * table (its rows are small and purged by whole days through audit_day). Numbered 14:
 * 12 and 13 are written in parallel. */
static const char DIALECT(m14_audit)[] =
    "CREATE TABLE audit (\n"
    "  id          " SQL_INT " PRIMARY KEY, -- position in the chain, from 1\n"
    "  day         TEXT NOT NULL,    -- UTC day of the chain it is in (never goes back)\n"
    "  seq         " SQL_INT " NOT NULL, -- 1, 2, ... within the day\n"
    "  ts_us       " SQL_INT " NOT NULL, -- when it happened\n"
    "  kind        TEXT NOT NULL CHECK (kind IN ('admin', 'call')),\n"
    "  actor       TEXT NOT NULL DEFAULT '', -- admin: OS user or admin-token:ID; call: key id\n"
    "  action      TEXT NOT NULL,    -- admin: 'tenant.disable' ...; call: 'call'\n"
    "  object      TEXT NOT NULL DEFAULT '', -- admin: the command's object; call: route\n"
    "  tenant      TEXT NOT NULL DEFAULT '', -- whose data ('' none): what erase selects\n"
    "  event_id    " SQL_INT " UNIQUE,   -- call: usage_events.id (a replay adds nothing)\n"
    "  data        TEXT,             -- call: JSON (key, model, tool, tokens, cost, ...)\n"
    "  before_json TEXT,             -- erasable: rows before (admin), JSON\n"
    "  after_json  TEXT,             -- erasable: rows after (admin), JSON\n"
    "  client_ip   TEXT,             -- erasable (call)\n"
    "  path        TEXT,             -- erasable (call), query string included\n"
    "  prev_hash   TEXT NOT NULL,    -- hex SHA-256 of the previous record\n"
    "  hash        TEXT NOT NULL     -- hex SHA-256 of this record's canonical form\n"
    ");\n"
    "CREATE INDEX audit_day ON audit (day);\n"
    "CREATE TABLE audit_head (\n"
    "  id        " SQL_INT " PRIMARY KEY CHECK (id = 1), -- one row\n"
    "  last_id   " SQL_INT " NOT NULL, -- the chain's last record (0: none yet)\n"
    "  last_day  TEXT NOT NULL,\n"
    "  last_seq  " SQL_INT " NOT NULL,\n"
    "  last_hash TEXT NOT NULL\n"
    ");\n";

/* Admin API tokens (issue 14): who may call /admin/v1/. Only the SHA-256 of a secret is kept
 * (the secret is printed once by `tollgate admin-token create`); role admin may do anything,
 * read only GETs; tenant_id scopes a read token to one tenant (NULL: every tenant). Times
 * are micro-seconds; NULL expires_us never expires, NULL revoked_us is not revoked,
 * last_used_us is written by the gateway at most once a second per token. Adding and
 * revoking bump meta.auth_version, which the gateways' snapshot of the tokens polls. */
static const char DIALECT(m15_admin_tokens)[] =
    "CREATE TABLE admin_tokens (\n"
    "  id           TEXT PRIMARY KEY,              -- \"adm_\" + 16 hex\n"
    "  sha256       " SQL_BLOB " NOT NULL UNIQUE CHECK (" SQL_OCTETS "(sha256) = 32),\n"
    "  name         TEXT NOT NULL DEFAULT '',\n"
    "  role         TEXT NOT NULL CHECK (role IN ('admin', 'read')),\n"
    "  tenant_id    TEXT REFERENCES tenants (id) ON DELETE CASCADE,\n"
    "  created_us   " SQL_INT " NOT NULL,\n"
    "  expires_us   " SQL_INT ",\n"
    "  revoked_us   " SQL_INT ",\n"
    "  last_used_us " SQL_INT "\n"
    ");\n";
/* The audit trail's cost on the writer's path (issue 14, bench/RESULTS.md): no index but the
 * id. A replayed batch adds no call record because the writer adds a record only for the
 * events its transaction inserted (not by event_id's unique index), and a day's records are
 * an id range found by binary search on ids (days never go back along the chain), not by
 * audit_day. format: the canonical form a record was hashed in (types/audit.h): 1, the
 * JSON array, for every record written before; 2, length-prefixed fields (no JSON to
 * generate), for the records appended from now on: chains written before verify as before.
 * SQLite cannot drop a column's UNIQUE: the table is rebuilt.
 * Numbered 17: 16 is written in parallel. */
static const char DIALECT(m16_audit_lean)[] =
    SQLITE_ONLY(
    "CREATE TABLE audit_v17 (\n"
    "  id          " SQL_INT " PRIMARY KEY, -- position in the chain, from 1\n"
    "  day         TEXT NOT NULL,    -- UTC day of the chain it is in (never goes back)\n"
    "  seq         " SQL_INT " NOT NULL, -- 1, 2, ... within the day\n"
    "  ts_us       " SQL_INT " NOT NULL, -- when it happened\n"
    "  kind        TEXT NOT NULL CHECK (kind IN ('admin', 'call')),\n"
    "  actor       TEXT NOT NULL DEFAULT '', -- admin: OS user or admin-token:ID; call: key id\n"
    "  action      TEXT NOT NULL,    -- admin: 'tenant.disable' ...; call: 'call'\n"
    "  object      TEXT NOT NULL DEFAULT '', -- admin: the command's object; call: route\n"
    "  tenant      TEXT NOT NULL DEFAULT '', -- whose data ('' none): what erase selects\n"
    "  event_id    " SQL_INT ",          -- call: usage_events.id it was stored under\n"
    "  data        TEXT,             -- call: JSON (key, model, tool, tokens, cost, ...)\n"
    "  before_json TEXT,             -- erasable: rows before (admin), JSON\n"
    "  after_json  TEXT,             -- erasable: rows after (admin), JSON\n"
    "  client_ip   TEXT,             -- erasable (call)\n"
    "  path        TEXT,             -- erasable (call), query string included\n"
    "  prev_hash   TEXT NOT NULL,    -- hex SHA-256 of the previous record\n"
    "  hash        TEXT NOT NULL,    -- hex SHA-256 of this record's canonical form\n"
    "  format      " SQL_INT " NOT NULL DEFAULT 1 -- of the canonical form: 1 JSON, 2 length-prefixed\n"
    ");\n"
    "INSERT INTO audit_v17 SELECT id, day, seq, ts_us, kind, actor, action, object, tenant,\n"
    "  event_id, data, before_json, after_json, client_ip, path, prev_hash, hash, 1 FROM audit;\n"
    "DROP TABLE audit;\n"
    "ALTER TABLE audit_v17 RENAME TO audit;\n")
    PG_ONLY(
    "ALTER TABLE audit DROP CONSTRAINT audit_event_id_key;\n"    "ALTER TABLE audit ADD COLUMN format " SQL_INT " NOT NULL DEFAULT 1;\n"
    "DROP INDEX audit_day;\n");

/* The notification outbox sealed at rest (issue 14, docs/encryption.md): with a KEK
 * configured, a notice's content is one sealed blob (crypt/crypt.h) in base64, bound to the
 * row's id, and the row's id is a keyed hash of the notice's id (notify/seal.h); the plain
 * columns then hold '' and 0. NULL: a plain row (written without a KEK), read as before.
 */
static const char DIALECT(m17_outbox_sealed)[] =
    "ALTER TABLE outbox ADD COLUMN sealed TEXT; -- base64 of the sealed notice; NULL = plain\n";

/* audit.bodies: encrypt (issue 14, docs/audit.md "Bodies"): a call's request and answer
 * bodies, one sealed blob (crypt/crypt.h; its plain form in types/bodies.h) per call record,
 * bound to the record's event id and tenant (a blob moved to another record does not open).
 * Written by the writer in the transaction of the record; deleted by `tenant erase` (the
 * record and its hashes stay: the chain still verifies) and with the records retention
 * purges. tenant is indexed for erase (rare) only. */
static const char DIALECT(m18_audit_bodies)[] =
    "CREATE TABLE audit_bodies (\n"
    "  record_id " SQL_INT " PRIMARY KEY, -- audit.id of the call record\n"
    "  tenant    TEXT NOT NULL,          -- the record's tenant: what erase selects\n"
    "  sealed    " SQL_BLOB " NOT NULL   -- the bodies, sealed by the KEK\n"
    ");\n"
    "CREATE INDEX audit_bodies_tenant ON audit_bodies (tenant);\n";
// clang-format on
