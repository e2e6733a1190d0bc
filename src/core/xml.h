/*
 * xml.h - XML bodies as the same tree as JSON ones (libxml2), and JSON
 * values written as XML.
 *
 * Reading is hardened: a document with a DOCTYPE is refused before libxml2
 * sees it (no DTD, so no entity expansion and no external entity: an XML
 * bomb or an XXE is a 400, not a hang or a file read), network access is
 * off, nesting and node counts are bounded.
 *
 * The mapping (the convention of most XML<->JSON gateways):
 * - the document element's content is the value (its name is reported
 *   apart: a wrapper, like a SOAP operation element);
 * - an element with only text is a string (all values are text: schema
 *   coercion, pt_jschema_coerce, makes numbers and booleans of them);
 * - an element with child elements or attributes is an object: children by
 *   local name (namespaces dropped), repeated names become an array,
 *   attributes are "@name", text beside elements is "#text";
 * - xsi:nil="true" is null; an empty element is "".
 */
#ifndef PT_XML_H
#define PT_XML_H

#include <stddef.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"

/* Once, on the main thread, before any thread parses. */
void pt_xml_init(void);
void pt_xml_cleanup(void);

/* Parses data[0..len) (limits: max_depth and max_items as for JSON; NULL =
 * defaults). Returns the value in arena a, with the document element's local
 * name and namespace URI (NULL when none) in *root and *ns (arena copies),
 * or NULL with err filled ("a DOCTYPE is not accepted", libxml2's message
 * with line and column, "too deep", "too many values"). Thread-safe. */
pt_json_t *pt_xml_parse(pt_arena_t *a, const char *data, size_t len, const pt_json_limits_t *limits,
                        const char **root, const char **ns, pt_json_error_t *err);

/* Writes v as an XML document whose element is `root` (the reverse
 * mapping: objects as child elements, "@x" members as attributes, arrays as
 * repeated elements - a top-level array as <item> children - null as
 * xsi:nil). Member names that are not XML names are made into ones ('_' for
 * each invalid character). Returns PT_OK or PT_ENOMEM. */
int pt_xml_write(pt_buf_t *b, const char *root, const pt_json_t *v);

/* Writes v as element(s) `name` without a declaration (an array as repeated
 * elements); the xsi prefix must be declared by an enclosing element. */
int pt_xml_write_element(pt_buf_t *b, const char *name, const pt_json_t *v);

#endif
