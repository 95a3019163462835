/* SPDX-License-Identifier: MIT */
/*
 * The byte-store interface every backend implements: a table of functions
 * over an object whose first member is uc__backend_t. A store only keeps
 * bytes under full keys (prefix included): no keyspaces, envelopes, leases
 * or invalidation policy, which live in the core above it (load.c,
 * invalidate.c). Two conditional writes (add, cas) are the primitives the
 * core builds its leases from; each touches one key, so each runs in one
 * Redis Cluster slot.
 *
 * Every function is thread-safe. Keys are binary-safe; values returned
 * through `char **val` are malloc()ed, NUL-terminated (not counted in *len)
 * and owned by the caller. A store never calls back into the cache and
 * never prints; it logs through uc__log().
 */
#ifndef UC_LIB_STORE_H
#define UC_LIB_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "utxocache/cache.h"

typedef struct uc__backend uc__backend_t;

/* A primary of a cluster, as on_nodes reports it. */
typedef struct {
    char host[UC_HOST_MAX];
    int port;
    char tag[24];
} uc__store_node_t;

/* Accepts or refuses one key found by a scan (nonzero: accept). */
typedef int (*uc__key_filter_fn)(void *arg, const char *key, size_t klen);

typedef struct uc__backend_ops {
    const char *name;
    int (*get)(uc__backend_t *b, const char *key, size_t klen, char **val,
               size_t *len);
    int (*set)(uc__backend_t *b, const char *key, size_t klen, const char *val,
               size_t len, uint64_t ttl_ms);
    int (*del)(uc__backend_t *b, const char *key, size_t klen, int *existed);
    /*
     * Optional (NULL: set). set, for an invalidation (a tag's new
     * version): treated as del is, past an open breaker and, on a cluster,
     * sent to a new owner of the slot when its node is gone.
     */
    int (*set_inval)(uc__backend_t *b, const char *key, size_t klen,
                     const char *val, size_t len, uint64_t ttl_ms);
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
     * Reads a key as get does, but never more than max bytes of it: a longer
     * value gives UC_ETOOBIG and nothing is copied (Redis: GETRANGE, so a
     * huge value costs no memory here). A key holding another type is
     * UC_ECORRUPT. Empty values read as UC_MISS (GETRANGE cannot tell).
     */
    int (*get_max)(uc__backend_t *b, const char *key, size_t klen, size_t max,
                   char **val, size_t *len);
    /*
     * Optional. get_max over n keys in one round trip per server, guarded
     * by dataset trust like get_max: out[i].status is UC_OK (data, len:
     * the caller frees), UC_MISS, UC_ETOOBIG or UC_ECORRUPT for key i. Any
     * other status is the whole call's, and out is then untouched.
     */
    int (*mget_max)(uc__backend_t *b, size_t n, const char *const *keys,
                    const size_t *klens, size_t max, uc_value_t *out);
    /* set, for an entry (the keyspace path): guarded by dataset trust. */
    int (*put)(uc__backend_t *b, const char *key, size_t klen, const char *val,
               size_t len, uint64_t ttl_ms);
    /* Stores only if the key is absent (SET NX PX): UC_OK or UC_ESTALE. */
    int (*add)(uc__backend_t *b, const char *key, size_t klen, const char *val,
               size_t len, uint64_t ttl_ms);
    /*
     * Replaces the value only while the key holds exactly `expect`
     * (compare-and-set, atomic): UC_OK, or UC_ESTALE when it holds
     * anything else or nothing.
     */
    int (*cas)(uc__backend_t *b, const char *key, size_t klen,
               const char *expect, size_t elen, const char *val, size_t len,
               uint64_t ttl_ms);
    /*
     * Dataset trust (NULL for a process-local store, which is always the
     * dataset it was). verify compares the dataset marker with the server's
     * identity now; adopt writes the marker for the current server and
     * trusts it again. While the store does not trust its dataset, get_max,
     * put, add and cas (the keyspace path) answer UC_EUNAVAILABLE; the raw
     * operations, del and delete_pattern still work.
     */
    int (*verify)(uc__backend_t *b);
    int (*adopt)(uc__backend_t *b);
    /*
     * Optional. restore drops, on every dataset the store does not trust,
     * the keys `filter` accepts under `glob`, then adopts those datasets:
     * delete_pattern + adopt where only part of the store is distrusted (a
     * cluster node after a failover). UC_OK when all is trusted after it.
     */
    int (*restore)(uc__backend_t *b, const char *glob, uc__key_filter_fn filter,
                   void *farg, size_t *removed);
    /* Optional: the worker's tick (the cluster's topology refresh). */
    void (*maintain)(uc__backend_t *b);
    /* Optional: the servers behind the store and their figures; returns
     * how many there are (at most cap written). */
    size_t (*nodes)(uc__backend_t *b, uc_redis_topology_t *topo,
                    uc_redis_node_t *out, size_t cap);
    /* Optional: calls on_nodes again with the current primaries. */
    void (*announce)(uc__backend_t *b);
    int (*ping)(uc__backend_t *b);
    int (*info)(uc__backend_t *b, uc_server_info_t *out);
    void (*pool_stats)(uc__backend_t *b, uc_pool_stats_t *out);
    void (*destroy)(uc__backend_t *b);
} uc__backend_ops_t;

struct uc__backend {
    const uc__backend_ops_t *ops;
    const uc__env_t *env; /* owned by the cache; outlives the backend */
    /* Nonzero while the store does not trust its dataset (see verify). */
    _Atomic int distrust;
    /* Bumped each time distrust is raised, so the core flushes once. */
    _Atomic uint64_t distrust_epoch;
    /* Set once a dataset was found or made trusted: a later distrust is a
     * dataset lost (flushed, restarted, failed over), not a first start. */
    _Atomic int trusted_once;
    /*
     * Set by the core before the first operation (may stay NULL): called,
     * from any thread and never under a lock the core holds, with the
     * primaries that serve slots each time that set changes, so the near
     * cache can follow every primary's invalidations. `tag` is a hash tag
     * whose slot the node serves ("" for standalone Redis).
     */
    void (*on_nodes)(void *arg, const uc__store_node_t *nodes, size_t n);
    void *on_nodes_arg;
};

/* Backend constructors. Return UC_OK or a code with a message in err. */
int uc__memory_create(const uc__env_t *env, uc__backend_t **out, char *err,
                      size_t errlen);
int uc__redis_create(const uc__env_t *env, uc__backend_t **out, char *err,
                     size_t errlen);

#endif /* UC_LIB_STORE_H */
