/* CloudFront standard logs (legacy and v2 in W3C form): tab-separated records under
 * "#Version:" and "#Fields:" lines. Fields are found by the #Fields line, so the 26-field
 * layout of older logs, today's 33 fields and a v2 selection of fields all read the same;
 * until a file's #Fields line the standard order is assumed (the older layouts are
 * prefixes of the newer ones). "-" is an empty value.
 *
 * The API key comes from a query parameter (--key-field, default cf_api_key), typically
 * copied there by an edge function. CloudFront writes cs-uri-query URL-encoded once more
 * than the client sent it (a '%' of the client's appears as %25), so the query is decoded
 * once for the log's layer, split into parameters, and the value decoded once more for
 * the parameter's own encoding. Status 000 is a viewer that left before the answer. */
#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"

#define MAX_COLS  64
#define QUERY_MAX 16384 /* CloudFront refuses URLs past 8 KiB; twice that for its escapes */

static const struct {
    const char *name;
    int field;
    int std_col; /* position in the standard layout */
} cf_names[] = {
    {"date", CF_DATE, 0},
    {"time", CF_TIME, 1},
    {"sc-bytes", CF_SC_BYTES, 3},
    {"c-ip", CF_C_IP, 4},
    {"cs-method", CF_METHOD, 5},
    {"cs-uri-stem", CF_URI_STEM, 7},
    {"sc-status", CF_STATUS, 8},
    {"cs-uri-query", CF_QUERY, 11},
    {"x-edge-result-type", CF_RESULT_TYPE, 13},
    {"x-edge-request-id", CF_REQUEST_ID, 14},
    {"cs-bytes", CF_CS_BYTES, 17},
    {"time-taken", CF_TIME_TAKEN, 18},
};
#define NNAMES (sizeof cf_names / sizeof cf_names[0])

void tg_ingest_parser_reset(tg_ingest_parser_t *p)
{
    for (size_t i = 0; i < NNAMES; i++)
        p->cf_col[cf_names[i].field] = cf_names[i].std_col;
    p->cf_ncols = 0; /* any number of columns that holds the fields */
}

/* "#Fields: date time ..." (space-separated names). */
static int fields_line(tg_ingest_parser_t *p, const char *s, size_t n, char *why, size_t cap)
{
    int col[CF_NFIELDS];
    for (int f = 0; f < CF_NFIELDS; f++)
        col[f] = -1;
    int ncols = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t b = i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        if (i == b) break;
        for (size_t k = 0; k < NNAMES; k++)
            if (strlen(cf_names[k].name) == i - b && memcmp(cf_names[k].name, s + b, i - b) == 0)
                col[cf_names[k].field] = ncols;
        if (++ncols > MAX_COLS) {
            snprintf(why, cap, "#Fields names more than %d fields", MAX_COLS);
            return -1;
        }
    }
    static const int required[] = {CF_DATE, CF_TIME, CF_STATUS};
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++)
        if (col[required[k]] < 0) {
            snprintf(why, cap, "#Fields lacks date, time or sc-status");
            return -1;
        }
    memcpy(p->cf_col, col, sizeof col);
    p->cf_ncols = ncols;
    return 0;
}

typedef struct span {
    const char *s;
    size_t n;
} span_t;

static span_t col(const tg_ingest_parser_t *p, const span_t *cols, int field)
{
    int c = p->cf_col[field];
    if (c < 0) return (span_t){"", 0};
    span_t v = cols[c];
    if (v.n == 1 && v.s[0] == '-') v.n = 0; /* "-": empty */
    return v;
}

static int opt_uint(span_t v, int64_t *out)
{
    *out = 0;
    return v.n ? tg_ingest__uint(v.s, v.n, out) : 0;
}

int tg_ingest__cloudfront(tg_ingest_parser_t *p, const char *line, size_t len,
                          tg_ingest_emit_fn emit, void *ud, char *why, size_t cap)
{
    if (line[0] == '#') {
        static const char fields[] = "#Fields:";
        if (len >= sizeof fields - 1 && memcmp(line, fields, sizeof fields - 1) == 0)
            return fields_line(p, line + sizeof fields - 1, len - (sizeof fields - 1), why, cap);
        return 0; /* #Version and other comments */
    }
    span_t cols[MAX_COLS];
    int ncols = 0;
    for (size_t i = 0;;) {
        const char *tab = memchr(line + i, '\t', len - i);
        size_t end = tab ? (size_t)(tab - line) : len;
        if (ncols == MAX_COLS) {
            snprintf(why, cap, "more than %d fields", MAX_COLS);
            return -1;
        }
        cols[ncols++] = (span_t){line + i, end - i};
        if (!tab) break;
        i = end + 1;
    }
    if (p->cf_ncols) {
        if (ncols != p->cf_ncols) {
            snprintf(why, cap, "%d fields where #Fields names %d", ncols, p->cf_ncols);
            return -1;
        }
    } else {
        for (int f = 0; f < CF_NFIELDS; f++)
            if (p->cf_col[f] >= ncols) {
                snprintf(why, cap, "%d fields: not a CloudFront standard log record (no #Fields)",
                         ncols);
                return -1;
            }
    }

    tg_ingest_rec_t rec;
    memset(&rec, 0, sizeof rec);
    tg_event_t *ev = &rec.ev;
    span_t d = col(p, cols, CF_DATE), t = col(p, cols, CF_TIME);
    int64_t y, mo, da, h, mi, se;
    if (d.n != 10 || t.n != 8 || d.s[4] != '-' || d.s[7] != '-' || t.s[2] != ':' || t.s[5] != ':' ||
        tg_ingest__uint(d.s, 4, &y) || tg_ingest__uint(d.s + 5, 2, &mo) ||
        tg_ingest__uint(d.s + 8, 2, &da) || tg_ingest__uint(t.s, 2, &h) ||
        tg_ingest__uint(t.s + 3, 2, &mi) || tg_ingest__uint(t.s + 6, 2, &se) ||
        (ev->ts_us = tg_ingest__utc_us((int)y, (int)mo, (int)da, (int)h, (int)mi, (int)se)) < 0) {
        snprintf(why, cap, "bad date or time");
        return -1;
    }
    span_t st = col(p, cols, CF_STATUS);
    int64_t status;
    if (st.n != 3 || tg_ingest__uint(st.s, 3, &status) != 0) {
        snprintf(why, cap, "bad sc-status");
        return -1;
    }
    ev->status = (int32_t)status; /* 000: the viewer left first (the driver's reason) */
    if (opt_uint(col(p, cols, CF_SC_BYTES), &ev->bytes_out) ||
        opt_uint(col(p, cols, CF_CS_BYTES), &ev->bytes_in)) {
        snprintf(why, cap, "bad sc-bytes or cs-bytes");
        return -1;
    }
    span_t tt = col(p, cols, CF_TIME_TAKEN);
    if (tt.n && tg_ingest__seconds_us(tt.s, tt.n, &ev->latency_us) != 0) {
        snprintf(why, cap, "bad time-taken");
        return -1;
    }
    span_t v = col(p, cols, CF_METHOD);
    TG_EVENT_SET(ev, method, v.s, v.n);
    v = col(p, cols, CF_URI_STEM);
    const char *qm = memchr(v.s, '?', v.n); /* never a query: it may carry a key */
    TG_EVENT_SET(ev, path, v.s, qm ? (size_t)(qm - v.s) : v.n);
    v = col(p, cols, CF_C_IP);
    TG_EVENT_SET(ev, client_ip, v.s, v.n);
    v = col(p, cols, CF_RESULT_TYPE);
    if ((v.n == 3 && memcmp(v.s, "Hit", 3) == 0) ||
        (v.n == 10 && memcmp(v.s, "RefreshHit", 10) == 0))
        TG_EVENT_SET(ev, cache, "hit", 3);
    else if (v.n == 4 && memcmp(v.s, "Miss", 4) == 0)
        TG_EVENT_SET(ev, cache, "miss", 4);
    v = col(p, cols, CF_REQUEST_ID);
    if (v.n) {
        TG_EVENT_SET(ev, request_id, v.s, v.n);
        rec.rid = v.s;
        rec.rid_len = v.n;
    }

    v = col(p, cols, CF_QUERY);
    if (v.n && p->key_field) {
        char q[QUERY_MAX];
        long qn = v.n < sizeof q ? tg_ingest__pct_decode(v.s, v.n, q, sizeof q) : -1;
        if (qn < 0) {
            snprintf(why, cap,
                     v.n < sizeof q ? "cs-uri-query has a broken %%-escape"
                                    : "cs-uri-query longer than 16 KiB");
            return -1;
        }
        if (tg_ingest__key_param(&rec, q, (size_t)qn, p->key_field, 1, why, cap) != 0) return -1;
    }
    rec.raw = line;
    rec.raw_len = len;
    return emit(ud, &rec);
}
