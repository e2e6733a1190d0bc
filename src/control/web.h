/*
 * web.h - the console's files (web/), built into the binary
 * (cmake/embed.cmake): nothing is read from disk or from a CDN at run time.
 */
#ifndef PT_CONTROL_WEB_H
#define PT_CONTROL_WEB_H

#include <stddef.h>

typedef struct pt_web_asset_s {
    const char *path; /* "index.html", "app.js", ... */
    const char *ctype;
    const unsigned char *data;
    size_t len;
} pt_web_asset_t;

/* Ends with {NULL, ...}. */
extern const pt_web_asset_t pt_web_assets[];

#endif
