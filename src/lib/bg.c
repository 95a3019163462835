/* SPDX-License-Identifier: MIT */
/*
 * Background loads (bg.h): a FIFO under one mutex; jobs are rare (one per
 * expiring hot entry, or per slow load), so nothing finer is needed.
 */
#include <signal.h>
#include <string.h>

#include "bg.h"

int uc__bg_init(uc__bg_t *bg)
{
    memset(bg, 0, sizeof(*bg));
    if (pthread_mutex_init(&bg->mu, NULL) != 0) {
        return -1;
    }
    if (pthread_cond_init(&bg->cv, NULL) != 0) {
        pthread_mutex_destroy(&bg->mu);
        return -1;
    }
    return 0;
}

static void *bg_main(void *arg)
{
    uc__bg_t *bg = arg;

    pthread_mutex_lock(&bg->mu);
    for (;;) {
        uc__job_t *job = bg->head;
        if (job == NULL) {
            if (bg->stopping) {
                break;
            }
            pthread_cond_wait(&bg->cv, &bg->mu);
            continue;
        }
        bg->head = job->next;
        if (bg->head == NULL) {
            bg->tail = NULL;
        }
        bg->queued--;
        pthread_mutex_unlock(&bg->mu);
        job->run(job);
        pthread_mutex_lock(&bg->mu);
    }
    pthread_mutex_unlock(&bg->mu);
    return NULL;
}

/* Under bg->mu. Signals are blocked in the pool's threads: the
 * application's handlers run in its own threads. */
static void start_threads(uc__bg_t *bg)
{
    sigset_t all, old;

    bg->started = 1;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 0; i < UC__BG_THREADS; i++) {
        if (pthread_create(&bg->threads[bg->nthreads], NULL, bg_main, bg) ==
            0) {
            bg->nthreads++;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int uc__bg_submit(uc__bg_t *bg, uc__job_t *job)
{
    pthread_mutex_lock(&bg->mu);
    if (!bg->started) {
        start_threads(bg);
    }
    if (bg->stopping || bg->nthreads == 0 || bg->queued >= UC__BG_QUEUE_MAX) {
        pthread_mutex_unlock(&bg->mu);
        return -1;
    }
    job->next = NULL;
    if (bg->tail != NULL) {
        bg->tail->next = job;
    } else {
        bg->head = job;
    }
    bg->tail = job;
    bg->queued++;
    pthread_cond_signal(&bg->cv);
    pthread_mutex_unlock(&bg->mu);
    return 0;
}

void uc__bg_stop(uc__bg_t *bg)
{
    pthread_mutex_lock(&bg->mu);
    bg->stopping = 1;
    pthread_cond_broadcast(&bg->cv);
    pthread_mutex_unlock(&bg->mu);
    for (size_t i = 0; i < bg->nthreads; i++) {
        pthread_join(bg->threads[i], NULL);
    }
    bg->nthreads = 0;
    pthread_cond_destroy(&bg->cv);
    pthread_mutex_destroy(&bg->mu);
}
