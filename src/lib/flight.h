/* SPDX-License-Identifier: MIT */
/*
 * In-process single-flight: concurrent get-or-load calls of one entry share
 * one load. The first caller of a key leads a flight; later callers join it
 * and wait (bounded) for the leader's result, which is a shared, immutable
 * near-cache entry, so every joiner serves the same bytes without a copy.
 *
 * A flight is also where a leader waits for another instance's fill: the
 * invalidation of the key (the other instance's store is a write, which
 * Redis announces) wakes it through uc__flight_notify() instead of a poll.
 *
 * Thread-safe. A flight returned by uc__flight_begin() holds a reference
 * that the caller drops with uc__flight_put(). No callback runs under a
 * lock here.
 */
#ifndef UC_LIB_FLIGHT_H
#define UC_LIB_FLIGHT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "near.h"
#include "utxocache/keyspace.h"

#define UC__FLIGHT_SHARDS 16

typedef struct uc__flight uc__flight_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    uc__flight_t *head;
} uc__flight_shard_t;

typedef struct {
    uc__flight_shard_t shards[UC__FLIGHT_SHARDS];
} uc__flights_t;

/* What the leader hands its joiners. */
typedef struct {
    int rc; /* get-or-load's return code */
    uc_source_t source;
    uc_tier_t tier;
    uc__near_entry_t *entry; /* the value (a reference), NULL unless UC_OK */
    /* The leader's fill lost its lease to an invalidation: the value may
     * predate a write that was answered while joiners waited, so they
     * must not use it and go on alone. */
    int suspect;
} uc__flight_result_t;

int uc__flights_init(uc__flights_t *f);
void uc__flights_release(uc__flights_t *f);

typedef enum {
    UC__FLIGHT_LEAD = 1,   /* *fl is a new flight this caller must finish */
    UC__FLIGHT_JOINED = 2, /* *fl is another caller's flight: wait on it */
    UC__FLIGHT_BUSY = 3,   /* one is in flight and `join` was 0: *fl NULL */
    UC__FLIGHT_NONE = 4,   /* out of memory: go on without a flight */
} uc__flight_role_t;

/*
 * Leads or joins the flight of key (the full key). join=1: a fill, which
 * joins another fill of the key (an early refresh in flight is ignored:
 * the stored value is still good to read). join=0: an early refresh,
 * BUSY when any flight of the key exists.
 */
uc__flight_role_t uc__flight_begin(uc__flights_t *f, const char *key,
                                   size_t klen, int join, uc__flight_t **fl);

/*
 * A joiner's wait for the leader's result, at most timeout_ms. Returns 1
 * with *out filled (its entry is a new reference for the caller); 2 with
 * *out the leader's interim value (source UC_FROM_STALE, a new reference)
 * when the leader answered with a stale value and loads on in the
 * background; or 0 when the time ran out.
 */
int uc__flight_wait(uc__flights_t *f, uc__flight_t *fl, uint64_t timeout_ms,
                    uc__flight_result_t *out);

/* The number of invalidations of the flight's key seen so far. */
uint64_t uc__flight_notified(uc__flights_t *f, uc__flight_t *fl);

/* A leader's wait until the key is invalidated past `seen`, at most
 * timeout_ms; returns the count then. */
uint64_t uc__flight_wait_notify(uc__flights_t *f, uc__flight_t *fl,
                                uint64_t seen, uint64_t timeout_ms);

/* The leader publishes its result (the entry reference is taken over, may
 * be NULL), leaves the table and wakes every joiner. */
void uc__flight_finish(uc__flights_t *f, uc__flight_t *fl,
                       const uc__flight_result_t *res);

/* The leader answered with a stale value (its reference is taken over) and
 * goes on loading in the background: joiners, now and until the result,
 * answer with it, unless an invalidation of the key drops it first. */
void uc__flight_offer(uc__flights_t *f, uc__flight_t *fl, uc__near_entry_t *ne,
                      uc_tier_t tier);

/* Drops the caller's reference. */
void uc__flight_put(uc__flights_t *f, uc__flight_t *fl);

/*
 * The key changed: wakes whoever waits on its flights and drops their
 * interim values. With `write` (a write of this process invalidated it,
 * or the durable log says one did), the flights are also superseded: their
 * results may predate the write, so later callers start a flight of their
 * own instead of joining. An invalidation message is not enough for that:
 * it also announces the flight's own lease and fill, and a write elsewhere
 * that removed the lease shows in the fill's result (`suspect`).
 */
void uc__flight_notify(uc__flights_t *f, const char *key, size_t klen,
                       int write);

/* The same for every flight (the whole near cache was flushed). */
void uc__flight_notify_all(uc__flights_t *f, int write);

#endif
