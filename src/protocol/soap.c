/*
 * soap.c - reading SOAP envelopes (see soap.h).
 */
#include "protocol/soap.h"

#include <stdio.h>
#include <string.h>

#include "core/xml.h"

int pt_soap_read(pt_arena_t *a, const char *data, size_t len, int version, const char **op,
                 pt_json_t **payload, char *err, size_t errlen)
{
    pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
    pt_json_error_t jerr;
    const char *root, *ns, *want = version == 2 ? PT_SOAP12_NS : PT_SOAP11_NS;
    pt_json_t *env = pt_xml_parse(a, data != NULL ? data : "", len, &lim, &root, &ns, &jerr);
    const pt_json_t *body;
    const pt_json_member_t *el = NULL;
    size_t i;

    *op = NULL;
    *payload = NULL;
    if (env == NULL) {
        snprintf(err, errlen, "The envelope is not acceptable XML: line %u: %s", jerr.line,
                 jerr.message);
        return -1;
    }
    if (strcmp(root, "Envelope") != 0 || ns == NULL || strcmp(ns, want) != 0) {
        snprintf(err, errlen, "Expected a SOAP 1.%d Envelope (%s).", version == 2 ? 2 : 1, want);
        return -1;
    }
    body = pt_json_get(env, "Body");
    for (i = 0; body != NULL && body->type == PT_JSON_OBJECT && i < body->u.obj.n; i++) {
        const pt_json_member_t *m = &body->u.obj.members[i];
        if (m->key[0] == '@' || m->key[0] == '#')
            continue;
        if (el != NULL || m->value->type == PT_JSON_ARRAY) {
            snprintf(err, errlen, "The Body must hold exactly one element.");
            return -1;
        }
        el = m;
    }
    if (el == NULL) {
        snprintf(err, errlen, "The envelope has no Body element to dispatch on.");
        return -1;
    }
    *op = el->key;
    *payload = el->value->type == PT_JSON_STRING ? pt_json_object(a) : el->value;
    if (*payload == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}
