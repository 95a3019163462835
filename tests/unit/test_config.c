/* SPDX-License-Identifier: MIT */
/*
 * Configuration parsing: redis:// URLs, the existing service's variables, the
 * library's own, and the promise that a bad value is an error naming the
 * variable and never quoting a password. Variables come from a table, not
 * the process environment, so cases cannot leak into each other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "utxocache/utxocache.h"

typedef struct {
    const char *name, *value;
} var_t;

static const char *lookup(void *arg, const char *name)
{
    for (const var_t *v = arg; v->name != NULL; v++) {
        if (strcmp(v->name, name) == 0) {
            return v->value;
        }
    }
    return NULL;
}

static int parse(const var_t *vars, uc_config_t *cfg, char *err)
{
    static const char *names[] = {"feedback_stats", "backfill_job"};
    uc_config_init(cfg);
    err[0] = '\0';
    return uc_config_from_lookup(cfg, lookup, (void *)vars, names, 2, err, 256);
}

static void url_full(void **state)
{
    uc_config_t cfg;
    char err[256];
    (void)state;
    uc_config_init(&cfg);
    assert_int_equal(uc_config_parse_url(&cfg,
                                         "redis://app%40x:p%3Ass@cache.local:"
                                         "6380/3",
                                         err, sizeof(err)),
                     UC_OK);
    assert_string_equal(cfg.username, "app@x");
    assert_string_equal(cfg.password, "p:ss");
    assert_string_equal(cfg.host, "cache.local");
    assert_int_equal(cfg.port, 6380);
    assert_int_equal(cfg.db, 3);
}

static void url_minimal_and_v6(void **state)
{
    uc_config_t cfg;
    char err[256];
    (void)state;
    uc_config_init(&cfg);
    assert_int_equal(
        uc_config_parse_url(&cfg, "redis://localhost", err, sizeof(err)),
        UC_OK);
    assert_string_equal(cfg.host, "localhost");
    assert_int_equal(cfg.port, 6379);
    assert_int_equal(cfg.db, 0);
    assert_string_equal(cfg.password, "");
    assert_int_equal(uc_config_parse_url(&cfg, "redis://:only@[::1]:7000/", err,
                                         sizeof(err)),
                     UC_OK);
    assert_string_equal(cfg.host, "::1");
    assert_int_equal(cfg.port, 7000);
    assert_string_equal(cfg.username, "");
    assert_string_equal(cfg.password, "only");
}

static void url_errors_mask_password(void **state)
{
    static const char *bad[] = {
        "http://u:hunter2@h",        "redis://u:hunter2@h:0",
        "redis://u:hunter2@h:99999", "redis://u:hunter2@h:12ab",
        "redis://u:hunter2@h/x",     "redis://u:hunter2@",
        "redis://u:hunter2%4@h",     "redis://u:hunter2@[::1",
        "redis://u:hunter2%0a@h",    "redis://u:hunter2@h:6379/-1",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uc_config_t cfg;
        char err[256];
        uc_config_init(&cfg);
        assert_int_equal(uc_config_parse_url(&cfg, bad[i], err, sizeof(err)),
                         UC_ECONFIG);
        assert_null(strstr(err, "hunter2"));
        assert_true(strlen(err) > 0);
        /* cfg is untouched on failure */
        assert_string_equal(cfg.host, "");
    }
}

static void env_separate_vars(void **state)
{
    const var_t vars[] = {{"REDIS_HOST", "10.0.0.5"},
                          {"REDIS_PORT", "6390"},
                          {"REDIS_PASSWORD", "s3cret"},
                          {"REDIS_USERNAME", "svc"},
                          {"REDIS_DB", "2"},
                          {"REDIS_MAX_CONNECTIONS", "8"},
                          {"REDIS_CONNECT_TIMEOUT_MS", "150"},
                          {"REDIS_COMMAND_TIMEOUT_MS", "75"},
                          {"UTXOCACHE_KEY_PREFIX", "utxoiq:"},
                          {"UTXOCACHE_TTL_FEEDBACK_STATS", "600"},
                          {"UTXOCACHE_PIPELINE_MAX", "16"},
                          {NULL, NULL}};
    const var_t off[] = {{"UTXOCACHE_PIPELINE_MAX", "0"}, {NULL, NULL}};
    uc_config_t cfg;
    char err[256];
    (void)state;
    assert_int_equal(parse(off, &cfg, err), UC_OK);
    assert_true(cfg.pipeline_max < 0); /* 0 in the environment: off */
    assert_int_equal(parse(vars, &cfg, err), UC_OK);
    assert_int_equal(cfg.pipeline_max, 16);
    assert_string_equal(cfg.host, "10.0.0.5");
    assert_int_equal(cfg.port, 6390);
    assert_string_equal(cfg.password, "s3cret");
    assert_string_equal(cfg.username, "svc");
    assert_int_equal(cfg.db, 2);
    assert_int_equal(cfg.max_connections, 8);
    assert_int_equal(cfg.connect_timeout_ms, 150);
    assert_int_equal(cfg.command_timeout_ms, 75);
    assert_string_equal(cfg.key_prefix, "utxoiq:");
    assert_int_equal(cfg.n_ttl_overrides, 1);
    assert_string_equal(cfg.ttl_overrides[0].keyspace, "feedback_stats");
    assert_int_equal(cfg.ttl_overrides[0].ttl_s, 600);
}

static void env_url_wins(void **state)
{
    const var_t vars[] = {{"REDIS_URL", "redis://h1:7001/1"},
                          {"REDIS_HOST", "h2"},
                          {"REDIS_PORT", "7002"},
                          {NULL, NULL}};
    uc_config_t cfg;
    char err[256];
    (void)state;
    assert_int_equal(parse(vars, &cfg, err), UC_OK);
    assert_string_equal(cfg.host, "h1");
    assert_int_equal(cfg.port, 7001);
    assert_int_equal(cfg.db, 1);
}

static void env_bad_values_name_the_variable(void **state)
{
    static const struct {
        const char *name, *value;
    } cases[] = {
        {"REDIS_PORT", "0"},
        {"REDIS_PORT", "65536"},
        {"REDIS_PORT", "80x"},
        {"REDIS_PORT", ""},
        {"REDIS_PORT", " 80"},
        {"REDIS_DB", "-1"},
        {"REDIS_MAX_CONNECTIONS", "0"},
        {"REDIS_COMMAND_TIMEOUT_MS", "1e3"},
        {"UTXOCACHE_KEY_PREFIX", "bad prefix*"},
        {"UTXOCACHE_BACKEND", "memcached"},
        {"UTXOCACHE_TTL_BACKFILL_JOB", "0"},
        {"UTXOCACHE_MEMORY_MAX_BYTES", "12"},
        {"UTXOCACHE_PIPELINE_MAX", "257"},
        {"UTXOCACHE_PIPELINE_MAX", "-1"},
        {"REDIS_URL", "redis://u:topsecret@h:bad"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const var_t vars[] = {{"REDIS_HOST", "h"},
                              {"REDIS_PASSWORD", "topsecret"},
                              {cases[i].name, cases[i].value},
                              {NULL, NULL}};
        uc_config_t cfg;
        char err[256];
        assert_int_equal(parse(vars, &cfg, err), UC_ECONFIG);
        assert_non_null(strstr(err, cases[i].name));
        assert_null(strstr(err, "topsecret"));
    }
}

static void env_redis_backend_needs_host(void **state)
{
    const var_t vars[] = {{"UTXOCACHE_BACKEND", "redis"}, {NULL, NULL}};
    uc_config_t cfg;
    char err[256];
    (void)state;
    assert_int_equal(parse(vars, &cfg, err), UC_ECONFIG);
    assert_non_null(strstr(err, "REDIS_HOST"));
}

static void describe_never_shows_password(void **state)
{
    uc_config_t cfg;
    char buf[300], err[256];
    (void)state;
    uc_config_init(&cfg);
    uc_config_describe(&cfg, buf, sizeof(buf));
    assert_string_equal(buf, "memory");
    assert_int_equal(
        uc_config_parse_url(&cfg, "redis://u:pw123@h:1/2", err, sizeof(err)),
        UC_OK);
    uc_config_describe(&cfg, buf, sizeof(buf));
    assert_string_equal(buf, "redis://u:***@h:1/2");
}

static void create_rejects_bad_struct(void **state)
{
    uc_config_t cfg;
    uc_cache_t *c = NULL;
    char err[256];
    (void)state;
    uc_config_init(&cfg);
    cfg.backend = UC_BACKEND_REDIS; /* no host */
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_ECONFIG);
    assert_null(c);
    uc_config_init(&cfg);
    snprintf(cfg.key_prefix, sizeof(cfg.key_prefix), "a*b");
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_ECONFIG);
    uc_config_init(&cfg);
    cfg.command_timeout_ms = -5;
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_ECONFIG);
    uc_config_init(&cfg);
    assert_int_equal(uc_cache_create(&cfg, &c, err, sizeof(err)), UC_OK);
    assert_string_equal(uc_cache_backend_name(c), "memory");
    uc_cache_destroy(c);
    uc_cache_destroy(NULL);
}

static void cluster_nodes(void **state)
{
    uc_config_t cfg;
    char err[256];
    const var_t seeds[] = {{"REDIS_CLUSTER_NODES",
                            " 10.0.0.1:7000, [::1]:7001 ,cache-2.local:7002"},
                           {"UTXOCACHE_CLUSTER_REFRESH_MS", "500"},
                           {NULL, NULL}};
    const var_t with_url[] = {{"REDIS_URL", "redis://node9:7009"},
                              {"REDIS_CLUSTER_NODES", "10.0.0.1:7000"},
                              {NULL, NULL}};
    static const char *const bad[] = {
        "10.0.0.1", "10.0.0.1:", ":7000",      "10.0.0.1:0", "h:65536",
        "h:70000x", "h:123456",  "bad host:1", "h/x:1",      "[::1:7000",
    };
    (void)state;

    /* Without REDIS_URL the first node is the host. */
    assert_int_equal(parse(seeds, &cfg, err), UC_OK);
    assert_string_equal(cfg.cluster_nodes,
                        "10.0.0.1:7000,::1:7001,cache-2.local:7002");
    assert_string_equal(cfg.host, "10.0.0.1");
    assert_int_equal(cfg.port, 7000);
    assert_int_equal(cfg.cluster_refresh_ms, 500);
    /* With it, REDIS_URL stays the host and the list adds nodes. */
    assert_int_equal(parse(with_url, &cfg, err), UC_OK);
    assert_string_equal(cfg.host, "node9");
    assert_int_equal(cfg.port, 7009);
    assert_string_equal(cfg.cluster_nodes, "10.0.0.1:7000");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const var_t v[] = {{"REDIS_CLUSTER_NODES", bad[i]}, {NULL, NULL}};

        assert_int_equal(parse(v, &cfg, err), UC_ECONFIG);
        assert_non_null(strstr(err, "REDIS_CLUSTER_NODES"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_full),
        cmocka_unit_test(url_minimal_and_v6),
        cmocka_unit_test(url_errors_mask_password),
        cmocka_unit_test(env_separate_vars),
        cmocka_unit_test(env_url_wins),
        cmocka_unit_test(env_bad_values_name_the_variable),
        cmocka_unit_test(env_redis_backend_needs_host),
        cmocka_unit_test(describe_never_shows_password),
        cmocka_unit_test(create_rejects_bad_struct),
        cmocka_unit_test(cluster_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
