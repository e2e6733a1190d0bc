/*
 * admin.h - the admin API (docs/admin-api.md), served on the admin
 * listener only.
 */
#ifndef PT_CONTROL_ADMIN_H
#define PT_CONTROL_ADMIN_H

#include "http/http-t.h"

/* Answers a request of the admin listener. */
void pt_admin_handle(pt_req_t *req);

#endif
