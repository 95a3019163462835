/* SPDX-License-Identifier: MIT */
/*
 * utxoiq-api end to end: the real binary over HTTP (libcurl) against a real
 * database (a fresh SQLite file, or a fresh PostgreSQL database under
 * UC_TEST_DB=postgresql, the *_pg CTest entries) and the in-process memory
 * cache. Every endpoint, every error status, invalidation after each kind of
 * write (read, write, read again shows the new value), ETag / If-None-Match,
 * X-Cache, retention, and a clean exit on SIGTERM.
 */
#include "api_test.h"
#include "assert_uuid.h"
#include "util.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

static uc_test_api_t api;

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static char admin_key[128];
static char user_key[128];
static char user2_key[128];
static char service_key[128];

/* No refills: the miss after a write is what shows its invalidation. */
static const char *const no_refills[] = {
    "UTXOCACHE_REFILL_TOP=0", "CORS_ORIGINS=http://a.example, http://b.example",
    NULL};

static int group_setup(void **state)
{
    (void)state;
    if (uc_test_api_start(&api, NULL, no_refills) != 0) {
        return -1;
    }
    const uc_test_api_user_t users[] = {
        {"root-admin", "admin", admin_key, sizeof(admin_key)},
        {"alice", "user", user_key, sizeof(user_key)},
        {"bob", "user", user2_key, sizeof(user2_key)},
        {"ingestor", "service", service_key, sizeof(service_key)},
    };
    return uc_test_api_keys(&api, users, ARRAY_LEN(users));
}

static int group_teardown(void **state)
{
    (void)state;
    uc_test_api_destroy(&api);
    return 0;
}

/* POSTs a rating and expects 200. */
static void rate(const char *key, const char *insight, int rating)
{
    char body[512];
    api_res_t r;
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":%d}", insight,
        rating);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);
}

/* A request the API must refuse: its status and the field the detail names. */
typedef struct {
    const char *path;
    const char *body; /* NULL: no body */
    int status;
    const char *field;
} refusal_t;

/*
 * Sends each case with method and key (NULL: anonymous) and asserts its
 * status and the field its error detail names; prints the failing case
 * first, since cmocka only reports the line of the assertion.
 */
static void check_refusals(const char *method, const char *key,
                           const refusal_t *cases, size_t n)
{
    api_res_t r;

    for (size_t i = 0; i < n; i++) {
        api_req(&api, &r, method, cases[i].path, key, cases[i].body, NULL);
        if (r.h.status != cases[i].status) {
            fprintf(stderr, "case %zu: %s %s %s\n", i, method, cases[i].path,
                    cases[i].body != NULL ? cases[i].body : "");
        }
        assert_status(&r, cases[i].status);
        assert_detail_names(&r, cases[i].field);
        api_free(&r);
    }
}

/* ---- operations ---------------------------------------------------------- */

static void test_health_ready_metrics(void **state)
{
    api_res_t r;
    (void)state;
    api_req(&api, &r, "GET", "/healthz", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "ok");
    api_free(&r);

    api_req(&api, &r, "GET", "/readyz", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "ready");
    assert_string_equal(jstr(jget(r.j, "database"), "status"), "ok");
    assert_string_equal(jstr(jget(r.j, "cache"), "backend"), "memory");
    api_free(&r);

    api_req(&api, &r, "GET", "/metrics", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_null(r.j);
    assert_non_null(strstr(r.h.content_type, "text/plain"));
    assert_non_null(strstr(r.h.body, "utxoiq_http_requests_total{route="
                                     "\"readyz\",status=\"200\"} "));
    assert_non_null(strstr(r.h.body, "utxoiq_http_request_duration_seconds_"
                                     "bucket{route=\"healthz\",le=\"+Inf\"}"));
    assert_non_null(strstr(
        r.h.body, "utxoiq_cache_hits_total{keyspace=\"feedback_stats\"}"));
    assert_non_null(strstr(r.h.body, "utxoiq_cache_pool_connections"));
    api_free(&r);
}

/* The whole of a file (the server's log), NUL-terminated; NULL on error. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (f == NULL) {
        return NULL;
    }
    do {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap + 65536);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap += 65536;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* Whether a log line names correlation id `id` (text or JSON lines). */
static int logged_with(const char *log, const char *id)
{
    char t[200], j[200];
    snprintf(t, sizeof(t), "correlation_id=%s", id);
    snprintf(j, sizeof(j), "\"correlation_id\":\"%s\"", id);
    return strstr(log, t) != NULL || strstr(log, j) != NULL;
}

/* What the original service's clients and probes relied on at the HTTP
 * level: /health, HEAD, X-Correlation-ID, CORS, WWW-Authenticate. */
/* Inflates a gzip body (a new buffer, NUL-terminated), or fails the test. */
static char *gunzip_body(const char *in, size_t len, size_t *outlen)
{
    z_stream z;
    size_t cap = 4u << 20;
    char *out = malloc(cap + 1);

    assert_non_null(out);
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    *outlen = z.total_out;
    out[*outlen] = '\0';
    inflateEnd(&z);
    return out;
}

/*
 * gzip: a large answer goes compressed to a client that accepts it (its
 * own strong ETag, Vary: Accept-Encoding) and inflates to the bytes a
 * client without gzip gets; a hit (kept compressed in the cache) is sent
 * as stored; If-None-Match matches the encoding it was given for; small
 * answers, "gzip;q=0" and a client that names only other codings get the
 * body as it is; static files go compressed too.
 */
static void test_gzip(void **state)
{
    char body[1400], text[1000], v[128], etag_gz[96], hdr[160];
    api_res_t plain, gz, r;
    size_t n;
    (void)state;

    memset(text, 'x', 900);
    text[900] = '\0';
    fmt(body, sizeof(body),
        "{\"insight_id\":\"gz-1\",\"comment\":\"alice %s\"}", text);
    api_req(&api, &r, "POST", "/api/v1/feedback/comment", user_key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);
    fmt(body, sizeof(body), "{\"insight_id\":\"gz-1\",\"comment\":\"bob %s\"}",
        text);
    api_req(&api, &r, "POST", "/api/v1/feedback/comment", user2_key, body,
            NULL);
    assert_status(&r, 200);
    api_free(&r);

    const char *path = "/api/v1/feedback/comments?insight_id=gz-1";
    api_req(&api, &plain, "GET", path, NULL, NULL, NULL);
    assert_status(&plain, 200);
    assert_non_null(plain.j); /* JSON as it is */
    assert_true(plain.h.len > 1800);
    assert_int_equal(
        uc_test_http_header(&plain.h, "Content-Encoding", v, sizeof(v)), 0);
    assert_int_equal(uc_test_http_header(&plain.h, "Vary", v, sizeof(v)), 1);
    assert_non_null(strstr(v, "Accept-Encoding"));

    for (int round = 0; round < 2; round++) {
        /* the first may fill the entry; the second is a hit */
        api_req(&api, &gz, "GET", path, NULL, NULL, "Accept-Encoding: gzip");
        assert_status(&gz, 200);
        assert_int_equal(
            uc_test_http_header(&gz.h, "Content-Encoding", v, sizeof(v)), 1);
        assert_string_equal(v, "gzip");
        assert_true(gz.h.len < plain.h.len / 4);
        char *inflated = gunzip_body(gz.h.body, gz.h.len, &n);
        assert_int_equal(n, plain.h.len);
        assert_memory_equal(inflated, plain.h.body, n);
        free(inflated);
        assert_int_not_equal(strcmp(gz.h.etag, plain.h.etag), 0);
        assert_non_null(strstr(gz.h.etag, "-gz\""));
        snprintf(etag_gz, sizeof(etag_gz), "%s", gz.h.etag);
        if (round == 1) {
            assert_int_equal(
                uc_test_http_header(&gz.h, "X-Cache", v, sizeof(v)), 1);
            assert_string_equal(v, "HIT");
        }
        api_free(&gz);
    }

    /* Each tag matches its own encoding only. */
    fmt(hdr, sizeof(hdr), "If-None-Match: %s\nAccept-Encoding: gzip", etag_gz);
    api_req(&api, &r, "GET", path, NULL, NULL, hdr);
    assert_status(&r, 304);
    api_free(&r);
    fmt(hdr, sizeof(hdr), "If-None-Match: %s", etag_gz);
    api_req(&api, &r, "GET", path, NULL, NULL, hdr);
    assert_status(&r, 200);
    assert_non_null(r.j);
    api_free(&r);

    static const char *const refused[] = {"Accept-Encoding: gzip;q=0",
                                          "Accept-Encoding: br, deflate",
                                          "Accept-Encoding: *;q=0"};
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        api_req(&api, &r, "GET", path, NULL, NULL, refused[i]);
        assert_status(&r, 200);
        assert_int_equal(
            uc_test_http_header(&r.h, "Content-Encoding", v, sizeof(v)), 0);
        assert_int_equal(r.h.len, plain.h.len);
        api_free(&r);
    }
    api_req(&api, &r, "GET", path, NULL, NULL, "Accept-Encoding: deflate, *");
    assert_int_equal(
        uc_test_http_header(&r.h, "Content-Encoding", v, sizeof(v)), 1);
    api_free(&r);
    api_free(&plain);

    /* Small: as it is. */
    api_req(&api, &r, "GET", "/api/v1/feedback/stats?insight_id=gz-1", NULL,
            NULL, "Accept-Encoding: gzip");
    assert_status(&r, 200);
    assert_non_null(r.j);
    assert_int_equal(
        uc_test_http_header(&r.h, "Content-Encoding", v, sizeof(v)), 0);
    api_free(&r);

    /* A static file, compressed once for the process. */
    api_req(&api, &plain, "GET", "/docs/swagger-ui-bundle.js", NULL, NULL,
            NULL);
    for (int i = 0; i < 2; i++) {
        api_req(&api, &r, "GET", "/docs/swagger-ui-bundle.js", NULL, NULL,
                "Accept-Encoding: gzip");
        assert_status(&r, 200);
        assert_int_equal(
            uc_test_http_header(&r.h, "Content-Encoding", v, sizeof(v)), 1);
        char *inflated = gunzip_body(r.h.body, r.h.len, &n);
        assert_int_equal(n, plain.h.len);
        assert_memory_equal(inflated, plain.h.body, n);
        free(inflated);
        api_free(&r);
    }
    api_free(&plain);
}

/* The requests the router matched to no route, summed over statuses. */
static long unmatched(void)
{
    api_res_t m;
    const char *needle = "utxoiq_http_requests_total{route=\"unmatched\"";
    long sum = 0;

    api_req(&api, &m, "GET", "/metrics", NULL, NULL, NULL);
    assert_status(&m, 200);
    for (const char *p = strstr(m.h.body, needle); p != NULL;
         p = strstr(p + 1, needle)) {
        const char *sp = strchr(p, '}');
        assert_non_null(sp);
        sum += atol(sp + 2);
    }
    api_free(&m);
    return sum;
}

/*
 * /openapi.json as a client gets it: valid OpenAPI 3.1 by a maintained
 * validator (npm's @seriousme/openapi-schema-validator), and every
 * operation it lists reaches a route of the router: after one request to
 * each (no key, no body, a sample value for each path parameter), the
 * router has counted none as unmatched. /docs renders it with files of
 * its own.
 */
static void test_openapi_served(void **state)
{
    api_res_t r;
    char dir[512], file[600], cmd[1400];
    const char *path;
    json_t *item;
    size_t ops = 0;
    (void)state;

    /* Requests no route took, so far (other tests ask for unknown paths;
     * /metrics itself is a route). */
    long unmatched0 = unmatched();
    api_req(&api, &r, "GET", "/openapi.json", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_non_null(r.j);
    assert_string_equal(jstr(r.j, "openapi"), "3.1.0");
    assert_int_equal(uc_test_mkdtemp(dir, sizeof(dir), "openapi"), 0);
    snprintf(file, sizeof(file), "%s/openapi.json", dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(r.h.body, 1, r.h.len, fp), r.h.len);
    assert_int_equal(fclose(fp), 0);
    snprintf(cmd, sizeof(cmd), "node '%s' '%s'", UC_TEST_OPENAPI_VALIDATOR,
             file);
    int st = system(cmd);
    assert_int_equal(st, 0);
    uc_test_rmtree(dir);

    json_object_foreach(json_object_get(r.j, "paths"), path, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            char url[300], upper[8];
            const char *b = strchr(path, '{');
            size_t k = 0;
            for (; method[k] != '\0' && k < sizeof(upper) - 1; k++) {
                upper[k] = (char)(method[k] & ~0x20);
            }
            upper[k] = '\0';
            if (b != NULL) {
                snprintf(url, sizeof(url), "%.*ssample", (int)(b - path), path);
            } else {
                snprintf(url, sizeof(url), "%s", path);
            }
            api_res_t o;
            api_req(&api, &o, upper, url, NULL, NULL, NULL);
            assert_int_not_equal(o.h.status, 405);
            api_free(&o);
            ops++;
        }
    }
    assert_true(ops > 20);
    assert_int_equal(unmatched(), unmatched0);
    api_free(&r);

    api_req(&api, &r, "GET", "/docs", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_non_null(strstr(r.h.body, "/docs/swagger-ui-bundle.js"));
    assert_non_null(strstr(r.h.body, "/docs/docs.js"));
    api_free(&r);
    api_req(&api, &r, "GET", "/docs/docs.js", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_non_null(strstr(r.h.body, "/openapi.json"));
    api_free(&r);
    api_req(&api, &r, "GET", "/docs/swagger-ui-bundle.js", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_true(r.h.len > 100000);
    api_free(&r);
    api_req(&api, &r, "GET", "/docs/no-such-file.js", NULL, NULL, NULL);
    assert_status(&r, 404);
    api_free(&r);
}

static void test_http_conventions(void **state)
{
    api_res_t r;
    char v[256], id[256];
    (void)state;

    api_req(&api, &r, "GET", "/health", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "healthy");
    /* Naive ISO 8601, as Python's datetime.isoformat() wrote it. */
    const char *ts = jstr(r.j, "timestamp");
    assert_int_equal(strlen(ts), 26);
    assert_int_equal(ts[10], 'T');
    assert_null(strchr(ts, 'Z'));
    assert_true(strlen(jstr(r.j, "version")) > 0);
    api_free(&r);

    /* HEAD: the GET's status and headers, no body. */
    rate(user_key, "head-1", 4);
    api_res_t g;
    api_req(&api, &g, "GET", "/api/v1/feedback/stats?insight_id=head-1", NULL,
            NULL, NULL);
    assert_status(&g, 200);
    api_req(&api, &r, "HEAD", "/api/v1/feedback/stats?insight_id=head-1", NULL,
            NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(r.h.len, 0);
    assert_string_equal(r.h.etag, g.h.etag);
    assert_int_equal(uc_test_http_header(&r.h, "Content-Length", v, sizeof(v)),
                     1);
    assert_int_equal(atol(v), (long)g.h.len);
    api_free(&g);
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/feedback/rate", NULL, NULL, NULL);
    assert_status(&r, 405);
    api_free(&r);
    api_req(&api, &r, "DELETE", "/healthz", NULL, NULL, NULL);
    assert_status(&r, 405);
    assert_string_equal(r.h.allow, "GET, HEAD");
    api_free(&r);

    /* X-Correlation-ID: echoed, or made (a UUID) when absent or unusable,
     * and on the request's log line. */
    api_req(&api, &r, "GET", "/healthz", NULL, NULL,
            "X-Correlation-ID: trace-42.a:b_c");
    assert_int_equal(
        uc_test_http_header(&r.h, "X-Correlation-ID", v, sizeof(v)), 1);
    assert_string_equal(v, "trace-42.a:b_c");
    api_free(&r);
    api_req(&api, &r, "GET", "/healthz", NULL, NULL, NULL);
    uc_test_http_header(&r.h, "X-Correlation-ID", id, sizeof(id));
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '4');
    api_free(&r);
    api_req(&api, &r, "GET", "/healthz", NULL, NULL,
            "X-Correlation-ID: no spaces allowed");
    uc_test_http_header(&r.h, "X-Correlation-ID", v, sizeof(v));
    assert_int_equal(strlen(v), 36);
    assert_string_not_equal(v, id);
    api_free(&r);
    char *log = slurp(api.log);
    assert_non_null(log);
    assert_true(logged_with(log, "trace-42.a:b_c"));
    assert_true(logged_with(log, id));
    free(log);

    /* 401 names its scheme. */
    api_req(&api, &r, "GET", "/api/v1/feedback/user", NULL, NULL, NULL);
    assert_status(&r, 401);
    assert_int_equal(
        uc_test_http_header(&r.h, "WWW-Authenticate", v, sizeof(v)), 1);
    assert_string_equal(v, "Bearer");
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/feedback/user", "uiq_wrong", NULL, NULL);
    assert_status(&r, 401);
    assert_int_equal(
        uc_test_http_header(&r.h, "WWW-Authenticate", v, sizeof(v)), 1);
    api_free(&r);

    /* CORS: an allowed origin is echoed with credentials; another gets no
     * grant; a preflight is 200 for an allowed origin, 400 for another. */
    api_req(&api, &r, "GET", "/api/v1/feedback/stats?insight_id=head-1", NULL,
            NULL, "Origin: http://b.example");
    assert_status(&r, 200);
    uc_test_http_header(&r.h, "Access-Control-Allow-Origin", v, sizeof(v));
    assert_string_equal(v, "http://b.example");
    uc_test_http_header(&r.h, "Access-Control-Allow-Credentials", v, sizeof(v));
    assert_string_equal(v, "true");
    uc_test_http_header(&r.h, "Access-Control-Expose-Headers", v, sizeof(v));
    assert_non_null(strstr(v, "X-Correlation-ID"));
    uc_test_http_header(&r.h, "Vary", v, sizeof(v));
    assert_string_equal(v, "Origin");
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/feedback/stats?insight_id=head-1", NULL,
            NULL, "Origin: http://evil.example");
    assert_status(&r, 200);
    assert_int_equal(
        uc_test_http_header(&r.h, "Access-Control-Allow-Origin", v, sizeof(v)),
        0);
    api_free(&r);
    api_req(&api, &r, "OPTIONS", "/api/v1/feedback/rate", NULL, NULL,
            "Origin: http://a.example\n"
            "Access-Control-Request-Method: POST\n"
            "Access-Control-Request-Headers: authorization, content-type");
    assert_status(&r, 200);
    uc_test_http_header(&r.h, "Access-Control-Allow-Origin", v, sizeof(v));
    assert_string_equal(v, "http://a.example");
    uc_test_http_header(&r.h, "Access-Control-Allow-Methods", v, sizeof(v));
    assert_non_null(strstr(v, "POST"));
    uc_test_http_header(&r.h, "Access-Control-Allow-Headers", v, sizeof(v));
    assert_string_equal(v, "authorization, content-type");
    uc_test_http_header(&r.h, "Access-Control-Max-Age", v, sizeof(v));
    assert_string_equal(v, "600");
    api_free(&r);
    api_req(&api, &r, "OPTIONS", "/api/v1/feedback/rate", NULL, NULL,
            "Origin: http://evil.example\n"
            "Access-Control-Request-Method: POST");
    assert_status(&r, 400);
    assert_int_equal(
        uc_test_http_header(&r.h, "Access-Control-Allow-Origin", v, sizeof(v)),
        0);
    api_free(&r);
    /* Not a preflight: an OPTIONS without the CORS headers is a 405. */
    api_req(&api, &r, "OPTIONS", "/api/v1/feedback/rate", NULL, NULL, NULL);
    assert_status(&r, 405);
    api_free(&r);
}

/* The original's database routes: the pool and the calls of this process,
 * admin only, and their figures recorded as metric rows. */
static void test_database_routes(void **state)
{
    api_res_t r;
    (void)state;

    api_req(&api, &r, "GET", "/api/v1/monitoring/database/pool", NULL, NULL,
            NULL);
    assert_status(&r, 401);
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/database/queries", user_key,
            NULL, NULL);
    assert_status(&r, 403);
    api_free(&r);

    api_req(&api, &r, "GET", "/api/v1/monitoring/database/pool", admin_key,
            NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "success");
    json_t *m = jget(r.j, "metrics");
    long long size = jint(m, "size");
    assert_true(size >= 1);
    /* The library's log tail may hold one at this moment. */
    long long out = jint(m, "checked_out");
    long long total = jint(m, "total_connections");
    assert_true(out >= 0 && out <= size);
    /* The pool's own counts. SQLite opens every connection at start,
     * PostgreSQL one at start and the others as calls need them. */
    assert_true(total >= 1 && total <= size);
    assert_int_equal(jint(m, "checked_in") + out, total);
    assert_int_equal(jint(m, "overflow"), 0);
    assert_int_equal(jint(m, "wait_timeouts"), 0);
    assert_int_equal(jint(m, "connect_failures"), 0);
    assert_true(jint(m, "waits") >= 0);
    assert_int_equal(jint(m, "dropped"), 0);
    assert_int_equal(strlen(jstr(m, "timestamp")), 26);
    api_free(&r);

    api_req(&api, &r, "GET", "/api/v1/monitoring/database/queries", admin_key,
            NULL, NULL);
    assert_status(&r, 200);
    m = jget(r.j, "metrics");
    long long q1 = jint(m, "total_queries");
    /* The earlier tests' writes and reads, and this request's key lookup. */
    assert_true(q1 > 10);
    assert_true(jint(m, "slow_queries") <= q1);
    assert_true(jnum(m, "average_query_time") > 0.0);
    assert_true(jnum(m, "total_query_time") >=
                jnum(m, "average_query_time") * (double)q1 * 0.999);
    assert_true(jnum(m, "slow_query_threshold") == 0.2);
    api_free(&r);

    /* Published as rows, readable as any series. */
    api_req(&api, &r, "POST", "/api/v1/monitoring/database/publish-metrics",
            user_key, "{}", NULL);
    assert_status(&r, 403);
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/monitoring/database/publish-metrics",
            service_key, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "success");
    jstr(r.j, "message");
    api_free(&r);
    char mpath[512];
    last_hour(mpath, sizeof(mpath), "utxoiq-api", "query_count", "");
    api_req(&api, &r, "GET", mpath, NULL, NULL, NULL);
    assert_status(&r, 200);
    json_t *rows = r.j;
    assert_int_equal(json_array_size(rows), 1);
    assert_true(jnum(json_array_get(rows, 0), "metric_value") >= (double)q1);
    assert_string_equal(jstr(json_array_get(rows, 0), "unit"), "queries");
    api_free(&r);
    last_hour(mpath, sizeof(mpath), "utxoiq-api", "connection_pool_size", "");
    api_req(&api, &r, "GET", mpath, NULL, NULL, NULL);
    assert_status(&r, 200);
    rows = r.j;
    assert_int_equal(json_array_size(rows), 1);
    assert_true(jnum(json_array_get(rows, 0), "metric_value") == (double)size);
    api_free(&r);
}

static void test_cache_stats(void **state)
{
    api_res_t r;
    char path[256], id[64];
    (void)state;
    uniq(id, sizeof(id), "cs");
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    api_free(&r);

    api_req(&api, &r, "GET", "/api/v1/monitoring/cache/stats", NULL, NULL,
            NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "backend"), "memory");
    json_t *fs = jget(jget(r.j, "keyspaces"), "feedback_stats");
    assert_true(jint(fs, "hits") >= 1);
    assert_true(jint(fs, "misses") >= 1);
    assert_true(jnum(fs, "hit_rate") > 0.0);
    jint(fs, "errors");
    jint(fs, "fallbacks");
    jget(jget(r.j, "keyspaces"), "backfill_job");
    jget(jget(r.j, "keyspaces"), "aggregated_metrics");
    jget(jget(r.j, "keyspaces"), "recent_metrics_page");
    jint(jget(r.j, "pool"), "in_use");
    api_free(&r);
}

/* The record of the most read entries, as an admin reads it: every read
 * counted while the keyspace is read slowly (the default), ranked. */
static void test_cache_hot(void **state)
{
    api_res_t r;
    char path[256], a[64], b[64], ka[96], kb[96];
    long long ra = -1, rb = -1;
    size_t ia = 0, ib = 0;
    (void)state;
    uniq(a, sizeof(a), "hota");
    uniq(b, sizeof(b), "hotb");
    for (int i = 0; i < 7; i++) {
        fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", i < 5 ? a : b);
        api_req(&api, &r, "GET", path, NULL, NULL, NULL);
        assert_status(&r, 200);
        api_free(&r);
    }
    fmt(ka, sizeof(ka), "feedback:stats:%s", a);
    fmt(kb, sizeof(kb), "feedback:stats:%s", b);

    api_req(&api, &r, "GET",
            "/api/v1/monitoring/cache/hot?keyspace=feedback_stats", NULL, NULL,
            NULL);
    assert_status(&r, 401);
    api_free(&r);
    api_req(&api, &r, "GET",
            "/api/v1/monitoring/cache/hot?keyspace=feedback_stats", user_key,
            NULL, NULL);
    assert_status(&r, 403);
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/cache/hot", admin_key, NULL,
            NULL);
    assert_status(&r, 400);
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/cache/hot?keyspace=nope",
            admin_key, NULL, NULL);
    assert_status(&r, 422);
    api_free(&r);
    api_req(&api, &r, "GET",
            "/api/v1/monitoring/cache/hot?keyspace=feedback_stats&limit=0",
            admin_key, NULL, NULL);
    assert_status(&r, 422);
    api_free(&r);

    api_req(&api, &r, "GET",
            "/api/v1/monitoring/cache/hot?keyspace=feedback_stats&limit=10000",
            admin_key, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "keyspace"), "feedback_stats");
    assert_true(jint(r.j, "bytes") > 0);
    json_t *top = jget(r.j, "top");
    assert_int_equal((long long)json_array_size(top), jint(r.j, "held"));
    for (size_t i = 0; i < json_array_size(top); i++) {
        json_t *e = json_array_get(top, i);
        if (strcmp(jstr(e, "key"), ka) == 0) {
            ra = jint(e, "reads");
            ia = i;
        } else if (strcmp(jstr(e, "key"), kb) == 0) {
            rb = jint(e, "reads");
            ib = i;
        }
        assert_true(jint(e, "error") <= jint(e, "reads"));
    }
    /* Counted exactly: a few reads a second are far below the rate at
     * which the record starts sampling. */
    assert_int_equal(ra, 5);
    assert_int_equal(rb, 2);
    assert_true(ia < ib);
    long long held = jint(r.j, "held");
    api_free(&r);

    api_req(&api, &r, "GET",
            "/api/v1/monitoring/cache/hot?keyspace=feedback_stats&limit=1&"
            "offset=1",
            admin_key, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "held"), held);
    assert_int_equal((long long)json_array_size(jget(r.j, "top")), 1);
    api_free(&r);
}

/* ---- routing and auth ---------------------------------------------------- */

static void test_404_405(void **state)
{
    api_res_t r;
    (void)state;
    api_req(&api, &r, "GET", "/api/v1/nope", NULL, NULL, NULL);
    assert_status(&r, 404);
    jstr(r.j, "detail");
    api_free(&r);

    api_req(&api, &r, "GET", "/api/v1/feedback/rate", NULL, NULL, NULL);
    assert_status(&r, 405);
    assert_string_equal(r.h.allow, "POST");
    api_free(&r);

    api_req(&api, &r, "DELETE", "/healthz", NULL, NULL, NULL);
    assert_status(&r, 405);
    api_free(&r);

    /* An exact path is never read as a job id. */
    api_req(&api, &r, "GET", "/api/v1/monitoring/backfill/start", NULL, NULL,
            NULL);
    assert_status(&r, 405);
    api_free(&r);

    api_req(&api, &r, "POST", "/api/v1/feedback/stats/x", admin_key, "{}",
            NULL);
    assert_status(&r, 405);
    api_free(&r);
}

static void test_auth(void **state)
{
    api_res_t r;
    char key[160];
    const char *body = "{\"insight_id\":\"auth-1\",\"rating\":3}";
    (void)state;
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", NULL, body, NULL);
    assert_status(&r, 401);
    jstr(r.j, "detail");
    api_free(&r);

    /* Right shape, wrong secret: still 401. */
    snprintf(key, sizeof(key), "%s", user_key);
    key[strlen(key) - 1] = key[strlen(key) - 1] == '0' ? '1' : '0';
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", key, body, NULL);
    assert_status(&r, 401);
    api_free(&r);

    api_req(&api, &r, "POST", "/api/v1/feedback/rate", "garbage", body, NULL);
    assert_status(&r, 401);
    api_free(&r);

    /* X-API-Key works like Bearer. */
    snprintf(key, sizeof(key), "X:%s", user_key);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", key, body, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "user_id"), "alice");
    api_free(&r);

    /* Wrong role: 403. */
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", user_key,
            "{\"job_type\":\"blocks\",\"start_block\":1,\"end_block\":2}",
            NULL);
    assert_status(&r, 403);
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/monitoring/metrics", user_key,
            "{\"service_name\":\"s\",\"metric_type\":\"t\","
            "\"metric_value\":1,\"unit\":\"ms\"}",
            NULL);
    assert_status(&r, 403);
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", service_key, body, NULL);
    assert_status(&r, 403);
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/monitoring/retention/run", service_key,
            "", NULL);
    assert_status(&r, 403);
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/feedback/user", NULL, NULL, NULL);
    assert_status(&r, 401);
    api_free(&r);
}

/* ---- feedback ------------------------------------------------------------ */

static void test_stats_etag_and_invalidation(void **state)
{
    api_res_t r;
    char id[64], path[256], etag[80], inm[128];
    (void)state;
    uniq(id, sizeof(id), "ins");
    fmt(path, sizeof(path), "/api/v1/feedback/stats?insight_id=%s", id);

    /* Empty insight: zeros, MISS, then HIT with the same ETag. */
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(jint(r.j, "total_ratings"), 0);
    assert_true(jnum(r.j, "average_rating") == 0.0);
    assert_int_equal(json_object_size(jget(r.j, "flag_types")), 0);
    assert_true(r.h.etag[0] == '"');
    assert_non_null(strstr(r.h.cache_control, "no-cache"));
    snprintf(etag, sizeof(etag), "%s", r.h.etag);
    api_free(&r);

    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "HIT");
    assert_string_equal(r.h.etag, etag);
    api_free(&r);

    fmt(inm, sizeof(inm), "If-None-Match: %s", etag);
    api_req(&api, &r, "GET", path, NULL, NULL, inm);
    assert_status(&r, 304);
    assert_int_equal(r.h.len, 0);
    assert_string_equal(r.h.etag, etag);
    api_free(&r);

    /* A list that contains it, and a weak form, also match. */
    fmt(inm, sizeof(inm), "If-None-Match: \"nope\", W/%s", etag);
    api_req(&api, &r, "GET", path, NULL, NULL, inm);
    assert_status(&r, 304);
    api_free(&r);

    /* Write, then the next read is a MISS with the new value. */
    rate(user_key, id, 4);
    rate(user2_key, id, 5);
    api_req(&api, &r, "GET", path, NULL, NULL, inm);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_string_not_equal(r.h.etag, etag);
    assert_int_equal(jint(r.j, "total_ratings"), 2);
    assert_true(jnum(r.j, "average_rating") == 4.5);
    json_t *dist = jget(r.j, "rating_distribution");
    assert_int_equal(jint(dist, "4"), 1);
    assert_int_equal(jint(dist, "5"), 1);
    assert_int_equal(jint(dist, "1"), 0);
    api_free(&r);

    /* Same path form: /stats/{id}. */
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "HIT");
    assert_int_equal(jint(r.j, "total_ratings"), 2);
    api_free(&r);

    /* A re-rating merges into the same row: still two ratings. */
    rate(user_key, id, 1);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(jint(r.j, "total_ratings"), 2);
    assert_true(jnum(r.j, "average_rating") == 3.0);
    api_free(&r);
}

static void test_average_two_decimals(void **state)
{
    api_res_t r;
    char id[64], path[256], key[128];
    (void)state;
    uniq(id, sizeof(id), "avg");
    rate(user_key, id, 1);
    rate(user2_key, id, 1);
    assert_int_equal(uc_test_api_key(&api, "carol", "user", key, sizeof(key)),
                     0);
    rate(key, id, 2);
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_true(jnum(r.j, "average_rating") == 1.33);
    assert_non_null(strstr(r.h.body, "\"average_rating\":1.33,"));
    api_free(&r);

    /* Exact ties go to the even digit, as Python's round(): 9/8 = 1.125
     * gives 1.12 (not 1.13), 11/8 = 1.375 gives 1.38. */
    char keys[8][128], id2[64], name[16];
    for (int i = 0; i < 8; i++) {
        fmt(name, sizeof(name), "tie%d", i);
        assert_int_equal(
            uc_test_api_key(&api, name, "user", keys[i], sizeof(keys[i])), 0);
    }
    uniq(id, sizeof(id), "tie");
    uniq(id2, sizeof(id2), "tie");
    for (int i = 0; i < 8; i++) {
        rate(keys[i], id, i == 0 ? 2 : 1);
        rate(keys[i], id2, i < 3 ? 2 : 1);
    }
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "total_ratings"), 8);
    assert_non_null(strstr(r.h.body, "\"average_rating\":1.12,"));
    api_free(&r);
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id2);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_non_null(strstr(r.h.body, "\"average_rating\":1.38,"));
    api_free(&r);
}

static void test_comment_flag_and_pages(void **state)
{
    api_res_t r;
    char id[64], path[256], body[512];
    (void)state;
    uniq(id, sizeof(id), "cmt");
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_int_equal(jint(r.j, "total_comments"), 0);
    api_free(&r);

    fmt(body, sizeof(body),
        "{\"insight_id\":\"%s\",\"comment\":\"first \\u00e9 line\\nsecond\"}",
        id);
    api_req(&api, &r, "POST", "/api/v1/feedback/comment", user_key, body, NULL);
    assert_status(&r, 200);
    /* The original's FeedbackResponse: nine fields, a UUID id. */
    assert_int_equal(json_object_size(r.j), 9);
    assert_uuid4(jstr(r.j, "id"));
    char alice_id[40];
    fmt(alice_id, sizeof(alice_id), "%s", jstr(r.j, "id"));
    assert_string_equal(jstr(r.j, "comment"), "first \xc3\xa9 line\nsecond");
    assert_true(json_is_null(jget(r.j, "rating")));
    /* Naive ISO, as the original wrote it: no zone. */
    const char *created = jstr(r.j, "created_at");
    assert_null(strchr(created, 'Z'));
    assert_true(naive_secs(created) > 0);
    api_free(&r);

    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(jint(r.j, "total_comments"), 1);
    api_free(&r);

    fmt(body, sizeof(body),
        "{\"insight_id\":\"%s\",\"flag_type\":\"spam\","
        "\"flag_reason\":\"ads\"}",
        id);
    api_req(&api, &r, "POST", "/api/v1/feedback/flag", user2_key, body, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "flag_type"), "spam");
    assert_string_equal(jstr(r.j, "flag_reason"), "ads");
    char bob_id[40];
    fmt(bob_id, sizeof(bob_id), "%s", jstr(r.j, "id"));
    assert_uuid4(bob_id);
    assert_string_not_equal(bob_id, alice_id);
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(jint(r.j, "total_flags"), 1);
    assert_int_equal(jint(jget(r.j, "flag_types"), "spam"), 1);
    api_free(&r);

    /* The second comment of bob; the page shows newest first and the total
     * counts every comment, not the page. */
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"comment\":\"later\"}",
        id);
    api_req(&api, &r, "POST", "/api/v1/feedback/comment", user2_key, body,
            NULL);
    assert_status(&r, 200);
    /* A merge keeps the row's id. */
    assert_string_equal(jstr(r.j, "id"), bob_id);
    api_free(&r);
    fmt(path, sizeof(path),
        "/api/v1/feedback/comments?insight_id=%s&limit=1&offset=0", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "total"), 2);
    assert_int_equal(jint(r.j, "limit"), 1);
    assert_int_equal(json_array_size(jget(r.j, "comments")), 1);
    json_t *c0 = json_array_get(jget(r.j, "comments"), 0);
    assert_string_equal(jstr(c0, "comment"), "later");
    /* The original's five item fields, no rating or flag of another user. */
    assert_int_equal(json_object_size(c0), 5);
    assert_string_equal(jstr(c0, "id"), bob_id);
    assert_string_equal(jstr(c0, "user_id"), "bob");
    assert_non_null(jget(c0, "created_at"));
    assert_non_null(jget(c0, "updated_at"));
    assert_string_equal(jstr(r.j, "insight_id"), id);
    api_free(&r);
    fmt(path, sizeof(path),
        "/api/v1/feedback/comments?insight_id=%s&limit=1&offset=1", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    c0 = json_array_get(jget(r.j, "comments"), 0);
    assert_string_equal(jstr(c0, "user_id"), "alice");
    assert_string_equal(jstr(c0, "id"), alice_id);
    api_free(&r);
    /* The original's page size by default: 20. */
    fmt(path, sizeof(path), "/api/v1/feedback/comments?insight_id=%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "limit"), 20);
    assert_int_equal(jint(r.j, "offset"), 0);
    assert_int_equal(json_array_size(jget(r.j, "comments")), 2);
    api_free(&r);

    /* Bob's one row holds both his flag and his comment. */
    api_req(&api, &r, "GET", "/api/v1/feedback/user?limit=100", user2_key, NULL,
            NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "user_id"), "bob");
    json_t *items = jget(r.j, "feedback");
    int found = 0;
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        if (strcmp(jstr(it, "insight_id"), id) == 0) {
            found++;
            assert_string_equal(jstr(it, "comment"), "later");
            assert_string_equal(jstr(it, "flag_type"), "spam");
            /* The original's seven item fields. */
            assert_int_equal(json_object_size(it), 7);
            assert_string_equal(jstr(it, "id"), bob_id);
            assert_true(json_is_null(jget(it, "rating")));
            assert_null(json_object_get(it, "user_id"));
            assert_null(json_object_get(it, "flag_reason"));
        }
    }
    assert_int_equal(found, 1);
    assert_true(jint(r.j, "total") >= 1);
    api_free(&r);

    /* A rating with a comment keeps it; one without keeps the old one. */
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":2}", id);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user2_key, body, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "comment"), "later");
    assert_int_equal(jint(r.j, "rating"), 2);
    assert_string_equal(jstr(r.j, "id"), bob_id);
    api_free(&r);

    /* An empty comment with a rating is no comment, as the original counts
     * it: gone from the stats and the page. */
    fmt(body, sizeof(body),
        "{\"insight_id\":\"%s\",\"rating\":3,\"comment\":\"\"}", id);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user2_key, body, NULL);
    assert_status(&r, 200);
    assert_true(json_is_null(jget(r.j, "comment")));
    api_free(&r);
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_int_equal(jint(r.j, "total_comments"), 1);
    api_free(&r);

    /* An empty flag reason is stored as "", as the original stored it. */
    fmt(body, sizeof(body),
        "{\"insight_id\":\"%s\",\"flag_type\":\"misleading\","
        "\"flag_reason\":\"\"}",
        id);
    api_req(&api, &r, "POST", "/api/v1/feedback/flag", user2_key, body, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "flag_reason"), "");
    api_free(&r);
}

static void test_feedback_validation(void **state)
{
    static const refusal_t cases[] = {
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",", 400, "body"},
        {"/api/v1/feedback/rate", "", 400, "body"},
        {"/api/v1/feedback/rate", "[1]", 422, "body"},
        {"/api/v1/feedback/rate", "{\"rating\":3}", 422, "insight_id"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":6}", 422,
         "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":0}", 422,
         "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":\"6\"}",
         422, "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":\"4.5\"}",
         422, "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":\"four\"}",
         422, "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":\"\"}", 422,
         "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":true}", 422,
         "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":4.5}", 422,
         "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":5.0001}",
         422, "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\",\"rating\":6.0}", 422,
         "rating"},
        {"/api/v1/feedback/rate", "{\"insight_id\":7,\"rating\":4}", 422,
         "insight_id"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"\",\"rating\":4}", 422,
         "insight_id"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\\u0001b\",\"rating\":4}",
         422, "insight_id"},
        {"/api/v1/feedback/rate", "{\"insight_id\":\"a\\u0000b\",\"rating\":4}",
         422, "insight_id"},
        {"/api/v1/feedback/comment", "{\"insight_id\":\"a\"}", 422, "comment"},
        {"/api/v1/feedback/comment", "{\"insight_id\":\"a\",\"comment\":\"\"}",
         422, "comment"},
        {"/api/v1/feedback/flag", "{\"insight_id\":\"a\",\"flag_type\":\"x\"}",
         422, "flag_type"},
        {"/api/v1/feedback/flag", "{\"insight_id\":\"a\"}", 422, "flag_type"},
    };
    api_res_t r;
    (void)state;
    check_refusals("POST", user_key, cases, ARRAY_LEN(cases));

    /* Lengths: 1000 characters pass, 1001 do not; 129-byte ids do not. */
    char *body = malloc(8000);
    char *s = malloc(4000);
    assert_non_null(body);
    assert_non_null(s);
    memset(s, 'x', 1001);
    s[1001] = '\0';
    fmt(body, 8000, "{\"insight_id\":\"len\",\"comment\":\"%s\"}", s);
    api_req(&api, &r, "POST", "/api/v1/feedback/comment", user_key, body, NULL);
    assert_status(&r, 422);
    assert_detail_names(&r, "comment");
    api_free(&r);
    s[1000] = '\0';
    fmt(body, 8000, "{\"insight_id\":\"len\",\"comment\":\"%s\"}", s);
    api_req(&api, &r, "POST", "/api/v1/feedback/comment", user_key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);
    /* 1000 two-byte characters are 1000 characters. */
    for (int i = 0; i < 1000; i++) {
        memcpy(s + 2 * i, "\xc3\xa9", 2);
    }
    s[2000] = '\0';
    fmt(body, 8000, "{\"insight_id\":\"len\",\"comment\":\"%s\"}", s);
    api_req(&api, &r, "POST", "/api/v1/feedback/comment", user_key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);
    memset(s, 'r', 501);
    s[501] = '\0';
    fmt(body, 8000,
        "{\"insight_id\":\"len\",\"flag_type\":\"spam\",\"flag_reason\":"
        "\"%s\"}",
        s);
    api_req(&api, &r, "POST", "/api/v1/feedback/flag", user_key, body, NULL);
    assert_status(&r, 422);
    assert_detail_names(&r, "flag_reason");
    api_free(&r);
    /* Ids are at most 100 characters, counted as characters: 101 ASCII
     * ones are refused, 100 two-byte ones pass, on the write and the read. */
    memset(s, 'i', 101);
    s[101] = '\0';
    fmt(body, 8000, "{\"insight_id\":\"%s\",\"rating\":3}", s);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
    assert_status(&r, 422);
    assert_detail_names(&r, "insight_id");
    api_free(&r);
    fmt(body, 8000, "/api/v1/feedback/stats?insight_id=%s", s);
    api_req(&api, &r, "GET", body, NULL, NULL, NULL);
    assert_status(&r, 422);
    api_free(&r);
    s[100] = '\0';
    fmt(body, 8000, "{\"insight_id\":\"%s\",\"rating\":3}", s);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);
    for (int i = 0; i < 101; i++) {
        memcpy(s + 2 * i, "\xc3\xa9", 2);
    }
    s[202] = '\0';
    fmt(body, 8000, "{\"insight_id\":\"%s\",\"rating\":3}", s);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
    assert_status(&r, 422);
    assert_detail_names(&r, "insight_id");
    api_free(&r);
    s[200] = '\0';
    fmt(body, 8000, "{\"insight_id\":\"%s\",\"rating\":3}", s);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "insight_id"), s);
    api_free(&r);
    /* The same id in a query, percent-encoded. */
    size_t o =
        (size_t)snprintf(body, 8000, "/api/v1/feedback/stats?insight_id=");
    for (int i = 0; i < 100; i++) {
        o += (size_t)snprintf(body + o, 8000 - o, "%%C3%%A9");
    }
    api_req(&api, &r, "GET", body, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "total_ratings"), 1);
    assert_string_equal(jstr(r.j, "insight_id"), s);
    api_free(&r);
    /* flag_reason: 500 characters pass. */
    memset(s, 'r', 500);
    s[500] = '\0';
    fmt(body, 8000,
        "{\"insight_id\":\"len\",\"flag_type\":\"spam\",\"flag_reason\":"
        "\"%s\"}",
        s);
    api_req(&api, &r, "POST", "/api/v1/feedback/flag", user_key, body, NULL);
    assert_status(&r, 200);
    api_free(&r);

    /* Lax ratings, as pydantic's lax mode takes them. */
    static const char *const lax[] = {"\"4\"", "4.0", "\" 4 \"", "\"+4\"",
                                      "\"4.00\""};
    for (size_t i = 0; i < ARRAY_LEN(lax); i++) {
        fmt(body, 8000, "{\"insight_id\":\"lax\",\"rating\":%s}", lax[i]);
        api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body,
                NULL);
        assert_status(&r, 200);
        assert_true(json_is_integer(jget(r.j, "rating")));
        assert_int_equal(jint(r.j, "rating"), 4);
        api_free(&r);
    }
    free(s);
    free(body);

    /* Query validation. */
    static const refusal_t q[] = {
        {"/api/v1/feedback/stats", NULL, 422, "insight_id"},
        {"/api/v1/feedback/stats?insight_id=a%01b", NULL, 422, "insight_id"},
        {"/api/v1/feedback/comments", NULL, 422, "insight_id"},
        {"/api/v1/feedback/comments?insight_id=a&limit=0", NULL, 422, "limit"},
        {"/api/v1/feedback/comments?insight_id=a&limit=101", NULL, 422,
         "limit"},
        {"/api/v1/feedback/comments?insight_id=a&limit=abc", NULL, 422,
         "limit"},
        {"/api/v1/feedback/comments?insight_id=a&offset=-1", NULL, 422,
         "offset"},
    };
    check_refusals("GET", NULL, q, ARRAY_LEN(q));
}

static void test_body_limit(void **state)
{
    api_res_t r;
    size_t n = 64 * 1024 + 10;
    char *big = malloc(n + 1);
    (void)state;
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"insight_id\":\"big\",\"rating\":3", 30);
    big[n - 1] = '}';
    big[n] = '\0';
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, big, NULL);
    assert_status(&r, 413);
    jstr(r.j, "detail");
    api_free(&r);
    /* The same shape under the limit is fine. */
    big[60 * 1024] = '}';
    big[60 * 1024 + 1] = '\0';
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, big, NULL);
    assert_status(&r, 200);
    api_free(&r);
    free(big);
}

static void test_keep_alive(void **state)
{
    api_res_t r;
    (void)state;
    api_req(&api, &r, "GET", "/healthz", NULL, NULL, NULL);
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/feedback/stats/ka", NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(r.h.connects, 0);
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key,
            "{\"insight_id\":\"ka\",\"rating\":2}", NULL);
    assert_status(&r, 200);
    assert_int_equal(r.h.connects, 0);
    api_free(&r);
}

/* ---- backfill ------------------------------------------------------------ */

static void start_job(const char *type, char *id, size_t cap)
{
    api_res_t r;
    char body[256];
    fmt(body, sizeof(body),
        "{\"job_type\":\"%s\",\"start_block\":100,\"end_block\":200}", type);
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", admin_key,
            body, NULL);
    assert_status(&r, 200);
    snprintf(id, cap, "%s", jstr(r.j, "id"));
    api_free(&r);
}

static void test_backfill(void **state)
{
    api_res_t r;
    char id[64], path[256], type[64], etag[80], inm[128];
    (void)state;
    uniq(type, sizeof(type), "blocks");
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", admin_key,
            "{\"job_type\":\"x\",\"start_block\":100,\"end_block\":200,"
            "\"created_by\":\"ops\"}",
            NULL);
    /* 200, as the original answered; its times are naive ISO (no zone). */
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "running");
    assert_null(strchr(jstr(r.j, "started_at"), 'Z'));
    assert_int_equal(strlen(jstr(r.j, "started_at")) >= 19, 1);
    assert_int_equal(jint(r.j, "current_block"), 100);
    assert_string_equal(jstr(r.j, "created_by"), "ops");
    assert_int_equal(strlen(jstr(r.j, "id")), 36);
    assert_true(json_is_null(jget(r.j, "completed_at")));
    api_free(&r);

    start_job(type, id, sizeof(id));
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_string_equal(jstr(r.j, "created_by"), "root-admin");
    snprintf(etag, sizeof(etag), "%s", r.h.etag);
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);
    fmt(inm, sizeof(inm), "If-None-Match: %s", etag);
    api_req(&api, &r, "GET", path, NULL, NULL, inm);
    assert_status(&r, 304);
    api_free(&r);

    /* Progress (service role), then the job reads the new figures. */
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/progress?job_id=%s",
        id);
    api_req(&api, &r, "POST", path, service_key,
            "{\"current_block\":150,\"progress_percentage\":50.5,"
            "\"estimated_completion\":\"2030-01-02T03:04:05Z\"}",
            NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "current_block"), 150);
    /* Naive and without a zero fraction, as Python's isoformat(). */
    assert_string_equal(jstr(r.j, "estimated_completion"),
                        "2030-01-02T03:04:05");
    api_free(&r);
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, inm);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(jint(r.j, "current_block"), 150);
    assert_true(jnum(r.j, "progress_percentage") == 50.5);
    assert_true(json_is_null(jget(r.j, "completed_at")));
    api_free(&r);

    /* Completing sets completed_at. */
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/progress?job_id=%s",
        id);
    api_req(&api, &r, "POST", path, admin_key,
            "{\"current_block\":200,\"progress_percentage\":100,"
            "\"status\":\"completed\"}",
            NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "completed");
    jstr(r.j, "completed_at");
    api_free(&r);
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_string_equal(jstr(r.j, "status"), "completed");
    jstr(r.j, "completed_at");
    api_free(&r);

    /* A failed job records its error but, as in the original, not a
     * completion; resuming keeps the error (the original never cleared
     * it). A long trace (the original's TEXT column) is stored whole. */
    char id2[64];
    start_job(type, id2, sizeof(id2));
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/progress?job_id=%s",
        id2);
    char *trace = malloc(3000);
    char *pbody = malloc(3200);
    assert_non_null(trace);
    assert_non_null(pbody);
    for (int i = 0; i < 1500; i++) {
        /* 1500 characters of two bytes: 3000 bytes. */
        trace[2 * i] = (char)0xc3;
        trace[2 * i + 1] = (char)0xa9;
    }
    trace[2999] = '\0';
    trace[2998] = 'x';
    fmt(pbody, 3200,
        "{\"current_block\":120,\"progress_percentage\":20,"
        "\"status\":\"failed\",\"error_message\":\"%s\"}",
        trace);
    api_req(&api, &r, "POST", path, service_key, pbody, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "error_message"), trace);
    assert_true(json_is_null(jget(r.j, "completed_at")));
    api_free(&r);
    api_req(&api, &r, "POST", path, service_key,
            "{\"current_block\":130,\"progress_percentage\":30,"
            "\"status\":\"running\",\"error_message\":\"\"}",
            NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "running");
    assert_string_equal(jstr(r.j, "error_message"), trace);
    assert_true(json_is_null(jget(r.j, "completed_at")));
    api_free(&r);
    api_req(&api, &r, "POST", path, service_key,
            "{\"current_block\":120,\"progress_percentage\":20,"
            "\"status\":\"failed\",\"error_message\":\"rpc down\"}",
            NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "error_message"), "rpc down");
    api_free(&r);
    free(trace);
    free(pbody);

    /* current_block outside [start_block, end_block] is the original's
     * 400, and nothing is stored. */
    api_req(&api, &r, "POST", path, service_key,
            "{\"current_block\":201,\"progress_percentage\":20}", NULL);
    assert_status(&r, 400);
    assert_detail_names(&r, "end_block");
    api_free(&r);
    api_req(&api, &r, "POST", path, service_key,
            "{\"current_block\":99,\"progress_percentage\":20}", NULL);
    assert_status(&r, 400);
    assert_detail_names(&r, "start_block");
    api_free(&r);
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s", id2);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_int_equal(jint(r.j, "current_block"), 120);
    api_free(&r);

    /* The list: a bare array, filtered by type, newest first. */
    fmt(path, sizeof(path),
        "/api/v1/monitoring/backfill/status?job_type=%s&limit=10", type);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_true(json_is_array(r.j));
    assert_int_equal(json_array_size(r.j), 2);
    assert_string_equal(jstr(json_array_get(r.j, 0), "id"), id2);
    assert_string_equal(jstr(json_array_get(r.j, 1), "id"), id);
    api_free(&r);
    fmt(path, sizeof(path),
        "/api/v1/monitoring/backfill/status?job_type=%s&status=failed", type);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_true(json_is_array(r.j));
    assert_int_equal(json_array_size(r.j), 1);
    api_free(&r);

    /* The original's default page is 10 jobs. */
    for (int i = 0; i < 10; i++) {
        char more[64];
        start_job(type, more, sizeof(more));
    }
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/status?job_type=%s",
        type);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(json_array_size(r.j), 10);
    api_free(&r);
}

static void test_backfill_errors(void **state)
{
    static const refusal_t cases[] = {
        {"/api/v1/monitoring/backfill/start",
         "{\"start_block\":1,\"end_block\":2}", 422, "job_type"},
        {"/api/v1/monitoring/backfill/start",
         "{\"job_type\":\"b\",\"start_block\":-1,\"end_block\":2}", 422,
         "start_block"},
        {"/api/v1/monitoring/backfill/start",
         "{\"job_type\":\"b\",\"start_block\":5,\"end_block\":2}", 400,
         "end_block"},
        {"/api/v1/monitoring/backfill/start",
         "{\"job_type\":\"b\",\"start_block\":\"1\",\"end_block\":2}", 422,
         "start_block"},
        {"/api/v1/monitoring/backfill/progress", "{}", 422, "job_id"},
        {"/api/v1/monitoring/backfill/progress?job_id=not-a-uuid",
         "{\"current_block\":1,\"progress_percentage\":1}", 422, "job_id"},
        {"/api/v1/monitoring/backfill/progress?job_id="
         "00000000-0000-4000-8000-000000000000",
         "{\"current_block\":1,\"progress_percentage\":1}", 404, "not found"},
        {"/api/v1/monitoring/backfill/start",
         "{\"job_type\":"
         "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\","
         "\"start_block\":1,\"end_block\":2}",
         422, "job_type"},
        {"/api/v1/monitoring/backfill/progress?job_id="
         "00000000-0000-4000-8000-000000000000",
         "{\"current_block\":1,\"progress_percentage\":101}", 422,
         "progress_percentage"},
        {"/api/v1/monitoring/backfill/progress?job_id="
         "00000000-0000-4000-8000-000000000000",
         "{\"current_block\":1,\"progress_percentage\":1,\"status\":\"done\"}",
         422, "status"},
        {"/api/v1/monitoring/backfill/progress?job_id="
         "00000000-0000-4000-8000-000000000000",
         "{\"current_block\":1,\"progress_percentage\":1,"
         "\"estimated_completion\":\"2024-13-01T00:00:00Z\"}",
         422, "estimated_completion"},
        {"/api/v1/monitoring/backfill/progress?job_id="
         "00000000-0000-4000-8000-000000000000",
         "{\"current_block\":1,\"progress_percentage\":1,"
         "\"estimated_completion\":\"yesterday\"}",
         422, "estimated_completion"},
    };
    api_res_t r;
    (void)state;
    check_refusals("POST", admin_key, cases, ARRAY_LEN(cases));
    api_req(&api, &r, "GET",
            "/api/v1/monitoring/backfill/00000000-0000-4000-8000-000000000000",
            NULL, NULL, NULL);
    assert_status(&r, 404);
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/backfill/zzz", NULL, NULL,
            NULL);
    assert_invalid_at(&r, "path", "job_id", "uuid_parsing");
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/backfill/status?status=x",
            NULL, NULL, NULL);
    assert_invalid_at(&r, "query", "status", "string_pattern_mismatch");
    assert_string_equal(jstr(json_array_get(jget(r.j, "detail"), 0), "input"),
                        "x");
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/backfill/status?limit=101",
            NULL, NULL, NULL);
    assert_invalid_at(&r, "query", "limit", "less_than_equal");
    api_free(&r);
    api_req(&api, &r, "GET", "/api/v1/monitoring/backfill/status?limit=0", NULL,
            NULL, NULL);
    assert_invalid_at(&r, "query", "limit", "greater_than_equal");
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/progress", admin_key,
            "{}", NULL);
    assert_invalid_at(&r, "query", "job_id", "missing");
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", admin_key,
            "{\"start_block\":1,\"end_block\":2}", NULL);
    assert_invalid_at(&r, "body", "job_type", "missing");
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", admin_key,
            "{\"job_type\":\"b\",\"start_block\":-1,\"end_block\":2}", NULL);
    assert_invalid_at(&r, "body", "start_block", "greater_than_equal");
    assert_int_equal(jint(json_array_get(jget(r.j, "detail"), 0), "input"), -1);
    api_free(&r);
    /* 50 characters of two bytes each: within the original's VARCHAR(50). */
    char body[512];
    char wide[128];
    for (int i = 0; i < 50; i++) {
        wide[2 * i] = (char)0xc3;
        wide[2 * i + 1] = (char)0xa9;
    }
    wide[100] = '\0';
    fmt(body, sizeof(body),
        "{\"job_type\":\"%s\",\"start_block\":1,\"end_block\":2}", wide);
    api_req(&api, &r, "POST", "/api/v1/monitoring/backfill/start", admin_key,
            body, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "job_type"), wide);
    api_free(&r);
}

/* ---- metrics ------------------------------------------------------------- */

static void post_metric(const char *svc, const char *type, double v)
{
    api_res_t r;
    char body[512];
    fmt(body, sizeof(body),
        "{\"service_name\":\"%s\",\"metric_type\":\"%s\","
        "\"metric_value\":%g,\"unit\":\"ms\"}",
        svc, type, v);
    api_req(&api, &r, "POST", "/api/v1/monitoring/metrics", service_key, body,
            NULL);
    assert_status(&r, 200);
    api_free(&r);
}

static void test_metrics(void **state)
{
    api_res_t r;
    char svc[64], path[512], body[1024];
    (void)state;
    uniq(svc, sizeof(svc), "svc");

    fmt(body, sizeof(body),
        "{\"service_name\":\"%s\",\"metric_type\":\"latency\","
        "\"metric_value\":12.5,\"unit\":\"ms\","
        "\"metric_metadata\":{\"host\":\"a\",\"n\":[1,2]},"
        "\"timestamp\":\"1999-01-01T00:00:00Z\"}",
        svc);
    api_req(&api, &r, "POST", "/api/v1/monitoring/metrics", service_key, body,
            NULL);
    assert_status(&r, 200);
    assert_true(jnum(r.j, "metric_value") == 12.5);
    assert_null(strchr(jstr(r.j, "timestamp"), 'Z'));
    assert_string_equal(jstr(jget(r.j, "metric_metadata"), "host"), "a");
    /* The server sets the timestamp, not the client. */
    assert_null(strstr(jstr(r.j, "timestamp"), "1999"));
    assert_uuid4(jstr(r.j, "id"));
    char metric_id[40];
    fmt(metric_id, sizeof(metric_id), "%s", jstr(r.j, "id"));
    api_free(&r);

    /* The original clients' query, the last hour up to now in naive times:
     * a bare array from the recent page, MISS then HIT (the same second
     * shares its entry), then a new metric shows up at once. */
    last_hour(path, sizeof(path), svc, "latency", "");
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_true(json_is_array(r.j));
    assert_int_equal(json_array_size(r.j), 1);
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);
    post_metric(svc, "latency", 20);
    last_hour(path, sizeof(path), svc, "latency", "");
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(json_array_size(r.j), 2);
    /* Newest first. */
    assert_true(jnum(json_array_get(r.j, 0), "metric_value") == 20.0);
    api_free(&r);
    /* limit and offset are part of the key. */
    last_hour(path, sizeof(path), svc, "latency", "&limit=1&offset=1");
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(json_array_size(r.j), 1);
    assert_true(jnum(json_array_get(r.j, 0), "metric_value") == 12.5);
    /* The id the insert answered, read back from the database. */
    assert_string_equal(jstr(json_array_get(r.j, 0), "id"), metric_id);
    api_free(&r);

    /* end_time is inclusive: a window ending at the newest row's own
     * timestamp holds it, one ending a microsecond before does not. */
    last_hour(path, sizeof(path), svc, "latency", "&limit=1");
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    char newest[40];
    snprintf(newest, sizeof(newest), "%s",
             jstr(json_array_get(r.j, 0), "timestamp"));
    api_free(&r);
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics?service_name=%s&metric_type=latency"
        "&start_time=%s&end_time=%s",
        svc, newest, newest);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(json_array_size(r.j), 1);
    assert_true(jnum(json_array_get(r.j, 0), "metric_value") == 20.0);
    api_free(&r);

    /* Batch: one transaction, array back; then aggregates. */
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics/aggregate?service_name=%s"
        "&metric_type=cpu&interval=hour",
        svc);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(json_array_size(jget(r.j, "data")), 0);
    assert_string_equal(jstr(r.j, "interval"), "hour");
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);

    fmt(body, sizeof(body),
        "[{\"service_name\":\"%s\",\"metric_type\":\"cpu\","
        "\"metric_value\":10,\"unit\":\"percent\"},"
        "{\"service_name\":\"%s\",\"metric_type\":\"cpu\","
        "\"metric_value\":30,\"unit\":\"percent\"}]",
        svc, svc);
    api_req(&api, &r, "POST", "/api/v1/monitoring/metrics/batch", service_key,
            body, NULL);
    assert_status(&r, 200);
    assert_true(json_is_array(r.j));
    assert_int_equal(json_array_size(r.j), 2);
    char first_ts[40];
    snprintf(first_ts, sizeof(first_ts), "%s",
             jstr(json_array_get(r.j, 0), "timestamp"));
    api_free(&r);
    /* An empty batch stores nothing and answers the empty list. */
    api_req(&api, &r, "POST", "/api/v1/monitoring/metrics/batch", service_key,
            "[]", NULL);
    assert_status(&r, 200);
    assert_true(json_is_array(r.j));
    assert_int_equal(json_array_size(r.j), 0);
    api_free(&r);

    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    json_t *data = jget(r.j, "data");
    assert_int_equal(json_array_size(data), 1);
    json_t *b = json_array_get(data, 0);
    assert_int_equal(jint(b, "count"), 2);
    assert_true(jnum(b, "avg_value") == 20.0);
    assert_true(jnum(b, "min_value") == 10.0);
    assert_true(jnum(b, "max_value") == 30.0);
    api_free(&r);

    /* The bounds come back as given, not rounded, and the edge bucket
     * counts only rows inside them: a window that starts just after the
     * batch's rows holds none of them, though they share its hour. */
    char after[64];
    snprintf(after, sizeof(after), "%s", first_ts);
    /* One second later, written the same naive way. */
    naive_of(naive_secs(first_ts) + 1, after, sizeof(after));
    char later[40];
    naive_time(later, sizeof(later), 60);
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics/aggregate?service_name=%s"
        "&metric_type=cpu&interval=hour&start_time=%s&end_time=%s",
        svc, after, later);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "start_time"), after);
    assert_string_equal(jstr(r.j, "end_time"), later);
    assert_int_equal(json_array_size(jget(r.j, "data")), 0);
    api_free(&r);
    /* And one that ends at the rows' own timestamp holds them. */
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics/aggregate?service_name=%s"
        "&metric_type=cpu&interval=day&start_time=2000-01-01T00:00:00"
        "&end_time=%s",
        svc, first_ts);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "start_time"), "2000-01-01T00:00:00");
    assert_int_equal(jint(json_array_get(jget(r.j, "data"), 0), "count"), 2);
    api_free(&r);

    /* day and week buckets hold the same two points. */
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics/aggregate?service_name=%s"
        "&metric_type=cpu&interval=week",
        svc);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(json_array_get(jget(r.j, "data"), 0), "count"), 2);
    api_free(&r);

    /* An explicit window (Z and offsets are valid) is not the recent one. */
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics?service_name=%s"
        "&start_time=2000-01-01T00:00:00Z&end_time=2100-01-01T00:00:00%%2B00:"
        "00",
        svc);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "");
    assert_true(json_is_array(r.j));
    assert_int_equal(json_array_size(r.j), 4);
    api_free(&r);

    /* An explicit past window of one series is cached by its bounds. */
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics?service_name=%s&metric_type=cpu"
        "&start_time=2000-01-01T00:00:00&end_time=%s",
        svc, first_ts);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(json_array_size(r.j), 2);
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);
}

static void test_metrics_errors(void **state)
{
    static const refusal_t posts[] = {
        {"/api/v1/monitoring/metrics",
         "{\"metric_type\":\"t\",\"metric_value\":1,\"unit\":\"ms\"}", 422,
         "service_name"},
        {"/api/v1/monitoring/metrics",
         "{\"service_name\":\"s\",\"metric_type\":\"t\",\"metric_value\":"
         "\"x\",\"unit\":\"ms\"}",
         422, "metric_value"},
        {"/api/v1/monitoring/metrics",
         "{\"service_name\":\"s\",\"metric_type\":\"t\",\"metric_value\":1}",
         422, "unit"},
        {"/api/v1/monitoring/metrics",
         "{\"service_name\":\"s\",\"metric_type\":\"t\",\"metric_value\":1,"
         "\"unit\":\"ms\",\"metric_metadata\":[1]}",
         422, "metric_metadata"},
        {"/api/v1/monitoring/metrics/batch", "{}", 422, "body"},
        {"/api/v1/monitoring/metrics",
         "{\"service_name\":\"s\",\"metric_type\":\"t\",\"metric_value\":1,"
         "\"unit\":\"123456789012345678901\"}",
         422, "unit"},
        {"/api/v1/monitoring/metrics/batch",
         "[{\"service_name\":\"s\",\"metric_type\":\"t\",\"metric_value\":1,"
         "\"unit\":\"ms\"},{\"service_name\":\"s\",\"metric_type\":\"t\","
         "\"metric_value\":true,\"unit\":\"ms\"}]",
         422, "[1].metric_value"},
    };
    api_res_t r;
    (void)state;
    check_refusals("POST", service_key, posts, ARRAY_LEN(posts));
    /* The item's field is named as pydantic names it. */
    api_req(&api, &r, "POST", "/api/v1/monitoring/metrics/batch", service_key,
            posts[ARRAY_LEN(posts) - 1].body, NULL);
    {
        json_t *loc = jget(json_array_get(jget(r.j, "detail"), 0), "loc");
        assert_string_equal(json_string_value(json_array_get(loc, 0)), "body");
        assert_int_equal(json_integer_value(json_array_get(loc, 1)), 1);
        assert_string_equal(json_string_value(json_array_get(loc, 2)),
                            "metric_value");
    }
    api_free(&r);
    /* Nothing of a refused batch was stored. */
    char path[512];
    last_hour(path, sizeof(path), "s", "t", "");
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(json_array_size(r.j), 0);
    api_free(&r);

    /* 1001 metrics: refused; 1000 (over 64 KiB) pass. */
    const char *one = "{\"service_name\":\"s\",\"metric_type\":\"big\","
                      "\"metric_value\":1,\"unit\":\"u\"}";
    size_t cap = 1001 * (strlen(one) + 1) + 3;
    char *big = malloc(cap);
    assert_non_null(big);
    for (int count = 1001; count >= 1000; count--) {
        size_t pos = 0;
        big[pos++] = '[';
        for (int i = 0; i < count; i++) {
            if (i > 0) {
                big[pos++] = ',';
            }
            memcpy(big + pos, one, strlen(one));
            pos += strlen(one);
        }
        big[pos++] = ']';
        big[pos] = '\0';
        assert_true(pos > 64 * 1024);
        api_req(&api, &r, "POST", "/api/v1/monitoring/metrics/batch",
                service_key, big, NULL);
        if (count == 1001) {
            assert_status(&r, 422);
            assert_detail_names(&r, "body");
        } else {
            assert_status(&r, 200);
            assert_int_equal(json_array_size(r.j), 1000);
        }
        api_free(&r);
    }
    free(big);

    static const refusal_t gets[] = {
        {"/api/v1/monitoring/metrics?start_time=2024-02-30T00:00:00Z"
         "&end_time=2024-03-01T00:00:00",
         NULL, 422, "start_time"},
        {"/api/v1/monitoring/metrics?start_time=2024-01-01T00:00:00"
         "&end_time=12",
         NULL, 422, "end_time"},
        {"/api/v1/monitoring/metrics?start_time=2024-01-01T00:00:00"
         "&end_time=2024-01-02T00:00:00&limit=10001",
         NULL, 422, "limit"},
        {"/api/v1/monitoring/metrics?end_time=2024-01-02T00:00:00", NULL, 422,
         "start_time"},
        {"/api/v1/monitoring/metrics?start_time=2024-01-02T00:00:00", NULL, 422,
         "end_time"},
        {"/api/v1/monitoring/metrics/aggregate?metric_type=t", NULL, 422,
         "service_name"},
        {"/api/v1/monitoring/metrics/aggregate?service_name=s", NULL, 422,
         "metric_type"},
        {"/api/v1/monitoring/metrics/aggregate?service_name=s&metric_type=t"
         "&interval=month",
         NULL, 422, "interval"},
    };
    check_refusals("GET", NULL, gets, ARRAY_LEN(gets));
    /* Both bounds are required, as FastAPI reports a missing query. */
    api_req(&api, &r, "GET",
            "/api/v1/monitoring/metrics?service_name=s&metric_type=t", NULL,
            NULL, NULL);
    assert_invalid_at(&r, "query", "start_time", "missing");
    assert_true(
        json_is_null(jget(json_array_get(jget(r.j, "detail"), 0), "input")));
    api_free(&r);
    /* An end before the start is an empty window, not an error; 10000 is
     * the largest page. */
    api_req(&api, &r, "GET",
            "/api/v1/monitoring/metrics?start_time=2024-01-02T00:00:00"
            "&end_time=2024-01-01T00:00:00&limit=10000",
            NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_true(json_is_array(r.j));
    assert_int_equal(json_array_size(r.j), 0);
    api_free(&r);
}

/* ---- concurrent first writes --------------------------------------------- */

typedef struct {
    const char *insight;
    const char *key;
    int rating;
    long status;
} racer_t;

static void *race_rate(void *arg)
{
    racer_t *rc = arg;
    uc_test_api_t mine = api; /* same server, a connection of its own */
    uc_test_http_t h;
    char body[256];
    mine.curl = NULL;
    snprintf(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":%d}",
             rc->insight, rc->rating);
    if (uc_test_http(&mine, "POST", "/api/v1/feedback/rate", rc->key, body,
                     strlen(body), NULL, &h) == 0) {
        rc->status = h.status;
        uc_test_http_release(&h);
    }
    if (mine.curl != NULL) {
        curl_easy_cleanup(mine.curl);
    }
    return NULL;
}

static void test_concurrent_first_writes(void **state)
{
    enum { N = 8 };
    pthread_t th[N];
    racer_t rc[N];
    char id[64], path[256];
    api_res_t r;
    (void)state;
    uniq(id, sizeof(id), "race");
    /* Two users, four simultaneous first writes each: every one succeeds and
     * each user ends with exactly one row. */
    for (int i = 0; i < N; i++) {
        rc[i].insight = id;
        rc[i].key = i % 2 == 0 ? user_key : user2_key;
        rc[i].rating = i % 2 == 0 ? 5 : 1;
        rc[i].status = 0;
        assert_int_equal(pthread_create(&th[i], NULL, race_rate, &rc[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(rc[i].status, 200);
    }
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(jint(r.j, "total_ratings"), 2);
    assert_true(jnum(r.j, "average_rating") == 3.0);
    api_free(&r);
}

/* ---- retention ----------------------------------------------------------- */

static void test_retention(void **state)
{
    api_res_t r;
    char id[64], path[256], job[64], body[256], svc[64];
    char skew[64];
    (void)state;
    uniq(id, sizeof(id), "old");
    uniq(svc, sizeof(svc), "oldsvc");

    /* Write from a server whose clock is 800 days behind... */
    fmt(skew, sizeof(skew), "UTXOIQ_CLOCK_SKEW_S=%d", -800 * 86400);
    const char *env_old[] = {skew, "UTXOCACHE_REFILL_TOP=0", NULL};
    assert_int_equal(uc_test_api_restart(&api, env_old), 0);
    rate(user_key, id, 2);
    start_job("ancient", job, sizeof(job));
    post_metric(svc, "old", 1);
    /* ...and one metric from 200 days ago, which the original kept (it
     * deleted metrics after 365 days; 90 was its archive age). */
    fmt(skew, sizeof(skew), "UTXOIQ_CLOCK_SKEW_S=%d", -200 * 86400);
    const char *env_mid[] = {skew, "UTXOCACHE_REFILL_TOP=0", NULL};
    assert_int_equal(uc_test_api_restart(&api, env_mid), 0);
    post_metric(svc, "middle", 2);

    /* ...then, back in the present, read (and cache) what it wrote. */
    const char *env_now[] = {"UTXOCACHE_REFILL_TOP=0", NULL};
    assert_int_equal(uc_test_api_restart(&api, env_now), 0);
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_int_equal(jint(r.j, "total_ratings"), 1);
    api_free(&r);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);
    fmt(body, sizeof(body), "/api/v1/monitoring/backfill/%s", job);
    api_req(&api, &r, "GET", body, NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);
    api_req(&api, &r, "GET", body, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "HIT");
    api_free(&r);

    api_req(&api, &r, "POST", "/api/v1/monitoring/retention/run", user_key,
            NULL, NULL);
    assert_status(&r, 403);
    api_free(&r);
    api_req(&api, &r, "POST", "/api/v1/monitoring/retention/run", admin_key,
            NULL, NULL);
    /* The original's answer: no archive store here, so nothing is
     * archived and no archive is named. */
    assert_status(&r, 200);
    assert_string_equal(jstr(r.j, "status"), "success");
    jstr(r.j, "message");
    json_t *res = jget(r.j, "results");
    jstr(res, "execution_time");
    json_t *jobs = jget(res, "backfill_jobs");
    assert_true(jint(jobs, "deleted_count") >= 1);
    assert_int_equal(jint(jobs, "archived_count"), 0);
    assert_true(json_is_null(jget(jobs, "archive_uri")));
    assert_null(strchr(jstr(jobs, "cutoff_date"), 'Z'));
    json_t *fb = jget(res, "feedback");
    assert_true(jint(fb, "deleted_count") >= 1);
    assert_true(json_is_null(jget(fb, "archive_uri")));
    jstr(fb, "cutoff_date");
    json_t *ma = jget(res, "metrics_archive");
    assert_int_equal(jint(ma, "archived_count"), 0);
    assert_int_equal(json_array_size(jget(ma, "archive_uris")), 0);
    jstr(ma, "cutoff_date");
    json_t *md = jget(res, "metrics_delete");
    assert_true(jint(md, "deleted_count") >= 1);
    jstr(md, "cutoff_date");
    /* The periods: 180, 730, 90 and 365 days before the run. */
    {
        long long now = (long long)time(NULL);
        static const struct {
            const char *table;
            int days;
        } periods[] = {{"backfill_jobs", 180},
                       {"feedback", 730},
                       {"metrics_archive", 90},
                       {"metrics_delete", 365}};
        for (size_t i = 0; i < ARRAY_LEN(periods); i++) {
            long long ago = now - naive_secs(jstr(jget(res, periods[i].table),
                                                  "cutoff_date"));
            assert_true(ago >= periods[i].days * 86400LL - 60 &&
                        ago <= periods[i].days * 86400LL + 60);
        }
    }
    assert_int_equal(jint(jget(r.j, "invalidation"), "failures"), 0);
    api_free(&r);

    /* The 200-day-old metric is still there. */
    fmt(path, sizeof(path),
        "/api/v1/monitoring/metrics?service_name=%s&metric_type=middle"
        "&start_time=2000-01-01T00:00:00&end_time=2100-01-01T00:00:00",
        svc);
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    assert_int_equal(json_array_size(r.j), 1);
    api_free(&r);
    fmt(path, sizeof(path), "/api/v1/feedback/stats/%s", id);

    /* What it deleted is gone from the cache too. */
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_string_equal(r.h.x_cache, "MISS");
    assert_int_equal(jint(r.j, "total_ratings"), 0);
    api_free(&r);
    api_req(&api, &r, "GET", body, NULL, NULL, NULL);
    assert_status(&r, 404);
    api_free(&r);

    /* Recent rows survive. */
    api_req(&api, &r, "GET", "/api/v1/feedback/stats/ka", NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);
}

/* ---- shutdown ------------------------------------------------------------ */

static void test_sigterm_exits_zero(void **state)
{
    (void)state;
    assert_int_equal(uc_test_api_stop(&api), 0);
    assert_int_equal(uc_test_api_restart(&api, no_refills), 0);
    api_res_t r;
    api_req(&api, &r, "GET", "/healthz", NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);
    /* The last server too: the group teardown could not fail on it. */
    assert_int_equal(uc_test_api_stop(&api), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_ready_metrics),
        cmocka_unit_test(test_404_405),
        cmocka_unit_test(test_http_conventions),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_stats_etag_and_invalidation),
        cmocka_unit_test(test_average_two_decimals),
        cmocka_unit_test(test_comment_flag_and_pages),
        cmocka_unit_test(test_feedback_validation),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_concurrent_first_writes),
        cmocka_unit_test(test_backfill),
        cmocka_unit_test(test_backfill_errors),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_metrics_errors),
        cmocka_unit_test(test_cache_stats),
        cmocka_unit_test(test_cache_hot),
        cmocka_unit_test(test_database_routes),
        cmocka_unit_test(test_openapi_served),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_sigterm_exits_zero),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
