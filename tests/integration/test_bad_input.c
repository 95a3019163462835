/* SPDX-License-Identifier: MIT */
/*
 * Bad input against the real utxoiq-api binary (with its own Redis) over
 * loopback: oversized headers, URI and bodies, slow and idle connections,
 * malformed JSON, wrong content types, numbers out of range, unknown enum
 * values, unicode, control bytes and SQL-looking strings in every string
 * field of every POST endpoint (one table), and hostile ids that reach cache
 * keys. Each bad request must get a 4xx with a message, each good one must
 * round-trip byte for byte, and the service must keep serving others. Raw
 * sockets are used where libcurl would rewrite the request.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "api_test.h"
#include "redis_server.h"
#include "util.h"

static uc_test_redis_t redis;
static uc_test_api_t api;
static char user_key[128];
static char admin_key[128];
static char svc_key[128];
static char job_id[64];

/* The connection timeout the service runs with in this test (seconds). */
#define CONN_TIMEOUT_S 2
/* Every wait on the server is bounded by this. */
#define WAIT_MS 10000

static int group_setup(void **state)
{
    static char redis_url[128];
    (void)state;
    if (uc_test_redis_start(&redis, NULL) != 0) {
        return -1;
    }
    snprintf(redis_url, sizeof(redis_url), "REDIS_URL=redis://127.0.0.1:%d/0",
             redis.port);
    /* Generous Redis deadlines: this suite checks what reaches a cache key,
     * not timeouts, and under TSan on a loaded machine a 250 ms command
     * deadline can open the breaker, turning a victim's expected HIT into
     * a fallback MISS that says nothing about key isolation. */
    const char *env[] = {redis_url,
                         "UTXOIQ_CONNECTION_TIMEOUT_S=2",
                         "UTXOIQ_ACCESS_LOG=0",
                         "REDIS_COMMAND_TIMEOUT_MS=3000",
                         "REDIS_CONNECT_TIMEOUT_MS=3000",
                         NULL};
    const uc_test_api_user_t users[] = {
        {"tbl-user", "user", user_key, sizeof(user_key)},
        {"ops", "admin", admin_key, sizeof(admin_key)},
        {"svc", "service", svc_key, sizeof(svc_key)},
    };
    if (uc_test_api_start(&api, NULL, env) != 0) {
        return -1;
    }
    return uc_test_api_keys(&api, users, sizeof(users) / sizeof(users[0]));
}

static int group_teardown(void **state)
{
    (void)state;
    uc_test_api_destroy(&api);
    uc_test_redis_stop(&redis);
    return 0;
}

/* The service answers a plain request. */
static void assert_serving(void)
{
    api_res_t r;
    api_req(&api, &r, "GET", "/healthz", NULL, NULL, NULL);
    assert_status(&r, 200);
    api_free(&r);
}

/* ---- raw sockets ----------------------------------------------------------
 */

static int raw_connect(void)
{
    struct sockaddr_in sa;
    struct timeval tv = {WAIT_MS / 1000, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)api.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* the server may close early on an oversized request */
        }
        p += w;
        len -= (size_t)w;
    }
}

/*
 * Reads an answer until the server closes (requests carry Connection:
 * close) or WAIT_MS passes. Returns the status, copies the body (after the
 * blank line) to body. -1 when no status line arrived.
 */
static int raw_read(int fd, char *body, size_t cap)
{
    size_t len = 0, bufcap = 1 << 16;
    char *buf = malloc(bufcap);
    int status = -1;
    assert_non_null(buf);
    for (;;) {
        ssize_t n = recv(fd, buf + len, bufcap - 1 - len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (len == bufcap - 1) {
            break;
        }
    }
    buf[len] = '\0';
    if (len > 12 && strncmp(buf, "HTTP/1.", 7) == 0) {
        status = (int)strtol(buf + 9, NULL, 10);
    }
    if (body != NULL) {
        const char *b = strstr(buf, "\r\n\r\n");
        snprintf(body, cap, "%s", b != NULL ? b + 4 : "");
    }
    free(buf);
    return status;
}

/* One request over a fresh connection; returns the status. */
static int raw_request(const char *req, size_t len, char *body, size_t cap)
{
    int fd = raw_connect();
    send_all(fd, req, len);
    int st = raw_read(fd, body, cap);
    close(fd);
    return st;
}

/* POST with a Content-Type of our choice (NULL: none) over a raw socket. */
static int raw_post(const char *path, const char *key, const char *ctype,
                    const char *json, char *body, size_t cap)
{
    char req[4096];
    char ct[128] = "";
    if (ctype != NULL) {
        fmt(ct, sizeof(ct), "Content-Type: %s\r\n", ctype);
    }
    fmt(req, sizeof(req),
        "POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        "Authorization: Bearer %s\r\n%sContent-Length: %zu\r\n\r\n%s",
        path, key, ct, strlen(json), json);
    return raw_request(req, strlen(req), body, cap);
}

/* 1 when the server closes fd within ms (reads and drops any answer). */
static int closed_within(int fd, unsigned ms)
{
    uint64_t end = uc_test_now_ms() + ms;
    char buf[4096];
    while (uc_test_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, 100);
        if (n > 0) {
            ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                return 1;
            }
        }
    }
    return 0;
}

/* ---- oversized requests ---------------------------------------------------
 */

static void test_oversized_headers(void **state)
{
    (void)state;
    size_t big = 40 * 1024;
    char *req = malloc(big + 256);
    assert_non_null(req);

    /* One huge header, sent in two halves with a normal request between:
     * the service keeps serving while a connection fills its memory. */
    int n = snprintf(req, 256, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 4);
    size_t len = (size_t)n + big + 4;
    int fd = raw_connect();
    send_all(fd, req, 1000);
    assert_serving();
    send_all(fd, req + 1000, len - 1000);
    int st = raw_read(fd, NULL, 0);
    close(fd);
    assert_int_equal(st, 431);
    assert_serving();

    /* Many small headers adding up past the limit. */
    size_t pos =
        (size_t)snprintf(req, big, "GET /healthz HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; pos + 32 < big; i++) {
        pos += (size_t)snprintf(req + pos, big - pos, "X-H%d: v\r\n", i);
    }
    pos += (size_t)snprintf(req + pos, big + 256 - pos, "\r\n");
    assert_int_equal(raw_request(req, pos, NULL, 0), 431);
    assert_serving();
    free(req);
}

static void test_oversized_uri(void **state)
{
    (void)state;
    size_t big = 40 * 1024;
    char *req = malloc(big + 128);
    assert_non_null(req);
    int n = snprintf(req, 128, "GET /api/v1/feedback/stats?insight_id=");
    memset(req + n, 'a', big);
    int m = snprintf(req + n + big, 128, " HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(raw_request(req, (size_t)n + big + (size_t)m, NULL, 0),
                     414);
    assert_serving();

    /* A long URI that fits is parsed, and the over-long id is refused by
     * the service itself. */
    char path[1200];
    memset(path, 0, sizeof(path));
    n = snprintf(path, sizeof(path), "/api/v1/feedback/stats?insight_id=");
    memset(path + n, 'a', 1000);
    api_res_t r;
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 422);
    assert_detail_names(&r, "insight_id");
    api_free(&r);
    free(req);
}

/* A JSON body of exactly len bytes: a valid rating padded with spaces. */
static char *padded_rating(size_t len)
{
    char *b = malloc(len + 1);
    assert_non_null(b);
    int n = snprintf(b, len + 1, "{\"insight_id\":\"big\",\"rating\":3}");
    memset(b + n, ' ', len - (size_t)n);
    b[len] = '\0';
    return b;
}

static void test_oversized_body(void **state)
{
    (void)state;
    api_res_t r;
    char *b = padded_rating(64 * 1024 + 1);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, b, NULL);
    assert_status(&r, 413);
    assert_detail_names(&r, "body");
    api_free(&r);
    free(b);

    /* The limit itself is accepted, on the same keep-alive connection. */
    b = padded_rating(64 * 1024);
    api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, b, NULL);
    assert_status(&r, 200);
    api_free(&r);
    free(b);

    /* The batch route allows 1 MiB, not a byte more. */
    size_t blen = 1024 * 1024 + 1;
    b = malloc(blen + 1);
    assert_non_null(b);
    memset(b, ' ', blen);
    b[0] = '[';
    b[blen - 1] = ']';
    b[blen] = '\0';
    api_req(&api, &r, "POST", "/api/v1/monitoring/metrics/batch", svc_key, b,
            NULL);
    assert_status(&r, 413);
    assert_detail_names(&r, "body");
    api_free(&r);
    free(b);

    /* A huge Content-Length with Expect: 100-continue is refused before the
     * body is sent; a huge body sent anyway ends in 413 too. */
    char req[512], body[512];
    fmt(req, sizeof(req),
        "POST /api/v1/feedback/rate HTTP/1.1\r\nHost: t\r\n"
        "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        "Content-Length: 104857600\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n",
        user_key);
    assert_int_equal(raw_request(req, strlen(req), body, sizeof(body)), 413);
    assert_non_null(strstr(body, "\"detail\""));
    assert_serving();
}

/* ---- slow and idle connections --------------------------------------------
 */

static void test_slow_client(void **state)
{
    (void)state;
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: "
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int fd = raw_connect();
    int closed = 0;
    /*
     * One byte a second, others served meanwhile: each gap is shorter than
     * MHD's idle timeout (CONN_TIMEOUT_S), which therefore never fires, so
     * only the request deadline can close the connection, and it must do so
     * while the client is still sending (82 bytes, 82 s without it). No
     * wait after the last byte: there the idle timeout would close it too
     * and the check would pass without the deadline.
     */
    for (size_t i = 0; i < sizeof(head) - 1 && !closed; i++) {
        send_all(fd, head + i, 1);
        assert_serving();
        closed = closed_within(fd, 1000);
    }
    close(fd);
    assert_true(closed);

    /* A slow body: complete headers, then a byte a second. */
    char req[512];
    fmt(req, sizeof(req),
        "POST /api/v1/feedback/rate HTTP/1.1\r\nHost: t\r\n"
        "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        "Content-Length: 200\r\n\r\n{",
        user_key);
    fd = raw_connect();
    send_all(fd, req, strlen(req));
    closed = 0;
    for (int i = 0; i < 40 && !closed; i++) {
        send_all(fd, " ", 1);
        closed = closed_within(fd, 1000);
    }
    close(fd);
    assert_true(closed);
    assert_serving();
}

#define N_IDLE 200

static void test_many_idle(void **state)
{
    (void)state;
    int fds[N_IDLE];
    for (int i = 0; i < N_IDLE; i++) {
        fds[i] = raw_connect();
    }
    /* Half of them start a request and stop. */
    for (int i = 0; i < N_IDLE; i += 2) {
        send_all(fds[i], "GET /hea", 8);
    }
    for (int i = 0; i < 5; i++) {
        assert_serving();
    }
    int closed = 0;
    for (int i = 0; i < N_IDLE; i++) {
        /* The first wait covers the timeout; the rest are already closed. */
        closed += closed_within(fds[i], WAIT_MS);
        close(fds[i]);
    }
    assert_int_equal(closed, N_IDLE);
    assert_serving();
}

/* ---- JSON, content types, numbers ------------------------------------------
 */

static void expect(const char *path, const char *key, const char *body,
                   long status, const char *field)
{
    api_res_t r;
    api_req(&api, &r, "POST", path, key, body, NULL);
    if (r.h.status != status) {
        fprintf(stderr, "POST %s %s\n", path, body);
    }
    assert_status(&r, status);
    if (field != NULL) {
        assert_detail_names(&r, field);
    }
    api_free(&r);
}

static void test_malformed_json(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{",
        "{\"insight_id\":}",
        "[1,",
        "nul",
        "{\"insight_id\":\"a\",\"rating\":3,}",
        "{'insight_id':'a','rating':3}",
        "{\"insight_id\":\"a\",\"insight_id\":\"b\",\"rating\":3}",
        "{\"insight_id\":\"a\",\"rating\":3} trailing",
        "\xef\xbb\xbf{\"insight_id\":\"a\",\"rating\":3}",
    };
    const char *rate = "/api/v1/feedback/rate";
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect(rate, user_key, bad[i], 400, "body");
    }
    expect(rate, user_key, "[]", 422, "body");
    /* A scalar at the top is not a JSON text jansson accepts here. */
    expect(rate, user_key, "\"x\"", 400, "body");
    expect(rate, user_key, "42", 400, "body");
    expect("/api/v1/monitoring/metrics/batch", svc_key, "{}", 422, "body");
    /* The original stored nothing and answered the empty list. */
    expect("/api/v1/monitoring/metrics/batch", svc_key, "[]", 200, NULL);
    expect("/api/v1/monitoring/metrics/batch", svc_key, "[1]", 422, "[0]");
    /* An empty body goes through curl as a zero-length POST. */
    api_res_t r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(
        uc_test_http(&api, "POST", rate, user_key, "", 0, NULL, &r.h), 0);
    r.j = json_loadb(r.h.body, r.h.len, 0, NULL);
    assert_status(&r, 400);
    assert_detail_names(&r, "body");
    api_free(&r);
    assert_serving();
}

static void test_content_types(void **state)
{
    (void)state;
    static const char json[] = "{\"insight_id\":\"ct\",\"rating\":2}";
    static const char *const bad[] = {"text/plain",
                                      "application/x-www-form-urlencoded",
                                      "multipart/form-data; boundary=x",
                                      "application/jsonx",
                                      "",
                                      NULL};
    char body[1024];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int st = raw_post("/api/v1/feedback/rate", user_key, bad[i], json, body,
                          sizeof(body));
        if (st != 415) {
            fprintf(stderr, "Content-Type '%s': %d %s\n",
                    bad[i] != NULL ? bad[i] : "(none)", st, body);
        }
        assert_int_equal(st, 415);
        assert_non_null(strstr(body, "\"detail\":\"Content-Type"));
    }
    static const char *const good[] = {"application/json",
                                       "application/json; charset=utf-8",
                                       "Application/JSON"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(raw_post("/api/v1/feedback/rate", user_key, good[i],
                                  json, body, sizeof(body)),
                         200);
        assert_non_null(strstr(body, "\"insight_id\":\"ct\""));
    }
}

static void test_numbers(void **state)
{
    (void)state;
    const char *rate = "/api/v1/feedback/rate";
    static const struct {
        const char *v;
        long status;
        const char *field;
    } ratings[] = {
        {"0", 422, "rating"},
        {"6", 422, "rating"},
        {"-1", 422, "rating"},
        {"9223372036854775807", 422, "rating"},
        {"-9223372036854775808", 422, "rating"},
        /* Integral numbers and digit strings pass, as pydantic's lax mode
         * takes them; anything with a fraction does not. */
        {"4.0", 200, NULL},
        {"\"4\"", 200, NULL},
        {"\"6\"", 422, "rating"},
        {"\"4.5\"", 422, "rating"},
        {"\"4x\"", 422, "rating"},
        {"4.5", 422, "rating"},
        {"true", 422, "rating"},
        {"null", 422, "rating"},
        {"[4]", 422, "rating"},
        {"{}", 422, "rating"},
        /* jansson refuses these while parsing: the body is malformed. */
        {"1e309", 400, "body"},
        {"9223372036854775808", 400, "body"},
        {"-1e309", 400, "body"},
        {"NaN", 400, "body"},
        {"Infinity", 400, "body"},
        {"1", 200, NULL},
        {"5", 200, NULL},
    };
    char b[256];
    for (size_t i = 0; i < sizeof(ratings) / sizeof(ratings[0]); i++) {
        fmt(b, sizeof(b), "{\"insight_id\":\"num\",\"rating\":%s}",
            ratings[i].v);
        expect(rate, user_key, b, ratings[i].status, ratings[i].field);
    }
    const char *start = "/api/v1/monitoring/backfill/start";
    expect(start, admin_key,
           "{\"job_type\":\"j\",\"start_block\":-1,\"end_block\":2}", 422,
           "start_block");
    expect(start, admin_key,
           "{\"job_type\":\"j\",\"start_block\":1,\"end_block\":100000001}",
           422, "end_block");
    /* A domain error, after the model's checks: the original's 400. */
    expect(start, admin_key,
           "{\"job_type\":\"j\",\"start_block\":5,\"end_block\":4}", 400,
           "end_block");
    char path[128];
    fmt(path, sizeof(path), "/api/v1/monitoring/backfill/progress?job_id=%s",
        job_id);
    expect(path, svc_key, "{\"current_block\":1,\"progress_percentage\":100.5}",
           422, "progress_percentage");
    expect(path, svc_key, "{\"current_block\":1,\"progress_percentage\":-0.1}",
           422, "progress_percentage");
    expect(path, svc_key, "{\"current_block\":1,\"progress_percentage\":\"1\"}",
           422, "progress_percentage");
    const char *met = "/api/v1/monitoring/metrics";
    expect(met, svc_key,
           "{\"service_name\":\"s\",\"metric_type\":\"t\",\"unit\":\"u\","
           "\"metric_value\":1e309}",
           400, "body");
    expect(met, svc_key,
           "{\"service_name\":\"s\",\"metric_type\":\"t\",\"unit\":\"u\","
           "\"metric_value\":\"1\"}",
           422, "metric_value");
    expect(met, svc_key,
           "{\"service_name\":\"s\",\"metric_type\":\"t\",\"unit\":\"u\","
           "\"metric_value\":1,\"metric_metadata\":\"x\"}",
           422, "metric_metadata");
    /* Unknown enum values. */
    expect("/api/v1/feedback/flag", user_key,
           "{\"insight_id\":\"e\",\"flag_type\":\"SPAM\"}", 422, "flag_type");
    expect(path, svc_key,
           "{\"current_block\":1,\"progress_percentage\":1,\"status\":"
           "\"done\"}",
           422, "status");
    api_res_t r;
    api_req(&api, &r, "GET",
            "/api/v1/monitoring/metrics/aggregate?service_name=s&metric_type="
            "t&interval=month",
            NULL, NULL, NULL);
    assert_status(&r, 422);
    assert_detail_names(&r, "interval");
    api_free(&r);
    /* Hostile job ids in the query and the path. */
    expect("/api/v1/monitoring/backfill/progress?job_id=%27%20OR%201%3D1",
           svc_key, "{\"current_block\":1,\"progress_percentage\":1}", 422,
           "job_id");
    api_req(&api, &r, "GET", "/api/v1/monitoring/backfill/*", NULL, NULL, NULL);
    assert_status(&r, 422);
    assert_detail_names(&r, "job_id");
    api_free(&r);
    assert_serving();
}

/* ---- every string field of every POST endpoint ------------------------------
 */

typedef enum {
    K_ID,   /* 1..128 bytes, no control bytes */
    K_FBID, /* a feedback id: 1..100 characters, no control bytes */
    K_NAME, /* characters (the original's VARCHAR), no control bytes */
    K_TEXT, /* characters, newlines allowed */
    K_ENUM,
    K_TIME,
    K_META, /* a value inside metric_metadata: opaque JSON */
} kind_t;

typedef enum { EP_FEEDBACK, EP_JOB, EP_METRIC, EP_BATCH } ep_t;

typedef struct {
    const char *path; /* "%s": the job id */
    ep_t ep;
    const char *tmpl; /* "%s": the field's JSON value */
    const char *field;
    const char *label; /* what the detail must name */
    kind_t kind;
    size_t min, max;
} field_t;

#define FB_RATE "/api/v1/feedback/rate"
#define FB_COMMENT "/api/v1/feedback/comment"
#define FB_FLAG "/api/v1/feedback/flag"
#define BF_START "/api/v1/monitoring/backfill/start"
#define BF_PROG "/api/v1/monitoring/backfill/progress?job_id=%s"
#define MET "/api/v1/monitoring/metrics"
#define MET_B "/api/v1/monitoring/metrics/batch"
#define MET_OBJ(a, b, c, d)                                                    \
    "{\"service_name\":" a ",\"metric_type\":" b ",\"metric_value\":1.5,"      \
    "\"unit\":" c ",\"metric_metadata\":{\"k\":" d "}}"

static const field_t FIELDS[] = {
    {FB_RATE, EP_FEEDBACK, "{\"insight_id\":%s,\"rating\":4}", "insight_id",
     "insight_id", K_FBID, 1, 100},
    {FB_RATE, EP_FEEDBACK, "{\"insight_id\":\"t\",\"rating\":4,\"comment\":%s}",
     "comment", "comment", K_TEXT, 1, 1000},
    {FB_COMMENT, EP_FEEDBACK, "{\"insight_id\":%s,\"comment\":\"c\"}",
     "insight_id", "insight_id", K_FBID, 1, 100},
    {FB_COMMENT, EP_FEEDBACK, "{\"insight_id\":\"t\",\"comment\":%s}",
     "comment", "comment", K_TEXT, 1, 1000},
    {FB_FLAG, EP_FEEDBACK, "{\"insight_id\":%s,\"flag_type\":\"spam\"}",
     "insight_id", "insight_id", K_FBID, 1, 100},
    {FB_FLAG, EP_FEEDBACK, "{\"insight_id\":\"t\",\"flag_type\":%s}",
     "flag_type", "flag_type", K_ENUM, 0, 0},
    {FB_FLAG, EP_FEEDBACK,
     "{\"insight_id\":\"t\",\"flag_type\":\"spam\",\"flag_reason\":%s}",
     "flag_reason", "flag_reason", K_TEXT, 1, 500},
    {BF_START, EP_JOB, "{\"job_type\":%s,\"start_block\":1,\"end_block\":2}",
     "job_type", "job_type", K_NAME, 1, 50},
    {BF_START, EP_JOB,
     "{\"job_type\":\"j\",\"start_block\":1,\"end_block\":2,\"created_by\":%s}",
     "created_by", "created_by", K_NAME, 1, 100},
    {BF_PROG, EP_JOB,
     "{\"current_block\":1,\"progress_percentage\":1,\"status\":%s}", "status",
     "status", K_ENUM, 0, 0},
    {BF_PROG, EP_JOB,
     "{\"current_block\":1,\"progress_percentage\":1,\"error_message\":%s}",
     "error_message", "error_message", K_TEXT, 0, 0},
    {BF_PROG, EP_JOB,
     "{\"current_block\":1,\"progress_percentage\":1,"
     "\"estimated_completion\":%s}",
     "estimated_completion", "estimated_completion", K_TIME, 0, 0},
    {MET, EP_METRIC, MET_OBJ("%s", "\"t\"", "\"u\"", "1"), "service_name",
     "service_name", K_NAME, 1, 100},
    {MET, EP_METRIC, MET_OBJ("\"tbl-svc\"", "%s", "\"u\"", "1"), "metric_type",
     "metric_type", K_NAME, 1, 50},
    {MET, EP_METRIC, MET_OBJ("\"tbl-svc\"", "\"t\"", "%s", "1"), "unit", "unit",
     K_NAME, 1, 20},
    {MET, EP_METRIC, MET_OBJ("\"tbl-svc\"", "\"t\"", "\"u\"", "%s"), "k",
     "metric_metadata", K_META, 0, 0},
    {MET_B, EP_BATCH, "[" MET_OBJ("%s", "\"t\"", "\"u\"", "1") "]",
     "service_name", "[0].service_name", K_NAME, 1, 100},
    {MET_B, EP_BATCH, "[" MET_OBJ("\"tbl-svc\"", "%s", "\"u\"", "1") "]",
     "metric_type", "[0].metric_type", K_NAME, 1, 50},
    {MET_B, EP_BATCH, "[" MET_OBJ("\"tbl-svc\"", "\"t\"", "%s", "1") "]",
     "unit", "[0].unit", K_NAME, 1, 20},
    {MET_B, EP_BATCH, "[" MET_OBJ("\"tbl-svc\"", "\"t\"", "\"u\"", "%s") "]",
     "k", "[0].metric_metadata", K_META, 0, 0},
};

typedef enum {
    V_PLAIN, /* printable: good where the length fits */
    V_NL,    /* newline or tab: good in free text and metadata only */
    V_CTRL,  /* an escaped control character: good in metadata only */
    V_NUL,   /* \u0000: bad everywhere */
    V_RAW,   /* bytes that make the JSON text invalid: 400 "body" */
    V_TYPE,  /* not a string: 422 naming the field */
} vclass_t;

typedef struct {
    const char *json;    /* the value as it appears in the body */
    const char *decoded; /* what must come back */
    size_t chars;        /* code points of decoded */
    vclass_t cls;
} value_t;

static const value_t VALUES[] = {
    {"\"caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87\"",
     "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87", 7, V_PLAIN},
    {"\"\xf0\x9f\x98\x80 emoji\"", "\xf0\x9f\x98\x80 emoji", 7, V_PLAIN},
    {"\"\\ud83d\\ude00\\u00fc\"", "\xf0\x9f\x98\x80\xc3\xbc", 2, V_PLAIN},
    {"\"'; DROP TABLE insight_feedback; --\"",
     "'; DROP TABLE insight_feedback; --", 34, V_PLAIN},
    {"\"\\\" OR 1=1 --\"", "\" OR 1=1 --", 11, V_PLAIN},
    {"\"a*b?c[d]:e\\\\f g%h{i}\"", "a*b?c[d]:e\\f g%h{i}", 19, V_PLAIN},
    {"\"line\\nbreak\\ttab\"", "line\nbreak\ttab", 14, V_NL},
    {"\"a\\u0001b\"",
     "a\x01"
     "b",
     3, V_CTRL},
    {"\"a\\u007fb\"",
     "a\x7f"
     "b",
     3, V_CTRL},
    {"\"a\\u0085b\"",
     "a\xc2\x85"
     "b",
     3, V_CTRL},
    {"\"a\\u001bb\"",
     "a\x1b"
     "b",
     3, V_CTRL},
    {"\"a\\u0000b\"", NULL, 0, V_NUL},
    {"\"a\x01"
     "b\"",
     NULL, 0, V_RAW},
    {"\"a\xff"
     "b\"",
     NULL, 0, V_RAW},
    {"\"a\xc0\xaf"
     "b\"",
     NULL, 0, V_RAW},
    {"\"a\xed\xa0\x80"
     "b\"",
     NULL, 0, V_RAW},
    {"\"\\ud800\"", NULL, 0, V_RAW},
    {"42", NULL, 0, V_TYPE},
    {"true", NULL, 0, V_TYPE},
    {"[\"a\"]", NULL, 0, V_TYPE},
    {"{\"a\":\"b\"}", NULL, 0, V_TYPE},
};

/* The stored row as another request reads it back. */
static json_t *read_back(const field_t *f, json_t *posted)
{
    char path[1024];
    api_res_t r;
    json_t *row = NULL;
    json_t *obj = f->ep == EP_BATCH ? json_array_get(posted, 0) : posted;
    assert_non_null(obj);
    if (f->ep == EP_JOB) {
        fmt(path, sizeof(path), "/api/v1/monitoring/backfill/%s",
            jstr(obj, "id"));
        api_req(&api, &r, "GET", path, NULL, NULL, NULL);
        assert_status(&r, 200);
        row = json_incref(r.j);
        api_free(&r);
        return row;
    }
    const char *list; /* NULL: the answer is the list itself */
    const char *key = NULL;
    if (f->ep == EP_FEEDBACK && strcmp(f->field, "flag_reason") == 0) {
        /* The user page has the original's fields, which leave the reason
         * out; a rating answers with the whole stored row. */
        char body[1024];
        char *b = json_dumps(jget(obj, "insight_id"), JSON_ENCODE_ANY);
        assert_non_null(b);
        fmt(body, sizeof(body), "{\"insight_id\":%s,\"rating\":4}", b);
        free(b);
        api_req(&api, &r, "POST", "/api/v1/feedback/rate", user_key, body,
                NULL);
        assert_status(&r, 200);
        assert_string_equal(jstr(r.j, "id"), jstr(obj, "id"));
        row = json_incref(r.j);
        api_free(&r);
        return row;
    }
    if (f->ep == EP_FEEDBACK) {
        fmt(path, sizeof(path), "/api/v1/feedback/user?limit=100");
        key = user_key;
        list = "feedback";
    } else {
        char *s = curl_easy_escape(NULL, jstr(obj, "service_name"), 0);
        char *t = curl_easy_escape(NULL, jstr(obj, "metric_type"), 0);
        fmt(path, sizeof(path),
            "/api/v1/monitoring/metrics?service_name=%s&metric_type=%s&"
            "start_time=2000-01-01T00:00:00&end_time=2100-01-01T00:00:00&"
            "limit=10000",
            s, t);
        curl_free(s);
        curl_free(t);
        list = NULL;
    }
    api_req(&api, &r, "GET", path, key, NULL, NULL);
    assert_status(&r, 200);
    json_t *items = list != NULL ? jget(r.j, list) : r.j;
    assert_true(json_is_array(items));
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        /* Row ids are UUID strings, as the original's. */
        if (strcmp(jstr(it, "id"), jstr(obj, "id")) == 0) {
            row = json_incref(it);
        }
    }
    api_free(&r);
    if (row == NULL) {
        fprintf(stderr, "row %s not read back from %s\n", jstr(obj, "id"),
                path);
    }
    assert_non_null(row);
    return row;
}

/* The field's string in a stored row (metadata: its "k"). */
static json_t *field_of(const field_t *f, json_t *row)
{
    if (f->kind == K_META) {
        return json_object_get(json_object_get(row, "metric_metadata"), "k");
    }
    return json_object_get(row, f->field);
}

static void assert_same_string(json_t *v, const char *want)
{
    if (!json_is_string(v) || json_string_length(v) != strlen(want) ||
        memcmp(json_string_value(v), want, strlen(want)) != 0) {
        fprintf(stderr, "want '%s', got '%s'\n", want,
                json_is_string(v) ? json_string_value(v) : "(not a string)");
    }
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), strlen(want));
    assert_memory_equal(json_string_value(v), want, strlen(want));
}

/* What the service must answer for value v in field f: 0 = success. */
static long expected(const field_t *f, const value_t *v)
{
    if (v->cls == V_RAW) {
        return 400;
    }
    if (f->kind == K_META) {
        return v->cls == V_NUL ? 422 : 0;
    }
    if (v->cls == V_TYPE || v->cls == V_NUL || v->cls == V_CTRL ||
        f->kind == K_ENUM || f->kind == K_TIME) {
        return 422;
    }
    if (v->cls == V_NL && f->kind != K_TEXT) {
        return 422;
    }
    /* max 0: no limit of its own (the original's TEXT). */
    size_t n = f->kind == K_ID ? strlen(v->decoded) : v->chars;
    return n >= f->min && (f->max == 0 || n <= f->max) ? 0 : 422;
}

/* Copies tmpl to out with its first "%s" replaced by v (tables hold the
 * templates, so printf would see a non-literal format). */
static void subst(char *out, size_t cap, const char *tmpl, const char *v)
{
    const char *at = strstr(tmpl, "%s");
    if (at == NULL) {
        snprintf(out, cap, "%s", tmpl);
        return;
    }
    snprintf(out, cap, "%.*s%s%s", (int)(at - tmpl), tmpl, v, at + 2);
}

static void try_value(const field_t *f, const value_t *v, const char *json_v)
{
    char path[256], body[8192];
    api_res_t r;
    subst(path, sizeof(path), f->path, job_id);
    subst(body, sizeof(body), f->tmpl, json_v);
    const char *key = svc_key;
    if (f->ep == EP_FEEDBACK) {
        key = user_key;
    } else if (strcmp(f->path, BF_START) == 0) {
        key = admin_key;
    }
    long want = v != NULL ? expected(f, v) : 422;
    api_req(&api, &r, "POST", path, key, body, NULL);
    if ((want == 0 && r.h.status >= 300) || (want != 0 && r.h.status != want)) {
        fprintf(stderr, "POST %s field %s value %s: want %ld got %ld %s\n",
                path, f->field, json_v, want, r.h.status, r.h.body);
    }
    if (want != 0) {
        assert_int_equal(r.h.status, want);
        assert_detail_names(&r, want == 400 ? "body" : f->label);
    } else if (v->cls == V_TYPE) {
        /* A non-string inside metadata is data like any other. */
        assert_int_equal(r.h.status, 200);
    } else {
        assert_int_equal(r.h.status, 200);
        json_t *posted = f->ep == EP_BATCH ? json_array_get(r.j, 0) : r.j;
        assert_same_string(field_of(f, posted), v->decoded);
        json_t *row = read_back(f, r.j);
        assert_same_string(field_of(f, row), v->decoded);
        json_decref(row);
    }
    api_free(&r);
}

static void test_every_string_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(FIELDS) / sizeof(FIELDS[0]); i++) {
        const field_t *f = &FIELDS[i];
        for (size_t k = 0; k < sizeof(VALUES) / sizeof(VALUES[0]); k++) {
            try_value(f, &VALUES[k], VALUES[k].json);
        }
        if (f->max > 0) {
            /* One character past the limit, in multi-byte characters where
             * the limit counts characters. */
            char big[8192];
            size_t pos = 0;
            big[pos++] = '"';
            for (size_t n = 0; n <= f->max; n++) {
                if (f->kind != K_ID) {
                    memcpy(big + pos, "\xc3\xbc", 2);
                    pos += 2;
                } else {
                    big[pos++] = 'x';
                }
            }
            big[pos++] = '"';
            big[pos] = '\0';
            try_value(f, NULL, big);
            if (f->kind != K_ID) {
                /* The limit itself, in 2-byte characters, is accepted. */
                big[pos - 3] = '"';
                big[pos - 2] = '\0';
                char dec[8192];
                memcpy(dec, big + 1, pos - 4);
                dec[pos - 4] = '\0';
                value_t ok = {big, dec, f->max, V_PLAIN};
                try_value(f, &ok, big);
            }
        }
    }
    assert_serving();
}

/* ---- hostile ids reaching cache keys ----------------------------------------
 */

typedef struct {
    char body[4096];
    char etag[80];
} snap_t;

/* GET path; must be a hit (when hit) with the snapshot's body. */
static void get_cached(const char *path, snap_t *s, int want_hit)
{
    api_res_t r;
    api_req(&api, &r, "GET", path, NULL, NULL, NULL);
    assert_status(&r, 200);
    if (want_hit) {
        if (strcmp(r.h.x_cache, "HIT") != 0) {
            fprintf(stderr, "%s: X-Cache %s\n", path, r.h.x_cache);
        }
        assert_string_equal(r.h.x_cache, "HIT");
        assert_string_equal(r.h.body, s->body);
    } else {
        snprintf(s->body, sizeof(s->body), "%s", r.h.body);
    }
    api_free(&r);
}

static void test_hostile_cache_ids(void **state)
{
    (void)state;
    char a[64], b[64], pa[256], pb[256], body[1024];
    uniq(a, sizeof(a), "victim");
    uniq(b, sizeof(b), "victim");
    fmt(pa, sizeof(pa), "/api/v1/feedback/stats?insight_id=%s", a);
    fmt(pb, sizeof(pb), "/api/v1/feedback/stats/%s", b);
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":5}", a);
    expect(FB_RATE, user_key, body, 200, NULL);
    fmt(body, sizeof(body), "{\"insight_id\":\"%s\",\"rating\":2}", b);
    expect(FB_RATE, user_key, body, 200, NULL);

    /* Metric series of a victim, with its recent page and aggregate. */
    const char *mp = "/api/v1/monitoring/metrics?service_name=victim-svc&"
                     "metric_type=t&start_time=2000-01-01T00:00:00&"
                     "end_time=2100-01-01T00:00:00";
    const char *ap = "/api/v1/monitoring/metrics/aggregate?service_name="
                     "victim-svc&metric_type=t";
    expect(MET, svc_key,
           "{\"service_name\":\"victim-svc\",\"metric_type\":\"t\","
           "\"metric_value\":3,\"unit\":\"u\"}",
           200, NULL);

    snap_t sa, sb, sm, sg;
    get_cached(pa, &sa, 0);
    get_cached(pb, &sb, 0);
    get_cached(mp, &sm, 0);
    get_cached(ap, &sg, 0);
    get_cached(pa, &sa, 1);
    get_cached(pb, &sb, 1);
    get_cached(mp, &sm, 1);
    get_cached(ap, &sg, 1);

    /* Ids that would widen a pattern, cross a key separator, escape, or
     * collide with a victim's key after naive escaping. */
    char long_id[300];
    memset(long_id, 'v', 299);
    long_id[299] = '\0';
    const char *hostile[] = {"*",          "victim*",
                             "victim-*",   "victim-?*",
                             "[v]*",       "v[a-z]*",
                             "*:*",        ":",
                             "\\",         "\\*",
                             "victim\\-*", "victim *",
                             " ",          "feedback:stats:*",
                             "%2A",        long_id};
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        json_t *id = json_string(hostile[i]);
        char *idj = json_dumps(id, JSON_ENCODE_ANY);
        json_decref(id);
        int too_long = strlen(hostile[i]) > 128;
        fmt(body, sizeof(body), "{\"insight_id\":%s,\"rating\":1}", idj);
        expect(FB_RATE, user_key, body, too_long ? 422 : 200,
               too_long ? "insight_id" : NULL);
        fmt(body, sizeof(body),
            "{\"service_name\":%s,\"metric_type\":\"t\",\"metric_value\":1,"
            "\"unit\":\"u\"}",
            idj);
        expect(MET, svc_key, body, too_long ? 422 : 200,
               too_long ? "service_name" : NULL);
        free(idj);

        /* The hostile id's own stats are its own. */
        char *esc = curl_easy_escape(NULL, hostile[i], 0);
        char path[1024];
        fmt(path, sizeof(path), "/api/v1/feedback/stats?insight_id=%s", esc);
        curl_free(esc);
        api_res_t r;
        api_req(&api, &r, "GET", path, NULL, NULL, NULL);
        if (too_long) {
            assert_status(&r, 422);
            assert_detail_names(&r, "insight_id");
        } else {
            assert_status(&r, 200);
            assert_string_equal(jstr(r.j, "insight_id"), hostile[i]);
            assert_int_equal(jint(r.j, "total_ratings"), 1);
        }
        api_free(&r);

        /* The victims' entries are untouched: same bytes, still hits. */
        get_cached(pa, &sa, 1);
        get_cached(pb, &sb, 1);
        get_cached(mp, &sm, 1);
        get_cached(ap, &sg, 1);
    }
}

static int test_setup_job(void **state)
{
    api_res_t r;
    (void)state;
    api_req(&api, &r, "POST", BF_START, admin_key,
            "{\"job_type\":\"blocks\",\"start_block\":1,\"end_block\":10}",
            NULL);
    if (r.h.status != 200 || r.j == NULL) {
        api_free(&r);
        return -1;
    }
    snprintf(job_id, sizeof(job_id), "%s",
             json_string_value(json_object_get(r.j, "id")));
    api_free(&r);
    return 0;
}

/* Last: the service that served every test above drains and exits 0; a
 * sanitizer report or a leak at exit makes that status non-zero. A test,
 * not the group teardown, since cmocka ignores a teardown that fails. */
static void test_service_exits_zero(void **state)
{
    (void)state;
    assert_int_equal(uc_test_api_stop(&api), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oversized_headers),
        cmocka_unit_test(test_oversized_uri),
        cmocka_unit_test(test_oversized_body),
        cmocka_unit_test(test_slow_client),
        cmocka_unit_test(test_many_idle),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test_setup(test_numbers, test_setup_job),
        cmocka_unit_test_setup(test_every_string_field, test_setup_job),
        cmocka_unit_test(test_hostile_cache_ids),
        cmocka_unit_test(test_service_exits_zero),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
