/* SPDX-License-Identifier: MIT */
/*
 * The interface every cache backend implements: a table of functions over an
 * object whose first member is uc__backend_t. The cache core (cache.c) adds
 * prefixes, keyspaces, statistics and get-or-load on top; a backend only
 * stores bytes under full keys (prefix included). Every function is
 * thread-safe. Keys are binary-safe; values returned through `char **val` are
 * malloc()ed, NUL-terminated (not counted in *len) and owned by the caller.
 * A backend never calls back into the cache and never prints; it logs through
 * uc__log().
 */
#ifndef UC_LIB_BACKEND_H
#define UC_LIB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "utxocache/cache.h"
#include "utxocache/config.h"

typedef struct uc__backend uc__backend_t;

/* Accepts or refuses one key found by a scan (nonzero: accept). */
typedef int (*uc__key_filter_fn)(void *arg, const char *key, size_t klen);

typedef struct uc__backend_ops {
    const char *name;
    int (*get)(uc__backend_t *b, const char *key, size_t klen, char **val,
               size_t *len);
    int (*set)(uc__backend_t *b, const char *key, size_t klen, const char *val,
               size_t len, uint64_t ttl_ms);
    int (*del)(uc__backend_t *b, const char *key, size_t klen, int *existed);
    int (*exists)(uc__backend_t *b, const char *key, size_t klen);
    int (*ttl)(uc__backend_t *b, const char *key, size_t klen, int64_t *ttl_ms);
    int (*mget)(uc__backend_t *b, size_t n, const char *const *keys,
                const size_t *klens, uc_value_t *out);
    int (*mset)(uc__backend_t *b, size_t n, const char *const *keys,
                const size_t *klens, const char *const *vals,
                const size_t *vlens, uint64_t ttl_ms);
    /*
     * Deletes the keys matching a glob (already prefixed and escaped) that
     * `filter` (may be NULL) accepts, in batches; *removed counts them.
     */
    int (*delete_pattern)(uc__backend_t *b, const char *glob,
                          uc__key_filter_fn filter, void *farg,
                          size_t *removed);
    int (*count_pattern)(uc__backend_t *b, const char *glob,
                         uc__key_filter_fn filter, void *farg, uint64_t *count);
    /*
     * Generations guard get-or-load against writing back a value read before
     * an invalidation. gen_read reads n counters (0 when absent); gen_bump
     * increments one and keeps it for keep_ms; set_if_gens stores the value
     * only if every counter still has the value read, atomically, and
     * returns UC_ESTALE otherwise.
     */
    int (*gen_read)(uc__backend_t *b, size_t n, const char *const *keys,
                    const size_t *klens, uint64_t *gens);
    int (*gen_bump)(uc__backend_t *b, const char *key, size_t klen,
                    uint64_t keep_ms);
    int (*set_if_gens)(uc__backend_t *b, const char *key, size_t klen,
                       const char *val, size_t len, uint64_t ttl_ms, size_t n,
                       const char *const *gkeys, const size_t *gklens,
                       const uint64_t *gens);
    int (*ping)(uc__backend_t *b);
    int (*info)(uc__backend_t *b, uc_server_info_t *out);
    void (*pool_stats)(uc__backend_t *b, uc_pool_stats_t *out);
    void (*destroy)(uc__backend_t *b);
} uc__backend_ops_t;

/* What the core hands every backend: configuration, clock and logger. */
typedef struct uc__env {
    uc_config_t cfg; /* defaults already resolved */
} uc__env_t;

struct uc__backend {
    const uc__backend_ops_t *ops;
    const uc__env_t *env; /* owned by the cache; outlives the backend */
};

/* Monotonic time in microseconds from the configured clock. */
uint64_t uc__now_us(const uc__env_t *env);

/* Formats and passes one line to the configured logger, if any. */
void uc__log(const uc__env_t *env, uc_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Backend constructors. Return UC_OK or a code with a message in err. */
int uc__memory_create(const uc__env_t *env, uc__backend_t **out, char *err,
                      size_t errlen);
int uc__redis_create(const uc__env_t *env, uc__backend_t **out, char *err,
                     size_t errlen);

#endif /* UC_LIB_BACKEND_H */
