/* Listening sockets: see listen.h. */
#include "gateway/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tg_listen_parse(const char *hostport, struct sockaddr_storage *out, tg_err_t *err)
{
    char host[256];
    const char *colon;
    memset(out, 0, sizeof *out);
    if (hostport[0] == '[') {
        const char *rb = strchr(hostport, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - hostport - 1) >= sizeof host)
            return tg_err_set(err, "\"%s\" is not host:port", hostport);
        memcpy(host, hostport + 1, (size_t)(rb - hostport - 1));
        host[rb - hostport - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (!colon || (size_t)(colon - hostport) >= sizeof host)
            return tg_err_set(err, "\"%s\" is not host:port", hostport);
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port < 0 || port > 65535)
        return tg_err_set(err, "\"%s\": bad port", hostport);
    if (strcmp(host, "localhost") == 0 || host[0] == '\0')
        snprintf(host, sizeof host, "%s", host[0] ? "127.0.0.1" : "0.0.0.0");
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return tg_err_set(err, "\"%s\": host must be a numeric IPv4/IPv6 address or localhost",
                      hostport);
}

int tg_listen_socket(const struct sockaddr_storage *addr, int reuseport, tg_err_t *err)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return tg_err_set(err, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    socklen_t len =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    char name[80];
    tg_listen_format(addr, name, sizeof name);
    if (bind(fd, (const struct sockaddr *)addr, len) != 0) {
        tg_err_set(err, "cannot listen on %s: %s", name, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 1024) != 0) {
        tg_err_set(err, "listen on %s: %s", name, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void tg_listen_format(const struct sockaddr_storage *addr, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(buf, cap, "%s:%u", ip, ntohs(a->sin_port));
    }
}
