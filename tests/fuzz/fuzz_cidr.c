/*
 * fuzz_cidr.c - libFuzzer target for the CIDR parser of ip filters, user
 * allow lists and trusted proxies: any text. A block that parses must print
 * and parse back to itself, contain its own network address, and have no
 * host bits; nothing may crash or read out of bounds.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_cidr_t b, again;
    char *copy = malloc(size ? size : 1), text[INET6_ADDRSTRLEN + 8], host[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    if (pt_cidr_parse(copy, size, &b) == 0) {
        if (b.family != AF_INET && b.family != AF_INET6)
            abort();
        if (b.prefix > (b.family == AF_INET ? 32u : 128u))
            abort();
        if (inet_ntop(b.family, b.addr, host, sizeof(host)) == NULL)
            abort();
        snprintf(text, sizeof(text), "%s/%u", host, b.prefix);
        if (pt_cidr_parse(text, strlen(text), &again) != 0 || again.family != b.family ||
            again.prefix != b.prefix || memcmp(again.addr, b.addr, sizeof(b.addr)) != 0)
            abort();
        memset(&ss, 0, sizeof(ss));
        if (b.family == AF_INET) {
            struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
            v4->sin_family = AF_INET;
            memcpy(&v4->sin_addr, b.addr, 4);
        } else {
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
            v6->sin6_family = AF_INET6;
            memcpy(&v6->sin6_addr, b.addr, 16);
        }
        /* an IPv4-mapped network address counts as IPv4: only plain blocks must match */
        if (b.family == AF_INET && !pt_cidr_match(&b, 1, (const struct sockaddr *)&ss))
            abort();
    }
    free(copy);
    return 0;
}
