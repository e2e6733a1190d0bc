/*
 * admin.h - the admin API (docs/admin-api.md), served on the admin
 * listener only.
 */
#ifndef PT_CONTROL_ADMIN_H
#define PT_CONTROL_ADMIN_H

#include "http/http-t.h"

typedef struct pt_procpool_s pt_procpool_t;

/* The pool admin requests run on (its threads only do control work);
 * NULL: the process pool. */
extern pt_procpool_t *pt_admin_pool;

/* Answers a request of the admin listener. */
void pt_admin_handle(pt_req_t *req);

#endif
