/*
 * webhook.h - webhook deliveries (issue 8): when an execution with webhooks
 * ends, its outcome is POSTed to each URL, signed, and retried with
 * exponential backoff and jitter on network errors, 5xx, 408 and 429 for
 * `retry_for`; any other 4xx stops it. Every attempt is written to the
 * execution's record.
 *
 * The body is JSON: {"execution": the record, "response": {"status",
 * "headers", "body"}}. The signature header is
 *   Portico-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 * so a receiver checks it and refuses old timestamps (replays).
 *
 * Deliveries run on two sender threads of their own (libcurl, blocking),
 * never on an I/O loop or the process pool.
 */
#ifndef PT_PROCESS_WEBHOOK_H
#define PT_PROCESS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "config/config-t.h"

/* Starts the sender threads (once). 0 or -1. */
int pt_webhook_start(void);

/* Stops them; deliveries still pending are dropped (logged). */
void pt_webhook_stop(void);

/* Queues the delivery of body (len bytes, copied) for execution exec_id to
 * url under the node's webhook settings w. Any thread; never blocks. */
void pt_webhook_enqueue(const pt_webhooks_config_t *w, const char *url, const char *exec_id,
                        const char *body, size_t len);

/* The signature header value for body at time t into out (at least 96
 * bytes): "t=<t>,v1=<hex>". */
void pt_webhook_sign(const char *secret, size_t secret_len, int64_t t, const char *body, size_t len,
                     char *out, size_t outlen);

/* Persistence (process/persist.c): called on a sender thread before the
 * first attempt and after each, with the delivery's id and state (pending,
 * delivered, failed, gave_up), attempts made and wall-clock times. */
extern void (*pt_webhook_persist)(const char *pid, const char *exec_id, const char *url,
                                  const char *body, size_t len, unsigned attempts,
                                  const char *state, int64_t due_wall_ms, int64_t give_up_wall_ms);

/* Queues again a delivery read back from the store (pid, attempts made,
 * wall-clock due and give-up times), under w's secret and timeouts. */
void pt_webhook_resume(const pt_webhooks_config_t *w, const char *pid, const char *url,
                       const char *exec_id, const char *body, size_t len, unsigned attempts,
                       int64_t due_wall_ms, int64_t give_up_wall_ms);

/* Pending deliveries (for tests and metrics). */
unsigned pt_webhook_pending(void);

#endif
