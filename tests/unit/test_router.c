/* SPDX-License-Identifier: MIT */
/*
 * The router and the ETags (src/server/router.c) on a table of the test's
 * own:
 *
 *   - exact paths win over "{}" patterns, whatever their order in the
 *     table; a "{}" takes one non-empty segment and gives it back;
 *   - HEAD is routed as GET; a path known under another method is a 405
 *     (known), an unknown one a 404;
 *   - Allow lists each method once, HEAD beside GET, and never overflows;
 *   - If-None-Match: exact tags, lists, weak tags, "*", and malformed
 *     values that match nothing; the formatted tag is 16 hex digits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"

static void h(uq_app_t *app, uq_req_t *req, uq_resp_t *res)
{
    (void)app;
    (void)req;
    (void)res;
}

/* The pattern first, so that order is not what makes exact paths win. */
static const uq_route_t table[] = {
    {"GET", "/jobs/{}", 0, h, "job", 0, {0}},
    {"POST", "/jobs/{}", 0, h, "job_update", 0, {0}},
    {"GET", "/jobs/status", 0, h, "status", 0, {0}},
    {"POST", "/jobs/start", 0, h, "start", 0, {0}},
    {"GET", "/health", 0, h, "health", 0, {0}},
};
#define N (sizeof(table) / sizeof(table[0]))

static int find(const char *method, const char *path, const char **param,
                int *known)
{
    return uq_route_find(table, N, method, path, param, known);
}

static void exact_beats_pattern(void **state)
{
    const char *param;
    int known;

    (void)state;
    assert_int_equal(find("GET", "/jobs/status", &param, &known), 2);
    assert_null(param);
    assert_int_equal(find("GET", "/jobs/abc-1", &param, &known), 0);
    assert_string_equal(param, "abc-1");
    assert_int_equal(find("POST", "/jobs/abc-1", &param, &known), 1);
    assert_string_equal(param, "abc-1");
    assert_int_equal(find("HEAD", "/health", &param, &known), 4);
    assert_int_equal(find("HEAD", "/jobs/x", &param, &known), 0);
}

static void not_found_and_not_allowed(void **state)
{
    const char *param;
    int known;

    (void)state;
    /* known under GET only */
    assert_int_equal(find("POST", "/jobs/status", &param, &known), -1);
    assert_true(known);
    assert_int_equal(find("DELETE", "/jobs/x", &param, &known), -1);
    assert_true(known);
    assert_int_equal(find("POST", "/health", &param, &known), -1);
    assert_true(known);
    /* unknown: no segment, two segments, another prefix */
    assert_int_equal(find("GET", "/jobs/", &param, &known), -1);
    assert_false(known);
    assert_int_equal(find("GET", "/jobs/a/b", &param, &known), -1);
    assert_false(known);
    assert_int_equal(find("GET", "/jobsx", &param, &known), -1);
    assert_false(known);
    assert_int_equal(find("GET", "/healthz", &param, &known), -1);
    assert_false(known);
    assert_int_equal(find("GET", "", &param, &known), -1);
    assert_false(known);
}

static void allow_header(void **state)
{
    char buf[64];

    (void)state;
    uq_route_allow(table, N, "/jobs/status", buf, sizeof(buf));
    assert_string_equal(buf, "GET, HEAD");
    uq_route_allow(table, N, "/jobs/start", buf, sizeof(buf));
    assert_string_equal(buf, "POST");
    uq_route_allow(table, N, "/jobs/x", buf, sizeof(buf));
    assert_string_equal(buf, "GET, HEAD, POST");
    uq_route_allow(table, N, "/nowhere", buf, sizeof(buf));
    assert_string_equal(buf, "");
    /* too small for everything: what fits, terminated */
    char small[12];
    memset(small, 'z', sizeof(small));
    uq_route_allow(table, N, "/jobs/x", small, sizeof(small));
    assert_non_null(memchr(small, '\0', sizeof(small)));
    assert_string_equal(small, "GET, HEAD");
}

static void etags(void **state)
{
    char tag[UQ_ETAG_MAX];

    (void)state;
    uq_etag_format(0x0123456789abcdefULL, tag);
    assert_string_equal(tag, "\"0123456789abcdef\"");
    uq_etag_format(0, tag);
    assert_string_equal(tag, "\"0000000000000000\"");

    const char *t = "\"0123456789abcdef\"";
    assert_true(uq_etag_matches("\"0123456789abcdef\"", t));
    assert_true(uq_etag_matches("W/\"0123456789abcdef\"", t));
    assert_true(uq_etag_matches("\"aaaa\", \"0123456789abcdef\"", t));
    assert_true(uq_etag_matches("\"aaaa\",W/\"0123456789abcdef\"", t));
    assert_true(uq_etag_matches("*", t));
    assert_false(uq_etag_matches("\"0123456789abcdee\"", t));
    assert_false(uq_etag_matches("\"0123456789abcdef-gz\"", t));
    assert_false(uq_etag_matches("\"0123456789abcde\"", t));
    assert_false(uq_etag_matches("0123456789abcdef", t));   /* unquoted */
    assert_false(uq_etag_matches("\"0123456789abcdef", t)); /* unclosed */
    assert_false(uq_etag_matches("", t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact_beats_pattern),
        cmocka_unit_test(not_found_and_not_allowed),
        cmocka_unit_test(allow_header),
        cmocka_unit_test(etags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
