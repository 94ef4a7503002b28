/* Shared by the command groups: see common.h. Also what every store-using
 * command does first: load the config, open its store. Errors are printed
 * here, as the one stderr line the command owes the user, so a command only
 * has to return the exit code it is given. */
#include "cli/common.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "types/text.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sizes.h"
#include "util/money.h"

int tg_cli_open(const char *config_path, tg_config_t **cfg, tg_store_t **store)
{
    tg_err_t err = {{0}};
    *cfg = NULL;
    *store = NULL;
    if (tg_config_load(config_path, cfg, &err) != 0) {
        fprintf(stderr, "tollgate: %s\n", err.msg);
        return TG_EXIT_USAGE;
    }
    if (tg_store_open((*cfg)->store, store, &err) != 0) {
        fprintf(stderr, "tollgate: %s\n", err.msg);
        tg_config_unref(*cfg);
        *cfg = NULL;
        return TG_EXIT_RUNTIME;
    }
    return TG_EXIT_OK;
}

int tg_cli_errorf(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tollgate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

void tg_cli_fmt_time(int64_t us, char buf[25])
{
    if (us <= 0) {
        snprintf(buf, 25, "-");
        return;
    }
    tg_utc_iso(us, buf);
    buf[19] = 'Z';
    buf[20] = '\0';
}

int tg_cli_valid_tenant_id(const char *s)
{
    return tg_tenant_id_valid(s);
}

int tg_cli_valid_label(const char *s)
{
    return tg_text_valid_label(s);
}

int tg_cli_valid_text(const char *s)
{
    return tg_text_valid_utf8(s);
}

json_t *tg_cli_json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    size_t len = strlen(s);
    char *buf = malloc(len + 1);
    if (!buf) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p) {
        size_t n = tg_text_utf8_len(p);
        if (n == 0) {
            buf[o++] = '?';
            p++;
        } else {
            memcpy(buf + o, p, n);
            o += n;
            p += n;
        }
    }
    buf[o] = '\0';
    j = json_string(buf);
    free(buf);
    return j;
}

int tg_cli_parse(int argc, char **argv, int first, const tg_cli_opt_t *opts, size_t nopts,
                 const char **pos, int maxpos, int *npos, int *help, const char *usage)
{
    int only_positional = 0, n = 0;
    if (npos) *npos = 0;
    for (int i = first; i < argc; i++) {
        const char *s = argv[i];
        if (!only_positional && strcmp(s, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (!only_positional && s[0] == '-' && s[1]) {
            if (help && (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0)) {
                *help = 1;
                continue;
            }
            size_t klen = strcspn(s, "=");
            size_t o = 0;
            while (o < nopts &&
                   !(strlen(opts[o].name) == klen && strncmp(s, opts[o].name, klen) == 0))
                o++;
            if (o == nopts)
                return tg_cli_errorf(TG_EXIT_USAGE, "unknown option %.*s", (int)klen, s);
            if (s[klen] == '=')
                *opts[o].slot = s + klen + 1;
            else if (i + 1 < argc)
                *opts[o].slot = argv[++i];
            else
                return tg_cli_errorf(TG_EXIT_USAGE, "%s needs a value", s);
            continue;
        }
        if (n >= maxpos)
            return tg_cli_errorf(TG_EXIT_USAGE, "unexpected argument \"%s\" (%s)", s, usage);
        pos[n++] = s;
        if (npos) *npos = n;
    }
    return TG_EXIT_OK;
}

int tg_cli_parse_count(const char *s, int64_t max, int64_t *out)
{
    int64_t v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        /* checked before it is computed: with max near INT64_MAX, v * 10 would overflow */
        int d = *s - '0';
        if (d > max || v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int tg_cli_push(void **v, size_t *n, size_t *cap, const void *row, size_t size)
{
    /* The caller keeps the array as its rows; the buffer is rebuilt around it for the add
     * (n * size <= cap: the product cannot wrap). */
    tg_buf_t b = {*v, *n * size, *cap, TG_CLI_ROWS_MAX};
    if (tg_buf_add(&b, row, size) != TG_BUF_OK) return -1;
    *v = b.p;
    *cap = b.cap;
    (*n)++;
    return 0;
}

int tg_cli_check_tenant(const char *tenant, int star_ok)
{
    if (star_ok && strcmp(tenant, "*") == 0) return TG_EXIT_OK;
    if (tg_cli_valid_tenant_id(tenant)) return TG_EXIT_OK;
    return tg_cli_errorf(TG_EXIT_USAGE,
                         "invalid tenant id \"%s\": use 1-63 characters of A-Z a-z 0-9 . _ -%s",
                         tenant, star_ok ? " (or * for every tenant)" : "");
}

int tg_cli_tenant_exists(tg_store_t *store, const char *tenant, int star_ok)
{
    if (star_ok && strcmp(tenant, "*") == 0) return TG_EXIT_OK;
    tg_err_t err = {{0}};
    tg_tenant_t t;
    int r = tg_store_tenant_get(store, tenant, &t, &err);
    if (r == TG_STORE_NOTFOUND) return tg_cli_errorf(TG_EXIT_RUNTIME, "no tenant \"%s\"", tenant);
    if (r != 0) return tg_cli_errorf(TG_EXIT_RUNTIME, "%s", err.msg);
    return TG_EXIT_OK;
}

const char *tg_cli_rule_owner(const char *tenant, char *buf, size_t cap)
{
    if (strcmp(tenant, "*") == 0) return "for all tenants";
    snprintf(buf, cap, "for tenant %s", tenant);
    return buf;
}

int tg_cli_parse_format(const char *s, int allow_csv, tg_cli_format_t *out)
{
    *out = TG_CLI_TABLE;
    if (!s || strcmp(s, "table") == 0) return TG_EXIT_OK;
    if (strcmp(s, "json") == 0) {
        *out = TG_CLI_JSON;
        return TG_EXIT_OK;
    }
    if (allow_csv && strcmp(s, "csv") == 0) {
        *out = TG_CLI_CSV;
        return TG_EXIT_OK;
    }
    return tg_cli_errorf(TG_EXIT_USAGE, "invalid --format \"%s\" (expected %s)", s,
                         allow_csv ? "table, json or csv" : "table or json");
}

int tg_cli_parse_usd(const char *opt, const char *s, int64_t *micros)
{
    if (tg_money_parse(s, micros) == 0) return TG_EXIT_OK;
    return tg_cli_errorf(TG_EXIT_USAGE,
                         "invalid %s \"%s\" (expected an amount in USD such as 2.50: digits, "
                         "at most 6 decimals, no sign or currency symbol)",
                         opt, s);
}

int tg_cli_take_flag(int *argc, char **argv, int first, const char *name)
{
    int n = 0, o = first;
    size_t len = strlen(name);
    for (int i = first; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < *argc)
                argv[o++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], name) == 0) {
            n++;
            continue;
        }
        if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') {
            tg_cli_errorf(TG_EXIT_USAGE, "%s takes no value", name);
            return -1;
        }
        argv[o++] = argv[i];
    }
    *argc = o;
    argv[o] = NULL;
    return n;
}

/* A plain decimal number ("-12", "0.5"): a spreadsheet reads it as a number, not a formula. */
static int plain_number(const char *s)
{
    if (*s == '-') s++;
    if (!isdigit((unsigned char)*s)) return 0;
    while (isdigit((unsigned char)*s))
        s++;
    if (*s == '.' && isdigit((unsigned char)s[1]))
        for (s++; isdigit((unsigned char)*s);)
            s++;
    return *s == '\0';
}

void tg_cli_csv_field(FILE *out, const char *s)
{
    /* A spreadsheet runs a cell that starts with = + - @ (or TAB, CR) as a formula, and
     * model names, paths and tool names come from tenants: such a cell gets a leading '
     * (OWASP's advice), and so does one that starts with ' itself, so that a reader strips
     * exactly one leading ' from every cell that has one to get the value back. */
    int guard = strchr("=+-@\t\r'", s[0]) && s[0] && !plain_number(s);
    if (!guard && !strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    if (guard) fputc('\'', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* ---- the list writer ---- */

typedef struct tg_cli_cell {
    size_t off;         /* of its text in rows->text; NO_TEXT for none or a JSON value */
    int64_t n;          /* INT columns, for JSON */
    json_t *json;       /* JSON columns; owned by the rows */
    unsigned char skip; /* left out of the row's JSON object */
} cell_t;

#define NO_TEXT  ((size_t)-1)
#define MAX_COLS TG_CLI_MAX_COLS

/* A new cell for the next column, which must be of type a or b; NULL (the rows are
 * marked out of memory) when it cannot grow. */
static cell_t *new_cell(tg_cli_rows_t *t, tg_cli_col_type_t a, tg_cli_col_type_t b)
{
    if (t->oom) return NULL;
    tg_cli_col_type_t type = t->cols[t->ncells % t->ncols].type;
    TG_ASSERT(type == a || type == b);
    cell_t c = {NO_TEXT, 0, NULL, 0};
    if (tg_cli_push((void **)&t->cells, &t->ncells, &t->cap, &c, sizeof c) != 0) {
        t->oom = 1;
        return NULL;
    }
    return &t->cells[t->ncells - 1];
}

static void set_text(tg_cli_rows_t *t, cell_t *c, const char *s)
{
    size_t len = strlen(s) + 1;
    if (t->tlen + len > t->tcap) {
        size_t cap = t->tcap ? t->tcap : 1024;
        while (cap < t->tlen + len)
            cap *= 2;
        char *nt = realloc(t->text, cap);
        if (!nt) {
            t->oom = 1;
            return;
        }
        t->text = nt;
        t->tcap = cap;
    }
    memcpy(t->text + t->tlen, s, len);
    c->off = t->tlen;
    t->tlen += len;
}

void tg_cli_cell_text(tg_cli_rows_t *t, const char *s)
{
    if (!s) {
        new_cell(t, TG_CLI_COL_TEXT_OR_NONE, TG_CLI_COL_TEXT_OR_NONE);
        return;
    }
    cell_t *c = new_cell(t, TG_CLI_COL_TEXT, TG_CLI_COL_TEXT_OR_NONE);
    if (c) set_text(t, c, s);
}

void tg_cli_cell_time(tg_cli_rows_t *t, int64_t us)
{
    char buf[25];
    tg_cli_fmt_time(us, buf);
    tg_cli_cell_text(t, buf);
}

void tg_cli_cell_int(tg_cli_rows_t *t, int64_t v)
{
    cell_t *c = new_cell(t, TG_CLI_COL_INT, TG_CLI_COL_INT_OR_NONE);
    if (!c) return;
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    c->n = v;
    set_text(t, c, buf);
}

void tg_cli_cell_int_or_none(tg_cli_rows_t *t, int has, int64_t v)
{
    if (has)
        tg_cli_cell_int(t, v);
    else
        tg_cli_cell_none(t);
}

void tg_cli_cell_none(tg_cli_rows_t *t)
{
    new_cell(t, TG_CLI_COL_TEXT_OR_NONE, TG_CLI_COL_INT_OR_NONE);
}

void tg_cli_cell_json(tg_cli_rows_t *t, json_t *v)
{
    cell_t *c = v ? new_cell(t, TG_CLI_COL_JSON, TG_CLI_COL_JSON) : NULL;
    if (c)
        c->json = v;
    else {
        json_decref(v);
        t->oom = 1;
    }
}

void tg_cli_cell_any(tg_cli_rows_t *t, const char *text, json_t *v)
{
    cell_t *c = new_cell(t, TG_CLI_COL_ANY, TG_CLI_COL_ANY);
    if (!c) {
        json_decref(v);
        return;
    }
    c->json = v;
    if (text) set_text(t, c, text);
}

void tg_cli_cell_skip_json(tg_cli_rows_t *t)
{
    if (!t->oom) t->cells[t->ncells - 1].skip = 1;
}

int tg_cli_row_done(tg_cli_rows_t *t)
{
    if (t->oom) return -1;
    TG_ASSERT_EQ(t->ncells % t->ncols, 0);
    return 0;
}

/* The text a table (dash) or CSV shows for a cell. */
static const char *shown(const tg_cli_rows_t *t, size_t i, int dash)
{
    const cell_t *c = &t->cells[i];
    const char *s = c->off == NO_TEXT ? NULL : t->text + c->off;
    if (!dash) return s ? s : "";
    if (!s || (!*s && (t->cols[i % t->ncols].flags & TG_CLI_COL_DASH))) return "-";
    return s;
}

static int in_table(const tg_cli_col_t *c)
{
    return c->type != TG_CLI_COL_JSON && !(c->flags & TG_CLI_COL_JSON_ONLY);
}

static void print_csv(const tg_cli_rows_t *t, FILE *out, int header)
{
    size_t last = 0;
    for (size_t c = 0; c < t->ncols; c++)
        if (in_table(&t->cols[c])) last = c;
    for (size_t c = 0; header && c < t->ncols; c++) {
        if (!in_table(&t->cols[c])) continue;
        tg_cli_csv_field(out, t->cols[c].name);
        fputc(c == last ? '\n' : ',', out);
    }
    for (size_t i = 0; i < t->ncells; i++) {
        size_t c = i % t->ncols;
        if (!in_table(&t->cols[c])) continue;
        tg_cli_csv_field(out, shown(t, i, 0));
        fputc(c == last ? '\n' : ',', out);
    }
}

/* The table's column widths into w (ncols of them), measured on t's rows. */
static void measure(const tg_cli_rows_t *t, int *w)
{
    for (size_t c = 0; c < t->ncols; c++) {
        if (!in_table(&t->cols[c])) continue;
        w[c] = t->cols[c].width;
        if (w[c]) continue;
        w[c] = (int)strlen(t->cols[c].name);
        for (size_t i = c; i < t->ncells; i += t->ncols) {
            int l = (int)strlen(shown(t, i, 1));
            if (l > w[c]) w[c] = l;
        }
    }
}

/* s padded to width w (negative: left-aligned; 0: as is) with every control character
 * shown as '?': a cell can hold a tenant's text (a model name, a path) and a table goes to
 * a terminal, where ESC would start a sequence (a window title, colours, worse) and a
 * newline a line that is not a row. C1 controls too, as UTF-8 (U+0080-U+009F: xterm reads
 * U+009B as CSI). And the bidirectional controls (U+200E-U+200F, U+202A-U+202E,
 * U+2066-U+2069): they reorder what follows on the line, so a model name could show
 * another tenant's figures as its own ("Trojan Source"). One byte for one, so the measured
 * widths hold. CSV and JSON keep the value as it is (JSON escapes it). */
static void put_cell(FILE *out, const char *s, int w)
{
    size_t n = strlen(s);
    size_t pad = (size_t)(w < 0 ? -w : w) > n ? (size_t)(w < 0 ? -w : w) - n : 0;
    for (size_t i = 0; w > 0 && i < pad; i++)
        fputc(' ', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        unsigned char c1 = (unsigned char)s[c ? 1 : 0], c2 = c1 ? (unsigned char)s[2] : 0;
        if (c == 0xc2 && c1 >= 0x80 && c1 <= 0x9f) {
            fputs("??", out);
            s++;
        } else if (c == 0xe2 &&
                   ((c1 == 0x80 && ((c2 >= 0x8e && c2 <= 0x8f) || (c2 >= 0xaa && c2 <= 0xae))) ||
                    (c1 == 0x81 && c2 >= 0xa6 && c2 <= 0xa9))) {
            fputs("???", out);
            s += 2;
        } else {
            fputc(c < 0x20 || c == 0x7f ? '?' : c, out);
        }
    }
    for (size_t i = 0; w < 0 && i < pad; i++)
        fputc(' ', out);
}

/* With header, the upper-case names first; widths: NULL measures t's rows. */
static void print_table(const tg_cli_rows_t *t, FILE *out, int header, const int *widths)
{
    int w[MAX_COLS];
    TG_ASSERT(t->ncols <= MAX_COLS);
    size_t last = 0;
    for (size_t c = 0; c < t->ncols; c++)
        if (in_table(&t->cols[c])) last = c;
    if (widths)
        memcpy(w, widths, t->ncols * sizeof *w);
    else
        measure(t, w);
    char head[64];
    for (size_t i = header ? 0 : t->ncols; i < t->ncols + t->ncells; i++) {
        size_t c = i % t->ncols;
        const tg_cli_col_t *col = &t->cols[c];
        if (!in_table(col)) continue;
        const char *s;
        if (i < t->ncols) { /* the header row */
            size_t k = 0;
            for (; col->name[k] && k < sizeof head - 1; k++)
                head[k] = (char)(col->name[k] >= 'a' && col->name[k] <= 'z' ? col->name[k] - 32
                                                                            : col->name[k]);
            head[k] = '\0';
            s = head;
        } else {
            s = shown(t, i - t->ncols, 1);
        }
        put_cell(out, s, col->flags & TG_CLI_COL_RIGHT ? w[c] : c == last ? 0 : -w[c]);
        fputs(c == last ? "\n" : "  ", out);
    }
}

json_t *tg_cli_rows_json(const tg_cli_rows_t *t)
{
    if (t->oom) return NULL;
    json_t *arr = json_array(), *o = NULL;
    for (size_t i = 0; arr && i < t->ncells; i++) {
        size_t c = i % t->ncols;
        const tg_cli_col_t *col = &t->cols[c];
        const cell_t *x = &t->cells[i];
        if (c == 0 && (!(o = json_object()) || json_array_append_new(arr, o) != 0)) goto fail;
        if ((col->flags & TG_CLI_COL_NO_JSON) || x->skip) continue;
        const char *s = x->off == NO_TEXT ? NULL : t->text + x->off;
        json_t *v;
        switch (col->type) {
        case TG_CLI_COL_TEXT:
        case TG_CLI_COL_TEXT_OR_NONE:
            v = !s ? json_null() : col->json_text ? col->json_text(s) : tg_cli_json_text(s);
            break;
        case TG_CLI_COL_INT:
        case TG_CLI_COL_INT_OR_NONE: v = s ? json_integer(x->n) : json_null(); break;
        case TG_CLI_COL_ANY: v = x->json ? json_incref(x->json) : json_null(); break;
        default: v = json_incref(x->json);
        }
        if (!v || json_object_set_new(o, col->name, v) != 0) goto fail;
    }
    return arr;
fail:
    json_decref(arr);
    return NULL;
}

int tg_cli_rows_print(const tg_cli_rows_t *t, FILE *out, tg_cli_format_t fmt)
{
    if (t->oom) return -1;
    TG_ASSERT_EQ(t->ncells % t->ncols, 0);
    if (fmt == TG_CLI_JSON) {
        json_t *arr = tg_cli_rows_json(t);
        int rc = arr ? json_dumpf(arr, out, JSON_INDENT(2) | t->json_flags) : -1;
        json_decref(arr);
        fputc('\n', out);
        if (rc != 0) return -1;
    } else if (fmt == TG_CLI_CSV) {
        print_csv(t, out, 1);
    } else {
        print_table(t, out, 1, NULL);
    }
    return ferror(out) ? -1 : 0;
}

/* Each element of the chunk's array as tg_cli_rows_print's array holds it: indented by
 * 2 more, after "[" or a ",". */
static int print_json_chunk(const tg_cli_rows_t *t, FILE *out)
{
    json_t *arr = tg_cli_rows_json(t);
    if (!arr) return -1;
    size_t i;
    json_t *o;
    int rc = 0;
    json_array_foreach(arr, i, o)
    {
        char *s = json_dumps(o, JSON_INDENT(2) | t->json_flags);
        if (!s) {
            rc = -1;
            break;
        }
        fputs(t->printed + i ? ",\n  " : "[\n  ", out);
        for (const char *p = s, *nl; *p; p = nl + 1) {
            if (!(nl = strchr(p, '\n'))) {
                fputs(p, out);
                break;
            }
            fwrite(p, 1, (size_t)(nl - p) + 1, out);
            fputs("  ", out);
        }
        free(s);
    }
    json_decref(arr);
    return rc;
}

int tg_cli_rows_flush(tg_cli_rows_t *t, FILE *out, tg_cli_format_t fmt)
{
    if (t->oom) return -1;
    TG_ASSERT_EQ(t->ncells % t->ncols, 0);
    size_t rows = t->ncells / t->ncols;
    int header = !t->begun;
    if (fmt == TG_CLI_JSON) {
        if (print_json_chunk(t, out) != 0) return -1;
    } else if (fmt == TG_CLI_CSV) {
        print_csv(t, out, header);
    } else {
        if (!t->widths) {
            TG_ASSERT(t->ncols <= MAX_COLS);
            if (!(t->widths = calloc(t->ncols, sizeof *t->widths))) return -1;
            measure(t, t->widths);
        }
        print_table(t, out, header, t->widths);
    }
    t->printed += rows;
    t->begun = 1;
    for (size_t i = 0; i < t->ncells; i++)
        json_decref(t->cells[i].json);
    t->ncells = t->tlen = 0;
    return ferror(out) ? -1 : 0;
}

int tg_cli_rows_end(tg_cli_rows_t *t, FILE *out, tg_cli_format_t fmt)
{
    if ((t->ncells > 0 || !t->begun) && tg_cli_rows_flush(t, out, fmt) != 0) return -1;
    if (fmt == TG_CLI_JSON) fputs(t->printed ? "\n]\n" : "[]\n", out);
    return ferror(out) ? -1 : 0;
}

int tg_cli_rows_finish(tg_cli_rows_t *t, int r, const tg_err_t *err, tg_cli_format_t fmt,
                       const char *what)
{
    int w = r == 0 ? tg_cli_rows_print(t, stdout, fmt) : 0;
    tg_cli_rows_free(t);
    if (r != 0) return tg_cli_list_error(r, err);
    if (w != 0 || fflush(stdout) != 0 || ferror(stdout))
        return tg_cli_errorf(TG_EXIT_RUNTIME, "cannot write the %s", what);
    return TG_EXIT_OK;
}

void tg_cli_rows_free(tg_cli_rows_t *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        json_decref(t->cells[i].json);
    free(t->cells);
    free(t->text);
    free(t->widths);
    t->cells = NULL;
    t->text = NULL;
    t->widths = NULL;
    t->ncells = t->cap = t->tlen = t->tcap = 0;
}

int tg_cli_list_error(int r, const tg_err_t *err)
{
    return tg_cli_errorf(TG_EXIT_RUNTIME, "%s",
                         r == -1 && !err->msg[0] ? "out of memory" : err->msg);
}

int tg_cli_print_json(json_t *json, size_t flags)
{
    if (!json) return -1;
    int rc = json_dumpf(json, stdout, JSON_INDENT(2) | flags);
    json_decref(json);
    putchar('\n');
    return rc;
}
