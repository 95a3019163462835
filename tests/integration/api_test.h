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

/* The "detail" of an error answer must name `field`. */
static inline void assert_detail_names(api_res_t *r, const char *field)
{
    assert_non_null(r->j);
    const char *d = jstr(r->j, "detail");
    if (strstr(d, field) == NULL) {
        fprintf(stderr, "detail '%s' does not name '%s'\n", d, field);
    }
    assert_non_null(strstr(d, field));
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

#endif
