/*
 * ops.h - the changes of the control plane (push, deploy, undeploy,
 * rollback, environments), shared by the admin API and the declarative
 * folder. Each runs in one store transaction; a change to the node's own
 * environment builds the new snapshot inside that transaction (so a
 * deployment that cannot be built is never committed as active) and is
 * published before the call returns. Call with the control lock held.
 */
#ifndef PT_CONTROL_OPS_H
#define PT_CONTROL_OPS_H

#include "control/control.h"
#include "core/arena.h"
#include "core/json.h"

typedef struct pt_op_result_s {
    int status;        /* HTTP status of the outcome */
    const char *type;  /* problem type (status >= 400) */
    char detail[512];  /* problem detail */
    pt_json_t *body;   /* the document of a success */
    pt_json_t *errors; /* invalid definition: ["file:line: key: message", ...] */
} pt_op_result_t;

void pt_op_push(pt_control_t *c, pt_arena_t *a, const char *text, size_t len, const char *label,
                const char *notes, const char *author, pt_op_result_t *r);

/* revision 0: the latest. */
void pt_op_deploy(pt_control_t *c, pt_arena_t *a, const char *api, int64_t revision,
                  const char *env, const char *notes, const char *author, pt_op_result_t *r);

/* Deploys revision to the node's environment unless it is the active one. */
void pt_op_deploy_if_needed(pt_control_t *c, pt_arena_t *a, const char *api, int64_t revision,
                            const char *author, const char *notes, pt_op_result_t *r);

void pt_op_undeploy(pt_control_t *c, pt_arena_t *a, const char *api, const char *env,
                    const char *author, pt_op_result_t *r);

/* to 0: the revision deployed before the active one. */
void pt_op_rollback(pt_control_t *c, pt_arena_t *a, const char *api, const char *env, int64_t to,
                    const char *notes, const char *author, pt_op_result_t *r);

void pt_op_env_create(pt_control_t *c, pt_arena_t *a, const char *name, const char *author,
                      pt_op_result_t *r);

/* Users (stored; merged with the node file's `users:` in every snapshot).
 * put: create (name from the document, 409 if it exists) or update (only
 * the members given; null clears); the password is hashed here (Argon2id).
 * A user the node cannot use (a bad address or certificate, a name the node
 * file defines too) is refused with 422. */
void pt_op_user_put(pt_control_t *c, pt_arena_t *a, const char *name, const char *text, size_t len,
                    int create, const char *author, pt_op_result_t *r);
void pt_op_user_delete(pt_control_t *c, pt_arena_t *a, const char *name, const char *author,
                       pt_op_result_t *r);
/* A new API key: its text is in the answer (r->body "key") and nowhere else. */
void pt_op_user_key_create(pt_control_t *c, pt_arena_t *a, const char *name, const char *label,
                           const char *author, pt_op_result_t *r);
void pt_op_user_key_revoke(pt_control_t *c, pt_arena_t *a, const char *name, const char *id,
                           const char *author, pt_op_result_t *r);

#endif
