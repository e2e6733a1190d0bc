/*
 * tls.h - TLS contexts (OpenSSL 3) for listeners.
 */
#ifndef PT_TLS_H
#define PT_TLS_H

#include <stddef.h>

#include "config/config-t.h"

typedef struct ssl_ctx_st SSL_CTX;

/* Creates a server context from the listener's TLS configuration: TLS 1.2
 * and 1.3 only, ECDHE with AEAD ciphers for 1.2, ALPN "http/1.1", no
 * renegotiation, client certificates verified against client_ca when asked.
 * Returns a context owned by the caller (SSL_CTX_free), or NULL with a
 * message in err (the file and OpenSSL's reason). */
SSL_CTX *pt_tls_ctx_new(const pt_tls_config_t *c, char *err, size_t errlen);

#endif
