/* SPDX-License-Identifier: MIT */
/*
 * Background loads: a small pool of threads that run loads nobody waits
 * for any more (a fill past its soft timeout, an early refresh), so that
 * the caller answers with the value it has while the load goes on.
 *
 * The queue is bounded: when it is full, uc__bg_submit() refuses and the
 * caller loads in its own thread as if there were no pool. The threads
 * start on the first submit, so a handle that never needs one (the
 * operator's CLI, the memory backend) never starts any. uc__bg_stop() runs
 * what is queued, then joins; each job is one loader call, bounded by the
 * loader's own time limits.
 */
#ifndef UC_LIB_BG_H
#define UC_LIB_BG_H

#include <pthread.h>
#include <stddef.h>

#define UC__BG_THREADS 2
#define UC__BG_QUEUE_MAX 256

typedef struct uc__job uc__job_t;
struct uc__job {
    void (*run)(uc__job_t *job); /* frees the job when done with it */
    uc__job_t *next;
};

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uc__job_t *head, *tail;
    size_t queued;
    int started; /* threads running */
    int stopping;
    size_t nthreads;
    pthread_t threads[UC__BG_THREADS];
} uc__bg_t;

int uc__bg_init(uc__bg_t *bg);
/* Queues the job: 0, or -1 when the queue is full, the pool stops or no
 * thread could start (the job was not taken). */
int uc__bg_submit(uc__bg_t *bg, uc__job_t *job);
/* Runs every queued job, joins the threads and frees the pool's state. */
void uc__bg_stop(uc__bg_t *bg);

#endif
