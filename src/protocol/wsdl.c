/*
 * wsdl.c - the WSDL 1.1 of a service API's SOAP operations (see wsdl.h).
 */
#include "protocol/wsdl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "process/jschema.h"

#define MARK "\001address\001"

static void x(pt_buf_t *b, const char *s)
{
    pt_buf_append_xml_str(b, s, strlen(s));
}

/* The name of a named schema of the API when s is one, else NULL. */
static const char *named(const pt_api_def_t *api, const pt_json_t *doc, char *out, size_t outlen)
{
    size_t i, n = pt_jschema_count(api->schemas), len;
    for (i = 0; i < n; i++)
        if (pt_jschema_doc(pt_jschema_at(api->schemas, i)) == doc) {
            const char *name = pt_jschema_name(api->schemas, i, &len);
            snprintf(out, outlen, "%.*s", (int)len, name);
            return out;
        }
    return NULL;
}

/* The XSD type of a scalar schema document. */
static const char *xsd_scalar(const pt_json_t *s)
{
    const pt_json_t *t = pt_json_get(s, "type"), *f = pt_json_get(s, "format");
    const char *type = NULL;
    size_t i;
    if (t != NULL && t->type == PT_JSON_STRING)
        type = t->u.str.p;
    else if (t != NULL && t->type == PT_JSON_ARRAY)
        for (i = 0; i < t->u.arr.n && type == NULL; i++)
            if (t->u.arr.items[i]->type == PT_JSON_STRING &&
                strcmp(t->u.arr.items[i]->u.str.p, "null") != 0)
                type = t->u.arr.items[i]->u.str.p;
    if (type == NULL)
        return "xs:anyType";
    if (strcmp(type, "integer") == 0)
        return "xs:long";
    if (strcmp(type, "number") == 0)
        return "xs:decimal";
    if (strcmp(type, "boolean") == 0)
        return "xs:boolean";
    if (strcmp(type, "string") == 0) {
        if (f != NULL && f->type == PT_JSON_STRING) {
            if (strcmp(f->u.str.p, "date") == 0)
                return "xs:date";
            if (strcmp(f->u.str.p, "date-time") == 0)
                return "xs:dateTime";
            if (strcmp(f->u.str.p, "uri") == 0)
                return "xs:anyURI";
        }
        return "xs:string";
    }
    return NULL; /* object or array */
}

static int is_nullable(const pt_json_t *s)
{
    const pt_json_t *n = pt_json_get(s, "nullable"), *t = pt_json_get(s, "type");
    size_t i;
    if (n != NULL && n->type == PT_JSON_TRUE)
        return 1;
    for (i = 0; t != NULL && t->type == PT_JSON_ARRAY && i < t->u.arr.n; i++)
        if (t->u.arr.items[i]->type == PT_JSON_STRING &&
            strcmp(t->u.arr.items[i]->u.str.p, "null") == 0)
            return 1;
    return 0;
}

static void complex_content(pt_buf_t *b, const pt_api_def_t *api, const pt_json_t *s, int depth);

/* An <xs:element name=...> for member `name` of schema s. */
static void element(pt_buf_t *b, const pt_api_def_t *api, const char *name, const pt_json_t *s,
                    int required, int depth)
{
    const pt_json_t *ref = pt_json_get(s, "$ref"), *t = pt_json_get(s, "type");
    const char *scalar;
    char nm[128];
    int array = t != NULL && t->type == PT_JSON_STRING && strcmp(t->u.str.p, "array") == 0;
    const pt_json_t *item = array ? pt_json_get(s, "items") : s;

    pt_buf_append_str(b, "<xs:element name=\"");
    x(b, name);
    pt_buf_printf(b, "\" minOccurs=\"%s\"", required && !array ? "1" : "0");
    if (array)
        pt_buf_append_str(b, " maxOccurs=\"unbounded\"");
    if (is_nullable(s))
        pt_buf_append_str(b, " nillable=\"true\"");
    if (item != NULL && (ref = pt_json_get(item, "$ref")) != NULL && ref->type == PT_JSON_STRING &&
        strncmp(ref->u.str.p, "#/schemas/", 10) == 0) {
        pt_buf_append_str(b, " type=\"tns:");
        x(b, ref->u.str.p + 10);
        pt_buf_append_str(b, "\"/>");
        return;
    }
    if (item == NULL) {
        pt_buf_append_str(b, " type=\"xs:anyType\"/>");
        return;
    }
    if ((scalar = xsd_scalar(item)) != NULL) {
        pt_buf_printf(b, " type=\"%s\"/>", scalar);
        return;
    }
    if (named(api, item, nm, sizeof(nm)) != NULL) {
        pt_buf_append_str(b, " type=\"tns:");
        x(b, nm);
        pt_buf_append_str(b, "\"/>");
        return;
    }
    pt_buf_append_str(b, "><xs:complexType>");
    complex_content(b, api, item, depth + 1);
    pt_buf_append_str(b, "</xs:complexType></xs:element>");
}

/* The <xs:sequence> of an object schema (lax any when it has no properties). */
static void complex_content(pt_buf_t *b, const pt_api_def_t *api, const pt_json_t *s, int depth)
{
    const pt_json_t *props = pt_json_get(s, "properties"), *req = pt_json_get(s, "required");
    size_t i, k;
    if (depth > 32 || props == NULL || props->type != PT_JSON_OBJECT || props->u.obj.n == 0) {
        pt_buf_append_str(b, "<xs:sequence><xs:any minOccurs=\"0\" maxOccurs=\"unbounded\" "
                             "processContents=\"lax\"/></xs:sequence>");
        return;
    }
    pt_buf_append_str(b, "<xs:sequence>");
    for (i = 0; i < props->u.obj.n; i++) {
        const pt_json_member_t *m = &props->u.obj.members[i];
        int required = 0;
        for (k = 0; req != NULL && req->type == PT_JSON_ARRAY && k < req->u.arr.n; k++)
            if (req->u.arr.items[k]->type == PT_JSON_STRING &&
                strcmp(req->u.arr.items[k]->u.str.p, m->key) == 0)
                required = 1;
        element(b, api, m->key, m->value, required, depth);
    }
    pt_buf_append_str(b, "</xs:sequence>");
}

/* Wrapper element `name` whose content is schema s (or anything). */
static void wrapper(pt_buf_t *b, const pt_api_def_t *api, const char *name, const pt_jschema_t *s)
{
    const pt_json_t *doc = s != NULL ? pt_jschema_doc(s) : NULL;
    const pt_json_t *t = doc != NULL ? pt_json_get(doc, "type") : NULL;
    char nm[128];
    pt_buf_append_str(b, "<xs:element name=\"");
    x(b, name);
    if (doc != NULL && named(api, doc, nm, sizeof(nm)) != NULL &&
        pt_json_get(doc, "properties") != NULL) {
        pt_buf_append_str(b, "\" type=\"tns:");
        x(b, nm);
        pt_buf_append_str(b, "\"/>");
        return;
    }
    pt_buf_append_str(b, "\"><xs:complexType>");
    if (t != NULL && t->type == PT_JSON_STRING && strcmp(t->u.str.p, "array") == 0) {
        /* an array result is written as one <item> per element */
        pt_buf_append_str(b, "<xs:sequence>");
        element(b, api, "item", doc, 0, 0);
        pt_buf_append_str(b, "</xs:sequence>");
    } else {
        complex_content(b, api, doc, 0);
    }
    pt_buf_append_str(b, "</xs:complexType></xs:element>");
}

static char *piece(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

int pt_wsdl_render(const pt_api_def_t *api, pt_wsdl_t *out, char *err, size_t errlen)
{
    const char *tns = api->soap_namespace;
    size_t i, n = pt_jschema_count(api->schemas), len;
    pt_buf_t b;
    const char *m1, *m2;
    static const char *const bindings[2][3] = {
        {"Soap11", "soap", "http://schemas.xmlsoap.org/wsdl/soap/"},
        {"Soap12", "soap12", "http://schemas.xmlsoap.org/wsdl/soap12/"}};
    int v;

    memset(out, 0, sizeof(*out));
    pt_buf_init(&b, 0);
    pt_buf_append_str(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                          "<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\" "
                          "xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\" "
                          "xmlns:soap12=\"http://schemas.xmlsoap.org/wsdl/soap12/\" "
                          "xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" xmlns:tns=\"");
    x(&b, tns);
    pt_buf_append_str(&b, "\" targetNamespace=\"");
    x(&b, tns);
    pt_buf_append_str(&b, "\" name=\"");
    x(&b, api->name);
    pt_buf_append_str(&b, "\">");
    if (api->description != NULL) {
        pt_buf_append_str(&b, "<wsdl:documentation>");
        x(&b, api->description);
        pt_buf_append_str(&b, "</wsdl:documentation>");
    }
    /* types */
    pt_buf_append_str(&b, "<wsdl:types><xs:schema elementFormDefault=\"qualified\" "
                          "targetNamespace=\"");
    x(&b, tns);
    pt_buf_append_str(&b, "\">");
    for (i = 0; i < n; i++) {
        const pt_json_t *doc = pt_jschema_doc(pt_jschema_at(api->schemas, i));
        const char *name = pt_jschema_name(api->schemas, i, &len);
        char nm[128];
        if (pt_json_get(doc, "properties") == NULL)
            continue; /* only object schemas are named complex types */
        snprintf(nm, sizeof(nm), "%.*s", (int)len, name);
        pt_buf_append_str(&b, "<xs:complexType name=\"");
        x(&b, nm);
        pt_buf_append_str(&b, "\">");
        complex_content(&b, api, doc, 0);
        pt_buf_append_str(&b, "</xs:complexType>");
    }
    for (i = 0; i < api->nsoap_ops; i++) {
        const pt_route_def_t *op = &api->soap_ops[i];
        char resp[160];
        snprintf(resp, sizeof(resp), "%sResponse", op->name);
        wrapper(&b, api, op->name, op->body_schema);
        wrapper(&b, api, resp, op->response_schema);
    }
    pt_buf_append_str(&b, "</xs:schema></wsdl:types>");
    /* messages */
    for (i = 0; i < api->nsoap_ops; i++) {
        const char *o = api->soap_ops[i].name;
        pt_buf_printf(&b,
                      "<wsdl:message name=\"%sRequest\"><wsdl:part name=\"parameters\" "
                      "element=\"tns:%s\"/></wsdl:message><wsdl:message name=\"%sResponse\">"
                      "<wsdl:part name=\"parameters\" element=\"tns:%sResponse\"/></wsdl:message>",
                      o, o, o, o);
    }
    /* port type */
    pt_buf_append_str(&b, "<wsdl:portType name=\"");
    x(&b, api->name);
    pt_buf_append_str(&b, "PortType\">");
    for (i = 0; i < api->nsoap_ops; i++) {
        const pt_route_def_t *op = &api->soap_ops[i];
        pt_buf_printf(&b, "<wsdl:operation name=\"%s\">", op->name);
        if (op->description != NULL) {
            pt_buf_append_str(&b, "<wsdl:documentation>");
            x(&b, op->description);
            pt_buf_append_str(&b, "</wsdl:documentation>");
        }
        pt_buf_printf(&b,
                      "<wsdl:input message=\"tns:%sRequest\"/><wsdl:output "
                      "message=\"tns:%sResponse\"/></wsdl:operation>",
                      op->name, op->name);
    }
    pt_buf_append_str(&b, "</wsdl:portType>");
    /* bindings: SOAP 1.1 and 1.2, document/literal, one soapAction per operation */
    for (v = 0; v < 2; v++) {
        pt_buf_append_str(&b, "<wsdl:binding name=\"");
        x(&b, api->name);
        pt_buf_printf(&b, "%s\" type=\"tns:", bindings[v][0]);
        x(&b, api->name);
        pt_buf_printf(&b,
                      "PortType\"><%s:binding style=\"document\" "
                      "transport=\"http://schemas.xmlsoap.org/soap/http\"/>",
                      bindings[v][1]);
        for (i = 0; i < api->nsoap_ops; i++) {
            const char *o = api->soap_ops[i].name;
            pt_buf_printf(&b, "<wsdl:operation name=\"%s\"><%s:operation soapAction=\"", o,
                          bindings[v][1]);
            x(&b, tns);
            pt_buf_printf(&b,
                          "/%s\" style=\"document\"/><wsdl:input><%s:body use=\"literal\"/>"
                          "</wsdl:input><wsdl:output><%s:body use=\"literal\"/></wsdl:output>"
                          "</wsdl:operation>",
                          o, bindings[v][1], bindings[v][1]);
        }
        pt_buf_append_str(&b, "</wsdl:binding>");
    }
    /* service: both ports at the address spliced per request */
    pt_buf_append_str(&b, "<wsdl:service name=\"");
    x(&b, api->name);
    pt_buf_append_str(&b, "Service\">");
    for (v = 0; v < 2; v++) {
        pt_buf_append_str(&b, "<wsdl:port name=\"");
        x(&b, api->name);
        pt_buf_printf(&b, "%s\" binding=\"tns:", bindings[v][0]);
        x(&b, api->name);
        pt_buf_printf(&b, "%s\"><%s:address location=\"" MARK "\"/></wsdl:port>", bindings[v][0],
                      bindings[v][1]);
    }
    pt_buf_append_str(&b, "</wsdl:service></wsdl:definitions>");
    if (b.data == NULL || (m1 = strstr(b.data, MARK)) == NULL ||
        (m2 = strstr(m1 + strlen(MARK), MARK)) == NULL) {
        pt_buf_free(&b);
        snprintf(err, errlen, "out of memory rendering the WSDL");
        return -1;
    }
    out->head_len = (size_t)(m1 - b.data);
    out->middle_len = (size_t)(m2 - m1) - strlen(MARK);
    out->tail_len = b.len - (size_t)(m2 - b.data) - strlen(MARK);
    out->head = piece(b.data, out->head_len);
    out->middle = piece(m1 + strlen(MARK), out->middle_len);
    out->tail = piece(m2 + strlen(MARK), out->tail_len);
    pt_buf_free(&b);
    if (out->head == NULL || out->middle == NULL || out->tail == NULL) {
        pt_wsdl_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void pt_wsdl_free(pt_wsdl_t *w)
{
    free(w->head);
    free(w->middle);
    free(w->tail);
    memset(w, 0, sizeof(*w));
}
