/* SPDX-License-Identifier: MIT */
/*
 * The circuit breaker (see breaker.h): a three-state machine under a small
 * mutex. The open -> half-open move is lazy: nothing ticks; the first call
 * that arrives after the cooldown sees the elapsed time and becomes the
 * probe. Transitions are logged after the mutex is dropped; they are rate
 * limited by construction, since the breaker opens at most once per cooldown.
 */
#include "breaker.h"

int uc__breaker_init(uc__breaker_t *b, const uc__env_t *env, const char *name)
{
    int threshold = env->cfg.breaker_threshold;
    int cooldown_ms = env->cfg.breaker_cooldown_ms;

    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        return UC_ENOMEM;
    }
    b->env = env;
    b->name = name != NULL ? name : "cache";
    b->threshold = threshold > 0 ? (unsigned)threshold : 1u;
    b->cooldown_us = cooldown_ms > 0 ? (uint64_t)cooldown_ms * 1000u : 0u;
    b->state = UC_BREAKER_CLOSED;
    b->failures = 0;
    b->opened_us = 0;
    b->probe_out = 0;
    b->opens = 0;
    b->rejects = 0;
    return UC_OK;
}

void uc__breaker_release(uc__breaker_t *b)
{
    if (b != NULL) {
        pthread_mutex_destroy(&b->mu);
    }
}

/* Whether an open breaker's cooldown is over at `now`. Caller holds mu. */
static int cooled(const uc__breaker_t *b, uint64_t now)
{
    return now >= b->opened_us && now - b->opened_us >= b->cooldown_us;
}

int uc__breaker_allow(uc__breaker_t *b, int *probe)
{
    int rc = UC_OK;
    int half_opened = 0;
    uint64_t now = uc__now_us(b->env);

    *probe = 0;
    pthread_mutex_lock(&b->mu);
    if (b->state == UC_BREAKER_OPEN && cooled(b, now)) {
        b->state = UC_BREAKER_HALF_OPEN;
        b->probe_out = 0;
        half_opened = 1;
    }
    switch (b->state) {
    case UC_BREAKER_CLOSED:
        break;
    case UC_BREAKER_HALF_OPEN:
        if (b->probe_out == 0) {
            b->probe_out = 1;
            *probe = 1;
        } else {
            b->rejects++;
            rc = UC_EUNAVAILABLE;
        }
        break;
    case UC_BREAKER_OPEN:
    default:
        b->rejects++;
        rc = UC_EUNAVAILABLE;
        break;
    }
    pthread_mutex_unlock(&b->mu);
    if (half_opened) {
        uc__log(b->env, UC_LOG_INFO,
                "%s circuit breaker half-open: letting one probe through",
                b->name);
    }
    return rc;
}

void uc__breaker_report(uc__breaker_t *b, int probe,
                        uc__breaker_outcome_t outcome)
{
    uc_breaker_state_t from = UC_BREAKER_CLOSED;
    uc_breaker_state_t to = UC_BREAKER_CLOSED;
    unsigned failures = 0;
    int moved = 0;
    uint64_t now = uc__now_us(b->env);

    pthread_mutex_lock(&b->mu);
    from = b->state;
    /*
     * Only the probe decides in half-open; a call let through while closed
     * that ends after the breaker opened says nothing new.
     */
    if (probe && b->state == UC_BREAKER_HALF_OPEN) {
        b->probe_out = 0;
        if (outcome == UC__BREAKER_SUCCESS) {
            b->state = UC_BREAKER_CLOSED;
            b->failures = 0;
            moved = 1;
        } else if (outcome == UC__BREAKER_FAILURE) {
            b->state = UC_BREAKER_OPEN;
            b->opened_us = now;
            b->opens++;
            moved = 1;
        }
    } else if (b->state == UC_BREAKER_CLOSED) {
        if (outcome == UC__BREAKER_SUCCESS) {
            b->failures = 0;
        } else if (outcome == UC__BREAKER_FAILURE) {
            b->failures++;
            if (b->failures >= b->threshold) {
                b->state = UC_BREAKER_OPEN;
                b->opened_us = now;
                b->opens++;
                moved = 1;
            }
        }
    }
    to = b->state;
    failures = b->failures;
    pthread_mutex_unlock(&b->mu);

    if (!moved) {
        return;
    }
    if (to == UC_BREAKER_OPEN && from == UC_BREAKER_CLOSED) {
        uc__log(b->env, UC_LOG_WARN,
                "%s circuit breaker open: %u consecutive failures; refusing "
                "calls for %llu ms",
                b->name, failures,
                (unsigned long long)(b->cooldown_us / 1000u));
    } else if (to == UC_BREAKER_OPEN) {
        uc__log(b->env, UC_LOG_WARN,
                "%s circuit breaker reopened: probe failed; refusing calls "
                "for %llu ms",
                b->name, (unsigned long long)(b->cooldown_us / 1000u));
    } else {
        uc__log(b->env, UC_LOG_INFO,
                "%s circuit breaker closed: probe succeeded", b->name);
    }
}

void uc__breaker_figures(uc__breaker_t *b, uc_breaker_state_t *state,
                         uint64_t *opens, uint64_t *rejects)
{
    uint64_t now = uc__now_us(b->env);

    pthread_mutex_lock(&b->mu);
    *state = b->state;
    if (b->state == UC_BREAKER_OPEN && cooled(b, now)) {
        *state = UC_BREAKER_HALF_OPEN;
    }
    *opens = b->opens;
    *rejects = b->rejects;
    pthread_mutex_unlock(&b->mu);
}
