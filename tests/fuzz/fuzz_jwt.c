/*
 * fuzz_jwt.c - libFuzzer target for the JWT decoder, the claims checks and
 * the JWK Set reader: any bytes, as a token (against an HMAC secret, so a
 * decoded token also goes through verification) and as a JWK Set document.
 * Nothing may crash, leak or read out of bounds; a token signed by nobody
 * must never verify.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pt_jwt_keyset_t *ks;
    static const unsigned char secret[] = "fuzzing secret, long enough for HS256 keys";
    char *copy = malloc(size ? size : 1), err[256];
    const char *reason;
    pt_arena_t a;
    pt_jwt_t t;
    pt_jwt_rules_t rules = {"https://idp", "aud", 60, 1};
    pt_jwt_keyset_t *doc;

    if (copy == NULL)
        return 0;
    if (ks == NULL &&
        pt_jwt_keyset_add_secret(&ks, secret, sizeof(secret) - 1, "k1", err, sizeof(err)) != 0)
        abort();
    memcpy(copy, data, size);
    pt_arena_init(&a, NULL);
    if (pt_jwt_decode(&a, copy, size, &t, &reason) == 0) {
        /* the fuzzer cannot know the secret: a match would be a forgery */
        if (pt_jwt_verify(&t, ks, 0xff, &reason) == 0)
            abort();
        (void)pt_jwt_check_claims(&t, &rules, 1700000000, &reason);
        (void)pt_jwt_claim(&t, "realm_access.roles");
    } else if (reason == NULL) {
        abort();
    }
    pt_arena_destroy(&a);
    if ((doc = pt_jwt_keyset_jwks(copy, size, err, sizeof(err))) != NULL)
        pt_jwt_keyset_free(doc);
    free(copy);
    return 0;
}
