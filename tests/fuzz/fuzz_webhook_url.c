/*
 * fuzz_webhook_url.c - libFuzzer target for the webhook URL check (a
 * client's X-Portico-Webhook against the node's allowed hosts): any bytes.
 * A URL it allows must start with http:// or https:// and name an allowed
 * host (with a port only where the entry allows one); nothing may crash or
 * read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *hosts[] = {"hooks.example.com", "127.0.0.1:9000", NULL};
    pt_webhooks_config_t w;
    char *copy = malloc(size ? size : 1);
    const char *h;
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    memset(&w, 0, sizeof(w));
    w.allowed_hosts = hosts;
    w.nallowed = 2;
    if (pt_webhook_url_allowed(&w, copy, size)) {
        if (size > 8 && memcmp(copy, "https://", 8) == 0)
            h = copy + 8;
        else if (size > 7 && memcmp(copy, "http://", 7) == 0)
            h = copy + 7;
        else
            abort();
        if (!((size_t)(copy + size - h) >= 17 && strncasecmp(h, "hooks.example.com", 17) == 0) &&
            !((size_t)(copy + size - h) >= 14 && memcmp(h, "127.0.0.1:9000", 14) == 0))
            abort();
    }
    free(copy);
    return 0;
}
