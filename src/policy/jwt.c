/*
 * jwt.c - JSON Web Tokens: decoding, verification, claims (see jwt.h).
 */
#include "policy/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connector/http.h"
#include "core/log.h"

enum { KEY_HMAC = 1, KEY_RSA, KEY_EC256, KEY_EC384 };

struct pt_jwt_key_s {
    int type;
    unsigned algs;  /* algorithms this key may verify */
    char kid[128];  /* "" = none */
    EVP_PKEY *pkey; /* RSA and EC */
    unsigned char *secret;
    size_t secret_len;
};

static const struct {
    const char *name;
    unsigned bit;
} algs[] = {{"HS256", PT_JWT_HS256}, {"HS384", PT_JWT_HS384}, {"HS512", PT_JWT_HS512},
            {"RS256", PT_JWT_RS256}, {"RS384", PT_JWT_RS384}, {"RS512", PT_JWT_RS512},
            {"ES256", PT_JWT_ES256}, {"ES384", PT_JWT_ES384}};

#define HS_ALGS (PT_JWT_HS256 | PT_JWT_HS384 | PT_JWT_HS512)
#define RS_ALGS (PT_JWT_RS256 | PT_JWT_RS384 | PT_JWT_RS512)

unsigned pt_jwt_alg(const char *name, size_t len)
{
    size_t i;
    for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (len == 5 && memcmp(name, algs[i].name, 5) == 0)
            return algs[i].bit;
    return 0;
}

static const EVP_MD *alg_md(unsigned alg)
{
    switch (alg) {
    case PT_JWT_HS256:
    case PT_JWT_RS256:
    case PT_JWT_ES256:
        return EVP_sha256();
    case PT_JWT_HS384:
    case PT_JWT_RS384:
    case PT_JWT_ES384:
        return EVP_sha384();
    default:
        return EVP_sha512();
    }
}

/* ------------------------------------------------------------ key sets */

static _Atomic uint64_t keyset_serial;

static pt_jwt_keyset_t *keyset_new(void)
{
    pt_jwt_keyset_t *ks = calloc(1, sizeof(*ks));
    if (ks != NULL)
        ks->serial = atomic_fetch_add(&keyset_serial, 1) + 1;
    return ks;
}

static pt_jwt_key_t *keyset_grow(pt_jwt_keyset_t **ks)
{
    pt_jwt_key_t *keys;
    if (*ks == NULL && (*ks = keyset_new()) == NULL)
        return NULL;
    if ((*ks)->n >= 1024)
        return NULL;
    keys = realloc((*ks)->keys, sizeof(*keys) * ((*ks)->n + 1));
    if (keys == NULL)
        return NULL;
    (*ks)->keys = keys;
    memset(&keys[(*ks)->n], 0, sizeof(*keys));
    return &keys[(*ks)->n];
}

/* Classifies pkey (RSA of 2048 bits or more, EC P-256 or P-384) into k. */
static int key_from_pkey(pt_jwt_key_t *k, EVP_PKEY *pkey, char *err, size_t errlen)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < 2048) {
            snprintf(err, errlen, "RSA keys under 2048 bits are refused");
            return -1;
        }
        k->type = KEY_RSA;
        k->algs = RS_ALGS;
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64];
        size_t glen = 0;
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                            &glen)) {
            snprintf(err, errlen, "an EC key without a named curve");
            return -1;
        }
        if (strcmp(group, "prime256v1") == 0) {
            k->type = KEY_EC256;
            k->algs = PT_JWT_ES256;
        } else if (strcmp(group, "secp384r1") == 0) {
            k->type = KEY_EC384;
            k->algs = PT_JWT_ES384;
        } else {
            snprintf(err, errlen, "EC curve %s is not supported (P-256 and P-384 are)", group);
            return -1;
        }
    } else {
        snprintf(err, errlen, "only RSA and EC public keys are supported");
        return -1;
    }
    k->pkey = pkey;
    return 0;
}

int pt_jwt_keyset_add_pem(pt_jwt_keyset_t **ks, const char *pem, size_t len, const char *kid,
                          char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = NULL;
    pt_jwt_key_t *k;
    if (bio == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (pkey == NULL) {
        X509 *x;
        (void)BIO_reset(bio);
        if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
            pkey = X509_get_pubkey(x);
            X509_free(x);
        }
    }
    BIO_free(bio);
    if (pkey == NULL) {
        snprintf(err, errlen, "not a PEM public key or certificate");
        return -1;
    }
    if ((k = keyset_grow(ks)) == NULL) {
        EVP_PKEY_free(pkey);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (key_from_pkey(k, pkey, err, errlen) != 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }
    snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
    (*ks)->n++;
    return 0;
}

int pt_jwt_keyset_add_secret(pt_jwt_keyset_t **ks, const unsigned char *secret, size_t len,
                             const char *kid, char *err, size_t errlen)
{
    pt_jwt_key_t *k;
    if (len < 32) {
        snprintf(err, errlen, "HMAC secrets shorter than 32 bytes are refused");
        return -1;
    }
    if ((k = keyset_grow(ks)) == NULL || (k->secret = malloc(len)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    k->type = KEY_HMAC;
    k->algs = HS_ALGS;
    snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
    (*ks)->n++;
    return 0;
}

void pt_jwt_keyset_free(pt_jwt_keyset_t *ks)
{
    size_t i;
    if (ks == NULL)
        return;
    for (i = 0; i < ks->n; i++) {
        EVP_PKEY_free(ks->keys[i].pkey);
        if (ks->keys[i].secret != NULL) {
            sodium_memzero(ks->keys[i].secret, ks->keys[i].secret_len);
            free(ks->keys[i].secret);
        }
    }
    free(ks->keys);
    free(ks);
}

/* base64url (no padding) member of a JWK into a malloc'd buffer. */
static unsigned char *jwk_bytes(const pt_json_t *jwk, const char *name, size_t *len)
{
    const pt_json_t *v = pt_json_get(jwk, name);
    unsigned char *out;
    if (v == NULL || v->type != PT_JSON_STRING || v->u.str.len == 0 || v->u.str.len > 2048)
        return NULL;
    if ((out = malloc(v->u.str.len)) == NULL)
        return NULL;
    if (sodium_base642bin(out, v->u.str.len, v->u.str.p, v->u.str.len, NULL, len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (params != NULL && ctx != NULL && EVP_PKEY_fromdata_init(ctx) > 0)
        if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
            pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *jwk_rsa(const pt_json_t *jwk)
{
    size_t nlen = 0, elen = 0;
    unsigned char *n = jwk_bytes(jwk, "n", &nlen), *e = jwk_bytes(jwk, "e", &elen);
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (n != NULL && e != NULL && bld != NULL && (bn = BN_bin2bn(n, (int)nlen, NULL)) != NULL &&
        (be = BN_bin2bn(e, (int)elen, NULL)) != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pkey = pkey_fromdata("RSA", bld);
    BN_free(bn);
    BN_free(be);
    OSSL_PARAM_BLD_free(bld);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec(const pt_json_t *jwk)
{
    const pt_json_t *crv = pt_json_get(jwk, "crv");
    size_t xlen = 0, ylen = 0, size;
    unsigned char *x = NULL, *y = NULL, point[1 + 2 * 48];
    const char *group;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;
    if (crv == NULL || crv->type != PT_JSON_STRING)
        return NULL;
    if (strcmp(crv->u.str.p, "P-256") == 0) {
        group = "prime256v1";
        size = 32;
    } else if (strcmp(crv->u.str.p, "P-384") == 0) {
        group = "secp384r1";
        size = 48;
    } else {
        return NULL;
    }
    x = jwk_bytes(jwk, "x", &xlen);
    y = jwk_bytes(jwk, "y", &ylen);
    if (x != NULL && y != NULL && xlen == size && ylen == size &&
        (bld = OSSL_PARAM_BLD_new()) != NULL) {
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, x, size);
        memcpy(point + 1 + size, y, size);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size))
            pkey = pkey_fromdata("EC", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

pt_jwt_keyset_t *pt_jwt_keyset_jwks(const char *json, size_t len, char *err, size_t errlen)
{
    pt_arena_t a;
    pt_json_error_t jerr;
    pt_json_t *doc, *keys;
    pt_jwt_keyset_t *ks = NULL;
    size_t i;

    pt_arena_init(&a, NULL);
    doc = pt_json_parse(&a, json, len, &PT_JSON_LIMITS_DEFAULT, &jerr);
    if (doc == NULL) {
        snprintf(err, errlen, "not JSON: %s at line %u", jerr.message, jerr.line);
        goto fail;
    }
    keys = pt_json_get(doc, "keys");
    if (doc->type != PT_JSON_OBJECT || keys == NULL || keys->type != PT_JSON_ARRAY) {
        snprintf(err, errlen, "a JWK Set is an object with a \"keys\" array");
        goto fail;
    }
    if ((ks = keyset_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < keys->u.arr.n; i++) {
        const pt_json_t *jwk = keys->u.arr.items[i];
        const pt_json_t *kty = pt_json_get(jwk, "kty"), *use = pt_json_get(jwk, "use");
        const pt_json_t *kid = pt_json_get(jwk, "kid"), *alg = pt_json_get(jwk, "alg");
        EVP_PKEY *pkey = NULL;
        pt_jwt_key_t *k;
        char kerr[128];
        if (jwk->type != PT_JSON_OBJECT || kty == NULL || kty->type != PT_JSON_STRING)
            continue;
        if (use != NULL && (use->type != PT_JSON_STRING || strcmp(use->u.str.p, "sig") != 0))
            continue; /* encryption keys */
        if (strcmp(kty->u.str.p, "RSA") == 0)
            pkey = jwk_rsa(jwk);
        else if (strcmp(kty->u.str.p, "EC") == 0)
            pkey = jwk_ec(jwk);
        else if (strcmp(kty->u.str.p, "oct") == 0) {
            size_t klen = 0;
            unsigned char *secret = jwk_bytes(jwk, "k", &klen);
            int rc = secret != NULL ? pt_jwt_keyset_add_secret(
                                          &ks, secret, klen,
                                          kid && kid->type == PT_JSON_STRING ? kid->u.str.p : NULL,
                                          kerr, sizeof(kerr))
                                    : -1;
            if (secret != NULL) {
                sodium_memzero(secret, klen);
                free(secret);
            }
            if (rc != 0) {
                snprintf(err, errlen, "key %zu: %s", i, secret ? kerr : "unreadable \"k\"");
                goto fail;
            }
            k = &ks->keys[ks->n - 1];
            goto restrict_alg;
        } else
            continue;
        if (pkey == NULL) {
            snprintf(err, errlen, "key %zu (%s) cannot be read", i, kty->u.str.p);
            goto fail;
        }
        if ((k = keyset_grow(&ks)) == NULL) {
            EVP_PKEY_free(pkey);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (key_from_pkey(k, pkey, kerr, sizeof(kerr)) != 0) {
            EVP_PKEY_free(pkey);
            snprintf(err, errlen, "key %zu: %s", i, kerr);
            goto fail;
        }
        if (kid != NULL && kid->type == PT_JSON_STRING)
            snprintf(k->kid, sizeof(k->kid), "%s", kid->u.str.p);
        ks->n++;
    restrict_alg:
        if (alg != NULL && alg->type == PT_JSON_STRING)
            k->algs &= pt_jwt_alg(alg->u.str.p, alg->u.str.len); /* "alg" pins one */
    }
    pt_arena_destroy(&a);
    return ks;
fail:
    pt_jwt_keyset_free(ks);
    pt_arena_destroy(&a);
    return NULL;
}

/* ------------------------------------------------------------ tokens */

static unsigned char *b64url(pt_arena_t *a, const char *s, size_t len, size_t *out_len)
{
    unsigned char *out = pt_arena_alloc(a, len + 1);
    if (out == NULL || sodium_base642bin(out, len + 1, s, len, NULL, out_len, NULL,
                                         sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return NULL;
    return out;
}

int pt_jwt_decode(pt_arena_t *a, const char *token, size_t len, pt_jwt_t *out, const char **reason)
{
    const char *d1, *d2;
    unsigned char *hdr, *body;
    size_t hlen, blen;
    pt_json_t *h, *alg, *kid, *crit;
    pt_json_error_t jerr;
    pt_json_limits_t limits = {16, 4096, 4096};

    memset(out, 0, sizeof(*out));
    *reason = "malformed";
    if (len == 0 || len > PT_JWT_MAX || (d1 = memchr(token, '.', len)) == NULL ||
        (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token))) == NULL ||
        memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
        return -1;
    if ((hdr = b64url(a, token, (size_t)(d1 - token), &hlen)) == NULL ||
        (body = b64url(a, d1 + 1, (size_t)(d2 - d1 - 1), &blen)) == NULL ||
        (out->sig = b64url(a, d2 + 1, len - (size_t)(d2 + 1 - token), &out->sig_len)) == NULL)
        return -1;
    if ((h = pt_json_parse(a, (const char *)hdr, hlen, &limits, &jerr)) == NULL ||
        h->type != PT_JSON_OBJECT ||
        (out->claims = pt_json_parse(a, (const char *)body, blen, &limits, &jerr)) == NULL ||
        out->claims->type != PT_JSON_OBJECT)
        return -1;
    alg = pt_json_get(h, "alg");
    if (alg == NULL || alg->type != PT_JSON_STRING)
        return -1;
    if ((crit = pt_json_get(h, "crit")) != NULL) {
        *reason = "unsupported-header"; /* RFC 7515 §4.1.11: extensions we do not know */
        return -1;
    }
    if ((out->alg = pt_jwt_alg(alg->u.str.p, alg->u.str.len)) == 0) {
        *reason = "unsupported-algorithm"; /* "none" among them */
        return -1;
    }
    if ((kid = pt_json_get(h, "kid")) != NULL) {
        if (kid->type != PT_JSON_STRING)
            return -1;
        out->kid = kid->u.str.p;
    }
    out->signed_part = token;
    out->signed_len = (size_t)(d2 - token);
    *reason = NULL;
    return 0;
}

static int verify_with(const pt_jwt_t *t, const pt_jwt_key_t *k)
{
    const EVP_MD *md = alg_md(t->alg);
    if (k->type == KEY_HMAC) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned mlen = 0;
        if (HMAC(md, k->secret, (int)k->secret_len, (const unsigned char *)t->signed_part,
                 t->signed_len, mac, &mlen) == NULL)
            return -1;
        return mlen == t->sig_len && CRYPTO_memcmp(mac, t->sig, mlen) == 0 ? 0 : -1;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char der[128];
        const unsigned char *sig = t->sig;
        size_t sig_len = t->sig_len;
        int ok = 0;
        if (ctx == NULL)
            return -1;
        if (k->type == KEY_EC256 || k->type == KEY_EC384) {
            /* JWS carries r || s (RFC 7518 §3.4); OpenSSL wants DER */
            size_t half = k->type == KEY_EC256 ? 32 : 48;
            ECDSA_SIG *es = ECDSA_SIG_new();
            BIGNUM *r, *s;
            unsigned char *p = der;
            int n;
            if (es == NULL || t->sig_len != 2 * half) {
                ECDSA_SIG_free(es);
                EVP_MD_CTX_free(ctx);
                return -1;
            }
            r = BN_bin2bn(t->sig, (int)half, NULL);
            s = BN_bin2bn(t->sig + half, (int)half, NULL);
            if (r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
                BN_free(r);
                BN_free(s);
                ECDSA_SIG_free(es);
                EVP_MD_CTX_free(ctx);
                return -1;
            }
            n = i2d_ECDSA_SIG(es, NULL);
            if (n > 0 && (size_t)n <= sizeof(der))
                n = i2d_ECDSA_SIG(es, &p);
            ECDSA_SIG_free(es);
            if (n <= 0 || (size_t)n > sizeof(der)) {
                EVP_MD_CTX_free(ctx);
                return -1;
            }
            sig = der;
            sig_len = (size_t)n;
        }
        ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)t->signed_part,
                              t->signed_len) == 1;
        EVP_MD_CTX_free(ctx);
        return ok ? 0 : -1;
    }
}

int pt_jwt_verify(const pt_jwt_t *t, const pt_jwt_keyset_t *ks, unsigned allowed,
                  const char **reason)
{
    size_t i, tried = 0;
    if ((t->alg & allowed) == 0) {
        *reason = "algorithm-not-allowed";
        return -1;
    }
    for (i = 0; ks != NULL && i < ks->n; i++) {
        const pt_jwt_key_t *k = &ks->keys[i];
        if ((k->algs & t->alg) == 0)
            continue; /* a key only verifies the algorithms of its type */
        if (t->kid != NULL && k->kid[0] != '\0' && strcmp(t->kid, k->kid) != 0)
            continue;
        if (++tried > 8)
            break; /* no kid and many keys: bounded work */
        if (verify_with(t, k) == 0) {
            *reason = NULL;
            return 0;
        }
    }
    *reason = tried > 0 ? "bad-signature" : "unknown-key";
    return -1;
}

static int claim_time(const pt_json_t *v, int64_t *out)
{
    double d;
    if (v->type != PT_JSON_NUMBER)
        return -1;
    if (pt_json_to_int64(v, out) == 0)
        return 0;
    d = pt_json_to_double(v); /* NumericDate may have a fraction */
    if (!(d > -1e15 && d < 1e15))
        return -1;
    *out = (int64_t)d;
    return 0;
}

int pt_jwt_check_claims(const pt_jwt_t *t, const pt_jwt_rules_t *r, int64_t now,
                        const char **reason)
{
    const pt_json_t *exp = pt_json_get(t->claims, "exp"), *nbf = pt_json_get(t->claims, "nbf");
    int64_t v;
    *reason = "malformed";
    if (exp != NULL) {
        if (claim_time(exp, &v) != 0)
            return -1;
        if (now - r->leeway_s >= v) {
            *reason = "expired";
            return -1;
        }
    } else if (r->require_exp) {
        *reason = "no-expiry";
        return -1;
    }
    if (nbf != NULL) {
        if (claim_time(nbf, &v) != 0)
            return -1;
        if (now + r->leeway_s < v) {
            *reason = "not-yet-valid";
            return -1;
        }
    }
    if (r->issuer != NULL) {
        const pt_json_t *iss = pt_json_get(t->claims, "iss");
        if (iss == NULL || iss->type != PT_JSON_STRING || strcmp(iss->u.str.p, r->issuer) != 0 ||
            strlen(r->issuer) != iss->u.str.len) {
            *reason = "wrong-issuer";
            return -1;
        }
    }
    if (r->audience != NULL) {
        const pt_json_t *aud = pt_json_get(t->claims, "aud");
        size_t i, alen = strlen(r->audience);
        int ok = 0;
        if (aud != NULL && aud->type == PT_JSON_STRING)
            ok = aud->u.str.len == alen && memcmp(aud->u.str.p, r->audience, alen) == 0;
        else if (aud != NULL && aud->type == PT_JSON_ARRAY)
            for (i = 0; i < aud->u.arr.n && !ok; i++)
                ok = aud->u.arr.items[i]->type == PT_JSON_STRING &&
                     aud->u.arr.items[i]->u.str.len == alen &&
                     memcmp(aud->u.arr.items[i]->u.str.p, r->audience, alen) == 0;
        if (!ok) {
            *reason = "wrong-audience";
            return -1;
        }
    }
    *reason = NULL;
    return 0;
}

const pt_json_t *pt_jwt_claim(const pt_jwt_t *t, const char *path)
{
    const pt_json_t *v = t->claims;
    while (v != NULL && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (v->type != PT_JSON_OBJECT)
            return NULL;
        v = pt_json_getn(v, path, n);
        path += n + (dot != NULL);
    }
    return v;
}

/* ------------------------------------------------------------ JWKS URLs */

struct pt_jwks_source_s {
    struct pt_jwks_source_s *next;
    char *url;
    uint32_t refresh_ms;
    _Atomic(pt_jwt_keyset_t *) current;
    pt_jwt_keyset_t *retired[2]; /* the sets replaced by the last two refreshes */
    uint64_t next_ms;
};

static pthread_mutex_t jwks_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jwks_cond = PTHREAD_COND_INITIALIZER;
static pt_jwks_source_t *sources;
static pthread_t jwks_thread;
static int jwks_running, jwks_stop;

/* Fetches s once (blocking); keeps the current set on failure. */
static void jwks_fetch(pt_jwks_source_t *s)
{
    pt_arena_t a;
    pt_json_t *res = NULL;
    pt_http_call_t call = {
        .method = "GET", .url = s->url, .timeout_ms = 5000, .max_response = 1024 * 1024};
    char err[256];
    const pt_json_t *status, *body;
    pt_jwt_keyset_t *ks = NULL;
    pt_buf_t text;

    pt_arena_init(&a, NULL);
    pt_buf_init(&text, 0);
    if (pt_http_call(&call, &a, &res, err, sizeof(err)) != 0) {
        pt_log_warn("jwks: %s: %s (keeping the keys we have)", s->url, err);
    } else if ((status = pt_json_get(res, "status")) == NULL ||
               (body = pt_json_get(res, "body")) == NULL || pt_json_to_double(status) != 200) {
        pt_log_warn("jwks: %s answered %g (keeping the keys we have)", s->url,
                    status ? pt_json_to_double(status) : 0.0);
    } else if ((body->type == PT_JSON_STRING ? pt_buf_append(&text, body->u.str.p, body->u.str.len)
                                             : pt_json_write(&text, body)) != PT_OK) {
        pt_log_warn("jwks: %s: out of memory", s->url);
    } else if ((ks = pt_jwt_keyset_jwks(text.data, text.len, err, sizeof(err))) == NULL) {
        pt_log_warn("jwks: %s: %s (keeping the keys we have)", s->url, err);
    } else {
        pt_jwt_keyset_t *old = atomic_exchange(&s->current, ks);
        pt_jwt_keyset_free(s->retired[1]); /* replaced two refreshes ago: nobody holds it */
        s->retired[1] = s->retired[0];
        s->retired[0] = old;
        pt_log_info("jwks: %s: %zu keys", s->url, ks->n);
    }
    pt_buf_free(&text);
    pt_arena_destroy(&a);
}

static void *jwks_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&jwks_lock);
    while (!jwks_stop) {
        uint64_t now = pt_mono_ms(), wake = now + 60000;
        pt_jwks_source_t *s;
        struct timespec ts;
        for (s = sources; s != NULL; s = s->next) {
            if (s->next_ms <= now) {
                s->next_ms = now + s->refresh_ms;
                pthread_mutex_unlock(&jwks_lock); /* sources are never unlinked while running */
                jwks_fetch(s);
                pthread_mutex_lock(&jwks_lock);
                now = pt_mono_ms();
            }
            if (s->next_ms < wake)
                wake = s->next_ms;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        wake = wake > now ? wake - now : 0;
        ts.tv_sec += (time_t)(wake / 1000);
        ts.tv_nsec += (long)(wake % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!jwks_stop)
            pthread_cond_timedwait(&jwks_cond, &jwks_lock, &ts);
    }
    pthread_mutex_unlock(&jwks_lock);
    pt_http_thread_cleanup();
    OPENSSL_thread_stop();
    return NULL;
}

pt_jwks_source_t *pt_jwks_source(const char *url, uint32_t refresh_ms)
{
    pt_jwks_source_t *s;
    pthread_mutex_lock(&jwks_lock);
    for (s = sources; s != NULL; s = s->next)
        if (strcmp(s->url, url) == 0)
            break;
    if (s != NULL) {
        if (refresh_ms < s->refresh_ms)
            s->refresh_ms = refresh_ms;
        pthread_mutex_unlock(&jwks_lock);
        return s;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->url = strdup(url)) == NULL) {
        free(s);
        pthread_mutex_unlock(&jwks_lock);
        return NULL;
    }
    s->refresh_ms = refresh_ms;
    pthread_mutex_unlock(&jwks_lock);
    jwks_fetch(s); /* the first time, before the configuration is used */
    pthread_mutex_lock(&jwks_lock);
    s->next_ms = pt_mono_ms() + (atomic_load(&s->current) != NULL ? refresh_ms : 5000);
    s->next = sources;
    sources = s;
    if (!jwks_running && pthread_create(&jwks_thread, NULL, jwks_main, NULL) == 0)
        jwks_running = 1;
    pthread_cond_signal(&jwks_cond);
    pthread_mutex_unlock(&jwks_lock);
    return s;
}

const pt_jwt_keyset_t *pt_jwks_current(const pt_jwks_source_t *s)
{
    return atomic_load_explicit(&((pt_jwks_source_t *)s)->current, memory_order_acquire);
}

void pt_jwks_shutdown(void)
{
    pt_jwks_source_t *s;
    pthread_mutex_lock(&jwks_lock);
    jwks_stop = 1;
    pthread_cond_signal(&jwks_cond);
    pthread_mutex_unlock(&jwks_lock);
    if (jwks_running)
        pthread_join(jwks_thread, NULL);
    jwks_running = 0;
    while ((s = sources) != NULL) {
        sources = s->next;
        pt_jwt_keyset_free(atomic_load(&s->current));
        pt_jwt_keyset_free(s->retired[0]);
        pt_jwt_keyset_free(s->retired[1]);
        free(s->url);
        free(s);
    }
}
