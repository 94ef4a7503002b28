/* What the command groups share: the one-line error, option parsing, the
 * checks on ids and labels, how a time is printed, and the writer every list
 * prints its rows with (table, CSV or JSON). Every command reports the same
 * way (docs/cli.md, "Exit status and errors"), so these live once. */
#ifndef TG_CLI_COMMON_H
#define TG_CLI_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

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

/* Appends one row of size bytes to a growing array (*v, *n rows; *cap: bytes allocated,
 * 0 at first), a tg_buf_t underneath (util/buf.h): what the list commands collect store
 * rows with. 0, or -1 when out of memory or past TG_CLI_ROWS_MAX bytes of rows. */
#define TG_CLI_ROWS_MAX (1ull << 30)
int tg_cli_push(void **v, size_t *n, size_t *cap, const void *row, size_t size);

/* ---- shared by the list and policy commands (price, budget, tool, ...) ---- */

/* A tenant id that tenant add would accept, or "*" (every tenant) when star_ok. Else
 * prints the one error line and returns TG_EXIT_USAGE. */
int tg_cli_check_tenant(const char *tenant, int star_ok);

/* TG_EXIT_OK when the tenant exists ("*" always does when star_ok), else prints
 * `no tenant "ID"` (or the store's error) and returns TG_EXIT_RUNTIME. */
struct tg_store;
int tg_cli_tenant_exists(struct tg_store *store, const char *tenant, int star_ok);

/* Whom an ip or tool rule is for, as their confirmations say it: "for all tenants" ("*")
 * or "for tenant ID" (written into buf of cap bytes). */
const char *tg_cli_rule_owner(const char *tenant, char *buf, size_t cap);

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

/* One field of a CSV row, quoted per RFC 4180 when it holds a comma, quote, CR or LF. A
 * value that a spreadsheet would run as a formula (it starts with = + - @ TAB or CR, and
 * is not a plain number such as -12.5), or that starts with ', is written with one more '
 * in front (and quoted): strip one leading ' from a cell that has one to read it back. */
void tg_cli_csv_field(FILE *out, const char *s);

/* ---- the list writer ----
 *
 * Every list prints the same rows as a table, CSV or JSON. A command describes its
 * columns once and adds each row's cells in column order; tg_cli_rows_print lays them
 * out, so the three formats cannot drift apart:
 *   table: an upper-case header, columns padded to their widest cell (or to a fixed
 *          width) and two spaces apart, the last one not padded unless right-aligned;
 *   CSV:   a header of the names as given, fields quoted per RFC 4180;
 *   JSON:  an array of objects keyed by column name, typed values, indented by 2.
 * A column may stand in the table and CSV only, or in JSON only, which is how a list
 * shows "100/min" in its table and {"limit": 100, "period_s": 60} in JSON. */

typedef enum {
    TG_CLI_COL_TEXT,         /* as is; JSON a string (see json_text) */
    TG_CLI_COL_TEXT_OR_NONE, /* text or none: "-" in a table, an empty CSV field, JSON null */
    TG_CLI_COL_INT,          /* an integer in decimal; JSON a number */
    TG_CLI_COL_INT_OR_NONE,  /* an integer or none, shown as for TEXT_OR_NONE */
    TG_CLI_COL_JSON,         /* a value the command builds (an array, a real): JSON only */
    TG_CLI_COL_ANY, /* text (or none) in the table and CSV, and its own JSON value per cell:
                       a column of `query`, whose type may change from row to row */
} tg_cli_col_type_t;

/* The most columns a list may have (query refuses wider results). */
#define TG_CLI_MAX_COLS 256

#define TG_CLI_COL_NO_JSON   0x1u /* in the table and CSV only */
#define TG_CLI_COL_JSON_ONLY 0x2u /* in JSON only */
#define TG_CLI_COL_RIGHT     0x4u /* table: right-aligned, and padded also as the last column */
#define TG_CLI_COL_DASH      0x8u /* table: empty text shows as "-" (CSV and JSON keep it "") */

typedef struct tg_cli_col {
    const char *name; /* JSON key and CSV header; upper-cased, the table header */
    tg_cli_col_type_t type;
    unsigned flags; /* TG_CLI_COL_* */
    /* Table: 0 pads to the widest of header and cells. N pads to N without measuring,
     * for cells of a known width (a key prefix, a status); a longer one (only a row
     * written into the store by hand has one) pushes the rest of its line right. */
    int width;
    /* TEXT in JSON: NULL is tg_cli_json_text; usage has its own for bytes that are not
     * UTF-8. */
    struct json_t *(*json_text)(const char *s);
} tg_cli_col_t;

/* The rows of one list. The text of every cell is copied, so a row can be added from a
 * store callback, whose strings live only during the call. Fields are the writer's. */
typedef struct tg_cli_rows {
    const tg_cli_col_t *cols;
    size_t ncols;
    struct tg_cli_cell *cells; /* ncells, row after row */
    size_t ncells, cap;
    char *text; /* every cell's text, NUL-terminated */
    size_t tlen, tcap;
    int oom;           /* an allocation failed: later cells are dropped and printing fails */
    size_t json_flags; /* added to JSON_INDENT(2) (budget: JSON_REAL_PRECISION(15)) */
    /* Streaming (tg_cli_rows_flush): rows printed so far, whether the header is out, and
     * the table's column widths, measured on the first rows flushed and kept for the rest
     * (NULL until then). */
    size_t printed;
    int begun;
    int *widths;
} tg_cli_rows_t;

/* No rows yet, for an array of columns: `tg_cli_rows_t t = TG_CLI_ROWS(cols);`. */
#define TG_CLI_ROWS(cols_)                                                                         \
    {                                                                                              \
        .cols = (cols_), .ncols = sizeof(cols_) / sizeof((cols_)[0])                               \
    }

/* The next cell, in column order; a cell of another type than its column's is a bug
 * (TG_ASSERT). text: TEXT, or TEXT_OR_NONE (NULL is none). time: TEXT, as
 * tg_cli_fmt_time prints it. int_or_none: v, or none unless has. json: takes the
 * reference (NULL counts as out of memory). */
void tg_cli_cell_text(tg_cli_rows_t *t, const char *s);
void tg_cli_cell_time(tg_cli_rows_t *t, int64_t us);
void tg_cli_cell_int(tg_cli_rows_t *t, int64_t v);
void tg_cli_cell_int_or_none(tg_cli_rows_t *t, int has, int64_t v);
void tg_cli_cell_none(tg_cli_rows_t *t);
void tg_cli_cell_json(tg_cli_rows_t *t, struct json_t *v);
/* An ANY cell: text (NULL = none) for the table and CSV, v (taken; NULL = JSON null)
 * for JSON. */
void tg_cli_cell_any(tg_cli_rows_t *t, const char *text, struct json_t *v);
/* Leaves the cell just added out of its row's JSON object (a price row has only its own
 * meter's amounts there); the table and CSV still show it. */
void tg_cli_cell_skip_json(tg_cli_rows_t *t);
/* Ends a row (asserting it has every column): 0, or -1 when out of memory, which is what
 * a store callback returns to stop the listing. */
int tg_cli_row_done(tg_cli_rows_t *t);

/* The rows as a JSON array (a new reference), NULL when out of memory. budget show
 * takes its one object from here. */
struct json_t *tg_cli_rows_json(const tg_cli_rows_t *t);
/* Prints the rows to out in fmt. 0, or -1 on a write error or when out of memory. */
int tg_cli_rows_print(const tg_cli_rows_t *t, FILE *out, tg_cli_format_t fmt);
/* What a list command ends with, given what its store listing returned (r, err): the
 * store's error line (tg_cli_list_error) when r is not 0, else the rows printed to
 * stdout and flushed. Frees the rows. TG_EXIT_OK, or TG_EXIT_RUNTIME after the one
 * error line ("cannot write the WHAT" when stdout fails). */
int tg_cli_rows_finish(tg_cli_rows_t *t, int r, const tg_err_t *err, tg_cli_format_t fmt,
                       const char *what);
void tg_cli_rows_free(tg_cli_rows_t *t);

/* Streaming, for a list too long to hold (query): the rows added so far are printed as
 * the continuation of what earlier calls printed, then dropped. The header comes with the
 * first call; JSON is the same array tg_cli_rows_print writes, one element at a time; a
 * table's widths are measured on the rows of the first call and kept (a longer cell later
 * pushes the rest of its line right). tg_cli_rows_end flushes the rest and closes the
 * output (the JSON array's "]"); it does not free. 0, or -1 on a write error or when out
 * of memory. */
int tg_cli_rows_flush(tg_cli_rows_t *t, FILE *out, tg_cli_format_t fmt);
int tg_cli_rows_end(tg_cli_rows_t *t, FILE *out, tg_cli_format_t fmt);

/* The error line of a failed store listing: "out of memory" when a callback gave up (r
 * is -1 with no message), else the store's message. Returns TG_EXIT_RUNTIME. */
int tg_cli_list_error(int r, const tg_err_t *err);

/* Dumps json (indented, then a newline) to stdout and takes its reference. 0 or -1.
 * flags are added to the dump flags (e.g. JSON_REAL_PRECISION). */
int tg_cli_print_json(struct json_t *json, size_t flags);

#endif
