/*
 * Unit tests of src/config (config.c, api_def.c, yaml.c, schema.c).
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

/* ------------------------------------------------------------ helpers */

static char tmpdir[64];

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int make_tmpdir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/pt-config-test-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes content to tmpdir/name (creating tmpdir/sub directories as needed). */
static const char *write_file(const char *name, const char *content)
{
    static char path[512];
    char dir[512], *slash;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    snprintf(dir, sizeof(dir), "%s", path);
    /* mkdir -p of every directory below tmpdir. */
    for (slash = dir + strlen(tmpdir) + 1; (slash = strchr(slash, '/')) != NULL; slash++) {
        *slash = '\0';
        mkdir(dir, 0700);
        *slash = '/';
    }
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    return path;
}

static void dump(const pt_config_errors_t *errs)
{
    size_t i;
    for (i = 0; i < errs->count; i++)
        print_message("  %s\n", errs->msgs[i]);
}

static int has_error(const pt_config_errors_t *errs, const char *expected)
{
    size_t i;
    for (i = 0; i < errs->count; i++)
        if (strstr(errs->msgs[i], expected) != NULL)
            return 1;
    return 0;
}

/* Loads yaml as node configuration "t.yaml" and expects an error containing `expected`. */
static void expect_config_error(const char *yaml, const char *expected)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);

    if (cfg != NULL || !has_error(&errs, expected)) {
        print_message("config:\n%s\nexpected error: %s\ngot:\n", yaml, expected);
        dump(&errs);
        pt_config_free(cfg);
        pt_config_errors_free(&errs);
        fail();
    }
    pt_config_errors_free(&errs);
}

/* Same for an API definition "t.yaml". */
static void expect_api_error(const char *yaml, const char *expected)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_new(NULL);
    int rc;

    assert_non_null(cfg);
    rc = pt_api_def_load_buffer(cfg, "t.yaml", yaml, strlen(yaml), &errs);
    if (rc == 0)
        rc = pt_config_check_apis(cfg, &errs);
    if (rc == 0 || !has_error(&errs, expected)) {
        print_message("api:\n%s\nexpected error: %s\ngot:\n", yaml, expected);
        dump(&errs);
        pt_config_free(cfg);
        pt_config_errors_free(&errs);
        fail();
    }
    assert_int_equal(cfg->napis, 0);
    pt_config_free(cfg);
    pt_config_errors_free(&errs);
}

#define LISTEN "listen:\n  - address: 127.0.0.1:0\n"

/* ------------------------------------------------------------ node configuration */

static void test_defaults(void **state)
{
    pt_config_errors_t errs = {0};
    const char *yaml = LISTEN;
    pt_config_t *cfg;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    (void)state;
    cfg = pt_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);
    if (cfg == NULL)
        dump(&errs);
    assert_non_null(cfg);
    assert_int_equal(errs.count, 0);
    assert_int_equal(cfg->workers, cpus > 256 ? 256 : cpus < 1 ? 1 : cpus);
    assert_int_equal(cfg->nlisteners, 1);
    assert_string_equal(cfg->listeners[0].name, "listen[0]");
    assert_string_equal(cfg->listeners[0].host, "127.0.0.1");
    assert_int_equal(cfg->listeners[0].port, 0);
    assert_int_equal(cfg->listeners[0].line, 2);
    assert_null(cfg->listeners[0].tls);
    assert_int_equal(cfg->limits.max_header_size, 16384);
    assert_int_equal(cfg->limits.max_uri_length, 8192);
    assert_int_equal(cfg->limits.max_headers, 100);
    assert_int_equal(cfg->limits.max_body_size, 8u << 20);
    assert_int_equal(cfg->limits.header_timeout_ms, 10000);
    assert_int_equal(cfg->limits.body_timeout_ms, 30000);
    assert_int_equal(cfg->limits.keepalive_timeout_ms, 75000);
    assert_int_equal(cfg->limits.max_connections, 8192);
    assert_int_equal(cfg->limits.drain_timeout_ms, 10000);
    assert_int_equal(cfg->limits.max_pipelined, 64);
    assert_int_equal(cfg->limits.max_output_buffer, 1u << 20);
    assert_string_equal(cfg->log.level, "info");
    assert_string_equal(cfg->log.access_log, "-");
    assert_null(cfg->apis_dir);
    assert_int_equal(cfg->napis, 0);
    assert_null(cfg->trusted_proxies);
    assert_int_equal(cfg->ntrusted_proxies, 0);
    assert_string_equal(cfg->path, "t.yaml");
    pt_config_free(cfg);
}

static const char api_zeta[] = "name: zeta\n"
                               "base_path: /zeta\n"
                               "kind: service\n"
                               "title: Zeta\n"
                               "version: 2\n"
                               "routes:\n"
                               "  - method: GET\n"
                               "    path: /\n"
                               "    respond: {body: ok}\n";

static const char api_alpha[] = "name: alpha\n"
                                "base_path: /alpha/v1\n"
                                "kind: proxy\n"
                                "title: Alpha\n"
                                "version: \"1.0\"\n"
                                "upstream:\n"
                                "  targets: [{url: \"http://127.0.0.1:9/\"}]\n";

static void test_valid_config(void **state)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg;
    char key_abs[512], yaml[4096], expect[512], *real;
    const char *path;

    (void)state;
    write_file("cert.pem", "CERT\n");
    snprintf(key_abs, sizeof(key_abs), "%s", write_file("key.pem", "KEY\n"));
    write_file("ca.pem", "CA\n");
    write_file("apis/a.yaml", api_zeta);
    write_file("apis/b.yaml", api_alpha);
    write_file("apis/.hidden.yaml", "not: [valid");
    write_file("apis/notes.txt", "not: [valid");
    write_file("apis/other.yml", "not: [valid");
    snprintf(yaml, sizeof(yaml),
             "# comment\n"
             "workers: 3\n"
             "listen:\n"
             "  - address: 127.0.0.1:8080\n"
             "    name: public\n"
             "  - address: \"[::1]:0\"\n"
             "    tls:\n"
             "      cert: cert.pem\n"
             "      key: %s\n"
             "      client_ca: ca.pem\n"
             "      client_cert: required\n"
             "  - address: 0.0.0.0:8080\n"
             "    tls: {cert: cert.pem, key: key.pem, client_cert: none}\n"
             "limits:\n"
             "  max_header_size: 32KiB\n"
             "  max_uri_length: 4096\n"
             "  max_headers: 10000\n"
             "  max_body_size: 16M\n"
             "  header_timeout: 500ms\n"
             "  body_timeout: 2m\n"
             "  keepalive_timeout: 0\n"
             "  max_connections: 1000000\n"
             "  drain_timeout: 1h\n"
             "  max_pipelined: 1\n"
             "  max_output_buffer: 2MiB\n"
             "log:\n"
             "  level: debug\n"
             "  access_log: \"off\"\n"
             "apis: apis\n",
             key_abs);
    path = write_file("portico.yaml", yaml);
    cfg = pt_config_load(path, &errs);
    if (cfg == NULL)
        dump(&errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->workers, 3);
    assert_int_equal(cfg->nlisteners, 3);
    assert_string_equal(cfg->listeners[0].name, "public");
    assert_int_equal(cfg->listeners[0].port, 8080);
    assert_string_equal(cfg->listeners[1].name, "listen[1]");
    assert_string_equal(cfg->listeners[1].host, "::1");
    assert_int_equal(cfg->listeners[1].port, 0);
    assert_non_null(cfg->listeners[1].tls);
    snprintf(expect, sizeof(expect), "%s/cert.pem", tmpdir);
    assert_string_equal(cfg->listeners[1].tls->cert_file, expect);
    assert_string_equal(cfg->listeners[1].tls->key_file, key_abs);
    snprintf(expect, sizeof(expect), "%s/ca.pem", tmpdir);
    assert_string_equal(cfg->listeners[1].tls->client_ca_file, expect);
    assert_int_equal(cfg->listeners[1].tls->client_cert, PT_CLIENT_CERT_REQUIRED);
    assert_string_equal(cfg->listeners[2].host, "0.0.0.0");
    assert_int_equal(cfg->listeners[2].tls->client_cert, PT_CLIENT_CERT_NONE);
    assert_null(cfg->listeners[2].tls->client_ca_file);
    assert_int_equal(cfg->limits.max_header_size, 32768);
    assert_int_equal(cfg->limits.max_uri_length, 4096);
    assert_int_equal(cfg->limits.max_headers, 10000);
    assert_int_equal(cfg->limits.max_body_size, 16000000);
    assert_int_equal(cfg->limits.header_timeout_ms, 500);
    assert_int_equal(cfg->limits.body_timeout_ms, 120000);
    assert_int_equal(cfg->limits.keepalive_timeout_ms, 0);
    assert_int_equal(cfg->limits.max_connections, 1000000);
    assert_int_equal(cfg->limits.drain_timeout_ms, 3600000);
    assert_int_equal(cfg->limits.max_pipelined, 1);
    assert_int_equal(cfg->limits.max_output_buffer, 2u << 20);
    assert_string_equal(cfg->log.level, "debug");
    assert_string_equal(cfg->log.access_log, "off");
    snprintf(expect, sizeof(expect), "%s/apis", tmpdir);
    real = realpath(expect, NULL);
    assert_non_null(real);
    assert_string_equal(cfg->apis_dir, real);
    free(real);
    /* Hidden and non-.yaml files are ignored; APIs are sorted by name. */
    assert_int_equal(cfg->napis, 2);
    assert_string_equal(cfg->apis[0].name, "alpha");
    assert_string_equal(cfg->apis[0].kind, "proxy");
    assert_string_equal(cfg->apis[0].version, "1.0");
    assert_int_equal(cfg->apis[0].nroutes, 0);
    assert_non_null(cfg->apis[0].upstream);
    assert_int_equal(cfg->apis[0].upstream->ntargets, 1);
    assert_int_equal(cfg->apis[0].upstream->targets[0].port, 9);
    assert_non_null(strstr(cfg->apis[0].file, "/apis/b.yaml"));
    assert_null(cfg->apis[1].upstream);
    assert_string_equal(cfg->apis[1].name, "zeta");
    assert_string_equal(cfg->apis[1].version, "2");
    assert_int_equal(cfg->apis[1].nroutes, 1);
    assert_string_equal(cfg->apis[1].routes[0].respond.body, "ok");
    pt_config_free(cfg);
    pt_config_errors_free(&errs);
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_config_error(LISTEN "limits:\n  max_bodysize: 1\n",
                        "t.yaml:4: limits.max_bodysize: unknown key (expected one of: "
                        "max_header_size,");
    expect_config_error(LISTEN "listener: 1\n", "t.yaml:3: listener: unknown key");
    expect_config_error("listen:\n  - address: 127.0.0.1:1\n    tls:\n      cert: /etc/hostname\n"
                        "      key: /etc/hostname\n      crt: x\n",
                        "t.yaml:6: listen[0].tls.crt: unknown key");
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_config_error("workers: many\n" LISTEN,
                        "t.yaml:1: workers: expected an integer, got \"many\"");
    expect_config_error("workers: \"2\"\n" LISTEN,
                        "t.yaml:1: workers: expected an integer, got the string \"2\"");
    expect_config_error("workers: [1]\n" LISTEN,
                        "t.yaml:1: workers: expected an integer, got a list");
    expect_config_error("workers: 1.5\n" LISTEN, "t.yaml:1: workers: expected an integer");
    expect_config_error("workers: 300\n" LISTEN,
                        "t.yaml:1: workers: must be between 0 and 256, got 300");
    expect_config_error("workers: -1\n" LISTEN,
                        "t.yaml:1: workers: must be between 0 and 256, got -1");
    expect_config_error(
        "listen: {address: 127.0.0.1:1}\n",
        "t.yaml:1: listen: expected a list of at least one listener, got a mapping");
    expect_config_error(
        "listen: []\n",
        "t.yaml:1: listen: expected a list of at least one listener, got an empty list");
    expect_config_error("listen:\n  - 127.0.0.1:80\n", "t.yaml:2: listen[0]: expected a mapping");
    expect_config_error(LISTEN "limits: 5\n", "t.yaml:3: limits: expected a mapping, got \"5\"");
    expect_config_error(
        LISTEN "log:\n  level: verbose\n",
        "t.yaml:4: log.level: expected debug, info, warn or error, got \"verbose\"");
    expect_config_error("- a\n", "t.yaml:1: expected a mapping, got a list");
    expect_config_error("listen:\n  - address: \"127.0.0.1:1\\0\"\n",
                        "t.yaml:2: listen[0].address: must not contain NUL characters");
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_config_error("workers: 1\n", "t.yaml:1: listen: required key is missing");
    expect_config_error("listen:\n  - name: a\n",
                        "t.yaml:2: listen[0].address: required key is missing");
    expect_config_error("listen:\n  - address: ~\n",
                        "t.yaml:2: listen[0].address: required key is missing");
}

static void test_sizes_and_durations(void **state)
{
    (void)state;
    expect_config_error(LISTEN "limits:\n  max_body_size: 8MB\n",
                        "t.yaml:4: limits.max_body_size: expected a size like 8MiB (units B, KiB, "
                        "MiB, GiB, k, M, G), got \"8MB\"");
    expect_config_error(LISTEN "limits:\n  max_body_size: 8 MiB\n",
                        "limits.max_body_size: expected a size");
    expect_config_error(LISTEN "limits:\n  max_body_size: -1\n",
                        "limits.max_body_size: expected a size");
    expect_config_error(LISTEN "limits:\n  max_body_size: 99999999999999999999999\n",
                        "t.yaml:4: limits.max_body_size: must be between 0 and 1024GiB");
    expect_config_error(LISTEN "limits:\n  max_body_size: 20000000GiB\n",
                        "limits.max_body_size: must be between 0 and 1024GiB, got 20000000GiB");
    expect_config_error(
        LISTEN "limits:\n  max_header_size: 2MiB\n",
        "t.yaml:4: limits.max_header_size: must be between 1KiB and 1MiB, got 2MiB");
    expect_config_error(LISTEN "limits:\n  max_header_size: 1k\n",
                        "limits.max_header_size: must be between 1KiB and 1MiB, got 1000");
    expect_config_error(LISTEN "limits:\n  header_timeout: 10sec\n",
                        "t.yaml:4: limits.header_timeout: expected a duration like 10s");
    expect_config_error(LISTEN "limits:\n  header_timeout: 1.5s\n",
                        "limits.header_timeout: expected a duration");
    expect_config_error(LISTEN "limits:\n  header_timeout: 50\n",
                        "t.yaml:4: limits.header_timeout: must be between 100ms and 1h, got 50ms");
    expect_config_error(LISTEN "limits:\n  keepalive_timeout: 2h\n",
                        "limits.keepalive_timeout: must be between 0ms and 1h, got 2h");
    expect_config_error(LISTEN "limits:\n  max_output_buffer: 1KiB\n",
                        "limits.max_output_buffer: must be between 16KiB and 1GiB, got 1KiB");
    expect_config_error(LISTEN "limits:\n  max_pipelined: 0\n",
                        "limits.max_pipelined: must be between 1 and 1024, got 0");
    expect_config_error(
        LISTEN "limits:\n  max_header_size: 4KiB\n  max_uri_length: 8KiB\n",
        "t.yaml:5: limits.max_uri_length: must not exceed max_header_size (4KiB), got 8KiB");
    /* Without max_uri_length the default (8KiB) still has to fit. */
    expect_config_error(LISTEN "limits:\n  max_header_size: 4KiB\n",
                        "t.yaml:4: limits.max_uri_length: must not exceed max_header_size");
}

static void test_sizes_accepted(void **state)
{
    static const struct {
        const char *text;
        uint64_t value;
    } cases[] = {
        {"0", 0},        {"1024", 1024},     {"\"2048\"", 2048},        {"10B", 10},
        {"3KiB", 3072},  {"5MiB", 5u << 20}, {"2GiB", 2ull << 30},      {"16k", 16000},
        {"7M", 7000000}, {"1G", 1000000000}, {"'1024GiB'", 1ull << 40},
    };
    char yaml[256];
    size_t i;

    (void)state;
    for (i = 0; i < PT_ARRAY_SIZE(cases); i++) {
        pt_config_errors_t errs = {0};
        pt_config_t *cfg;
        snprintf(yaml, sizeof(yaml), LISTEN "limits:\n  max_body_size: %s\n", cases[i].text);
        cfg = pt_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);
        if (cfg == NULL) {
            dump(&errs);
            fail_msg("%s rejected", cases[i].text);
        }
        assert_int_equal(cfg->limits.max_body_size, cases[i].value);
        pt_config_free(cfg);
    }
}

static void test_listeners(void **state)
{
    (void)state;
    expect_config_error("listen:\n  - address: 127.0.0.1:8080\n  - address: 127.0.0.1:8080\n",
                        "t.yaml:3: listen[1]: address 127.0.0.1:8080 is already used by listen[0] "
                        "(line 2)");
    expect_config_error("listen:\n  - address: '[::1]:80'\n  - address: '[0::1]:80'\n",
                        "listen[1]: address [0::1]:80 is already used by listen[0]");
    expect_config_error(
        "listen:\n  - {address: 127.0.0.1:1, name: a}\n  - {address: 127.0.0.1:2, name: a}\n",
        "t.yaml:3: listen[1]: name \"a\" is already used by listen[0]");
    expect_config_error("listen:\n  - address: localhost:80\n",
                        "t.yaml:2: listen[0].address: host must be a numeric IP address");
    expect_config_error("listen:\n  - address: ::1:80\n",
                        "listen[0].address: an IPv6 address must be in brackets");
    expect_config_error("listen:\n  - address: 127.0.0.1:65536\n",
                        "listen[0].address: port must be an integer between 0 and 65535");
    expect_config_error("listen:\n  - address: '127.0.0.1:'\n", "listen[0].address: port must be");
    expect_config_error("listen:\n  - address: 127.0.0.1\n",
                        "listen[0].address: expected \"host:port\"");
    expect_config_error("listen:\n  - address: :80\n", "listen[0].address: missing host");
    expect_config_error("listen:\n  - address: '[::1]8080'\n",
                        "listen[0].address: expected \"[IPv6]:port\"");
    expect_config_error("listen:\n  - address: '[nope]:1'\n",
                        "listen[0].address: \"nope\" is not a numeric IPv6");
    expect_config_error("listen:\n  - address: 127.0.0.1:1\n    name: 'a b'\n",
                        "t.yaml:3: listen[0].name: expected 1 to 64 printable characters");
}

static void test_tls(void **state)
{
    (void)state;
    expect_config_error("listen:\n  - address: 127.0.0.1:1\n    tls:\n      key: /etc/hostname\n",
                        "t.yaml:4: listen[0].tls.cert: required key is missing");
    expect_config_error(
        "listen:\n  - address: 127.0.0.1:1\n    tls:\n      cert: /etc/hostname\n"
        "      key: /etc/hostname\n      client_cert: required\n",
        "t.yaml:4: listen[0].tls.client_ca: required when client_cert is optional or "
        "required");
    expect_config_error("listen:\n  - address: 127.0.0.1:1\n    tls:\n      cert: /etc/hostname\n"
                        "      key: /etc/hostname\n      client_cert: maybe\n",
                        "t.yaml:6: listen[0].tls.client_cert: expected none, optional or required, "
                        "got \"maybe\"");
    expect_config_error(
        "listen:\n  - address: 127.0.0.1:1\n    tls:\n      cert: /nonexistent/c.pem\n"
        "      key: /etc/hostname\n",
        "t.yaml:4: listen[0].tls.cert: cannot read \"/nonexistent/c.pem\": No such "
        "file or directory");
    expect_config_error("listen:\n  - address: 127.0.0.1:1\n    tls:\n      cert: /etc\n"
                        "      key: /etc/hostname\n",
                        "t.yaml:4: listen[0].tls.cert: \"/etc\" is not a regular file");
    expect_config_error("listen:\n  - address: 127.0.0.1:1\n    tls: yes\n",
                        "t.yaml:3: listen[0].tls: expected a mapping, got \"yes\"");
}

static void test_yaml_restrictions(void **state)
{
    char *big;
    size_t i, n;

    (void)state;
    expect_config_error("workers: &w 1\n" LISTEN, "t.yaml:1: aliases and anchors are not allowed");
    expect_config_error("listen: &l\n  - address: 127.0.0.1:1\nx: *l\n",
                        "t.yaml:1: aliases and anchors are not allowed");
    expect_config_error("listen: *l\n", "t.yaml:1: aliases and anchors are not allowed");
    expect_config_error(LISTEN "listen: []\n", "t.yaml:3: duplicate key \"listen\"");
    expect_config_error(LISTEN "log: {level: info, level: debug}\n",
                        "t.yaml:3: duplicate key \"level\"");
    expect_config_error(LISTEN "---\n" LISTEN, "t.yaml:3: multiple documents are not allowed");
    expect_config_error(
        "workers: !!int 3\n" LISTEN,
        "t.yaml:1: tag \"tag:yaml.org,2002:int\" is not supported (only !!str, !!map "
        "and !!seq)");
    expect_config_error("workers: !custom 3\n" LISTEN,
                        "t.yaml:1: tag \"!custom\" is not supported");
    /* !!str makes a string, which an integer key refuses. */
    expect_config_error("workers: !!str 3\n" LISTEN,
                        "t.yaml:1: workers: expected an integer, got the string \"3\"");
    expect_config_error("", "t.yaml:1: empty document");
    expect_config_error("# only a comment\n", "t.yaml:1: empty document");
    expect_config_error("? [a, b]\n: 1\n", "t.yaml:1: mapping keys must be strings, not a list");
    expect_config_error("{a: 1}: 2\n", "mapping keys must be strings, not a mapping");
    expect_config_error("listen: [\n", "t.yaml:2: invalid YAML:");
    expect_config_error("a: \xff\n", "t.yaml:1: invalid YAML:");

    /* Depth bomb. */
    big = malloc(1 << 20);
    assert_non_null(big);
    for (i = 0; i < 100000; i++)
        big[i] = '[';
    big[i] = '\0';
    expect_config_error(big, "t.yaml:1: nesting deeper than 64 levels");
    /* 64 levels are fine for the parser (the schema then rejects the key). */
    n = 0;
    for (i = 0; i < 63; i++)
        n += (size_t)sprintf(big + n, "%s", "{a: ");
    n += (size_t)sprintf(big + n, "1");
    for (i = 0; i < 63; i++)
        big[n++] = '}';
    big[n] = '\0';
    expect_config_error(big, "t.yaml:1: a: unknown key");
    /* Node bomb. */
    n = (size_t)sprintf(big, "x: [");
    for (i = 0; i < 100001; i++)
        n += (size_t)sprintf(big + n, "0,");
    sprintf(big + n, "0]\n");
    expect_config_error(big, "t.yaml:1: too many YAML nodes (more than 100000)");
    free(big);
    /* Size limit. */
    n = (4u << 20) + 1;
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, '#', n);
    big[n] = '\0';
    expect_config_error(big, "t.yaml: file is larger than 4 MiB");
    free(big);
}

static void test_apis_dir(void **state)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg;
    const char *path;

    (void)state;
    expect_config_error(LISTEN "apis: /nonexistent-dir\n",
                        "t.yaml:3: apis: directory \"/nonexistent-dir\" does not exist");
    expect_config_error(LISTEN "apis: /etc/hostname\n",
                        "t.yaml:3: apis: \"/etc/hostname\" is not a directory");

    /* Relative to the configuration file's directory, not to the working directory. */
    write_file("d1/apis/one.yaml", api_alpha);
    write_file("d1/apis/two.yaml",
               "name: alpha2\nbase_path: /alpha/v1\nkind: service\ntitle: A\nversion: x\n");
    path = write_file("d1/node.yaml", LISTEN "apis: apis\n");
    cfg = pt_config_load(path, &errs);
    assert_null(cfg);
    /* The second file is the one in error, and the message names the first. */
    assert_true(has_error(&errs,
                          "/apis/two.yaml:2: base_path: base path /alpha/v1 is already used by "
                          "API \"alpha\" ("));
    assert_true(has_error(&errs, "/apis/one.yaml:2)"));
    pt_config_errors_free(&errs);

    /* Errors inside an API file carry that file's name. */
    write_file("d2/apis/bad.yaml",
               "name: bad\nbase_path: /bad\nkind: service\ntitle: B\nversion: 1\nextra: 1\n");
    path = write_file("d2/node.yaml", LISTEN "apis: apis\n");
    cfg = pt_config_load(path, &errs);
    assert_null(cfg);
    assert_true(has_error(&errs, "/apis/bad.yaml:6: extra: unknown key"));
    pt_config_errors_free(&errs);
}

static void test_errors_collected_and_capped(void **state)
{
    pt_config_errors_t errs = {0};
    char yaml[8192];
    size_t i, n;

    (void)state;
    /* Several errors of one file are all reported. */
    n = (size_t)snprintf(yaml, sizeof(yaml),
                         "workers: x\nlisten: 1\nlimits: {max_headers: 0}\nlog: {level: no}\n");
    assert_null(pt_config_load_buffer("t.yaml", yaml, n, &errs));
    assert_int_equal(errs.count, 4);
    assert_true(has_error(&errs, "t.yaml:1: workers:"));
    assert_true(has_error(&errs, "t.yaml:2: listen:"));
    assert_true(has_error(&errs, "t.yaml:3: limits.max_headers:"));
    assert_true(has_error(&errs, "t.yaml:4: log.level:"));
    pt_config_errors_free(&errs);
    assert_int_equal(errs.count, 0);

    /* Beyond the cap, errors are counted. */
    n = (size_t)snprintf(yaml, sizeof(yaml), LISTEN);
    for (i = 0; i < 100; i++)
        n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "k%zu: 1\n", i);
    assert_null(pt_config_load_buffer("t.yaml", yaml, n, &errs));
    assert_int_equal(errs.count, PT_CONFIG_MAX_ERRORS);
    assert_int_equal(errs.dropped, 100 - PT_CONFIG_MAX_ERRORS);
    pt_config_errors_free(&errs);

    /* A NULL error list is allowed. */
    assert_null(pt_config_load_buffer("t.yaml", "x", 1, NULL));
    /* Errors from callers use the same format. */
    pt_config_error(&errs, "f.yaml", 3, "a.b", "bad %s", "thing");
    pt_config_error(&errs, "f.yaml", 0, NULL, "no line");
    assert_string_equal(errs.msgs[0], "f.yaml:3: a.b: bad thing");
    assert_string_equal(errs.msgs[1], "f.yaml: no line");
    pt_config_errors_free(&errs);
}

static void test_load_missing_file(void **state)
{
    pt_config_errors_t errs = {0};

    (void)state;
    assert_null(pt_config_load("/nonexistent/portico.yaml", &errs));
    assert_true(has_error(&errs, "/nonexistent/portico.yaml: cannot open: No such file"));
    pt_config_errors_free(&errs);
    assert_null(pt_config_load("/etc", &errs));
    assert_true(has_error(&errs, "/etc: not a regular file"));
    pt_config_errors_free(&errs);
}

/* ------------------------------------------------------------ API definitions */

static const char api_full[] =
    "name: hello\n"                   /* 1 */
    "base_path: /hello/v1\n"          /* 2 */
    "kind: service\n"                 /* 3 */
    "title: Hello API\n"              /* 4 */
    "version: 1.0\n"                  /* 5 */
    "description: |\n  Says hello.\n" /* 6-7 */
    "routes:\n"                       /* 8 */
    "  - method: get\n"               /* 9 */
    "    path: /greetings/{name}\n"   /* 10 */
    "    respond:\n"                  /* 11 */
    "      status: 201\n"             /* 12 */
    "      headers:\n"                /* 13 */
    "        content-type: application/problem+json\n"
    "        Cache-Control: max-age=60\n"
    "        X-Count: 3\n"
    "      body: '{\"hello\":\"world\"}'\n"
    "  - method: \"*\"\n" /* 18 */
    "    path: /\n"
    "    name: root\n"
    "    respond: {}\n"
    "  - method: POST\n" /* 22 */
    "    path: /json\n"
    "    respond:\n"
    "      body:\n"
    "        a: 1\n"
    "        b: [true, False, null, ~, 1.5e3, -0.25, +3, 007, .5, 5., \"7\", 0x1f, .inf, yes, '']\n"
    "        c: {d: {}, e: []}\n"
    "        \"q\\\"k\": \"line\\nbreak\\u0001\"\n"
    "  - method: PATCH\n" /* 30 */
    "    path: /nul\n"
    "    respond:\n"
    "      body: \"a\\0b\"\n";

static void test_api_valid(void **state)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_new(NULL);
    const pt_api_def_t *api;
    const pt_route_def_t *r;

    (void)state;
    assert_non_null(cfg);
    if (pt_api_def_load_buffer(cfg, "hello.yaml", api_full, strlen(api_full), &errs) != 0) {
        dump(&errs);
        fail();
    }
    assert_int_equal(pt_config_check_apis(cfg, &errs), 0);
    assert_int_equal(cfg->napis, 1);
    api = &cfg->apis[0];
    assert_string_equal(api->file, "hello.yaml");
    assert_string_equal(api->name, "hello");
    assert_int_equal(api->name_line, 1);
    assert_string_equal(api->base_path, "/hello/v1");
    assert_int_equal(api->base_path_line, 2);
    assert_string_equal(api->kind, "service");
    assert_string_equal(api->title, "Hello API");
    assert_string_equal(api->version, "1.0");
    assert_string_equal(api->description, "Says hello.\n");
    assert_int_equal(api->nroutes, 4);

    r = &api->routes[0];
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/greetings/{name}");
    assert_string_equal(r->name, "GET /greetings/{name}");
    assert_int_equal(r->line, 9);
    assert_int_equal(r->kind, PT_DISPATCH_RESPOND);
    assert_int_equal(r->respond.status, 201);
    /* Content-Type becomes content_type and is not repeated in headers. */
    assert_string_equal(r->respond.content_type, "application/problem+json");
    assert_int_equal(r->respond.nheaders, 2);
    assert_string_equal(r->respond.headers[0].name, "Cache-Control");
    assert_string_equal(r->respond.headers[0].value, "max-age=60");
    assert_string_equal(r->respond.headers[1].name, "X-Count");
    assert_string_equal(r->respond.headers[1].value, "3");
    assert_int_equal(r->respond.body_len, 17);
    assert_string_equal(r->respond.body, "{\"hello\":\"world\"}");

    r = &api->routes[1];
    assert_string_equal(r->method, "*");
    assert_string_equal(r->name, "root");
    assert_int_equal(r->respond.status, 200);
    assert_null(r->respond.body);
    assert_int_equal(r->respond.body_len, 0);
    assert_string_equal(r->respond.content_type, "text/plain; charset=utf-8");

    r = &api->routes[2];
    assert_string_equal(r->respond.content_type, "application/json");
    assert_string_equal(r->respond.body,
                        "{\"a\":1,\"b\":[true,false,null,null,1.5e3,-0.25,3,7,0.5,5,\"7\",\"0x1f\","
                        "\".inf\",\"yes\",\"\"],\"c\":{\"d\":{},\"e\":[]},"
                        "\"q\\\"k\":\"line\\nbreak\\u0001\"}");
    assert_int_equal(r->respond.body_len, strlen(r->respond.body));

    r = &api->routes[3];
    assert_int_equal(r->respond.body_len, 3);
    assert_memory_equal(r->respond.body, "a\0b", 3);
    pt_config_free(cfg);
}

#define API_HEAD "name: t\nbase_path: /t\nkind: service\ntitle: T\nversion: \"1\"\n"

static void test_api_required_and_types(void **state)
{
    (void)state;
    expect_api_error("name: t\n", "t.yaml:1: base_path: required key is missing");
    expect_api_error("name: t\nbase_path: /t\nkind: service\ntitle: T\n",
                     "t.yaml:1: version: required key is missing");
    expect_api_error(API_HEAD "routes: {}\n",
                     "t.yaml:6: routes: expected a list of routes, got a mapping");
    expect_api_error(API_HEAD "port: 1\n", "t.yaml:6: port: unknown key");
    expect_api_error(API_HEAD "routes:\n  - path: /x\n    respond: {}\n",
                     "t.yaml:7: routes[0].method: required key is missing");
    expect_api_error(API_HEAD "routes:\n  - method: GET\n    respond: {}\n",
                     "t.yaml:7: routes[0].path: required key is missing");
    expect_api_error(API_HEAD "routes:\n  - method: GET\n    path: /x\n",
                     "t.yaml:7: routes[0].respond: required key is missing");
    expect_api_error(API_HEAD "routes:\n  - method: GET\n    path: /x\n    respond: {proxy: x}\n",
                     "t.yaml:9: routes[0].respond.proxy: unknown key");
    expect_api_error("name: Bad_Name\nbase_path: /t\nkind: service\ntitle: T\nversion: 1\n",
                     "t.yaml:1: name: invalid API name \"Bad_Name\"");
    expect_api_error("name: -x\nbase_path: /t\nkind: service\ntitle: T\nversion: 1\n",
                     "name: invalid API name");
    expect_api_error("name: t\nbase_path: /t\nkind: gateway\ntitle: T\nversion: 1\n",
                     "t.yaml:3: kind: expected \"service\" or \"proxy\", got \"gateway\"");
    expect_api_error("name: t\nbase_path: /t\nkind: service\ntitle: {a: 1}\nversion: 1\n",
                     "t.yaml:4: title: expected a string, got a mapping");
    expect_api_error(API_HEAD "routes:\n  - method: GE T\n    path: /x\n    respond: {}\n",
                     "t.yaml:7: routes[0].method: expected an HTTP method");
    expect_api_error(API_HEAD "routes:\n  - method: GET\n    path: /x/\n    respond: {}\n",
                     "t.yaml:8: routes[0].path: invalid route template: must not end with '/'");
    expect_api_error(API_HEAD "routes:\n  - method: GET\n    path: x\n    respond: {}\n",
                     "routes[0].path: invalid route template: must start with '/'");
}

static void test_api_base_paths(void **state)
{
    static const char *const bad[] = {
        "//",     "x",      "/a/",   "/a//b", "/a/./b", "/a/../b", "/..",
        "/a/{x}", "'/a b'", "/a%zz", "/a%2",  "/a?b",   "'/a#b'",  "/caf\xc3\xa9",
    };
    char yaml[1024], big[300];
    size_t i;

    (void)state;
    for (i = 0; i < PT_ARRAY_SIZE(bad); i++) {
        snprintf(yaml, sizeof(yaml),
                 "name: t\nbase_path: %s\nkind: service\ntitle: T\nversion: 1\n", bad[i]);
        expect_api_error(yaml, "t.yaml:2: base_path: invalid base path");
    }
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    snprintf(yaml, sizeof(yaml), "name: t\nbase_path: %s\nkind: service\ntitle: T\nversion: 1\n",
             big);
    expect_api_error(yaml, "must not be longer than 256 characters");
    expect_api_error("name: t\nbase_path: /a/{x}\nkind: service\ntitle: T\nversion: 1\n",
                     "must not contain '{' or '}' (a base path has no parameters)");
}

static void test_api_headers(void **state)
{
    (void)state;
#define ROUTE API_HEAD "routes:\n  - method: GET\n    path: /x\n    respond:\n      headers:\n"
    expect_api_error(ROUTE "        X Bad: 1\n",
                     "t.yaml:11: routes[0].respond.headers.X\\x20Bad: invalid header name");
    expect_api_error(ROUTE "        \"\": 1\n",
                     "t.yaml:11: routes[0].respond.headers.\"\": invalid header name");
    expect_api_error(ROUTE "        \"X(\": 1\n", "invalid header name");
    expect_api_error(
        ROUTE "        Content-Length: 5\n",
        "t.yaml:11: routes[0].respond.headers.Content-Length: this header is set by the "
        "server and cannot be configured");
    expect_api_error(ROUTE "        date: x\n", "headers.date: this header is set by the server");
    expect_api_error(ROUTE "        Transfer-Encoding: chunked\n",
                     "this header is set by the server");
    expect_api_error(ROUTE "        CONNECTION: close\n", "this header is set by the server");
    expect_api_error(
        ROUTE "        X-A: \"a\\r\\nX-Injected: 1\"\n",
        "t.yaml:11: routes[0].respond.headers.X-A: invalid header value: must not contain "
        "control characters");
    expect_api_error(ROUTE "        X-A: \"a\\x01\"\n",
                     "invalid header value: must not contain control");
    expect_api_error(ROUTE "        X-A: \"a\\x7f\"\n",
                     "invalid header value: must not contain control");
    expect_api_error(ROUTE "        X-A: \"a\\0\"\n", "headers.X-A: must not contain NUL");
    expect_api_error(ROUTE "        X-A: \" a\"\n",
                     "invalid header value: must not start or end with whitespace");
    expect_api_error(ROUTE "        X-A: [1]\n", "headers.X-A: expected a string, got a list");
    expect_api_error(ROUTE "        X-A: 1\n        x-a: 2\n",
                     "t.yaml:12: routes[0].respond.headers.x-a: duplicate header (names are "
                     "case-insensitive; line 11)");
    expect_api_error(ROUTE "        Content-Type: ''\n", "Content-Type must not be empty");
    expect_api_error(API_HEAD
                     "routes:\n  - method: GET\n    path: /x\n    respond:\n      headers: [a]\n",
                     "t.yaml:10: routes[0].respond.headers: expected a mapping of header names");
#undef ROUTE
}

static void test_api_status_and_body(void **state)
{
    char *yaml;
    size_t n, i;

    (void)state;
#define RESPOND API_HEAD "routes:\n  - method: GET\n    path: /x\n    respond:\n"
    expect_api_error(RESPOND "      status: 101\n",
                     "t.yaml:10: routes[0].respond.status: must be between 200 and 599, got 101");
    expect_api_error(RESPOND "      status: 600\n", "respond.status: must be between 200 and 599");
    expect_api_error(RESPOND "      status: \"200\"\n", "respond.status: expected an integer");
    expect_api_error(RESPOND "      status: 204\n      body: x\n",
                     "t.yaml:11: routes[0].respond.body: a 204 response cannot have a body");
    expect_api_error(RESPOND "      status: 304\n      body: {a: 1}\n",
                     "a 304 response cannot have a body");

    /* Bodies are capped at 1 MiB, as text and as generated JSON. */
    yaml = malloc(3u << 20);
    assert_non_null(yaml);
    n = (size_t)sprintf(yaml, RESPOND "      body: \"");
    memset(yaml + n, 'x', (1u << 20) + 1);
    n += (1u << 20) + 1;
    strcpy(yaml + n, "\"\n");
    expect_api_error(yaml, "t.yaml:10: routes[0].respond.body: body is larger than 1 MiB");
    n = (size_t)sprintf(yaml, RESPOND "      body:\n");
    for (i = 0; i < 60000; i++)
        n += (size_t)sprintf(yaml + n, "        - abcdefghijklmnopq\n");
    expect_api_error(yaml,
                     "routes[0].respond.body: body is larger than 1 MiB once serialised to JSON");
    free(yaml);
#undef RESPOND
}

static void test_api_cross_checks(void **state)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_new(NULL);
    const char *a = "name: one\nbase_path: /a\nkind: service\ntitle: A\nversion: 1\n"
                    "routes:\n"
                    "  - {method: GET, path: '/x/{id}', respond: {}}\n"
                    "  - {method: GET, path: '/x/{other}', respond: {}}\n"
                    "  - {method: POST, path: '/x/{id}', respond: {}}\n"
                    "  - {method: '*', path: '/x/{id}', respond: {}}\n"
                    "  - {method: get, path: '/x/{third}', respond: {}}\n";
    const char *b = "name: one\nbase_path: /a\nkind: service\ntitle: B\nversion: 1\n";

    (void)state;
    assert_non_null(cfg);
    assert_int_equal(pt_api_def_load_buffer(cfg, "a.yaml", a, strlen(a), &errs), 0);
    assert_int_equal(pt_api_def_load_buffer(cfg, "b.yaml", b, strlen(b), &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(pt_config_check_apis(cfg, &errs), PT_EINVAL);
    if (errs.count != 4)
        dump(&errs);
    assert_int_equal(errs.count, 4);
    assert_true(has_error(&errs, "b.yaml:1: name: API name \"one\" is already used by a.yaml:1"));
    assert_true(has_error(
        &errs, "b.yaml:2: base_path: base path /a is already used by API \"one\" (a.yaml:2)"));
    assert_true(has_error(&errs,
                          "a.yaml:8: routes[1]: duplicate route GET /x/{other}: same method and "
                          "template as routes[0] (GET /x/{id}) at line 7"));
    assert_true(has_error(&errs, "a.yaml:11: routes[4]: duplicate route GET /x/{third}"));
    pt_config_errors_free(&errs);
    pt_config_free(cfg);
}

static void test_validate_files(void **state)
{
    char node[512], api[512], api2[512], bad[512], other[512];
    char *argv[3];

    (void)state;
    write_file("v/apis/x.yaml", api_alpha);
    snprintf(node, sizeof(node), "%s", write_file("v/node.yaml", LISTEN "apis: apis\n"));
    snprintf(api, sizeof(api), "%s", write_file("v/zeta.yaml", api_zeta));
    snprintf(api2, sizeof(api2), "%s", write_file("v/zeta2.yaml", api_zeta));
    snprintf(bad, sizeof(bad), "%s", write_file("v/bad.yaml", LISTEN "workers: x\n"));
    snprintf(other, sizeof(other), "%s", write_file("v/other.yaml", "hello: world\n"));

    argv[0] = node;
    argv[1] = api;
    assert_int_equal(pt_config_validate_files(2, argv), 0);
    argv[0] = bad;
    assert_int_equal(pt_config_validate_files(1, argv), 1);
    argv[0] = other;
    assert_int_equal(pt_config_validate_files(1, argv), 1);
    /* Two definitions of the same API given together conflict. */
    argv[0] = api;
    argv[1] = api2;
    assert_int_equal(pt_config_validate_files(2, argv), 1);
    argv[0] = "/nonexistent.yaml";
    assert_int_equal(pt_config_validate_files(1, argv), 1);
    assert_int_equal(pt_config_validate_files(0, argv), 1);
}

/* ------------------------------------------------------------ proxy APIs */

static const char api_proxy[] = "name: legacy\n"          /* 1 */
                                "base_path: /legacy/v1\n" /* 2 */
                                "kind: proxy\n"
                                "title: Legacy ERP\n"
                                "version: \"3\"\n" /* 5 */
                                "upstream:\n"
                                "  targets:\n"
                                "    - url: http://127.0.0.1:9000/erp/\n" /* 8 */
                                "      weight: 2\n"
                                "    - url: \"http://[::1]\"\n" /* 10 */
                                "    - {url: \"HTTP://Backend-1.Example.com:65535/a%20b/c:d@e\"}\n"
                                "    - url: http://10.1.2.3:8080/\n";

static const char api_proxy_full[] = "name: full\n"
                                     "base_path: /full\n"
                                     "kind: proxy\n"
                                     "title: Full\n"
                                     "version: \"1\"\n"
                                     "upstream:\n"
                                     "  targets:\n"
                                     "    - url: http://backend\n"
                                     "      weight: 1000\n"
                                     "  connect_timeout: 250ms\n"
                                     "  read_timeout: 1h\n"
                                     "  keepalive:\n"
                                     "    max_idle: 0\n"
                                     "    idle_timeout: 1s\n"
                                     "    max_requests: 1000000\n"
                                     "  preserve_host: true\n";

static void test_api_proxy_valid(void **state)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_new(NULL);
    const pt_upstream_t *up;
    const pt_upstream_target_t *t;

    (void)state;
    assert_non_null(cfg);
    if (pt_api_def_load_buffer(cfg, "legacy.yaml", api_proxy, strlen(api_proxy), &errs) != 0 ||
        pt_api_def_load_buffer(cfg, "full.yaml", api_proxy_full, strlen(api_proxy_full), &errs) !=
            0 ||
        pt_api_def_load_buffer(cfg, "zeta.yaml", api_zeta, strlen(api_zeta), &errs) != 0) {
        dump(&errs);
        fail();
    }
    /* Proxies (no routes) and services build one routing table together. */
    assert_int_equal(pt_config_check_apis(cfg, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(cfg->napis, 3);

    assert_string_equal(cfg->apis[0].kind, "proxy");
    assert_int_equal(cfg->apis[0].nroutes, 0);
    assert_null(cfg->apis[0].routes);
    up = cfg->apis[0].upstream;
    assert_non_null(up);
    assert_int_equal(up->line, 7);
    assert_int_equal(up->ntargets, 4);
    /* Defaults. */
    assert_int_equal(up->connect_timeout_ms, 5000);
    assert_int_equal(up->read_timeout_ms, 60000);
    assert_int_equal(up->keepalive_max_idle, 64);
    assert_int_equal(up->retries, 1);
    assert_int_equal(up->health_max_fails, 3);
    assert_int_equal(up->health_fail_timeout_ms, 10000);
    assert_int_equal(up->keepalive_idle_timeout_ms, 60000);
    assert_int_equal(up->keepalive_max_requests, 1000);
    assert_int_equal(up->preserve_host, 0);
    assert_int_equal(up->dns_ttl_ms, 60000);
    assert_int_equal(up->tls.verify, 1);
    assert_int_equal(up->tls.line, 0);
    assert_null(up->tls.ca_file);
    assert_null(up->tls.server_name);
    assert_null(up->tls.client_cert);
    assert_null(up->tls.client_key);
    assert_null(up->check.path); /* no active checks */
    assert_int_equal(up->check.line, 0);

    t = &up->targets[0];
    assert_string_equal(t->url, "http://127.0.0.1:9000/erp/");
    assert_string_equal(t->host, "127.0.0.1");
    assert_int_equal(t->port, 9000);
    assert_string_equal(t->path_prefix, "/erp");
    assert_int_equal(t->weight, 2);
    assert_int_equal(t->line, 8);
    assert_int_equal(t->https, 0);
    t = &up->targets[1];
    assert_string_equal(t->url, "http://[::1]");
    assert_string_equal(t->host, "::1"); /* brackets stripped */
    assert_int_equal(t->port, 80);
    assert_string_equal(t->path_prefix, "");
    assert_int_equal(t->weight, 1);
    assert_int_equal(t->line, 10);
    t = &up->targets[2];
    assert_string_equal(t->host, "Backend-1.Example.com");
    assert_int_equal(t->port, 65535);
    assert_string_equal(t->path_prefix, "/a%20b/c:d@e");
    assert_int_equal(t->line, 11);
    t = &up->targets[3];
    assert_string_equal(t->host, "10.1.2.3");
    assert_int_equal(t->port, 8080);
    assert_string_equal(t->path_prefix, ""); /* "/" -> "" */

    up = cfg->apis[1].upstream;
    assert_non_null(up);
    assert_int_equal(up->ntargets, 1);
    assert_string_equal(up->targets[0].host, "backend");
    assert_int_equal(up->targets[0].port, 80);
    assert_int_equal(up->targets[0].weight, 1000);
    assert_int_equal(up->connect_timeout_ms, 250);
    assert_int_equal(up->read_timeout_ms, 3600000);
    assert_int_equal(up->keepalive_max_idle, 0);
    assert_int_equal(up->keepalive_idle_timeout_ms, 1000);
    assert_int_equal(up->keepalive_max_requests, 1000000);
    assert_int_equal(up->preserve_host, 1);

    assert_null(cfg->apis[2].upstream);
    assert_int_equal(cfg->apis[2].nroutes, 1);
    pt_config_free(cfg);
}

#define PROXY_HEAD "name: t\nbase_path: /t\nkind: proxy\ntitle: T\nversion: \"1\"\n"
/* The target's url is on line 8. */
#define TARGET PROXY_HEAD "upstream:\n  targets:\n    - url: "

/* Expects the URL u (a YAML scalar) of target 0 to be refused with `expected`. */
static void expect_url_error(const char *u, const char *expected)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml), TARGET "%s\n", u);
    expect_api_error(yaml, expected);
}

/* Expects the URL u (a YAML scalar) of target 0 to load as host, port and path prefix. */
static void expect_url_ok(const char *u, const char *host, unsigned port, const char *prefix)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_new(NULL);
    char yaml[2048];

    assert_non_null(cfg);
    snprintf(yaml, sizeof(yaml), TARGET "%s\n", u);
    if (pt_api_def_load_buffer(cfg, "t.yaml", yaml, strlen(yaml), &errs) != 0) {
        print_message("url %s:\n", u);
        dump(&errs);
        fail();
    }
    assert_string_equal(cfg->apis[0].upstream->targets[0].host, host);
    assert_int_equal(cfg->apis[0].upstream->targets[0].port, port);
    assert_string_equal(cfg->apis[0].upstream->targets[0].path_prefix, prefix);
    pt_config_free(cfg);
}

static void test_api_proxy_urls(void **state)
{
    static const char *const bad_port[] = {
        "http://h:0",        "http://h:65536/",  "\"http://h:\"",
        "http://h:80a/",     "http://h:-1",      "http://h:1000000",
        "\"http://[::1]:\"", "\"http://h: 80\"", "\"http://[::1]:0/\"",
    };
    static const char *const bad_path[] = {
        "http://h/a/../b",  "http://h/a/./b",   "http://h/..",   "http://h/a//b",
        "http://h//",       "\"http://h/a b\"", "http://h/a%zz", "http://h/a%2",
        "http://h/%2e%2E/", "http://h/.%2e",    "http://h/a{b}", "\"http://h/caf\xc3\xa9\"",
        "http://h/a\\b",    "http://h/a|b",
    };
    static const char *const bad_host[] = {
        "http://",
        "http:///x",
        "http://:80/",
        "http://a_b/",
        "\"http://[::1\"",
        "\"http://[zz]/\"",
        "\"http://[]/\"",
        "http://::1/",
        "http://256.0.0.1/",
        "http://1.2.3/",
        "http://a..b/",
        "http://.a/",
        "http://a./",
        "http://0x7f.1/",
        "http://10.0.0.01",
        "\"http://[::1]x/\"",
        "\"http://[fe80::1%25eth0]/\"",
    };
    char yaml[1024], host[300], big[400];
    size_t i;

    (void)state;
    /* https: the same rules, default port 443 (the https flag: test_api_proxy_tls). */
    expect_url_ok("https://127.0.0.1/", "127.0.0.1", 443, "");
    expect_url_ok("HTTPS://h", "h", 443, "");
    expect_url_ok("hTtPs://h:8443/a/b/", "h", 8443, "/a/b");
    expect_url_ok("\"https://[::1]:1\"", "::1", 1, "");
    expect_url_error("https://h:0", "t.yaml:8: upstream.targets[0].url: invalid upstream URL "
                                    "\"https://h:0\": the port must be an integer between 1 "
                                    "and 65535");
    expect_url_error("https://h/a?b", "must not have a query");
    expect_url_error("https://u@h/", "must not contain user information");
    expect_url_error("https://a_b/", "the host must be a numeric IPv4 address");
    expect_url_error("https://h/a/../b", "the path must not contain \".\" or \"..\" segments");
    expect_url_error("https:/h",
                     "expected http://host[:port][/path] or https://host[:port][/path]");
    expect_url_error("\"https://\"", "missing host");
    expect_url_error("http://user:pw@127.0.0.1/",
                     "t.yaml:8: upstream.targets[0].url: invalid upstream URL "
                     "\"http://user:pw@127.0.0.1/\": must not contain user information");
    expect_url_error("http://@h/", "must not contain user information");
    expect_url_error("http://h/a?b=1",
                     "t.yaml:8: upstream.targets[0].url: invalid upstream URL \"http://h/a?b=1\": "
                     "must not have a query");
    expect_url_error("http://h?", "must not have a query");
    expect_url_error("\"http://h/#x\"", "t.yaml:8: upstream.targets[0].url: invalid upstream URL "
                                        "\"http://h/#x\": must not have a fragment");
    expect_url_error("ftp://h/", "upstream.targets[0].url: invalid upstream URL \"ftp://h/\": "
                                 "expected http://host[:port][/path]");
    expect_url_error("127.0.0.1:80", "expected http://host[:port][/path]");
    expect_url_error("\"\"", "expected http://host[:port][/path]");
    expect_url_error("[a]", "t.yaml:8: upstream.targets[0].url: expected a string, got a list");
    expect_url_error("\"http://h/\\0\"", "upstream.targets[0].url: must not contain NUL");
    for (i = 0; i < PT_ARRAY_SIZE(bad_port); i++)
        expect_url_error(bad_port[i], "t.yaml:8: upstream.targets[0].url: invalid upstream URL");
    expect_url_error("http://h:0", "the port must be an integer between 1 and 65535");
    expect_url_error("http://h:65536", "the port must be an integer between 1 and 65535");
    for (i = 0; i < PT_ARRAY_SIZE(bad_path); i++)
        expect_url_error(bad_path[i], "t.yaml:8: upstream.targets[0].url: invalid upstream URL");
    expect_url_error("http://h/a/../b", "the path must not contain \".\" or \"..\" segments");
    expect_url_error("http://h/%2E", "the path must not contain \".\" or \"..\" segments");
    expect_url_error("http://h/a//b", "the path must not contain an empty segment");
    expect_url_error("http://h/a%zz", "'%' must be followed by two hex digits");
    expect_url_error("\"http://h/a b\"", "the path contains a character that is not allowed");
    for (i = 0; i < PT_ARRAY_SIZE(bad_host); i++)
        expect_url_error(bad_host[i], "t.yaml:8: upstream.targets[0].url: invalid upstream URL");
    expect_url_error("http://::1/", "an IPv6 address must be in brackets");
    expect_url_error("\"http://[zz]/\"", "\"zz\" is not a valid IPv6 address");
    expect_url_error("http://256.0.0.1/", "\"256.0.0.1\" is not a valid IPv4 address");
    expect_url_error("http://a_b/", "the host must be a numeric IPv4 address, an IPv6 address in "
                                    "brackets or a DNS name");
    expect_url_error("http://a..b/", "the host name has an empty label");

    /* DNS names: labels of 1..63 characters, 253 in all. */
    memset(big, 'a', sizeof(big));
    snprintf(yaml, sizeof(yaml), "http://%.63s.b:1/x", big);
    snprintf(host, sizeof(host), "%.63s.b", big);
    expect_url_ok(yaml, host, 1, "/x");
    snprintf(yaml, sizeof(yaml), "http://%.63s.%.63s.%.63s.%.61s", big, big, big, big);
    expect_url_ok(yaml, yaml + 7, 80, "");
    expect_url_ok("http://x.1a", "x.1a", 80, "");
    expect_url_ok("http://0.0.0.0:1/%2F%2e%2e.x/", "0.0.0.0", 1, "/%2F%2e%2e.x");
    expect_url_ok("\"http://[::ffff:10.0.0.1]:8080/\"", "::ffff:10.0.0.1", 8080, "");
    snprintf(yaml, sizeof(yaml), "http://%.64s.b/", big);
    expect_url_error(yaml, "a label of the host name is longer than 63 characters");
    snprintf(yaml, sizeof(yaml), "http://%.63s.%.63s.%.63s.%.62s/", big, big, big, big);
    expect_url_error(yaml, "the host name must not be longer than 253 characters");
    {
        char *huge = malloc(3000);
        assert_non_null(huge);
        strcpy(huge, "http://h/");
        memset(huge + 9, 'a', 2100);
        huge[2109] = '\0';
        expect_url_error(huge, "t.yaml:8: upstream.targets[0].url: must not be longer than 2048 "
                               "characters");
        free(huge);
    }
}

static void test_api_proxy_schema(void **state)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg;
    char *yaml;
    size_t n, i;
    const char *many_errors = PROXY_HEAD "upstream:\n"                  /* 6 */
                                         "  targets:\n"                 /* 7 */
                                         "    - url: https://a:0\n"     /* 8 */
                                         "      weight: 0\n"            /* 9 */
                                         "    - url: http://b?x\n"      /* 10 */
                                         "  connect_timeout: 0\n"       /* 11 */
                                         "  keepalive: {max_idel: 1}\n" /* 12 */
                                         "routes:\n"                    /* 13 */
                                         "  - {method: GET, path: /, respond: {}}\n";

    (void)state;
    /* kind and upstream/routes go together. */
    expect_api_error(PROXY_HEAD,
                     "t.yaml:1: upstream: required key is missing (where a proxy API forwards to)");
    expect_api_error(PROXY_HEAD "upstream:\n", "t.yaml:1: upstream: required key is missing");
    expect_api_error(API_HEAD "upstream:\n  targets: [{url: http://h}]\n",
                     "t.yaml:6: upstream: only proxy APIs have an upstream");
    expect_api_error(PROXY_HEAD "upstream:\n  targets: [{url: http://h}]\n"
                                "routes:\n  - {method: GET, path: /, respond: {}}\n",
                     "t.yaml:8: routes: a proxy API forwards everything under its base path; "
                     "routes are for service APIs");
    expect_api_error(PROXY_HEAD "routes: []\nupstream:\n  targets: [{url: http://h}]\n",
                     "t.yaml:6: routes: a proxy API forwards everything");
    expect_api_error(PROXY_HEAD "upstream: http://h\n",
                     "t.yaml:6: upstream: expected a mapping, got \"http://h\"");

    /* targets */
    expect_api_error(PROXY_HEAD "upstream:\n  connect_timeout: 1s\n",
                     "t.yaml:7: upstream.targets: required key is missing (at least one target)");
    expect_api_error(PROXY_HEAD "upstream:\n  targets: []\n",
                     "t.yaml:7: upstream.targets: expected a list of 1 to 64 targets, got an "
                     "empty list");
    expect_api_error(PROXY_HEAD "upstream:\n  targets: {url: http://h}\n",
                     "t.yaml:7: upstream.targets: expected a list of 1 to 64 targets, got a "
                     "mapping");
    expect_api_error(PROXY_HEAD "upstream:\n  targets: [http://h]\n",
                     "t.yaml:7: upstream.targets[0]: expected a mapping, got \"http://h\"");
    expect_api_error(PROXY_HEAD "upstream:\n  targets:\n    - weight: 2\n",
                     "t.yaml:8: upstream.targets[0].url: required key is missing");
    expect_api_error(PROXY_HEAD "upstream:\n  targets:\n    - url: http://h\n      wieght: 2\n",
                     "t.yaml:9: upstream.targets[0].wieght: unknown key (expected one of: url, "
                     "weight)");
    yaml = malloc(8192);
    assert_non_null(yaml);
    n = (size_t)sprintf(yaml, PROXY_HEAD "upstream:\n  targets:\n");
    for (i = 0; i < 65; i++)
        n += (size_t)sprintf(yaml + n, "    - url: http://h%zu\n", i);
    expect_api_error(yaml, "t.yaml:8: upstream.targets: at most 64 targets, got 65");
    free(yaml);

    /* weight */
    expect_api_error(TARGET "http://h\n      weight: 0\n",
                     "t.yaml:9: upstream.targets[0].weight: must be between 1 and 1000, got 0");
    expect_api_error(TARGET "http://h\n      weight: 1001\n",
                     "upstream.targets[0].weight: must be between 1 and 1000, got 1001");
    expect_api_error(TARGET "http://h\n      weight: -1\n",
                     "upstream.targets[0].weight: must be between 1 and 1000");
    expect_api_error(TARGET "http://h\n      weight: heavy\n",
                     "upstream.targets[0].weight: expected an integer, got \"heavy\"");

    /* timeouts, keepalive, preserve_host */
#define UPSTREAM PROXY_HEAD "upstream:\n  targets: [{url: http://h}]\n"
    expect_api_error(UPSTREAM "  connect_timeout: 0\n",
                     "t.yaml:8: upstream.connect_timeout: must be between 1ms and 10m, got 0ms");
    expect_api_error(UPSTREAM "  connect_timeout: 11m\n",
                     "upstream.connect_timeout: must be between 1ms and 10m, got 11m");
    expect_api_error(UPSTREAM "  read_timeout: 2h\n",
                     "t.yaml:8: upstream.read_timeout: must be between 1ms and 1h, got 2h");
    expect_api_error(UPSTREAM "  read_timeout: soon\n",
                     "upstream.read_timeout: expected a duration like 10s");
    expect_api_error(UPSTREAM "  keepalive:\n    max_idel: 3\n",
                     "t.yaml:9: upstream.keepalive.max_idel: unknown key (expected one of: "
                     "max_idle, idle_timeout, max_requests)");
    expect_api_error(UPSTREAM "  keepalive: 32\n",
                     "t.yaml:8: upstream.keepalive: expected a mapping, got \"32\"");
    expect_api_error(UPSTREAM "  keepalive:\n    max_idle: 10001\n",
                     "t.yaml:9: upstream.keepalive.max_idle: must be between 0 and 10000");
    expect_api_error(UPSTREAM "  keepalive:\n    idle_timeout: 999ms\n",
                     "t.yaml:9: upstream.keepalive.idle_timeout: must be between 1s and 1h, got "
                     "999ms");
    expect_api_error(UPSTREAM "  keepalive:\n    max_requests: 0\n",
                     "t.yaml:9: upstream.keepalive.max_requests: must be between 1 and 1000000");
    expect_api_error(UPSTREAM "  preserve_host: yes\n",
                     "t.yaml:8: upstream.preserve_host: expected true or false, got \"yes\"");
    expect_api_error(UPSTREAM "  preserve_host: \"true\"\n",
                     "upstream.preserve_host: expected true or false, got the string \"true\"");
    expect_api_error(UPSTREAM "  preserve_host: 1\n",
                     "upstream.preserve_host: expected true or false");
    expect_api_error(UPSTREAM "  retries: 11\n", "t.yaml:8: upstream.retries: ");
    expect_api_error(UPSTREAM "  health: {max_fails: 3, cooldown: 5s}\n",
                     "t.yaml:8: upstream.health.cooldown: unknown key (expected one of: "
                     "max_fails, fail_timeout, check)");
    expect_api_error(UPSTREAM "  health: {fail_timeout: 10ms}\n",
                     "t.yaml:8: upstream.health.fail_timeout: ");
    expect_api_error(UPSTREAM "  retry: 3\n",
                     "t.yaml:8: upstream.retry: unknown key (expected one of: targets, "
                     "connect_timeout, read_timeout, send_timeout, total_timeout, keepalive, "
                     "preserve_host, retries, health, request_headers, response_headers, auth, "
                     "tls, dns_ttl)");
#undef UPSTREAM

    /* Every error of the file is reported. */
    cfg = pt_config_new(NULL);
    assert_non_null(cfg);
    assert_int_equal(pt_api_def_load_buffer(cfg, "t.yaml", many_errors, strlen(many_errors), &errs),
                     PT_EINVAL);
    if (errs.count != 6)
        dump(&errs);
    assert_int_equal(errs.count, 6);
    assert_true(has_error(&errs, "t.yaml:8: upstream.targets[0].url: invalid upstream URL"));
    assert_true(has_error(&errs, "t.yaml:9: upstream.targets[0].weight: must be between"));
    assert_true(has_error(&errs, "t.yaml:10: upstream.targets[1].url: invalid upstream URL"));
    assert_true(has_error(&errs, "t.yaml:11: upstream.connect_timeout: must be between"));
    assert_true(has_error(&errs, "t.yaml:12: upstream.keepalive.max_idel: unknown key"));
    assert_true(has_error(&errs, "t.yaml:13: routes: a proxy API forwards everything"));
    assert_int_equal(cfg->napis, 0);
    pt_config_errors_free(&errs);
    pt_config_free(cfg);
}

/* ------------------------------------------------------------ proxy header edits and auth */

#define UPSTREAM PROXY_HEAD "upstream:\n  targets: [{url: http://h}]\n"

/* Loads yaml as API definition "t.yaml" and returns the configuration (the test frees it). */
static pt_config_t *load_api_ok(const char *yaml)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_new(NULL);

    assert_non_null(cfg);
    if (pt_api_def_load_buffer(cfg, "t.yaml", yaml, strlen(yaml), &errs) != 0 ||
        pt_config_check_apis(cfg, &errs) != 0) {
        print_message("api:\n%s\ngot:\n", yaml);
        dump(&errs);
        pt_config_errors_free(&errs);
        pt_config_free(cfg);
        fail();
    }
    assert_int_equal(errs.count, 0);
    return cfg;
}

static void test_api_proxy_edits_valid(void **state)
{
    static const char full[] =
        UPSTREAM "  send_timeout: 250ms\n"                        /* 8 */
                 "  total_timeout: 24h\n"                         /* 9 */
                 "  request_headers:\n"                           /* 10 */
                 "    set:\n"                                     /* 11 */
                 "      X-Api-Version: 2\n"                       /* 12 */
                 "      X-Upstream-Key: \"${env:PT_TEST_KEY}\"\n" /* 13 */
                 "      X-Mixed: \"k=${env:PT_TEST_KEY};u=${env:PT_TEST_USER} cost $$5 "
                 "$${env:X} $$$$\"\n"                                   /* 14 */
                 "      X-Empty: \"\"\n"                                /* 15 */
                 "      X-Empty-Env: ${env:PT_TEST_EMPTY}\n"            /* 16 */
                 "      x-tab: \"a\\tb\"\n"                             /* 17 */
                 "    remove: [X-Debug, Cookie, proxy-authorization]\n" /* 18 */
                 "  response_headers:\n"                                /* 19 */
                 "    set: {X-Served-By: portico, X-Forwarded-For: none, Host: h}\n"
                 "    remove: [X-Powered-By, Server-Timing]\n"
                 "  auth:\n"
                 "    mode: basic\n"
                 "    username: erp\n"
                 "    password: \"${env:PT_TEST_PASS}\"\n"
                 "    forward_original: true\n";
    static const char env_user[] =
        UPSTREAM "  auth:\n    mode: basic\n    username: \"${env:PT_TEST_USER}\"\n"
                 "    password: \"${env:PT_TEST_KEY}$${env:PT_TEST_EMPTY}\"\n";
    static const char passthrough[] =
        UPSTREAM "  total_timeout: 0\n"
                 "  auth: {mode: passthrough}\n"
                 "  request_headers:\n"
                 "    set: {Authorization: \"Bearer ${env:PT_TEST_KEY}\"}\n"
                 "    remove: [X-Forwarded-Authorization]\n";
    static const char none[] = UPSTREAM "  auth: {mode: none, forward_original: true}\n"
                                        "  request_headers: {set: {}, remove: []}\n"
                                        "  response_headers: {}\n";
    pt_config_t *cfg;
    const pt_upstream_t *up;

    (void)state;
    assert_int_equal(setenv("PT_TEST_KEY", "k3y-VALUE", 1), 0);
    assert_int_equal(setenv("PT_TEST_USER", "svc user", 1), 0);
    assert_int_equal(setenv("PT_TEST_PASS", "s3cr3t", 1), 0);
    assert_int_equal(setenv("PT_TEST_EMPTY", "", 1), 0);

    cfg = load_api_ok(full);
    up = cfg->apis[0].upstream;
    assert_int_equal(up->send_timeout_ms, 250);
    assert_int_equal(up->total_timeout_ms, 86400000);
    assert_int_equal(up->request_headers.nset, 6);
    assert_string_equal(up->request_headers.set[0].name, "X-Api-Version");
    assert_string_equal(up->request_headers.set[0].value, "2");
    assert_string_equal(up->request_headers.set[1].name, "X-Upstream-Key");
    assert_string_equal(up->request_headers.set[1].value, "k3y-VALUE");
    /* Several references, "$$" is '$', and what "$$" leaves is not a reference. */
    assert_string_equal(up->request_headers.set[2].value,
                        "k=k3y-VALUE;u=svc user cost $5 ${env:X} $$");
    assert_string_equal(up->request_headers.set[3].value, "");
    assert_string_equal(up->request_headers.set[4].value, "");
    assert_string_equal(up->request_headers.set[5].name, "x-tab");
    assert_string_equal(up->request_headers.set[5].value, "a\tb");
    assert_int_equal(up->request_headers.nremove, 3);
    assert_string_equal(up->request_headers.remove[0], "X-Debug");
    assert_string_equal(up->request_headers.remove[1], "Cookie");
    assert_string_equal(up->request_headers.remove[2], "proxy-authorization");
    assert_int_equal(up->response_headers.nset, 3);
    assert_string_equal(up->response_headers.set[0].name, "X-Served-By");
    assert_string_equal(up->response_headers.set[0].value, "portico");
    assert_string_equal(up->response_headers.set[2].name, "Host");
    assert_int_equal(up->response_headers.nremove, 2);
    assert_string_equal(up->response_headers.remove[1], "Server-Timing");
    assert_int_equal(up->auth_mode, PT_UPSTREAM_AUTH_BASIC);
    assert_string_equal(up->auth_basic, "Basic ZXJwOnMzY3IzdA=="); /* base64("erp:s3cr3t") */
    assert_int_equal(up->auth_forward_original, 1);
    pt_config_free(cfg);

    /* Credentials from variables; a password may mix a reference with text. */
    cfg = load_api_ok(env_user);
    up = cfg->apis[0].upstream;
    /* base64("svc user:k3y-VALUE${env:PT_TEST_EMPTY}") */
    assert_string_equal(up->auth_basic,
                        "Basic c3ZjIHVzZXI6azN5LVZBTFVFJHtlbnY6UFRfVEVTVF9FTVBUWX0=");
    assert_int_equal(up->auth_forward_original, 0);
    pt_config_free(cfg);

    cfg = load_api_ok(passthrough);
    up = cfg->apis[0].upstream;
    assert_int_equal(up->auth_mode, PT_UPSTREAM_AUTH_PASSTHROUGH);
    assert_null(up->auth_basic);
    assert_int_equal(up->total_timeout_ms, 0);
    assert_int_equal(up->send_timeout_ms, 60000);
    assert_string_equal(up->request_headers.set[0].name, "Authorization");
    assert_string_equal(up->request_headers.set[0].value, "Bearer k3y-VALUE");
    assert_string_equal(up->request_headers.remove[0], "X-Forwarded-Authorization");
    pt_config_free(cfg);

    cfg = load_api_ok(none);
    up = cfg->apis[0].upstream;
    assert_int_equal(up->auth_mode, PT_UPSTREAM_AUTH_NONE);
    assert_null(up->auth_basic);
    assert_int_equal(up->auth_forward_original, 1);
    assert_int_equal(up->request_headers.nset, 0);
    assert_null(up->request_headers.set);
    assert_int_equal(up->request_headers.nremove, 0);
    assert_int_equal(up->response_headers.nset + up->response_headers.nremove, 0);
    pt_config_free(cfg);

    /* Defaults. */
    cfg = load_api_ok(UPSTREAM);
    up = cfg->apis[0].upstream;
    assert_int_equal(up->send_timeout_ms, 60000);
    assert_int_equal(up->total_timeout_ms, 0);
    assert_int_equal(up->request_headers.nset + up->request_headers.nremove, 0);
    assert_int_equal(up->response_headers.nset + up->response_headers.nremove, 0);
    assert_int_equal(up->auth_mode, PT_UPSTREAM_AUTH_PASSTHROUGH);
    assert_null(up->auth_basic);
    assert_int_equal(up->auth_forward_original, 0);
    pt_config_free(cfg);

    unsetenv("PT_TEST_KEY");
    unsetenv("PT_TEST_USER");
    unsetenv("PT_TEST_PASS");
    unsetenv("PT_TEST_EMPTY");
}

/* Expects header `name` to be refused as managed by the proxy, both in set and in remove of
 * request_headers (is_request) or response_headers. */
static void expect_managed(const char *name, int is_request)
{
    const char *block = is_request ? "request_headers" : "response_headers";
    char yaml[1024], expected[256];

    snprintf(yaml, sizeof(yaml), UPSTREAM "  %s:\n    set: {%s: x}\n", block, name);
    snprintf(expected, sizeof(expected),
             "t.yaml:9: upstream.%s.set.%s: %s is managed by the proxy and cannot be set or "
             "removed",
             block, name, name);
    expect_api_error(yaml, expected);
    snprintf(yaml, sizeof(yaml), UPSTREAM "  %s:\n    remove: [X-Ok, %s]\n", block, name);
    snprintf(expected, sizeof(expected),
             "t.yaml:9: upstream.%s.remove[1]: %s is managed by the proxy and cannot be set or "
             "removed",
             block, name);
    expect_api_error(yaml, expected);
}

static void test_api_proxy_edits_errors(void **state)
{
    static const char *const request_managed[] = {
        "Host",      "content-length",  "Transfer-Encoding", "Connection",       "Keep-Alive",
        "TE",        "Trailer",         "Upgrade",           "Proxy-Connection", "X-Request-Id",
        "Via",       "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-FORWARDED-PORT",
        "Forwarded",
    };
    static const char *const response_managed[] = {
        "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Date",
        "server",         "X-Request-Id",
    };
    static const char *const bad_refs[] = {
        "\"$x\"",       "\"a $\"",  "\"${env:}\"", "\"${env:1A}\"",  "\"${env:A\"",
        "\"${ENV:A}\"", "\"${A}\"", "\"$env:A\"",  "\"${env:A-B}\"", "\"${env: A}\"",
    };
    char *yaml, *big;
    size_t i, n;

    (void)state;
    /* Timeouts. */
    expect_api_error(UPSTREAM "  send_timeout: 0\n",
                     "t.yaml:8: upstream.send_timeout: must be between 1ms and 1h, got 0ms");
    expect_api_error(UPSTREAM "  send_timeout: 61m\n",
                     "t.yaml:8: upstream.send_timeout: must be between 1ms and 1h, got 61m");
    expect_api_error(UPSTREAM "  total_timeout: 25h\n",
                     "t.yaml:8: upstream.total_timeout: must be between 0ms and 24h, got 25h");
    expect_api_error(UPSTREAM "  total_timeout: never\n",
                     "t.yaml:8: upstream.total_timeout: expected a duration like 10s");
    expect_api_error(UPSTREAM "  tiemout: 1s\n",
                     "t.yaml:8: upstream.tiemout: unknown key (expected one of: targets, "
                     "connect_timeout, read_timeout, send_timeout, total_timeout, keepalive, "
                     "preserve_host, retries, health, request_headers, response_headers, auth, "
                     "tls, dns_ttl)");

    /* Shape of the blocks. */
    expect_api_error(UPSTREAM "  request_headers: 3\n",
                     "t.yaml:8: upstream.request_headers: expected a mapping, got \"3\"");
    expect_api_error(UPSTREAM "  response_headers:\n    add: {X-A: 1}\n",
                     "t.yaml:9: upstream.response_headers.add: unknown key (expected one of: set, "
                     "remove)");
    expect_api_error(UPSTREAM "  request_headers:\n    set: [X-A]\n",
                     "t.yaml:9: upstream.request_headers.set: expected a mapping of header names "
                     "to values, got a list");
    expect_api_error(UPSTREAM "  request_headers:\n    remove: X-A\n",
                     "t.yaml:9: upstream.request_headers.remove: expected a list of header names, "
                     "got \"X-A\"");
    expect_api_error(UPSTREAM "  request_headers:\n    remove: [X-A, [b]]\n",
                     "t.yaml:9: upstream.request_headers.remove[1]: expected a string, got a list");
    expect_api_error(UPSTREAM "  response_headers:\n    set: {X-A: [1]}\n",
                     "t.yaml:9: upstream.response_headers.set.X-A: expected a string, got a list");
    expect_api_error(UPSTREAM "  response_headers:\n    set: {X-A: }\n",
                     "t.yaml:9: upstream.response_headers.set.X-A: expected a string, got null");

    /* Names. */
    expect_api_error(UPSTREAM "  request_headers:\n    set: {\"X A\": 1}\n",
                     "t.yaml:9: upstream.request_headers.set.X\\x20A: invalid header name "
                     "(expected an HTTP token");
    expect_api_error(UPSTREAM "  request_headers:\n    remove: [\"X:A\"]\n",
                     "t.yaml:9: upstream.request_headers.remove[0]: invalid header name");
    expect_api_error(UPSTREAM "  request_headers:\n    remove: [\"\"]\n",
                     "t.yaml:9: upstream.request_headers.remove[0]: invalid header name");
    for (i = 0; i < PT_ARRAY_SIZE(request_managed); i++)
        expect_managed(request_managed[i], 1);
    for (i = 0; i < PT_ARRAY_SIZE(response_managed); i++)
        expect_managed(response_managed[i], 0);
    expect_api_error(UPSTREAM "  request_headers:\n    set: {host: x}\n",
                     "host is managed by the proxy and cannot be set or removed (preserve_host: "
                     "true forwards the client's Host)");
    expect_api_error(UPSTREAM "  request_headers:\n    set:\n      X-A: 1\n      x-a: 2\n",
                     "t.yaml:11: upstream.request_headers.set.x-a: duplicate header (names are "
                     "case-insensitive; line 10)");
    expect_api_error(UPSTREAM "  request_headers:\n    remove: [X-A, x-a]\n",
                     "t.yaml:9: upstream.request_headers.remove[1]: x-a is already in the list "
                     "(remove[0]; names are case-insensitive)");
    expect_api_error(UPSTREAM "  response_headers:\n    set:\n      X-A: 1\n    remove: [x-A]\n",
                     "t.yaml:11: upstream.response_headers.remove[0]: x-A is also in set (line "
                     "10): a header is either set or removed");

    /* At most 64 entries per list. */
    yaml = malloc(16384);
    assert_non_null(yaml);
    n = (size_t)sprintf(yaml, UPSTREAM "  request_headers:\n    set:\n");
    for (i = 0; i < 65; i++)
        n += (size_t)sprintf(yaml + n, "      X-H%zu: v\n", i);
    expect_api_error(yaml, "t.yaml:10: upstream.request_headers.set: at most 64 headers, got 65");
    n = (size_t)sprintf(yaml, UPSTREAM "  response_headers:\n    remove:\n");
    for (i = 0; i < 65; i++)
        n += (size_t)sprintf(yaml + n, "      - X-H%zu\n", i);
    expect_api_error(yaml,
                     "t.yaml:10: upstream.response_headers.remove: at most 64 headers, got 65");
    n = (size_t)sprintf(yaml, UPSTREAM "  response_headers:\n    remove:\n");
    for (i = 0; i < 64; i++)
        n += (size_t)sprintf(yaml + n, "      - X-H%zu\n", i);
    pt_config_free(load_api_ok(yaml));
    free(yaml);

    /* Values as written. */
    expect_api_error(UPSTREAM "  request_headers:\n    set: {X-A: \"a\\rb\"}\n",
                     "t.yaml:9: upstream.request_headers.set.X-A: invalid header value: must not "
                     "contain control characters");
    expect_api_error(UPSTREAM "  request_headers:\n    set: {X-A: \"a\\0b\"}\n",
                     "t.yaml:9: upstream.request_headers.set.X-A: invalid header value: must not "
                     "contain control characters");
    expect_api_error(UPSTREAM "  response_headers:\n    set: {X-A: \" a\"}\n",
                     "t.yaml:9: upstream.response_headers.set.X-A: invalid header value: must "
                     "not start or end with whitespace");
    /* A literal mistake next to a reference is not blamed on the variable. */
    expect_api_error(UPSTREAM "  response_headers:\n    set: {X-A: \"${env:PT_TEST_UNSET} \"}\n",
                     "t.yaml:9: upstream.response_headers.set.X-A: invalid header value: must "
                     "not start or end with whitespace");

    /* References. */
    unsetenv("PT_TEST_UNSET");
    for (i = 0; i < PT_ARRAY_SIZE(bad_refs); i++) {
        char y[512];
        snprintf(y, sizeof(y), UPSTREAM "  request_headers:\n    set: {X-A: %s}\n", bad_refs[i]);
        expect_api_error(y, "t.yaml:9: upstream.request_headers.set.X-A: invalid '$' at byte ");
    }
    expect_api_error(UPSTREAM "  request_headers:\n    set: {X-A: \"ab${env:A\"}\n",
                     "t.yaml:9: upstream.request_headers.set.X-A: invalid '$' at byte 3: expected "
                     "${env:NAME} (NAME: letters, digits and '_', not starting with a digit), "
                     "${file:/absolute/path}, or $$ for a literal '$'");
    expect_api_error(UPSTREAM "  request_headers:\n    set: {X-A: \"${env:PT_TEST_UNSET}\"}\n",
                     "t.yaml:9: upstream.request_headers.set.X-A: environment variable "
                     "PT_TEST_UNSET is not set");
    big = malloc(400);
    assert_non_null(big);
    memset(big, 'A', 399);
    big[399] = '\0';
    yaml = malloc(1024);
    assert_non_null(yaml);
    snprintf(yaml, 1024, UPSTREAM "  request_headers:\n    set: {X-A: \"${env:%.129s}\"}\n", big);
    expect_api_error(yaml, "t.yaml:9: upstream.request_headers.set.X-A: environment variable name "
                           "longer than 128 characters");
    free(yaml);
    free(big);

    /* Values once resolved. */
    assert_int_equal(setenv("PT_TEST_CRLF", "a\r\nX-Injected: 1", 1), 0);
    expect_api_error(UPSTREAM "  request_headers:\n    set: {X-A: \"v=${env:PT_TEST_CRLF}\"}\n",
                     "t.yaml:9: upstream.request_headers.set.X-A: invalid header value once "
                     "${env:PT_TEST_CRLF} is resolved: must not contain control characters");
    big = malloc(9000);
    assert_non_null(big);
    memset(big, 'x', 8999);
    big[8999] = '\0';
    assert_int_equal(setenv("PT_TEST_BIG", big, 1), 0);
    free(big);
    expect_api_error(UPSTREAM "  response_headers:\n    set: {X-A: \"${env:PT_TEST_BIG}\"}\n",
                     "t.yaml:9: upstream.response_headers.set.X-A: invalid header value once "
                     "${env:PT_TEST_BIG} is resolved: must not be longer than 8192 bytes");

    /* auth */
    expect_api_error(UPSTREAM "  auth: basic\n",
                     "t.yaml:8: upstream.auth: expected a mapping, got \"basic\"");
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    user: a\n",
                     "t.yaml:10: upstream.auth.user: unknown key (expected one of: mode, "
                     "username, password, forward_original)");
    expect_api_error(UPSTREAM "  auth:\n    mode: digest\n",
                     "t.yaml:9: upstream.auth.mode: expected none, basic or passthrough, got "
                     "\"digest\"");
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    password: ${env:PT_TEST_CRLF}\n",
                     "t.yaml:9: upstream.auth.username: required key is missing (auth mode "
                     "basic)");
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    username: erp\n",
                     "t.yaml:9: upstream.auth.password: required key is missing (auth mode "
                     "basic)");
    expect_api_error(UPSTREAM
                     "  auth:\n    mode: basic\n    username: erp\n    password: hunter2\n",
                     "t.yaml:11: upstream.auth.password: write the password as a reference to an "
                     "environment variable, ${env:NAME}; it may not be written in the file");
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    username: \"e:rp\"\n"
                              "    password: ${env:PT_TEST_BIG}\n",
                     "t.yaml:10: upstream.auth.username: invalid username: must not contain ':'");
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    username: \"\"\n"
                              "    password: ${env:PT_TEST_BIG}\n",
                     "t.yaml:10: upstream.auth.username: invalid username: must not be empty");
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    username: [a]\n"
                              "    password: ${env:PT_TEST_BIG}\n",
                     "t.yaml:10: upstream.auth.username: expected a string, got a list");
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    username: erp\n"
                              "    password: ${env:PT_TEST_CRLF}\n",
                     "t.yaml:11: upstream.auth.password: invalid password once "
                     "${env:PT_TEST_CRLF} is resolved: must not contain control characters");
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    username: erp\n"
                              "    password: ${env:PT_TEST_UNSET}\n",
                     "t.yaml:11: upstream.auth.password: environment variable PT_TEST_UNSET is "
                     "not set");
    /* "Basic " + base64 must fit a header value of 8192 bytes. */
    big = malloc(7000);
    assert_non_null(big);
    memset(big, 'p', 6134);
    big[6134] = '\0';
    assert_int_equal(setenv("PT_TEST_LONG", big, 1), 0);
    pt_config_free(load_api_ok(UPSTREAM "  auth:\n    mode: basic\n    username: erp\n"
                                        "    password: ${env:PT_TEST_LONG}\n"));
    memset(big, 'p', 6135);
    big[6135] = '\0';
    assert_int_equal(setenv("PT_TEST_LONG", big, 1), 0);
    free(big);
    expect_api_error(UPSTREAM "  auth:\n    mode: basic\n    username: erp\n"
                              "    password: ${env:PT_TEST_LONG}\n",
                     "t.yaml:11: upstream.auth: the username and the password together must not "
                     "be longer than 6137 bytes (the Authorization header is at most 8192)");
    expect_api_error(UPSTREAM "  auth:\n    mode: none\n    username: erp\n",
                     "t.yaml:10: upstream.auth.username: only used with auth mode basic (mode is "
                     "none)");
    expect_api_error(UPSTREAM "  auth:\n    password: ${env:PT_TEST_CRLF}\n",
                     "t.yaml:9: upstream.auth.password: only used with auth mode basic (mode is "
                     "passthrough)");
    expect_api_error(UPSTREAM "  auth:\n    forward_original: true\n",
                     "t.yaml:9: upstream.auth.forward_original: only for auth modes none and "
                     "basic (mode passthrough forwards the client's Authorization as is)");
    expect_api_error(UPSTREAM "  auth:\n    mode: none\n    forward_original: yes\n",
                     "t.yaml:10: upstream.auth.forward_original: expected true or false, got "
                     "\"yes\"");
    expect_api_error(UPSTREAM "  auth: {mode: none}\n"
                              "  request_headers:\n    set: {authorization: Bearer x}\n",
                     "t.yaml:10: upstream.request_headers.set.authorization: Authorization "
                     "cannot be configured as a header with auth mode none: use upstream.auth");
    expect_api_error(UPSTREAM
                     "  auth: {mode: basic, username: a, password: \"${env:PT_TEST_BIG}\"}\n"
                     "  request_headers:\n    remove: [Authorization]\n",
                     "t.yaml:10: upstream.request_headers.remove[0]: Authorization cannot be "
                     "configured as a header with auth mode basic: use upstream.auth");
    expect_api_error(UPSTREAM "  auth: {mode: none, forward_original: true}\n"
                              "  request_headers:\n    set: {X-Forwarded-Authorization: x}\n",
                     "t.yaml:10: upstream.request_headers.set.X-Forwarded-Authorization: "
                     "X-Forwarded-Authorization is set by upstream.auth.forward_original");
    /* Authorization may be edited in response_headers whatever the mode. */
    pt_config_free(load_api_ok(UPSTREAM "  auth: {mode: none}\n"
                                        "  response_headers: {remove: [Authorization]}\n"));
    unsetenv("PT_TEST_CRLF");
    unsetenv("PT_TEST_BIG");
    unsetenv("PT_TEST_LONG");
}

/* Errors about values that come from the environment show the variable, never its value. */
/* ${file:/path}: a mounted secret's content, one trailing newline dropped. */
static void test_api_secret_files(void **state)
{
    char dir[] = "/tmp/pt-secret-XXXXXX", path[64], yaml[512];
    pt_config_t *cfg;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/token", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("s3cr3t\n", f);
    fclose(f);
    snprintf(yaml, sizeof(yaml),
             PROXY_HEAD "upstream:\n  targets: [{url: http://h}]\n  request_headers:\n"
                        "    set: {X-Key: \"k-${file:%s}-$$\"}\n",
             path);
    cfg = load_api_ok(yaml);
    assert_string_equal(cfg->apis[0].upstream->request_headers.set[0].value, "k-s3cr3t-$");
    pt_config_free(cfg);
    snprintf(yaml, sizeof(yaml),
             PROXY_HEAD "upstream:\n  targets: [{url: http://h}]\n  request_headers:\n"
                        "    set: {X-Key: \"${file:%s/missing}\"}\n",
             dir);
    expect_api_error(yaml,
                     "upstream.request_headers.set.X-Key: cannot read secret file /tmp/pt-secret-");
    expect_api_error(PROXY_HEAD "upstream:\n  targets: [{url: http://h}]\n  request_headers:\n"
                                "    set: {X-Key: \"${file:relative}\"}\n",
                     "invalid '$' at byte 1");
    unlink(path);
    rmdir(dir);
}

static void test_api_proxy_secrets_not_printed(void **state)
{
    static const char yaml[] =
        UPSTREAM "  request_headers:\n"                                         /* 8 */
                 "    set:\n"                                                   /* 9 */
                 "      X-Crlf: \"${env:PT_SECRET_CRLF}\"\n"                    /* 10 */
                 "      X-Space: \"${env:PT_SECRET_SPACE}\"\n"                  /* 11 */
                 "      X-Two: \"${env:PT_SECRET_OK}/${env:PT_SECRET_CRLF}\"\n" /* 12 */
                 "      X-Ok: \"${env:PT_SECRET_OK}\"\n"                        /* 13 */
                 "      Host: \"${env:PT_SECRET_OK}\"\n"                        /* 14 */
                 "  response_headers:\n"                                        /* 15 */
                 "    set: {X-Big: \"${env:PT_SECRET_BIG}\", X-Tab: \"${env:PT_SECRET_SPACE}\"}\n"
                 "  auth:\n"                                   /* 17 */
                 "    mode: basic\n"                           /* 18 */
                 "    username: \"${env:PT_SECRET_COLON}\"\n"  /* 19 */
                 "    password: \"x${env:PT_SECRET_CRLF}\"\n"; /* 20 */
    pt_config_errors_t errs = {0};
    pt_config_t *cfg = pt_config_new(NULL);
    char big[9000];
    size_t i;

    (void)state;
    assert_non_null(cfg);
    memset(big, 'h', sizeof(big) - 1);
    memcpy(big, "hunter2", 7);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(setenv("PT_SECRET_CRLF", "hunter2\r\nX-Evil: 1", 1), 0);
    assert_int_equal(setenv("PT_SECRET_SPACE", " hunter2 ", 1), 0);
    assert_int_equal(setenv("PT_SECRET_OK", "hunter2-ok", 1), 0);
    assert_int_equal(setenv("PT_SECRET_COLON", "hunter2:x", 1), 0);
    assert_int_equal(setenv("PT_SECRET_BIG", big, 1), 0);

    assert_int_equal(pt_api_def_load_buffer(cfg, "t.yaml", yaml, strlen(yaml), &errs), PT_EINVAL);
    if (errs.count != 8)
        dump(&errs);
    assert_int_equal(errs.count, 8);
    assert_true(has_error(&errs, "t.yaml:10: upstream.request_headers.set.X-Crlf: invalid header "
                                 "value once ${env:PT_SECRET_CRLF} is resolved: must not contain "
                                 "control characters"));
    assert_true(has_error(&errs, "t.yaml:11: upstream.request_headers.set.X-Space: invalid header "
                                 "value once ${env:PT_SECRET_SPACE} is resolved: must not start or "
                                 "end with whitespace"));
    assert_true(has_error(&errs, "t.yaml:12: upstream.request_headers.set.X-Two: invalid header "
                                 "value once ${env:PT_SECRET_OK}, ${env:PT_SECRET_CRLF} is "
                                 "resolved"));
    assert_true(has_error(&errs, "t.yaml:14: upstream.request_headers.set.Host: Host is managed"));
    assert_true(has_error(&errs, "t.yaml:16: upstream.response_headers.set.X-Big: invalid header "
                                 "value once ${env:PT_SECRET_BIG} is resolved: must not be longer "
                                 "than 8192 bytes"));
    assert_true(has_error(&errs, "t.yaml:16: upstream.response_headers.set.X-Tab: invalid header "
                                 "value once ${env:PT_SECRET_SPACE} is resolved"));
    assert_true(has_error(&errs, "t.yaml:19: upstream.auth.username: invalid username once "
                                 "${env:PT_SECRET_COLON} is resolved: must not contain ':'"));
    assert_true(has_error(&errs, "t.yaml:20: upstream.auth.password: invalid password once "
                                 "${env:PT_SECRET_CRLF} is resolved: must not contain control "
                                 "characters"));
    for (i = 0; i < errs.count; i++) {
        if (strstr(errs.msgs[i], "hunter2") != NULL || strstr(errs.msgs[i], "X-Evil") != NULL)
            fail_msg("message shows a secret: %s", errs.msgs[i]);
    }
    assert_int_equal(cfg->napis, 0);
    pt_config_errors_free(&errs);
    pt_config_free(cfg);
    unsetenv("PT_SECRET_CRLF");
    unsetenv("PT_SECRET_SPACE");
    unsetenv("PT_SECRET_OK");
    unsetenv("PT_SECRET_COLON");
    unsetenv("PT_SECRET_BIG");
}

/* ------------------------------------------------------------ proxy TLS, DNS, health checks */

/* Creates an empty file in tmpdir with mkstemp; its path goes to path. */
static void temp_file(char *path, size_t len, const char *prefix)
{
    int fd;

    snprintf(path, len, "%s/%sXXXXXX", tmpdir, prefix);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "-\n", 2), 2);
    close(fd);
}

static void test_api_proxy_tls(void **state)
{
    pt_config_errors_t errs = {0};
    char ca[256], cert[256], key[256], yaml[4096], name[300];
    const pt_upstream_t *up;
    pt_config_t *cfg;

    (void)state;
    temp_file(ca, sizeof(ca), "ca");
    temp_file(cert, sizeof(cert), "cert");
    temp_file(key, sizeof(key), "key");

    /* Every key, mixed http and https targets. */
    snprintf(yaml, sizeof(yaml),
             PROXY_HEAD "upstream:\n"                              /* 6 */
                        "  targets:\n"                             /* 7 */
                        "    - url: HTTPS://api.example.com/v2/\n" /* 8 */
                        "    - url: \"https://[::1]:8443\"\n"      /* 9 */
                        "    - url: http://10.0.0.1\n"             /* 10 */
                        "  tls:\n"                                 /* 11 */
                        "    verify: true\n"                       /* 12 */
                        "    ca_file: %s\n"                        /* 13 */
                        "    server_name: API.example.com\n"       /* 14 */
                        "    client_cert: %s\n"                    /* 15 */
                        "    client_key: \"%s\"\n"                 /* 16 */
                        "  dns_ttl: 0\n",                          /* 17 */
             ca, cert, key);
    cfg = load_api_ok(yaml);
    up = cfg->apis[0].upstream;
    assert_int_equal(up->targets[0].https, 1);
    assert_string_equal(up->targets[0].host, "api.example.com");
    assert_int_equal(up->targets[0].port, 443);
    assert_string_equal(up->targets[0].path_prefix, "/v2");
    assert_int_equal(up->targets[1].https, 1);
    assert_string_equal(up->targets[1].host, "::1");
    assert_int_equal(up->targets[1].port, 8443);
    assert_int_equal(up->targets[2].https, 0);
    assert_int_equal(up->targets[2].port, 80);
    assert_int_equal(up->tls.verify, 1);
    assert_string_equal(up->tls.ca_file, ca);
    assert_string_equal(up->tls.server_name, "API.example.com");
    assert_string_equal(up->tls.client_cert, cert);
    assert_string_equal(up->tls.client_key, key);
    assert_int_equal(up->tls.line, 12);
    assert_int_equal(up->dns_ttl_ms, 0);
    pt_config_free(cfg);

    /* Defaults: verification on against the system store, DNS every 60s. */
    cfg = load_api_ok(PROXY_HEAD "upstream:\n  targets: [{url: https://h}]\n");
    up = cfg->apis[0].upstream;
    assert_int_equal(up->targets[0].https, 1);
    assert_int_equal(up->targets[0].port, 443);
    assert_int_equal(up->tls.verify, 1);
    assert_int_equal(up->tls.line, 0);
    assert_null(up->tls.ca_file);
    assert_null(up->tls.server_name);
    assert_null(up->tls.client_cert);
    assert_null(up->tls.client_key);
    assert_int_equal(up->dns_ttl_ms, 60000);
    pt_config_free(cfg);
    cfg = load_api_ok(PROXY_HEAD "upstream:\n  targets: [{url: https://h}]\n"
                                 "  tls: {verify: false}\n  dns_ttl: 24h\n");
    up = cfg->apis[0].upstream;
    assert_int_equal(up->tls.verify, 0);
    assert_int_equal(up->tls.line, 8);
    assert_int_equal(up->dns_ttl_ms, 86400000);
    pt_config_free(cfg);

    /* Relative paths are taken from the directory of the definition file. */
    snprintf(yaml, sizeof(yaml),
             PROXY_HEAD "upstream:\n  targets: [{url: https://h}]\n  tls: {ca_file: %s}\n",
             strrchr(ca, '/') + 1);
    snprintf(name, sizeof(name), "%s/rel.yaml", tmpdir);
    cfg = pt_config_new(NULL);
    assert_non_null(cfg);
    if (pt_api_def_load_buffer(cfg, name, yaml, strlen(yaml), &errs) != 0) {
        dump(&errs);
        fail();
    }
    assert_string_equal(cfg->apis[0].upstream->tls.ca_file, ca);
    pt_config_free(cfg);
    /* ... and kept as written (relative to the working directory) for a bare file name. */
    expect_api_error(PROXY_HEAD "upstream:\n  targets: [{url: https://h}]\n"
                                "  tls: {ca_file: pt-nonexistent-ca.pem}\n",
                     "t.yaml:8: upstream.tls.ca_file: cannot read CA file "
                     "\"pt-nonexistent-ca.pem\": No such file or directory");
}

#define HTTPS_UP PROXY_HEAD "upstream:\n  targets: [{url: https://h}]\n"

static void test_api_proxy_tls_errors(void **state)
{
    pt_config_errors_t errs = {0};
    char ca[256], yaml[4096];
    pt_config_t *cfg;

    (void)state;
    temp_file(ca, sizeof(ca), "ca");

    expect_api_error(UPSTREAM "  tls: {verify: true}\n",
                     "t.yaml:8: upstream.tls: tls applies to https targets; no target is https");
    expect_api_error(UPSTREAM "  tls:\n    verify: false\n",
                     "t.yaml:8: upstream.tls: tls applies to https targets; no target is https");
    expect_api_error(HTTPS_UP "  tls: yes\n", "t.yaml:8: upstream.tls: expected a mapping, got "
                                              "\"yes\"");
    expect_api_error(HTTPS_UP "  tls:\n    verfy: false\n",
                     "t.yaml:9: upstream.tls.verfy: unknown key (expected one of: verify, "
                     "ca_file, server_name, client_cert, client_key)");
    expect_api_error(HTTPS_UP "  tls: {verify: no}\n",
                     "t.yaml:8: upstream.tls.verify: expected true or false, got \"no\"");

    /* Files. */
    expect_api_error(HTTPS_UP "  tls:\n    ca_file: /nonexistent/ca.pem\n",
                     "t.yaml:9: upstream.tls.ca_file: cannot read CA file "
                     "\"/nonexistent/ca.pem\": No such file or directory");
    expect_api_error(HTTPS_UP "  tls: {ca_file: /etc}\n",
                     "t.yaml:8: upstream.tls.ca_file: cannot read CA file \"/etc\": Is a "
                     "directory");
    expect_api_error(HTTPS_UP "  tls: {ca_file: /dev/null}\n",
                     "upstream.tls.ca_file: cannot read CA file \"/dev/null\": not a regular file");
    expect_api_error(HTTPS_UP "  tls: {ca_file: \"\"}\n",
                     "t.yaml:8: upstream.tls.ca_file: must not be empty");
    expect_api_error(HTTPS_UP "  tls: {ca_file: [a]}\n",
                     "t.yaml:8: upstream.tls.ca_file: expected a string, got a list");
    snprintf(yaml, sizeof(yaml), HTTPS_UP "  tls:\n    verify: false\n    ca_file: %s\n", ca);
    expect_api_error(yaml, "t.yaml:10: upstream.tls.ca_file: ca_file is useless with verify: "
                           "false");
    snprintf(yaml, sizeof(yaml), HTTPS_UP "  tls:\n    client_cert: %s\n", ca);
    expect_api_error(yaml, "t.yaml:9: upstream.tls.client_key: client_cert and client_key go "
                           "together");
    snprintf(yaml, sizeof(yaml), HTTPS_UP "  tls: {client_key: %s}\n", ca);
    expect_api_error(yaml, "t.yaml:8: upstream.tls.client_cert: client_cert and client_key go "
                           "together");
    snprintf(yaml, sizeof(yaml),
             HTTPS_UP "  tls: {client_cert: /nonexistent/c.pem, client_key: %s}\n", ca);
    expect_api_error(yaml, "t.yaml:8: upstream.tls.client_cert: cannot read client certificate "
                           "\"/nonexistent/c.pem\": No such file or directory");
    snprintf(yaml, sizeof(yaml), HTTPS_UP "  tls: {client_cert: %s, client_key: /nonexistent/k}\n",
             ca);
    expect_api_error(yaml, "t.yaml:8: upstream.tls.client_key: cannot read client key "
                           "\"/nonexistent/k\": No such file or directory");

    /* server_name: a DNS name, not an address. */
    expect_api_error(HTTPS_UP "  tls: {server_name: 10.0.0.1}\n",
                     "t.yaml:8: upstream.tls.server_name: invalid server name \"10.0.0.1\": must "
                     "be a DNS name, not an IP address");
    expect_api_error(HTTPS_UP "  tls: {server_name: \"::1\"}\n",
                     "upstream.tls.server_name: invalid server name \"::1\": must be a DNS name, "
                     "not an IP address");
    expect_api_error(HTTPS_UP "  tls: {server_name: \"[::1]\"}\n",
                     "must be a DNS name, not an IP address");
    expect_api_error(HTTPS_UP "  tls: {server_name: a_b}\n",
                     "upstream.tls.server_name: invalid server name \"a_b\": the host must be a "
                     "numeric IPv4 address, an IPv6 address in brackets or a DNS name");
    expect_api_error(HTTPS_UP "  tls: {server_name: a..b}\n", "the host name has an empty label");
    expect_api_error(HTTPS_UP "  tls: {server_name: 1.2.3}\n",
                     "\"1.2.3\" is not a valid IPv4 address");
    expect_api_error(HTTPS_UP "  tls: {server_name: \"\"}\n",
                     "t.yaml:8: upstream.tls.server_name: must not be empty");

    /* dns_ttl */
    expect_api_error(HTTPS_UP "  dns_ttl: 25h\n",
                     "t.yaml:8: upstream.dns_ttl: must be between 0ms and 24h, got 25h");
    expect_api_error(HTTPS_UP "  dns_ttl: often\n",
                     "t.yaml:8: upstream.dns_ttl: expected a duration like 10s");

    /* Every error at once. */
    snprintf(yaml, sizeof(yaml),
             HTTPS_UP "  tls:\n"                          /* 8 */
                      "    verify: false\n"               /* 9 */
                      "    ca_file: %s\n"                 /* 10 */
                      "    server_name: 127.0.0.1\n"      /* 11 */
                      "    client_cert: /nonexistent/c\n" /* 12 */
                      "    sni: x\n"                      /* 13 */
                      "  dns_ttl: -1\n",                  /* 14 */
             ca);
    cfg = pt_config_new(NULL);
    assert_non_null(cfg);
    assert_int_equal(pt_api_def_load_buffer(cfg, "t.yaml", yaml, strlen(yaml), &errs), PT_EINVAL);
    if (errs.count != 6)
        dump(&errs);
    assert_int_equal(errs.count, 6);
    assert_true(has_error(&errs, "t.yaml:13: upstream.tls.sni: unknown key"));
    assert_true(has_error(&errs, "t.yaml:10: upstream.tls.ca_file: ca_file is useless"));
    assert_true(has_error(&errs, "t.yaml:11: upstream.tls.server_name: invalid server name"));
    assert_true(has_error(&errs, "t.yaml:12: upstream.tls.client_cert: cannot read client "
                                 "certificate"));
    assert_true(has_error(&errs, "t.yaml:9: upstream.tls.client_key: client_cert and client_key "
                                 "go together"));
    assert_true(has_error(&errs, "t.yaml:14: upstream.dns_ttl: expected a duration"));
    pt_config_errors_free(&errs);
    pt_config_free(cfg);
}

#undef HTTPS_UP

static void test_api_proxy_health_check(void **state)
{
    const pt_health_check_t *hc;
    const pt_upstream_t *up;
    pt_config_t *cfg;

    (void)state;
    /* Defaults. */
    cfg = load_api_ok(UPSTREAM "  health:\n"        /* 8 */
                               "    max_fails: 0\n" /* 9 */
                               "    check:\n"       /* 10 */
                               "      path: /health\n");
    up = cfg->apis[0].upstream;
    hc = &up->check;
    assert_int_equal(up->health_max_fails, 0);
    assert_string_equal(hc->path, "/health");
    assert_int_equal(hc->line, 11);
    assert_int_equal(hc->interval_ms, 5000);
    assert_int_equal(hc->timeout_ms, 2000);
    assert_int_equal(hc->nexpected, 1);
    assert_int_equal(hc->expected[0].lo, 200);
    assert_int_equal(hc->expected[0].hi, 299);
    assert_int_equal(hc->fails, 2);
    assert_int_equal(hc->passes, 1);
    pt_config_free(cfg);

    /* Every key; a list of codes and classes (either case). */
    cfg = load_api_ok(UPSTREAM "  health:\n"
                               "    check:\n"
                               "      path: \"/health/deep/?full=1&x=/a?b%20:@\"\n"
                               "      interval: 1h\n"
                               "      timeout: 1m\n"
                               "      expected_status: [200, \"2xx\", 3XX, 404, 599, 1xx]\n"
                               "      fails: 100\n"
                               "      passes: 100\n");
    hc = &cfg->apis[0].upstream->check;
    assert_string_equal(hc->path, "/health/deep/?full=1&x=/a?b%20:@"); /* as written */
    assert_int_equal(hc->interval_ms, 3600000);
    assert_int_equal(hc->timeout_ms, 60000);
    assert_int_equal(hc->nexpected, 6);
    assert_int_equal(hc->expected[0].lo, 200);
    assert_int_equal(hc->expected[0].hi, 200);
    assert_int_equal(hc->expected[1].lo, 200);
    assert_int_equal(hc->expected[1].hi, 299);
    assert_int_equal(hc->expected[2].lo, 300);
    assert_int_equal(hc->expected[2].hi, 399);
    assert_int_equal(hc->expected[3].lo, 404);
    assert_int_equal(hc->expected[3].hi, 404);
    assert_int_equal(hc->expected[4].lo, 599);
    assert_int_equal(hc->expected[4].hi, 599);
    assert_int_equal(hc->expected[5].lo, 100);
    assert_int_equal(hc->expected[5].hi, 199);
    assert_int_equal(hc->fails, 100);
    assert_int_equal(hc->passes, 100);
    pt_config_free(cfg);

    /* A single scalar; the extremes of the durations. */
    cfg = load_api_ok(UPSTREAM "  health:\n    check: {path: /, expected_status: 204, "
                               "interval: 1s, timeout: 999ms}\n");
    hc = &cfg->apis[0].upstream->check;
    assert_string_equal(hc->path, "/");
    assert_int_equal(hc->nexpected, 1);
    assert_int_equal(hc->expected[0].lo, 204);
    assert_int_equal(hc->expected[0].hi, 204);
    assert_int_equal(hc->interval_ms, 1000);
    assert_int_equal(hc->timeout_ms, 999);
    pt_config_free(cfg);
    cfg = load_api_ok(UPSTREAM "  health:\n    check: {path: \"/?\", expected_status: 5xx, "
                               "timeout: 1ms}\n");
    hc = &cfg->apis[0].upstream->check;
    assert_string_equal(hc->path, "/?");
    assert_int_equal(hc->nexpected, 1);
    assert_int_equal(hc->expected[0].lo, 500);
    assert_int_equal(hc->expected[0].hi, 599);
    assert_int_equal(hc->timeout_ms, 1);
    pt_config_free(cfg);

    /* No check: path NULL. */
    cfg = load_api_ok(UPSTREAM "  health: {max_fails: 1}\n");
    assert_null(cfg->apis[0].upstream->check.path);
    pt_config_free(cfg);
}

#define CHECK UPSTREAM "  health:\n    check:\n      path: /h\n" /* keys from line 11 */

static void test_api_proxy_health_check_errors(void **state)
{
    pt_config_errors_t errs = {0};
    pt_config_t *cfg;
    char *yaml;
    size_t n;
    const char *many = CHECK "      interval: 1s\n"                   /* 11 */
                             "      expected_status: [6xx, ok, 99]\n" /* 12 */
                             "      fails: 0\n"                       /* 13 */
                             "      passes: 101\n"                    /* 14 */
                             "      timeout: 2s\n"                    /* 15 */
                             "      retries: 1\n";                    /* 16 */

    (void)state;
    expect_api_error(UPSTREAM "  health:\n    check: {interval: 5s}\n",
                     "t.yaml:9: upstream.health.check.path: required key is missing");
    expect_api_error(UPSTREAM "  health:\n    check: yes\n",
                     "t.yaml:9: upstream.health.check: expected a mapping, got \"yes\"");
    expect_api_error(UPSTREAM "  health:\n    check: {path: /h, intervl: 5s}\n",
                     "t.yaml:9: upstream.health.check.intervl: unknown key (expected one of: "
                     "path, interval, timeout, expected_status, fails, passes)");

    /* path */
    expect_api_error(UPSTREAM "  health:\n    check:\n      path: health\n",
                     "t.yaml:10: upstream.health.check.path: invalid health check path "
                     "\"health\": must start with '/'");
    expect_api_error(UPSTREAM "  health:\n    check: {path: \"\"}\n",
                     "t.yaml:9: upstream.health.check.path: must not be empty");
    expect_api_error(UPSTREAM "  health:\n    check: {path: \"/a b\"}\n",
                     "invalid health check path \"/a b\": the path contains a character that is "
                     "not allowed");
    expect_api_error(UPSTREAM "  health:\n    check: {path: /a/../b}\n",
                     "the path must not contain \".\" or \"..\" segments");
    expect_api_error(UPSTREAM "  health:\n    check: {path: //}\n",
                     "the path must not contain an empty segment");
    expect_api_error(UPSTREAM "  health:\n    check: {path: \"/h?a b\"}\n",
                     "the query contains a character that is not allowed in a URI query");
    expect_api_error(UPSTREAM "  health:\n    check: {path: \"/h?a\\tb\"}\n",
                     "the query contains a character that is not allowed in a URI query");
    expect_api_error(UPSTREAM "  health:\n    check: {path: \"/h#f\"}\n",
                     "the path contains a character that is not allowed");
    expect_api_error(UPSTREAM "  health:\n    check: {path: \"/h?x#f\"}\n",
                     "the query contains a character that is not allowed");
    expect_api_error(UPSTREAM "  health:\n    check: {path: \"/h?%zz\"}\n",
                     "'%' must be followed by two hex digits");
    expect_api_error(UPSTREAM "  health:\n    check: {path: \"/h?%2\"}\n",
                     "'%' must be followed by two hex digits");
    expect_api_error(UPSTREAM "  health:\n    check: {path: [a]}\n",
                     "upstream.health.check.path: expected a string, got a list");
    yaml = malloc(4096);
    assert_non_null(yaml);
    n = (size_t)sprintf(yaml, UPSTREAM "  health:\n    check: {path: /");
    memset(yaml + n, 'a', 1024);
    strcpy(yaml + n + 1024, "}\n");
    expect_api_error(yaml, "upstream.health.check.path: invalid health check path \"/aaaa");
    expect_api_error(yaml, "must not be longer than 1024 characters");
    yaml[n + 1023] = '}';
    yaml[n + 1024] = '\n';
    yaml[n + 1025] = '\0';
    cfg = load_api_ok(yaml); /* 1024 characters */
    assert_int_equal(strlen(cfg->apis[0].upstream->check.path), 1024);
    pt_config_free(cfg);
    free(yaml);

    /* interval and timeout */
    expect_api_error(CHECK "      interval: 500ms\n",
                     "t.yaml:11: upstream.health.check.interval: must be between 1s and 1h, got "
                     "500ms");
    expect_api_error(CHECK "      interval: 2h\n",
                     "upstream.health.check.interval: must be between 1s and 1h, got 2h");
    expect_api_error(CHECK "      timeout: 0\n",
                     "t.yaml:11: upstream.health.check.timeout: must be between 1ms and 1m, got "
                     "0ms");
    expect_api_error(CHECK "      timeout: 61s\n",
                     "upstream.health.check.timeout: must be between 1ms and 1m, got 61s");
    expect_api_error(CHECK "      interval: 10s\n      timeout: 10s\n",
                     "t.yaml:12: upstream.health.check.timeout: must be shorter than interval "
                     "(10s), got 10s");
    expect_api_error(CHECK "      timeout: 30s\n",
                     "t.yaml:11: upstream.health.check.timeout: must be shorter than interval "
                     "(5s), got 30s");
    expect_api_error(CHECK "      interval: 1s\n",
                     "t.yaml:10: upstream.health.check.timeout: must be shorter than interval "
                     "(1s), got 2s (the default)");

    /* expected_status */
    expect_api_error(CHECK "      expected_status: 600\n",
                     "t.yaml:11: upstream.health.check.expected_status: must be between 100 and "
                     "599, got 600");
    expect_api_error(CHECK "      expected_status: [200, 600]\n",
                     "t.yaml:11: upstream.health.check.expected_status[1]: must be between 100 "
                     "and 599, got 600");
    expect_api_error(CHECK "      expected_status: 99\n",
                     "upstream.health.check.expected_status: must be between 100 and 599, got "
                     "99");
    expect_api_error(CHECK "      expected_status: 6xx\n",
                     "t.yaml:11: upstream.health.check.expected_status: expected a status code "
                     "(100 to 599) or a class (1xx to 5xx), got \"6xx\"");
    expect_api_error(CHECK "      expected_status: [\"0xx\"]\n",
                     "upstream.health.check.expected_status[0]: expected a status code (100 to "
                     "599) or a class (1xx to 5xx), got the string \"0xx\"");
    expect_api_error(CHECK "      expected_status: \"200\"\n", "got the string \"200\"");
    expect_api_error(CHECK "      expected_status: 2x\n", "got \"2x\"");
    expect_api_error(CHECK "      expected_status: {a: 1}\n", "got a mapping");
    expect_api_error(CHECK "      expected_status: [[200]]\n",
                     "upstream.health.check.expected_status[0]: expected a status code (100 to "
                     "599) or a class (1xx to 5xx), got a list");
    expect_api_error(CHECK "      expected_status: []\n",
                     "t.yaml:11: upstream.health.check.expected_status: expected a status code, "
                     "a class or a list of them, got an empty list");

    /* fails, passes */
    expect_api_error(CHECK "      fails: 0\n",
                     "t.yaml:11: upstream.health.check.fails: must be between 1 and 100, got 0");
    expect_api_error(CHECK "      passes: 101\n",
                     "t.yaml:11: upstream.health.check.passes: must be between 1 and 100, got 101");
    expect_api_error(CHECK "      passes: 1s\n",
                     "upstream.health.check.passes: expected an integer, got \"1s\"");

    /* Every error at once. */
    cfg = pt_config_new(NULL);
    assert_non_null(cfg);
    assert_int_equal(pt_api_def_load_buffer(cfg, "t.yaml", many, strlen(many), &errs), PT_EINVAL);
    if (errs.count != 7)
        dump(&errs);
    assert_int_equal(errs.count, 7);
    assert_true(has_error(&errs, "t.yaml:16: upstream.health.check.retries: unknown key"));
    assert_true(has_error(&errs, "t.yaml:15: upstream.health.check.timeout: must be shorter than "
                                 "interval (1s), got 2s"));
    assert_true(has_error(&errs, "t.yaml:12: upstream.health.check.expected_status[0]: expected"));
    assert_true(has_error(&errs, "t.yaml:12: upstream.health.check.expected_status[1]: expected"));
    assert_true(has_error(&errs, "t.yaml:12: upstream.health.check.expected_status[2]: must be"));
    assert_true(has_error(&errs, "t.yaml:13: upstream.health.check.fails: must be between"));
    assert_true(has_error(&errs, "t.yaml:14: upstream.health.check.passes: must be between"));
    pt_config_errors_free(&errs);
    pt_config_free(cfg);
}

#undef CHECK

#undef UPSTREAM

/* ------------------------------------------------------------ trusted proxies */

static void test_trusted_proxies(void **state)
{
    pt_config_errors_t errs = {0};
    const char *yaml = LISTEN "trusted_proxies:\n"
                              "  - 127.0.0.1\n"
                              "  - 10.0.0.0/8\n"
                              "  - \"::1/128\"\n"
                              "  - 2001:db8::/32\n"
                              "  - 0.0.0.0/0\n"
                              "  - ::ffff:192.168.0.0/112\n"
                              "  - fe80::1\n"
                              "  - 192.168.1.1/32\n";
    static const unsigned char v6_db8[16] = {0x20, 0x01, 0x0d, 0xb8};
    unsigned char lo6[16] = {0};
    pt_config_t *cfg;

    (void)state;
    lo6[15] = 1;
    cfg = pt_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);
    if (cfg == NULL)
        dump(&errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->ntrusted_proxies, 8);
    assert_int_equal(cfg->trusted_proxies[0].family, AF_INET);
    assert_int_equal(cfg->trusted_proxies[0].prefix, 32);
    assert_memory_equal(cfg->trusted_proxies[0].addr, "\x7f\0\0\x01", 4);
    assert_int_equal(cfg->trusted_proxies[1].family, AF_INET);
    assert_int_equal(cfg->trusted_proxies[1].prefix, 8);
    assert_memory_equal(cfg->trusted_proxies[1].addr, "\x0a\0\0\0", 4);
    assert_int_equal(cfg->trusted_proxies[2].family, AF_INET6);
    assert_int_equal(cfg->trusted_proxies[2].prefix, 128);
    assert_memory_equal(cfg->trusted_proxies[2].addr, lo6, 16);
    assert_int_equal(cfg->trusted_proxies[3].family, AF_INET6);
    assert_int_equal(cfg->trusted_proxies[3].prefix, 32);
    assert_memory_equal(cfg->trusted_proxies[3].addr, v6_db8, 16);
    assert_int_equal(cfg->trusted_proxies[4].family, AF_INET);
    assert_int_equal(cfg->trusted_proxies[4].prefix, 0);
    /* An IPv4-mapped block is stored as the IPv4 block it stands for. */
    assert_int_equal(cfg->trusted_proxies[5].family, AF_INET);
    assert_int_equal(cfg->trusted_proxies[5].prefix, 16);
    assert_memory_equal(cfg->trusted_proxies[5].addr, "\xc0\xa8\0\0", 4);
    assert_int_equal(cfg->trusted_proxies[6].family, AF_INET6);
    assert_int_equal(cfg->trusted_proxies[6].prefix, 128);
    assert_int_equal(cfg->trusted_proxies[7].prefix, 32);
    pt_config_free(cfg);

    /* An empty list is allowed. */
    yaml = LISTEN "trusted_proxies: []\n";
    cfg = pt_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->ntrusted_proxies, 0);
    pt_config_free(cfg);

#define TP LISTEN "trusted_proxies:\n  - "
    expect_config_error(TP "10.0.0.1/8\n",
                        "t.yaml:4: trusted_proxies[0]: host bits set; did you mean 10.0.0.0/8?");
    expect_config_error(TP "192.168.1.200/26\n", "host bits set; did you mean 192.168.1.192/26?");
    expect_config_error(TP "\"::1/64\"\n",
                        "t.yaml:4: trusted_proxies[0]: host bits set; did you mean ::/64?");
    expect_config_error(TP "2001:db8::1/33\n", "host bits set; did you mean 2001:db8::/33?");
    expect_config_error(TP "::ffff:10.1.0.0/104\n", "host bits set; did you mean 10.0.0.0/8?");
    expect_config_error(TP "10.0.0.0/33\n", "t.yaml:4: trusted_proxies[0]: the prefix length "
                                            "after '/' must be an integer between 0 and 32");
    expect_config_error(TP "\"::/129\"\n", "must be an integer between 0 and 128");
    expect_config_error(TP "10.0.0.0/\n", "must be an integer between 0 and 32");
    expect_config_error(TP "10.0.0.0/8x\n", "must be an integer between 0 and 32");
    expect_config_error(TP "10.0.0.0/-1\n", "must be an integer between 0 and 32");
    expect_config_error(TP "10.0.0.0/00008\n", "must be an integer between 0 and 32");
    expect_config_error(TP "/8\n", "t.yaml:4: trusted_proxies[0]: expected an IP address or a "
                                   "CIDR block like 10.0.0.0/8 or ::1/128");
    expect_config_error(TP "localhost\n", "\"localhost\" is not a numeric IPv4 address");
    expect_config_error(TP "\"[::1]\"\n", "\"[::1]\" is not a numeric IPv6 address");
    expect_config_error(TP "10.0.0\n", "is not a numeric IPv4 address");
    expect_config_error(TP "{a: 1}\n", "t.yaml:4: trusted_proxies[0]: expected a string");
    expect_config_error(TP "127.0.0.1\n  - 10.0.0.1/8\n  - bogus\n",
                        "t.yaml:6: trusted_proxies[2]: expected an IP address");
    expect_config_error(LISTEN "trusted_proxies: 10.0.0.0/8\n",
                        "t.yaml:3: trusted_proxies: expected a list of addresses or CIDR blocks, "
                        "got \"10.0.0.0/8\"");
#undef TP
}

static struct sockaddr_in sin4(const char *a)
{
    struct sockaddr_in s;
    memset(&s, 0, sizeof(s));
    s.sin_family = AF_INET;
    s.sin_port = htons(1234);
    assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
    return s;
}

static struct sockaddr_in6 sin6(const char *a)
{
    struct sockaddr_in6 s;
    memset(&s, 0, sizeof(s));
    s.sin6_family = AF_INET6;
    s.sin6_port = htons(1234);
    assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
    return s;
}

/* pt_cidr_match against a list parsed from `list` (YAML flow sequence). */
static int match(const char *list, const char *addr)
{
    pt_config_errors_t errs = {0};
    char yaml[1024];
    pt_config_t *cfg;
    int m;

    snprintf(yaml, sizeof(yaml), LISTEN "trusted_proxies: %s\n", list);
    cfg = pt_config_load_buffer("t.yaml", yaml, strlen(yaml), &errs);
    if (cfg == NULL)
        dump(&errs);
    pt_config_errors_free(&errs);
    assert_non_null(cfg);
    if (strchr(addr, ':') != NULL) {
        struct sockaddr_in6 s = sin6(addr);
        m = pt_cidr_match(cfg->trusted_proxies, cfg->ntrusted_proxies, (struct sockaddr *)&s);
    } else {
        struct sockaddr_in s = sin4(addr);
        m = pt_cidr_match(cfg->trusted_proxies, cfg->ntrusted_proxies, (struct sockaddr *)&s);
    }
    pt_config_free(cfg);
    return m;
}

static void test_cidr_match(void **state)
{
    const char *list = "[127.0.0.1, 10.0.0.0/8, 172.16.0.0/12, 192.168.1.64/27, \"::1\", "
                       "\"2001:db8::/32\", \"fc00::/7\"]";
    struct sockaddr_storage ss;
    pt_cidr_t any4 = {AF_INET, {0}, 0};

    (void)state;
    /* IPv4 */
    assert_int_equal(match(list, "127.0.0.1"), 1);
    assert_int_equal(match(list, "127.0.0.2"), 0);
    assert_int_equal(match(list, "10.0.0.0"), 1);
    assert_int_equal(match(list, "10.255.255.255"), 1);
    assert_int_equal(match(list, "11.0.0.0"), 0);
    assert_int_equal(match(list, "9.255.255.255"), 0);
    assert_int_equal(match(list, "172.31.255.255"), 1);
    assert_int_equal(match(list, "172.32.0.0"), 0);
    assert_int_equal(match(list, "172.15.255.255"), 0);
    assert_int_equal(match(list, "192.168.1.64"), 1);
    assert_int_equal(match(list, "192.168.1.95"), 1);
    assert_int_equal(match(list, "192.168.1.96"), 0);
    assert_int_equal(match(list, "192.168.1.63"), 0);
    /* IPv6 */
    assert_int_equal(match(list, "::1"), 1);
    assert_int_equal(match(list, "::2"), 0);
    assert_int_equal(match(list, "2001:db8:ffff::1"), 1);
    assert_int_equal(match(list, "2001:db9::1"), 0);
    assert_int_equal(match(list, "fd12:3456::1"), 1);
    assert_int_equal(match(list, "fc00::1"), 1);
    assert_int_equal(match(list, "fe00::1"), 0);
    /* IPv4-mapped IPv6 addresses are IPv4 addresses. */
    assert_int_equal(match(list, "::ffff:10.1.2.3"), 1);
    assert_int_equal(match(list, "::ffff:127.0.0.1"), 1);
    assert_int_equal(match(list, "::ffff:11.1.2.3"), 0);
    assert_int_equal(match("[\"::ffff:10.0.0.0/104\"]", "10.9.9.9"), 1);
    assert_int_equal(match("[\"::ffff:10.0.0.0/104\"]", "::ffff:10.9.9.9"), 1);
    assert_int_equal(match("[\"::ffff:10.0.0.0/104\"]", "::ffff:11.9.9.9"), 0);
    /* Not mapped: ::10.1.2.3 (deprecated IPv4-compatible) stays IPv6. */
    assert_int_equal(match(list, "::10.1.2.3"), 0);
    /* /0 covers its own family only. */
    assert_int_equal(match("[0.0.0.0/0]", "203.0.113.9"), 1);
    assert_int_equal(match("[0.0.0.0/0]", "::ffff:203.0.113.9"), 1);
    assert_int_equal(match("[0.0.0.0/0]", "2001:db8::1"), 0);
    assert_int_equal(match("[\"::/0\"]", "2001:db8::1"), 1);
    assert_int_equal(match("[\"::/0\"]", "::1"), 1);
    assert_int_equal(match("[\"::/0\"]", "203.0.113.9"), 0);
    assert_int_equal(match("[\"::/0\"]", "::ffff:203.0.113.9"), 0);
    /* Empty list, NULL, other families. */
    assert_int_equal(match("[]", "127.0.0.1"), 0);
    assert_int_equal(pt_cidr_match(&any4, 1, NULL), 0);
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_int_equal(pt_cidr_match(&any4, 1, (struct sockaddr *)&ss), 0);
    ss.ss_family = AF_INET;
    assert_int_equal(pt_cidr_match(&any4, 1, (struct sockaddr *)&ss), 1);
    assert_int_equal(pt_cidr_match(&any4, 0, (struct sockaddr *)&ss), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_valid_config),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_sizes_and_durations),
        cmocka_unit_test(test_sizes_accepted),
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_yaml_restrictions),
        cmocka_unit_test(test_apis_dir),
        cmocka_unit_test(test_errors_collected_and_capped),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_api_valid),
        cmocka_unit_test(test_api_required_and_types),
        cmocka_unit_test(test_api_base_paths),
        cmocka_unit_test(test_api_headers),
        cmocka_unit_test(test_api_status_and_body),
        cmocka_unit_test(test_api_cross_checks),
        cmocka_unit_test(test_validate_files),
        cmocka_unit_test(test_api_proxy_valid),
        cmocka_unit_test(test_api_proxy_urls),
        cmocka_unit_test(test_api_proxy_schema),
        cmocka_unit_test(test_api_proxy_edits_valid),
        cmocka_unit_test(test_api_proxy_edits_errors),
        cmocka_unit_test(test_api_proxy_secrets_not_printed),
        cmocka_unit_test(test_api_secret_files),
        cmocka_unit_test(test_api_proxy_tls),
        cmocka_unit_test(test_api_proxy_tls_errors),
        cmocka_unit_test(test_api_proxy_health_check),
        cmocka_unit_test(test_api_proxy_health_check_errors),
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_cidr_match),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
