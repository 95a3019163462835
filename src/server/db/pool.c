/* SPDX-License-Identifier: MIT */
/*
 * The connection pool of the database layer, one for both drivers. A
 * driver gives it three callbacks (connect, alive, close) over its own
 * connection type; the pool lends connections to one call at a time, makes
 * a new one while it is below its size, and otherwise waits for one to come
 * back, never longer than the handle's timeout. A connection comes back
 * kept or dropped, as the driver judges its health; dropping all the idle
 * ones too is for a server that changed under every one of them (a standby
 * promoted, a restart).
 */
#include "db_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int uq__db_pool_init(uq__db_pool_t *p, int max, int timeout_ms,
                     const uq__db_pool_ops_t *ops, void *arg,
                     const uq__db_logger_t *log, const char *what)
{
    pthread_condattr_t ca;

    memset(p, 0, sizeof(*p));
    p->max = max > 0 ? max : 1;
    p->timeout_ms = timeout_ms;
    p->ops = ops;
    p->arg = arg;
    p->log = log;
    p->what = what;
    p->idle = calloc((size_t)p->max, sizeof(*p->idle));
    if (p->idle == NULL) {
        return UQ_DB_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    /* The waits are bounded by the monotonic clock: a wall clock stepped
     * back must not stretch one. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->ready = 1;
    return UQ_DB_OK;
}

void uq__db_pool_destroy(uq__db_pool_t *p)
{
    if (!p->ready) {
        free(p->idle);
        return;
    }
    for (int i = 0; i < p->n_idle; i++) {
        p->ops->close(p->arg, p->idle[i]);
    }
    free(p->idle);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    memset(p, 0, sizeof(*p));
}

int uq__db_pool_adopt(uq__db_pool_t *p, void *conn)
{
    int ok;

    pthread_mutex_lock(&p->mu);
    ok = p->n_open < p->max;
    if (ok) {
        p->idle[p->n_idle++] = conn;
        p->n_open++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return ok ? UQ_DB_OK : UQ_DB_EINVAL;
}

int uq__db_pool_acquire(uq__db_pool_t *p, void **out)
{
    uint64_t deadline = uq__db_mono_ms() + (uint64_t)p->timeout_ms;
    struct timespec abs;
    void *c = NULL;
    int make = 0, waited = 0;
    char err[640];

    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_sec += p->timeout_ms / 1000;
    abs.tv_nsec += (long)(p->timeout_ms % 1000) * 1000000L;
    if (abs.tv_nsec >= 1000000000L) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->n_idle > 0) {
            /* Lent while it is checked, outside the lock: a driver's check
             * or close may take its time, and the other callers need not
             * wait for it. */
            c = p->idle[--p->n_idle];
            p->lent++;
            pthread_mutex_unlock(&p->mu);
            int alive = p->ops->alive == NULL || p->ops->alive(p->arg, c);
            if (!alive) {
                p->ops->close(p->arg, c);
                c = NULL;
            }
            pthread_mutex_lock(&p->mu);
            if (alive) {
                break;
            }
            /* Dead: its slot is free, for this caller or a waiter. */
            p->lent--;
            p->n_open--;
            p->dropped++;
            pthread_cond_signal(&p->cv);
            continue;
        }
        if (p->n_open < p->max) {
            p->n_open++;
            make = 1;
            break;
        }
        waited = 1;
        if (pthread_cond_timedwait(&p->cv, &p->mu, &abs) == ETIMEDOUT ||
            uq__db_mono_ms() >= deadline) {
            if (p->n_idle == 0 && p->n_open >= p->max) {
                break;
            }
        }
    }
    if (waited) {
        p->waits++;
    }
    if (c == NULL && !make) {
        p->timeouts++;
    }
    if (make) {
        p->lent++; /* a connection taken from idle was counted then */
    }
    pthread_mutex_unlock(&p->mu);
    if (c != NULL) {
        *out = c;
        return UQ_DB_OK;
    }
    if (!make) {
        uq__db_logf(p->log, 2, "%s: no connection free within %d ms", p->what,
                    p->timeout_ms);
        return UQ_DB_EBUSY;
    }
    err[0] = '\0';
    c = p->ops->connect(p->arg, err, sizeof(err));
    if (c == NULL) {
        uq__db_logf(p->log, 3, "%s", err[0] != '\0' ? err : "connect failed");
        pthread_mutex_lock(&p->mu);
        p->n_open--;
        p->lent--;
        p->connect_failures++;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return UQ_DB_EUNAVAILABLE;
    }
    pthread_mutex_lock(&p->mu);
    p->connects++;
    pthread_mutex_unlock(&p->mu);
    *out = c;
    return UQ_DB_OK;
}

void uq__db_pool_release(uq__db_pool_t *p, void *conn, int how)
{
    void **drop = NULL;
    int ndrop = 0;

    if (how != UQ__DB_POOL_KEEP) {
        p->ops->close(p->arg, conn);
    }
    if (how == UQ__DB_POOL_DROP_IDLE) {
        drop = malloc((size_t)p->max * sizeof(*drop));
    }
    pthread_mutex_lock(&p->mu);
    p->lent--;
    if (how == UQ__DB_POOL_KEEP) {
        p->idle[p->n_idle++] = conn;
    } else {
        p->n_open--;
        p->dropped++;
    }
    if (drop != NULL) {
        ndrop = p->n_idle;
        memcpy(drop, p->idle, (size_t)ndrop * sizeof(*drop));
        p->n_idle = 0;
        p->n_open -= ndrop;
        p->dropped += (uint64_t)ndrop;
    }
    /* Every waiter: a kept connection serves one, a freed slot another. */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < ndrop; i++) {
        p->ops->close(p->arg, drop[i]);
    }
    free(drop);
}

void uq__db_pool_figures(uq__db_pool_t *p, uq__db_pool_figures_t *out)
{
    memset(out, 0, sizeof(*out));
    if (p == NULL || !p->ready) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    out->size = p->max;
    out->open = p->n_open;
    out->idle = p->n_idle;
    out->lent = p->lent;
    out->connects = p->connects;
    out->connect_failures = p->connect_failures;
    out->dropped = p->dropped;
    out->waits = p->waits;
    out->timeouts = p->timeouts;
    pthread_mutex_unlock(&p->mu);
}
