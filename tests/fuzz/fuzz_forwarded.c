/*
 * fuzz_forwarded.c - libFuzzer target for the X-Forwarded-For and Forwarded
 * (RFC 7239) walks of the
 * policy chain (the client address behind trusted proxies): any header
 * value, against trusted blocks of both families. The chosen address must
 * be an IPv4 or IPv6 one (or the peer, untouched). Nothing may crash, leak
 * or read out of bounds.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_cidr_t trusted[2];
    struct sockaddr_storage out;
    struct sockaddr_in *peer = (struct sockaddr_in *)&out;
    char *copy = malloc(size ? size : 1); /* exactly size bytes: ASan sees overreads */

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    memset(trusted, 0, sizeof(trusted));
    trusted[0].family = AF_INET;
    inet_pton(AF_INET, "10.0.0.0", trusted[0].addr);
    trusted[0].prefix = 8;
    trusted[1].family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::", trusted[1].addr);
    trusted[1].prefix = 32;
    memset(&out, 0, sizeof(out));
    peer->sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.1.1", &peer->sin_addr);
    pt_policy_forwarded_client(trusted, 2, copy, size, &out);
    if (out.ss_family != AF_INET && out.ss_family != AF_INET6)
        abort();
    /* the same bytes as a Forwarded header (RFC 7239) */
    memset(&out, 0, sizeof(out));
    peer->sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.1.1", &peer->sin_addr);
    pt_policy_forwarded_header_client(trusted, 2, copy, size, &out);
    if (out.ss_family != AF_INET && out.ss_family != AF_INET6)
        abort();
    free(copy);
    return 0;
}
