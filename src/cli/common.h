/* What the command groups share: the one-line error, option parsing, the
 * checks on ids and labels, and how a time is printed. Every command reports
 * the same way (docs/cli.md, "Exit status and errors"), so these live once. */
#ifndef TG_CLI_COMMON_H
#define TG_CLI_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Prints "tollgate: " + the message + newline on stderr and returns code, so
 * a command can `return tg_cli_errorf(TG_EXIT_USAGE, ...)`. */
int tg_cli_errorf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "2026-03-01T10:00:00Z" (UTC, whole seconds); "-" for us <= 0. */
void tg_cli_fmt_time(int64_t us, char buf[25]);

/* 1-63 characters of [A-Za-z0-9._-]: safe in URLs, file names, log lines and
 * metric labels without quoting, and fits tg_event_t.tenant. */
int tg_cli_valid_tenant_id(const char *s);

/* Free text without control characters (names, reasons). */
int tg_cli_valid_label(const char *s);

/* Valid UTF-8 without control characters: for values that end up in JSON
 * (a pause reason goes into the 503 answer) and in metric labels. */
int tg_cli_valid_text(const char *s);

/* An option taking a value, given as "--name VALUE" or "--name=VALUE"; the
 * last one given wins. */
typedef struct tg_cli_opt {
    const char *name;  /* "--tenant" */
    const char **slot; /* receives the value (points into argv) */
} tg_cli_opt_t;

/* Parses argv[first..] into the options of opts (nopts of them) and at most
 * maxpos positionals (pos[0..], *npos of them). "--" ends the options; any
 * other argument starting with '-' (and longer than "-") is an option. With
 * help non-NULL, -h and --help set *help instead of being unknown options.
 * Returns 0, or prints the one error line (naming usage for a stray
 * positional) and returns TG_EXIT_USAGE. */
int tg_cli_parse(int argc, char **argv, int first, const tg_cli_opt_t *opts, size_t nopts,
                 const char **pos, int maxpos, int *npos, int *help, const char *usage);

/* A non-negative decimal integer of at most max, digits only (no sign,
 * spaces or exponent). Returns 0 and *out, or -1. */
int tg_cli_parse_count(const char *s, int64_t max, int64_t *out);

/* A JSON string of s; bytes that are not valid UTF-8 (a row written by hand
 * into the store) become '?' rather than failing the output. NULL only when
 * out of memory. */
struct json_t;
struct json_t *tg_cli_json_text(const char *s);

/* Appends one row of size bytes to a growing array (*v, *n, *cap), doubling
 * from 32: what the list commands collect store rows with. 0, or -1 when out
 * of memory. */
int tg_cli_push(void **v, size_t *n, size_t *cap, const void *row, size_t size);

/* ---- shared by the list and policy commands (price, budget, tool, ...) ---- */

/* A tenant id that tenant add would accept, or "*" (every tenant) when star_ok. Else
 * prints the one error line and returns TG_EXIT_USAGE. */
int tg_cli_check_tenant(const char *tenant, int star_ok);

/* TG_EXIT_OK when the tenant exists ("*" always does when star_ok), else prints
 * `no tenant "ID"` (or the store's error) and returns TG_EXIT_RUNTIME. */
struct tg_store;
int tg_cli_tenant_exists(struct tg_store *store, const char *tenant, int star_ok);

typedef enum { TG_CLI_TABLE = 0, TG_CLI_JSON, TG_CLI_CSV } tg_cli_format_t;

/* --format: NULL is table; csv only when allow_csv. Prints the error line and returns
 * TG_EXIT_USAGE for anything else. */
int tg_cli_parse_format(const char *s, int allow_csv, tg_cli_format_t *out);

/* An amount in USD (tg_money_parse: digits, at most 6 decimals, no sign) given to
 * option opt; prints `invalid OPT "S" (expected USD ...)` and returns TG_EXIT_USAGE. */
int tg_cli_parse_usd(const char *opt, const char *s, int64_t *micros);

/* Removes every `name` flag (an option without a value, e.g. --soft) from argv[first..]
 * before any "--", shifting the rest down and updating *argc; returns how many there
 * were, or -1 (error line printed) for "name=VALUE". */
int tg_cli_take_flag(int *argc, char **argv, int first, const char *name);

/* One field of a CSV row, quoted per RFC 4180 when it holds a comma, quote, CR or LF. */
void tg_cli_csv_field(FILE *out, const char *s);

/* Rows of text cells (row-major, nrows x ncols; NULL = none) as a table (upper-case
 * header, columns left-aligned and padded to their widest cell, none shown as "-") or as
 * CSV (header as given, none as an empty field). 0, or -1 on a write error. */
int tg_cli_print_rows(FILE *out, tg_cli_format_t fmt, size_t ncols, const char *const *head,
                      const char *const *cells, size_t nrows);

/* Dumps json (indented, then a newline) to stdout and takes its reference. 0 or -1.
 * flags are added to the dump flags (e.g. JSON_REAL_PRECISION). */
int tg_cli_print_json(struct json_t *json, size_t flags);

#endif
