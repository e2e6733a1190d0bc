/*
 * http.c - outbound HTTP calls of `http` steps (see http.h).
 */
#include "connector/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/xml.h"

typedef struct recv_s {
    pt_buf_t body;
    uint64_t max;
    int over;
    pt_arena_t *a;
    pt_json_t *headers;
    char *ctype;
} recv_t;

static _Thread_local CURL *thread_curl; /* one per pool thread: its connections are reused */

int pt_http_client_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void pt_http_client_cleanup(void)
{
    curl_global_cleanup();
}

void pt_http_thread_cleanup(void)
{
    if (thread_curl != NULL) {
        curl_easy_cleanup(thread_curl);
        thread_curl = NULL;
    }
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    recv_t *rv = arg;
    size_t len = size * n;
    if (rv->body.len + len > rv->max) {
        rv->over = 1;
        return 0; /* aborts the transfer */
    }
    return pt_buf_append(&rv->body, p, len) == PT_OK ? len : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    recv_t *rv = arg;
    size_t len = size * n, k, vs, ve;
    char *name;
    pt_json_t *v;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue): its own headers */
        rv->headers = pt_json_object(rv->a);
        rv->ctype = NULL;
        return rv->headers != NULL ? len : 0;
    }
    for (k = 0; k < len && p[k] != ':'; k++)
        ;
    if (k == 0 || k == len || rv->headers == NULL)
        return len;
    for (vs = k + 1; vs < len && (p[vs] == ' ' || p[vs] == '\t'); vs++)
        ;
    for (ve = len; ve > vs && (p[ve - 1] == '\r' || p[ve - 1] == '\n' || p[ve - 1] == ' '); ve--)
        ;
    if ((name = pt_arena_strndup(rv->a, p, k)) == NULL ||
        (v = pt_json_string(rv->a, p + vs, ve - vs)) == NULL)
        return 0;
    for (k = 0; name[k] != '\0'; k++)
        if (name[k] >= 'A' && name[k] <= 'Z')
            name[k] = (char)(name[k] + 32);
    if (strcmp(name, "content-type") == 0)
        rv->ctype = (char *)v->u.str.p;
    /* a repeated header: the values joined as HTTP allows */
    {
        pt_json_t *prev = pt_json_get(rv->headers, name);
        if (prev != NULL && prev->type == PT_JSON_STRING) {
            char *j = pt_arena_printf(rv->a, "%s, %s", prev->u.str.p, v->u.str.p);
            if (j == NULL || (v = pt_json_string(rv->a, j, strlen(j))) == NULL)
                return 0;
        }
    }
    return pt_json_object_set(rv->a, rv->headers, name, strlen(name), v) == PT_OK ? len : 0;
}

static int is_xml_type(const char *ct)
{
    size_t n;
    if (ct == NULL)
        return 0;
    n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return (n == 15 && strncasecmp(ct, "application/xml", 15) == 0) ||
           (n == 8 && strncasecmp(ct, "text/xml", 8) == 0) ||
           (n > 4 && strncasecmp(ct + n - 4, "+xml", 4) == 0);
}

static int is_json_type(const char *ct)
{
    size_t n;
    if (ct == NULL)
        return 0;
    n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

int pt_http_call(const pt_http_call_t *call, pt_arena_t *a, pt_json_t **result, char *err,
                 size_t errlen)
{
    CURL *c = thread_curl;
    struct curl_slist *hl = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    pt_buf_t sent, line;
    recv_t rv;
    CURLcode cc;
    long status = 0;
    size_t i;
    int has_ctype = 0, xml_body = 0, rc = PT_ERROR;
    pt_json_t *body;

    *result = NULL;
    if (c == NULL && (c = thread_curl = curl_easy_init()) == NULL) {
        snprintf(err, errlen, "cannot start an HTTP client");
        return PT_ERROR;
    }
    curl_easy_reset(c); /* keeps the connection cache */
    memset(&rv, 0, sizeof(rv));
    pt_buf_init(&rv.body, 0);
    pt_buf_init(&sent, 0);
    pt_buf_init(&line, 0);
    rv.max = call->max_response;
    rv.a = a;
    rv.headers = pt_json_object(a);
    for (i = 0; i < call->nheaders; i++) {
        struct curl_slist *n;
        line.len = 0;
        if (strcasecmp(call->headers[i].name, "content-type") == 0) {
            has_ctype = 1;
            xml_body = is_xml_type(call->headers[i].value);
        }
        if (pt_buf_printf(&line, "%s: %s", call->headers[i].name, call->headers[i].value) != 0 ||
            pt_buf_append_char(&line, '\0') != 0 || (n = curl_slist_append(hl, line.data)) == NULL)
            goto nomem;
        hl = n;
    }
    if (call->body != NULL) {
        if (call->body->type == PT_JSON_STRING) {
            if (pt_buf_append(&sent, call->body->u.str.p, call->body->u.str.len) != 0)
                goto nomem;
            if (!has_ctype &&
                (hl = curl_slist_append(hl, "Content-Type: text/plain; charset=utf-8")) == NULL)
                goto nomem;
        } else if (xml_body) {
            /* an XML Content-Type: the value written as XML */
            if (pt_xml_write(&sent, call->xml_root ? call->xml_root : "request", call->body) !=
                PT_OK)
                goto nomem;
        } else {
            if (pt_json_write(&sent, call->body) != PT_OK)
                goto nomem;
            if (!has_ctype &&
                (hl = curl_slist_append(hl, "Content-Type: application/json")) == NULL)
                goto nomem;
        }
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, sent.data ? sent.data : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sent.len);
    }
    /* no "Expect: 100-continue" round trip */
    if ((hl = curl_slist_append(hl, "Expect:")) == NULL)
        goto nomem;
    curl_easy_setopt(c, CURLOPT_URL, call->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, call->method);
    if (strcmp(call->method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)call->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)call->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "portico");
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rv);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &rv);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        if (rv.over)
            snprintf(err, errlen, "the response is larger than %llu bytes",
                     (unsigned long long)rv.max);
        else
            snprintf(err, errlen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = cc == CURLE_OPERATION_TIMEDOUT ? PT_AGAIN : PT_ERROR;
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    body = NULL;
    if (rv.body.len > 0 && is_json_type(rv.ctype)) {
        pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
        pt_json_error_t jerr;
        body = pt_json_parse(a, rv.body.data, rv.body.len, &lim, &jerr);
    } else if (rv.body.len > 0 && is_xml_type(rv.ctype)) {
        /* the same tree as an XML request body (DOCTYPEs refused) */
        pt_json_limits_t lim = PT_JSON_LIMITS_DEFAULT;
        pt_json_error_t jerr;
        const char *root, *ns;
        body = pt_xml_parse(a, rv.body.data, rv.body.len, &lim, &root, &ns, &jerr);
    }
    if (body == NULL)
        body = rv.body.len > 0 ? pt_json_string(a, rv.body.data, rv.body.len) : pt_json_null(a);
    if (body == NULL || rv.headers == NULL || (*result = pt_json_object(a)) == NULL ||
        pt_json_object_set(a, *result, "status", 6, pt_json_int(a, status)) != PT_OK ||
        pt_json_object_set(a, *result, "headers", 7, rv.headers) != PT_OK ||
        pt_json_object_set(a, *result, "body", 4, body) != PT_OK)
        goto nomem;
    rc = PT_OK;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
    *result = NULL;
out:
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hl);
    pt_buf_free(&rv.body);
    pt_buf_free(&sent);
    pt_buf_free(&line);
    return rc;
}
