/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the utxoiq-api integration tests: requests that parse
 * their JSON answer, field accessors that fail the test with both sides
 * printed, and unique ids so tests sharing one server never see each
 * other's rows.
 */
#ifndef UC_TEST_API_TEST_H
#define UC_TEST_API_TEST_H

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
#include <cmocka.h>

#include "api_server.h"

/* A request whose answer must arrive; body is parsed when it is JSON. */
typedef struct {
    uc_test_http_t h;
    json_t *j; /* NULL when the body is not JSON */
} api_res_t;

static inline void api_req(uc_test_api_t *a, api_res_t *r, const char *method,
                           const char *path, const char *key, const char *body,
                           const char *hdr)
{
    memset(r, 0, sizeof(*r));
    int rc = uc_test_http(a, method, path, key, body,
                          body != NULL ? strlen(body) : 0, hdr, &r->h);
    assert_int_equal(rc, 0);
    r->j = json_loadb(r->h.body, r->h.len, JSON_DECODE_ANY, NULL);
}

static inline void api_free(api_res_t *r)
{
    json_decref(r->j);
    r->j = NULL;
    uc_test_http_release(&r->h);
}

/* Expects status; prints the body when it differs. */
#define assert_status(r, want)                                                 \
    do {                                                                       \
        if ((r)->h.status != (want)) {                                         \
            fprintf(stderr, "body: %s\n", (r)->h.body);                        \
        }                                                                      \
        assert_int_equal((r)->h.status, (want));                               \
    } while (0)

static inline json_t *jget(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL) {
        fprintf(stderr, "missing field '%s'\n", name);
    }
    assert_non_null(v);
    return v;
}

static inline long long jint(json_t *o, const char *name)
{
    json_t *v = jget(o, name);
    assert_true(json_is_integer(v));
    return (long long)json_integer_value(v);
}

static inline double jnum(json_t *o, const char *name)
{
    json_t *v = jget(o, name);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static inline const char *jstr(json_t *o, const char *name)
{
    json_t *v = jget(o, name);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/*
 * The "detail" of an error answer must name `field`. A 422's detail must be
 * FastAPI's list of errors, each with type, loc (starting with "body",
 * "query" or "path"), msg and input; field is then looked for in the loc
 * (joined with dots) or the msg of one of them. Any other status has a
 * string detail.
 */
static inline void assert_detail_names(api_res_t *r, const char *field)
{
    if (r->j == NULL) {
        fprintf(stderr, "not JSON (status %ld): %.*s\n", (long)r->h.status,
                (int)r->h.len, r->h.body != NULL ? r->h.body : "");
    }
    assert_non_null(r->j);
    json_t *d = jget(r->j, "detail");
    if (r->h.status != 422) {
        assert_true(json_is_string(d));
        if (strstr(json_string_value(d), field) == NULL) {
            fprintf(stderr, "detail '%s' does not name '%s'\n",
                    json_string_value(d), field);
        }
        assert_non_null(strstr(json_string_value(d), field));
        return;
    }
    if (!json_is_array(d) || json_array_size(d) == 0) {
        fprintf(stderr, "422 detail is not a list: %s\n", r->h.body);
    }
    assert_true(json_is_array(d) && json_array_size(d) > 0);
    int named = 0;
    size_t i;
    json_t *e;
    json_array_foreach(d, i, e)
    {
        char text[1024];
        size_t n = 0;
        json_t *loc = jget(e, "loc");
        json_t *part;
        size_t k;
        jstr(e, "type");
        jget(e, "input");
        assert_true(json_is_array(loc) && json_array_size(loc) >= 1);
        const char *where = json_string_value(json_array_get(loc, 0));
        assert_non_null(where);
        assert_true(strcmp(where, "body") == 0 || strcmp(where, "query") == 0 ||
                    strcmp(where, "path") == 0);
        json_array_foreach(loc, k, part)
        {
            if (json_is_integer(part)) {
                n += (size_t)snprintf(text + n, sizeof(text) - n, "[%lld]",
                                      (long long)json_integer_value(part));
            } else {
                n +=
                    (size_t)snprintf(text + n, sizeof(text) - n, "%s%s",
                                     k > 0 ? "." : "", json_string_value(part));
            }
            if (n >= sizeof(text)) {
                n = sizeof(text) - 1;
            }
        }
        snprintf(text + n, sizeof(text) - n, " %s", jstr(e, "msg"));
        named |= strstr(text, field) != NULL;
    }
    if (!named) {
        fprintf(stderr, "detail %s does not name '%s'\n", r->h.body, field);
    }
    assert_true(named);
}

/* A 422's first error must be exactly at loc where.field (field NULL: the
 * whole of where) with that type. */
static inline void assert_invalid_at(api_res_t *r, const char *where,
                                     const char *field, const char *type)
{
    if (r->h.status != 422) {
        fprintf(stderr, "body: %s\n", r->h.body);
    }
    assert_int_equal(r->h.status, 422);
    json_t *e = json_array_get(jget(r->j, "detail"), 0);
    assert_non_null(e);
    json_t *loc = jget(e, "loc");
    assert_string_equal(json_string_value(json_array_get(loc, 0)), where);
    if (field != NULL) {
        assert_int_equal(json_array_size(loc), 2);
        assert_string_equal(json_string_value(json_array_get(loc, 1)), field);
    } else {
        assert_int_equal(json_array_size(loc), 1);
    }
    assert_string_equal(jstr(e, "type"), type);
    jstr(e, "msg");
    jget(e, "input");
}

/* A fresh id with a tag: "tag-<pid>-<n>". */
static inline void uniq(char *buf, size_t cap, const char *tag)
{
    static unsigned n;
    snprintf(buf, cap, "%s-%ld-%u", tag, (long)getpid(), ++n);
}

static inline void fmt(char *buf, size_t cap, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static inline void fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, cap, f, ap);
    va_end(ap);
}

/* A time offset_s from now as Python's datetime.utcnow().isoformat() writes
 * it: naive, with microseconds. */
static inline void naive_time(char *buf, size_t cap, long offset_s)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t t = ts.tv_sec + offset_s;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%06ld", (long)(ts.tv_nsec / 1000));
}

/* Seconds since the epoch of a naive UTC time "YYYY-MM-DDTHH:MM:SS...". */
static inline long long naive_secs(const char *t)
{
    int y, mo, d, h, mi, sec;
    assert_int_equal(
        sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec), 6);
    /* Days from civil (Hinnant), as the service computes them. */
    y -= mo <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    long long days = era * 146097 + doe - 719468;
    return days * 86400 + h * 3600 + mi * 60 + sec;
}

/* The naive UTC text of secs since the epoch, with no fraction. */
static inline void naive_of(long long secs, char *buf, size_t cap)
{
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* The query of the original's clients: the last hour, up to now. */
static inline void last_hour(char *path, size_t cap, const char *svc,
                             const char *type, const char *extra)
{
    char from[40], to[40];
    naive_time(from, sizeof(from), -3600);
    naive_time(to, sizeof(to), 0);
    fmt(path, cap,
        "/api/v1/monitoring/metrics?service_name=%s&metric_type=%s"
        "&start_time=%s&end_time=%s%s",
        svc, type, from, to, extra);
}

#endif
