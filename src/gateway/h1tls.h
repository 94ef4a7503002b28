/* TLS settings of the native client's https:// upstreams, on OpenSSL: one
 * client SSL_CTX per (worker, ca_file), made once, and the per-connection
 * checks. As strict as the libcurl path it replaces: the peer verified
 * (SSL_VERIFY_PEER) against the upstream's ca_file or the system's default CA
 * paths, its name checked (DNS name, or IP address for a literal), SNI for
 * names, TLS 1.2 at least, ALPN "http/1.1", no renegotiation. */
#ifndef TG_GATEWAY_H1TLS_H
#define TG_GATEWAY_H1TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* A client context verifying against ca_file (PEM, NULL = the system's CAs), with a
 * client session cache that hands every new session to new_session (the caller keeps it
 * per pool and offers it again: SSL_set_session); NULL on failure. */
SSL_CTX *tg_h1tls_ctx(const char *ca_file, int (*new_session)(SSL *, SSL_SESSION *));

/* A client SSL for one connection to name (a host name, or an IP literal when numeric),
 * with SNI and the name check set; NULL on failure. */
SSL *tg_h1tls_new(SSL_CTX *ctx, const char *name, int numeric);

/* Why a handshake failed, for logs: the certificate's verification error if there was
 * one, else OpenSSL's first queued error (which is then cleared), into buf. */
const char *tg_h1tls_why(SSL *ssl, char *buf, size_t cap);

#endif
