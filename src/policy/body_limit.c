/*
 * body_limit.c - the `body_limit` policy: a smaller maximum request body
 * for an API or a route than the node's `limits.max_body_size`. A declared
 * Content-Length above it is answered 413 before any of the body is read;
 * a chunked body is cut off with 413 (and the connection closed) as soon as
 * it passes the limit.
 *
 *   policies:
 *     body_limit: {max: 64KiB}
 */
#include "config/config.h"
#include "http/http.h"
#include "policy/policy.h"

typedef struct body_limit_s {
    uint64_t max;
} body_limit_t;

static const char *const keys[] = {"max", NULL};

static void *parse(pt__cfg_ctx_t *c, const pt_ynode_t *n)
{
    body_limit_t *b = pt_arena_calloc(c->arena, sizeof(*b));
    const pt_ynode_t *v;
    size_t mark;
    if (b == NULL || pt__cfg_mapping(c, n, keys) != 0)
        return NULL;
    mark = pt__cfg_push(c, "max", 3);
    if (pt_yaml_is_null(v = pt_yaml_get(n, "max"))) {
        pt__cfg_err(c, n->line, "required key is missing (e.g. max: 64KiB)");
        b = NULL;
    } else if (pt__cfg_size(c, v, 1, 1ull << 40, &b->max) != 0) {
        b = NULL;
    }
    pt__cfg_pop(c, mark);
    return b;
}

static int handle(const void *conf, pt_req_t *req)
{
    const body_limit_t *b = conf;
    if (req->content_length > 0 && (uint64_t)req->content_length > b->max) {
        req->keepalive = 0; /* the body it announced will not be read */
        pt_policy_count(req, PT_PSTAT_BODY_TOO_LARGE);
        pt_http_problem(req, 413, "payload-too-large",
                        "The request body exceeds this API's maximum size.", NULL, 0);
        return 1;
    }
    req->max_body = b->max;
    return 0;
}

const pt_policy_type_t pt_policy_body_limit = {"body_limit", PT_ORDER_IP_FILTER + 1, parse, handle,
                                               NULL};
