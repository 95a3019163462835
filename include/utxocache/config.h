/* SPDX-License-Identifier: MIT */
/*
 * Configuration of a cache handle: which backend, where Redis is, how long
 * each wait may last, how large the in-process cache may grow, and how the
 * library logs. A uc_config_t is a plain value: it owns no heap memory, can
 * be copied with '=', and needs no release. It is not shared between threads
 * by the library; uc_cache_create() copies what it needs.
 *
 * A zero field means "the default" (given next to each field), so
 * `uc_config_t cfg = UC_CONFIG_INIT;` is a valid configuration: the memory
 * backend with default limits.
 */
#ifndef UTXOCACHE_CONFIG_H
#define UTXOCACHE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    UC_LOG_DEBUG = 0,
    UC_LOG_INFO = 1,
    UC_LOG_WARN = 2,
    UC_LOG_ERROR = 3,
} uc_log_level_t;

/*
 * Log callback. `msg` is one line without a trailing newline, valid only
 * during the call. It may be called from any thread that uses the cache, never
 * while the library holds a lock, and must not call back into the same cache.
 * Passwords never appear in messages.
 */
typedef void (*uc_log_fn)(void *arg, uc_log_level_t level, const char *msg);

/*
 * Monotonic clock in microseconds. Tests replace it to drive TTLs, backoff
 * and the circuit breaker without sleeping; must be thread-safe.
 */
typedef uint64_t (*uc_clock_fn)(void *arg);

typedef enum {
    UC_BACKEND_AUTO = 0, /* redis when a host is set, memory otherwise */
    UC_BACKEND_MEMORY = 1,
    UC_BACKEND_REDIS = 2,
} uc_backend_kind_t;

#define UC_HOST_MAX 256
#define UC_CLUSTER_NODES_MAX 1024
#define UC_USER_MAX 128
#define UC_PASSWORD_MAX 256
#define UC_PREFIX_MAX 64
#define UC_KEYSPACE_NAME_MAX 32
#define UC_TTL_OVERRIDES_MAX 16

/* Per-keyspace settings that replace the declared ones (environment:
 * UTXOCACHE_TTL_<NAME>, UTXOCACHE_STALE_S_<NAME>,
 * UTXOCACHE_NEAR_BYTES_<NAME>); `set` says which fields hold a value. */
enum {
    UC_OVERRIDE_TTL = (1 << 0),
    UC_OVERRIDE_STALE = (1 << 1),
    UC_OVERRIDE_NEAR_BYTES = (1 << 2),
};

typedef struct {
    char keyspace[UC_KEYSPACE_NAME_MAX];
    uint32_t set;        /* UC_OVERRIDE_* */
    uint32_t ttl_s;      /* >= 1 */
    uint32_t stale_s;    /* 0: no serve-stale grace */
    uint64_t near_bytes; /* the keyspace's near-cache budget; 0: none */
} uc_ttl_override_t;

typedef struct uc_config {
    uc_backend_kind_t backend;

    /* Redis. Empty host: no Redis configured. */
    char host[UC_HOST_MAX];
    int port;                       /* 6379 */
    char username[UC_USER_MAX];     /* ACL user; empty: "default" */
    char password[UC_PASSWORD_MAX]; /* never logged */
    int db;                         /* 0; negative is invalid */
    /*
     * More Redis Cluster nodes to start from, "host:port,host:port,...";
     * empty: host:port alone. Cluster mode itself is detected from the
     * server (INFO cluster_enabled:1), so a host that is a cluster node is
     * enough; the list only adds nodes to try when that one is down.
     */
    char cluster_nodes[UC_CLUSTER_NODES_MAX];
    int cluster_refresh_ms; /* 1000: the slot map is read again this often,
                               and at once after MOVED or a node error */

    /* Pool and timeouts. */
    int max_connections;     /* 50 */
    int connect_timeout_ms;  /* 250 */
    int command_timeout_ms;  /* 250 */
    int acquire_timeout_ms;  /* 100 */
    int pipeline_max;        /* 64 (at most 256): a node's GETs and SETs
                                of concurrent callers go out together, up
                                to this many in one write on one
                                connection, while another such batch is
                                out (auto-pipelining); negative: each call
                                on its own connection */
    int idle_timeout_ms;     /* 60000: idle connections closed after this */
    int backoff_base_ms;     /* 25: first reconnect delay, doubled, jittered */
    int backoff_max_ms;      /* 2000 */
    int breaker_threshold;   /* 5 consecutive failures open the breaker */
    int breaker_cooldown_ms; /* 1000 before one probe may close it */
    int scan_batch;          /* 500: SCAN COUNT and UNLINK batch size */

    /* Coherence. */
    int log_tail_ms;     /* 200: the worker's tick: log tail, retries */
    int lease_ms;        /* 10000: how long a fill's lease lives */
    int trust_check_ms;  /* 1000: how often the dataset marker is checked
                            besides every new connection */
    int sigpipe_ignored; /* nonzero: the application ignores SIGPIPE
                            process-wide (SIG_IGN) before the first call,
                            so the library need not block it around each
                            Redis write (two system calls fewer) */
    int observer;        /* nonzero: an operator's tool (the CLI), which
                            never drops or adopts a Redis dataset; the
                            services that fill the cache do */

    /* Near cache (an in-process tier in front of Redis; none in front of
     * the memory backend, which is in-process already). */
    int near_off;          /* nonzero: no near cache */
    size_t near_max_bytes; /* 64 MiB over all keyspaces: those with their
                              own budget take it, the others share the
                              rest equally */
    int near_heartbeat_ms; /* 100: a probe write whose invalidation must
                              come back through the channel */
    int near_deadline_ms;  /* 250: a probe not back by then flushes the
                              near cache until the channel is proven */
    int soft_timeout_ms;   /* 50: a load that has a stale value to fall
                              back on answers with it after this long */

    /* Warming: the most read entries of each keyspace that has its own
     * loader are loaded again in the background after a dataset was
     * dropped (a FLUSHALL, a restart, a failover) and on uc_cache_warm(). */
    int warm_top;         /* 1000 entries per keyspace; negative: no warming */
    int warm_rate;        /* 100: loads a second the warmer may make, at most
                             (per handle; a burst of a tenth of that) */
    int hot_capacity;     /* counters of each keyspace's record of its most
                             read entries: 10 x warm_top (10000), at least
                             1024, at most 262144; negative: no record, and
                             so no warming */
    int hot_sample;       /* 8: one get-or-load in this many is counted
                             (rounded down to a power of two); 1: all */
    int hot_sample_above; /* 20000: a keyspace read fewer times a second
                             than this has every read counted, sampling
                             starts above it; negative: always sample */
    /* Warm on write: after this process invalidates an entry (or a tag of
     * it) that is among the refill_top most read of its keyspace, the
     * warm thread loads it again through get-or-load (under the lease,
     * reading the database after the write's commit), so the next read is
     * a hit. Keyspaces with their own loader only. */
    int refill_top;     /* 1000 entries per keyspace (uc_keyspace_def_t may
                           set its own); negative: no refills */
    int refill_rate;    /* 1000: refills a second per keyspace, at most (a
                           burst of a tenth of that); past it, skipped */
    int refill_wait_ms; /* 50: how long the invalidating call waits for
                           its refills to be stored, so that the read after
                           the write is a hit; past it they go on in the
                           background. Negative: no wait */
    /* Memory backend. */
    size_t memory_max_bytes; /* 64 MiB; least recently used entries go */

    /* Prepended to every key; [A-Za-z0-9._:-] only. Empty: none. */
    char key_prefix[UC_PREFIX_MAX];

    /* Keyspace TTLs that replace the declared ones, by keyspace name. */
    uc_ttl_override_t ttl_overrides[UC_TTL_OVERRIDES_MAX];
    size_t n_ttl_overrides;

    uc_log_fn log_fn; /* NULL: no logging */
    void *log_arg;
    uc_log_level_t log_level; /* lowest level passed to log_fn */

    uc_clock_fn clock_fn; /* NULL: CLOCK_MONOTONIC */
    void *clock_arg;
} uc_config_t;

#define UC_CONFIG_INIT                                                         \
    {                                                                          \
        0                                                                      \
    }

/* Resets every field to zero, that is, to the defaults. */
UC_EXPORT void uc_config_init(uc_config_t *cfg);

/*
 * Reads a configuration from a variable lookup function (getenv's shape; it
 * returns NULL for an unset variable). Recognised variables:
 *
 *   REDIS_URL  redis://[user[:password]@]host[:port][/db], percent-decoded;
 *              wins over REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_USERNAME/
 *              REDIS_DB when set
 *   REDIS_HOST REDIS_PORT REDIS_PASSWORD REDIS_USERNAME REDIS_DB
 *   REDIS_CLUSTER_NODES (host:port,host:port,...: more cluster nodes to
 *              start from; without REDIS_URL/REDIS_HOST the first is the host)
 *   UTXOCACHE_CLUSTER_REFRESH_MS
 *   REDIS_MAX_CONNECTIONS REDIS_CONNECT_TIMEOUT_MS REDIS_COMMAND_TIMEOUT_MS
 *   UTXOCACHE_BACKEND (memory|redis) UTXOCACHE_KEY_PREFIX
 *   UTXOCACHE_ACQUIRE_TIMEOUT_MS UTXOCACHE_IDLE_TIMEOUT_MS
 *   UTXOCACHE_PIPELINE_MAX (0: off)
 *   UTXOCACHE_BREAKER_THRESHOLD UTXOCACHE_BREAKER_COOLDOWN_MS
 *   UTXOCACHE_MEMORY_MAX_BYTES UTXOCACHE_SCAN_BATCH
 *   UTXOCACHE_LOG_TAIL_MS UTXOCACHE_LEASE_MS UTXOCACHE_TRUST_CHECK_MS
 *   UTXOCACHE_NEAR (on|off) UTXOCACHE_NEAR_BYTES
 *   UTXOCACHE_NEAR_HEARTBEAT_MS UTXOCACHE_NEAR_DEADLINE_MS
 *   UTXOCACHE_SOFT_TIMEOUT_MS
 *   UTXOCACHE_WARM_TOP (0: off) UTXOCACHE_WARM_RATE
 *   UTXOCACHE_HOT_CAPACITY (0: no record) UTXOCACHE_HOT_SAMPLE
 *   UTXOCACHE_HOT_SAMPLE_ABOVE (0: always sample)
 *   UTXOCACHE_TTL_<KEYSPACE> (e.g. UTXOCACHE_TTL_FEEDBACK_STATS=600),
 *   UTXOCACHE_STALE_S_<KEYSPACE> and UTXOCACHE_NEAR_BYTES_<KEYSPACE> for
 *              each keyspace in `keyspace_names` (may be NULL, n = 0)
 *
 * Fields whose variable is unset are left as they are, so a caller can fill
 * defaults first. Returns UC_OK, or UC_ECONFIG with a one-line message in
 * `err` that names the variable (and never contains a password); on failure
 * `cfg` may be partly written.
 */
UC_EXPORT int
uc_config_from_lookup(uc_config_t *cfg,
                      const char *(*lookup)(void *arg, const char *name),
                      void *arg, const char *const *keyspace_names,
                      size_t n_keyspaces, char *err, size_t errlen);

/* uc_config_from_lookup() over the process environment (getenv). */
UC_EXPORT int uc_config_from_env(uc_config_t *cfg,
                                 const char *const *keyspace_names,
                                 size_t n_keyspaces, char *err, size_t errlen);

/*
 * Parses a redis:// URL into cfg's host, port, username, password and db.
 * Returns UC_OK or UC_ECONFIG with a message in `err` (which quotes the URL
 * with its password masked as "***").
 */
UC_EXPORT int uc_config_parse_url(uc_config_t *cfg, const char *url, char *err,
                                  size_t errlen);

/*
 * Writes a one-line description of where the cache points, for logs:
 * "redis://user:***@host:port/db" or "memory". Never includes a password.
 */
UC_EXPORT void uc_config_describe(const uc_config_t *cfg, char *buf,
                                  size_t buflen);

#ifdef __cplusplus
}
#endif
#endif /* UTXOCACHE_CONFIG_H */
