/*
 * wsdl.h - the WSDL 1.1 of a service API's SOAP operations (issue 5,
 * DESIGN.md §6): document/literal wrapped, one `parameters` part per
 * message, wrapper elements named after the operations, qualified elements
 * in the API's target namespace, XSD types from the operations' schemas
 * (nillable for nullable members, minOccurs/maxOccurs, xs:dateTime,
 * xs:decimal... from types and formats), a unique soapAction per operation,
 * SOAP 1.1 and 1.2 bindings and ports. Rendered once per snapshot in two
 * pieces around the service address (see pt_contract_t).
 */
#ifndef PT_PROTOCOL_WSDL_H
#define PT_PROTOCOL_WSDL_H

#include "config/config-t.h"
#include "protocol/openapi.h"

/* The document in three pieces around the two ports' address (the SOAP 1.1
 * and the SOAP 1.2 port): head, address, middle, address, tail. */
typedef struct pt_wsdl_s {
    char *head, *middle, *tail;
    size_t head_len, middle_len, tail_len;
} pt_wsdl_t;

/* Renders api's WSDL (api->nsoap_ops > 0) into out. Returns 0, or -1 with a
 * message in err. */
int pt_wsdl_render(const pt_api_def_t *api, pt_wsdl_t *out, char *err, size_t errlen);
void pt_wsdl_free(pt_wsdl_t *w);

#endif
