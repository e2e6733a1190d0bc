/*
 * xml.c - XML bodies as JSON trees, JSON values as XML (see xml.h).
 */
#include "core/xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <stdio.h>
#include <string.h>

#define XSI_NS "http://www.w3.org/2001/XMLSchema-instance"

void pt_xml_init(void)
{
    xmlInitParser();
}

void pt_xml_cleanup(void)
{
    xmlCleanupParser();
}

typedef struct conv_s {
    pt_arena_t *a;
    size_t items, max_items;
    unsigned max_depth;
    pt_json_error_t *err;
} conv_t;

static void conv_fail(conv_t *c, const xmlNode *n, const char *msg)
{
    if (c->err == NULL || c->err->message[0] != '\0')
        return;
    c->err->line = n != NULL ? (unsigned)xmlGetLineNo((xmlNode *)n) : 0;
    c->err->column = 0;
    snprintf(c->err->message, sizeof(c->err->message), "%s", msg);
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

static pt_json_t *element(conv_t *c, const xmlNode *el, unsigned depth)
{
    const xmlNode *k;
    const xmlAttr *at;
    pt_json_t *obj = NULL, *v;
    pt_buf_t text;
    int has_elements = 0, has_attrs = 0;

    if (depth > c->max_depth) {
        conv_fail(c, el, "too deep");
        return NULL;
    }
    if (++c->items > c->max_items) {
        conv_fail(c, el, "too many values");
        return NULL;
    }
    for (at = el->properties; at != NULL; at = at->next) {
        if (at->ns != NULL && at->ns->href != NULL &&
            strcmp((const char *)at->ns->href, XSI_NS) == 0) {
            if (strcmp((const char *)at->name, "nil") == 0) {
                xmlChar *val = xmlNodeListGetString(el->doc, at->children, 1);
                int nil = val != NULL &&
                          (strcmp((char *)val, "true") == 0 || strcmp((char *)val, "1") == 0);
                xmlFree(val);
                if (nil)
                    return pt_json_null(c->a);
            }
            continue; /* xsi:type and the like describe, they are not data */
        }
        has_attrs = 1;
    }
    for (k = el->children; k != NULL; k = k->next)
        if (k->type == XML_ELEMENT_NODE)
            has_elements = 1;
    pt_buf_init(&text, 0);
    for (k = el->children; k != NULL; k = k->next)
        if ((k->type == XML_TEXT_NODE || k->type == XML_CDATA_SECTION_NODE) && k->content) {
            if (pt_buf_append_str(&text, (const char *)k->content) != PT_OK) {
                pt_buf_free(&text);
                conv_fail(c, el, "out of memory");
                return NULL;
            }
        }
    if (!has_elements && !has_attrs) {
        v = pt_json_string(c->a, text.data ? text.data : "", text.len);
        pt_buf_free(&text);
        if (v == NULL)
            conv_fail(c, el, "out of memory");
        return v;
    }
    if ((obj = pt_json_object(c->a)) == NULL)
        goto nomem;
    for (at = el->properties; at != NULL; at = at->next) {
        xmlChar *val;
        char *key;
        if (at->ns != NULL && at->ns->href != NULL &&
            strcmp((const char *)at->ns->href, XSI_NS) == 0)
            continue;
        val = xmlNodeListGetString(el->doc, at->children, 1);
        key = pt_arena_printf(c->a, "@%s", (const char *)at->name);
        v = pt_json_string(c->a, val ? (const char *)val : "", val ? strlen((char *)val) : 0);
        xmlFree(val);
        if (key == NULL || v == NULL || pt_json_object_set(c->a, obj, key, strlen(key), v) != PT_OK)
            goto nomem;
    }
    for (k = el->children; k != NULL; k = k->next) {
        const char *name;
        pt_json_t *prev;
        if (k->type != XML_ELEMENT_NODE)
            continue;
        name = (const char *)k->name;
        if ((v = element(c, k, depth + 1)) == NULL) {
            pt_buf_free(&text);
            return NULL;
        }
        prev = pt_json_get(obj, name);
        if (prev == NULL) {
            if (pt_json_object_set(c->a, obj, name, strlen(name), v) != PT_OK)
                goto nomem;
        } else if (prev->type == PT_JSON_ARRAY) { /* (element values are never arrays) */
            if (pt_json_array_add(c->a, prev, v) != PT_OK)
                goto nomem;
        } else {
            pt_json_t *arr = pt_json_array(c->a);
            if (arr == NULL || pt_json_array_add(c->a, arr, prev) != PT_OK ||
                pt_json_array_add(c->a, arr, v) != PT_OK ||
                pt_json_object_set(c->a, obj, name, strlen(name), arr) != PT_OK)
                goto nomem;
        }
    }
    if (text.len > 0 && !is_blank(text.data)) {
        v = pt_json_string(c->a, text.data, text.len);
        if (v == NULL || pt_json_object_set(c->a, obj, "#text", 5, v) != PT_OK)
            goto nomem;
    }
    pt_buf_free(&text);
    return obj;
nomem:
    pt_buf_free(&text);
    conv_fail(c, el, "out of memory");
    return NULL;
}

/* Is there a DOCTYPE (outside comments and processing instructions)? */
static int has_doctype(const char *d, size_t n)
{
    size_t i;
    for (i = 0; i + 9 <= n; i++) {
        if (d[i] != '<')
            continue;
        if (memcmp(d + i, "<!DOCTYPE", 9) == 0)
            return 1;
        if (i + 4 <= n && memcmp(d + i, "<!--", 4) == 0) {
            const char *e = NULL;
            size_t j;
            for (j = i + 4; j + 3 <= n; j++)
                if (memcmp(d + j, "-->", 3) == 0) {
                    e = d + j;
                    break;
                }
            if (e == NULL)
                return 0; /* unterminated: the parser refuses it */
            i = (size_t)(e - d) + 2;
        } else if (d[i + 1] != '?' && d[i + 1] != '!') {
            return 0; /* the document element began: a DOCTYPE cannot follow */
        }
    }
    return 0;
}

pt_json_t *pt_xml_parse(pt_arena_t *a, const char *data, size_t len, const pt_json_limits_t *limits,
                        const char **root, const char **ns, pt_json_error_t *err)
{
    pt_json_limits_t lim = limits != NULL ? *limits : PT_JSON_LIMITS_DEFAULT;
    xmlParserCtxtPtr ctx;
    xmlDocPtr doc;
    xmlNodePtr el;
    conv_t c;
    pt_json_t *v;

    if (err != NULL)
        memset(err, 0, sizeof(*err));
    *root = NULL;
    *ns = NULL;
    if (len > (size_t)INT32_MAX) {
        if (err != NULL)
            snprintf(err->message, sizeof(err->message), "too large");
        return NULL;
    }
    if (has_doctype(data, len)) {
        if (err != NULL)
            snprintf(err->message, sizeof(err->message),
                     "a DOCTYPE is not accepted (no DTD, no entities)");
        return NULL;
    }
    ctx = xmlNewParserCtxt();
    if (ctx == NULL) {
        if (err != NULL)
            snprintf(err->message, sizeof(err->message), "out of memory");
        return NULL;
    }
    /* no network, no entity substitution (no NOENT), no DTD loading, CDATA as text */
    doc = xmlCtxtReadMemory(ctx, data, (int)len, NULL, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR |
                                XML_PARSE_NOWARNING);
    if (doc == NULL) {
        const xmlError *e = xmlCtxtGetLastError(ctx);
        if (err != NULL) {
            size_t n;
            err->line = e != NULL ? (unsigned)e->line : 0;
            err->column = e != NULL ? (unsigned)e->int2 : 0;
            snprintf(err->message, sizeof(err->message), "%s",
                     e != NULL && e->message ? e->message : "not well-formed XML");
            n = strlen(err->message);
            while (n > 0 && (err->message[n - 1] == '\n' || err->message[n - 1] == ' '))
                err->message[--n] = '\0';
        }
        xmlFreeParserCtxt(ctx);
        return NULL;
    }
    xmlFreeParserCtxt(ctx);
    if (doc->intSubset != NULL || doc->extSubset != NULL) {
        xmlFreeDoc(doc);
        if (err != NULL)
            snprintf(err->message, sizeof(err->message), "a DOCTYPE is not accepted");
        return NULL;
    }
    el = xmlDocGetRootElement(doc);
    if (el == NULL) {
        xmlFreeDoc(doc);
        if (err != NULL)
            snprintf(err->message, sizeof(err->message), "no document element");
        return NULL;
    }
    memset(&c, 0, sizeof(c));
    c.a = a;
    c.max_depth = lim.max_depth ? lim.max_depth : 64;
    c.max_items = lim.max_items ? lim.max_items : (size_t)-1;
    c.err = err;
    v = element(&c, el, 0);
    if (v != NULL) {
        *root = pt_arena_strdup(a, (const char *)el->name);
        if (el->ns != NULL && el->ns->href != NULL)
            *ns = pt_arena_strdup(a, (const char *)el->ns->href);
        if (*root == NULL) {
            v = NULL;
            if (err != NULL)
                snprintf(err->message, sizeof(err->message), "out of memory");
        }
    }
    xmlFreeDoc(doc);
    return v;
}

/* ------------------------------------------------------------------ writing */

/* A JSON member name as an XML name: [A-Za-z_][A-Za-z0-9._-]* (ASCII; other
 * bytes become '_'). */
static int put_name(pt_buf_t *b, const char *s, size_t n)
{
    size_t i;
    int rc = 0;
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        rc |= pt_buf_append_char(b, '_');
    for (i = 0; i < n; i++) {
        char ch = s[i];
        int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-' || ch == '.';
        rc |= pt_buf_append_char(b, ok ? ch : '_');
    }
    return rc;
}

static int scalar_text(pt_buf_t *b, const pt_json_t *v)
{
    switch (v->type) {
    case PT_JSON_TRUE:
        return pt_buf_append_str(b, "true");
    case PT_JSON_FALSE:
        return pt_buf_append_str(b, "false");
    case PT_JSON_NUMBER:
        return pt_buf_append(b, v->u.str.p, v->u.str.len);
    case PT_JSON_STRING:
        return pt_buf_append_xml_str(b, v->u.str.p, v->u.str.len);
    default:
        return 0;
    }
}

static int write_el(pt_buf_t *b, const char *name, size_t nlen, const pt_json_t *v, int top,
                    unsigned depth)
{
    size_t i;
    int rc = 0;
    if (depth > 128)
        return PT_ENOMEM;
    if (v->type == PT_JSON_ARRAY && !top) {
        /* repeated elements of the member's name */
        for (i = 0; i < v->u.arr.n; i++)
            rc |= write_el(b, name, nlen, v->u.arr.items[i], 0, depth + 1);
        return rc;
    }
    rc |= pt_buf_append_char(b, '<');
    rc |= put_name(b, name, nlen);
    if (top == 1)
        rc |= pt_buf_append_str(b, " xmlns:xsi=\"" XSI_NS "\"");
    if (v->type == PT_JSON_NULL)
        return rc | pt_buf_append_str(b, " xsi:nil=\"true\"/>");
    if (v->type == PT_JSON_OBJECT)
        for (i = 0; i < v->u.obj.n; i++) {
            const pt_json_member_t *m = &v->u.obj.members[i];
            if (m->key_len > 1 && m->key[0] == '@' && m->value->type != PT_JSON_OBJECT &&
                m->value->type != PT_JSON_ARRAY && m->value->type != PT_JSON_NULL) {
                rc |= pt_buf_append_char(b, ' ');
                rc |= put_name(b, m->key + 1, m->key_len - 1);
                rc |= pt_buf_append_str(b, "=\"");
                rc |= scalar_text(b, m->value);
                rc |= pt_buf_append_char(b, '"');
            }
        }
    rc |= pt_buf_append_char(b, '>');
    if (v->type == PT_JSON_OBJECT) {
        for (i = 0; i < v->u.obj.n; i++) {
            const pt_json_member_t *m = &v->u.obj.members[i];
            if (m->key_len > 1 && m->key[0] == '@' && m->value->type != PT_JSON_OBJECT &&
                m->value->type != PT_JSON_ARRAY && m->value->type != PT_JSON_NULL)
                continue;
            if (m->key_len == 5 && memcmp(m->key, "#text", 5) == 0)
                rc |= scalar_text(b, m->value);
            else
                rc |= write_el(b, m->key, m->key_len, m->value, 0, depth + 1);
        }
    } else if (v->type == PT_JSON_ARRAY) {
        for (i = 0; i < v->u.arr.n; i++)
            rc |= write_el(b, "item", 4, v->u.arr.items[i], 0, depth + 1);
    } else {
        rc |= scalar_text(b, v);
    }
    rc |= pt_buf_append_str(b, "</");
    rc |= put_name(b, name, nlen);
    rc |= pt_buf_append_char(b, '>');
    return rc;
}

int pt_xml_write_element(pt_buf_t *b, const char *name, const pt_json_t *v)
{
    return write_el(b, name, strlen(name), v, 0, 0) != 0 ? PT_ENOMEM : PT_OK;
}

int pt_xml_write(pt_buf_t *b, const char *root, const pt_json_t *v)
{
    int rc = pt_buf_append_str(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    rc |= write_el(b, root, strlen(root), v, 1, 0);
    return rc != 0 ? PT_ENOMEM : PT_OK;
}
