/*
 * main.c - the `portico` command: serve, validate, version.
 *
 * The main thread is the control thread: it loads the configuration, builds
 * snapshots, starts the I/O workers, and handles signals (SIGHUP reload,
 * SIGTERM/SIGINT graceful shutdown) on its own libuv loop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "config/config.h"
#include "control/admin.h"
#include "metrics/dashboard.h"
#include "metrics/metrics.h"
#include "control/cli.h"
#include "control/control.h"
#include "control/generate.h"
#include "core/log.h"
#include "event/worker.h"
#include "gateway/dispatch.h"
#include "gateway/snapshot.h"
#include "connector/http.h"
#include "core/xml.h"
#include "process/engine.h"
#include "policy/jwt.h"
#include "policy/stats.h"
#include "process/pool.h"
#include "process/persist.h"
#include "process/records.h"
#include "process/webhook.h"
#include "proxy/proxy.h"

typedef struct node_s {
    uv_loop_t loop;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_async_t worker_exit;
    uv_timer_t drain_timer;
    uv_timer_t sweep_timer; /* drops execution results past their retention */
    const char *config_path;
    pt_snapshot_t *snap; /* the published snapshot (main's reference) */
    pt_health_t *health; /* active health checks of snap's proxy targets */
    pt_procpool_t *procpool;
    pt_procpool_t *ctlpool;  /* admin requests: store calls and snapshot builds */
    pt_procpool_t *authpool; /* password verifications (Argon2id), off the I/O loops */
    pt_warm_t *warm;         /* threads opening pool.min database connections */
    uint64_t generation;
    pt_worker_t **workers;
    unsigned nworkers;
    _Atomic unsigned exited;
    int draining;
    pt_access_sink_t *access;
    char *access_path;
    pt_control_t *control; /* with a store: deployments come from it */
    uv_async_t publish;    /* the control plane has a snapshot to publish */
    uv_work_t reload_work; /* SIGHUP with a store: the reload runs off this loop */
    int reloading;
} node_t;

static void usage(FILE *f)
{
    fputs("Usage:\n"
          "  portico serve --config FILE      run a node (also: portico --config FILE)\n"
          "  portico validate FILE...         check node configurations and API definitions\n"
          "  portico generate --db URL ...    write a service API definition from a database\n"
          "  portico migrate -c FILE          apply the store's schema migrations\n"
          "  portico user key                 a new API key and the hash to configure\n"
          "  portico admin token create -c FILE --name NAME\n"
          "                                   create an admin API token\n"
          "  portico api push|list|revisions|diff, deploy, rollback, undeploy, env,\n"
          "          deployments              the admin API's client (docs/admin-api.md)\n"
          "  portico version                  print the version\n"
          "\n"
          "Signals: SIGHUP reloads the configuration and API definitions without dropping\n"
          "connections; SIGTERM/SIGINT stop accepting, finish in-flight requests (within\n"
          "limits.drain_timeout) and exit 0; a second SIGTERM/SIGINT stops at once.\n",
          f);
}

static void print_errors(pt_config_errors_t *errs, pt_log_level_t level)
{
    size_t i;
    for (i = 0; i < errs->count; i++)
        pt_log(level, "%s", errs->msgs[i]);
    if (errs->dropped)
        pt_log(level, "... and %zu more errors", errs->dropped);
}

static void apply_log_level(const pt_config_t *cfg)
{
    int lvl = cfg->log.level ? pt_log_level_parse(cfg->log.level) : PT_LOG_INFO;
    if (lvl >= 0)
        atomic_store(&pt_log_level, lvl);
}

static pt_snapshot_t *load_snapshot(node_t *n, pt_log_level_t level)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_load(n->config_path, &errs);
    pt_snapshot_t *s;
    char err[1024];

    if (cfg == NULL) {
        print_errors(&errs, level);
        pt_config_errors_free(&errs);
        return NULL;
    }
    pt_config_errors_free(&errs);
    s = pt_snapshot_build(cfg, n->generation + 1, err, sizeof(err));
    if (s == NULL) {
        pt_log(level, "%s", err);
        return NULL;
    }
    n->generation++;
    return s;
}

static int listeners_equal(const pt_config_t *a, const pt_config_t *b)
{
    size_t i;
    if (a->nlisteners != b->nlisteners)
        return 0;
    for (i = 0; i < a->nlisteners; i++) {
        const pt_listener_config_t *x = &a->listeners[i], *y = &b->listeners[i];
        if (strcmp(x->host, y->host) != 0 || (x->port != y->port && x->port != 0) ||
            (x->tls == NULL) != (y->tls == NULL))
            return 0;
    }
    return 1;
}

/* Publishes s (main's reference, taken) to every worker; in-flight
 * requests finish on the snapshot they started on. Returns 0, or -1 when
 * s needs a restart (listeners changed): then s is dropped. */
static int publish(node_t *n, pt_snapshot_t *s)
{
    unsigned i;
    const pt_config_t *old = n->snap->config;

    if (!listeners_equal(old, s->config)) {
        pt_log_error("reload refused: listeners changed (address, port or TLS on/off); restart "
                     "the node to apply; keeping generation %llu",
                     (unsigned long long)n->snap->generation);
        pt_snapshot_unref(s);
        return -1;
    }
    if ((s->config->workers != old->workers))
        pt_log_warn("workers changed to %u: applies at the next restart", s->config->workers);
    if (s->config->processes.max_running != old->processes.max_running ||
        s->config->processes.max_queued != old->processes.max_queued ||
        s->config->processes.queue_timeout_ms != old->processes.queue_timeout_ms)
        pt_log_warn("processes.max_running, max_queued or queue_timeout changed: applies at the "
                    "next restart (max_execution_time and timeout_status apply now)");
    if ((s->config->log.access_log == NULL) != (old->log.access_log == NULL) ||
        (s->config->log.access_log && strcmp(s->config->log.access_log, old->log.access_log)))
        pt_log_warn("log.access_log changed: applies at the next restart");
    apply_log_level(s->config);
    for (i = 0; i < n->nworkers; i++) {
        pt_snapshot_ref(s);
        pt_worker_send(n->workers[i], PT_MSG_SNAPSHOT, s);
    }
    pt_health_stop(n->health);
    n->health = pt_health_start(&n->loop, s);
    n->warm = pt_service_warm_start(s, n->warm);
    pt_snapshot_unref(n->snap);
    n->snap = s;
    pt_log_info("configuration generation %llu published (%zu APIs)",
                (unsigned long long)s->generation, s->config->napis);
    return 0;
}

/* The control plane built a snapshot (a deploy, a rollback, a reload). */
static void publish_cb(uv_async_t *a)
{
    node_t *n = a->data;
    pt_snapshot_t *s;
    while ((s = pt_control_take_pending(n->control)) != NULL) {
        uint64_t gen = s->generation;
        if (n->draining)
            pt_snapshot_unref(s);
        else
            publish(n, s);
        pt_control_published(n->control, gen);
    }
}

/* A pool thread ends: what it kept per thread (libcurl handle; OpenSSL's
 * error and random state, from snapshots it built for deploys). */
static void pool_thread_exit(void)
{
    pt_http_thread_cleanup();
    OPENSSL_thread_stop();
}

static void reload_work(uv_work_t *w)
{
    node_t *n = w->data;
    pt_control_reload(n->control);
    OPENSSL_thread_stop(); /* libuv's threads outlive the work, not the process */
}

static void reload_done(uv_work_t *w, int status)
{
    node_t *n = w->data;
    (void)status;
    n->reloading = 0;
}

static void reload(node_t *n)
{
    pt_snapshot_t *s;

    if (n->draining)
        return;
    pt_log_info("SIGHUP: reloading %s", n->config_path);
    pt_access_sink_reopen(n->access);
    if (n->control != NULL) {
        /* the store blocks: off this loop, which publishes the result */
        if (!n->reloading) {
            n->reloading = 1;
            n->reload_work.data = n;
            uv_queue_work(&n->loop, &n->reload_work, reload_work, reload_done);
        }
        return;
    }
    s = load_snapshot(n, PT_LOG_ERROR);
    if (s == NULL) {
        pt_log_error("reload refused: keeping configuration generation %llu",
                     (unsigned long long)n->snap->generation);
        return;
    }
    publish(n, s);
}

static void stop_now(node_t *n)
{
    unsigned i;
    for (i = 0; i < n->nworkers; i++)
        pt_worker_send(n->workers[i], PT_MSG_STOP, NULL);
}

static void sweep_timer_cb(uv_timer_t *t)
{
    (void)t;
    pt_exec_sweep();
}

static void drain_timer_cb(uv_timer_t *t)
{
    node_t *n = t->data;
    unsigned running = pt_exec_cancel_all();
    pt_log_warn("drain timeout: closing the remaining connections");
    if (running > 0)
        pt_log_warn("drain timeout: %u executions still queued or running are stopped (ABORTED)",
                    running);
    stop_now(n);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    node_t *n = h->data;
    unsigned i;
    if (signum == SIGHUP) {
        reload(n);
        return;
    }
    if (n->draining) {
        pt_log_warn("second signal: stopping now");
        stop_now(n);
        return;
    }
    n->draining = 1;
    uv_timer_stop(&n->sweep_timer);
    pt_log_info("%s: draining (up to %u ms)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
                n->snap->config->limits.drain_timeout_ms);
    for (i = 0; i < n->nworkers; i++)
        pt_worker_send(n->workers[i], PT_MSG_DRAIN, NULL);
    uv_timer_start(&n->drain_timer, drain_timer_cb, n->snap->config->limits.drain_timeout_ms, 0);
}

static void worker_exit_cb(uv_async_t *a)
{
    node_t *n = a->data;
    if (atomic_load(&n->exited) == n->nworkers)
        uv_stop(&n->loop);
}

static void on_worker_exit(pt_worker_t *w, void *arg)
{
    node_t *n = arg;
    (void)w;
    atomic_fetch_add(&n->exited, 1);
    uv_async_send(&n->worker_exit);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Every connection is a file descriptor: take the hard limit (as nginx's
 * worker_rlimit_nofile does) and say when it cannot hold max_connections. */
static void raise_fd_limit(const pt_config_t *cfg)
{
    struct rlimit rl;
    uint64_t want = (uint64_t)cfg->workers * cfg->limits.max_connections + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
        pt_log_warn("open files limit is %llu but %u workers x max_connections %u need about "
                    "%llu: connections beyond it will be refused (raise `ulimit -n`)",
                    (unsigned long long)rl.rlim_cur, cfg->workers, cfg->limits.max_connections,
                    (unsigned long long)want);
}

static int serve(const char *config_path)
{
    node_t n;
    int *fds = NULL;
    uint16_t *ports = NULL;
    char err[512];
    unsigned i;
    size_t l;
    pt_wmetrics_t **mblocks = NULL;
    int rc = 1;
    const pt_config_t *cfg;

    memset(&n, 0, sizeof(n));
    n.config_path = config_path;
    if (pt_http_client_init() != 0) { /* before the configuration: JWKS URLs are fetched */
        pt_log_error("cannot initialise libcurl");
        return 1;
    }
    n.snap = load_snapshot(&n, PT_LOG_ERROR);
    if (n.snap == NULL) {
        pt_log_error("invalid configuration: not starting");
        return 1;
    }
    if (n.snap->config->store != NULL) {
        /* a store: the node serves its environment's deployments */
        pt_snapshot_t *s;
        if ((n.control = pt_control_open(config_path, n.snap->config, err, sizeof(err))) == NULL) {
            pt_log_error("%s: not starting", err);
            pt_snapshot_unref(n.snap);
            return 1;
        }
        if ((s = pt_control_initial(n.control, err, sizeof(err))) == NULL) {
            pt_log_error("%s: not starting", err);
            pt_control_close(n.control);
            pt_snapshot_unref(n.snap);
            return 1;
        }
        pt_snapshot_unref(n.snap);
        n.snap = s;
    }
    cfg = n.snap->config;
    apply_log_level(cfg);
    raise_fd_limit(cfg);
    n.nworkers = cfg->workers;
    if (cfg->log.access_log != NULL && strcmp(cfg->log.access_log, "off") != 0) {
        n.access = pt_access_sink_open(cfg->log.access_log);
        if (n.access == NULL)
            goto out;
    }
    fds = malloc(sizeof(int) * cfg->nlisteners * n.nworkers);
    ports = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(uint16_t));
    n.workers = calloc(n.nworkers, sizeof(pt_worker_t *));
    if (fds == NULL || ports == NULL || n.workers == NULL)
        goto out;
    for (l = 0; l < cfg->nlisteners * n.nworkers; l++)
        fds[l] = -1;
    if (pt_listen_sockets(cfg, n.nworkers, fds, ports, err, sizeof(err)) != 0) {
        pt_log_error("%s", err);
        goto out;
    }
    pt_xml_init();
    pt_metrics_enabled = cfg->metrics.enabled;
    n.procpool = pt_procpool_start(cfg->processes.max_running, cfg->processes.max_queued,
                                   cfg->processes.queue_timeout_ms, pool_thread_exit);
    if (n.procpool == NULL) {
        pt_log_error("cannot start the process pool");
        goto out;
    }
    if (pt_webhook_start() != 0) {
        pt_log_error("cannot start the webhook senders");
        goto out;
    }
    /* with a store, executions and deliveries outlive the node */
    if (n.control != NULL)
        pt_persist_start(pt_control_store(n.control), pt_control_data_dir(n.control), n.snap);
    /* Argon2id takes tens of milliseconds and its memory: two at a time,
     * the rest wait (at most 5 s) */
    if ((n.authpool = pt_procpool_start(2, 1024, 5000, pool_thread_exit)) == NULL) {
        pt_log_error("cannot start the authentication pool");
        goto out;
    }
    if (n.control != NULL &&
        (pt_admin_pool = n.ctlpool = pt_procpool_start(2, 256, 60000, pool_thread_exit)) == NULL) {
        pt_log_error("cannot start the control pool");
        goto out;
    }
    uv_loop_init(&n.loop);
    uv_async_init(&n.loop, &n.worker_exit, worker_exit_cb);
    n.worker_exit.data = &n;
    if (n.control != NULL) {
        uv_async_init(&n.loop, &n.publish, publish_cb);
        n.publish.data = &n;
        pt_control_set_async(n.control, &n.publish);
    }
    uv_timer_init(&n.loop, &n.drain_timer);
    n.drain_timer.data = &n;
    uv_timer_init(&n.loop, &n.sweep_timer);
    uv_timer_start(&n.sweep_timer, sweep_timer_cb, 60000, 60000);
    for (i = 0; i < n.nworkers; i++) {
        n.workers[i] = calloc(1, sizeof(pt_worker_t));
        if (n.workers[i] == NULL ||
            pt_worker_init(n.workers[i], i, n.snap, pt_gateway_handle, n.access) != 0) {
            pt_log_error("cannot initialise worker %u", i);
            abort();
        }
        n.workers[i]->procpool = n.procpool;
        n.workers[i]->authpool = n.authpool;
        if (pt_worker_start(n.workers[i], fds + (size_t)i * cfg->nlisteners, cfg->nlisteners,
                            on_worker_exit, &n) != 0) {
            pt_log_error("cannot start worker %u", i);
            abort();
        }
    }
    mblocks = calloc(n.nworkers, sizeof(*mblocks));
    if (mblocks != NULL) {
        for (i = 0; i < n.nworkers; i++)
            mblocks[i] = n.workers[i]->metrics;
        pt_metrics_register(mblocks, n.nworkers);
    }
    if (n.control != NULL) {
        pt_mnode_t mn = {.node = pt_persist_node_id(),
                         .environment = pt_control_environment(n.control),
                         .pool = n.procpool,
                         .pool_threads = cfg->processes.max_running,
                         .pool_max_queued = cfg->processes.max_queued,
                         .workers = n.nworkers,
                         .top_consumers = cfg->metrics.top_consumers,
                         .history_ms = cfg->metrics.history_ms,
                         .store = pt_control_store(n.control)};
        if (pt_dash_start(&mn) != 0)
            pt_log_warn("metrics: the dashboard's sampler did not start");
    }
    uv_signal_init(&n.loop, &n.sig_term);
    uv_signal_init(&n.loop, &n.sig_int);
    uv_signal_init(&n.loop, &n.sig_hup);
    n.sig_term.data = n.sig_int.data = n.sig_hup.data = &n;
    uv_signal_start(&n.sig_term, signal_cb, SIGTERM);
    uv_signal_start(&n.sig_int, signal_cb, SIGINT);
    uv_signal_start(&n.sig_hup, signal_cb, SIGHUP);
    for (l = 0; l < cfg->nlisteners; l++) {
        const pt_listener_config_t *lc = &cfg->listeners[l];
        int v6 = strchr(lc->host, ':') != NULL;
        pt_log_info("listening on %s://%s%s%s:%u (listener \"%s\")", lc->tls ? "https" : "http",
                    v6 ? "[" : "", lc->host, v6 ? "]" : "", (unsigned)ports[l], lc->name);
    }
    pt_log_info("portico %s started: %u workers, %zu APIs, configuration generation %llu",
                PT_VERSION, n.nworkers, cfg->napis, (unsigned long long)n.snap->generation);
    n.health = pt_health_start(&n.loop, n.snap);
    n.warm = pt_service_warm_start(n.snap, n.warm);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    pt_health_stop(n.health);
    n.health = NULL;
    pt_dash_stop();
    pt_metrics_register(NULL, 0);
    free(mblocks);
    for (i = 0; i < n.nworkers; i++) {
        pt_worker_join(n.workers[i]);
        free(n.workers[i]);
    }
    pt_service_warm_join(n.warm);
    n.warm = NULL;
    if (n.control != NULL)
        pt_control_set_async(n.control, NULL); /* nobody publishes any more */
    pt_procpool_stop(n.procpool); /* every task completed: the workers waited for them */
    pt_webhook_stop();
    pt_persist_stop();
    n.procpool = NULL;
    pt_admin_pool = NULL;
    pt_procpool_stop(n.ctlpool);
    n.ctlpool = NULL;
    pt_procpool_stop(n.authpool);
    n.authpool = NULL;
    uv_walk(&n.loop, close_walk_cb, NULL);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    uv_loop_close(&n.loop);
    pt_log_info("stopped");
    rc = 0;
out:
    pt_procpool_stop(n.procpool);
    pt_webhook_stop();
    pt_persist_stop();
    pt_admin_pool = NULL;
    pt_procpool_stop(n.ctlpool);
    pt_procpool_stop(n.authpool);
    pt_control_close(n.control);
    pt_jwks_shutdown();
    pt_http_client_cleanup();
    pt_xml_cleanup();
    pt_access_sink_close(n.access);
    if (n.snap != NULL)
        pt_snapshot_unref(n.snap);
    free(n.workers);
    free(fds);
    free(ports);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int i;

    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "validate") == 0) {
        if (argc < 3) {
            fputs("portico validate: no file given\n", stderr);
            return 2;
        }
        return pt_config_validate_files(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "generate") == 0)
        return pt_generate_main(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "api") == 0 || strcmp(argv[1], "deploy") == 0 ||
                      strcmp(argv[1], "rollback") == 0 || strcmp(argv[1], "undeploy") == 0 ||
                      strcmp(argv[1], "env") == 0 || strcmp(argv[1], "deployments") == 0 ||
                      strcmp(argv[1], "executions") == 0))
        return pt_cli_main(argc - 1, argv + 1);
    if (sodium_init() < 0) {
        fputs("portico: libsodium cannot initialise\n", stderr);
        return 1;
    }
    if (argc >= 2 && strcmp(argv[1], "migrate") == 0)
        return pt_control_migrate_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "admin") == 0)
        return pt_control_admin_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "user") == 0 && argc <= 3 &&
        (argc == 2 || strcmp(argv[2], "key") == 0 || strcmp(argv[2], "password") == 0))
        return pt_user_main(argc - 1, argv + 1); /* local: a key or a hash for the node file */
    if (argc >= 2 && strcmp(argv[1], "user") == 0)
        return pt_cli_main(argc - 1, argv + 1); /* the store's users, through the admin API */
    if (argc >= 2 && (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("portico %s\n", PT_VERSION);
        return 0;
    }
    i = 1;
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        i = 2;
    for (; i < argc; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "portico: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (config == NULL) {
        usage(stderr);
        return 2;
    }
    return serve(config);
}
