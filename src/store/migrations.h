/* Schema migrations: the one place the store's tables are described.
 *
 * Each migration is a numbered SQL script, applied in order when a store is
 * opened, each in its own transaction together with its schema_migrations
 * row, so a crash leaves the database at a whole version. A migration, once
 * released, never changes: a schema change is a new, higher-numbered entry.
 * The SQL is written for SQLite; a PostgreSQL backend will carry its own
 * dialect of the same numbered list. */
#ifndef TG_STORE_MIGRATIONS_H
#define TG_STORE_MIGRATIONS_H

#include <stddef.h>

typedef struct tg_migration {
    int version;      /* 1, 2, 3, ... ascending; the runner tolerates a gap */
    const char *name; /* short description, recorded in schema_migrations */
    const char *sql;  /* one or more statements, run with sqlite3_exec() */
} tg_migration_t;

/* Creates schema_migrations if it is missing; safe to run on every open. */
extern const char tg_store_migrations_bootstrap[];

extern const tg_migration_t tg_store_migrations[];
extern const size_t tg_store_nmigrations;

#endif
