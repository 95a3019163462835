/* SPDX-License-Identifier: MIT */
/*
 * hello: the smallest complete program over libutxocache. It opens a cache
 * from the environment (REDIS_URL for Redis; nothing, or
 * UTXOCACHE_BACKEND=memory, for the in-process store), stores and reads one
 * key, then answers one keyspace read through get-or-load the way a service
 * does in front of its database. It prints what it did and exits 0, or
 * prints one line on stderr and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utxocache/utxocache.h>

/* Stands in for a database query: hands over a malloc()ed JSON body. */
static int load_stats(void *arg, const char *const *fields, size_t nfields,
                      char **val, size_t *len)
{
    const char *body = arg;
    (void)fields;
    (void)nfields;
    size_t n = strlen(body);
    char *copy = malloc(n + 1);

    if (copy == NULL) {
        return UC_ENOMEM;
    }
    memcpy(copy, body, n + 1);
    *val = copy;
    *len = n;
    return UC_OK;
}

static const char *source_name(uc_source_t s)
{
    switch (s) {
    case UC_FROM_CACHE:
        return "cache";
    case UC_FROM_LOADER:
        return "loader";
    case UC_FROM_FALLBACK:
        return "fallback";
    case UC_FROM_BYPASS:
        return "database (invalidation pending)";
    }
    return "?";
}

/* The program's one keyspace, declared with its loader. */
static const uc_keyspace_def_t defs[] = {
    {.name = "feedback_stats",
     .pattern = "feedback:stats:{insight_id}",
     .ttl_s = 3600,
     .loader = load_stats,
     .loader_arg = "{\"total_ratings\":3}"},
};

int main(void)
{
    uc_config_t cfg = UC_CONFIG_INIT;
    uc_cache_t *cache = NULL;
    uc_keyspace_t *ks;
    const char *fields[] = {"insight-42"};
    char err[256] = "";
    char *val = NULL;
    size_t len = 0;
    size_t nks = sizeof(defs) / sizeof(defs[0]);
    int status = 1;
    int rc;

    rc = uc_config_from_env(&cfg, NULL, 0, err, sizeof(err));
    if (rc == UC_OK) {
        rc = uc_cache_create(&cfg, &cache, err, sizeof(err));
    }
    if (rc == UC_OK) {
        rc = uc_cache_add_keyspaces(cache, defs, nks, err, sizeof(err));
    }
    if (rc != UC_OK) {
        fprintf(stderr, "hello: %s\n", err[0] != '\0' ? err : uc_strerror(rc));
        goto cleanup;
    }
    /* uc_version() is the library that was loaded, UC_VERSION_STRING the
     * headers this program was compiled with. */
    printf("hello: libutxocache %s (headers %s), backend %s\n", uc_version(),
           UC_VERSION_STRING, uc_cache_backend_name(cache));

    rc = uc_cache_set(cache, "hello", 5, "world", 5, 60000);
    if (rc == UC_OK) {
        rc = uc_cache_get(cache, "hello", 5, &val, &len);
    }
    if (rc != UC_OK) {
        fprintf(stderr, "hello: key 'hello': %s\n", uc_strerror(rc));
        goto cleanup;
    }
    printf("hello: get 'hello' -> '%.*s'\n", (int)len, val);
    uc_free(val);
    val = NULL;

    /* The first read loads and stores; the second is served by the cache. */
    ks = uc_cache_keyspace(cache, "feedback_stats");
    for (int i = 0; i < 2 && ks != NULL; i++) {
        uc_load_result_t r;
        rc = uc_keyspace_get_or_load(ks, fields, 1, NULL, &r);
        if (rc != UC_OK) {
            fprintf(stderr, "hello: feedback_stats: %s\n", uc_strerror(rc));
            goto cleanup;
        }
        printf("hello: feedback_stats 'insight-42' from %s: %.*s\n",
               source_name(r.source), (int)r.len, r.data);
        uc_free(r.data);
    }
    status = ks != NULL ? 0 : 1;
cleanup:
    uc_cache_destroy(cache);
    return status;
}
