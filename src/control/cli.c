/*
 * cli.c - the admin API's command-line client (see cli.h and
 * docs/admin-api.md "CLI").
 *
 * One invocation, one request: the command line becomes one call to the
 * admin API through libcurl's easy interface, and the JSON answer becomes a
 * table or a one-line confirmation. Everything the server sends is printed
 * with its control characters replaced, so that a name or a note cannot
 * move the cursor or rewrite the terminal of whoever lists it.
 */
#include "control/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/json.h"

#define CLI_DEFAULT_SERVER     "http://127.0.0.1:9901"
#define CLI_CONNECT_TIMEOUT_MS 5000L
#define CLI_TIMEOUT_MS         60000L /* a deploy answers once the snapshot is published */
#define CLI_MAX_ANSWER         (64u << 20)
#define CLI_MAX_FILE           (64u << 20) /* the server's limit (4 MiB) is its to tell: 413 */
#define CLI_MAX_TOKEN          4096
#define CLI_MAX_ARGS           8
#define CLI_MAX_COLS           8
#define CLI_HASH_SHOWN         12

/* Exit codes (docs/admin-api.md "CLI"). */
#define CLI_EXIT_OK          0
#define CLI_EXIT_REFUSED     1
#define CLI_EXIT_USAGE       2
#define CLI_EXIT_UNREACHABLE 3

/* The options a command may take besides the common ones. */
#define OPT_LABEL    (1u << 0)
#define OPT_NOTES    (1u << 1)
#define OPT_REVISION (1u << 2)
#define OPT_ENV      (1u << 3)
#define OPT_TO       (1u << 4)
#define OPT_API      (1u << 5)
#define OPT_ROLES    (1u << 6)
#define OPT_IPS      (1u << 7)
#define OPT_APIS     (1u << 8)
#define OPT_CERTS    (1u << 9)
#define OPT_PASSWORD (1u << 10)
#define OPT_STATUS   (1u << 11)
#define OPT_USER     (1u << 12)
#define OPT_LAST     OPT_USER

typedef struct cli_s cli_t;

typedef struct cmd_s {
    const char *word;  /* argv[0] */
    const char *sub;   /* the second word ("api push"), or NULL */
    size_t nargs;      /* positional arguments after the words */
    unsigned opts;     /* OPT_* it takes */
    unsigned required; /* OPT_* it needs */
    int (*run)(cli_t *c);
    const char *synopsis; /* after "portico " */
    const char *summary;
} cmd_t;

struct cli_s {
    const cmd_t *cmd;
    const char *words[CLI_MAX_ARGS]; /* the non-option arguments after argv[0], in order */
    size_t nwords;
    const char **args; /* words after the command's own (the sub word) */
    const char *label, *notes, *revision, *env, *to, *api;
    const char *roles, *ips, *apis, *certs; /* comma-separated lists */
    const char *exec_status, *user;
    const char *server_opt, *token_file;
    unsigned given; /* OPT_* seen on the command line */
    int json;
    char *server; /* malloc'd, without trailing '/' */
    char *token;  /* malloc'd; never printed */
    CURL *curl;
    pt_arena_t a;    /* the parsed answer and the texts shown */
    pt_buf_t answer; /* the answer's body as received */
    long status;     /* its HTTP status */
    pt_json_t *doc;  /* the answer parsed (NULL with --json) */
};

/* A table column: its header and the member of each item it shows. */
typedef struct column_s {
    const char *title;
    const char *key;
    size_t max; /* characters shown, 0: all */
} column_t;

static void usage(FILE *f, int full);

/* ------------------------------------------------------------- messages */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;
    fputs("portico: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Says what is wrong with the command line, then how the command (or every
 * command, when it is not known yet) is used. Returns the usage exit code. */
static int usage_error(const cli_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const cli_t *c, const char *fmt, ...)
{
    va_list ap;
    fputs("portico: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (c != NULL && c->cmd != NULL)
        fprintf(stderr, "Usage: portico %s\n", c->cmd->synopsis);
    else
        usage(stderr, 0);
    return CLI_EXIT_USAGE;
}

static int out_of_memory(void)
{
    say("out of memory");
    return CLI_EXIT_REFUSED;
}

/* ----------------------------------------------------- texts from the server */

/* Copies s[0..len) into the arena with control characters (C0, DEL and the
 * C1 range as UTF-8) replaced by spaces: server texts go to a terminal. */
static const char *clean(cli_t *c, const char *s, size_t len)
{
    char *o = pt_arena_alloc(&c->a, len + 1);
    size_t i, n = 0;

    if (o == NULL)
        return "?";
    for (i = 0; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9f) {
            i++;
            o[n++] = ' ';
        } else {
            o[n++] = b < 0x20 || b == 0x7f ? ' ' : (char)b;
        }
    }
    o[n] = '\0';
    return o;
}

/* Characters of UTF-8 text s (its continuation bytes do not count), for
 * aligning columns. */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* The text of member key of obj as shown: strings cleaned, numbers and
 * booleans as written, objects and arrays as compact JSON, "-" when absent,
 * null or empty; cut to max characters when max > 0. Arena-owned. */
static const char *text_of(cli_t *c, const pt_json_t *obj, const char *key, size_t max)
{
    const pt_json_t *v = pt_json_get(obj, key);
    const char *s;
    size_t len, i, w;
    pt_buf_t b;

    if (v == NULL)
        return "-";
    switch (v->type) {
    case PT_JSON_NULL:
        return "-";
    case PT_JSON_TRUE:
        return "true";
    case PT_JSON_FALSE:
        return "false";
    case PT_JSON_STRING:
    case PT_JSON_NUMBER:
        s = v->u.str.p;
        len = v->u.str.len;
        break;
    default:
        pt_buf_init(&b, 0);
        s = pt_json_write(&b, v) == PT_OK ? clean(c, b.data, b.len) : "?";
        pt_buf_free(&b);
        return s;
    }
    if (len == 0)
        return "-";
    if (max > 0) {
        /* stop before the (max+1)th character so as never to split one */
        for (i = 0, w = 0; i < len; i++) {
            if (((unsigned char)s[i] & 0xc0) != 0x80 && w++ == max)
                break;
        }
        len = i;
    }
    return clean(c, s, len);
}

/* Like text_of, but fallback (given on the command line, so safe to print)
 * when the answer lacks the member. */
static const char *text_or(cli_t *c, const pt_json_t *obj, const char *key, const char *fallback)
{
    const char *s = text_of(c, obj, key, 0);
    return strcmp(s, "-") == 0 && fallback != NULL ? fallback : s;
}

static int unexpected(cli_t *c, const char *why)
{
    say("unexpected answer from %s: %s", c->server, why);
    return CLI_EXIT_REFUSED;
}

/* Prints the rows of the answer's "items" under a header row, each column
 * as wide as its widest cell. Returns the exit code. */
static int print_table(cli_t *c, const column_t *cols, size_t ncols)
{
    const pt_json_t *items = pt_json_get(c->doc, "items");
    size_t width[CLI_MAX_COLS] = {0};
    const char **cells;
    size_t nrows, i, j;

    if (items == NULL || items->type != PT_JSON_ARRAY)
        return unexpected(c, "no \"items\" list");
    nrows = items->u.arr.n + 1;
    if ((cells = pt_arena_alloc(&c->a, nrows * ncols * sizeof(*cells))) == NULL)
        return out_of_memory();
    for (i = 0; i < nrows; i++) {
        for (j = 0; j < ncols; j++) {
            const char *s = i == 0
                                ? cols[j].title
                                : text_of(c, items->u.arr.items[i - 1], cols[j].key, cols[j].max);
            size_t w = width_of(s);
            cells[i * ncols + j] = s;
            width[j] = PT_MAX(width[j], w);
        }
    }
    for (i = 0; i < nrows; i++) {
        for (j = 0; j < ncols; j++) {
            const char *s = cells[i * ncols + j];
            fputs(s, stdout);
            if (j + 1 < ncols)
                printf("%*s", (int)(width[j] - width_of(s) + 3), "");
        }
        putchar('\n');
    }
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------- local inputs */

/* Reads all of path ("-": stdin) into b (whose limit caps it). Returns 0, or
 * -1 with the reason in err. */
static int read_all(const char *path, pt_buf_t *b, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char chunk[16384];
    size_t n;
    int rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        int r = pt_buf_append(b, chunk, n);
        if (r != PT_OK) {
            snprintf(err, errlen, "%s: %s", path, r == PT_ELIMIT ? "too large" : "out of memory");
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        rc = -1;
    }
    if (f != stdin)
        fclose(f);
    return rc;
}

/* Sets c->token from --token-file (trailing whitespace trimmed), else from
 * $PORTICO_TOKEN. A token must be visible ASCII: it goes into a header line.
 * Returns 0 or the exit code (the token is never part of a message). */
static int load_token(cli_t *c)
{
    const char *env = getenv("PORTICO_TOKEN"), *from;
    char err[512];
    pt_buf_t b;
    size_t i;

    pt_buf_init(&b, CLI_MAX_TOKEN);
    if (c->token_file != NULL) {
        from = c->token_file;
        if (read_all(c->token_file, &b, err, sizeof(err)) != 0) {
            pt_buf_free(&b);
            say("%s (--token-file)", err);
            return CLI_EXIT_UNREACHABLE;
        }
        while (b.len > 0 && strchr(" \t\r\n\v\f", b.data[b.len - 1]) != NULL)
            b.len--;
    } else if (env != NULL && env[0] != '\0') {
        from = "PORTICO_TOKEN";
        if (pt_buf_append_str(&b, env) != PT_OK) {
            pt_buf_free(&b);
            say("PORTICO_TOKEN is too long");
            return CLI_EXIT_UNREACHABLE;
        }
    } else {
        say("no admin token: set PORTICO_TOKEN or use --token-file FILE");
        return CLI_EXIT_UNREACHABLE;
    }
    for (i = 0; i < b.len && b.data[i] > 0x20 && b.data[i] < 0x7f; i++)
        ;
    if (b.len == 0 || i < b.len) {
        pt_buf_free(&b);
        say("%s holds no valid token (empty, or with spaces or control characters)", from);
        return CLI_EXIT_UNREACHABLE;
    }
    c->token = strndup(b.data, b.len);
    pt_buf_free(&b);
    return c->token != NULL ? 0 : out_of_memory();
}

/* A revision given on the command line: a positive integer without leading
 * zeros, short enough for any JSON reader (so that it can go into a body as
 * written). */
static int revision_ok(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return s[0] >= '1' && s[0] <= '9' && s[n] == '\0' && n <= 15;
}

/* ------------------------------------------------------------------ HTTP */

/* Appends s percent-encoded (all but ALPHA DIGIT - . _ ~) to u: an API or
 * environment name stays one path segment or one query value, whatever it
 * holds. */
static int append_escaped(cli_t *c, pt_buf_t *u, const char *s)
{
    char *e = curl_easy_escape(c->curl, s, (int)strlen(s));
    int rc;
    if (e == NULL)
        return PT_ENOMEM;
    rc = pt_buf_append_str(u, e);
    curl_free(e);
    return rc;
}

/* Appends the server's URL and path to u, each "{}" of path replaced by the
 * next argument percent-encoded. Returns PT_OK or PT_ENOMEM. */
static int build_url(cli_t *c, pt_buf_t *u, const char *path, ...)
{
    va_list ap;
    const char *p;
    int rc = pt_buf_append_str(u, c->server);

    va_start(ap, path);
    for (p = path; rc == PT_OK && *p != '\0'; p++) {
        if (p[0] == '{' && p[1] == '}') {
            rc = append_escaped(c, u, va_arg(ap, const char *));
            p++;
        } else {
            rc = pt_buf_append_char(u, *p);
        }
    }
    va_end(ap);
    return rc;
}

/* Appends query parameter key=value (value percent-encoded) to URL u, after
 * '?' or '&'. Nothing when value is NULL. Returns PT_OK or PT_ENOMEM. */
static int add_query(cli_t *c, pt_buf_t *u, const char *key, const char *value)
{
    if (value == NULL)
        return PT_OK;
    if (pt_buf_append_char(u, memchr(u->data, '?', u->len) ? '&' : '?') != PT_OK ||
        pt_buf_append_str(u, key) != PT_OK || pt_buf_append_char(u, '=') != PT_OK)
        return PT_ENOMEM;
    return append_escaped(c, u, value);
}

/* Appends "key":value to the JSON object written in b (its "{" already
 * there); value is escaped as a string unless number (checked by
 * revision_ok). Nothing when value is NULL. Returns PT_OK or PT_ENOMEM. */
static int body_add(pt_buf_t *b, const char *key, const char *value, int number)
{
    if (value == NULL)
        return PT_OK;
    if ((b->len > 1 && pt_buf_append_char(b, ',') != PT_OK) ||
        pt_buf_printf(b, "\"%s\":", key) != PT_OK)
        return PT_ENOMEM;
    if (number)
        return pt_buf_append_str(b, value);
    if (pt_buf_append_char(b, '"') != PT_OK ||
        pt_buf_append_json_str(b, value, strlen(value)) != PT_OK)
        return PT_ENOMEM;
    return pt_buf_append_char(b, '"');
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    pt_buf_t *b = arg;
    /* the buffer's limit stops a runaway answer: a short count aborts */
    return pt_buf_append(b, p, size * n) == PT_OK ? size * n : 0;
}

/* The reason phrase of the statuses the admin API uses, for an error
 * answer that is not a problem document (a proxy's page, another server). */
static const char *reason(long status)
{
    switch (status) {
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "HTTP error";
    }
}

/* Says why the server refused: "<status> <title>: <detail>", then each
 * entry of the problem's "errors" on its own line (compiler style
 * "file:line: ..." lines, left unindented for editors). Returns 3 for a 401
 * (the token), else 1. */
static int refused(cli_t *c)
{
    pt_json_error_t jerr;
    const pt_json_t *doc, *errors, *title, *detail;
    size_t i;

    doc = pt_json_parse(&c->a, c->answer.data ? c->answer.data : "", c->answer.len, NULL, &jerr);
    title = pt_json_get(doc, "title");
    detail = pt_json_get(doc, "detail");
    fprintf(stderr, "portico: %ld %s", c->status,
            title != NULL && title->type == PT_JSON_STRING && title->u.str.len > 0
                ? text_of(c, doc, "title", 0)
                : reason(c->status));
    if (detail != NULL && detail->type == PT_JSON_STRING && detail->u.str.len > 0)
        fprintf(stderr, ": %s", text_of(c, doc, "detail", 0));
    fputc('\n', stderr);
    errors = pt_json_get(doc, "errors");
    for (i = 0; errors != NULL && errors->type == PT_JSON_ARRAY && i < errors->u.arr.n; i++) {
        const pt_json_t *e = errors->u.arr.items[i];
        if (e->type == PT_JSON_STRING)
            fprintf(stderr, "%s\n", clean(c, e->u.str.p, e->u.str.len));
    }
    if (c->status == 401) {
        say("the token was refused: check PORTICO_TOKEN or --token-file");
        return CLI_EXIT_UNREACHABLE;
    }
    return CLI_EXIT_REFUSED;
}

/* Performs the request; sets c->status and c->answer. Returns 0, or the
 * exit code when no complete answer came (after saying why). */
static int perform(cli_t *c, const char *method, const char *url, const char *ctype,
                   const pt_buf_t *body)
{
    struct curl_slist *hl = NULL, *n;
    char errbuf[CURL_ERROR_SIZE] = "";
    pt_buf_t line;
    CURLcode cc;
    int rc = 0;

    pt_buf_init(&line, 0);
    if (pt_buf_printf(&line, "Authorization: Bearer %s", c->token) != PT_OK ||
        (n = curl_slist_append(hl, line.data)) == NULL)
        goto oom;
    hl = n;
    if ((n = curl_slist_append(hl, "Accept: application/json")) == NULL)
        goto oom;
    hl = n;
    /* no "Expect: 100-continue" wait before a large definition */
    if ((n = curl_slist_append(hl, "Expect:")) == NULL)
        goto oom;
    hl = n;
    if (body != NULL) {
        pt_buf_reset(&line);
        if (pt_buf_printf(&line, "Content-Type: %s", ctype) != PT_OK ||
            (n = curl_slist_append(hl, line.data)) == NULL)
            goto oom;
        hl = n;
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body->data ? body->data : "");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_DEFAULT_PROTOCOL, "http");
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    /* a redirect would be another server's answer to a command meant for this one */
    curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, CLI_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, CLI_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "portico-cli/" PT_VERSION);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->answer);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
    cc = curl_easy_perform(c->curl);
    if (cc == CURLE_WRITE_ERROR) {
        say("the answer from %s is larger than %u MiB", c->server, CLI_MAX_ANSWER >> 20);
        rc = CLI_EXIT_UNREACHABLE;
    } else if (cc != CURLE_OK) {
        say("cannot reach %s: %s", c->server, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = CLI_EXIT_UNREACHABLE;
    } else {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
    }
    goto done;
oom:
    rc = out_of_memory();
done:
    /* the handle must not keep pointers to what goes now */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hl);
    pt_buf_free(&line);
    return rc;
}

/* Sends one request to the admin API (url: a string being built in a
 * pt_buf, NUL-terminated here; body NULL for none) and deals with every
 * outcome but success. Returns 0 when the server answered 2xx: the answer
 * is then parsed in c->doc, or with --json printed as is (c->doc NULL).
 * Otherwise returns the exit code after saying why on stderr. */
static int call(cli_t *c, const char *method, pt_buf_t *url, const char *ctype,
                const pt_buf_t *body)
{
    pt_json_error_t jerr;
    int rc;

    if (c->token == NULL && (rc = load_token(c)) != 0)
        return rc;
    if (pt_buf_append_char(url, '\0') != PT_OK)
        return out_of_memory();
    if ((rc = perform(c, method, url->data, ctype, body)) != 0)
        return rc;
    if (c->status < 200 || c->status > 299)
        return refused(c);
    if (c->json) {
        fwrite(c->answer.data ? c->answer.data : "", 1, c->answer.len, stdout);
        if (c->answer.len == 0 || c->answer.data[c->answer.len - 1] != '\n')
            putchar('\n');
        return 0;
    }
    c->doc = pt_json_parse(&c->a, c->answer.data ? c->answer.data : "", c->answer.len, NULL, &jerr);
    if (c->doc == NULL) {
        say("unexpected answer from %s (status %ld): not JSON: %s at line %u, column %u", c->server,
            c->status, jerr.message, jerr.line, jerr.column);
        return CLI_EXIT_REFUSED;
    }
    if (c->doc->type != PT_JSON_OBJECT)
        return unexpected(c, "not a JSON object");
    return 0;
}

/* -------------------------------------------------------------- commands */

static int cmd_api_push(cli_t *c)
{
    pt_buf_t file, url;
    const pt_json_t *created;
    char err[512];
    int rc;

    pt_buf_init(&file, CLI_MAX_FILE);
    pt_buf_init(&url, 0);
    if (read_all(c->args[0], &file, err, sizeof(err)) != 0) {
        rc = usage_error(c, "%s", err);
        goto done;
    }
    if (build_url(c, &url, "/admin/apis") != PT_OK ||
        add_query(c, &url, "label", c->label) != PT_OK ||
        add_query(c, &url, "notes", c->notes) != PT_OK) {
        rc = out_of_memory();
        goto done;
    }
    if ((rc = call(c, "POST", &url, "application/yaml", &file)) != 0 || c->json)
        goto done;
    created = pt_json_get(c->doc, "created");
    if (created != NULL ? created->type == PT_JSON_TRUE : c->status == 201)
        printf("%s: revision %s created (hash %s)\n", text_of(c, c->doc, "api", 0),
               text_of(c, c->doc, "revision", 0), text_of(c, c->doc, "hash", CLI_HASH_SHOWN));
    else
        printf("%s: unchanged, identical to revision %s\n", text_of(c, c->doc, "api", 0),
               text_of(c, c->doc, "revision", 0));
done:
    pt_buf_free(&file);
    pt_buf_free(&url);
    return rc;
}

/* GET path (its "{}" taking arg) and show the answer's items as a table. */
static int list(cli_t *c, const char *path, const char *arg, const char *query_key,
                const char *query_value, const column_t *cols, size_t ncols)
{
    pt_buf_t url;
    int rc;

    pt_buf_init(&url, 0);
    if (build_url(c, &url, path, arg) != PT_OK ||
        add_query(c, &url, query_key, query_value) != PT_OK)
        rc = out_of_memory();
    else if ((rc = call(c, "GET", &url, NULL, NULL)) == 0 && !c->json)
        rc = print_table(c, cols, ncols);
    pt_buf_free(&url);
    return rc;
}

static int cmd_api_list(cli_t *c)
{
    static const column_t cols[] = {{"NAME", "name", 0},
                                    {"REVISION", "latest_revision", 0},
                                    {"BASE PATH", "base_path", 0},
                                    {"KIND", "kind", 0},
                                    {"UPDATED", "updated_at", 0}};
    return list(c, "/admin/apis", NULL, NULL, NULL, cols, PT_ARRAY_SIZE(cols));
}

static int cmd_api_revisions(cli_t *c)
{
    static const column_t cols[] = {{"REVISION", "revision", 0},  {"HASH", "hash", CLI_HASH_SHOWN},
                                    {"LABEL", "label", 0},        {"AUTHOR", "author", 0},
                                    {"CREATED", "created_at", 0}, {"NOTES", "notes", 0}};
    return list(c, "/admin/apis/{}/revisions", c->args[0], NULL, NULL, cols, PT_ARRAY_SIZE(cols));
}

static int cmd_api_diff(cli_t *c)
{
    const pt_json_t *diff;
    pt_buf_t url;
    int rc;

    if (!revision_ok(c->args[1]) || !revision_ok(c->args[2]))
        return usage_error(c, "revisions are positive integers: \"%s\", \"%s\"", c->args[1],
                           c->args[2]);
    pt_buf_init(&url, 0);
    if (build_url(c, &url, "/admin/apis/{}/diff", c->args[0]) != PT_OK ||
        add_query(c, &url, "from", c->args[1]) != PT_OK ||
        add_query(c, &url, "to", c->args[2]) != PT_OK) {
        rc = out_of_memory();
    } else if ((rc = call(c, "GET", &url, NULL, NULL)) == 0 && !c->json) {
        diff = pt_json_get(c->doc, "diff");
        if (diff == NULL || diff->type != PT_JSON_STRING) {
            rc = unexpected(c, "no \"diff\" text");
        } else if (diff->u.str.len > 0) {
            /* the user's own YAML, shown as is (like git diff) */
            fwrite(diff->u.str.p, 1, diff->u.str.len, stdout);
            if (diff->u.str.p[diff->u.str.len - 1] != '\n')
                putchar('\n');
        }
    }
    pt_buf_free(&url);
    return rc;
}

typedef enum change_e { CHANGE_DEPLOY, CHANGE_ROLLBACK, CHANGE_UNDEPLOY } change_t;

/* POSTs body (a JSON object) or, with body NULL, DELETEs the URL built from
 * path and up to two names; on success says what became of the deployment
 * answered. Returns the exit code. */
static int change(cli_t *c, change_t what, const char *path, const char *a1, const char *a2,
                  pt_buf_t *body)
{
    const char *api, *rev, *env, *id;
    pt_buf_t url;
    int rc;

    pt_buf_init(&url, 0);
    if (build_url(c, &url, path, a1, a2) != PT_OK)
        rc = out_of_memory();
    else
        rc = call(c, body != NULL ? "POST" : "DELETE", &url, "application/json", body);
    pt_buf_free(&url);
    if (rc != 0 || c->json)
        return rc;
    api = text_or(c, c->doc, "api", c->args[0]);
    rev = text_of(c, c->doc, "revision", 0);
    env = text_or(c, c->doc, "environment", c->env);
    id = text_of(c, c->doc, "id", 0);
    if (what == CHANGE_DEPLOY)
        printf("%s revision %s deployed to %s (deployment %s)\n", api, rev, env, id);
    else if (what == CHANGE_ROLLBACK)
        printf("%s rolled back to revision %s in %s (deployment %s)\n", api, rev, env, id);
    else
        printf("%s revision %s undeployed from %s (deployment %s)\n", api, rev, env, id);
    return 0;
}

static int cmd_deploy(cli_t *c)
{
    pt_buf_t body;
    int rc;

    if (c->revision != NULL && !revision_ok(c->revision))
        return usage_error(c, "--revision takes a positive integer, not \"%s\"", c->revision);
    pt_buf_init(&body, 0);
    if (pt_buf_append_char(&body, '{') != PT_OK || body_add(&body, "api", c->args[0], 0) ||
        body_add(&body, "revision", c->revision, 1) || body_add(&body, "notes", c->notes, 0) ||
        pt_buf_append_char(&body, '}') != PT_OK)
        rc = out_of_memory();
    else
        rc = change(c, CHANGE_DEPLOY, "/admin/environments/{}/deployments", c->env, NULL, &body);
    pt_buf_free(&body);
    return rc;
}

static int cmd_rollback(cli_t *c)
{
    pt_buf_t body;
    int rc;

    if (c->to != NULL && !revision_ok(c->to))
        return usage_error(c, "--to takes a positive integer, not \"%s\"", c->to);
    pt_buf_init(&body, 0);
    if (pt_buf_append_char(&body, '{') != PT_OK || body_add(&body, "to", c->to, 1) ||
        body_add(&body, "notes", c->notes, 0) || pt_buf_append_char(&body, '}') != PT_OK)
        rc = out_of_memory();
    else
        rc = change(c, CHANGE_ROLLBACK, "/admin/environments/{}/apis/{}/rollback", c->env,
                    c->args[0], &body);
    pt_buf_free(&body);
    return rc;
}

static int cmd_undeploy(cli_t *c)
{
    return change(c, CHANGE_UNDEPLOY, "/admin/environments/{}/apis/{}", c->env, c->args[0], NULL);
}

static int cmd_env_create(cli_t *c)
{
    pt_buf_t body, url;
    int rc;

    pt_buf_init(&body, 0);
    pt_buf_init(&url, 0);
    if (pt_buf_append_char(&body, '{') != PT_OK || body_add(&body, "name", c->args[0], 0) ||
        pt_buf_append_char(&body, '}') != PT_OK ||
        build_url(c, &url, "/admin/environments") != PT_OK)
        rc = out_of_memory();
    else if ((rc = call(c, "POST", &url, "application/json", &body)) == 0 && !c->json)
        printf("environment %s created\n", text_or(c, c->doc, "name", c->args[0]));
    pt_buf_free(&body);
    pt_buf_free(&url);
    return rc;
}

static int cmd_env_list(cli_t *c)
{
    static const column_t cols[] = {{"NAME", "name", 0}, {"CREATED", "created_at", 0}};
    return list(c, "/admin/environments", NULL, NULL, NULL, cols, PT_ARRAY_SIZE(cols));
}

static int cmd_deployments(cli_t *c)
{
    static const column_t cols[] = {
        {"ID", "id", 0},         {"API", "api", 0},       {"REVISION", "revision", 0},
        {"STATUS", "status", 0}, {"AUTHOR", "author", 0}, {"CREATED", "created_at", 0},
        {"NOTES", "notes", 0}};
    return list(c, "/admin/environments/{}/deployments", c->env, "api", c->api, cols,
                PT_ARRAY_SIZE(cols));
}

/* ------------------------------------------------------------- users */

/* s as a JSON string, quotes included. */
static int json_str(pt_buf_t *b, const char *s, size_t n)
{
    return pt_buf_append_char(b, '"') != PT_OK || pt_buf_append_json_str(b, s, n) != PT_OK ||
                   pt_buf_append_char(b, '"') != PT_OK
               ? -1
               : 0;
}

/* "a,b" as a JSON list member of body (",k":[...]; "" gives []). */
static int body_list(pt_buf_t *b, const char *key, const char *csv)
{
    const char *p = csv;
    int first = 1;
    if (csv == NULL)
        return 0;
    if ((b->len > 1 && pt_buf_append_char(b, ',') != PT_OK) || json_str(b, key, strlen(key)) != 0 ||
        pt_buf_append(b, ":[", 2) != PT_OK)
        return -1;
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *s = p, *e = p + n;
        while (s < e && *s == ' ')
            s++;
        while (e > s && e[-1] == ' ')
            e--;
        if (e > s) {
            if ((!first && pt_buf_append_char(b, ',') != PT_OK) ||
                json_str(b, s, (size_t)(e - s)) != 0)
                return -1;
            first = 0;
        }
        p += n + (p[n] == ',');
    }
    return pt_buf_append_char(b, ']') != PT_OK ? -1 : 0;
}

/* The password from one line of standard input (never from the command
 * line, where `ps` would show it). */
static int body_password(cli_t *c, pt_buf_t *b)
{
    char pw[1100];
    size_t n;
    int rc;
    if (!(c->given & OPT_PASSWORD))
        return 0;
    if (fgets(pw, sizeof(pw), stdin) == NULL) {
        say("--password-stdin: nothing on standard input");
        return -2;
    }
    n = strcspn(pw, "\r\n");
    pw[n] = '\0';
    rc = (b->len > 1 && pt_buf_append_char(b, ',') != PT_OK) ||
                 pt_buf_append(b, "\"password\":", 11) != PT_OK || json_str(b, pw, n) != 0
             ? -1
             : 0;
    memset(pw, 0, sizeof(pw));
    return rc;
}

static int user_put(cli_t *c, int create)
{
    pt_buf_t body, url;
    int rc, prc;
    pt_buf_init(&body, 0);
    pt_buf_init(&url, 0);
    if (pt_buf_append_char(&body, '{') != PT_OK ||
        (create && body_add(&body, "name", c->args[0], 0)) || body_list(&body, "roles", c->roles) ||
        body_list(&body, "allow_ips", c->ips) || body_list(&body, "apis", c->apis) ||
        body_list(&body, "certificates", c->certs)) {
        rc = out_of_memory();
        goto done;
    }
    if ((prc = body_password(c, &body)) != 0) {
        rc = prc == -2 ? CLI_EXIT_USAGE : out_of_memory();
        goto done;
    }
    if (pt_buf_append_char(&body, '}') != PT_OK ||
        (create ? build_url(c, &url, "/admin/users")
                : build_url(c, &url, "/admin/users/{}", c->args[0])) != PT_OK)
        rc = out_of_memory();
    else if ((rc = call(c, create ? "POST" : "PATCH", &url, "application/json", &body)) == 0 &&
             !c->json)
        printf("user %s %s\n", text_or(c, c->doc, "name", c->args[0]),
               create ? "added" : "changed");
done:
    if (body.data != NULL)
        memset(body.data, 0, body.len); /* a password may be in it */
    pt_buf_free(&body);
    pt_buf_free(&url);
    return rc;
}

static int cmd_user_add(cli_t *c)
{
    return user_put(c, 1);
}

static int cmd_user_set(cli_t *c)
{
    return user_put(c, 0);
}

static int cmd_user_list(cli_t *c)
{
    static const column_t cols[] = {
        {"NAME", "name", 0},           {"ROLES", "roles", 0}, {"PASSWORD", "has_password", 0},
        {"ALLOW IPS", "allow_ips", 0}, {"APIS", "apis", 0},   {"UPDATED", "updated_at", 0}};
    return list(c, "/admin/users", NULL, NULL, NULL, cols, PT_ARRAY_SIZE(cols));
}

/* DELETE of path (its "{}" taking a1, a2). Returns the exit code; 0 when
 * the confirmation is the caller's to print. */
static int delete_call(cli_t *c, const char *path, const char *a1, const char *a2)
{
    pt_buf_t url;
    int rc;
    pt_buf_init(&url, 0);
    if (build_url(c, &url, path, a1, a2) != PT_OK)
        rc = out_of_memory();
    else
        rc = call(c, "DELETE", &url, NULL, NULL);
    pt_buf_free(&url);
    return rc;
}

static int cmd_user_remove(cli_t *c)
{
    int rc = delete_call(c, "/admin/users/{}", c->args[0], NULL);
    if (rc == 0 && !c->json)
        printf("user %s removed\n", c->args[0]);
    return rc;
}

static int cmd_user_key_create(cli_t *c)
{
    pt_buf_t body, url;
    int rc;
    pt_buf_init(&body, 0);
    pt_buf_init(&url, 0);
    if (pt_buf_append_char(&body, '{') != PT_OK || body_add(&body, "label", c->label, 0) ||
        pt_buf_append_char(&body, '}') != PT_OK ||
        build_url(c, &url, "/admin/users/{}/keys", c->args[0]) != PT_OK)
        rc = out_of_memory();
    else if ((rc = call(c, "POST", &url, "application/json", &body)) == 0 && !c->json)
        /* the key on a line of its own (for scripts), then what it is; shown this once */
        printf("%s\nkey %s of user %s: keep it now, it is not shown again\n",
               text_of(c, c->doc, "key", 0), text_of(c, c->doc, "id", 0), c->args[0]);
    pt_buf_free(&body);
    pt_buf_free(&url);
    return rc;
}

static int cmd_user_key_revoke(cli_t *c)
{
    int rc = delete_call(c, "/admin/users/{}/keys/{}", c->args[0], c->args[1]);
    if (rc == 0 && !c->json)
        printf("key %s of user %s revoked\n", c->args[1], c->args[0]);
    return rc;
}

/* ------------------------------------------------------------- executions */

static int cmd_exec_list(cli_t *c)
{
    static const column_t cols[] = {{"ID", "id", 0},
                                    {"API", "api", 0},
                                    {"ROUTE", "route", 0},
                                    {"STATUS", "status", 0},
                                    {"HTTP", "http_status", 0},
                                    {"USER", "user", 0},
                                    {"ENQUEUED (ms)", "enqueued_ms", 0}};
    pt_buf_t url;
    int rc;
    pt_buf_init(&url, 0);
    if (build_url(c, &url, "/admin/executions") != PT_OK ||
        add_query(c, &url, "api", c->api) != PT_OK ||
        add_query(c, &url, "status", c->exec_status) != PT_OK ||
        add_query(c, &url, "user", c->user) != PT_OK)
        rc = out_of_memory();
    else if ((rc = call(c, "GET", &url, NULL, NULL)) == 0 && !c->json)
        rc = print_table(c, cols, PT_ARRAY_SIZE(cols));
    pt_buf_free(&url);
    return rc;
}

static int cmd_exec_show(cli_t *c)
{
    pt_buf_t url;
    int rc;
    pt_buf_init(&url, 0);
    if (build_url(c, &url, "/admin/executions/{}", c->args[0]) != PT_OK) {
        rc = out_of_memory();
    } else if ((rc = call(c, "GET", &url, NULL, NULL)) == 0 && !c->json) {
        static const char *const keys[] = {"id",         "api",      "route",       "process",
                                           "user",       "status",   "http_status", "enqueued_ms",
                                           "started_ms", "ended_ms", "bytes_in",    "bytes_out",
                                           "message"};
        const pt_json_t *dl = pt_json_get(c->doc, "deliveries");
        size_t i;
        for (i = 0; i < PT_ARRAY_SIZE(keys); i++)
            printf("%-12s %s\n", keys[i], text_or(c, c->doc, keys[i], "-"));
        for (i = 0; dl != NULL && dl->type == PT_JSON_ARRAY && i < dl->u.arr.n; i++)
            printf("webhook      %s: %s after %s attempt(s)\n",
                   text_of(c, dl->u.arr.items[i], "url", 0),
                   text_of(c, dl->u.arr.items[i], "state", 0),
                   text_of(c, dl->u.arr.items[i], "attempts", 0));
    }
    pt_buf_free(&url);
    return rc;
}

static int cmd_exec_cancel(cli_t *c)
{
    int rc = delete_call(c, "/admin/executions/{}", c->args[0], NULL);
    if (rc == 0 && !c->json)
        printf("execution %s: cancel requested\n", c->args[0]);
    return rc;
}

static const cmd_t cmds[] = {
    {"api", "push", 1, OPT_LABEL | OPT_NOTES, 0, cmd_api_push,
     "api push FILE [--label L] [--notes N]",
     "push a definition (FILE - reads stdin): a new revision unless identical to the latest"},
    {"api", "list", 0, 0, 0, cmd_api_list, "api list", "the APIs and their latest revisions"},
    {"api", "revisions", 1, 0, 0, cmd_api_revisions, "api revisions NAME",
     "the revisions of an API, newest first"},
    {"api", "diff", 3, 0, 0, cmd_api_diff, "api diff NAME R1 R2",
     "the difference of two revisions (a unified diff)"},
    {"deploy", NULL, 1, OPT_REVISION | OPT_ENV | OPT_NOTES, OPT_ENV, cmd_deploy,
     "deploy NAME [--revision R] --env E [--notes N]",
     "deploy a revision (default: the latest) to an environment"},
    {"rollback", NULL, 1, OPT_ENV | OPT_TO | OPT_NOTES, OPT_ENV, cmd_rollback,
     "rollback NAME --env E [--to R] [--notes N]",
     "deploy again an earlier revision (default: the one deployed before the current one)"},
    {"undeploy", NULL, 1, OPT_ENV, OPT_ENV, cmd_undeploy, "undeploy NAME --env E",
     "stop serving an API in an environment"},
    {"env", "create", 1, 0, 0, cmd_env_create, "env create NAME", "create an environment"},
    {"env", "list", 0, 0, 0, cmd_env_list, "env list", "the environments"},
    {"deployments", NULL, 0, OPT_ENV | OPT_API, OPT_ENV, cmd_deployments,
     "deployments --env E [--api NAME]", "the deployment history of an environment, newest first"},
    {"user", "add", 1, OPT_ROLES | OPT_IPS | OPT_APIS | OPT_CERTS | OPT_PASSWORD, 0, cmd_user_add,
     "user add NAME [--roles R,R] [--password-stdin] [--allow-ips A,A] [--apis N,N] "
     "[--certificates C,C]",
     "add a user to the store (the password is read from stdin, hashed by the node)"},
    {"user", "set", 1, OPT_ROLES | OPT_IPS | OPT_APIS | OPT_CERTS | OPT_PASSWORD, 0, cmd_user_set,
     "user set NAME [--roles R,R] [--password-stdin] [--allow-ips A,A] [--apis N,N] "
     "[--certificates C,C]",
     "change what is given of a stored user (an empty list clears it)"},
    {"user", "list", 0, 0, 0, cmd_user_list, "user list", "the users in the store"},
    {"user", "remove", 1, 0, 0, cmd_user_remove, "user remove NAME", "remove a user and its keys"},
    {"user", "key create", 1, OPT_LABEL, 0, cmd_user_key_create, "user key create NAME [--label L]",
     "a new API key for a user, printed this once (the store keeps its SHA-256)"},
    {"user", "key revoke", 2, 0, 0, cmd_user_key_revoke, "user key revoke NAME ID",
     "revoke a key: refused from the next request on"},
    {"executions", "list", 0, OPT_API | OPT_STATUS | OPT_USER, 0, cmd_exec_list,
     "executions list [--api NAME] [--status S] [--user U]",
     "the executions kept in the store, newest first"},
    {"executions", "show", 1, 0, 0, cmd_exec_show, "executions show ID",
     "one execution and its webhook deliveries"},
    {"executions", "cancel", 1, 0, 0, cmd_exec_cancel, "executions cancel ID",
     "stop a queued or running execution of the node"},
};
static const size_t ncmds = PT_ARRAY_SIZE(cmds);

/* Prints the synopsis of every command; full adds what each does, the
 * options and the exit codes (--help). */
static void usage(FILE *f, int full)
{
    size_t i;
    fputs("Usage:\n", f);
    for (i = 0; i < ncmds; i++) {
        fprintf(f, "  portico %s\n", cmds[i].synopsis);
        if (full)
            fprintf(f, "      %s\n", cmds[i].summary);
    }
    if (!full) {
        fputs("Options: --server URL, --token-file FILE, --json, --help\n", f);
        return;
    }
    fputs("Options (anywhere after the command):\n"
          "  --server URL       the node's admin listener (default: $PORTICO_SERVER, else\n"
          "                     " CLI_DEFAULT_SERVER ")\n"
          "  --token-file FILE  read the admin token from FILE (default: $PORTICO_TOKEN)\n"
          "  --json             print the server's JSON answer instead of a table\n"
          "  --help             print this help\n"
          "Exit codes: 0 done (also an unchanged push), 1 the server refused, 2 usage error,\n"
          "3 the server cannot be reached or the token is missing or refused.\n",
          f);
}

/* ----------------------------------------------------------- command line */

static const char *opt_name(unsigned bit)
{
    switch (bit) {
    case OPT_LABEL:
        return "--label";
    case OPT_NOTES:
        return "--notes";
    case OPT_REVISION:
        return "--revision";
    case OPT_ENV:
        return "--env";
    case OPT_TO:
        return "--to";
    case OPT_ROLES:
        return "--roles";
    case OPT_IPS:
        return "--allow-ips";
    case OPT_APIS:
        return "--apis";
    case OPT_CERTS:
        return "--certificates";
    case OPT_PASSWORD:
        return "--password-stdin";
    case OPT_STATUS:
        return "--status";
    case OPT_USER:
        return "--user";
    default:
        return "--api";
    }
}

/* The words of a command's sub ("key create": 2). */
static size_t sub_words(const char *sub)
{
    size_t n = 0;
    if (sub == NULL)
        return 0;
    for (n = 1; *sub; sub++)
        n += *sub == ' ';
    return n;
}

/* Do the first words of c match sub ("push", or "key create")? */
static int sub_match(const cli_t *c, const char *sub)
{
    size_t i, n = sub_words(sub), len;
    if (c->nwords < n)
        return 0;
    for (i = 0; i < n; i++) {
        len = strcspn(sub, " ");
        if (strlen(c->words[i]) != len || strncmp(c->words[i], sub, len) != 0)
            return 0;
        sub += len + (sub[len] == ' ');
    }
    return 1;
}

/* Sets c->cmd to the command of argv[0] and its first words, if any. */
static void lookup(cli_t *c, const char *word)
{
    size_t i;
    for (i = 0; i < ncmds && c->cmd == NULL; i++) {
        if (strcmp(cmds[i].word, word) == 0 && (cmds[i].sub == NULL || sub_match(c, cmds[i].sub)))
            c->cmd = &cmds[i];
    }
}

/* Checks the words and options against the command of argv[0] (word).
 * Returns 0 or the usage exit code (said). */
static int check(cli_t *c, const char *word)
{
    size_t i, skip;
    unsigned bit;

    if (c->cmd == NULL) {
        for (i = 0; i < ncmds && strcmp(cmds[i].word, word) != 0; i++)
            ;
        if (i == ncmds)
            return usage_error(c, "unknown command \"%s\"", word);
        if (c->nwords == 0)
            return usage_error(c, "%s needs a command", word);
        return usage_error(c, "unknown command \"%s %s\"", word, c->words[0]);
    }
    skip = sub_words(c->cmd->sub);
    c->args = c->words + skip;
    if (c->nwords - skip < c->cmd->nargs)
        return usage_error(c, "missing argument");
    if (c->nwords - skip > c->cmd->nargs)
        return usage_error(c, "unexpected argument \"%s\"", c->words[skip + c->cmd->nargs]);
    for (i = 0; i < c->cmd->nargs; i++) {
        if (c->args[i][0] == '\0')
            return usage_error(c, "empty argument");
    }
    for (bit = 1; bit <= OPT_LAST; bit <<= 1) {
        if ((c->given & bit) && !(c->cmd->opts & bit))
            return usage_error(c, "%s does not apply to this command", opt_name(bit));
        if ((c->cmd->required & bit) && !(c->given & bit))
            return usage_error(c, "%s is required", opt_name(bit));
    }
    if (c->env != NULL && c->env[0] == '\0')
        return usage_error(c, "--env needs a name");
    if (c->api != NULL && c->api[0] == '\0')
        return usage_error(c, "--api needs a name");
    return 0;
}

/* Reads the options (anywhere) and the words into c; the first mistake
 * goes to err (empty when none). Returns 1 when --help was seen (anywhere:
 * it wins over mistakes), else 0. */
static int parse(cli_t *c, int argc, char **argv, char *err, size_t errlen)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},   {"token-file", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {"label", required_argument, NULL, 'l'},    {"notes", required_argument, NULL, 'n'},
        {"revision", required_argument, NULL, 'r'}, {"env", required_argument, NULL, 'e'},
        {"to", required_argument, NULL, 't'},       {"api", required_argument, NULL, 'a'},
        {"roles", required_argument, NULL, 'R'},    {"allow-ips", required_argument, NULL, 'I'},
        {"apis", required_argument, NULL, 'A'},     {"certificates", required_argument, NULL, 'C'},
        {"password-stdin", no_argument, NULL, 'P'}, {"status", required_argument, NULL, 'S'},
        {"user", required_argument, NULL, 'U'},     {NULL, 0, NULL, 0}};
    int ch, help = 0;

    /* 0 makes glibc start afresh; "-" returns words in place (code 1), so
     * they keep their order whatever POSIXLY_CORRECT says */
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 1:
            if (c->nwords == CLI_MAX_ARGS) {
                if (!err[0])
                    snprintf(err, errlen, "too many arguments");
                break;
            }
            c->words[c->nwords++] = optarg;
            break;
        case 's':
            c->server_opt = optarg;
            break;
        case 'k':
            c->token_file = optarg;
            break;
        case 'j':
            c->json = 1;
            break;
        case 'h':
            help = 1;
            break;
        case 'l':
            c->label = optarg;
            c->given |= OPT_LABEL;
            break;
        case 'n':
            c->notes = optarg;
            c->given |= OPT_NOTES;
            break;
        case 'r':
            c->revision = optarg;
            c->given |= OPT_REVISION;
            break;
        case 'e':
            c->env = optarg;
            c->given |= OPT_ENV;
            break;
        case 't':
            c->to = optarg;
            c->given |= OPT_TO;
            break;
        case 'a':
            c->api = optarg;
            c->given |= OPT_API;
            break;
        case 'R':
            c->roles = optarg;
            c->given |= OPT_ROLES;
            break;
        case 'I':
            c->ips = optarg;
            c->given |= OPT_IPS;
            break;
        case 'A':
            c->apis = optarg;
            c->given |= OPT_APIS;
            break;
        case 'C':
            c->certs = optarg;
            c->given |= OPT_CERTS;
            break;
        case 'P':
            c->given |= OPT_PASSWORD;
            break;
        case 'S':
            c->exec_status = optarg;
            c->given |= OPT_STATUS;
            break;
        case 'U':
            c->user = optarg;
            c->given |= OPT_USER;
            break;
        case ':':
            if (!err[0])
                snprintf(err, errlen, "%s needs a value", argv[optind - 1]);
            break;
        default:
            if (!err[0])
                snprintf(err, errlen, "unknown option \"%s\"", argv[optind - 1]);
            break;
        }
    }
    /* after "--" getopt stops: what is left are words */
    for (; optind < argc; optind++) {
        if (c->nwords == CLI_MAX_ARGS) {
            if (!err[0])
                snprintf(err, errlen, "too many arguments");
            break;
        }
        c->words[c->nwords++] = argv[optind];
    }
    return help;
}

/* Sets c->server from --server, $PORTICO_SERVER or the default, without
 * trailing slashes (the paths bring theirs). Returns 0 or an exit code. */
static int pick_server(cli_t *c)
{
    const char *env = getenv("PORTICO_SERVER");
    const char *s = c->server_opt != NULL           ? c->server_opt
                    : env != NULL && env[0] != '\0' ? env
                                                    : CLI_DEFAULT_SERVER;
    size_t len = strlen(s);

    while (len > 0 && s[len - 1] == '/')
        len--;
    if (len == 0)
        return usage_error(c, "--server needs a URL");
    if ((c->server = strndup(s, len)) == NULL)
        return out_of_memory();
    return 0;
}

int pt_cli_main(int argc, char **argv)
{
    char err[256] = "";
    cli_t c;
    int rc;

    memset(&c, 0, sizeof(c));
    pt_arena_init(&c.a, NULL);
    pt_buf_init(&c.answer, CLI_MAX_ANSWER);
    if (argc < 1)
        return usage_error(NULL, "no command");
    if (parse(&c, argc, argv, err, sizeof(err))) {
        usage(stdout, 1);
        rc = CLI_EXIT_OK;
        goto done;
    }
    /* known first, the command's synopsis goes with a mistake in its options */
    lookup(&c, argv[0]);
    if (err[0]) {
        rc = usage_error(&c, "%s", err);
        goto done;
    }
    if ((rc = check(&c, argv[0])) != 0 || (rc = pick_server(&c)) != 0)
        goto done;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        say("cannot initialise libcurl");
        rc = CLI_EXIT_UNREACHABLE;
        goto done;
    }
    if ((c.curl = curl_easy_init()) == NULL)
        rc = out_of_memory();
    else
        rc = c.cmd->run(&c);
    if (c.curl != NULL)
        curl_easy_cleanup(c.curl);
    curl_global_cleanup();
done:
    fflush(stdout);
    free(c.token);
    free(c.server);
    pt_buf_free(&c.answer);
    pt_arena_destroy(&c.a);
    return rc;
}
