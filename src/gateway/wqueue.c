/* Copy-on-short-write output: see wqueue.h. */
#include "gateway/wqueue.h"

#include <stdlib.h>
#include <string.h>

typedef struct wblk {
    uv_write_t req;
    tg_wq_cb cb;
    void *data;
    char bytes[];
} wblk_t;

static void on_written(uv_write_t *req, int status)
{
    wblk_t *b = (wblk_t *)req;
    tg_wq_cb cb = b->cb;
    void *data = b->data;
    free(b);
    if (cb) cb(data, status);
}

int tg_wq_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, tg_wq_cb cb, void *data)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (total == 0) return 0;
    int r = uv_try_write(s, bufs, n);
    if (r == (int)total) return 0;
    if (r < 0 && r != UV_EAGAIN) return r;
    size_t skip = r > 0 ? (size_t)r : 0, len = 0;
    wblk_t *b = malloc(sizeof *b + total - skip);
    if (!b) return UV_ENOMEM;
    b->cb = cb;
    b->data = data;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(b->bytes + len, bufs[i].base + skip, l - skip);
        len += l - skip;
        skip = 0;
    }
    uv_buf_t one = uv_buf_init(b->bytes, (unsigned)len);
    r = uv_write(&b->req, s, &one, 1, on_written);
    if (r != 0) free(b);
    return r;
}
