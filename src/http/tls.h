/*
 * tls.h - TLS (OpenSSL 3) for listeners and toward upstreams.
 */
#ifndef PT_TLS_H
#define PT_TLS_H

#include <stddef.h>

#include "config/config-t.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* Creates a server context from the listener's TLS configuration: TLS 1.2
 * and 1.3 only, ECDHE with AEAD ciphers for 1.2, ALPN "http/1.1", no
 * renegotiation, client certificates verified against client_ca when asked.
 * Returns a context owned by the caller (SSL_CTX_free), or NULL with a
 * message in err (the file and OpenSSL's reason). */
SSL_CTX *pt_tls_ctx_new(const pt_tls_config_t *c, char *err, size_t errlen);

/* Creates a client context for the https targets of a proxy API: TLS 1.2
 * or later, ALPN "http/1.1", the peer verified against c->ca_file or the
 * system store unless c->verify is 0, the client certificate if any. The
 * caller keeps sessions (SSL_CTX_sess_set_new_cb): OpenSSL's internal
 * client cache is off. NULL with a message in err on failure. */
SSL_CTX *pt_tls_client_ctx_new(const pt_upstream_tls_t *c, char *err, size_t errlen);

/* A client TLS object over memory BIOs (the caller moves bytes between
 * them and the socket), in connect state: SNI is server_name, else host
 * unless it is an IP address; with verify, the certificate must match that
 * name (or address). NULL when out of memory. */
SSL *pt_tls_client_new(SSL_CTX *ctx, const char *host, const char *server_name, int verify);

/* Advances the handshake once input arrived (or to start it). Returns 1
 * when complete, 0 when it needs more input (flush the write BIO first),
 * -1 on failure with the reason in why (the verification error when the
 * certificate was refused). */
int pt_tls_client_handshake(SSL *ssl, char *why, size_t whylen);

#endif
