/* SPDX-License-Identifier: MIT */
/*
 * The pool's logic with connect/close callbacks that hand out numbered
 * connection records and count calls: the bound on connections, waiting and
 * the acquire timeout with real threads, discard of a failed connection
 * (never handed out again), closing idle connections and the reconnect
 * backoff, the last two driven by a manual clock.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pool.h"
#include "util.h"

#define CONNS_MAX 4096

typedef struct {
    int id;
    _Atomic int closed;
    _Atomic int borrowed; /* set while a thread holds it */
} conn_t;

typedef struct {
    _Atomic uint64_t now_us;
    uc__env_t env;
    uc__pool_t *pool;
    conn_t conns[CONNS_MAX];
    _Atomic int nconns; /* connect calls that succeeded */
    _Atomic int connect_calls;
    _Atomic int close_calls;
    _Atomic int fail_connect; /* nonzero: connect returns this code */
    _Atomic int refuse_check; /* nonzero: check refuses idle connections */
    _Atomic int in_use;
    _Atomic int in_use_peak;
    /* Failures seen where cmocka cannot report them (pool callbacks, worker
     * threads: its asserts longjmp, which must not cross threads or
     * library frames); the test thread asserts them to be 0. */
    _Atomic int double_closes;
    _Atomic int double_borrows;
} fixture_t;

static int fake_connect(void *arg, void **conn)
{
    fixture_t *f = arg;
    int fail = atomic_load(&f->fail_connect);
    int id = 0;

    atomic_fetch_add(&f->connect_calls, 1);
    if (fail != 0) {
        return fail;
    }
    id = atomic_fetch_add(&f->nconns, 1);
    if (id >= CONNS_MAX) {
        return UC_ENOMEM;
    }
    f->conns[id].id = id;
    *conn = &f->conns[id];
    return UC_OK;
}

static void fake_close(void *arg, void *conn)
{
    fixture_t *f = arg;
    conn_t *c = conn;

    atomic_fetch_add(&f->close_calls, 1);
    /* Closing twice would be a double free in a real pool user. */
    if (atomic_exchange(&c->closed, 1) != 0) {
        atomic_fetch_add(&f->double_closes, 1);
    }
}

static int fake_check(void *arg, void *conn)
{
    fixture_t *f = arg;

    (void)conn;
    return atomic_load(&f->refuse_check) == 0;
}

static fixture_t *new_fixture(int max, int acquire_ms, int idle_ms)
{
    fixture_t *f = test_calloc(1, sizeof(*f));
    uc__pool_conn_ops_t ops = {fake_connect, fake_close, fake_check, NULL};

    assert_non_null(f);
    atomic_store(&f->now_us, 5000000u);
    f->env.cfg.max_connections = max;
    f->env.cfg.acquire_timeout_ms = acquire_ms;
    f->env.cfg.idle_timeout_ms = idle_ms;
    f->env.cfg.backoff_base_ms = 100;
    f->env.cfg.backoff_max_ms = 400;
    f->env.cfg.clock_fn = uc_test_manual_clock;
    f->env.cfg.clock_arg = &f->now_us;
    ops.arg = f;
    assert_int_equal(uc__pool_create(&f->env, &ops, &f->pool), UC_OK);
    return f;
}

static void free_fixture(fixture_t *f)
{
    uc__pool_destroy(f->pool);
    /* Every connection ever made has been closed exactly once, and no
     * connection was handed to two holders at a time. */
    assert_int_equal(atomic_load(&f->close_calls), atomic_load(&f->nconns));
    assert_int_equal(atomic_load(&f->double_closes), 0);
    assert_int_equal(atomic_load(&f->double_borrows), 0);
    test_free(f);
}

static void advance_ms(fixture_t *f, uint64_t ms)
{
    atomic_fetch_add(&f->now_us, ms * 1000u);
}

static conn_t *acquire_ok(fixture_t *f)
{
    void *c = NULL;

    assert_int_equal(uc__pool_acquire(f->pool, &c), UC_OK);
    assert_non_null(c);
    assert_int_equal(atomic_load(&((conn_t *)c)->closed), 0);
    return c;
}

static uc_pool_stats_t stats(fixture_t *f)
{
    uc_pool_stats_t st;

    memset(&st, 0, sizeof(st));
    uc__pool_stats(f->pool, &st);
    return st;
}

static void bounded_lazy_and_reused(void **state)
{
    fixture_t *f = new_fixture(2, 20, 0);
    conn_t *a = NULL;
    conn_t *b = NULL;
    void *c = NULL;
    uc_pool_stats_t st;

    (void)state;
    /* Lazy: creating the pool connects nothing. */
    assert_int_equal(atomic_load(&f->connect_calls), 0);
    a = acquire_ok(f);
    b = acquire_ok(f);
    assert_ptr_not_equal(a, b);
    /* Full: the third waits out the acquire timeout. */
    assert_int_equal(uc__pool_acquire(f->pool, &c), UC_EPOOL);
    assert_null(c);
    st = stats(f);
    assert_int_equal(st.max, 2);
    assert_int_equal(st.in_use, 2);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.waits, 1);
    assert_int_equal(st.acquire_timeouts, 1);
    assert_int_equal(st.connects, 2);

    uc__pool_release(f->pool, a, 1);
    st = stats(f);
    assert_int_equal(st.in_use, 1);
    assert_int_equal(st.idle, 1);
    /* The idle connection is reused, not a new one made. */
    assert_ptr_equal(acquire_ok(f), a);
    assert_int_equal(atomic_load(&f->connect_calls), 2);
    uc__pool_release(f->pool, a, 1);
    uc__pool_release(f->pool, b, 1);
    assert_int_equal(stats(f).idle, 2);
    free_fixture(f);
}

static void discarded_connection_is_never_reused(void **state)
{
    fixture_t *f = new_fixture(1, 20, 0);
    conn_t *a = NULL;
    conn_t *b = NULL;
    uc_pool_stats_t st;

    (void)state;
    a = acquire_ok(f);
    uc__pool_release(f->pool, a, 0);
    assert_int_equal(atomic_load(&a->closed), 1);
    st = stats(f);
    assert_int_equal(st.discarded, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.in_use, 0);
    /* Its slot is free again, and what comes out is a new connection. */
    b = acquire_ok(f);
    assert_ptr_not_equal(a, b);
    assert_int_equal(stats(f).connects, 2);

    /* An idle connection the check refuses is closed and replaced. */
    uc__pool_release(f->pool, b, 1);
    atomic_store(&f->refuse_check, 1);
    a = acquire_ok(f);
    assert_ptr_not_equal(a, b);
    assert_int_equal(atomic_load(&b->closed), 1);
    assert_int_equal(stats(f).discarded, 2);
    atomic_store(&f->refuse_check, 0);

    /* discard_idle empties the pool of idle connections. */
    uc__pool_release(f->pool, a, 1);
    uc__pool_discard_idle(f->pool);
    assert_int_equal(atomic_load(&a->closed), 1);
    st = stats(f);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.discarded, 3);
    free_fixture(f);
}

static void idle_connections_closed(void **state)
{
    fixture_t *f = new_fixture(3, 20, 1000);
    conn_t *a = NULL;
    conn_t *b = NULL;
    conn_t *c = NULL;

    (void)state;
    a = acquire_ok(f);
    b = acquire_ok(f);
    uc__pool_release(f->pool, a, 1); /* idle since t0 */
    advance_ms(f, 600);
    uc__pool_release(f->pool, b, 1); /* idle since t0 + 600 */
    advance_ms(f, 399);
    assert_int_equal(stats(f).idle_closed, 0);

    /* t0 + 999: nothing is old enough yet; the warmest (b) is reused. */
    c = acquire_ok(f);
    assert_ptr_equal(c, b);
    uc__pool_release(f->pool, c, 1); /* b idle since t0 + 999 */
    assert_int_equal(stats(f).idle_closed, 0);

    /* t0 + 1000: a goes, on the next release or acquire. */
    advance_ms(f, 1);
    c = acquire_ok(f);
    assert_ptr_equal(c, b);
    assert_int_equal(atomic_load(&a->closed), 1);
    assert_int_equal(stats(f).idle_closed, 1);
    uc__pool_release(f->pool, c, 1);

    /* Checked on release too: b ages out while another is returned. */
    c = acquire_ok(f);
    assert_ptr_equal(c, b);
    a = acquire_ok(f); /* a new connection */
    uc__pool_release(f->pool, b, 1);
    advance_ms(f, 1000);
    uc__pool_release(f->pool, a, 1);
    assert_int_equal(atomic_load(&b->closed), 1);
    assert_int_equal(atomic_load(&a->closed), 0);
    assert_int_equal(stats(f).idle_closed, 2);
    assert_int_equal(stats(f).idle, 1);
    free_fixture(f);
}

/* Acquires with connect failing; returns the code. */
static int try_acquire(fixture_t *f)
{
    void *c = NULL;
    int rc = uc__pool_acquire(f->pool, &c);

    if (rc == UC_OK) {
        uc__pool_release(f->pool, c, 1);
    }
    return rc;
}

static void backoff_after_connect_failures(void **state)
{
    fixture_t *f = new_fixture(2, 20, 0);
    conn_t *held = NULL;
    conn_t *c = NULL;
    /* Equal jitter: failure k waits in [d/2, d], d = 100 * 2^(k-1) <= 400. */
    static const uint64_t delays[] = {100, 200, 400, 400, 400};

    (void)state;
    held = acquire_ok(f);
    atomic_store(&f->fail_connect, UC_ECONNREFUSED);
    assert_int_equal(try_acquire(f), UC_ECONNREFUSED);
    assert_int_equal(atomic_load(&f->connect_calls), 2);

    for (size_t k = 0; k < sizeof(delays) / sizeof(delays[0]); k++) {
        int calls = atomic_load(&f->connect_calls);

        /* Before half the delay: refused at once, without connecting. */
        advance_ms(f, delays[k] / 2 - 1);
        assert_int_equal(try_acquire(f), UC_EUNAVAILABLE);
        assert_int_equal(atomic_load(&f->connect_calls), calls);
        /* After the full delay: one more attempt goes out. */
        advance_ms(f, delays[k] / 2 + 1);
        assert_int_equal(try_acquire(f), UC_ECONNREFUSED);
        assert_int_equal(atomic_load(&f->connect_calls), calls + 1);
    }
    assert_int_equal(stats(f).connect_failures, 1 + 5);

    /* Existing idle connections are still handed out during backoff. */
    uc__pool_release(f->pool, held, 1);
    c = acquire_ok(f);
    assert_ptr_equal(c, held);
    uc__pool_release(f->pool, c, 1);

    /* Success resets the backoff. */
    atomic_store(&f->fail_connect, 0);
    advance_ms(f, 400);
    held = acquire_ok(f);
    c = acquire_ok(f);
    assert_ptr_not_equal(c, held);
    uc__pool_release(f->pool, c, 0);
    uc__pool_release(f->pool, held, 0);
    c = acquire_ok(f);
    uc__pool_release(f->pool, c, 1);
    assert_int_equal(stats(f).connects, 3);
    free_fixture(f);
}

typedef struct {
    fixture_t *f;
    int rc;
    conn_t *got;
} waiter_t;

static void *waiter_main(void *arg)
{
    waiter_t *w = arg;
    void *c = NULL;

    w->rc = uc__pool_acquire(w->f->pool, &c);
    w->got = c;
    return NULL;
}

static void waiter_gets_released_connection(void **state)
{
    fixture_t *f = new_fixture(1, 10000, 0);
    waiter_t w = {f, -1, NULL};
    pthread_t th;
    conn_t *a = NULL;
    uint64_t until = 0;

    (void)state;
    a = acquire_ok(f);
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    /* Wait (bounded) until the thread is blocked in acquire. */
    until = uc_test_now_ms() + 5000;
    while (stats(f).waits == 0 && uc_test_now_ms() < until) {
        uc_test_sleep_ms(1);
    }
    assert_int_equal(stats(f).waits, 1);
    uc__pool_release(f->pool, a, 1);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, UC_OK);
    assert_ptr_equal(w.got, a);
    assert_int_equal(stats(f).acquire_timeouts, 0);
    uc__pool_release(f->pool, w.got, 1);
    free_fixture(f);
}

#define THREADS 8
#define ROUNDS 300
#define MAX_CONNS 3

static void *worker_main(void *arg)
{
    fixture_t *f = arg;

    for (int i = 0; i < ROUNDS; i++) {
        void *c = NULL;
        int rc = uc__pool_acquire(f->pool, &c);
        int now = 0;
        int peak = 0;

        if (rc != UC_OK) {
            continue; /* UC_EPOOL under contention is allowed */
        }
        if (atomic_exchange(&((conn_t *)c)->borrowed, 1) != 0) {
            atomic_fetch_add(&f->double_borrows, 1);
        }
        now = atomic_fetch_add(&f->in_use, 1) + 1;
        peak = atomic_load(&f->in_use_peak);
        while (now > peak &&
               !atomic_compare_exchange_weak(&f->in_use_peak, &peak, now)) {
        }
        atomic_fetch_sub(&f->in_use, 1);
        atomic_store(&((conn_t *)c)->borrowed, 0);
        /* Every seventh use fails: the connection must not come back. */
        uc__pool_release(f->pool, c, i % 7 != 0);
    }
    return NULL;
}

static void threads_never_exceed_bound(void **state)
{
    fixture_t *f = new_fixture(MAX_CONNS, 2000, 0);
    pthread_t th[THREADS];
    uc_pool_stats_t st;

    (void)state;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, f), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    st = stats(f);
    assert_true(atomic_load(&f->in_use_peak) <= MAX_CONNS);
    assert_true(atomic_load(&f->in_use_peak) >= 1);
    assert_int_equal(st.in_use, 0);
    assert_true(st.idle <= MAX_CONNS);
    /* Made = still idle + discarded, so nothing leaked or was lost. */
    assert_int_equal(st.connects, st.idle + st.discarded);
    assert_int_equal(atomic_load(&f->close_calls), (int)st.discarded);
    free_fixture(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bounded_lazy_and_reused),
        cmocka_unit_test(discarded_connection_is_never_reused),
        cmocka_unit_test(idle_connections_closed),
        cmocka_unit_test(backoff_after_connect_failures),
        cmocka_unit_test(waiter_gets_released_connection),
        cmocka_unit_test(threads_never_exceed_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
