/* SPDX-License-Identifier: MIT */
/*
 * The cache handle: resolves configuration defaults, picks the store, wires
 * the worker and the pending set, adds the key prefix to raw key
 * operations, declares keyspaces and counts statistics. Keyspace reads and
 * fills are in load.c, invalidation in invalidate.c, the background thread
 * in worker.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cache_int.h"
#include "utxocache/utxocache.h"

#define FULLKEY_MAX UC__FULLKEY_MAX

void uc_free(void *p)
{
    free(p);
}

void uc_values_release(uc_value_t *vals, size_t n)
{
    if (vals == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(vals[i].data);
        vals[i].data = NULL;
        vals[i].len = 0;
    }
}

static void resolve_defaults(uc_config_t *c)
{
#define DEF(field, value)                                                      \
    if (c->field == 0) {                                                       \
        c->field = (value);                                                    \
    }
    DEF(port, 6379);
    DEF(max_connections, 50);
    DEF(connect_timeout_ms, 250);
    DEF(command_timeout_ms, 250);
    DEF(acquire_timeout_ms, 100);
    DEF(pipeline_max, 64);
    DEF(idle_timeout_ms, 60000);
    DEF(backoff_base_ms, 25);
    DEF(backoff_max_ms, 2000);
    DEF(breaker_threshold, 5);
    DEF(breaker_cooldown_ms, 1000);
    DEF(scan_batch, 500);
    DEF(memory_max_bytes, (size_t)64 * 1024 * 1024);
    DEF(log_tail_ms, 200);
    DEF(lease_ms, 10000);
    DEF(trust_check_ms, 1000);
    DEF(cluster_refresh_ms, 1000);
    DEF(near_max_bytes, (size_t)64 * 1024 * 1024);
    DEF(near_heartbeat_ms, 100);
    DEF(near_deadline_ms, 250);
    DEF(soft_timeout_ms, 50);
    DEF(warm_top, 1000);
    DEF(warm_rate, 100);
    DEF(hot_sample, 8);
    DEF(hot_sample_above, 20000);
    DEF(refill_top, 1000);
    DEF(refill_rate, 1000);
    DEF(refill_wait_ms, 50);
    if (c->hot_capacity == 0) {
        /* Ten counters per entry warmed: with four, a Zipf stream's K-th
         * entry already falls below the counters' floor (tests/unit,
         * test_hot). */
        int ten = c->warm_top > 0 && c->warm_top <= UC__HOT_CAPACITY_MAX / 10
                      ? 10 * c->warm_top
                  : c->warm_top > 0 ? UC__HOT_CAPACITY_MAX
                                    : 10000;
        c->hot_capacity = ten < 1024 ? 1024 : ten;
    }
#undef DEF
    if (c->backend == UC_BACKEND_AUTO) {
        c->backend = c->host[0] != '\0' ? UC_BACKEND_REDIS : UC_BACKEND_MEMORY;
    }
}

static int check_config(const uc_config_t *c, char *err, size_t errlen)
{
    const char *bad = NULL;

    if (c->port < 1 || c->port > 65535) {
        bad = "port must be 1-65535";
    } else if (c->db < 0) {
        bad = "db must be >= 0";
    } else if (c->max_connections < 0 || c->connect_timeout_ms < 0 ||
               c->command_timeout_ms < 0 || c->acquire_timeout_ms < 0 ||
               c->idle_timeout_ms < 0 || c->backoff_base_ms < 0 ||
               c->backoff_max_ms < 0 || c->breaker_threshold < 0 ||
               c->breaker_cooldown_ms < 0 || c->scan_batch < 0 ||
               c->log_tail_ms < 0 || c->lease_ms < 0 || c->trust_check_ms < 0 ||
               c->warm_rate < 0 || c->hot_sample < 0 || c->refill_rate < 0) {
        bad = "limits and timeouts must not be negative";
    } else if (c->backend == UC_BACKEND_REDIS && c->host[0] == '\0') {
        bad = "the redis backend needs a host";
    } else if (c->backend != UC_BACKEND_AUTO &&
               c->backend != UC_BACKEND_MEMORY &&
               c->backend != UC_BACKEND_REDIS) {
        bad = "unknown backend";
    } else if (memchr(c->key_prefix, '\0', sizeof(c->key_prefix)) == NULL ||
               memchr(c->host, '\0', sizeof(c->host)) == NULL ||
               memchr(c->username, '\0', sizeof(c->username)) == NULL ||
               memchr(c->password, '\0', sizeof(c->password)) == NULL ||
               memchr(c->cluster_nodes, '\0', sizeof(c->cluster_nodes)) ==
                   NULL) {
        bad = "a string field is not NUL-terminated";
    } else {
        for (const char *p = c->key_prefix; *p != '\0'; p++) {
            char ch = *p;
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || strchr("._:-", ch) != NULL)) {
                bad = "key prefix must be [A-Za-z0-9._:-]";
                break;
            }
        }
    }
    if (bad != NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "cache config: %s", bad);
        }
        return UC_ECONFIG;
    }
    return UC_OK;
}

/* ---- the near cache's channel ---------------------------------------------
 */

static void on_keys(void *arg, const char *const *keys, const size_t *klens,
                    size_t n)
{
    uc_cache_t *c = arg;

    for (size_t i = 0; i < n; i++) {
        uc__near_invalidate(c->near, keys[i], klens[i]);
        uc__flight_notify(&c->flights, keys[i], klens[i], 0);
    }
}

static void on_flush(void *arg, uc__flush_reason_t why)
{
    uc_cache_t *c = arg;

    (void)why; /* counted by the channel */
    uc__near_flush(c->near);
    uc__flight_notify_all(&c->flights, 0);
}

static void on_healthy(void *arg)
{
    uc_cache_t *c = arg;

    /* Nothing is admitted while the channel is not healthy, but a reader
     * that passed the check just before it failed may have kept a value
     * since: start from empty. */
    uc__near_flush(c->near);
}

/* The near cache and its channel, for a Redis cache that fills (not for an
 * operator's tool, which only looks). */
/*
 * The store's primaries changed (a cluster's slot map): the near cache's
 * channel follows each of them, with the tag that places its heartbeat
 * keys on that node.
 */
static void store_nodes(void *arg, const uc__store_node_t *nodes, size_t n)
{
    uc_cache_t *c = arg;
    uc__track_node_t tn[UC__TRACK_NODES_MAX];
    int rc;

    if (c->track == NULL || n == 0) {
        return;
    }
    if (n > UC__TRACK_NODES_MAX) {
        n = UC__TRACK_NODES_MAX;
    }
    memset(tn, 0, n * sizeof(tn[0]));
    for (size_t i = 0; i < n; i++) {
        snprintf(tn[i].host, sizeof(tn[i].host), "%s", nodes[i].host);
        tn[i].port = nodes[i].port;
        snprintf(tn[i].tag, sizeof(tn[i].tag), "%s", nodes[i].tag);
    }
    rc = uc__track_set_nodes(c->track, tn, n);
    if (rc != UC_OK) {
        uc__log(&c->env, UC_LOG_WARN,
                "near cache: following %zu redis primaries failed (%s); "
                "it stays bypassed",
                n, uc_strerror(rc));
    }
}

static int near_start(uc_cache_t *c, char *err, size_t errlen)
{
    uc__track_cb_t cb = {on_keys, on_flush, on_healthy, NULL, c};
    uc__track_opts_t to;
    int rc;

    if (c->env.cfg.backend != UC_BACKEND_REDIS || c->env.cfg.near_off ||
        c->env.cfg.observer) {
        return UC_OK;
    }
    rc = uc__near_create(UC__KEYSPACES_MAX, &c->near);
    if (rc != UC_OK) {
        return rc;
    }
    memset(&to, 0, sizeof(to));
    to.hb_ms = c->env.cfg.near_heartbeat_ms;
    to.hb_deadline_ms = c->env.cfg.near_deadline_ms;
    rc = uc__track_start(&c->env, &to, &cb, &c->track, err, errlen);
    if (rc != UC_OK) {
        uc__near_destroy(c->near);
        c->near = NULL;
    }
    return rc;
}

/* Splits the near budget: keyspaces with their own take it, the others
 * share what is left equally. */
static void near_budgets(uc_cache_t *c)
{
    uint64_t total = c->env.cfg.near_max_bytes, own = 0, share;
    size_t n = atomic_load(&c->nks), implicit = 0;

    if (c->near == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (c->ks[i]->near_budget_set) {
            own += c->ks[i]->near_budget;
        } else {
            implicit++;
        }
    }
    share = implicit > 0 && total > own ? (total - own) / implicit : 0;
    for (size_t i = 0; i < n; i++) {
        uc_keyspace_t *ks = c->ks[i];
        if (!ks->near_budget_set) {
            ks->near_budget = share;
        }
        uc__near_set_budget(c->near, ks->cls, (size_t)ks->near_budget);
    }
}

int uc_cache_create(const uc_config_t *cfg, uc_cache_t **out, char *err,
                    size_t errlen)
{
    uc_cache_t *c;
    int rc;

    if (cfg == NULL || out == NULL) {
        return UC_EINVAL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "cache: out of memory");
        }
        return UC_ENOMEM;
    }
    c->env.cfg = *cfg;
    resolve_defaults(&c->env.cfg);
    rc = check_config(&c->env.cfg, err, errlen);
    if (rc != UC_OK) {
        free(c);
        return rc;
    }
    c->plen = strlen(c->env.cfg.key_prefix);
    if (c->env.cfg.backend == UC_BACKEND_REDIS) {
        rc = uc__redis_create(&c->env, &c->be, err, errlen);
    } else {
        rc = uc__memory_create(&c->env, &c->be, err, errlen);
    }
    if (rc != UC_OK) {
        free(c);
        return rc;
    }
    c->be->env = &c->env;
    c->local = c->env.cfg.backend == UC_BACKEND_MEMORY;
    if (getrandom(&c->lease_seed, sizeof(c->lease_seed), 0) !=
        (ssize_t)sizeof(c->lease_seed)) {
        c->lease_seed = (uint64_t)(uintptr_t)c ^ uc__wall_ms() ^
                        (uc__now_us(&c->env) << 20);
    }
    rc = uc__pending_init(&c->pending);
    c->to_mark = malloc(UC_INVLOG_PENDING_MAX * sizeof(*c->to_mark));
    if (rc == UC_OK &&
        (c->to_mark == NULL || pthread_mutex_init(&c->mark_mu, NULL) != 0)) {
        uc__pending_release(&c->pending);
        rc = UC_ENOMEM;
    }
    if (rc == UC_OK && uc__flights_init(&c->flights) != 0) {
        uc__pending_release(&c->pending);
        pthread_mutex_destroy(&c->mark_mu);
        rc = UC_ENOMEM;
    }
    if (rc == UC_OK && uc__bg_init(&c->bg) != 0) {
        uc__flights_release(&c->flights);
        uc__pending_release(&c->pending);
        pthread_mutex_destroy(&c->mark_mu);
        rc = UC_ENOMEM;
    }
    if (rc == UC_OK && uc__warm_create(c) != UC_OK) {
        uc__bg_stop(&c->bg);
        uc__flights_release(&c->flights);
        uc__pending_release(&c->pending);
        pthread_mutex_destroy(&c->mark_mu);
        rc = UC_ENOMEM;
    }
    if (rc == UC_OK && (rc = near_start(c, err, errlen)) != UC_OK) {
        uc__warm_destroy(c);
        uc__bg_stop(&c->bg);
        uc__flights_release(&c->flights);
        uc__pending_release(&c->pending);
        pthread_mutex_destroy(&c->mark_mu);
        free(c->to_mark);
        c->be->ops->destroy(c->be);
        free(c);
        return rc;
    }
    if (rc == UC_OK) {
        /* From now on the store reports its primaries; the first report,
         * if the store knows them already, goes out at once. */
        c->be->on_nodes = store_nodes;
        c->be->on_nodes_arg = c;
        if (c->be->ops->announce != NULL) {
            c->be->ops->announce(c->be);
        }
        rc = uc__worker_start(c);
        if (rc != UC_OK) {
            uc__warm_destroy(c);
            uc__track_stop(c->track);
            uc__near_destroy(c->near);
            uc__bg_stop(&c->bg);
            uc__flights_release(&c->flights);
            uc__pending_release(&c->pending);
            pthread_mutex_destroy(&c->mark_mu);
        }
    }
    if (rc != UC_OK) {
        free(c->to_mark);
        c->be->ops->destroy(c->be);
        free(c);
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "cache: out of memory");
        }
        return rc;
    }
    *out = c;
    return UC_OK;
}

void uc_cache_destroy(uc_cache_t *cache)
{
    if (cache == NULL) {
        return;
    }
    /* A warm uses everything below: it stops first, then the background
     * loads, which use everything below them too. */
    uc__warm_stop(cache);
    uc__bg_stop(&cache->bg);
    uc__worker_stop(cache);
    uc__warm_destroy(cache);
    /* The channel's thread calls into the near cache: it stops first. */
    uc__track_stop(cache->track);
    uc__near_destroy(cache->near);
    uc__flights_release(&cache->flights);
    if (cache->be != NULL) {
        cache->be->ops->destroy(cache->be);
    }
    uc__pending_release(&cache->pending);
    pthread_mutex_destroy(&cache->mark_mu);
    free(cache->to_mark);
    free(cache->tail_buf);
    for (size_t i = 0; i < cache->nks; i++) {
        uc__hot_destroy(cache->ks[i]->hot);
        free(cache->ks[i]);
    }
    free(cache);
}

const char *uc_cache_backend_name(const uc_cache_t *cache)
{
    return cache->be->ops->name;
}

/* ---- counting ------------------------------------------------------------ */

static int do_get(uc_cache_t *c, uc_keyspace_t *ks, const char *fk,
                  size_t fklen, char **val, size_t *len)
{
    uint64_t t0 = uc__now_us(&c->env);
    int rc = c->be->ops->get(c->be, fk, fklen, val, len);
    uc__count_get(c, ks, rc, t0);
    return rc;
}

static int do_set(uc_cache_t *c, uc_keyspace_t *ks, const char *fk,
                  size_t fklen, const char *val, size_t len, uint64_t ttl_ms)
{
    uint64_t t0 = uc__now_us(&c->env);
    int rc;

    if (len > UC_VALUE_MAX || (len > 0 && val == NULL)) {
        return UC_EINVAL;
    }
    rc = c->be->ops->set(c->be, fk, fklen, val, len, ttl_ms);
    uc__count_set(c, ks, rc, t0);
    return rc;
}

/* ---- raw key operations -------------------------------------------------- */

int uc_cache_get(uc_cache_t *cache, const char *key, size_t klen, char **val,
                 size_t *len)
{
    char fk[FULLKEY_MAX];
    size_t n = uc__full_key(cache, key, klen, fk);

    if (n == 0 || val == NULL || len == NULL) {
        return UC_EINVAL;
    }
    return do_get(cache, NULL, fk, n, val, len);
}

int uc_cache_get_entry(uc_cache_t *cache, const char *key, size_t klen,
                       char **val, size_t *len, int *entry)
{
    char fk[FULLKEY_MAX];
    size_t n = uc__full_key(cache, key, klen, fk);
    uc__meta_t meta;
    char *v = NULL;
    size_t vlen = 0;
    int rc;

    if (n == 0 || val == NULL || len == NULL) {
        return UC_EINVAL;
    }
    rc = do_get(cache, NULL, fk, n, &v, &vlen);
    if (rc != UC_OK) {
        return rc;
    }
    switch (uc__envelope_open(fk, n, v, &vlen, &meta)) {
    case UC__ENV_LEASE:
        free(v);
        return UC_MISS;
    case UC__ENV_OK:
        if (entry != NULL) {
            *entry = 1;
        }
        break;
    case UC__ENV_CORRUPT:
    default:
        if (entry != NULL) {
            *entry = 0;
        }
        break;
    }
    *val = v;
    *len = vlen;
    return UC_OK;
}

int uc_cache_set(uc_cache_t *cache, const char *key, size_t klen,
                 const char *val, size_t len, uint64_t ttl_ms)
{
    char fk[FULLKEY_MAX];
    size_t n = uc__full_key(cache, key, klen, fk);

    if (n == 0) {
        return UC_EINVAL;
    }
    return do_set(cache, NULL, fk, n, val, len, ttl_ms);
}

int uc_cache_del(uc_cache_t *cache, const char *key, size_t klen, int *existed)
{
    char fk[FULLKEY_MAX];
    size_t n = uc__full_key(cache, key, klen, fk);
    int e = 0, rc;

    if (n == 0) {
        return UC_EINVAL;
    }
    rc = cache->be->ops->del(cache->be, fk, n, &e);
    if (rc != UC_OK) {
        uc__count_error(cache, NULL);
        return rc;
    }
    if (existed != NULL) {
        *existed = e;
    }
    return UC_OK;
}

int uc_cache_exists(uc_cache_t *cache, const char *key, size_t klen)
{
    char fk[FULLKEY_MAX];
    size_t n = uc__full_key(cache, key, klen, fk);
    int rc;

    if (n == 0) {
        return UC_EINVAL;
    }
    rc = cache->be->ops->exists(cache->be, fk, n);
    if (rc < 0) {
        uc__count_error(cache, NULL);
    }
    return rc;
}

int uc_cache_ttl(uc_cache_t *cache, const char *key, size_t klen,
                 int64_t *ttl_ms)
{
    char fk[FULLKEY_MAX];
    size_t n = uc__full_key(cache, key, klen, fk);
    int64_t t;
    int rc;

    if (n == 0 || ttl_ms == NULL) {
        return UC_EINVAL;
    }
    rc = cache->be->ops->ttl(cache->be, fk, n, &t);
    if (rc == UC_OK) {
        *ttl_ms = t;
    } else if (rc < 0) {
        uc__count_error(cache, NULL);
    }
    return rc;
}

/* Builds prefixed copies of n keys in one allocation. */
static int prefixed_keys(uc_cache_t *c, size_t n, const char *const *keys,
                         const size_t *klens, char ***out_keys,
                         size_t **out_lens)
{
    size_t total = 0;
    char **pk;
    size_t *pl;
    char *buf;

    for (size_t i = 0; i < n; i++) {
        if (klens[i] == 0 || klens[i] > UC_KEY_MAX || keys[i] == NULL) {
            return UC_EINVAL;
        }
        total += c->plen + klens[i] + 1;
    }
    pk = malloc(n * (sizeof(char *) + sizeof(size_t)) + total);
    if (pk == NULL) {
        return UC_ENOMEM;
    }
    pl = (size_t *)(void *)(pk + n);
    buf = (char *)(pl + n);
    for (size_t i = 0; i < n; i++) {
        pk[i] = buf;
        pl[i] = uc__full_key(c, keys[i], klens[i], buf);
        buf += pl[i] + 1;
    }
    *out_keys = pk;
    *out_lens = pl;
    return UC_OK;
}

int uc_cache_mget(uc_cache_t *cache, size_t n, const char *const *keys,
                  const size_t *klens, uc_value_t *out)
{
    char **pk;
    size_t *pl;
    uint64_t t0;
    int rc;

    if (n == 0) {
        return UC_OK;
    }
    if (keys == NULL || klens == NULL || out == NULL) {
        return UC_EINVAL;
    }
    rc = prefixed_keys(cache, n, keys, klens, &pk, &pl);
    if (rc != UC_OK) {
        return rc;
    }
    t0 = uc__now_us(&cache->env);
    rc = cache->be->ops->mget(cache->be, n, (const char *const *)pk, pl, out);
    if (rc == UC_OK) {
        for (size_t i = 0; i < n; i++) {
            uc__count_get(cache, NULL, out[i].status, t0);
        }
    } else {
        uc__count_error(cache, NULL);
    }
    free(pk);
    return rc;
}

int uc_cache_mset(uc_cache_t *cache, size_t n, const char *const *keys,
                  const size_t *klens, const char *const *vals,
                  const size_t *vlens, uint64_t ttl_ms)
{
    char **pk;
    size_t *pl;
    uint64_t t0;
    int rc;

    if (n == 0) {
        return UC_OK;
    }
    if (keys == NULL || klens == NULL || vals == NULL || vlens == NULL) {
        return UC_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (vlens[i] > UC_VALUE_MAX || (vlens[i] > 0 && vals[i] == NULL)) {
            return UC_EINVAL;
        }
    }
    rc = prefixed_keys(cache, n, keys, klens, &pk, &pl);
    if (rc != UC_OK) {
        return rc;
    }
    t0 = uc__now_us(&cache->env);
    rc = cache->be->ops->mset(cache->be, n, (const char *const *)pk, pl, vals,
                              vlens, ttl_ms);
    for (size_t i = 0; i < n; i++) {
        uc__count_set(cache, NULL, rc, t0);
    }
    free(pk);
    return rc;
}

static int pattern_glob(const uc_cache_t *c, const char *pattern, char *buf)
{
    size_t n;

    if (pattern == NULL) {
        return UC_EINVAL;
    }
    n = strlen(pattern);
    if (n == 0 || n > UC_KEY_MAX) {
        return UC_EINVAL;
    }
    uc__full_key(c, pattern, n, buf);
    return UC_OK;
}

int uc_cache_delete_pattern(uc_cache_t *cache, const char *pattern,
                            size_t *removed)
{
    char glob[FULLKEY_MAX];
    size_t r = 0;
    int rc = pattern_glob(cache, pattern, glob);

    if (rc != UC_OK) {
        return rc;
    }
    rc = cache->be->ops->delete_pattern(cache->be, glob, NULL, NULL, &r);
    if (rc != UC_OK) {
        uc__count_error(cache, NULL);
        return rc;
    }
    if (removed != NULL) {
        *removed = r;
    }
    return UC_OK;
}

int uc_cache_count_pattern(uc_cache_t *cache, const char *pattern,
                           uint64_t *count)
{
    char glob[FULLKEY_MAX];
    uint64_t n = 0;
    int rc = pattern_glob(cache, pattern, glob);

    if (rc != UC_OK || count == NULL) {
        return rc != UC_OK ? rc : UC_EINVAL;
    }
    rc = cache->be->ops->count_pattern(cache->be, glob, NULL, NULL, &n);
    if (rc == UC_OK) {
        *count = n;
    }
    return rc;
}

int uc_cache_ping(uc_cache_t *cache, uint64_t *rtt_us)
{
    uint64_t t0 = uc__now_us(&cache->env);
    int rc = cache->be->ops->ping(cache->be);

    if (rc == UC_OK && rtt_us != NULL) {
        *rtt_us = uc__now_us(&cache->env) - t0;
    }
    return rc;
}

void uc_cache_stats(const uc_cache_t *cache, uc_stats_t *out)
{
    uc__stats_copy(&cache->totals, out);
    out->pending_invalidations = atomic_load(&cache->pending.count);
    for (size_t i = 0; i < cache->nks; i++) {
        out->pending_invalidations +=
            atomic_load(&cache->ks[i]->all_pending) != 0;
    }
}

/* Each node's own channel, from the near cache's links (by address). */
static void channel_of_nodes(const uc_cache_t *c, uc_redis_node_t *out,
                             size_t n)
{
    uc__track_node_stat_t links[UC__TRACK_NODES_MAX];
    size_t nl = uc__track_node_stats(c->track, links, UC__TRACK_NODES_MAX);

    if (nl > UC__TRACK_NODES_MAX) {
        nl = UC__TRACK_NODES_MAX;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nl; j++) {
            char addr[sizeof(out[i].addr) + 16];

            snprintf(addr, sizeof(addr), "%.*s:%d", (int)UC_HOST_MAX - 1,
                     links[j].host, links[j].port);
            if (strcmp(addr, out[i].addr) != 0) {
                continue;
            }
            out[i].channel =
                links[j].state == UC__TRACK_HEALTHY      ? UC_CHANNEL_HEALTHY
                : links[j].state == UC__TRACK_CONNECTING ? UC_CHANNEL_CONNECTING
                                                         : UC_CHANNEL_DOWN;
            out[i].channel_heartbeats = links[j].heartbeats_ok;
            out[i].channel_lag_us = links[j].lag_last_us;
        }
    }
}

size_t uc_cache_redis_nodes(const uc_cache_t *cache, uc_redis_topology_t *topo,
                            uc_redis_node_t *out, size_t cap)
{
    size_t n;

    if (topo != NULL) {
        memset(topo, 0, sizeof(*topo));
    }
    if (cache == NULL || cache->be->ops->nodes == NULL) {
        return 0;
    }
    n = cache->be->ops->nodes(cache->be, topo, out, cap);
    if (cache->track != NULL && out != NULL) {
        channel_of_nodes(cache, out, n < cap ? n : cap);
    }
    return n;
}

void uc_cache_pool_stats(const uc_cache_t *cache, uc_pool_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (cache->be->ops->pool_stats != NULL) {
        cache->be->ops->pool_stats(cache->be, out);
    }
}

int uc_cache_server_info(uc_cache_t *cache, uc_server_info_t *out)
{
    uc_server_info_t info;
    int rc;

    if (out == NULL) {
        return UC_EINVAL;
    }
    memset(&info, 0, sizeof(info));
    rc = cache->be->ops->info(cache->be, &info);
    if (rc == UC_OK) {
        *out = info;
    }
    return rc;
}

/* ---- keyspaces ----------------------------------------------------------- */

int uc_cache_add_keyspaces(uc_cache_t *cache, const uc_keyspace_def_t *defs,
                           size_t n, char *err, size_t errlen)
{
    uc_keyspace_t *made[UC__KEYSPACES_MAX];
    int rc = UC_OK;
    size_t i;

    if (cache->nks + n > UC__KEYSPACES_MAX) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "keyspaces: at most %d", UC__KEYSPACES_MAX);
        }
        return UC_EINVAL;
    }
    for (i = 0; i < n; i++) {
        made[i] = calloc(1, sizeof(uc_keyspace_t));
        if (made[i] == NULL) {
            rc = UC_ENOMEM;
            break;
        }
        made[i]->cache = cache;
        rc = uc__keyspace_compile(made[i], &defs[i], err, errlen);
        if (rc == UC_OK) {
            rc = uc__warm_keyspace(cache, made[i]);
        }
        if (rc != UC_OK) {
            i++;
            break;
        }
        int dup = uc_cache_keyspace(cache, made[i]->name) != NULL;
        for (size_t j = 0; j < i && !dup; j++) {
            dup = strcmp(made[j]->name, made[i]->name) == 0;
        }
        if (dup) {
            if (err != NULL && errlen > 0) {
                snprintf(err, errlen, "keyspace '%s': declared twice",
                         made[i]->name);
            }
            rc = UC_EINVAL;
            i++;
            break;
        }
        made[i]->max_value = defs[i].max_value_bytes > 0
                                 ? defs[i].max_value_bytes
                                 : UC_KEYSPACE_VALUE_MAX_DEFAULT;
        if (made[i]->max_value > UC_VALUE_MAX - UC__ENV_HEADER) {
            made[i]->max_value = UC_VALUE_MAX - UC__ENV_HEADER;
        }
        made[i]->loader = defs[i].loader;
        made[i]->loader_arg = defs[i].loader_arg;
        made[i]->validator = defs[i].validator;
        made[i]->validator_arg = defs[i].validator_arg;
        made[i]->stale_s = defs[i].stale_s == 0 ? 86400u
                           : defs[i].stale_s == UC_KEYSPACE_NONE
                               ? 0u
                               : defs[i].stale_s;
        made[i]->negative_ttl_s = defs[i].negative_ttl_s;
        made[i]->jitter_pct = defs[i].jitter_pct == 0     ? 10u
                              : defs[i].jitter_pct >= 100 ? 0u
                                                          : defs[i].jitter_pct;
        made[i]->beta = defs[i].refresh_beta == 0.0  ? 1.0
                        : defs[i].refresh_beta < 0.0 ? 0.0
                                                     : defs[i].refresh_beta;
        made[i]->refill_top = defs[i].refill_top != 0
                                  ? defs[i].refill_top
                                  : cache->env.cfg.refill_top;
        for (size_t k = 0; k < cache->env.cfg.n_ttl_overrides; k++) {
            const uc_ttl_override_t *o = &cache->env.cfg.ttl_overrides[k];
            if (strcmp(o->keyspace, made[i]->name) != 0) {
                continue;
            }
            if ((o->set & UC_OVERRIDE_TTL) != 0 && o->ttl_s > 0) {
                made[i]->ttl_s = o->ttl_s;
            }
            if ((o->set & UC_OVERRIDE_STALE) != 0) {
                made[i]->stale_s = o->stale_s;
            }
            if ((o->set & UC_OVERRIDE_NEAR_BYTES) != 0) {
                made[i]->near_budget_set = 1;
                made[i]->near_budget = o->near_bytes;
            }
        }
    }
    if (rc != UC_OK) {
        for (size_t j = 0; j < i; j++) {
            uc__hot_destroy(made[j]->hot);
            free(made[j]);
        }
        return rc;
    }
    for (i = 0; i < n; i++) {
        size_t at = atomic_load(&cache->nks);
        made[i]->cls = at;
        cache->ks[at] = made[i];
        atomic_store(&cache->nks, at + 1);
    }
    near_budgets(cache);
    /* A record that already holds entries (keyspaces declared after reads
     * began) has something to warm; a new one has not. */
    uc__warm_request(cache);
    return UC_OK;
}

uc_keyspace_t *uc_cache_keyspace(uc_cache_t *cache, const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < cache->nks; i++) {
        if (strcmp(cache->ks[i]->name, name) == 0) {
            return cache->ks[i];
        }
    }
    return NULL;
}

int uc_keyspace_count(uc_keyspace_t *ks, uint64_t *count)
{
    uc_cache_t *c = ks->cache;
    const char *any[UC_KEYSPACE_FIELDS_MAX] = {NULL};
    char key[UC_KEY_MAX + 1], fk[FULLKEY_MAX];
    size_t klen;
    uint64_t n = 0;
    const void *farg[2];
    int rc =
        uc__keyspace_build(ks, any, ks->nfields, 1, key, sizeof(key), &klen);

    if (rc != UC_OK || count == NULL) {
        return rc != UC_OK ? rc : UC_EINVAL;
    }
    farg[0] = ks;
    farg[1] = key;
    uc__full_key(c, key, klen, fk);
    rc = c->be->ops->count_pattern(c->be, fk, uc__target_filter, (void *)farg,
                                   &n);
    if (rc == UC_OK) {
        *count = n;
    }
    return rc;
}

void uc_keyspace_stats(const uc_keyspace_t *ks, uc_stats_t *out)
{
    uc__stats_copy(&ks->stats, out);
}

/* ---- near-cache statistics ------------------------------------------------
 */

static void usage_of(uc__near_t *n, size_t cls, uc_near_usage_t *out)
{
    uc__near_stats_t st;

    uc__near_stats(n, cls, &st);
    out->budget_bytes = st.budget;
    out->bytes = st.bytes;
    out->entries = st.entries;
    out->inserts = st.inserts;
    out->evictions = st.evictions;
    out->invalidations = st.invalidations;
    out->refused = st.refused;
}

void uc_keyspace_near_usage(const uc_keyspace_t *ks, uc_near_usage_t *out)
{
    memset(out, 0, sizeof(*out));
    if (ks->cache->near != NULL) {
        usage_of(ks->cache->near, ks->cls, out);
    }
}

void uc_cache_near_stats(const uc_cache_t *cache, uc_near_stats_t *out)
{
    uc__track_stats_t ts;
    uc_near_usage_t u;
    size_t n = atomic_load(&((uc_cache_t *)cache)->nks);

    memset(out, 0, sizeof(*out));
    if (cache->near == NULL) {
        return;
    }
    out->enabled = 1;
    for (size_t i = 0; i < n; i++) {
        usage_of(cache->near, cache->ks[i]->cls, &u);
        out->usage.budget_bytes += u.budget_bytes;
        out->usage.bytes += u.bytes;
        out->usage.entries += u.entries;
        out->usage.inserts += u.inserts;
        out->usage.evictions += u.evictions;
        out->usage.invalidations += u.invalidations;
        out->usage.refused += u.refused;
    }
    uc__track_stats(cache->track, &ts);
    out->channel = ts.state == UC__TRACK_HEALTHY      ? UC_CHANNEL_HEALTHY
                   : ts.state == UC__TRACK_CONNECTING ? UC_CHANNEL_CONNECTING
                                                      : UC_CHANNEL_DOWN;
    out->channel_connects = ts.connects;
    out->channel_connect_failures = ts.connect_failures;
    out->messages = ts.messages;
    out->keys_invalidated = ts.keys;
    out->flushes_null = ts.flushes_null;
    out->flushes_lost = ts.flushes_lost;
    out->flushes_heartbeat = ts.flushes_heartbeat;
    out->flushes_dataset =
        atomic_load(&((uc_cache_t *)cache)->near_dataset_flushes);
    out->flushes_topology = ts.flushes_topology;
    out->flushes = out->flushes_null + out->flushes_lost +
                   out->flushes_heartbeat + out->flushes_dataset +
                   out->flushes_topology;
    out->heartbeats_sent = ts.heartbeats_sent;
    out->heartbeats_late = ts.heartbeats_late;
    memcpy(out->lag_us, ts.lag_us, sizeof(out->lag_us));
}
