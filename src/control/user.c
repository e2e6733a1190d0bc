/*
 * user.c - `portico user key`: a new API key for a user of the node's
 * `users:`, printed once with the SHA-256 hash the configuration keeps
 * (the key itself is stored nowhere); `portico user password`: the
 * Argon2id hash of a password read from standard input, for the user's
 * `password` (basic authentication).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "control/control.h"

/* Reads one line of standard input (without echo on a terminal). */
static int read_password(char *buf, size_t size)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    size_t n;
    char *ok;
    if (tty) {
        fputs("password: ", stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    ok = fgets(buf, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (ok == NULL)
        return -1;
    n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    else if (n == size - 1)
        return -1; /* longer than the buffer: refuse rather than cut */
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    return n > 0 ? 0 : -1;
}

static int password_main(void)
{
    char pass[1024], hash[crypto_pwhash_STRBYTES];
    int rc = 1;
    if (sodium_init() < 0)
        return 1;
    if (read_password(pass, sizeof(pass)) != 0) {
        fputs("portico user password: expected a password of 1 to 1022 bytes on one line of "
              "standard input\n",
              stderr);
    } else if (crypto_pwhash_str(hash, pass, strlen(pass), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                 crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        fputs("portico user password: out of memory\n", stderr);
    } else {
        printf("%s\n", hash);
        rc = 0;
    }
    sodium_memzero(pass, sizeof(pass));
    return rc;
}

int pt_user_main(int argc, char **argv)
{
    unsigned char secret[32], digest[crypto_hash_sha256_BYTES];
    char key[3 + sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    char hex[2 * sizeof(digest) + 1];

    if (argc == 2 && strcmp(argv[1], "password") == 0)
        return password_main();
    if (argc != 2 || strcmp(argv[1], "key") != 0) {
        fputs("usage: portico user key\n"
              "  prints a new API key (line 1, shown once) and the hash to put in the\n"
              "  user's api_keys in the node configuration (line 2)\n"
              "       portico user password\n"
              "  reads a password from standard input and prints its Argon2id hash, for\n"
              "  the user's password in the node configuration (basic authentication)\n",
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
