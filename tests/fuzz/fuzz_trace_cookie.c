/*
 * fuzz_trace_cookie.c - libFuzzer target for the two header values the node
 * reads byte by byte for observability and the console: a `traceparent`
 * (W3C Trace Context) and the console's session in a Cookie header. Any
 * bytes: nothing may crash or read out of bounds; an accepted traceparent
 * gives lower-case hex ids that are not all zeros, and an accepted cookie a
 * 64-character value found in the header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/console.h"
#include "http/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lower_hex_nonzero(const char *s, size_t n)
{
    size_t i;
    int nz = 0;
    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
        nz |= s[i] != '0';
    }
    return nz;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char trace[33], parent[17], flags[3], cookie[65];
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    if (pt_traceparent_parse(copy, size, trace, parent, flags)) {
        if (strlen(trace) != 32 || strlen(parent) != 16 || strlen(flags) != 2 ||
            !lower_hex_nonzero(trace, 32) || !lower_hex_nonzero(parent, 16))
            abort();
    }
    if (pt_session_cookie_value(copy, cookie)) {
        if (strlen(cookie) != 64 || strstr(copy, cookie) == NULL)
            abort();
    }
    free(copy);
    return 0;
}
