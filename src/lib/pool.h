/* SPDX-License-Identifier: MIT */
/*
 * A bounded pool of connections of any kind. The pool knows connections
 * only as `void *` made and closed by callbacks, so its logic (bound, waits,
 * discard, idle close, reconnect backoff) is tested without a server; the
 * redis backend plugs hiredis contexts into it.
 *
 *   - At most cfg.max_connections exist at once (borrowed + idle + being
 *     made). Connections are made lazily, on acquire, outside the lock.
 *   - An acquire that finds none free waits up to cfg.acquire_timeout_ms
 *     (real CLOCK_MONOTONIC time) and then fails with UC_EPOOL.
 *   - A connection released as not ok (it timed out or failed) is closed and
 *     never handed out again.
 *   - Idle connections unused for cfg.idle_timeout_ms are closed, checked on
 *     every acquire and release.
 *   - After a failed connect the pool backs off: delays start at
 *     cfg.backoff_base_ms and double up to cfg.backoff_max_ms, with equal
 *     jitter (half fixed, half random). While backing off an acquire that
 *     would need a new connection fails at once with UC_EUNAVAILABLE.
 *     Idle connections are still handed out.
 * Idle time and backoff use uc__now_us(env), so tests drive them by hand.
 *
 * Ownership: the pool owns its idle connections; a borrowed one belongs to
 * the thread that acquired it until it is released. Thread safety: every
 * function except uc__pool_destroy() may be called from any thread.
 */
#ifndef UC_LIB_POOL_H
#define UC_LIB_POOL_H

#include <stdint.h>

#include "env.h"
#include "utxocache/cache.h"

typedef struct uc__pool uc__pool_t;

typedef struct uc__pool_conn_ops {
    /* Makes a connection: UC_OK and *conn, or a negative code. */
    int (*connect)(void *arg, void **conn);
    /* Closes a connection (never NULL). */
    void (*close)(void *arg, void *conn);
    /*
     * Optional: called outside the lock on an idle connection about to be
     * handed out; returns nonzero if it is still usable (e.g. the peer has
     * not closed it). A refused one is closed and counted as discarded.
     */
    int (*check)(void *arg, void *conn);
    void *arg;
} uc__pool_conn_ops_t;

/*
 * Creates an empty pool with the limits of env->cfg (defaults resolved by
 * the core; max_connections below 1 is taken as 1). `ops` is copied; `env`
 * is borrowed and must outlive the pool. Returns UC_OK or UC_ENOMEM.
 */
int uc__pool_create(const uc__env_t *env, const uc__pool_conn_ops_t *ops,
                    uc__pool_t **out);

/*
 * Closes the idle connections and frees the pool. Every borrowed connection
 * must have been released. Accepts NULL.
 */
void uc__pool_destroy(uc__pool_t *p);

/*
 * Borrows a connection. Returns UC_OK with *conn set; UC_EPOOL when none
 * became free within the acquire timeout; UC_EUNAVAILABLE at once during
 * reconnect backoff; or the connect callback's code when making a new one
 * failed (which starts or lengthens the backoff).
 */
int uc__pool_acquire(uc__pool_t *p, void **conn);

/*
 * Returns a borrowed connection. ok != 0 puts it back as idle; ok == 0
 * closes it (counted in discarded), for a connection that timed out or
 * failed and must never be reused.
 */
void uc__pool_release(uc__pool_t *p, void *conn, int ok);

/*
 * Closes every idle connection (counted in discarded): after one connection
 * failed in a way that says the server went away, its siblings are suspect.
 */
void uc__pool_discard_idle(uc__pool_t *p);

/* Pool figures into out (breaker fields untouched). */
void uc__pool_stats(uc__pool_t *p, uc_pool_stats_t *out);

#endif /* UC_LIB_POOL_H */
