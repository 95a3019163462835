/* SPDX-License-Identifier: MIT */
/*
 * The OpenAPI document against the route table it is built from
 * (src/server/openapi.c, src/server/api/routes.c):
 *
 *   - every route of the table is an operation at its method and path,
 *     its operationId the route's name, its "{}" named by a path
 *     parameter, and the document has no operation the table lacks;
 *   - a protected route says so (security, x-roles, 401 and 403); a
 *     public one asks for no key;
 *   - every $ref resolves to a schema of the components;
 *   - route names are unique, as operationIds must be.
 *
 * The document's validity as OpenAPI 3.1 is checked by a maintained
 * validator on the served /openapi.json (test_api_http).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "openapi.h"

static json_t *doc;

static int setup(void **state)
{
    char err[256] = "";

    (void)state;
    doc = uq_openapi_build(err, sizeof(err));
    if (doc == NULL) {
        fprintf(stderr, "uq_openapi_build: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(doc);
    return 0;
}

/* The document's path of a route: its "{}" as "{<path parameter>}". */
static json_t *op_of(const uq_route_t *rt, char *path, size_t cap)
{
    json_t *paths = json_object_get(doc, "paths");
    size_t pl = strlen(rt->pattern);
    char method[8];
    size_t k = 0;

    for (; rt->method[k] != '\0' && k < sizeof(method) - 1; k++) {
        method[k] = (char)(rt->method[k] | 0x20);
    }
    method[k] = '\0';
    if (pl >= 2 && strcmp(rt->pattern + pl - 2, "{}") == 0) {
        /* find the one path of the document with this prefix and a
         * single {name} segment at the end */
        const char *key;
        json_t *item;
        json_object_foreach(paths, key, item)
        {
            size_t kl = strlen(key);
            if (strncmp(key, rt->pattern, pl - 2) == 0 && kl > pl &&
                key[pl - 2] == '{' && key[kl - 1] == '}' &&
                strchr(key + pl - 2, '/') == NULL &&
                json_object_get(item, method) != NULL) {
                snprintf(path, cap, "%s", key);
                return json_object_get(item, method);
            }
        }
        return NULL;
    }
    snprintf(path, cap, "%s", rt->pattern);
    return json_object_get(json_object_get(paths, rt->pattern), method);
}

static void every_route_documented(void **state)
{
    size_t n = 0;
    const uq_route_t *rt = uq_api_routes(&n);
    size_t ops = 0;
    const char *key;
    json_t *item;

    (void)state;
    assert_true(n > 20);
    for (size_t i = 0; i < n; i++) {
        char path[256];
        json_t *op = op_of(&rt[i], path, sizeof(path));
        if (op == NULL) {
            fail_msg("%s %s (%s) is not in the document", rt[i].method,
                     rt[i].pattern, rt[i].name);
        }
        assert_string_equal(
            json_string_value(json_object_get(op, "operationId")), rt[i].name);
        if (strchr(path, '{') != NULL) {
            /* the segment's name is a required path parameter */
            char name[64];
            const char *b = strrchr(path, '{');
            snprintf(name, sizeof(name), "%.*s", (int)(strlen(b) - 2), b + 1);
            int found = 0;
            size_t j;
            json_t *p;
            json_array_foreach(json_object_get(op, "parameters"), j, p)
            {
                if (strcmp(json_string_value(json_object_get(p, "in")),
                           "path") == 0 &&
                    strcmp(json_string_value(json_object_get(p, "name")),
                           name) == 0 &&
                    json_is_true(json_object_get(p, "required"))) {
                    found = 1;
                }
            }
            assert_true(found);
        }
    }
    json_object_foreach(json_object_get(doc, "paths"), key, item)
    {
        ops += json_object_size(item);
    }
    assert_int_equal(ops, n);
}

static void security_matches_roles(void **state)
{
    size_t n = 0;
    const uq_route_t *rt = uq_api_routes(&n);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        char path[256];
        json_t *op = op_of(&rt[i], path, sizeof(path));
        json_t *responses = json_object_get(op, "responses");
        assert_non_null(json_object_get(responses, "200"));
        if (rt[i].roles != 0) {
            assert_non_null(json_object_get(op, "security"));
            assert_true(json_array_size(json_object_get(op, "x-roles")) > 0);
            assert_non_null(json_object_get(responses, "401"));
            assert_non_null(json_object_get(responses, "403"));
        } else {
            assert_null(json_object_get(op, "security"));
            assert_null(json_object_get(responses, "401"));
        }
    }
}

/* Walks v; fails on a $ref that names no component schema. */
static void refs_resolve_in(json_t *v, json_t *schemas, size_t *refs)
{
    const char *key;
    json_t *x;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach(v, key, x)
        {
            if (strcmp(key, "$ref") == 0) {
                const char *r = json_string_value(x);
                const char *pfx = "#/components/schemas/";
                assert_non_null(r);
                assert_memory_equal(r, pfx, strlen(pfx));
                if (json_object_get(schemas, r + strlen(pfx)) == NULL) {
                    fail_msg("$ref %s names no schema", r);
                }
                (*refs)++;
            } else {
                refs_resolve_in(x, schemas, refs);
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            refs_resolve_in(x, schemas, refs);
        }
    }
}

static void refs_resolve(void **state)
{
    json_t *schemas =
        json_object_get(json_object_get(doc, "components"), "schemas");
    size_t refs = 0;

    (void)state;
    assert_non_null(schemas);
    refs_resolve_in(doc, schemas, &refs);
    assert_true(refs > 30);
}

static void names_unique(void **state)
{
    size_t n = 0;
    const uq_route_t *rt = uq_api_routes(&n);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            if (strcmp(rt[i].name, rt[j].name) == 0) {
                fail_msg("route name %s twice", rt[i].name);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_route_documented),
        cmocka_unit_test(security_matches_roles),
        cmocka_unit_test(refs_resolve),
        cmocka_unit_test(names_unique),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
