/* Writing to a libuv stream without a copy in the common case: uv_try_write
 * first, and only what the kernel did not take is copied into one block and
 * queued with uv_write. Used for both client and upstream sockets. */
#ifndef TG_GATEWAY_WQUEUE_H
#define TG_GATEWAY_WQUEUE_H

#include <uv.h>

/* Called when a queued remainder was written (or failed); data as passed. */
typedef void (*tg_wq_cb)(void *data, int status);

/* Writes bufs in order. Returns 0 (all written or the rest queued; cb runs
 * later only if something was queued), or a negative libuv error. */
int tg_wq_write(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, tg_wq_cb cb, void *data);

#endif
