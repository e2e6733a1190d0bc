/*
 * fuzz_config.c - libFuzzer target for the configuration loaders: the same
 * bytes are loaded as a node configuration and as an API definition (then
 * cross-checked and routed), so the YAML layer, both schemas and the JSON
 * body serialiser all see hostile input. Nothing may crash, leak or hang, and
 * every failure must come with at least one message.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"
#include "gateway/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every trusted block contains its own network address. */
static void check_trusted(const pt_config_t *cfg)
{
    size_t i;
    for (i = 0; i < cfg->ntrusted_proxies; i++) {
        const pt_cidr_t *b = &cfg->trusted_proxies[i];
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (b->family == AF_INET && b->prefix <= 32) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, b->addr, 4);
        } else if (b->family == AF_INET6 && b->prefix <= 128) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, b->addr, 16);
        } else {
            abort();
        }
        if (!pt_cidr_match(b, 1, (struct sockaddr *)&ss))
            abort();
    }
}

/* A proxy API has a complete upstream and no routes; a service has no upstream. */
static void check_upstream(const pt_api_def_t *api)
{
    size_t i;
    if (strcmp(api->kind, "service") == 0) {
        if (api->upstream != NULL)
            abort();
        return;
    }
    if (api->upstream == NULL || api->nroutes != 0 || api->upstream->ntargets == 0 ||
        api->upstream->ntargets > 64)
        abort();
    for (i = 0; i < api->upstream->ntargets; i++) {
        const pt_upstream_target_t *t = &api->upstream->targets[i];
        size_t pl;
        if (t->host == NULL || t->host[0] == '\0' || t->port == 0 || t->path_prefix == NULL ||
            t->weight < 1 || t->weight > 1000)
            abort();
        pl = strlen(t->path_prefix);
        if (pl > 0 && (t->path_prefix[0] != '/' || t->path_prefix[pl - 1] == '/'))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg;
    pt_route_match_t m;
    pt_arena_t a;
    char err[512];
    size_t i, j;

    cfg = pt_config_load_buffer("fuzz.yaml", (const char *)data, size, &errs);
    if (cfg == NULL && errs.count == 0 && errs.dropped == 0)
        abort();
    if (cfg != NULL)
        check_trusted(cfg);
    pt_config_free(cfg);
    pt_config_errors_free(&errs);

    cfg = pt_config_new(NULL);
    if (cfg == NULL)
        return 0;
    if (pt_api_def_load_buffer(cfg, "api.yaml", (const char *)data, size, &errs) == 0 &&
        pt_config_check_apis(cfg, &errs) == 0) {
        /* A definition that validates must build, and its static routes must match. */
        const pt_router_t *rt;
        pt_arena_init(&a, NULL);
        if ((rt = pt_router_build(&a, cfg->apis, cfg->napis, err, sizeof(err))) == NULL)
            abort();
        for (i = 0; i < cfg->napis; i++)
            check_upstream(&cfg->apis[i]);
        for (i = 0; i < cfg->napis; i++)
            for (j = 0; j < cfg->apis[i].nroutes; j++) {
                const pt_route_def_t *r = &cfg->apis[i].routes[j];
                char path[2048];
                size_t bl = strlen(cfg->apis[i].base_path), pl = strlen(r->path);
                if (bl + pl >= sizeof(path) || strchr(r->path, '{') != NULL)
                    continue;
                memcpy(path, cfg->apis[i].base_path, bl);
                memcpy(path + bl, r->path, pl + 1);
                if (pt_router_match(rt, r->method, strlen(r->method), path, bl + pl, &m) !=
                        PT_ROUTE_FOUND ||
                    m.api != &cfg->apis[i] || m.route != r)
                    abort();
            }
        pt_arena_destroy(&a);
    } else if (errs.count == 0 && errs.dropped == 0) {
        abort();
    }
    pt_config_free(cfg);
    pt_config_errors_free(&errs);
    return 0;
}
