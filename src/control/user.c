/*
 * user.c - `portico user key`: a new API key for a user of the node's
 * `users:`, printed once with the SHA-256 hash the configuration keeps
 * (the key itself is stored nowhere).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "control/control.h"

int pt_user_main(int argc, char **argv)
{
    unsigned char secret[32], digest[crypto_hash_sha256_BYTES];
    char key[3 + sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    char hex[2 * sizeof(digest) + 1];

    if (argc != 2 || strcmp(argv[1], "key") != 0) {
        fputs("usage: portico user key\n"
              "  prints a new API key (line 1, shown once) and the hash to put in the\n"
              "  user's api_keys in the node configuration (line 2)\n",
              stderr);
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    randombytes_buf(secret, sizeof(secret));
    memcpy(key, "pk_", 3);
    sodium_bin2base64(key + 3, sizeof(key) - 3, secret, sizeof(secret),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    crypto_hash_sha256(digest, (const unsigned char *)key, strlen(key));
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    printf("%s\nsha256:%s\n", key, hex);
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(key, sizeof(key));
    return 0;
}
