/*
 * fuzz_config.c - libFuzzer target for the configuration loaders: the same
 * bytes are loaded as a node configuration and as an API definition (then
 * cross-checked and routed), so the YAML layer, both schemas and the JSON
 * body serialiser all see hostile input. Nothing may crash, leak or hang, and
 * every failure must come with at least one message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
