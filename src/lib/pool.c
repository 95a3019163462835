/* SPDX-License-Identifier: MIT */
/*
 * The bounded connection pool (see pool.h). One mutex guards the counters
 * and the idle stack; a condition variable on CLOCK_MONOTONIC wakes waiters
 * when a slot or a connection frees up. Connect, close and check callbacks
 * always run with the mutex dropped, so a slow connect never blocks the
 * threads that only return or reuse connections. A slot is reserved (total
 * incremented) before connecting and given back only after a close, so the
 * bound holds even while sockets are being opened or closed.
 *
 * The idle stack is LIFO: the warmest connection is reused first and the
 * oldest ones sink to the bottom, where the idle check closes them.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* Idle connections closed per acquire/release; the rest wait for the next. */
#define PRUNE_MAX 16

typedef struct {
    void *conn;
    uint64_t since_us; /* when it was released */
} idle_t;

struct uc__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const uc__env_t *env;
    uc__pool_conn_ops_t ops;
    unsigned max;
    uint64_t idle_us; /* 0: never close for idleness */
    uint64_t acquire_ms;
    uint64_t backoff_base_ms;
    uint64_t backoff_max_ms;
    /* Guarded by mu. */
    idle_t *idle; /* stack of nidle, capacity max */
    unsigned nidle;
    unsigned total; /* idle + in use + being made or closed */
    unsigned in_use;
    unsigned streak; /* consecutive connect failures */
    uint64_t backoff_until_us;
    uint64_t rng;
    uint64_t connects, connect_failures, discarded, idle_closed, waits,
        acquire_timeouts;
};

int uc__pool_create(const uc__env_t *env, const uc__pool_conn_ops_t *ops,
                    uc__pool_t **out)
{
    const uc_config_t *cfg = &env->cfg;
    pthread_condattr_t ca;
    uc__pool_t *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return UC_ENOMEM;
    }
    p->env = env;
    p->ops = *ops;
    p->max = cfg->max_connections > 0 ? (unsigned)cfg->max_connections : 1u;
    p->idle_us =
        cfg->idle_timeout_ms > 0 ? (uint64_t)cfg->idle_timeout_ms * 1000u : 0u;
    p->acquire_ms =
        cfg->acquire_timeout_ms > 0 ? (uint64_t)cfg->acquire_timeout_ms : 0u;
    p->backoff_base_ms =
        cfg->backoff_base_ms > 0 ? (uint64_t)cfg->backoff_base_ms : 0u;
    p->backoff_max_ms = cfg->backoff_max_ms > 0 ? (uint64_t)cfg->backoff_max_ms
                                                : p->backoff_base_ms;
    if (p->backoff_max_ms < p->backoff_base_ms) {
        p->backoff_max_ms = p->backoff_base_ms;
    }
    /* Any nonzero seed will do: the jitter only has to differ per process. */
    p->rng = (uint64_t)(uintptr_t)p ^ (uc__now_us(env) << 17) ^
             0x9e3779b97f4a7c15ull;
    p->idle = calloc(p->max, sizeof(*p->idle));
    if (p->idle == NULL) {
        goto fail_idle;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        goto fail_mutex;
    }
    if (pthread_condattr_init(&ca) != 0) {
        goto fail_attr;
    }
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto fail_attr;
    }
    pthread_condattr_destroy(&ca);
    *out = p;
    return UC_OK;

fail_attr:
    pthread_mutex_destroy(&p->mu);
fail_mutex:
    free(p->idle);
fail_idle:
    free(p);
    return UC_ENOMEM;
}

void uc__pool_destroy(uc__pool_t *p)
{
    if (p == NULL) {
        return;
    }
    for (unsigned i = 0; i < p->nidle; i++) {
        p->ops.close(p->ops.arg, p->idle[i].conn);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->idle);
    free(p);
}

/* xorshift64: cheap, and good enough to spread reconnects. Caller holds mu. */
static uint64_t next_random(uc__pool_t *p)
{
    uint64_t x = p->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p->rng = x;
    return x;
}

/*
 * Starts (or lengthens) the reconnect backoff after a failed connect:
 * base * 2^(streak-1) capped at max, then equal jitter, so that a fleet of
 * clients does not reconnect in lockstep yet each waits at least half the
 * delay. Caller holds mu.
 */
static void start_backoff(uc__pool_t *p, uint64_t now)
{
    uint64_t delay = p->backoff_base_ms;
    unsigned shift = 0;

    p->streak++;
    for (shift = 1; shift < p->streak && delay < p->backoff_max_ms; shift++) {
        delay *= 2;
    }
    if (delay > p->backoff_max_ms) {
        delay = p->backoff_max_ms;
    }
    delay *= 1000u; /* µs */
    delay = delay / 2 + next_random(p) % (delay / 2 + 1);
    p->backoff_until_us = now + delay;
}

/*
 * Takes idle connections unused for idle_us off the bottom of the stack
 * into doomed[] (at most PRUNE_MAX) and returns how many. Their slots stay
 * counted in total until close_doomed() has closed them. Caller holds mu.
 */
static size_t prune_locked(uc__pool_t *p, uint64_t now, void **doomed)
{
    size_t n = 0;

    if (p->idle_us == 0) {
        return 0;
    }
    while (n < p->nidle && n < PRUNE_MAX && now >= p->idle[n].since_us &&
           now - p->idle[n].since_us >= p->idle_us) {
        doomed[n] = p->idle[n].conn;
        n++;
    }
    if (n > 0) {
        for (unsigned i = (unsigned)n; i < p->nidle; i++) {
            p->idle[i - n] = p->idle[i];
        }
        p->nidle -= (unsigned)n;
        p->idle_closed += n;
    }
    return n;
}

/* Closes doomed connections (mu not held), then frees their slots. */
static void close_doomed(uc__pool_t *p, void **doomed, size_t n)
{
    if (n == 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        p->ops.close(p->ops.arg, doomed[i]);
    }
    pthread_mutex_lock(&p->mu);
    p->total -= (unsigned)n;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Absolute CLOCK_MONOTONIC time `ms` from now. */

/* Makes a new connection in a slot the caller reserved (mu not held). */
static int connect_new(uc__pool_t *p, void **conn)
{
    void *c = NULL;
    int rc = p->ops.connect(p->ops.arg, &c);

    if (rc == UC_OK && c == NULL) {
        rc = UC_EIO;
    }
    pthread_mutex_lock(&p->mu);
    if (rc == UC_OK) {
        p->in_use++;
        p->connects++;
        p->streak = 0;
        p->backoff_until_us = 0;
    } else {
        p->total--;
        p->connect_failures++;
        start_backoff(p, uc__now_us(p->env));
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == UC_OK) {
        *conn = c;
    }
    return rc;
}

/*
 * Hands out an idle connection taken off the stack (mu not held), or closes
 * it if the check refuses it. Returns 1 when *conn was set.
 */
static int reuse_idle(uc__pool_t *p, void *c, void **conn)
{
    if (p->ops.check == NULL || p->ops.check(p->ops.arg, c)) {
        *conn = c;
        return 1;
    }
    p->ops.close(p->ops.arg, c);
    pthread_mutex_lock(&p->mu);
    p->in_use--;
    p->total--;
    p->discarded++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int uc__pool_acquire(uc__pool_t *p, void **conn)
{
    void *doomed[PRUNE_MAX];
    struct timespec deadline = {0, 0};
    int waited = 0;
    int timed_out = 0;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        uint64_t now = uc__now_us(p->env);
        size_t ndoomed = prune_locked(p, now, doomed);

        if (ndoomed > 0) {
            pthread_mutex_unlock(&p->mu);
            close_doomed(p, doomed, ndoomed);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->nidle > 0) {
            void *c = p->idle[--p->nidle].conn;

            p->in_use++;
            pthread_mutex_unlock(&p->mu);
            if (reuse_idle(p, c, conn)) {
                return UC_OK;
            }
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->total < p->max) {
            if (now < p->backoff_until_us) {
                pthread_mutex_unlock(&p->mu);
                return UC_EUNAVAILABLE;
            }
            p->total++;
            pthread_mutex_unlock(&p->mu);
            return connect_new(p, conn);
        }
        if (timed_out || p->acquire_ms == 0) {
            p->acquire_timeouts++;
            pthread_mutex_unlock(&p->mu);
            return UC_EPOOL;
        }
        if (!waited) {
            waited = 1;
            p->waits++;
            deadline = uc__deadline(CLOCK_MONOTONIC, p->acquire_ms);
        }
        /* Spurious wakeups and stolen connections just loop. */
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
            timed_out = 1;
        }
    }
}

void uc__pool_release(uc__pool_t *p, void *conn, int ok)
{
    void *doomed[PRUNE_MAX];
    size_t ndoomed = 0;
    uint64_t now = uc__now_us(p->env);

    pthread_mutex_lock(&p->mu);
    p->in_use--;
    if (ok && p->nidle < p->max) {
        p->idle[p->nidle].conn = conn;
        p->idle[p->nidle].since_us = now;
        p->nidle++;
        conn = NULL;
    } else {
        p->discarded++;
    }
    ndoomed = prune_locked(p, now, doomed);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);

    if (conn != NULL) {
        p->ops.close(p->ops.arg, conn);
        pthread_mutex_lock(&p->mu);
        p->total--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    close_doomed(p, doomed, ndoomed);
}

void uc__pool_discard_idle(uc__pool_t *p)
{
    void *doomed[PRUNE_MAX];

    /* Bounded: connections released meanwhile are fresh and may stay. */
    for (unsigned round = 0; round <= p->max / PRUNE_MAX; round++) {
        size_t n = 0;

        pthread_mutex_lock(&p->mu);
        while (n < PRUNE_MAX && p->nidle > 0) {
            doomed[n++] = p->idle[--p->nidle].conn;
        }
        p->discarded += n;
        pthread_mutex_unlock(&p->mu);
        if (n == 0) {
            return;
        }
        close_doomed(p, doomed, n);
    }
}

void uc__pool_stats(uc__pool_t *p, uc_pool_stats_t *out)
{
    pthread_mutex_lock(&p->mu);
    out->max = p->max;
    out->in_use = p->in_use;
    out->idle = p->nidle;
    out->connects = p->connects;
    out->connect_failures = p->connect_failures;
    out->discarded = p->discarded;
    out->idle_closed = p->idle_closed;
    out->waits = p->waits;
    out->acquire_timeouts = p->acquire_timeouts;
    pthread_mutex_unlock(&p->mu);
}
