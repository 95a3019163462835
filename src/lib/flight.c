/* SPDX-License-Identifier: MIT */
/*
 * In-process single-flight (flight.h). Flights are few (one per entry being
 * loaded right now), so each shard keeps them in a plain list under its
 * mutex; a joiner sleeps on the shard's condition variable, which every
 * finish and every notify of that shard broadcasts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "env.h"
#include "flight.h"

struct uc__flight {
    uc__flight_t *next;
    uint64_t hash;
    int refs;          /* under the shard's lock */
    int done;          /* the leader finished */
    int listed;        /* still in the shard's list */
    uint64_t notified; /* invalidations of the key seen */
    /* An invalidation of the key arrived after this flight began: its
     * result may predate a write, so no caller joins it any more. */
    int superseded;
    /* An early refresh: callers that miss read the store themselves (the
     * value there is still good) instead of waiting for it. */
    int refresh;
    /* A value past its TTL that the leader answered with while its load
     * goes on in the background: joiners answer with it too, until an
     * invalidation of the key drops it. */
    uc__near_entry_t *interim;
    uc_tier_t interim_tier;
    uc__flight_result_t res;
    size_t klen;
    char key[];
};

static uint64_t key_hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static uc__flight_shard_t *shard_of(uc__flights_t *f, uint64_t h)
{
    return &f->shards[(h >> 32) & (UC__FLIGHT_SHARDS - 1)];
}

int uc__flights_init(uc__flights_t *f)
{
    pthread_condattr_t ca;
    size_t i;

    memset(f, 0, sizeof(*f));
    if (pthread_condattr_init(&ca) != 0) {
        return -1;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (i = 0; i < UC__FLIGHT_SHARDS; i++) {
        if (pthread_mutex_init(&f->shards[i].mu, NULL) != 0) {
            break;
        }
        if (pthread_cond_init(&f->shards[i].cv, &ca) != 0) {
            pthread_mutex_destroy(&f->shards[i].mu);
            break;
        }
    }
    pthread_condattr_destroy(&ca);
    if (i < UC__FLIGHT_SHARDS) {
        while (i-- > 0) {
            pthread_cond_destroy(&f->shards[i].cv);
            pthread_mutex_destroy(&f->shards[i].mu);
        }
        return -1;
    }
    return 0;
}

void uc__flights_release(uc__flights_t *f)
{
    for (size_t i = 0; i < UC__FLIGHT_SHARDS; i++) {
        pthread_cond_destroy(&f->shards[i].cv);
        pthread_mutex_destroy(&f->shards[i].mu);
    }
}

/* The flight of key that callers may still join (with `refreshes`, early
 * refreshes count too). */
static uc__flight_t *find(uc__flight_shard_t *s, uint64_t h, const char *key,
                          size_t klen, int refreshes)
{
    for (uc__flight_t *fl = s->head; fl != NULL; fl = fl->next) {
        if (!fl->superseded && (refreshes || !fl->refresh) && fl->hash == h &&
            fl->klen == klen && memcmp(fl->key, key, klen) == 0) {
            return fl;
        }
    }
    return NULL;
}

uc__flight_role_t uc__flight_begin(uc__flights_t *f, const char *key,
                                   size_t klen, int join, uc__flight_t **out)
{
    uint64_t h = key_hash(key, klen);
    uc__flight_shard_t *s = shard_of(f, h);
    uc__flight_t *fl, *made;

    *out = NULL;
    /* Allocated before the lock, freed if a flight turns out to exist:
     * the common case (a miss nobody else is loading) allocates anyway. */
    made = calloc(1, sizeof(*made) + klen);
    pthread_mutex_lock(&s->mu);
    fl = find(s, h, key, klen, !join);
    if (fl != NULL) {
        if (join) {
            fl->refs++;
            *out = fl;
        }
        pthread_mutex_unlock(&s->mu);
        free(made);
        return join ? UC__FLIGHT_JOINED : UC__FLIGHT_BUSY;
    }
    if (made == NULL) {
        pthread_mutex_unlock(&s->mu);
        return UC__FLIGHT_NONE;
    }
    made->hash = h;
    made->refresh = !join;
    made->refs = 1;
    made->listed = 1;
    made->klen = klen;
    memcpy(made->key, key, klen);
    made->next = s->head;
    s->head = made;
    pthread_mutex_unlock(&s->mu);
    *out = made;
    return UC__FLIGHT_LEAD;
}

/* Waits on the shard's condition variable until `deadline` (monotonic). */
static int wait_until(uc__flight_shard_t *s, const struct timespec *deadline)
{
    return pthread_cond_timedwait(&s->cv, &s->mu, deadline);
}

int uc__flight_wait(uc__flights_t *f, uc__flight_t *fl, uint64_t timeout_ms,
                    uc__flight_result_t *out)
{
    uc__flight_shard_t *s = shard_of(f, fl->hash);
    struct timespec dl = uc__deadline(CLOCK_MONOTONIC, timeout_ms);
    int done;

    pthread_mutex_lock(&s->mu);
    while (!fl->done && fl->interim == NULL) {
        if (wait_until(s, &dl) == ETIMEDOUT) {
            break;
        }
    }
    done = fl->done;
    if (done) {
        *out = fl->res;
        if (out->entry != NULL) {
            uc__near_retain(out->entry);
        }
    } else if (fl->interim != NULL) {
        out->rc = 0;
        out->source = UC_FROM_STALE;
        out->tier = fl->interim_tier;
        out->entry = fl->interim;
        uc__near_retain(out->entry);
        done = 2;
    }
    pthread_mutex_unlock(&s->mu);
    return done;
}

uint64_t uc__flight_notified(uc__flights_t *f, uc__flight_t *fl)
{
    uc__flight_shard_t *s = shard_of(f, fl->hash);
    uint64_t n;

    pthread_mutex_lock(&s->mu);
    n = fl->notified;
    pthread_mutex_unlock(&s->mu);
    return n;
}

uint64_t uc__flight_wait_notify(uc__flights_t *f, uc__flight_t *fl,
                                uint64_t seen, uint64_t timeout_ms)
{
    uc__flight_shard_t *s = shard_of(f, fl->hash);
    struct timespec dl = uc__deadline(CLOCK_MONOTONIC, timeout_ms);
    uint64_t n;

    pthread_mutex_lock(&s->mu);
    while (fl->notified == seen) {
        if (wait_until(s, &dl) == ETIMEDOUT) {
            break;
        }
    }
    n = fl->notified;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void unlink_flight(uc__flight_shard_t *s, uc__flight_t *fl)
{
    for (uc__flight_t **pp = &s->head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == fl) {
            *pp = fl->next;
            break;
        }
    }
    fl->listed = 0;
}

void uc__flight_finish(uc__flights_t *f, uc__flight_t *fl,
                       const uc__flight_result_t *res)
{
    uc__flight_shard_t *s = shard_of(f, fl->hash);

    pthread_mutex_lock(&s->mu);
    fl->res = *res;
    fl->done = 1;
    uc__near_release(fl->interim);
    fl->interim = NULL;
    if (fl->listed) {
        unlink_flight(s, fl);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void uc__flight_put(uc__flights_t *f, uc__flight_t *fl)
{
    uc__flight_shard_t *s;
    int last;

    if (fl == NULL) {
        return;
    }
    s = shard_of(f, fl->hash);
    pthread_mutex_lock(&s->mu);
    last = --fl->refs == 0;
    if (last && fl->listed) {
        /* A leader that never finished (it cannot happen through load.c,
         * but a flight must not outlive its last holder in the list). */
        unlink_flight(s, fl);
    }
    pthread_mutex_unlock(&s->mu);
    if (last) {
        uc__near_release(fl->interim);
        uc__near_release(fl->res.entry);
        free(fl);
    }
}

/* Under the shard's lock: the key changed after the flight began (a
 * write, when `write`; else any change, the flight's own fill included). */
static void changed(uc__flight_t *fl, int write)
{
    fl->notified++;
    if (write) {
        fl->superseded = 1;
    }
    uc__near_release(fl->interim);
    fl->interim = NULL;
}

void uc__flight_offer(uc__flights_t *f, uc__flight_t *fl, uc__near_entry_t *ne,
                      uc_tier_t tier)
{
    uc__flight_shard_t *s = shard_of(f, fl->hash);

    pthread_mutex_lock(&s->mu);
    if (fl->done || fl->superseded) {
        pthread_mutex_unlock(&s->mu);
        uc__near_release(ne);
        return;
    }
    uc__near_release(fl->interim);
    fl->interim = ne;
    fl->interim_tier = tier;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void uc__flight_notify(uc__flights_t *f, const char *key, size_t klen,
                       int write)
{
    uint64_t h = key_hash(key, klen);
    uc__flight_shard_t *s = shard_of(f, h);
    uc__flight_t *fl;

    pthread_mutex_lock(&s->mu);
    for (fl = s->head; fl != NULL; fl = fl->next) {
        if (fl->hash == h && fl->klen == klen &&
            memcmp(fl->key, key, klen) == 0) {
            changed(fl, write);
        }
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void uc__flight_notify_all(uc__flights_t *f, int write)
{
    for (size_t i = 0; i < UC__FLIGHT_SHARDS; i++) {
        uc__flight_shard_t *s = &f->shards[i];
        pthread_mutex_lock(&s->mu);
        for (uc__flight_t *fl = s->head; fl != NULL; fl = fl->next) {
            changed(fl, write);
        }
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}
