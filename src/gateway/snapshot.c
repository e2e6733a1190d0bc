/*
 * snapshot.c - building and releasing snapshots (see snapshot.h).
 */
#include "gateway/snapshot.h"
#include "metrics/metrics.h"
#include "policy/policy.h"

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "gateway/router.h"
#include "http/tls.h"
#include "process/engine.h"
#include "protocol/openapi.h"
#include "protocol/wsdl.h"
#include "proxy/proxy.h"

static void snapshot_free(pt_snapshot_t *s)
{
    size_t i;
    if (s->tls != NULL) {
        for (i = 0; i < s->config->nlisteners; i++)
            SSL_CTX_free(s->tls[i]);
        free(s->tls);
    }
    if (s->services != NULL) {
        for (i = 0; i < s->config->napis; i++)
            pt_service_rt_free(s->services[i]);
        free(s->services);
    }
    if (s->openapi != NULL) {
        for (i = 0; i < 2 * s->config->napis; i++)
            pt_contract_free(&s->openapi[i]);
        free(s->openapi);
    }
    if (s->wsdl != NULL) {
        for (i = 0; i < s->config->napis; i++)
            pt_wsdl_free(&s->wsdl[i]);
        free(s->wsdl);
    }
    free(s->apis_json);
    pt_arena_destroy(&s->arena);
    pt_config_free(s->config);
    free(s);
}

/* The body of GET /_portico/apis: every API the snapshot serves. */
static int render_apis(pt_snapshot_t *s)
{
    const pt_config_t *cfg = s->config;
    pt_buf_t b;
    size_t i;
    int rc = 0;

    pt_buf_init(&b, 0);
    rc |= pt_buf_printf(&b, "{\"generation\":%llu,\"apis\":[", (unsigned long long)s->generation);
    for (i = 0; i < cfg->napis; i++) {
        const pt_api_def_t *a = &cfg->apis[i];
        const char *fields[][2] = {{"name", a->name},
                                   {"base_path", a->base_path},
                                   {"kind", a->kind},
                                   {"title", a->title},
                                   {"version", a->version}};
        size_t k;
        rc |= pt_buf_append_str(&b, i ? ",{" : "{");
        for (k = 0; k < PT_ARRAY_SIZE(fields); k++) {
            rc |= pt_buf_printf(&b, "%s\"%s\":\"", k ? "," : "", fields[k][0]);
            rc |= pt_buf_append_json_str(&b, fields[k][1], strlen(fields[k][1]));
            rc |= pt_buf_append_char(&b, '"');
        }
        rc |= pt_buf_printf(&b, ",\"routes\":%zu", a->nroutes);
        if (a->openapi_file != NULL || strcmp(a->kind, "service") == 0) {
            /* the contract's URL, relative to the node */
            size_t bl = strlen(a->base_path);
            rc |= pt_buf_append_str(&b, ",\"openapi\":\"");
            rc |= pt_buf_append_json_str(&b, a->base_path, bl == 1 ? 0 : bl);
            rc |= pt_buf_append_str(&b, "/openapi.json\"");
        }
        if (a->nsoap_ops > 0) {
            size_t bl = strlen(a->base_path);
            rc |= pt_buf_append_str(&b, ",\"soap\":\"");
            rc |= pt_buf_append_json_str(&b, a->base_path, bl == 1 ? 0 : bl);
            rc |= pt_buf_append_str(&b, "/soap\",\"wsdl\":\"");
            rc |= pt_buf_append_json_str(&b, a->base_path, bl == 1 ? 0 : bl);
            rc |= pt_buf_append_str(&b, "/soap?wsdl\"");
        }
        rc |= pt_buf_append_char(&b, '}');
    }
    rc |= pt_buf_append_str(&b, "]}");
    if (rc != 0) {
        pt_buf_free(&b);
        return PT_ENOMEM;
    }
    s->apis_json = b.data;
    s->apis_json_len = b.len;
    return PT_OK;
}

pt_snapshot_t *pt_snapshot_build(pt_config_t *cfg, uint64_t generation, char *err, size_t errlen)
{
    pt_snapshot_t *s = calloc(1, sizeof(*s));
    size_t i;

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        pt_config_free(cfg);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->generation = generation;
    s->config = cfg;
    pt_arena_init(&s->arena, NULL);
    if (pt_policy_build_chains(cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    pt_metrics_assign(cfg);
    s->router = pt_router_build(&s->arena, cfg->apis, cfg->napis, err, errlen);
    if (s->router == NULL)
        goto fail;
    s->proxies = pt_arena_calloc(&s->arena, sizeof(*s->proxies) * (cfg->napis ? cfg->napis : 1));
    if (s->proxies == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < cfg->napis; i++) {
        if (cfg->apis[i].upstream == NULL)
            continue;
        s->proxies[i] = pt_proxy_api_build(&s->arena, &cfg->apis[i], err, errlen);
        if (s->proxies[i] == NULL)
            goto fail;
    }
    s->services = calloc(cfg->napis ? cfg->napis : 1, sizeof(*s->services));
    if (s->services == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < cfg->napis; i++) {
        if (cfg->apis[i].processes == NULL)
            continue;
        s->services[i] = pt_service_rt_build(&cfg->apis[i], err, errlen);
        if (s->services[i] == NULL)
            goto fail;
    }
    /* contracts, rendered once per snapshot */
    s->openapi = calloc(2 * (cfg->napis ? cfg->napis : 1), sizeof(*s->openapi));
    if (s->openapi == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < cfg->napis; i++) {
        char why[256];
        if (cfg->apis[i].openapi_doc != NULL) {
            /* imported: one version, the document's own */
            if (pt_openapi_import(cfg->apis[i].openapi_doc, &s->openapi[2 * i], why, sizeof(why)) !=
                0) {
                snprintf(err, errlen, "%s: %s", cfg->apis[i].file, why);
                goto fail;
            }
            continue;
        }
        if (strcmp(cfg->apis[i].kind, "service") != 0)
            continue;
        if (pt_openapi_render(&cfg->apis[i], 0, &s->openapi[2 * i], why, sizeof(why)) != 0 ||
            pt_openapi_render(&cfg->apis[i], 1, &s->openapi[2 * i + 1], why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s: %s", cfg->apis[i].file, why);
            goto fail;
        }
    }
    s->wsdl = calloc(cfg->napis ? cfg->napis : 1, sizeof(*s->wsdl));
    if (s->wsdl == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < cfg->napis; i++) {
        char why[256];
        if (cfg->apis[i].nsoap_ops == 0)
            continue;
        if (pt_wsdl_render(&cfg->apis[i], &s->wsdl[i], why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s: %s", cfg->apis[i].file, why);
            goto fail;
        }
    }
    s->tls = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(SSL_CTX *));
    if (s->tls == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < cfg->nlisteners; i++) {
        char why[512];
        if (cfg->listeners[i].tls == NULL)
            continue;
        s->tls[i] = pt_tls_ctx_new(cfg->listeners[i].tls, why, sizeof(why));
        if (s->tls[i] == NULL) {
            snprintf(err, errlen, "%s:%u: listen[%zu].tls: %s", cfg->path, cfg->listeners[i].line,
                     i, why);
            goto fail;
        }
    }
    if (render_apis(s) != PT_OK) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return s;
fail:
    snapshot_free(s);
    return NULL;
}

void pt_snapshot_ref(pt_snapshot_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void pt_snapshot_unref(pt_snapshot_t *s)
{
    unsigned prev = atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel);
    if (prev == 0)
        abort(); /* below zero: a bug */
    if (prev == 1)
        snapshot_free(s);
}
