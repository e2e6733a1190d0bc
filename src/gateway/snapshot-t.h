/*
 * snapshot-t.h - the immutable, reference-counted view of the configuration
 * that requests run against (DESIGN.md §7 "Hot deploy").
 */
#ifndef PT_SNAPSHOT_T_H
#define PT_SNAPSHOT_T_H

#include <stdatomic.h>
#include <stdint.h>

#include "config/config-t.h"
#include "core/arena.h"

typedef struct pt_router_s pt_router_t;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct pt_snapshot_s {
    atomic_uint refs;    /* one per holder: the publisher and every worker holder */
    uint64_t generation; /* 1, 2, ... in publication order */
    pt_config_t *config; /* owned */
    pt_arena_t arena;    /* router and rendered documents */
    pt_router_t *router;
    SSL_CTX **tls;                     /* per listener index; NULL entries for plain listeners */
    struct pt_proxy_api_s **proxies;   /* per API index: a proxy API's runtime view, or NULL */
    struct pt_service_rt_s **services; /* per API index: a service API's databases, or NULL */
    struct pt_contract_s *openapi;     /* per API index x 2 (3.1, 3.0): rendered documents of
                                          service APIs (head NULL for others) */
    struct pt_wsdl_s *wsdl;            /* per API index: the WSDL of its SOAP operations */
    char *apis_json;                   /* pre-rendered body of /_portico/apis */
    size_t apis_json_len;
} pt_snapshot_t;

#endif
