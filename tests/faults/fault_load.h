/* SPDX-License-Identifier: MIT */
/*
 * Fault-test support: a bounded read/write load on one insight of a running
 * utxoiq-api, and the checker that judges it. Writer threads POST ratings,
 * each write as a user of its own (one API key per write, so every
 * acknowledged write adds exactly one rating of a known value); reader threads
 * GET the insight's stats. Every request is recorded with its start and end
 * time, so that after the run a test can ask what was answered inside a fault
 * window and whether any read returned a value older than the last write
 * acknowledged before that read started. The run is bounded both by a
 * duration and by a per-thread request cap. A load handle belongs to the
 * thread that started it; its worker threads only touch their own slots.
 * Readers may target a second instance on the same database (read_port),
 * so that one checker judges reads on one instance against writes acked by
 * another, on one clock.
 */
#ifndef UC_TEST_FAULT_LOAD_H
#define UC_TEST_FAULT_LOAD_H

#include <stddef.h>
#include <stdint.h>

enum { UC_FAULT_READ = 0, UC_FAULT_WRITE = 1 };

/* One request as seen by its client. Times are µs since the load started. */
typedef struct {
    uint64_t start_us;
    uint64_t end_us;
    int kind;          /* UC_FAULT_READ or UC_FAULT_WRITE */
    int rating;        /* writes: the rating sent (1..5) */
    long status;       /* HTTP status; 0 when no answer arrived */
    int hit;           /* reads: X-Cache was HIT */
    long long dist[5]; /* reads: rating_distribution, -1 when absent */
    long long total;   /* reads: total_ratings, -1 when absent */
} uc_fault_op_t;

typedef struct {
    int port;                /* utxoiq-api on 127.0.0.1 */
    int read_port;           /* readers' utxoiq-api; 0: the same as port */
    const char *insight;     /* the one insight everything targets */
    int readers;             /* reader threads */
    int writers;             /* writer threads */
    const char *const *keys; /* one user key per write, nkeys of them */
    size_t nkeys;
    unsigned duration_ms;  /* stop starting requests after this */
    size_t max_ops;        /* per thread */
    unsigned read_gap_ms;  /* pause between a reader's requests (0: none) */
    unsigned write_gap_ms; /* pause between a writer's requests */
    unsigned seed;         /* pauses are random in 0..2*gap from this seed */
} uc_fault_opts_t;

typedef struct uc_fault_load uc_fault_load_t;

/* Rating sent with write number i (deterministic, 1..5). */
int uc_fault_rating_of(size_t i);

/*
 * Starts the threads. Returns 0 with *out set (the caller's, freed with
 * uc_fault_free() after uc_fault_wait()), or -1 when a thread or allocation
 * failed (the threads already started are stopped and joined).
 */
int uc_fault_start(uc_fault_load_t **out, const uc_fault_opts_t *o);

/* µs since the load started, on the clock the records use. */
uint64_t uc_fault_now(const uc_fault_load_t *l);

/* Waits for every thread (bounded by duration_ms plus one request each). */
void uc_fault_wait(uc_fault_load_t *l);

/* Asks the threads to start no more requests (before duration_ms, for a
 * test whose own steps decide when the load has done its work); a request
 * in flight ends as it would. Then uc_fault_wait(). */
void uc_fault_stop(uc_fault_load_t *l);

/* The records of all threads, in no particular order; valid until
 * uc_fault_free(). */
const uc_fault_op_t *uc_fault_ops(const uc_fault_load_t *l, size_t *n);

void uc_fault_free(uc_fault_load_t *l);

/* The invalidation lag a near-cache read is allowed (the target p99 on
 * loopback). */
#define UC_FAULT_NEAR_LAG_MS 5.0

/* What the checker found. */
typedef struct {
    size_t reads, reads_ok, writes, writes_ok, status_5xx, no_answer;
    size_t stale_reads; /* reads older than an acknowledged write */
    /* ... by more than UC_FAULT_NEAR_LAG_MS: another instance's near cache
     * may serve the old value for the invalidation lag, no longer */
    size_t stale_beyond_lag;
    size_t impossible_reads; /* reads counting writes never sent */
    double max_staleness_ms; /* how far behind the worst stale read was */
    double max_lag_ms;       /* behind writes acked by the read's end */
    size_t hits;
} uc_fault_check_t;

/*
 * Checks every 200 read against the acknowledged (200) writes: for each
 * rating value r, the read's count of r must be at least the number of
 * writes of r acknowledged before the read started, and at most the number
 * of writes of r started before it ended (a non-200 write may or may not have
 * committed, so it only widens the upper bound). Fills *c.
 */
void uc_fault_check(const uc_fault_load_t *l, uc_fault_check_t *c);

/* The same on records of the caller's (the checker's own tests). */
void uc_fault_check_ops(const uc_fault_op_t *ops, size_t n,
                        uc_fault_check_t *c);

/* The p-th percentile (0..100) of the latencies in ms of the reads that
 * started in [from_us, to_us); 0 when there are none. *count gets their
 * number when not NULL. */
double uc_fault_read_pct_ms(const uc_fault_load_t *l, double p,
                            uint64_t from_us, uint64_t to_us, size_t *count);

#endif
