/* Listening sockets. libuv 1.44 has no SO_REUSEPORT flag, so the socket is
 * made here (socket, SO_REUSEADDR + SO_REUSEPORT, bind, listen) and handed to
 * uv_tcp_open: each worker gets its own, and the kernel spreads connections. */
#ifndef TG_GATEWAY_LISTEN_H
#define TG_GATEWAY_LISTEN_H

#include <sys/socket.h>

#include "util/err.h"

/* Parses "host:port" or "[v6]:port" (numeric hosts, or "localhost"). */
int tg_listen_parse(const char *hostport, struct sockaddr_storage *out, tg_err_t *err);
/* A listening socket bound to addr; returns the fd or -1. */
int tg_listen_socket(const struct sockaddr_storage *addr, int reuseport, tg_err_t *err);
/* "ip:port" of a socket address, for messages. */
void tg_listen_format(const struct sockaddr_storage *addr, char *buf, size_t cap);

#endif
