/* Schema migrations: the one place the store's tables are described.
 *
 * Each migration is a numbered SQL script, applied in order when a store is
 * opened, each in its own transaction together with its schema_migrations
 * row, so a crash leaves the database at a whole version. A migration, once
 * released, never changes: a schema change is a new, higher-numbered entry.
 * Each carries two dialects of the same step, SQLite's and PostgreSQL's, written
 * once in migrations_text.h; the final schemas have the same tables, columns and
 * views (tests/unit/store/test_migrations_pg.c). PostgreSQL's usage_events is
 * partitioned by month of its id; the writer creates a month's partition with
 *   SELECT tg_usage_partition(at_us bigint) -> text (the partition's name)
 * before inserting events of that month, and retention drops whole months with
 *   SELECT tg_usage_drop_before(cutoff_us bigint) -> bigint (the rows dropped).
 * Every text runs inside a transaction (no CREATE INDEX CONCURRENTLY). */
#ifndef TG_STORE_MIGRATIONS_H
#define TG_STORE_MIGRATIONS_H

#include <stddef.h>

typedef struct tg_migration {
    int version;      /* 1, 2, 3, ... ascending; the runner tolerates a gap */
    const char *name; /* short description, recorded in schema_migrations */
    const char *sql;  /* SQLite: one or more statements, run with sqlite3_exec() */
    const char *pg;   /* PostgreSQL: the same step, one PQexec() (simple protocol) */
} tg_migration_t;

/* Creates schema_migrations if it is missing; safe to run on every open. */
extern const char tg_store_migrations_bootstrap[];
extern const char tg_store_migrations_bootstrap_pg[];

extern const tg_migration_t tg_store_migrations[];
extern const size_t tg_store_nmigrations;

#endif
