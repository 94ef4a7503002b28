/* TLS for the native client: see h1tls.h. */
#include "gateway/h1tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>

SSL_CTX *tg_h1tls_ctx(const char *ca_file, int (*new_session)(SSL *, SSL_SESSION *))
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return NULL;
    static const unsigned char alpn[] = "\x08http/1.1";
    int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
             SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) == 0 &&
             (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) == 1
                      : SSL_CTX_set_default_verify_paths(ctx) == 1);
    if (!ok) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Sessions are kept by the caller, per pool, not in the context's store. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    return ctx;
}

SSL *tg_h1tls_new(SSL_CTX *ctx, const char *name, int numeric)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return NULL;
    int ok;
    if (numeric) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(ssl, name) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
    }
    if (!ok) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

const char *tg_h1tls_why(SSL *ssl, char *buf, size_t cap)
{
    long v = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_error();
    if (v != X509_V_OK)
        snprintf(buf, cap, "TLS certificate verification failed: %s",
                 X509_verify_cert_error_string(v));
    else if (e) {
        const char *why = ERR_reason_error_string(e);
        snprintf(buf, cap, "TLS handshake failed: %s", why ? why : "unknown error");
    } else
        snprintf(buf, cap, "TLS handshake failed");
    ERR_clear_error();
    return buf;
}
