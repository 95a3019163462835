/* SPDX-License-Identifier: MIT */
/*
 * The library's one background thread, started by uc_cache_create() and
 * stopped by uc_cache_destroy(). Each tick (log_tail_ms, default 200 ms):
 *   1. the store's own upkeep (a cluster's slot map), then dataset
 *      trust: every trust_check_ms the store compares its marker
 *      with the server; when the store distrusts its dataset (here, or on a
 *      new connection), every key of a declared keyspace is dropped
 *      (SCAN+UNLINK in batches) and the marker adopted, reads bypassing the
 *      cache meanwhile;
 *   2. the durable log, when attached: the pending records replace the
 *      log's part of the pending set; on a process-local store the records
 *      appended since the last tick are evicted here too;
 *   3. the pending set is retried (invalidate.c);
 *   4. every 10 minutes the records of most read entries halve (warm.c);
 *   5. once a minute, applied log records older than UC_INVLOG_KEEP_MS go.
 * The thread never holds a lock while it talks to the store or the log.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_int.h"

#define TAIL_BATCH 1024
/* How long the tail waits at a hole in the ids (a transaction that took an
 * id but has not committed yet, or rolled back) before it moves past. */
#define GAP_HOLD_US 2000000u
#define PRUNE_EVERY_US 60000000u

static void check_trust(uc_cache_t *c, uint64_t now)
{
    uc__backend_t *be = c->be;

    if (be->ops->maintain != NULL) {
        be->ops->maintain(be);
    }
    if (be->ops->verify == NULL) {
        return;
    }
    if (now >= c->next_trust_us) {
        c->next_trust_us = now + (uint64_t)c->env.cfg.trust_check_ms * 1000u;
        (void)be->ops->verify(be);
    }
    (void)uc__trust_restore(c);
}

/* Records appended since the last tick, evicted from a process-local store. */
static void tail_local(uc_cache_t *c, uint64_t now, uc_inval_record_t *buf)
{
    size_t n = 0;
    int64_t pos = c->tail_pos;

    if (c->log.after(c->log_arg, pos, buf, TAIL_BATCH, &n) != UC_OK) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uc_keyspace_t *ks = uc__keyspace_by_name(c, buf[i].keyspace);
        if (ks != NULL && !uc__applied_here(c, buf[i].id)) {
            (void)uc__apply_target(c, ks, buf[i].target, NULL);
        }
        if (buf[i].id == pos + 1) {
            pos = buf[i].id;
            c->gap_since_us = 0;
        } else if (buf[i].id > pos + 1) {
            if (c->gap_since_us == 0) {
                c->gap_since_us = now;
            }
            if (now - c->gap_since_us >= GAP_HOLD_US) {
                pos = buf[i].id;
                c->gap_since_us = 0;
            }
        }
    }
    c->tail_pos = pos;
}

void uc__worker_tick(uc_cache_t *c)
{
    uint64_t now = uc__now_us(&c->env);

    check_trust(c, now);
    /* Marks first, so that the pending read below no longer returns what
     * this process applied. */
    uc__marks_flush(c);
    if (c->has_log) {
        /* About 1 MiB, kept from tick to tick (the worker's alone). */
        if (c->tail_buf == NULL) {
            c->tail_buf = malloc(TAIL_BATCH * sizeof(*c->tail_buf));
        }
        uc_inval_record_t *buf = c->tail_buf;
        size_t n = 0;

        if (buf != NULL) {
            uint64_t asked = uc__now_us(&c->env);
            if (c->log.pending(c->log_arg, buf, TAIL_BATCH, &n) == UC_OK) {
                uc__pending_from_log(c, buf, n, n == TAIL_BATCH, asked);
            }
            if (c->local) {
                tail_local(c, now, buf);
            }
        }
    }
    uc__pending_retry(c);
    uc__warm_tick(c, now);
    if (c->has_log && now >= c->next_prune_us) {
        c->next_prune_us = now + PRUNE_EVERY_US;
        (void)c->log.prune(c->log_arg, uc__wall_ms() - UC_INVLOG_KEEP_MS);
    }
}

static void *worker_main(void *arg)
{
    uc_cache_t *c = arg;

    pthread_mutex_lock(&c->worker_mu);
    while (!c->worker_stop) {
        struct timespec ts;
        uint64_t ms = (uint64_t)c->env.cfg.log_tail_ms;

        pthread_mutex_unlock(&c->worker_mu);
        uc__worker_tick(c);
        pthread_mutex_lock(&c->worker_mu);
        ts = uc__deadline(CLOCK_MONOTONIC, ms);
        while (!c->worker_stop &&
               pthread_cond_timedwait(&c->worker_cv, &c->worker_mu, &ts) !=
                   ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&c->worker_mu);
    return NULL;
}

int uc__worker_start(uc_cache_t *c)
{
    pthread_condattr_t ca;

    if (pthread_mutex_init(&c->trust_mu, NULL) != 0) {
        return UC_ENOMEM;
    }
    if (pthread_mutex_init(&c->worker_mu, NULL) != 0) {
        pthread_mutex_destroy(&c->trust_mu);
        return UC_ENOMEM;
    }
    if (pthread_condattr_init(&ca) != 0 ||
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&c->worker_cv, &ca) != 0) {
        pthread_mutex_destroy(&c->worker_mu);
        pthread_mutex_destroy(&c->trust_mu);
        return UC_ENOMEM;
    }
    pthread_condattr_destroy(&ca);
    c->worker_stop = 0;
    /* The thread starts with every signal blocked, so that a signal meant
     * for the application (SIGTERM to drain, say) is never delivered to it
     * and run with its default action there. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&c->worker, NULL, worker_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        pthread_cond_destroy(&c->worker_cv);
        pthread_mutex_destroy(&c->worker_mu);
        pthread_mutex_destroy(&c->trust_mu);
        return UC_ENOMEM;
    }
    c->worker_running = 1;
    return UC_OK;
}

void uc__worker_stop(uc_cache_t *c)
{
    if (!c->worker_running) {
        return;
    }
    pthread_mutex_lock(&c->worker_mu);
    c->worker_stop = 1;
    pthread_cond_signal(&c->worker_cv);
    pthread_mutex_unlock(&c->worker_mu);
    pthread_join(c->worker, NULL);
    /* What this process applied is marked before it goes (the worker has
     * stopped: this is the queue's only taker now). */
    uc__marks_flush(c);
    pthread_cond_destroy(&c->worker_cv);
    pthread_mutex_destroy(&c->worker_mu);
    pthread_mutex_destroy(&c->trust_mu);
    c->worker_running = 0;
}

int uc_cache_attach_log(uc_cache_t *cache, const uc_invlog_ops_t *ops,
                        void *arg, char *err, size_t errlen)
{
    uc_inval_record_t *buf = NULL;
    int64_t last = 0;
    size_t n = 0;
    uint64_t asked;
    int rc;

    if (ops == NULL || ops->after == NULL || ops->pending == NULL ||
        ops->mark_applied == NULL || ops->prune == NULL ||
        ops->last_id == NULL || cache->has_log) {
        return UC_EINVAL;
    }
    buf = malloc(TAIL_BATCH * sizeof(*buf));
    if (buf == NULL) {
        return UC_ENOMEM;
    }
    rc = ops->last_id(arg, &last);
    asked = uc__now_us(&cache->env);
    if (rc == UC_OK) {
        rc = ops->pending(arg, buf, TAIL_BATCH, &n);
    }
    if (rc != UC_OK) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "invalidation log: %s", uc_strerror(rc));
        }
        free(buf);
        return rc;
    }
    /* The worker reads these fields only once it sees has_log set. */
    cache->log = *ops;
    cache->log_arg = arg;
    cache->tail_pos = last;
    atomic_store(&cache->has_log, 1);
    uc__pending_from_log(cache, buf, n, n == TAIL_BATCH, asked);
    free(buf);
    if (n > 0) {
        uc__log(&cache->env, UC_LOG_INFO,
                "invalidation log: %zu pending at start; those entries are "
                "read from the database until applied",
                n);
        /* On a healthy Redis they are applied before the first read. */
        uc__pending_retry(cache);
    }
    return UC_OK;
}
