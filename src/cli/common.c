/* Shared by the command groups: see common.h. Also what every store-using
 * command does first: load the config, open its store. Errors are printed
 * here, as the one stderr line the command owes the user, so a command only
 * has to return the exit code it is given. */
#include "cli/common.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/clock.h"
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
    size_t n = strlen(s);
    if (n < 1 || n > 63) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int tg_cli_valid_label(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

/* One UTF-8 sequence at s: its length, or 0 when malformed (overlong forms,
 * surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

int tg_cli_valid_text(const char *s)
{
    if (!tg_cli_valid_label(s)) return 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0) return 0;
        p += n;
    }
    return 1;
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
        size_t n = utf8_len(p);
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
        v = v * 10 + (*s - '0');
        if (v > max) return -1;
    }
    *out = v;
    return 0;
}

int tg_cli_push(void **v, size_t *n, size_t *cap, const void *row, size_t size)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        void *nv = realloc(*v, nc * size);
        if (!nv) return -1;
        *v = nv;
        *cap = nc;
    }
    memcpy((char *)*v + *n * size, row, size);
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

void tg_cli_csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

int tg_cli_print_rows(FILE *out, tg_cli_format_t fmt, size_t ncols, const char *const *head,
                      const char *const *cells, size_t nrows)
{
    if (fmt == TG_CLI_CSV) {
        for (size_t c = 0; c < ncols; c++) {
            tg_cli_csv_field(out, head[c]);
            fputc(c + 1 == ncols ? '\n' : ',', out);
        }
        for (size_t r = 0; r < nrows; r++)
            for (size_t c = 0; c < ncols; c++) {
                const char *s = cells[r * ncols + c];
                tg_cli_csv_field(out, s ? s : "");
                fputc(c + 1 == ncols ? '\n' : ',', out);
            }
        return ferror(out) ? -1 : 0;
    }
    int w[32];
    if (ncols > sizeof w / sizeof w[0]) return -1;
    for (size_t c = 0; c < ncols; c++) {
        w[c] = (int)strlen(head[c]);
        for (size_t r = 0; r < nrows; r++) {
            const char *s = cells[r * ncols + c];
            int l = s ? (int)strlen(s) : 1;
            if (l > w[c]) w[c] = l;
        }
    }
    for (size_t c = 0; c < ncols; c++) {
        for (const char *p = head[c]; *p; p++)
            fputc(*p >= 'a' && *p <= 'z' ? *p - 32 : *p, out);
        if (c + 1 < ncols) fprintf(out, "%*s", w[c] - (int)strlen(head[c]) + 2, "");
    }
    fputc('\n', out);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = cells[r * ncols + c];
            if (!s) s = "-";
            if (c + 1 < ncols)
                fprintf(out, "%-*s  ", w[c], s);
            else
                fprintf(out, "%s\n", s);
        }
    }
    return ferror(out) ? -1 : 0;
}

int tg_cli_print_json(json_t *json, size_t flags)
{
    if (!json) return -1;
    int rc = json_dumpf(json, stdout, JSON_INDENT(2) | flags);
    json_decref(json);
    putchar('\n');
    return rc;
}
