/* SPDX-License-Identifier: MIT */
/*
 * Keyspaces: pattern compilation, key building and escaping, and the shape
 * check that keeps invalidation inside one keyspace. Table-driven; no server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache_int.h"
#include "keyspaces.h"
#include "utxocache/utxocache.h"

static uc_keyspace_t *compile(const char *name, const char *pattern)
{
    uc_keyspace_def_t def = {.name = name, .pattern = pattern, .ttl_s = 60};
    uc_keyspace_t *ks = calloc(1, sizeof(*ks));
    char err[200];
    assert_non_null(ks);
    assert_int_equal(uc__keyspace_compile(ks, &def, err, sizeof(err)), UC_OK);
    return ks;
}

/* The service's one declaration (src/server/keyspaces.c, shared with the
 * CLI) compiles, with the existing service's patterns and TTLs. */
static void service_keyspaces(void **state)
{
    size_t n;
    const uc_keyspace_def_t *d = uq_utxoiq_keyspaces(&n);
    (void)state;
    assert_int_equal(n, UQ_KS_COUNT);
    assert_string_equal(d[UQ_KS_FEEDBACK_STATS].name, "feedback_stats");
    assert_string_equal(d[UQ_KS_FEEDBACK_STATS].pattern,
                        "feedback:stats:{insight_id}");
    assert_int_equal(d[UQ_KS_FEEDBACK_STATS].ttl_s, 3600);
    assert_string_equal(d[UQ_KS_BACKFILL_JOB].pattern, "backfill:job:{job_id}");
    assert_int_equal(d[UQ_KS_BACKFILL_JOB].ttl_s, 300);
    assert_string_equal(
        d[UQ_KS_AGG_METRICS].pattern,
        "metrics:{service}:{metric_type}:agg:{interval}:{start}:{end}");
    assert_int_equal(d[UQ_KS_AGG_METRICS].ttl_s, 3600);
    for (size_t i = 0; i < n; i++) {
        uc_keyspace_t ks;
        char err[200];
        memset(&ks, 0, sizeof(ks));
        assert_int_equal(uc__keyspace_compile(&ks, &d[i], err, sizeof(err)),
                         UC_OK);
    }
}

static void build_keys(void **state)
{
    static const struct {
        const char *value, *key;
    } cases[] = {
        {"insight-42", "feedback:stats:insight-42"},
        {"a_b.c", "feedback:stats:a_b.c"},
        {"*", "feedback:stats:%2A"},
        {"?", "feedback:stats:%3F"},
        {"[a-z]", "feedback:stats:%5Ba-z%5D"},
        {"\\", "feedback:stats:%5C"},
        {"x:y", "feedback:stats:x%3Ay"},
        {"has space", "feedback:stats:has%20space"},
        {"100%", "feedback:stats:100%25"},
        {"caf\xc3\xa9", "feedback:stats:caf%C3%A9"},
    };
    uc_keyspace_t *ks =
        compile("feedback_stats", "feedback:stats:{insight_id}");
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[1100];
        size_t len;
        const char *f[] = {cases[i].value};
        assert_int_equal(uc_keyspace_key(ks, f, 1, buf, sizeof(buf), &len),
                         UC_OK);
        assert_string_equal(buf, cases[i].key);
        assert_int_equal(len, strlen(cases[i].key));
    }
    free(ks);
}

static void bad_fields_rejected(void **state)
{
    char longv[UC_FIELD_MAX + 2];
    const char *bad[] = {"", "a\nb", "tab\there", "del\x7f", longv};
    uc_keyspace_t *ks = compile("k", "k:{id}");
    char buf[2000];
    size_t len;
    (void)state;
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *f[] = {bad[i]};
        assert_int_equal(uc_keyspace_key(ks, f, 1, buf, sizeof(buf), &len),
                         UC_EINVAL);
    }
    /* Exactly the cap is fine. */
    longv[UC_FIELD_MAX] = '\0';
    const char *ok[] = {longv};
    assert_int_equal(uc_keyspace_key(ks, ok, 1, buf, sizeof(buf), &len), UC_OK);
    /* Wrong field count, NULL field. */
    const char *two[] = {"a", "b"};
    assert_int_equal(uc_keyspace_key(ks, two, 2, buf, sizeof(buf), &len),
                     UC_EINVAL);
    const char *none[] = {NULL};
    assert_int_equal(uc_keyspace_key(ks, none, 1, buf, sizeof(buf), &len),
                     UC_EINVAL);
    /* Too small a buffer. */
    const char *f[] = {"abc"};
    assert_int_equal(uc_keyspace_key(ks, f, 1, buf, 4, &len), UC_ETOOBIG);
    free(ks);
}

static void escaping_is_injective(void **state)
{
    /* Values that a naive scheme would map to one key. */
    const char *vals[] = {"a:b", "a%3Ab", "a%253Ab", "a b", "a%20b", "a+b"};
    char keys[6][200];
    uc_keyspace_t *ks = compile("k", "k:{id}");
    (void)state;
    for (size_t i = 0; i < 6; i++) {
        size_t len;
        const char *f[] = {vals[i]};
        assert_int_equal(uc_keyspace_key(ks, f, 1, keys[i], 200, &len), UC_OK);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(keys[i], keys[j]);
        }
    }
    free(ks);
}

static void patterns_validated(void **state)
{
    static const char *bad[] = {
        "a:{id",       /* unclosed */
        "a:{}",        /* empty name */
        "a{id}",       /* field not after ':' */
        "a:{id}b",     /* field not followed by ':' */
        "a:{x}:{x-y}", /* bad field name */
        "a b:{id}",    /* bad literal */
        "a*:{id}",     /* glob in literal */
        "uc:g:{id}",   /* reserved */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uc_keyspace_def_t def = {.name = "ks", .pattern = bad[i], .ttl_s = 60};
        uc_keyspace_t ks;
        char err[200];
        assert_int_equal(uc__keyspace_compile(&ks, &def, err, sizeof(err)),
                         UC_EINVAL);
        assert_non_null(strstr(err, "keyspace 'ks'"));
    }
    uc_keyspace_def_t badname = {
        .name = "Bad-Name", .pattern = "a:{id}", .ttl_s = 60};
    uc_keyspace_def_t zero_ttl = {
        .name = "ok", .pattern = "a:{id}", .ttl_s = 0};
    uc_keyspace_t ks;
    char err[200];
    assert_int_equal(uc__keyspace_compile(&ks, &badname, err, sizeof(err)),
                     UC_EINVAL);
    assert_int_equal(uc__keyspace_compile(&ks, &zero_ttl, err, sizeof(err)),
                     UC_EINVAL);
}

static void shape_check(void **state)
{
    uc_keyspace_t *recent =
        compile("recent_metrics", "metrics:{service}:{metric_type}:recent");
    uc_keyspace_t *agg =
        compile("aggregated_metrics",
                "metrics:{service}:{metric_type}:agg:{interval}:{start}:{end}");
    const char *any[] = {NULL, NULL, NULL, NULL, NULL};
    const char *svc[] = {"api", NULL};
    (void)state;
#define M(ks, key, f) uc__keyspace_matches(ks, key, strlen(key), f)
    assert_true(M(recent, "metrics:api:cpu:recent", any));
    assert_true(M(recent, "metrics:api:cpu:recent", svc));
    assert_false(M(recent, "metrics:web:cpu:recent", svc));
    /* An aggregate whose end field reads "recent" is not a recent key,
     * though the glob metrics:*:recent matches it. */
    assert_false(M(recent, "metrics:api:agg:hour:cpu:recent", any));
    assert_false(M(recent, "metrics:api:cpu:x:recent", any));
    assert_false(M(recent, "metrics::cpu:recent", any));
    assert_true(M(agg, "metrics:api:cpu:agg:hour:1:2", any));
    assert_false(M(agg, "metrics:api:cpu:recent", any));
    assert_false(M(agg, "metrics:api:cpu:agg:hour:1:2:3", any));
#undef M
    free(recent);
    free(agg);
}

static void glob_build(void **state)
{
    uc_keyspace_t *recent =
        compile("recent_metrics", "metrics:{service}:{metric_type}:recent");
    const char *f[] = {"a*", NULL};
    char buf[200];
    size_t len;
    (void)state;
    assert_int_equal(
        uc__keyspace_build(recent, f, 2, 1, buf, sizeof(buf), &len), UC_OK);
    /* The value's '*' is escaped; only the NULL field is a wildcard. */
    assert_string_equal(buf, "metrics:a%2A:*:recent");
    free(recent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(service_keyspaces),
        cmocka_unit_test(build_keys),
        cmocka_unit_test(bad_fields_rejected),
        cmocka_unit_test(escaping_is_injective),
        cmocka_unit_test(patterns_validated),
        cmocka_unit_test(shape_check),
        cmocka_unit_test(glob_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
