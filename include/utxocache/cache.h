/* SPDX-License-Identifier: MIT */
/*
 * The cache handle: one backend (Redis through a bounded connection pool and a
 * circuit breaker, or an in-process LRU store) behind one set of operations.
 *
 * Ownership: arguments are borrowed for the duration of the call; a value
 * returned through `char **val` belongs to the caller and is freed with
 * uc_free(). Outputs are written only when the call returns UC_OK.
 *
 * Thread safety: a uc_cache_t is thread-safe; any number of threads may share
 * one handle. uc_cache_destroy() must not race with other calls.
 *
 * Keys given here are logical keys: the configured key prefix is prepended
 * by the library. Keys are binary-safe and at most UC_KEY_MAX bytes.
 */
#ifndef UTXOCACHE_CACHE_H
#define UTXOCACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UC_KEY_MAX 1024
#define UC_VALUE_MAX (64u * 1024u * 1024u)

typedef struct uc_cache uc_cache_t;

/* One answer of a multi-get: status is UC_OK (data/len set) or UC_MISS, or a
 * negative code when that key could not be read. */
typedef struct {
    int status;
    char *data;
    size_t len;
} uc_value_t;

/*
 * Creates a cache from `cfg` (copied). For Redis no connection is made here:
 * the pool connects lazily, so a cache can be created while Redis is down.
 * Returns UC_OK and sets *out, or UC_ECONFIG/UC_ENOMEM with a message in
 * `err` (may be NULL).
 */
UC_EXPORT int uc_cache_create(const uc_config_t *cfg, uc_cache_t **out,
                              char *err, size_t errlen);

/* Closes every connection and frees the handle. Accepts NULL. */
UC_EXPORT void uc_cache_destroy(uc_cache_t *cache);

/* "redis" or "memory". */
UC_EXPORT const char *uc_cache_backend_name(const uc_cache_t *cache);

/* Frees memory returned by the library. Accepts NULL. */
UC_EXPORT void uc_free(void *p);

/* Frees the data of `n` multi-get answers (not the array itself). */
UC_EXPORT void uc_values_release(uc_value_t *vals, size_t n);

/*
 * Reads a key. Returns UC_OK with a copy of the value in *val / *len (NUL
 * terminated for convenience, the NUL not counted), UC_MISS when absent, or a
 * negative code (UC_EUNAVAILABLE while the breaker is open, UC_ETIMEDOUT, ...).
 */
UC_EXPORT int uc_cache_get(uc_cache_t *cache, const char *key, size_t klen,
                           char **val, size_t *len);

/*
 * uc_cache_get() for an operator looking at a keyspace entry by its key:
 * when the key holds the library's envelope for this very key, the value
 * inside is returned and *entry (may be NULL) is set to 1; a fill in
 * progress (a lease) reads as UC_MISS; anything else is returned as it is,
 * *entry 0.
 */
UC_EXPORT int uc_cache_get_entry(uc_cache_t *cache, const char *key,
                                 size_t klen, char **val, size_t *len,
                                 int *entry);

/* Stores a value that expires after ttl_ms (0: never). */
UC_EXPORT int uc_cache_set(uc_cache_t *cache, const char *key, size_t klen,
                           const char *val, size_t len, uint64_t ttl_ms);

/* Deletes a key; *existed (may be NULL) tells whether it was there. */
UC_EXPORT int uc_cache_del(uc_cache_t *cache, const char *key, size_t klen,
                           int *existed);

/* Returns UC_OK if the key exists, UC_MISS if not, or a negative code. */
UC_EXPORT int uc_cache_exists(uc_cache_t *cache, const char *key, size_t klen);

/*
 * Remaining time to live: UC_OK with *ttl_ms >= 0, or -1 for a key that never
 * expires; UC_MISS when the key does not exist.
 */
UC_EXPORT int uc_cache_ttl(uc_cache_t *cache, const char *key, size_t klen,
                           int64_t *ttl_ms);

/*
 * Reads n keys in one round trip (pipelined). Fills out[0..n-1] and returns
 * UC_OK when the round trip worked (each answer has its own status), or a
 * negative code with every out[i] left untouched.
 */
UC_EXPORT int uc_cache_mget(uc_cache_t *cache, size_t n,
                            const char *const *keys, const size_t *klens,
                            uc_value_t *out);

/* Stores n values with one TTL in one round trip (pipelined). */
UC_EXPORT int uc_cache_mset(uc_cache_t *cache, size_t n,
                            const char *const *keys, const size_t *klens,
                            const char *const *vals, const size_t *vlens,
                            uint64_t ttl_ms);

/*
 * Deletes every key matching a Redis glob pattern (below the key prefix):
 * SCAN with MATCH and UNLINK in batches of scan_batch keys, never KEYS and
 * never one unbounded DEL. *removed (may be NULL) is the number of keys
 * removed. A pattern is an operator's tool: callers that build patterns from
 * user data use uc_keyspace_invalidate() instead.
 */
UC_EXPORT int uc_cache_delete_pattern(uc_cache_t *cache, const char *pattern,
                                      size_t *removed);

/* Counts the keys matching a glob pattern (below the prefix), by SCAN. */
UC_EXPORT int uc_cache_count_pattern(uc_cache_t *cache, const char *pattern,
                                     uint64_t *count);

/* Round trip to the backend; *rtt_us (may be NULL) is its duration. */
UC_EXPORT int uc_cache_ping(uc_cache_t *cache, uint64_t *rtt_us);

/*
 * Queues a warm: in the background, the most read entries of every keyspace
 * that has its own loader (uc_keyspace_def_t.loader) are read through
 * get-or-load, the hottest first, so that what a flush or a failover took
 * is loaded again before clients ask for it. At most
 * UTXOCACHE_WARM_TOP entries per keyspace and UTXOCACHE_WARM_RATE loads a
 * second per handle; an entry still cached costs no load. The library also
 * warms by itself once it has dropped a Redis dataset it could not trust
 * (a FLUSHALL, a restarted Redis, a failover). Returns UC_OK when queued,
 * UC_EUNAVAILABLE when a warm is queued or running already (nothing more is
 * queued), UC_ENOTSUP when warming is off (UTXOCACHE_WARM_TOP=0) or no
 * keyspace has its own loader.
 */
UC_EXPORT int uc_cache_warm(uc_cache_t *cache);

/* ---- statistics ---------------------------------------------------------- */

/*
 * Latency histograms have UC_HIST_BUCKETS buckets; bucket i counts operations
 * that took less than 2^i microseconds (and at least 2^(i-1)); the last bucket
 * also takes everything slower.
 */
#define UC_HIST_BUCKETS 26

/*
 * The counters of uc_stats_t, as X(name, help): one table from which the
 * struct, the library's atomic copy and any exporter (JSON, Prometheus) are
 * generated, so a new counter is one line here.
 */
#define UC_STATS_COUNTERS(X)                                                   \
    X(hits, "reads answered by the cache")                                     \
    X(misses, "reads the cache did not have")                                  \
    X(errors, "cache operations that failed")                                  \
    X(fallbacks, "get-or-load calls served by the loader because the cache "   \
                 "failed or was unavailable")                                  \
    X(bypasses, "get-or-load calls that read the database because an "         \
                "invalidation of the entry was pending or the dataset was "    \
                "not trusted")                                                 \
    X(loads, "loader calls")                                                   \
    X(load_errors, "loader calls that failed")                                 \
    X(corrupt, "cached values rejected (envelope, key, size or validator) "    \
               "and deleted")                                                  \
    X(too_big, "values not stored or not read: over the keyspace's cap")       \
    X(sets, "values stored")                                                   \
    X(set_errors, "stores that failed")                                        \
    X(stale_rejects, "loads not stored: an invalidation removed their lease")  \
    X(lease_conflicts, "loads not stored: another caller held the lease")      \
    X(invalidations, "invalidations asked for")                                \
    X(invalidation_retries, "invalidation attempts after a failure")           \
    X(invalidation_failures, "invalidations that failed and were left "        \
                             "pending")                                        \
    X(invalidations_applied_late, "pending invalidations applied by the "      \
                                  "worker")                                    \
    X(invalidation_overflows, "times the pending set overflowed and whole "    \
                              "keyspaces were invalidated")                    \
    X(dataset_flushes, "times the Redis dataset was not the one being "        \
                       "invalidated and the prefix was dropped")               \
    X(near_hits, "hits answered by the near cache, without a round trip")      \
    X(near_bypasses, "reads that skipped the near cache: its invalidation "    \
                     "channel was not proven alive")                           \
    X(near_races, "values not kept in the near cache: an invalidation of "     \
                  "the entry arrived while it was being read")                 \
    X(stale_served, "get-or-load answers with a value past its TTL, the "      \
                    "loader having failed or been slow")                       \
    X(soft_timeouts, "loads that outlasted the soft timeout and went on in "   \
                     "the background")                                         \
    X(early_refreshes, "entries refreshed before their expiry (XFetch)")       \
    X(flight_joins, "get-or-load calls that shared another caller's load in "  \
                    "this process")                                            \
    X(lease_waits, "get-or-load calls that waited for another instance's "     \
                   "fill")                                                     \
    X(lease_wait_timeouts, "lease waits that ended without the value and "     \
                           "loaded themselves")                                \
    X(lease_takeovers, "leases of another instance's fill taken over after "   \
                       "the wait ran out (its holder died or its store "       \
                       "could not land)")                                      \
    X(negative_hits, "reads answered by a remembered \"not found\"")           \
    X(background_loads, "loads run in the background: early refreshes, and "   \
                        "fills that outlasted the soft timeout")               \
    X(refreshes_elsewhere, "early refreshes left to another instance that "    \
                           "was refreshing the entry already")                 \
    X(warm_loads, "entries the warmer loaded (its get-or-load called the "     \
                  "loader)")                                                   \
    X(warm_hits, "entries the warmer found cached already (no load)")          \
    X(warm_skipped, "hot entries the warmer left alone: no loader, an "        \
                    "invalidation pending, the cache or the database "         \
                    "failing")                                                 \
    X(refills, "hot entries loaded again right after a write of this "         \
               "process invalidated them")                                     \
    X(refill_hits, "reads answered by an entry that a refill stored")          \
    X(refill_skipped_cold, "entries a write invalidated that were not among "  \
                           "the most read: not refilled")                      \
    X(refill_skipped_rate, "refills not made: the keyspace's refill rate "     \
                           "was spent")                                        \
    X(refill_skipped_overflow, "refills dropped: the refill queue was full "   \
                               "(the invalidation itself was applied)")        \
    X(refill_skipped_breaker, "refills not made: the cache's breaker was "     \
                              "open, or the loader had failed 3 times in a "   \
                              "row (a pause of 1 s, doubling to 30 s)")        \
    X(refill_raced, "refills that found the entry filled already: a read or "  \
                    "another instance loaded it first")                        \
    X(refill_wait_timeouts, "writes that answered before their refill was "    \
                            "stored (UTXOCACHE_REFILL_WAIT_MS passed; the "    \
                            "refill went on in the background)")

/* Counter slots the struct reserves: new counters are appended to the end of
 * UC_STATS_COUNTERS and take a slot, so the struct's size and every older
 * field's offset stay as they were. */
#define UC_STATS_SLOTS 48
#define UC__STATS_ONE(name, help) +1
enum { UC_STATS_NCOUNTERS = 0 UC_STATS_COUNTERS(UC__STATS_ONE) };
#undef UC__STATS_ONE

typedef struct {
    uint64_t get_us[UC_HIST_BUCKETS];
    uint64_t set_us[UC_HIST_BUCKETS];
    /* Gauge: invalidations not yet applied (totals only; 0 per keyspace). */
    uint64_t pending_invalidations;
#define UC__STATS_FIELD(name, help) uint64_t name;
    UC_STATS_COUNTERS(UC__STATS_FIELD)
#undef UC__STATS_FIELD
    uint64_t reserved[UC_STATS_SLOTS - UC_STATS_NCOUNTERS];
} uc_stats_t;

/* hits / (hits + misses), 0 when there were no reads. */
UC_EXPORT double uc_stats_hit_rate(const uc_stats_t *st);

/*
 * Upper bound in microseconds of the p-quantile (0 < p <= 1) of a latency
 * histogram; 0 when it is empty.
 */
UC_EXPORT uint64_t uc_stats_percentile_us(const uint64_t *buckets, double p);

/* Totals over every operation of the handle, keyspaced or not. */
UC_EXPORT void uc_cache_stats(const uc_cache_t *cache, uc_stats_t *out);

typedef enum {
    UC_BREAKER_CLOSED = 0,
    UC_BREAKER_OPEN = 1,
    UC_BREAKER_HALF_OPEN = 2,
} uc_breaker_state_t;

typedef struct {
    unsigned max;              /* max connections */
    unsigned in_use;           /* borrowed right now */
    unsigned idle;             /* connected and waiting in the pool */
    uint64_t connects;         /* connections opened */
    uint64_t connect_failures; /* connection attempts that failed */
    uint64_t discarded;        /* connections closed after an error/timeout */
    uint64_t idle_closed;      /* connections closed for idleness */
    uint64_t waits;            /* acquires that had to wait */
    uint64_t acquire_timeouts; /* acquires that gave up */
    uc_breaker_state_t breaker;
    uint64_t breaker_opens;   /* times the breaker opened */
    uint64_t breaker_rejects; /* calls answered "unavailable" at once */
    /* Auto-pipelining (uc_config_t.pipeline_max): writes that carried
     * the GETs and SETs of two or more concurrent calls, and those calls. */
    uint64_t batches;
    uint64_t batched;
} uc_pool_stats_t;

/* ---- near cache ---------------------------------------------------------- */

typedef enum {
    UC_CHANNEL_NONE = 0,       /* no near cache */
    UC_CHANNEL_DOWN = 1,       /* not connected: the near cache is bypassed */
    UC_CHANNEL_CONNECTING = 2, /* subscribed, not yet proven by a probe */
    UC_CHANNEL_HEALTHY = 3,    /* invalidations arrive: the near cache serves */
} uc_channel_state_t;

/* Memory of the near cache, for one keyspace or all of them. */
typedef struct {
    uint64_t budget_bytes; /* what it may hold */
    uint64_t bytes;        /* what it holds, per-entry overhead included */
    uint64_t entries;
    uint64_t inserts;
    uint64_t evictions;     /* entries dropped to stay within the budget */
    uint64_t invalidations; /* entries dropped by an invalidation */
    uint64_t refused;       /* values not kept (race, budget, size) */
} uc_near_usage_t;

typedef struct {
    int enabled;
    uc_channel_state_t channel;
    uc_near_usage_t usage; /* all keyspaces */
    uint64_t channel_connects;
    uint64_t channel_connect_failures;
    uint64_t messages;          /* invalidation messages received */
    uint64_t keys_invalidated;  /* keys they named */
    uint64_t flushes;           /* times the whole near cache was dropped */
    uint64_t flushes_null;      /* ... on a FLUSHALL/FLUSHDB (null message) */
    uint64_t flushes_lost;      /* ... on a lost subscriber connection */
    uint64_t flushes_heartbeat; /* ... on a probe that did not come back */
    uint64_t flushes_dataset;   /* ... on a dataset change or overflow */
    /* ... on a change of the Redis Cluster primaries the channel follows */
    uint64_t flushes_topology;
    uint64_t heartbeats_sent;
    uint64_t heartbeats_late;
    /* Invalidation lag, µs: a probe's write to its invalidation's arrival
     * (buckets as uc_stats_t's). */
    uint64_t lag_us[UC_HIST_BUCKETS];
} uc_near_stats_t;

/* The near cache's state (enabled == 0 and the rest zero without one). */
UC_EXPORT void uc_cache_near_stats(const uc_cache_t *cache,
                                   uc_near_stats_t *out);

/* Pool and breaker figures (all zero for the memory backend). */
UC_EXPORT void uc_cache_pool_stats(const uc_cache_t *cache,
                                   uc_pool_stats_t *out);

/* ---- Redis servers (standalone or Cluster) ------------------------------ */

typedef enum {
    UC_REDIS_UNKNOWN = 0,    /* not asked yet, or no server answered */
    UC_REDIS_STANDALONE = 1, /* one server */
    UC_REDIS_CLUSTER = 2,    /* Redis Cluster: routed by hash slot */
} uc_redis_mode_t;

typedef enum {
    UC_NODE_UNKNOWN = 0, /* a start node not in the slot map (yet) */
    UC_NODE_PRIMARY = 1,
    UC_NODE_REPLICA = 2,
} uc_node_role_t;

/* The topology as the handle last read it. */
typedef struct {
    uc_redis_mode_t mode;
    uint64_t refreshes;        /* slot maps read (CLUSTER SHARDS) */
    uint64_t refresh_failures; /* rounds in which no node answered */
    uint64_t failovers;        /* replicas seen taking over a primary's slots */
    uint64_t slot_moves;       /* slots seen changing owner */
    uint64_t unrouted;         /* calls for a slot no node served */
} uc_redis_topology_t;

#define UC_REDIS_NODES_MAX 64

/* One server and the handle's figures for it. */
typedef struct {
    char addr[UC_HOST_MAX + 8]; /* "host:port" */
    char id[41];                /* cluster node id; "" standalone */
    uc_node_role_t role;
    unsigned slots; /* hash slots it serves (16384 standalone) */
    int trusted;    /* its dataset is trusted (see docs) */
    int failed;     /* the cluster marks it failed (a dead primary
                       stays in the map, serving no slots) */
    /* The near cache's invalidation channel on this node (primaries only;
     * UC_CHANNEL_NONE without a near cache or for a node not followed). */
    uc_channel_state_t channel;
    uint64_t channel_heartbeats; /* heartbeats that came back on it */
    uint64_t channel_lag_us;     /* the newest heartbeat's lag */
    uint64_t commands;           /* commands sent to it */
    uint64_t failures;           /* calls that broke a connection to it */
    uint64_t moved;              /* MOVED answers it gave */
    uint64_t ask;                /* ASK answers */
    uint64_t tryagain;           /* TRYAGAIN and CLUSTERDOWN answers */
    uint64_t distrusts;          /* times its dataset was not trusted */
    uc_pool_stats_t pool;        /* its connections and breaker */
} uc_redis_node_t;

/*
 * The Redis servers behind the handle: fills *topo (may be NULL) and up to
 * cap nodes, primaries first; returns how many nodes there are (which may
 * be more than cap). 0 for the memory backend.
 */
UC_EXPORT size_t uc_cache_redis_nodes(const uc_cache_t *cache,
                                      uc_redis_topology_t *topo,
                                      uc_redis_node_t *out, size_t cap);

typedef struct {
    uint64_t used_memory; /* bytes */
    uint64_t max_memory;  /* bytes; 0: unlimited */
    uint64_t keys;        /* keys in the selected database / store */
    uint64_t evicted_keys;
    uint64_t expired_keys;
    uint64_t server_hits; /* the server's own keyspace_hits */
    uint64_t server_misses;
    char version[32]; /* server version, or "memory" */
} uc_server_info_t;

/* Figures reported by the server (Redis INFO) or the memory store. */
UC_EXPORT int uc_cache_server_info(uc_cache_t *cache, uc_server_info_t *out);

#ifdef __cplusplus
}
#endif
#endif /* UTXOCACHE_CACHE_H */
