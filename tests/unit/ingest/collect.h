/* Shared by the parser tests: parse lines and keep the records they emit. */
#ifndef TG_TEST_INGEST_COLLECT_H
#define TG_TEST_INGEST_COLLECT_H

#include <string.h>

#include "ingest/ingest.h"

typedef struct got {
    tg_ingest_rec_t recs[8];
    char rid[8][128]; /* copies: rec.rid points into the parser's line or JSON */
    int n;
    char why[256];
} got_t;

static int collect(void *ud, tg_ingest_rec_t *rec)
{
    got_t *g = ud;
    if (g->n == 8) return 9;
    g->recs[g->n] = *rec;
    size_t n = rec->rid ? rec->rid_len : 0;
    if (n >= sizeof g->rid[0]) n = sizeof g->rid[0] - 1;
    memcpy(g->rid[g->n], rec->rid ? rec->rid : "", n);
    g->rid[g->n][n] = '\0';
    g->n++;
    return 0;
}

/* Parses one NUL-terminated line into g (reset first); the parser's return. */
static int parse(tg_ingest_parser_t *p, const char *line, got_t *g)
{
    memset(g, 0, sizeof *g);
    return tg_ingest_parse(p, line, strlen(line), collect, g, g->why, sizeof g->why);
}

#endif
