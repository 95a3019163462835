/* SPDX-License-Identifier: MIT */
/*
 * The service's input and output conventions that the original web-api's
 * clients depend on, table-driven: ISO 8601 times in (naive ones as UTC,
 * with or without microseconds, Z or an offset) and out (naive, the
 * fraction dropped when zero, as Python's isoformat()), and the 422 body in
 * FastAPI's shape whoever writes it.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app.h"
#include "request.h"

/* 2026-12-01T23:10:00Z in µs since the epoch. */
#define T_BASE INT64_C(1796166600000000)

static void times_in(void **state)
{
    static const struct {
        const char *text;
        int ok;
        int64_t us;
    } cases[] = {
        {"2026-12-01T23:10:00", 1, T_BASE},
        {"2026-12-01T23:10:00.123456", 1, T_BASE + 123456},
        {"2026-12-01T23:10:00.5", 1, T_BASE + 500000},
        {"2026-12-01T23:10:00Z", 1, T_BASE},
        {"2026-12-01T23:10:00.123456Z", 1, T_BASE + 123456},
        {"2026-12-01T23:10:00+00:00", 1, T_BASE},
        {"2026-12-02T01:10:00+02:00", 1, T_BASE},
        {"2026-12-01T22:10:00-01:00", 1, T_BASE},
        {"2026-12-01 23:10:00", 0, 0},
        {"2026-12-01T23:10", 0, 0},
        {"2026-12-01T23:10:00.", 0, 0},
        {"2026-12-01T23:10:00+0000", 0, 0},
        {"2026-02-30T00:00:00", 0, 0},
        {"yesterday", 0, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t us = -1;
        int rc = uq_time_parse(cases[i].text, &us);
        if ((rc == 0) != cases[i].ok) {
            fprintf(stderr, "case %s\n", cases[i].text);
        }
        assert_int_equal(rc == 0, cases[i].ok);
        if (cases[i].ok) {
            assert_true(us == cases[i].us);
        }
    }
}

static void times_out(void **state)
{
    char buf[40];
    (void)state;
    uq_time_format_naive(T_BASE, buf, sizeof(buf));
    assert_string_equal(buf, "2026-12-01T23:10:00");
    uq_time_format_naive(T_BASE + 123456, buf, sizeof(buf));
    assert_string_equal(buf, "2026-12-01T23:10:00.123456");
    uq_time_format_naive(T_BASE + 1, buf, sizeof(buf));
    assert_string_equal(buf, "2026-12-01T23:10:00.000001");
    /* What goes out comes back. */
    int64_t us = 0;
    assert_int_equal(uq_time_parse(buf, &us), 0);
    assert_true(us == T_BASE + 1);
    uq_time_format(T_BASE, buf, sizeof(buf));
    assert_string_equal(buf, "2026-12-01T23:10:00.000000Z");
}

/* The first error of a 422 body. */
static json_t *first_error(uq_resp_t *res)
{
    assert_int_equal(res->status, 422);
    json_t *j = json_loadb(res->body, res->len, 0, NULL);
    assert_non_null(j);
    json_t *d = json_object_get(j, "detail");
    assert_true(json_is_array(d));
    assert_int_equal(json_array_size(d), 1);
    json_t *e = json_incref(json_array_get(d, 0));
    json_decref(j);
    return e;
}

static void release(uq_resp_t *res)
{
    if (res->body_free != NULL) {
        res->body_free(res->body);
    }
    memset(res, 0, sizeof(*res));
}

static void invalid_shapes(void **state)
{
    uq_resp_t res;
    json_t *e;
    (void)state;

    /* An item's field of a body array: ["body", 3, "metric_value"]. */
    memset(&res, 0, sizeof(res));
    json_t *in = json_string("x");
    uq_resp_invalid(&res, "body", "[3].metric_value", "float_type", in, NULL,
                    "Input should be a valid number");
    json_decref(in);
    e = first_error(&res);
    json_t *loc = json_object_get(e, "loc");
    assert_int_equal(json_array_size(loc), 3);
    assert_string_equal(json_string_value(json_array_get(loc, 0)), "body");
    assert_int_equal(json_integer_value(json_array_get(loc, 1)), 3);
    assert_string_equal(json_string_value(json_array_get(loc, 2)),
                        "metric_value");
    assert_string_equal(json_string_value(json_object_get(e, "type")),
                        "float_type");
    assert_string_equal(json_string_value(json_object_get(e, "input")), "x");
    json_decref(e);
    release(&res);

    /* A 422 written the old way is a list too. */
    uq_resp_error(&res, 422, "job: rejected by a database constraint");
    e = first_error(&res);
    loc = json_object_get(e, "loc");
    assert_string_equal(json_string_value(json_array_get(loc, 1)), "job");
    assert_string_equal(json_string_value(json_object_get(e, "msg")),
                        "rejected by a database constraint");
    assert_true(json_is_null(json_object_get(e, "input")));
    json_decref(e);
    release(&res);

    /* Other statuses keep {"detail": "text"}. */
    uq_resp_error(&res, 400,
                  "end_block must be greater than or equal to "
                  "start_block");
    json_t *j = json_loadb(res.body, res.len, 0, NULL);
    assert_int_equal(res.status, 400);
    assert_true(json_is_string(json_object_get(j, "detail")));
    json_decref(j);
    release(&res);
}

static void field_readers(void **state)
{
    uq_resp_t res;
    const char *s;
    long long x;
    json_t *e;
    (void)state;
    memset(&res, 0, sizeof(res));

    /* Characters, not bytes: 50 two-byte characters fit 50. */
    char wide[101];
    for (int i = 0; i < 50; i++) {
        wide[2 * i] = (char)0xc3;
        wide[2 * i + 1] = (char)0xa9;
    }
    wide[100] = '\0';
    json_t *o =
        json_pack("{s:s,s:I}", "job_type", wide, "start_block", (json_int_t)-1);
    assert_int_equal(
        uq__json_get_str(o, "job_type", NULL, 1, 1, 50, 0, &s, &res), 0);
    assert_int_equal(
        uq__json_get_str(o, "job_type", NULL, 1, 1, 49, 0, &s, &res), -1);
    e = first_error(&res);
    assert_string_equal(json_string_value(json_object_get(e, "type")),
                        "string_too_long");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(e, "ctx"), "max_length")),
                     49);
    json_decref(e);
    release(&res);

    assert_int_equal(
        uq__json_get_int(o, "start_block", NULL, 1, 0, 10, &x, NULL, &res), -1);
    e = first_error(&res);
    assert_string_equal(json_string_value(json_object_get(e, "type")),
                        "greater_than_equal");
    assert_string_equal(json_string_value(json_object_get(e, "msg")),
                        "Input should be greater than or equal to 0");
    json_decref(e);
    release(&res);

    assert_int_equal(
        uq__json_get_int(o, "end_block", NULL, 1, 0, 10, &x, NULL, &res), -1);
    e = first_error(&res);
    assert_string_equal(json_string_value(json_object_get(e, "type")),
                        "missing");
    assert_string_equal(json_string_value(json_object_get(e, "msg")),
                        "Field required");
    /* pydantic quotes the object the field is missing from. */
    assert_true(json_is_object(json_object_get(e, "input")));
    json_decref(e);
    release(&res);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(times_in),
        cmocka_unit_test(times_out),
        cmocka_unit_test(invalid_shapes),
        cmocka_unit_test(field_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
