/* SPDX-License-Identifier: MIT */
/*
 * The record of a keyspace's most read entries: Space-Saving (Metwally,
 * Agrawal and El Abbadi, "Efficient computation of frequent and top-k
 * elements in data streams", 2005) with a fixed number of counters, so its
 * memory is bounded whatever the number of distinct keys read.
 *
 * The read path records through uc__hot_record(), which costs a thread-local
 * coin for most reads: only one read in `sample` (at random) takes a lock,
 * and that lock is one of UC__HOT_SHARDS, chosen by the key's hash, each
 * shard a Space-Saving summary of its share of the keys. Queries merge the
 * shards.
 *
 * Thread-safe. No callback runs here; the record calls nothing above the
 * allocator.
 */
#ifndef UC_LIB_HOT_H
#define UC_LIB_HOT_H

#include <stddef.h>
#include <stdint.h>

#include "utxocache/keyspace.h"

#define UC__HOT_SHARDS 4
/* Bounds of the counters a record may have. */
#define UC__HOT_CAPACITY_MIN 16
#define UC__HOT_CAPACITY_MAX 262144

typedef struct uc__hot uc__hot_t;

/*
 * A record of `capacity` counters (clamped to the bounds above) that counts
 * one call in `sample` of uc__hot_record() (rounded down to a power of two;
 * 0 or 1: every call). No memory for counters is taken until the first
 * record. UC_OK and *out, or UC_ENOMEM.
 */
int uc__hot_create(size_t capacity, unsigned sample, uc__hot_t **out);

/* Frees the record; accepts NULL. */
void uc__hot_destroy(uc__hot_t *h);

/*
 * Counts one read of key[0..klen) (h may be NULL: nothing). Most calls only
 * draw the sampling coin; keys of UC_HOT_KEY_MAX bytes or more, empty keys,
 * and reads on a thread that called uc__hot_mute(1) are not counted. When
 * memory for a new key cannot be had, the read is not counted.
 */
void uc__hot_record(uc__hot_t *h, const char *key, size_t klen);

/* Counts one read now, unsampled (the sampled path, and tests). */
void uc__hot_add(uc__hot_t *h, const char *key, size_t klen);

/* This thread's reads are (on nonzero) or are again (0) not recorded: the
 * warmer's own reads must not make what it reads look hot. */
void uc__hot_mute(int on);

/*
 * Copies up to cap entries, most read first (ranked by the reads they
 * surely had, count - error, then by count), with counts scaled by the
 * sampling rate; returns how many entries the record holds (may exceed
 * cap). out may be NULL when cap is 0.
 */
size_t uc__hot_top(uc__hot_t *h, uc_hot_entry_t *out, size_t cap);

/* Bytes the record holds (usable sizes of its allocations). Lock-free. */
size_t uc__hot_bytes(const uc__hot_t *h);

/*
 * Nonzero when key is among the k most read entries of the record, by the
 * same rank as uc__hot_top() (its count - error at least the k-th largest;
 * every key held, when the record holds k or fewer). One shard lock for the
 * key's count; the k-th value is kept from one call to the next and computed
 * again (O(m log k), one shard lock at a time) after 1024 counted reads, a
 * halving or another k, so most calls cost a hash and one lookup.
 */
int uc__hot_is_top(uc__hot_t *h, const char *key, size_t klen, size_t k);

/* Halves every count (and error), so that older reads weigh less. */
void uc__hot_halve(uc__hot_t *h);

/* The sampling rate in use (1 when every read is counted). */
unsigned uc__hot_sample(const uc__hot_t *h);

/*
 * Adaptive sampling: every read is counted while the record sees at most
 * `above` reads a second, one in `sample` (uc__hot_create) above that, and
 * every read again once the rate falls below above / 2. 0: always one in
 * `sample` (the default of a new record). Does nothing on a record that
 * counts every read anyway. Call before the first record, or from the one
 * thread that calls uc__hot_tune().
 */
void uc__hot_adapt(uc__hot_t *h, uint64_t above);

/*
 * Measures the read rate since its last call (at least a second apart;
 * earlier calls return at once) and switches the sampling as
 * uc__hot_adapt() says, rescaling the counts so that they keep estimating
 * reads: divided by the rate when sampling starts, multiplied when it
 * stops. One thread at a time. 1 when it switched, else 0.
 */
int uc__hot_tune(uc__hot_t *h, uint64_t now_us);

#endif
