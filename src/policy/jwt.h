/*
 * jwt.h - JSON Web Tokens (RFC 7519) signed with JWS compact serialisation
 * (RFC 7515): decoding, signature verification with OpenSSL against a key
 * set (PEM public keys, shared secrets, or a JWK Set, RFC 7517/7518), and
 * the registered claims checks.
 *
 * Algorithms: HS256/384/512, RS256/384/512, ES256/384. "none" is never
 * accepted, and a key only verifies the algorithms of its type (an RSA
 * public key is never used as an HMAC secret: no key confusion).
 */
#ifndef PT_POLICY_JWT_H
#define PT_POLICY_JWT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/json.h"

#define PT_JWT_MAX 8192 /* bytes of a token */

enum {
    PT_JWT_HS256 = 1 << 0,
    PT_JWT_HS384 = 1 << 1,
    PT_JWT_HS512 = 1 << 2,
    PT_JWT_RS256 = 1 << 3,
    PT_JWT_RS384 = 1 << 4,
    PT_JWT_RS512 = 1 << 5,
    PT_JWT_ES256 = 1 << 6,
    PT_JWT_ES384 = 1 << 7
};

/* The algorithm bit of name ("RS256"), or 0. */
unsigned pt_jwt_alg(const char *name, size_t len);

typedef struct pt_jwt_key_s pt_jwt_key_t;

/* A set of verification keys (immutable once built). */
typedef struct pt_jwt_keyset_s {
    pt_jwt_key_t *keys;
    size_t n;
    uint64_t serial; /* unique in the process: caches name a key set by it, not by address */
} pt_jwt_keyset_t;

/* A JWK Set document into a key set (keys of unknown types or uses are
 * skipped; a key that cannot be read is an error). NULL with err filled. */
pt_jwt_keyset_t *pt_jwt_keyset_jwks(const char *json, size_t len, char *err, size_t errlen);

/* A PEM public key or certificate (RSA or EC), or a shared secret, added to
 * *ks (created when NULL). 0, or -1 with err filled. */
int pt_jwt_keyset_add_pem(pt_jwt_keyset_t **ks, const char *pem, size_t len, const char *kid,
                          char *err, size_t errlen);
int pt_jwt_keyset_add_secret(pt_jwt_keyset_t **ks, const unsigned char *secret, size_t len,
                             const char *kid, char *err, size_t errlen);

void pt_jwt_keyset_free(pt_jwt_keyset_t *ks);

/* A decoded (not yet verified) token; everything in the arena. */
typedef struct pt_jwt_s {
    unsigned alg; /* PT_JWT_* */
    const char *kid;
    pt_json_t *claims;
    const char *signed_part; /* header "." payload, in the input */
    size_t signed_len;
    unsigned char *sig;
    size_t sig_len;
} pt_jwt_t;

/* Decodes token (len bytes). 0, or -1 with *reason a short code
 * ("malformed", "unsupported-algorithm"). */
int pt_jwt_decode(pt_arena_t *a, const char *token, size_t len, pt_jwt_t *out, const char **reason);

/* Verifies t's signature with a key of ks allowed for its algorithm (by kid
 * when the token names one). 0, or -1 with *reason ("bad-signature",
 * "unknown-key", "algorithm-not-allowed"). */
int pt_jwt_verify(const pt_jwt_t *t, const pt_jwt_keyset_t *ks, unsigned allowed,
                  const char **reason);

typedef struct pt_jwt_rules_s {
    const char *issuer;   /* NULL = not checked */
    const char *audience; /* NULL = not checked */
    int64_t leeway_s;     /* clock skew allowed on exp and nbf */
    int require_exp;
} pt_jwt_rules_t;

/* Checks exp, nbf, iss and aud at time now (seconds). 0, or -1 with *reason
 * ("expired", "not-yet-valid", "wrong-issuer", "wrong-audience", "no-expiry"). */
int pt_jwt_check_claims(const pt_jwt_t *t, const pt_jwt_rules_t *r, int64_t now,
                        const char **reason);

/* The claim at a dotted path ("realm_access.roles"), or NULL. */
const pt_json_t *pt_jwt_claim(const pt_jwt_t *t, const char *path);

/* --- Key sets fetched from a URL ------------------------------------------
 * One source per URL for the whole process, refreshed by one background
 * thread every refresh_ms (the shortest asked for); requests read the
 * current key set without a lock. A replaced set is freed two refresh
 * periods later: readers only hold it during one synchronous check. */
typedef struct pt_jwks_source_s pt_jwks_source_t;

/* The source for url, created (and fetched once, blocking, up to 5 s) the
 * first time. Call off the I/O loops (configuration loading). NULL only when
 * out of memory; a failed fetch is logged and retried. */
pt_jwks_source_t *pt_jwks_source(const char *url, uint32_t refresh_ms);

/* The source's current key set (NULL before the first good fetch). */
const pt_jwt_keyset_t *pt_jwks_current(const pt_jwks_source_t *s);

/* Stops the refresher thread and frees every source (process exit). */
void pt_jwks_shutdown(void);

#endif
