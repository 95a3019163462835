/* SPDX-License-Identifier: MIT */
/*
 * The cache core: resolves configuration defaults, picks the backend, adds
 * the key prefix, counts statistics, and implements the keyspace operations
 * and get-or-load on top of the backend table.
 *
 * How get-or-load keeps stale values out: every invalidation bumps a
 * generation counter (one per entry for a one-key invalidation, one per
 * keyspace for a pattern invalidation) before deleting. A miss reads both
 * counters before calling the loader, and the store is conditional on both
 * still holding those values, checked atomically by the backend. A loader
 * that read the database before a write therefore cannot put its old value
 * back after that write's invalidation.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_int.h"
#include "utxocache/utxocache.h"

/* Room for prefix + logical key, and for a generation key around it. */
#define FULLKEY_MAX (UC_PREFIX_MAX + UC_KEY_MAX + 16)

/* ---- environment --------------------------------------------------------- */

uint64_t uc__now_us(const uc__env_t *env)
{
    struct timespec ts;

    if (env != NULL && env->cfg.clock_fn != NULL) {
        return env->cfg.clock_fn(env->cfg.clock_arg);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void uc__log(const uc__env_t *env, uc_log_level_t level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (env == NULL || env->cfg.log_fn == NULL || level < env->cfg.log_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    env->cfg.log_fn(env->cfg.log_arg, level, line);
}

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
    DEF(idle_timeout_ms, 60000);
    DEF(backoff_base_ms, 25);
    DEF(backoff_max_ms, 2000);
    DEF(breaker_threshold, 5);
    DEF(breaker_cooldown_ms, 1000);
    DEF(scan_batch, 500);
    DEF(memory_max_bytes, (size_t)64 * 1024 * 1024);
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
               c->breaker_cooldown_ms < 0 || c->scan_batch < 0) {
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
               memchr(c->password, '\0', sizeof(c->password)) == NULL) {
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
    *out = c;
    return UC_OK;
}

void uc_cache_destroy(uc_cache_t *cache)
{
    if (cache == NULL) {
        return;
    }
    if (cache->be != NULL) {
        cache->be->ops->destroy(cache->be);
    }
    for (size_t i = 0; i < cache->nks; i++) {
        free(cache->ks[i]);
    }
    free(cache);
}

const char *uc_cache_backend_name(const uc_cache_t *cache)
{
    return cache->be->ops->name;
}

/* ---- keys ---------------------------------------------------------------- */

/* Writes prefix + mid + key[0..klen) into buf; returns its length or 0. */
static size_t full_key(const uc_cache_t *c, const char *mid, const char *key,
                       size_t klen, char *buf)
{
    size_t mlen = mid != NULL ? strlen(mid) : 0;

    if (klen > UC_KEY_MAX || (klen > 0 && key == NULL)) {
        return 0;
    }
    memcpy(buf, c->env.cfg.key_prefix, c->plen);
    if (mlen > 0) {
        memcpy(buf + c->plen, mid, mlen);
    }
    if (klen > 0) {
        memcpy(buf + c->plen + mlen, key, klen);
    }
    buf[c->plen + mlen + klen] = '\0';
    return c->plen + mlen + klen;
}

static void count_latency(_Atomic uint64_t *hist, uint64_t t0,
                          const uc__env_t *env)
{
    uint64_t dt = uc__now_us(env) - t0;
    atomic_fetch_add_explicit(&hist[uc__hist_bucket(dt)], 1,
                              memory_order_relaxed);
}

/* Counts one read outcome in the totals and, if given, in a keyspace; both
 * get the same latency, read from the clock once (reads are the hot path). */
static void count_get(uc_cache_t *c, uc_keyspace_t *ks, int rc, uint64_t t0)
{
    uc__stats_t *sts[2] = {&c->totals, ks != NULL ? &ks->stats : NULL};
    size_t bucket = uc__hist_bucket(uc__now_us(&c->env) - t0);
    for (int i = 0; i < 2 && sts[i] != NULL; i++) {
        if (rc == UC_OK) {
            UC__COUNT(sts[i], hits);
        } else if (rc == UC_MISS) {
            UC__COUNT(sts[i], misses);
        } else {
            UC__COUNT(sts[i], errors);
        }
        atomic_fetch_add_explicit(&sts[i]->get_us[bucket], 1,
                                  memory_order_relaxed);
    }
}

static void count_set(uc_cache_t *c, uc_keyspace_t *ks, int rc, uint64_t t0)
{
    uc__stats_t *sts[2] = {&c->totals, ks != NULL ? &ks->stats : NULL};
    for (int i = 0; i < 2 && sts[i] != NULL; i++) {
        if (rc == UC_OK) {
            UC__COUNT(sts[i], sets);
        } else if (rc != UC_ESTALE) {
            UC__COUNT(sts[i], set_errors);
            UC__COUNT(sts[i], errors);
        }
        count_latency(sts[i]->set_us, t0, &c->env);
    }
}

static void count_error(uc_cache_t *c, uc_keyspace_t *ks)
{
    UC__COUNT(&c->totals, errors);
    if (ks != NULL) {
        UC__COUNT(&ks->stats, errors);
    }
}

static int do_get(uc_cache_t *c, uc_keyspace_t *ks, const char *fk,
                  size_t fklen, char **val, size_t *len)
{
    uint64_t t0 = uc__now_us(&c->env);
    int rc = c->be->ops->get(c->be, fk, fklen, val, len);
    count_get(c, ks, rc, t0);
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
    count_set(c, ks, rc, t0);
    return rc;
}

/* ---- raw key operations -------------------------------------------------- */

int uc_cache_get(uc_cache_t *cache, const char *key, size_t klen, char **val,
                 size_t *len)
{
    char fk[FULLKEY_MAX];
    size_t n = full_key(cache, NULL, key, klen, fk);

    if (n == 0 || val == NULL || len == NULL) {
        return UC_EINVAL;
    }
    return do_get(cache, NULL, fk, n, val, len);
}

int uc_cache_set(uc_cache_t *cache, const char *key, size_t klen,
                 const char *val, size_t len, uint64_t ttl_ms)
{
    char fk[FULLKEY_MAX];
    size_t n = full_key(cache, NULL, key, klen, fk);

    if (n == 0) {
        return UC_EINVAL;
    }
    return do_set(cache, NULL, fk, n, val, len, ttl_ms);
}

int uc_cache_del(uc_cache_t *cache, const char *key, size_t klen, int *existed)
{
    char fk[FULLKEY_MAX];
    size_t n = full_key(cache, NULL, key, klen, fk);
    int e = 0, rc;

    if (n == 0) {
        return UC_EINVAL;
    }
    rc = cache->be->ops->del(cache->be, fk, n, &e);
    if (rc != UC_OK) {
        count_error(cache, NULL);
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
    size_t n = full_key(cache, NULL, key, klen, fk);
    int rc;

    if (n == 0) {
        return UC_EINVAL;
    }
    rc = cache->be->ops->exists(cache->be, fk, n);
    if (rc < 0) {
        count_error(cache, NULL);
    }
    return rc;
}

int uc_cache_ttl(uc_cache_t *cache, const char *key, size_t klen,
                 int64_t *ttl_ms)
{
    char fk[FULLKEY_MAX];
    size_t n = full_key(cache, NULL, key, klen, fk);
    int64_t t;
    int rc;

    if (n == 0 || ttl_ms == NULL) {
        return UC_EINVAL;
    }
    rc = cache->be->ops->ttl(cache->be, fk, n, &t);
    if (rc == UC_OK) {
        *ttl_ms = t;
    } else if (rc < 0) {
        count_error(cache, NULL);
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
        pl[i] = full_key(c, NULL, keys[i], klens[i], buf);
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
            count_get(cache, NULL, out[i].status, t0);
        }
    } else {
        count_error(cache, NULL);
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
        count_set(cache, NULL, rc, t0);
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
    full_key(c, NULL, pattern, n, buf);
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
        count_error(cache, NULL);
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
        for (size_t k = 0; k < cache->env.cfg.n_ttl_overrides; k++) {
            const uc_ttl_override_t *o = &cache->env.cfg.ttl_overrides[k];
            if (strcmp(o->keyspace, made[i]->name) == 0 && o->ttl_s > 0) {
                made[i]->ttl_s = o->ttl_s;
            }
        }
    }
    if (rc != UC_OK) {
        for (size_t j = 0; j < i; j++) {
            free(made[j]);
        }
        return rc;
    }
    for (i = 0; i < n; i++) {
        cache->ks[cache->nks++] = made[i];
    }
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

/* The full key of one entry; UC_EINVAL on bad fields. */
static int entry_key(const uc_keyspace_t *ks, const char *const *fields,
                     size_t nfields, char *fk, size_t *fklen)
{
    char key[UC_KEY_MAX + 1];
    size_t klen;
    int rc =
        uc__keyspace_build(ks, fields, nfields, 0, key, sizeof(key), &klen);

    if (rc != UC_OK) {
        return rc == UC_ETOOBIG ? UC_EINVAL : rc;
    }
    *fklen = full_key(ks->cache, NULL, key, klen, fk);
    return UC_OK;
}

static uint64_t ttl_ms(const uc_keyspace_t *ks)
{
    return (uint64_t)ks->ttl_s * 1000u;
}

/* Generations must outlive any load in flight; a lost one only costs a store.
 */
static uint64_t gen_keep_ms(const uc_keyspace_t *ks)
{
    uint64_t keep = 2 * ttl_ms(ks);
    return keep < 600000 ? 600000 : keep;
}

int uc_keyspace_get(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, char **val, size_t *len)
{
    char fk[FULLKEY_MAX];
    size_t n;
    int rc = entry_key(ks, fields, nfields, fk, &n);

    if (rc != UC_OK || val == NULL || len == NULL) {
        return rc != UC_OK ? rc : UC_EINVAL;
    }
    return do_get(ks->cache, ks, fk, n, val, len);
}

int uc_keyspace_set(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, const char *val, size_t len)
{
    char fk[FULLKEY_MAX];
    size_t n;
    int rc = entry_key(ks, fields, nfields, fk, &n);

    if (rc != UC_OK) {
        return rc;
    }
    return do_set(ks->cache, ks, fk, n, val, len, ttl_ms(ks));
}

int uc_keyspace_del(uc_keyspace_t *ks, const char *const *fields,
                    size_t nfields, int *existed)
{
    char fk[FULLKEY_MAX];
    size_t n;
    int e = 0;
    int rc = entry_key(ks, fields, nfields, fk, &n);

    if (rc != UC_OK) {
        return rc;
    }
    rc = ks->cache->be->ops->del(ks->cache->be, fk, n, &e);
    if (rc != UC_OK) {
        count_error(ks->cache, ks);
        return rc;
    }
    if (existed != NULL) {
        *existed = e;
    }
    return UC_OK;
}

typedef struct {
    const uc_keyspace_t *ks;
    size_t plen;
    const char *const *escaped;
} shape_filter_t;

static int shape_filter(void *arg, const char *key, size_t klen)
{
    const shape_filter_t *f = arg;

    if (klen < f->plen) {
        return 0;
    }
    return uc__keyspace_matches(f->ks, key + f->plen, klen - f->plen,
                                f->escaped);
}

/* Runs op up to three times; counts retries and the final failure. */
#define INVALIDATE_TRIES 3

int uc_keyspace_invalidate(uc_keyspace_t *ks, const char *const *fields,
                           size_t nfields, size_t *removed)
{
    uc_cache_t *c = ks->cache;
    char esc[UC_KEYSPACE_FIELDS_MAX][3 * UC_FIELD_MAX + 1];
    const char *escp[UC_KEYSPACE_FIELDS_MAX];
    char key[UC_KEY_MAX + 1], fk[FULLKEY_MAX], gk[FULLKEY_MAX];
    size_t klen, fklen, gklen, r = 0;
    int all_set = 1, rc = UC_OK;

    if (nfields != ks->nfields || (nfields > 0 && fields == NULL)) {
        return UC_EINVAL;
    }
    for (size_t i = 0; i < nfields; i++) {
        size_t elen;
        escp[i] = NULL;
        if (fields[i] == NULL) {
            all_set = 0;
            continue;
        }
        rc = uc_key_escape_field(fields[i], strlen(fields[i]), esc[i],
                                 sizeof(esc[i]), &elen);
        if (rc != UC_OK) {
            return UC_EINVAL;
        }
        escp[i] = esc[i];
    }
    rc = uc__keyspace_build(ks, fields, nfields, !all_set, key, sizeof(key),
                            &klen);
    if (rc != UC_OK) {
        return UC_EINVAL;
    }
    UC__COUNT(&c->totals, invalidations);
    UC__COUNT(&ks->stats, invalidations);

    fklen = full_key(c, NULL, key, klen, fk);
    if (all_set) {
        gklen = full_key(c, UC__GEN_ENTRY, key, klen, gk);
    } else {
        gklen = full_key(c, UC__GEN_SPACE, ks->name, strlen(ks->name), gk);
    }
    for (int attempt = 0; attempt < INVALIDATE_TRIES; attempt++) {
        if (attempt > 0) {
            UC__COUNT(&c->totals, invalidation_retries);
            UC__COUNT(&ks->stats, invalidation_retries);
        }
        /* The generation goes first: a load that starts between the two
         * steps reads the new generation and the already-committed row. */
        rc = c->be->ops->gen_bump(c->be, gk, gklen, gen_keep_ms(ks));
        if (rc != UC_OK) {
            continue;
        }
        if (all_set) {
            int existed = 0;
            rc = c->be->ops->del(c->be, fk, fklen, &existed);
            r = existed ? 1 : 0;
        } else {
            shape_filter_t f = {ks, c->plen, escp};
            r = 0;
            rc = c->be->ops->delete_pattern(c->be, fk, shape_filter, &f, &r);
        }
        if (rc == UC_OK) {
            break;
        }
    }
    if (rc != UC_OK) {
        UC__COUNT(&c->totals, invalidation_failures);
        UC__COUNT(&ks->stats, invalidation_failures);
        UC__COUNT(&c->totals, errors);
        UC__COUNT(&ks->stats, errors);
        uc__log(&c->env, UC_LOG_WARN,
                "invalidate keyspace '%s': %s after %d tries", ks->name,
                uc_strerror(rc), INVALIDATE_TRIES);
        return rc;
    }
    if (removed != NULL) {
        *removed = r;
    }
    return UC_OK;
}

int uc_keyspace_count(uc_keyspace_t *ks, uint64_t *count)
{
    uc_cache_t *c = ks->cache;
    const char *any[UC_KEYSPACE_FIELDS_MAX] = {NULL};
    char key[UC_KEY_MAX + 1], fk[FULLKEY_MAX];
    size_t klen, fklen;
    uint64_t n = 0;
    shape_filter_t f = {ks, c->plen, NULL};
    int rc =
        uc__keyspace_build(ks, any, ks->nfields, 1, key, sizeof(key), &klen);

    if (rc != UC_OK || count == NULL) {
        return rc != UC_OK ? rc : UC_EINVAL;
    }
    fklen = full_key(c, NULL, key, klen, fk);
    (void)fklen;
    rc = c->be->ops->count_pattern(c->be, fk, shape_filter, &f, &n);
    if (rc == UC_OK) {
        *count = n;
    }
    return rc;
}

void uc_keyspace_stats(const uc_keyspace_t *ks, uc_stats_t *out)
{
    uc__stats_copy(&ks->stats, out);
}

/* Makes sure a loader's buffer is NUL-terminated, as get's values are. */
static int terminate(char **val, size_t len)
{
    char *p = realloc(*val, len + 1);
    if (p == NULL) {
        return UC_ENOMEM;
    }
    p[len] = '\0';
    *val = p;
    return UC_OK;
}

int uc_keyspace_get_or_load(uc_keyspace_t *ks, const char *const *fields,
                            size_t nfields, uc_loader_fn loader,
                            void *loader_arg, uc_validator_fn validator,
                            void *validator_arg, char **val, size_t *len,
                            uc_source_t *source)
{
    uc_cache_t *c = ks->cache;
    char key[UC_KEY_MAX + 1], fk[FULLKEY_MAX];
    char gke[FULLKEY_MAX], gks[FULLKEY_MAX];
    const char *gkeys[2] = {gke, gks};
    size_t gklens[2];
    uint64_t gens[2] = {0, 0};
    size_t klen, fklen, vlen = 0;
    char *v = NULL;
    int rc, can_store = 0, fell_back = 0;

    if (loader == NULL || val == NULL || len == NULL) {
        return UC_EINVAL;
    }
    rc = uc__keyspace_build(ks, fields, nfields, 0, key, sizeof(key), &klen);
    if (rc != UC_OK) {
        return UC_EINVAL;
    }
    fklen = full_key(c, NULL, key, klen, fk);

    rc = do_get(c, ks, fk, fklen, &v, &vlen);
    if (rc == UC_OK && validator != NULL &&
        !validator(validator_arg, v, vlen)) {
        /* Corrupt: drop it so the next reader does not trip on it too. */
        free(v);
        v = NULL;
        UC__COUNT(&c->totals, corrupt);
        UC__COUNT(&ks->stats, corrupt);
        (void)c->be->ops->del(c->be, fk, fklen, NULL);
        rc = UC_MISS;
    }
    if (rc == UC_OK) {
        *val = v;
        *len = vlen;
        if (source != NULL) {
            *source = UC_FROM_CACHE;
        }
        return UC_OK;
    }
    /* The generation keys only matter once the read missed or failed. */
    gklens[0] = full_key(c, UC__GEN_ENTRY, key, klen, gke);
    gklens[1] = full_key(c, UC__GEN_SPACE, ks->name, strlen(ks->name), gks);
    if (rc == UC_MISS) {
        /* Read the generations before the loader reads the database. */
        int grc = c->be->ops->gen_read(c->be, 2, gkeys, gklens, gens);
        can_store = grc == UC_OK;
        if (grc != UC_OK) {
            count_error(c, ks);
        }
    } else {
        fell_back = 1;
        UC__COUNT(&c->totals, fallbacks);
        UC__COUNT(&ks->stats, fallbacks);
    }

    UC__COUNT(&c->totals, loads);
    UC__COUNT(&ks->stats, loads);
    v = NULL;
    vlen = 0;
    rc = loader(loader_arg, &v, &vlen);
    if (rc != UC_OK) {
        free(v);
        UC__COUNT(&c->totals, load_errors);
        UC__COUNT(&ks->stats, load_errors);
        return rc;
    }
    if (v == NULL && vlen > 0) {
        return UC_EINVAL;
    }
    if (terminate(&v, vlen) != UC_OK) {
        free(v);
        return UC_ENOMEM;
    }
    if (can_store && vlen <= UC_VALUE_MAX) {
        uint64_t t0 = uc__now_us(&c->env);
        int src = c->be->ops->set_if_gens(c->be, fk, fklen, v, vlen, ttl_ms(ks),
                                          2, gkeys, gklens, gens);
        count_set(c, ks, src, t0);
        if (src == UC_ESTALE) {
            UC__COUNT(&c->totals, stale_rejects);
            UC__COUNT(&ks->stats, stale_rejects);
        }
    }
    *val = v;
    *len = vlen;
    if (source != NULL) {
        *source = fell_back ? UC_FROM_FALLBACK : UC_FROM_LOADER;
    }
    return UC_OK;
}
