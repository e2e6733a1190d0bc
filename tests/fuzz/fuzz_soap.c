/*
 * fuzz_soap.c - libFuzzer target for the SOAP envelope reader and the
 * XML -> context conversion behind SOAP operations: the first byte picks the
 * version (odd: 1.2), the rest is the envelope. A read envelope gives an
 * operation name and a payload object, which is then typed by a schema
 * (pt_jschema_coerce) and validated, as the engine does. A refusal must say
 * why. Nothing may crash, leak or hang.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/xml.h"
#include "process/jschema.h"
#include "protocol/soap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char schema_text[] =
    "{\"op\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},"
    "\"flag\":{\"type\":\"boolean\"},\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"properties\":{\"qty\":{\"type\":\"number\",\"minimum\":0}}}},"
    "\"name\":{\"type\":\"string\",\"maxLength\":10,\"nullable\":true}}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    static pt_arena_t sa;
    static const pt_jschema_t *schema;
    pt_arena_t a;
    const char *op;
    pt_json_t *payload, *viol = NULL;
    char err[256];
    int version;

    if (!init) {
        pt_json_error_t jerr;
        char why[256];
        pt_json_t *defs;
        pt_xml_init();
        pt_arena_init(&sa, NULL);
        defs = pt_json_parse(&sa, schema_text, strlen(schema_text), NULL, &jerr);
        if (defs == NULL)
            abort();
        schema = pt_jschema_get(pt_jschema_compile(&sa, defs, why, sizeof(why)), "op");
        if (schema == NULL)
            abort();
        init = 1;
    }
    if (size < 1 || size > 65536)
        return 0;
    version = (data[0] & 1) + 1;
    pt_arena_init(&a, NULL);
    err[0] = '\0';
    if (pt_soap_read(&a, (const char *)data + 1, size - 1, version, &op, &payload, err,
                     sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
    } else {
        if (op == NULL || payload == NULL || payload->type == PT_JSON_ARRAY)
            abort();
        payload = pt_jschema_coerce(schema, payload, &a);
        if (pt_jschema_validate(schema, payload, PT_JSCHEMA_REQUEST, &a, 8, &viol) < 0)
            abort();
    }
    pt_arena_reset(&a);
    return 0;
}
