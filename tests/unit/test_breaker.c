/* SPDX-License-Identifier: MIT */
/*
 * The circuit breaker driven by a manual clock: it opens after exactly the
 * configured number of consecutive failures, refuses during the cooldown,
 * lets exactly one probe through when half-open (also under a crowd of
 * threads), closes on the probe's success and reopens on its failure.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "breaker.h"
#include "util.h"

#define COOLDOWN_MS 1000

typedef struct {
    _Atomic uint64_t now_us;
    uc__env_t env;
    uc__breaker_t br;
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;

    memset(&f, 0, sizeof(f));
    atomic_store(&f.now_us, 1000000u);
    f.env.cfg.breaker_threshold = 3;
    f.env.cfg.breaker_cooldown_ms = COOLDOWN_MS;
    f.env.cfg.clock_fn = uc_test_manual_clock;
    f.env.cfg.clock_arg = &f.now_us;
    if (uc__breaker_init(&f.br, &f.env, "test") != UC_OK) {
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    uc__breaker_release(&f->br);
    return 0;
}

static void advance_ms(fixture_t *f, uint64_t ms)
{
    atomic_fetch_add(&f->now_us, ms * 1000u);
}

static uc_breaker_state_t state_of(fixture_t *f, uint64_t *opens,
                                   uint64_t *rejects)
{
    uc_breaker_state_t st;
    uint64_t o = 0;
    uint64_t r = 0;

    uc__breaker_figures(&f->br, &st, &o, &r);
    if (opens != NULL) {
        *opens = o;
    }
    if (rejects != NULL) {
        *rejects = r;
    }
    return st;
}

/* Lets one call through while closed and reports `outcome`. */
static void call(fixture_t *f, uc__breaker_outcome_t outcome)
{
    int probe = -1;

    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_OK);
    assert_int_equal(probe, 0);
    uc__breaker_report(&f->br, probe, outcome);
}

/* Fails calls until the breaker opens (threshold 3). */
static void trip(fixture_t *f)
{
    for (int i = 0; i < 3; i++) {
        call(f, UC__BREAKER_FAILURE);
    }
    assert_int_equal(state_of(f, NULL, NULL), UC_BREAKER_OPEN);
}

static void opens_after_threshold_consecutive(void **state)
{
    fixture_t *f = *state;
    uint64_t opens = 0;
    uint64_t rejects = 0;
    int probe = 0;

    call(f, UC__BREAKER_FAILURE);
    call(f, UC__BREAKER_FAILURE);
    /* A success in between resets the count: these are not consecutive. */
    call(f, UC__BREAKER_SUCCESS);
    call(f, UC__BREAKER_FAILURE);
    call(f, UC__BREAKER_FAILURE);
    /* Neutral outcomes (a full pool) neither count nor reset. */
    call(f, UC__BREAKER_NEUTRAL);
    assert_int_equal(state_of(f, &opens, NULL), UC_BREAKER_CLOSED);
    assert_int_equal(opens, 0);
    call(f, UC__BREAKER_FAILURE);
    assert_int_equal(state_of(f, &opens, &rejects), UC_BREAKER_OPEN);
    assert_int_equal(opens, 1);
    assert_int_equal(rejects, 0);

    for (int i = 0; i < 5; i++) {
        assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_EUNAVAILABLE);
    }
    state_of(f, NULL, &rejects);
    assert_int_equal(rejects, 5);
}

static void cooldown_then_single_probe(void **state)
{
    fixture_t *f = *state;
    int probe = 0;
    int other = 0;
    uint64_t rejects = 0;

    trip(f);
    advance_ms(f, COOLDOWN_MS - 1);
    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_EUNAVAILABLE);
    assert_int_equal(state_of(f, NULL, NULL), UC_BREAKER_OPEN);
    advance_ms(f, 1);
    assert_int_equal(state_of(f, NULL, NULL), UC_BREAKER_HALF_OPEN);

    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_OK);
    assert_int_equal(probe, 1);
    /* While the probe is out every other call is still refused. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(uc__breaker_allow(&f->br, &other), UC_EUNAVAILABLE);
    }
    assert_int_equal(state_of(f, NULL, &rejects), UC_BREAKER_HALF_OPEN);
    assert_int_equal(rejects, 4);

    uc__breaker_report(&f->br, probe, UC__BREAKER_SUCCESS);
    assert_int_equal(state_of(f, NULL, NULL), UC_BREAKER_CLOSED);
    call(f, UC__BREAKER_SUCCESS);
    /* Closed again with a fresh count: two failures do not reopen it. */
    call(f, UC__BREAKER_FAILURE);
    call(f, UC__BREAKER_FAILURE);
    assert_int_equal(state_of(f, NULL, NULL), UC_BREAKER_CLOSED);
}

static void failed_probe_reopens_with_new_cooldown(void **state)
{
    fixture_t *f = *state;
    int probe = 0;
    uint64_t opens = 0;

    trip(f);
    advance_ms(f, COOLDOWN_MS + 500);
    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_OK);
    assert_int_equal(probe, 1);
    /* The probe takes a while to fail; the new cooldown starts then. */
    advance_ms(f, 200);
    uc__breaker_report(&f->br, probe, UC__BREAKER_FAILURE);
    assert_int_equal(state_of(f, &opens, NULL), UC_BREAKER_OPEN);
    assert_int_equal(opens, 2);

    advance_ms(f, COOLDOWN_MS - 1);
    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_EUNAVAILABLE);
    advance_ms(f, 1);
    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_OK);
    assert_int_equal(probe, 1);
    uc__breaker_report(&f->br, probe, UC__BREAKER_SUCCESS);
    assert_int_equal(state_of(f, &opens, NULL), UC_BREAKER_CLOSED);
    assert_int_equal(opens, 2);
}

static void neutral_probe_frees_the_slot(void **state)
{
    fixture_t *f = *state;
    int probe = 0;

    trip(f);
    advance_ms(f, COOLDOWN_MS);
    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_OK);
    assert_int_equal(probe, 1);
    uc__breaker_report(&f->br, probe, UC__BREAKER_NEUTRAL);
    assert_int_equal(state_of(f, NULL, NULL), UC_BREAKER_HALF_OPEN);
    /* The next call becomes the probe. */
    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_OK);
    assert_int_equal(probe, 1);
    uc__breaker_report(&f->br, probe, UC__BREAKER_SUCCESS);
    assert_int_equal(state_of(f, NULL, NULL), UC_BREAKER_CLOSED);
}

static void late_reports_do_not_move_an_open_breaker(void **state)
{
    fixture_t *f = *state;
    int probe = 0;
    uint64_t opens = 0;

    trip(f);
    advance_ms(f, 10);
    /* Calls let through before it opened finish now, either way. */
    uc__breaker_report(&f->br, 0, UC__BREAKER_FAILURE);
    uc__breaker_report(&f->br, 0, UC__BREAKER_SUCCESS);
    assert_int_equal(state_of(f, &opens, NULL), UC_BREAKER_OPEN);
    assert_int_equal(opens, 1);
    /* The cooldown still runs from the moment it opened. */
    advance_ms(f, COOLDOWN_MS - 10);
    assert_int_equal(uc__breaker_allow(&f->br, &probe), UC_OK);
    assert_int_equal(probe, 1);
    uc__breaker_report(&f->br, probe, UC__BREAKER_SUCCESS);
}

#define CROWD 8

typedef struct {
    fixture_t *f;
    pthread_barrier_t *go;
    int rc;
    int probe;
} crowd_t;

static void *crowd_main(void *arg)
{
    crowd_t *c = arg;

    pthread_barrier_wait(c->go);
    c->rc = uc__breaker_allow(&c->f->br, &c->probe);
    return NULL;
}

static void crowd_gets_exactly_one_probe(void **state)
{
    fixture_t *f = *state;
    pthread_t th[CROWD];
    crowd_t c[CROWD];
    pthread_barrier_t go;
    int probes = 0;
    int admitted = 0;

    trip(f);
    advance_ms(f, COOLDOWN_MS);
    assert_int_equal(pthread_barrier_init(&go, NULL, CROWD), 0);
    for (int i = 0; i < CROWD; i++) {
        c[i].f = f;
        c[i].go = &go;
        c[i].rc = 0;
        c[i].probe = 0;
        assert_int_equal(pthread_create(&th[i], NULL, crowd_main, &c[i]), 0);
    }
    for (int i = 0; i < CROWD; i++) {
        pthread_join(th[i], NULL);
        admitted += c[i].rc == UC_OK;
        probes += c[i].probe;
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(admitted, 1);
    assert_int_equal(probes, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(opens_after_threshold_consecutive,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(cooldown_then_single_probe, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(failed_probe_reopens_with_new_cooldown,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(neutral_probe_frees_the_slot, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            late_reports_do_not_move_an_open_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(crowd_gets_exactly_one_probe, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
