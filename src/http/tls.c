/*
 * tls.c - TLS contexts for listeners, and TLS toward upstreams (see tls.h).
 */
#include "http/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

static void openssl_reason(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file ? file : "", buf);
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char protos[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, protos, sizeof(protos) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* the client offers no protocol we speak */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *pt_tls_ctx_new(const pt_tls_config_t *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        openssl_reason(err, errlen, "cannot create a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_SINGLE_ECDH_USE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* TLS 1.2: forward secrecy and AEAD only (Mozilla "intermediate"). */
    if (SSL_CTX_set_cipher_list(ctx,
                                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") != 1) {
        openssl_reason(err, errlen, "cannot set ciphers", NULL);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1) {
        openssl_reason(err, errlen, "cannot load certificate", c->cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key_file, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(err, errlen, "cannot load private key", c->key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "private key %s does not match certificate %s", c->key_file,
                 c->cert_file);
        ERR_clear_error();
        goto fail;
    }
    if (c->client_cert != PT_CLIENT_CERT_NONE) {
        STACK_OF(X509_NAME) * names;
        if (c->client_ca_file == NULL ||
            SSL_CTX_load_verify_locations(ctx, c->client_ca_file, NULL) != 1) {
            openssl_reason(err, errlen, "cannot load client CA bundle", c->client_ca_file);
            goto fail;
        }
        names = SSL_load_client_CA_file(c->client_ca_file);
        if (names == NULL) {
            openssl_reason(err, errlen, "no CA names in", c->client_ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(
            ctx,
            SSL_VERIFY_PEER |
                (c->client_cert == PT_CLIENT_CERT_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
            NULL);
        SSL_CTX_set_verify_depth(ctx, 8);
        /* Session resumption must not skip client verification across contexts. */
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"portico", 7);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ------------------------------------------------------------------ client side (upstreams) */

SSL_CTX *pt_tls_client_ctx_new(const pt_upstream_tls_t *c, char *err, size_t errlen)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        openssl_reason(err, errlen, "cannot create a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* idle pooled connections keep no record buffers */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
        openssl_reason(err, errlen, "cannot set ALPN", NULL);
        goto fail;
    }
    if (c->verify) {
        if (c->ca_file != NULL) {
            if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1) {
                openssl_reason(err, errlen, "cannot load CA bundle", c->ca_file);
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            openssl_reason(err, errlen, "cannot load the system CA store", NULL);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_verify_depth(ctx, 10);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (c->client_cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, c->client_cert) != 1) {
            openssl_reason(err, errlen, "cannot load client certificate", c->client_cert);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, c->client_key, SSL_FILETYPE_PEM) != 1) {
            openssl_reason(err, errlen, "cannot load client key", c->client_key);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, errlen, "client key %s does not match certificate %s", c->client_key,
                     c->client_cert);
            ERR_clear_error();
            goto fail;
        }
    }
    /* sessions are kept by the caller, per worker and target (new_session callback) */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *pt_tls_client_new(SSL_CTX *ctx, const char *host, const char *server_name, int verify)
{
    const char *name = server_name != NULL ? server_name : host;
    unsigned char bin[16];
    int is_ip = inet_pton(AF_INET, name, bin) == 1 || inet_pton(AF_INET6, name, bin) == 1;
    SSL *ssl = SSL_new(ctx);
    BIO *rbio, *wbio;

    if (ssl == NULL)
        return NULL;
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    if (rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(ssl);
        return NULL;
    }
    BIO_set_mem_eof_return(rbio, -1);
    BIO_set_mem_eof_return(wbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_connect_state(ssl);
    /* RFC 6066: no SNI for an address; the certificate is then checked against it */
    if (!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1)
        goto fail;
    if (verify) {
        if (is_ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
                goto fail;
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(ssl, name) != 1)
                goto fail;
        }
    }
    return ssl;
fail:
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

int pt_tls_client_handshake(SSL *ssl, char *why, size_t whylen)
{
    int r = SSL_do_handshake(ssl), e;
    long vr;
    unsigned long oe;
    if (r == 1)
        return 1;
    e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return 0;
    }
    vr = SSL_get_verify_result(ssl);
    oe = ERR_peek_error();
    if (vr != X509_V_OK)
        snprintf(why, whylen, "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    else
        snprintf(why, whylen, "%s",
                 oe != 0 && ERR_reason_error_string(oe) ? ERR_reason_error_string(oe)
                                                        : "protocol error or connection closed");
    ERR_clear_error();
    return -1;
}
