/* SPDX-License-Identifier: MIT */
/*
 * A circuit breaker in front of a remote store. It counts consecutive
 * failures of calls that reached (or tried to reach) the server; after
 * cfg.breaker_threshold of them it opens and refuses every call at once for
 * cfg.breaker_cooldown_ms, so that callers fall back to their loader instead
 * of each waiting out a timeout. Once the cooldown is over it is half-open:
 * exactly one call (the probe) is let through while the others are still
 * refused; the probe's success closes the breaker, its failure opens it again
 * for a new cooldown. Time comes from uc__now_us(env), so tests drive it with
 * a manual clock.
 *
 * Ownership: a uc__breaker_t is embedded in its owner, which calls
 * uc__breaker_init()/uc__breaker_release(); the env is borrowed and must
 * outlive it. Thread safety: every function may be called from any thread.
 */
#ifndef UC_LIB_BREAKER_H
#define UC_LIB_BREAKER_H

#include <pthread.h>
#include <stdint.h>

#include "env.h"
#include "utxocache/cache.h"

/* How a call that the breaker let through ended. */
typedef enum {
    UC__BREAKER_SUCCESS = 0, /* the server answered (a miss or -OOM too) */
    UC__BREAKER_FAILURE = 1, /* connection failure or timeout */
    UC__BREAKER_NEUTRAL = 2, /* says nothing about the server (pool full) */
} uc__breaker_outcome_t;

typedef struct uc__breaker {
    pthread_mutex_t mu;
    const uc__env_t *env;
    const char *name; /* for log lines, static */
    unsigned threshold;
    uint64_t cooldown_us;
    /* Guarded by mu. */
    uc_breaker_state_t state;
    unsigned failures;  /* consecutive, while closed */
    uint64_t opened_us; /* when it last opened */
    int probe_out;      /* half-open: the single probe is in flight */
    uint64_t opens;
    uint64_t rejects;
} uc__breaker_t;

/*
 * Initialises a closed breaker with the threshold and cooldown of env->cfg
 * (zero fields already resolved to defaults by the core; a value below 1 is
 * taken as 1). `name` (static) tags its log lines. Returns UC_OK or
 * UC_ENOMEM when the mutex cannot be created.
 */
int uc__breaker_init(uc__breaker_t *b, const uc__env_t *env, const char *name);

/* Destroys the mutex. The breaker must not be in use. */
void uc__breaker_release(uc__breaker_t *b);

/*
 * Asks to make a call. Returns UC_OK when the call may go ahead, with
 * *probe set to 1 if it is the half-open probe (the caller must then report
 * its outcome, or the breaker stays half-open with no probe allowed), or
 * UC_EUNAVAILABLE at once (counted in rejects) while open or while another
 * probe is in flight.
 */
int uc__breaker_allow(uc__breaker_t *b, int *probe);

/* Reports how a call let through by uc__breaker_allow() ended. */
void uc__breaker_report(uc__breaker_t *b, int probe,
                        uc__breaker_outcome_t outcome);

/* Current state (after applying the cooldown), opens and rejects. */
void uc__breaker_figures(uc__breaker_t *b, uc_breaker_state_t *state,
                         uint64_t *opens, uint64_t *rejects);

#endif /* UC_LIB_BREAKER_H */
