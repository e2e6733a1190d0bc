/*
 * openapi.h - the OpenAPI document of a service API (issue 5, DESIGN.md §6),
 * generated from the deployed definition once per snapshot.
 *
 * Every route is an operation (operationId, summary, description, tags by
 * resource), with its parameters (path parameters required, declared query
 * parameters and headers typed, routing headers as required enums, paging
 * parameters of paged lists), its request body (the body schema, JSON and
 * XML) and every response it can give: its success statuses (with the
 * response schema when declared) and the errors the gateway itself answers
 * (problem+json, a shared Problem schema). The API's schemas become
 * components.schemas ($ref rewritten; `nullable` as a "null" type in 3.1).
 *
 * The document is rendered as JSON in two pieces around the server URL,
 * which depends on the request (listener, Host, trusted X-Forwarded-*):
 * serving it is two copies and the URL, no generation per request. The
 * YAML form is the same text (YAML 1.2 reads JSON).
 */
#ifndef PT_PROTOCOL_OPENAPI_H
#define PT_PROTOCOL_OPENAPI_H

#include <stddef.h>

#include "config/config-t.h"

typedef struct pt_contract_s {
    char *head; /* up to the server URL (inside its JSON string) */
    size_t head_len;
    char *tail; /* after it */
    size_t tail_len;
} pt_contract_t;

/* Renders api's document, OpenAPI 3.1.0 (v30 = 0) or 3.0.3 (v30 = 1), into
 * out (malloc'd pieces; free with pt_contract_free). Returns 0, or -1 with a
 * message in err. */
int pt_openapi_render(const pt_api_def_t *api, int v30, pt_contract_t *out, char *err,
                      size_t errlen);

/* Renders an imported OpenAPI 3.x document (a proxy API's `openapi:`) with
 * its `servers` replaced by the gateway's URL. Same contract as above. */
int pt_openapi_import(const struct pt_json_s *doc, pt_contract_t *out, char *err, size_t errlen);

void pt_contract_free(pt_contract_t *c);

#endif
