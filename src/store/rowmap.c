/* Row mappings: see rowmap.h. */
#include "store/rowmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tg_rowmap_select(const tg_rowmap_t *m, const char *group, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap) buf[0] = '\0';
    for (int i = 0; i < m->ncols; i++) {
        const char *name = m->cols[i].name;
        int n =
            name ? snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", name)
                 : snprintf(buf + o, cap - o, "%s%s AS grp", i ? ", " : "", group ? group : "''");
        if (n < 0 || (size_t)n >= cap - o) return -1;
        o += (size_t)n;
    }
    return (int)o;
}

char *tg_rowmap_select_sql(const tg_rowmap_t *m, const char *rest)
{
    size_t cap = 7 + strlen(rest) + 2;
    for (int i = 0; i < m->ncols; i++)
        cap += strlen(m->cols[i].name ? m->cols[i].name : "''") + 8;
    char *sql = malloc(cap);
    if (!sql) return NULL;
    memcpy(sql, "SELECT ", 7);
    int n = tg_rowmap_select(m, NULL, sql + 7, cap - 7);
    if (n < 0) { /* cannot happen: cap counts every name */
        free(sql);
        return NULL;
    }
    snprintf(sql + 7 + n, cap - 7 - (size_t)n, " %s", rest);
    return sql;
}

int tg_rowmap_enum(const char *(*names)(int), int count, const char *text)
{
    for (int i = 0; text && i < count; i++)
        if (strcmp(text, names(i)) == 0) return i;
    return -1;
}
