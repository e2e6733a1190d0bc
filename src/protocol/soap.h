/*
 * soap.h - reading SOAP 1.1 / 1.2 envelopes (issue 5): the envelope checked
 * against its version's namespace, the one element of its Body (the
 * operation's wrapper) and its content as the context tree (core/xml.h).
 */
#ifndef PT_PROTOCOL_SOAP_H
#define PT_PROTOCOL_SOAP_H

#include <stddef.h>

#include "core/arena.h"
#include "core/json.h"

#define PT_SOAP11_NS "http://schemas.xmlsoap.org/soap/envelope/"
#define PT_SOAP12_NS "http://www.w3.org/2003/05/soap-envelope"

/* Reads the envelope data[0..len) of SOAP version 1 (1.1) or 2 (1.2) into
 * arena a: *op is the Body element's local name, *payload its content (an
 * object; an empty element is an empty object). Returns 0, or -1 with a
 * message for a Client/Sender fault in err (not XML, DOCTYPE, another
 * namespace, no Body, not exactly one element in it). Thread-safe. */
int pt_soap_read(pt_arena_t *a, const char *data, size_t len, int version, const char **op,
                 pt_json_t **payload, char *err, size_t errlen);

#endif
