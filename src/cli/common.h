/* What the command groups share: the one-line error, option parsing, the
 * checks on ids and labels, and how a time is printed. Every command reports
 * the same way (docs/cli.md, "Exit status and errors"), so these live once. */
#ifndef TG_CLI_COMMON_H
#define TG_CLI_COMMON_H

#include <stddef.h>
#include <stdint.h>

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

#endif
